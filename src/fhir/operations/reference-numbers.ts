/**
 * Issuing and finding patient reference numbers. The numbers themselves (format, Damm check digit)
 * are src/cases/reference-number.ts; here they meet the database: the `reference_number` ledger
 * (migration 006) makes each issued number unique and never reused, and a typed number that fails
 * its check is a 400 in the typist's words.
 */
import { randomInt } from 'node:crypto';
import { Operator } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type { FhirRepository } from '@medplum/fhir-router';
import type { Identifier, Patient } from '@medplum/fhirtypes';
import type { Queryable } from '../../db/database.ts';
import {
  REFERENCE_NUMBER_SYSTEM,
  generateReferenceNumber,
  parseReferenceNumber,
} from '../../cases/reference-number.ts';
import { invalidParameter } from './parameters.ts';

/** 9 × 10^8 numbers: even with a million issued, 20 draws all colliding is a 1-in-10^57 event. */
const MAX_DRAWS = 20;

/** A number as a person typed it ("123 456 789 0"), or a 400 naming `parameter` that says what is wrong. */
export function parseTypedReferenceNumber(input: string, parameter: string): string {
  const parsed = parseReferenceNumber(input);
  if (!parsed.ok) {
    throw invalidParameter(parameter, parsed.message);
  }
  return parsed.referenceNumber;
}

export function referenceNumberIdentifier(value: string): Identifier {
  return { use: 'official', type: { text: 'Second-opinion reference number' }, system: REFERENCE_NUMBER_SYSTEM, value };
}

/** The Patient registered under a (valid) reference number, if any. */
export async function findPatientByReferenceNumber(
  repo: FhirRepository,
  referenceNumber: string,
): Promise<WithId<Patient> | undefined> {
  const matches = await repo.searchResources<Patient>({
    resourceType: 'Patient',
    filters: [
      { code: 'identifier', operator: Operator.EQUALS, value: `${REFERENCE_NUMBER_SYSTEM}|${referenceNumber}` },
    ],
    count: 1,
  });
  return matches[0];
}

export interface IssuedNumber {
  value: string;
  patientId: string;
  letterId: string;
  requestKey?: string;
  requestHash?: string;
}

/**
 * Draws numbers (from the system's cryptographic generator unless a test passes digits) until one is
 * free and records it in the
 * ledger, in the caller's transaction. ON CONFLICT waits for a concurrent transaction holding the
 * same number and then skips it only if that one committed, so two registrations never share one.
 */
export async function issueReferenceNumber(
  tx: Queryable,
  owner: Omit<IssuedNumber, 'value'>,
  randomDigit: () => number = () => randomInt(10),
): Promise<string> {
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const value = generateReferenceNumber(randomDigit);
    const inserted = await tx.query(
      `INSERT INTO reference_number (value, patient_id, letter_id, request_key, request_hash)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (value) DO NOTHING RETURNING value`,
      [value, owner.patientId, owner.letterId, owner.requestKey ?? null, owner.requestHash ?? null],
    );
    if (inserted.rows.length === 1) {
      return value;
    }
  }
  throw new Error(`No free reference number after ${MAX_DRAWS} draws`);
}

/** The registration an earlier request with this requestId made, if one did. */
export async function issuedForRequest(tx: Queryable, requestKey: string): Promise<IssuedNumber | undefined> {
  const result = await tx.query<{ value: string; patient_id: string; letter_id: string; request_hash: string | null }>(
    'SELECT value, patient_id, letter_id, request_hash FROM reference_number WHERE request_key = $1',
    [requestKey],
  );
  const row = result.rows[0];
  return (
    row && {
      value: row.value,
      patientId: row.patient_id,
      letterId: row.letter_id,
      requestKey,
      requestHash: row.request_hash ?? undefined,
    }
  );
}
