/**
 * The scopes a person's login may carry (SMART App Launch 2.0 §"Scopes"): `openid` and `fhirUser`
 * (an OpenID Connect id_token naming the user's FHIR resource), `launch/patient` (the patient
 * context, for users who are a Patient) and `user/<Type|*>.<cruds>` (v1 .read/.write/.* accepted).
 * Not offered: `patient/` scopes (they need compartment enforcement, which comes with the access
 * policies), `offline_access` (no refresh tokens: see sessions.ts), and `system/` scopes. Pure.
 */
import { ScopeSyntaxError, grantScopes, normalizeScopes, parseScope } from './scopes.ts';
import type { SystemScope } from './scopes.ts';

export interface UserScopes {
  openid: boolean;
  fhirUser: boolean;
  launchPatient: boolean;
  /** The user/ resource scopes, in the same shape as system scopes (the type and its permissions). */
  resources: SystemScope[];
}

export interface ParsedUserScopes extends UserScopes {
  /** Well-formed scopes this server does not grant to people (patient/…, offline_access, …). */
  unsupported: string[];
}

const EMPTY: UserScopes = { openid: false, fhirUser: false, launchPatient: false, resources: [] };

function parseResourceScope(item: string): SystemScope {
  try {
    return parseScope(`system/${item.slice('user/'.length)}`);
  } catch (err) {
    if (err instanceof ScopeSyntaxError) {
      throw new ScopeSyntaxError(`"${item}" is not a SMART user scope (user/<Type>.<cruds>, or v1 .read, .write, .*)`);
    }
    throw err;
  }
}

/** Parses a space-separated scope string; a malformed user/ scope throws ScopeSyntaxError. */
export function parseUserScopes(text: string): ParsedUserScopes {
  const result: ParsedUserScopes = { ...EMPTY, resources: [], unsupported: [] };
  for (const item of text.split(' ').filter((part) => part !== '')) {
    if (item === 'openid') {
      result.openid = true;
    } else if (item === 'fhirUser') {
      result.fhirUser = true;
    } else if (item === 'launch/patient') {
      result.launchPatient = true;
    } else if (item.startsWith('user/')) {
      result.resources.push(parseResourceScope(item));
    } else {
      result.unsupported.push(item);
    }
  }
  result.resources = normalizeScopes(result.resources);
  return result;
}

export function formatUserScopes(scopes: UserScopes): string {
  return [
    ...(scopes.openid ? ['openid'] : []),
    ...(scopes.fhirUser ? ['fhirUser'] : []),
    ...(scopes.launchPatient ? ['launch/patient'] : []),
    ...scopes.resources.map((scope) => `user/${scope.resourceType}.${scope.permissions}`),
  ].join(' ');
}

/** What a login may get: the request narrowed to what the client is registered for. */
export function grantUserScopes(requested: UserScopes, allowed: UserScopes): UserScopes {
  return {
    openid: requested.openid && allowed.openid,
    fhirUser: requested.fhirUser && allowed.fhirUser,
    launchPatient: requested.launchPatient && allowed.launchPatient,
    resources: grantScopes(requested.resources, allowed.resources),
  };
}

/** The resource scopes of an access token's `scope` claim, whatever their context (system/ or user/). */
export function resourceScopesOf(scope: string): SystemScope[] {
  const resources: SystemScope[] = [];
  for (const item of scope.split(' ')) {
    if (item.startsWith('system/')) {
      resources.push(parseScope(item));
    } else if (item.startsWith('user/')) {
      resources.push(parseResourceScope(item));
    }
  }
  return normalizeScopes(resources);
}
