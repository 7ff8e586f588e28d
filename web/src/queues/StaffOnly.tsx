/**
 * The operations screens (reconciliation, queues) are for coordinators and admins. The role is the
 * one the hub put in the person's token; the hub refuses the APIs behind these screens to anyone else
 * whatever the app shows, so this only saves others a screen of refusals.
 */
import { Alert, Anchor, Group } from '@mantine/core';
import type { ReactNode } from 'react';
import { Link } from 'react-router';
import type { Session } from '../auth.ts';

export const STAFF_ROLES: readonly string[] = ['coordinator', 'admin'];

export function isStaff(session: Session): boolean {
  return session.role !== undefined && STAFF_ROLES.includes(session.role);
}

export function StaffOnly({ session, screen, children }: { session: Session; screen: string; children: ReactNode }) {
  if (isStaff(session)) {
    return children;
  }
  return (
    <Alert color="gray" title={`${screen} is not open to you`} role="alert" data-testid="staff-only">
      {screen} is for coordinators and admins; you are signed in as{' '}
      {session.role === undefined ? 'a person without a role' : `a ${session.role.replace(/-/g, ' ')}`}.{' '}
      <Link to="/">Back to the cases</Link>
    </Alert>
  );
}

/** The header's links to the operations screens, for coordinators and admins. */
export function StaffLinks({ session }: { session: Session }) {
  if (!isStaff(session)) {
    return null;
  }
  return (
    <Group component="nav" aria-label="Operations" gap="sm">
      <Anchor component={Link} to="/reconciliation" size="sm">
        Reconciliation
      </Anchor>
      <Anchor component={Link} to="/queues" size="sm">
        Queues
      </Anchor>
    </Group>
  );
}
