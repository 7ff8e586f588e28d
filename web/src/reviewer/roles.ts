/**
 * Which signed-in people get the reviewers' screens. The token's role only picks the screens: what
 * each shows is what the hub lets that person fetch (docs/access.md).
 */
import type { Session } from '../auth.ts';

export const REVIEWER_ROLES = ['specialist', 'radiologist', 'pathologist'] as const;
export type ReviewerRole = (typeof REVIEWER_ROLES)[number];

export function isReviewerRole(role: string | undefined): role is ReviewerRole {
  return (REVIEWER_ROLES as readonly string[]).includes(role ?? '');
}

/**
 * The person's Practitioner as a local reference (`Practitioner/<id>`), from the token's fhirUser
 * (relative, or an absolute URL of the hub). Undefined for an account linked to none.
 */
export function practitionerOf(session: Session): string | undefined {
  const match = /(?:^|\/)(Practitioner\/[A-Za-z0-9\-.]{1,64})$/.exec(session.fhirUser ?? '');
  return match?.[1];
}
