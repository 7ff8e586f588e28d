/**
 * SMART scopes on DICOMweb. A study is the ImagingStudy the hub keeps for it, so DICOMweb asks for
 * the same rights on `ImagingStudy` as the FHIR API would:
 *   STOW-RS (POST)                                   `c`  e.g. system/ImagingStudy.c
 *   QIDO-RS (GET …/studies, …/series, …/instances)   `s`  e.g. system/ImagingStudy.s
 *   WADO-RS (every other GET: instances, metadata, frames, rendered, thumbnails, bulk data)  `r`
 * so `system/ImagingStudy.rs` (or `user/ImagingStudy.rs`) is a viewer's scope and
 * `system/ImagingStudy.crs` a modality's or PACS's. A person's STOW-RS also needs ImagingStudy
 * `create` in their role's access policy (AccessControl.mayStoreStudies: today admin and coordinator),
 * or a policy that stores into a case (a referring physician) and a request naming the case
 * (`?case=<ServiceRequest id>`), which the route checks is theirs before it reads the body
 * (routes/dicomweb/stow-case.ts); which studies a person sees is filtered below the routes
 * (AccessControl.studyCondition). Refused: 403 with an OperationOutcome. Anonymous requests (allowed
 * while AUTH_REQUIRED is false) and CORS preflights pass untouched.
 */
import type { RequestHandler, Response } from 'express';
import { accessControlFor } from './access-policy.ts';
import { requestIdentity } from './authenticate.ts';
import { scopesAllow } from './scopes.ts';

export const DICOMWEB_RESOURCE_TYPE = 'ImagingStudy';

const QIDO_LAST_SEGMENTS = new Set(['studies', 'series', 'instances']);

/** The permission a DICOMweb request needs on ImagingStudy, and what to call it in a refusal. */
export function dicomwebPermission(method: string, path: string): { permission: 'c' | 'r' | 's'; service: string } {
  if (method === 'POST') {
    return { permission: 'c', service: 'STOW-RS (store)' };
  }
  const last =
    path
      .split('/')
      .filter((segment) => segment !== '')
      .at(-1) ?? '';
  if (QIDO_LAST_SEGMENTS.has(last)) {
    return { permission: 's', service: 'QIDO-RS (search)' };
  }
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
    if (!scopesAllow(identity.scopes, DICOMWEB_RESOURCE_TYPE, permission)) {
      forbidden(
        res,
        `The access token's scopes do not allow ${service} (needs "${permission}" on ${DICOMWEB_RESOURCE_TYPE}, e.g. system/${DICOMWEB_RESOURCE_TYPE}.${permission})`,
      );
      return;
    }
    const access = accessControlFor(identity);
    const namesCase = req.query.case !== undefined;
    if (permission === 'c' && access && !access.mayStoreStudies() && !(namesCase && access.mayStoreStudiesIntoCase())) {
      forbidden(
        res,
        access.mayStoreStudiesIntoCase()
          ? `Name the case to store DICOM instances into: ${service} with ?case=<ServiceRequest id> of one of your cases`
          : `Your role may not store DICOM instances (${service} needs create on ${DICOMWEB_RESOURCE_TYPE} in the role's access policy)`,
      );
      return;
    }
    next();
  };
}

function forbidden(res: Response, text: string): void {
  res
    .status(403)
    .type('application/fhir+json')
    .send(
      JSON.stringify({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'forbidden', details: { text } }],
      }),
    );
}
