/**
 * Who owns a subscription, and what they may be told. A subscription belongs to whoever created it,
 * as the hub recorded it (never a field of the resource): a system client (an EHR), a person of the
 * staff, or anyone when the hub runs without authentication. Each event is told only to owners who
 * may read its focus now: a client by its current scopes (a disabled client, or one whose scopes no
 * longer cover the type, hears nothing), a person while their account is active and staff, within
 * the scopes of the app they subscribed through.
 */
import { ACCESS_POLICY } from '../../auth/access-policy.ts';
import type { Identity } from '../../auth/access-tokens.ts';
import { ClientRegistry } from '../../auth/clients.ts';
import { formatScopes, parseScopes, scopesAllow } from '../../auth/scopes.ts';
import { UserStore } from '../../auth/users.ts';
import type { UserRole } from '../../auth/users.ts';
import type { Queryable } from '../../db/database.ts';

export const ANONYMOUS_OWNER = 'anonymous';

/**
 * The owner key of a request's identity: a client, or a person through one app (another app of the
 * same person neither sees nor changes it).
 */
export function ownerOf(identity: Identity | undefined): string {
  if (!identity) {
    return ANONYMOUS_OWNER;
  }
  return identity.kind === 'client' ? `client:${identity.clientId}` : `user:${identity.userId}@${identity.clientId}`;
}

/** The scopes a person's app was granted, kept with the subscription; clients' scopes are read when needed. */
export function ownerScopesOf(identity: Identity | undefined): string | undefined {
  return identity?.kind === 'user' ? formatScopes(identity.scopes) : undefined;
}

/** Persons who may hold subscriptions: the staff, whose policy reaches every case. */
export function isStaffRole(role: UserRole): boolean {
  return ACCESS_POLICY[role].cases === 'all';
}

/** True when the identity may see and change every subscription (an administrator). */
export function seesAllSubscriptions(identity: Identity | undefined): boolean {
  if (!identity) {
    return true;
  }
  return identity.kind === 'client' ? identity.hubAdmin === true : identity.role === 'admin';
}

type Owner =
  { kind: 'anonymous' } | { kind: 'client'; clientId: string } | { kind: 'user'; userId: string } | { kind: 'unknown' };

function parseOwner(owner: string): Owner {
  if (owner === ANONYMOUS_OWNER) {
    return { kind: 'anonymous' };
  }
  const client = /^client:(.+)$/.exec(owner);
  if (client?.[1]) {
    return { kind: 'client', clientId: client[1] };
  }
  const user = /^user:([^@]+)@.+$/.exec(owner);
  return user?.[1] ? { kind: 'user', userId: user[1] } : { kind: 'unknown' };
}

/**
 * True when `owner` may be told that a resource of `resourceType` changed: a client by its current
 * scopes while active; a person while active and staff, within the scopes their app was granted.
 */
export async function ownerMayRead(
  db: Queryable,
  owner: string,
  resourceType: string,
  ownerScopes: string | undefined,
): Promise<boolean> {
  const parsed = parseOwner(owner);
  switch (parsed.kind) {
    case 'anonymous':
      return true;
    case 'client': {
      const client = await new ClientRegistry(db).get(parsed.clientId);
      return client?.status === 'active' && !client.public && scopesAllow(client.scopes, resourceType, 'r');
    }
    case 'user': {
      const user = await new UserStore(db).find(parsed.userId);
      return (
        user?.status === 'active' &&
        isStaffRole(user.role) &&
        ownerScopes !== undefined &&
        scopesAllow(parseScopes(ownerScopes), resourceType, 'r')
      );
    }
    case 'unknown':
      return false;
  }
}

/** False once the owner is gone or disabled (a client removed, an account disabled or no longer staff). */
export async function ownerActive(db: Queryable, owner: string): Promise<boolean> {
  const parsed = parseOwner(owner);
  switch (parsed.kind) {
    case 'anonymous':
      return true;
    case 'client':
      return (await new ClientRegistry(db).get(parsed.clientId))?.status === 'active';
    case 'user': {
      const user = await new UserStore(db).find(parsed.userId);
      return user?.status === 'active' && isStaffRole(user.role);
    }
    case 'unknown':
      return false;
  }
}
