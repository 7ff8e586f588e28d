/**
 * SMART scopes on DICOMweb. A study is the ImagingStudy the hub keeps for it, so DICOMweb asks for
 * the same rights on `ImagingStudy` as the FHIR API would:
 *   STOW-RS (POST)                                   `c`  e.g. system/ImagingStudy.c
 *   QIDO-RS (GET …/studies, …/series, …/instances)   `s`  e.g. system/ImagingStudy.s
 *   WADO-RS (every other GET: instances, metadata, frames, rendered, thumbnails, bulk data)  `r`
 * so `system/ImagingStudy.rs` (or `user/ImagingStudy.rs`) is a viewer's scope and
 * `system/ImagingStudy.crs` a modality's or PACS's. Refused: 403 with an OperationOutcome. Anonymous
 * requests (allowed while AUTH_REQUIRED is false) and CORS preflights pass untouched.
 */
import type { RequestHandler } from 'express';
import { requestIdentity } from './authenticate.ts';
import { scopesAllow } from './scopes.ts';

export const DICOMWEB_RESOURCE_TYPE = 'ImagingStudy';

const QIDO_LAST_SEGMENTS = new Set(['studies', 'series', 'instances']);

/** The permission a DICOMweb request needs on ImagingStudy, and what to call it in a refusal. */
export function dicomwebPermission(method: string, path: string): { permission: 'c' | 'r' | 's'; service: string } {
  if (method === 'POST') return { permission: 'c', service: 'STOW-RS (store)' };
  const last = path.split('/').filter((segment) => segment !== '').at(-1) ?? '';
  if (QIDO_LAST_SEGMENTS.has(last)) return { permission: 's', service: 'QIDO-RS (search)' };
  return { permission: 'r', service: 'WADO-RS (retrieve)' };
}

export function dicomwebScopeGuard(): RequestHandler {
  return (req, res, next) => {
    const identity = requestIdentity(res);
    if (!identity || req.method === 'OPTIONS') {
      next();
      return;
    }
    const { permission, service } = dicomwebPermission(req.method, req.path);
    if (scopesAllow(identity.scopes, DICOMWEB_RESOURCE_TYPE, permission)) {
      next();
      return;
    }
    const text = `The access token's scopes do not allow ${service} (needs "${permission}" on ${DICOMWEB_RESOURCE_TYPE}, e.g. system/${DICOMWEB_RESOURCE_TYPE}.${permission})`;
    res.status(403).type('application/fhir+json').send(
      JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden', details: { text } }] }),
    );
  };
}
