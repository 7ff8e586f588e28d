/**
 * A reference is a claim of access. When a person writes a resource, every reference it adds (and
 * every attachment URL naming a Binary of this hub) claims that the person may reach the target:
 * the access model reads those links to decide who sees what, so a link nobody checked would widen
 * the writer's reach (a ServiceRequest whose subject is someone else's Patient, a DocumentReference
 * naming someone else's Binary, a Task based on someone else's case). This file finds the claims a
 * write adds (pure); HubRepository.checkReferenceClaims asks the access policy about each target.
 *
 * Claims the previous version already made are not claims of this write: they were checked when
 * they were written, or written by the hub. The hub's own `urn:hub:case-resource` identifiers tie a
 * resource to a case, and only the hub adds them.
 */
import type { Resource } from '@medplum/fhirtypes';
import { CASE_RESOURCE_SYSTEM, binaryUrlsOf, localTarget } from './case-links.ts';

export interface ReferenceClaim {
  resourceType: string;
  id: string;
  /** Where the write makes the claim, e.g. `ServiceRequest.subject` or `DocumentReference.content[0].attachment.url`. */
  path: string;
}

export interface WriteClaims {
  references: ReferenceClaim[];
  /** The `urn:hub:case-resource` identifiers the write adds, with where they are. */
  caseIdentifiers: { value: string; path: string }[];
}

/** Every claim a resource makes, wherever it is in the resource (contained resources included). */
export function claimsOf(resource: Resource, fhirBase: string): WriteClaims {
  const claims: WriteClaims = { references: [], caseIdentifiers: [] };
  const visit = (value: unknown, path: string, key: string | undefined): void => {
    if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, `${path}[${index}]`, key));
      return;
    }
    if (value === null || typeof value !== 'object') {
      return;
    }
    const node = value as Record<string, unknown>;
    if (typeof node.reference === 'string') {
      const target = localTarget(node.reference, fhirBase);
      if (target) {
        claims.references.push({ ...target, path });
      }
    }
    if (key === 'identifier' && node.system === CASE_RESOURCE_SYSTEM) {
      claims.caseIdentifiers.push({ value: String(node.value ?? ''), path });
    }
    for (const [child, childValue] of Object.entries(node)) {
      // A string `reference` is the claim read above; an object one is a Reference in an element
      // named `reference` (Consent.provision.data.reference), whose own `reference` is a claim too.
      if ((child === 'reference' && typeof childValue === 'string') || child === 'meta') {
        continue;
      }
      visit(childValue, `${path}.${child}`, child);
    }
  };
  visit(resource, resource.resourceType, undefined);
  // Binary URLs by the same walk the case links use (case-links.ts): every link they record is claimed.
  for (const url of binaryUrlsOf(resource, fhirBase)) {
    claims.references.push({ resourceType: 'Binary', id: url.id, path: url.path });
  }
  return claims;
}

/** The claims `next` makes that `previous` (the version it replaces, if any) did not. */
export function newClaims(next: Resource, previous: Resource | undefined, fhirBase: string): WriteClaims {
  const made = claimsOf(next, fhirBase);
  if (!previous) {
    return made;
  }
  const before = claimsOf(previous, fhirBase);
  const known = new Set(before.references.map((claim) => `${claim.resourceType}/${claim.id}`));
  const knownIdentifiers = new Set(before.caseIdentifiers.map((identifier) => identifier.value));
  return {
    references: made.references.filter((claim) => !known.has(`${claim.resourceType}/${claim.id}`)),
    caseIdentifiers: made.caseIdentifiers.filter((identifier) => !knownIdentifiers.has(identifier.value)),
  };
}
