/**
 * Who may call an operation. The route layer lets operations through (auth/fhir-access.ts: what an
 * operation reads and writes is not visible in its path); each operation names the right it needs
 * and the registry checks it (index.ts) against the identity the request's repository carries, as
 * the repository checks plain reads and writes: a person by their role's access policy
 * (auth/access-policy.ts) and their token's user/ scopes, a system client by its system/ scopes.
 * An anonymous request (only possible while AUTH_REQUIRED is false, on loopback) is let through
 * like the rest of the FHIR API.
 *
 * An operation that passes acts with the hub's rights (its writes may lie outside the caller's
 * cases, e.g. the letter of a patient not yet referred) but writes as the caller: meta.source and
 * the write audit name them, and what the caller supplied (conditional references, references) is
 * resolved and checked within the caller's own reach, so its answers tell nothing of what the
 * caller may not see (callerWrites).
 */
import { OperationOutcomeError, forbidden } from '@medplum/core';
import type { FhirRepository } from '@medplum/fhir-router';
import { AccessControl } from '../../auth/access-policy.ts';
import type { AccessInteraction } from '../../auth/access-policy.ts';
import type { Identity } from '../../auth/access-tokens.ts';
import { scopesAllow } from '../../auth/scopes.ts';
import { HubRepository } from '../repository.ts';
import type { RepositoryContext } from '../repository.ts';

/** A right on a resource type, as the access policy and SMART scopes both express it. */
export interface OperationRight {
  resourceType: string;
  interaction: Exclude<AccessInteraction, 'history'>;
}

/** `authenticated`: any identity may call it (its answer reveals nothing stored). */
export type OperationAccess = OperationRight | 'authenticated';

const SCOPE_LETTER: Record<OperationRight['interaction'], string> = {
  create: 'c',
  read: 'r',
  update: 'u',
  delete: 'd',
  search: 's',
};

/** The identity the request's repository carries; undefined for an anonymous request. */
export function operationCaller(repo: FhirRepository): Identity | undefined {
  return repo instanceof HubRepository ? repo.context.identity : undefined;
}

function refused(operation: string, text: string): OperationOutcomeError {
  return new OperationOutcomeError({
    ...forbidden,
    issue: [{ severity: 'error', code: 'forbidden', details: { text: `${text}, which ${operation} needs` } }],
  });
}

/** Throws a 403 OperationOutcome unless `identity` has `right`; nothing for anonymous requests. */
export function requireRight(identity: Identity | undefined, right: OperationRight, operation: string): void {
  if (identity === undefined) {
    return;
  }
  const letter = SCOPE_LETTER[right.interaction];
  if (
    identity.kind === 'user' &&
    new AccessControl(identity.role, identity.fhirUser).scopeOf(right.resourceType, right.interaction) === undefined
  ) {
    throw refused(operation, `Your role may not ${right.interaction} ${right.resourceType} resources`);
  }
  if (!scopesAllow(identity.scopes, right.resourceType, letter)) {
    throw refused(
      operation,
      `The access token's scopes do not allow ${right.interaction} on ${right.resourceType} (needs "${letter}")`,
    );
  }
}

export function requireAccess(identity: Identity | undefined, access: OperationAccess, operation: string): void {
  if (access !== 'authenticated') {
    requireRight(identity, access, operation);
  }
}

/**
 * The repository context for an operation's own reads and writes: the hub's rights (no access
 * policy), the caller as writer (meta.source) and in each write's AuditEvent.
 */
export function callerWrites(store: Omit<RepositoryContext, 'strictSearch'>, repo: FhirRepository): RepositoryContext {
  const caller = repo instanceof HubRepository ? repo.context : undefined;
  return {
    ...store,
    access: undefined,
    callerAccess: caller?.access,
    actor: caller?.actor,
    audit: caller?.audit,
    identity: caller?.identity,
  };
}
