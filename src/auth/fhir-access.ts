/**
 * What a FHIR REST request needs from a token's scopes, read from its method and path alone (the type
 * level: it cannot see inside a batch, so batch/transaction needs every right on every type). Pure.
 */
import { scopesAllow } from './scopes.ts';
import type { SystemScope } from './scopes.ts';

export type FhirAccess =
  /** Served to anyone (the CapabilityStatement). */
  | { kind: 'open' }
  /** Not a resource type: the FHIR layer answers 404 whatever the scopes. */
  | { kind: 'unrouted' }
  /** A hub operation: it checks its caller itself (fhir/operations/caller.ts). */
  | { kind: 'operation' }
  /** `permissions` on `resourceType` (`*`: on every type, i.e. a wildcard scope). */
  | { kind: 'scoped'; resourceType: string; permissions: string; interaction: string };

const ALL = 'cruds';

function scoped(resourceType: string, permissions: string, interaction: string): FhirAccess {
  return { kind: 'scoped', resourceType, permissions, interaction };
}

/** Method on `[type]` (no id): search, create, conditional update/patch/delete. */
function typeLevel(method: string, type: string): FhirAccess {
  switch (method) {
    case 'GET':
      return scoped(type, 's', 'search');
    case 'POST':
      return scoped(type, 'c', 'create');
    case 'PUT':
    case 'PATCH':
      return scoped(type, 'u', 'conditional update');
    case 'DELETE':
      return scoped(type, 'd', 'conditional delete');
    default:
      return scoped(type, ALL, method);
  }
}

function instanceLevel(method: string, type: string): FhirAccess {
  switch (method) {
    case 'GET':
      return scoped(type, 'r', 'read');
    case 'PUT':
    case 'PATCH':
      return scoped(type, 'u', 'update');
    case 'DELETE':
      return scoped(type, 'd', 'delete');
    default:
      return scoped(type, ALL, method);
  }
}

/**
 * The access a request under /fhir needs. `path` is relative to the FHIR base (`/Patient/1`);
 * `isResourceType` decides which first segments are types. Operations (`$name` last, by GET or POST)
 * go through: what one reads and writes is not visible here, so each decides who may call it
 * (fhir/operations/caller.ts); paths the router has no operation for are 404 there. Any other use
 * of a `$` segment needs every right on its type (on `*` at system level).
 */
export function fhirAccessFor(method: string, path: string, isResourceType: (name: string) => boolean): FhirAccess {
  const segments = path
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => decodeSegment(segment));
  const [first, second, third] = segments;
  if (first === undefined) {
    // GET [base]?_type=… searches every type; POST [base] is a batch or transaction.
    return method === 'GET' ? scoped('*', 's', 'search-system') : scoped('*', ALL, 'batch/transaction');
  }
  if (first === 'metadata' || first === '.well-known') {
    return { kind: 'open' };
  }
  if (first === '_history' || first === '_search') {
    return scoped('*', 's', first === '_history' ? 'history-system' : 'search-system');
  }
  const last = segments.at(-1) ?? first;
  const isOperation = last.startsWith('$') && segments.length <= 3 && (method === 'GET' || method === 'POST');
  if (first.startsWith('$')) {
    return isOperation && segments.length === 1 ? { kind: 'operation' } : scoped('*', ALL, 'operation');
  }
  if (!isResourceType(first)) {
    return { kind: 'unrouted' };
  }
  if (second === undefined) {
    return typeLevel(method, first);
  }
  if (second === '_search' && segments.length === 2) {
    return scoped(first, 's', 'search');
  }
  if (second === '_history' && segments.length === 2) {
    return scoped(first, 's', 'history-type');
  }
  if (second.startsWith('$') || third?.startsWith('$')) {
    return isOperation ? { kind: 'operation' } : scoped(first, ALL, 'operation');
  }
  if (third === undefined) {
    return instanceLevel(method, first);
  }
  if (third === '_history' && segments.length <= 4) {
    return method === 'GET' ? scoped(first, 'r', 'history-instance') : scoped(first, ALL, method);
  }
  if (isResourceType(third) && segments.length === 3 && method === 'GET') {
    // Compartment search ([type]/[id]/[compartment type]) returns resources of the third segment.
    return scoped(third, 's', 'search-compartment');
  }
  return scoped('*', ALL, method);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** True when `scopes` give what `access` needs. */
export function scopesPermit(scopes: readonly SystemScope[], access: FhirAccess): boolean {
  return access.kind !== 'scoped' || scopesAllow(scopes, access.resourceType, access.permissions);
}
