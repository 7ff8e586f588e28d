/**
 * Database errors, mapped once for the whole FHIR layer (shared/style.md): a unique violation is a 409,
 * bad input that reached SQL is a 400, anything else is a 500 whose details stay in the log.
 * Without this, the router would turn every unexpected error into a 400 carrying its raw text.
 */
import { OperationOutcomeError, badRequest, conflict } from '@medplum/core';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { Queryable } from '../db/database.ts';

/** Keeps the SQLSTATE so that transaction retries still recognise serialization failures. */
export class DatabaseOutcomeError extends OperationOutcomeError {
  readonly code: string | undefined;

  constructor(outcome: OperationOutcome, code: string | undefined, cause: unknown) {
    super(outcome, { cause });
    this.code = code;
  }
}

function serverFailure(message: string): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    id: 'server-error',
    issue: [{ severity: 'error', code: 'exception', details: { text: message } }],
  };
}

export function toOutcomeError(err: unknown): unknown {
  if (err instanceof OperationOutcomeError) {
    return err;
  }
  const code = (err as { code?: string }).code;
  if (code === '23505') {
    return new DatabaseOutcomeError(
      conflict('A concurrent write created the same resource; retry the request'),
      code,
      err,
    );
  }
  if (code?.startsWith('22')) {
    // Data exception: a value the search or write let through that PostgreSQL refuses.
    return new DatabaseOutcomeError(badRequest('A value in the request is out of range or malformed'), code, err);
  }
  return new DatabaseOutcomeError(
    serverFailure(`Database error${code ? ` ${code}` : ''}: ${(err as Error).message}`),
    code,
    err,
  );
}

/** Wraps a connection so its failures reach the router as OperationOutcomeErrors. */
export function withFhirErrors(conn: Queryable): Queryable {
  return {
    inTransaction: conn.inTransaction,
    query: async <R>(sql: string, params?: readonly unknown[]) => {
      try {
        return await conn.query<R>(sql, params);
      } catch (err) {
        throw toOutcomeError(err);
      }
    },
  };
}
