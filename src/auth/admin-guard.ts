/**
 * The operator views (/admin/queues, and /metrics unless METRICS_PUBLIC): only a person whose role
 * is `admin` or `coordinator` may use them, whatever AUTH_REQUIRED says, because they show the
 * state of every case's jobs. Runs after `authenticate` with `required: true`, so an anonymous request
 * has been answered 401 already; a valid token of anyone else gets 403.
 *
 * System clients are not let in: SMART scopes name FHIR resource types, and no resource type says
 * "operate the hub". An operator's monitoring that cannot log in as a person uses METRICS_PUBLIC.
 */
import type { RequestHandler } from 'express';
import { requestIdentity } from './authenticate.ts';
import type { UserRole } from './users.ts';

export const ADMIN_ROLES: readonly UserRole[] = ['admin', 'coordinator'];

export function adminGuard(): RequestHandler {
  return (_req, res, next) => {
    const identity = requestIdentity(res);
    if (identity?.kind === 'user' && ADMIN_ROLES.includes(identity.role)) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.status(403).json({ error: 'forbidden', error_description: `only a user with the role ${ADMIN_ROLES.join(' or ')} may use this` });
  };
}
