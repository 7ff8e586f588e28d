/**
 * Who owns a subscription, and what they may be told. A subscription belongs to whoever created it,
 * as the hub recorded it (never a field of the resource): a system client (an EHR), a person of the
 * staff, or anyone when the hub runs without authentication. Each event is told only to owners who
 * may read its focus now: a client by its current scopes (a disabled client, or one whose scopes no
 * longer cover the type, hears nothing), a person while their account is active and staff.
 */
import { ACCESS_POLICY } from '../../auth/access-policy.ts';
import type { Identity } from '../../auth/access-tokens.ts';
import { ClientRegistry } from '../../auth/clients.ts';
import { scopesAllow } from '../../auth/scopes.ts';
import { UserStore } from '../../auth/users.ts';
import type { UserRole } from '../../auth/users.ts';
import type { Queryable } from '../../db/database.ts';

export const ANONYMOUS_OWNER = 'anonymous';

/** The owner key of a request's identity. */
export function ownerOf(identity: Identity | undefined): string {
  if (!identity) {
    return ANONYMOUS_OWNER;
  }
  return identity.kind === 'client' ? `client:${identity.clientId}` : `user:${identity.userId}`;
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

/** True when `owner` may be told that a resource of `resourceType` changed. */
export async function ownerMayRead(db: Queryable, owner: string, resourceType: string): Promise<boolean> {
  if (owner === ANONYMOUS_OWNER) {
    return true;
  }
  const [kind, ...rest] = owner.split(':');
  const id = rest.join(':');
  if (kind === 'client') {
    const client = await new ClientRegistry(db).get(id);
    return client?.status === 'active' && !client.public && scopesAllow(client.scopes, resourceType, 'r');
  }
  if (kind === 'user') {
    const user = await new UserStore(db).get(id);
    return user?.status === 'active' && isStaffRole(user.role);
  }
  return false;
}
