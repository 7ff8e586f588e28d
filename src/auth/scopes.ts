/**
 * SMART on FHIR system scopes (App Launch 2.0 §"Scopes for requesting clinical data"): parsing, the
 * grant (requested ∩ allowed) and the check "may this identity do X on type Y". Pure functions.
 *
 * v2 syntax: `system/<Type|*>.<cruds>` with the permissions in that order (c create, r read,
 * u update, d delete, s search). v1 syntax is accepted and mapped: `.read` → `rs`, `.write` → `cud`,
 * `.*` → `cruds`. Scopes with query parameters (`system/Observation.rs?category=…`) are refused.
 *
 * Beside them a system client may hold the hub's own `hub:admin` (the operator views, admin-guard.ts).
 * It is no SMART scope and no resource scope implies it: `system/*.*` does not.
 */

export const PERMISSIONS = ['c', 'r', 'u', 'd', 's'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** One granted right: a resource type (or `*`) and its permissions. */
export interface SystemScope {
  readonly resourceType: string;
  /** Canonical order, no repeats: a non-empty ordered subset of "cruds". */
  readonly permissions: string;
}

export class ScopeSyntaxError extends Error {}

const V1_PERMISSIONS: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };
const V2_PERMISSIONS = /^c?r?u?d?s?$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/** Parses one scope string; throws ScopeSyntaxError with a reason a client can act on. */
export function parseScope(text: string): SystemScope {
  // The query group is optional; the other three are there whenever the pattern matches.
  const [, context, resourceType, action, query] = /^(patient|user|system)\/([^.?]+)\.([^?]+)(\?.*)?$/.exec(text) ?? [];
  if (context === undefined || resourceType === undefined || action === undefined) {
    throw new ScopeSyntaxError(`"${text}" is not a SMART scope (system/<Type>.<cruds>)`);
  }
  if (context !== 'system') {
    throw new ScopeSyntaxError(`"${text}": only system/ scopes are available to backend services`);
  }
  if (query !== undefined) {
    throw new ScopeSyntaxError(`"${text}": scopes with query parameters are not supported`);
  }
  if (resourceType !== '*' && !RESOURCE_TYPE.test(resourceType)) {
    throw new ScopeSyntaxError(`"${text}": "${resourceType}" is not a resource type`);
  }
  const permissions = V1_PERMISSIONS[action] ?? (action !== '' && V2_PERMISSIONS.test(action) ? action : undefined);
  if (permissions === undefined) {
    throw new ScopeSyntaxError(`"${text}": permissions must be read, write, * or a subset of cruds in that order`);
  }
  return { resourceType, permissions };
}

/** The hub's own scope for system clients: /admin/queues and /metrics (admin-guard.ts). */
export const HUB_ADMIN_SCOPE = 'hub:admin';

/** What a system client holds or asks for: SMART resource scopes, and `hub:admin` apart from them. */
export interface ClientScopes {
  resources: SystemScope[];
  hubAdmin: boolean;
}

/** A system client's scope string: system/ scopes and, optionally, `hub:admin`. */
export function parseClientScopes(text: string): ClientScopes {
  const items = text.split(' ').filter((item) => item !== '');
  return {
    resources: parseScopes(items.filter((item) => item !== HUB_ADMIN_SCOPE).join(' ')),
    hubAdmin: items.includes(HUB_ADMIN_SCOPE),
  };
}

export function formatClientScopes(scopes: ClientScopes): string {
  return [formatScopes(scopes.resources), scopes.hubAdmin ? HUB_ADMIN_SCOPE : '']
    .filter((part) => part !== '')
    .join(' ');
}

/** Parses a space-separated scope parameter (RFC 6749 §3.3). */
export function parseScopes(text: string): SystemScope[] {
  return normalizeScopes(
    text
      .split(' ')
      .filter((item) => item !== '')
      .map(parseScope),
  );
}

export function formatScope(scope: SystemScope): string {
  return `system/${scope.resourceType}.${scope.permissions}`;
}

export function formatScopes(scopes: readonly SystemScope[]): string {
  return scopes.map(formatScope).join(' ');
}

function orderedPermissions(letters: Iterable<string>): string {
  const set = new Set(letters);
  return PERMISSIONS.filter((p) => set.has(p)).join('');
}

/**
 * One scope per resource type with the union of its permissions; a type's scope is dropped when
 * `*` already grants all of it. Sorted: `*` first, then by type.
 */
export function normalizeScopes(scopes: readonly SystemScope[]): SystemScope[] {
  const byType = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const letters = byType.get(scope.resourceType) ?? new Set<string>();
    for (const p of scope.permissions) {
      letters.add(p);
    }
    byType.set(scope.resourceType, letters);
  }
  const wildcard = byType.get('*') ?? new Set<string>();
  const result: SystemScope[] = [];
  for (const [resourceType, letters] of byType) {
    const permissions = orderedPermissions(letters);
    if (resourceType !== '*' && [...permissions].every((p) => wildcard.has(p))) {
      continue;
    }
    if (permissions !== '') {
      result.push({ resourceType, permissions });
    }
  }
  return result.sort((a, b) =>
    a.resourceType === '*' ? -1 : b.resourceType === '*' ? 1 : a.resourceType.localeCompare(b.resourceType),
  );
}

/** What a client may get: each requested right narrowed to what its registration allows. */
export function grantScopes(requested: readonly SystemScope[], allowed: readonly SystemScope[]): SystemScope[] {
  const granted: SystemScope[] = [];
  for (const want of requested) {
    for (const may of allowed) {
      const resourceType =
        want.resourceType === '*'
          ? may.resourceType
          : may.resourceType === '*' || may.resourceType === want.resourceType
            ? want.resourceType
            : undefined;
      const permissions = orderedPermissions([...want.permissions].filter((p) => may.permissions.includes(p)));
      if (resourceType !== undefined && permissions !== '') {
        granted.push({ resourceType, permissions });
      }
    }
  }
  return normalizeScopes(granted);
}

/** True when the scopes give every one of `permissions` on `resourceType` (`*` asks for the wildcard itself). */
export function scopesAllow(scopes: readonly SystemScope[], resourceType: string, permissions: string): boolean {
  return [...permissions].every((p) =>
    scopes.some(
      (scope) => (scope.resourceType === '*' || scope.resourceType === resourceType) && scope.permissions.includes(p),
    ),
  );
}
