/**
 * The FHIR requests refused before they reach the FHIR routes (no token or a bad one: 401; a token
 * whose scopes do not cover the request: 403) are audited too, as the routes audit the refusals
 * they make themselves: one `rest` AuditEvent with outcome 4 naming what the path asked for. A
 * caller the hub could not identify goes through the refusal throttle (audit/refusal-throttle.ts).
 *
 * Recorded once the answer is sent: the refusal changed nothing that the event would have to
 * precede.
 */
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { REST_AUDITED } from '../audit/auditor.ts';
import type { Auditor } from '../audit/auditor.ts';

const TYPE_PATH = /^\/([A-Z][A-Za-z]{1,63})(?:\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?)?\/?$/;

/** The restful interaction a refused request asked for, from its method and path. */
function interactionOf(method: string, path: string): { interaction: string; resourceType?: string; id?: string } {
  const [, resourceType, id, version] = TYPE_PATH.exec(path) ?? [];
  if (path.includes('$')) {
    return { interaction: 'operation', resourceType };
  }
  if (resourceType === undefined) {
    return { interaction: path === '/' && method === 'POST' ? 'batch' : 'operation' };
  }
  switch (method) {
    case 'GET':
      return id === undefined
        ? { interaction: 'search-type', resourceType }
        : { interaction: version === undefined ? 'read' : 'vread', resourceType, id };
    case 'POST':
      return { interaction: id === '_search' ? 'search-type' : 'create', resourceType };
    case 'PUT':
      return { interaction: 'update', resourceType, id };
    case 'PATCH':
      return { interaction: 'patch', resourceType, id };
    case 'DELETE':
      return { interaction: 'delete', resourceType, id };
    default:
      return { interaction: 'operation', resourceType };
  }
}

export function fhirAuditTrail(auditor: Auditor, logger: Logger): RequestHandler {
  return (req, res, next) => {
    if (!auditor.enabled || req.method === 'OPTIONS') {
      next();
      return;
    }
    const { method, path } = req;
    res.once('finish', () => {
      if (res.locals[REST_AUDITED] === true || (res.statusCode !== 401 && res.statusCode !== 403)) {
        return;
      }
      const asked = interactionOf(method, path);
      auditor
        .rest(req, res, {
          interaction: asked.interaction,
          status: res.statusCode,
          target:
            asked.resourceType === undefined
              ? undefined
              : { resourceType: asked.resourceType, ...(asked.id === undefined ? {} : { id: asked.id }) },
          query: asked.interaction === 'search-type' ? '' : undefined,
        })
        .catch((error: unknown) => {
          logger.error(
            { requestId: res.locals.requestId, err: error instanceof Error ? error.message : String(error) },
            'FHIR audit of a refusal failed',
          );
        });
    });
    next();
  };
}
