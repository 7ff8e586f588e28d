/**
 * The writer of a resource version, as the hub records it in `meta.source`: `urn:hub:actor:<role>:<id>`
 * for a person (their role, and the id of their Practitioner or Patient, else their user id) and
 * `urn:hub:actor:ehr:<client id>` for a system client.
 * The case workflow reads it to check a state move against the mover's role (case-state.ts).
 */
import type { Identity } from './access-tokens.ts';

export const HUB_ACTOR_PREFIX = 'urn:hub:actor:';

export function authActor(identity: Identity | undefined): string | undefined {
  if (!identity) {
    return undefined;
  }
  if (identity.kind === 'client') {
    return `${HUB_ACTOR_PREFIX}ehr:${identity.clientId}`;
  }
  const resourceId = identity.fhirUser?.split('/')[1];
  return `${HUB_ACTOR_PREFIX}${identity.role}:${resourceId || identity.userId}`;
}

/** The role and id a version's writer had, or undefined when the hub recorded none. */
export function actorOf(source: string | undefined): { role: string; id: string } | undefined {
  if (!source?.startsWith(HUB_ACTOR_PREFIX)) {
    return undefined;
  }
  const [role, ...id] = source.slice(HUB_ACTOR_PREFIX.length).split(':');
  return role ? { role, id: id.join(':') } : undefined;
}
