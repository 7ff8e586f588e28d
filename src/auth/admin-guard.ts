/**
 * The operator views (/admin/queues, and /metrics unless METRICS_PUBLIC): only a person whose role
 * is `admin` or `coordinator`, or a system client granted the hub's `hub:admin` scope (an operations
 * tool, a metrics scraper), may use them, whatever AUTH_REQUIRED says, because they show the state of
 * every case's jobs. Runs after `authenticate` with `required: true`, so an anonymous request has
 * been answered 401 already; a valid token of anyone else gets 403.
 *
 * SMART resource scopes do not let a client in, not even `system/*.*`: they name FHIR resource types,
 * and no resource type says "operate the hub".
 */
import type { RequestHandler } from 'express';
import { requestIdentity } from './authenticate.ts';
import { HUB_ADMIN_SCOPE } from './scopes.ts';
import type { UserRole } from './users.ts';

export const ADMIN_ROLES: readonly UserRole[] = ['admin', 'coordinator'];

export function adminGuard(): RequestHandler {
  return (_req, res, next) => {
    const identity = requestIdentity(res);
    if (
      (identity?.kind === 'user' && ADMIN_ROLES.includes(identity.role)) ||
      (identity?.kind === 'client' && identity.hubAdmin === true)
    ) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.status(403).json({
      error: 'forbidden',
      error_description: `only a user with the role ${ADMIN_ROLES.join(' or ')}, or a client granted ${HUB_ADMIN_SCOPE}, may use this`,
    });
  };
}
