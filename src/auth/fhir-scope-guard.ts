/**
 * Enforces a token's SMART scopes on the FHIR REST API at the route layer (fhir-access.ts): 403 with
 * an OperationOutcome when the scopes do not cover the interaction. Anonymous requests (allowed while
 * AUTH_REQUIRED is false) pass untouched.
 */
import { isResourceType } from '@medplum/core';
import type { RequestHandler } from 'express';
import { requestIdentity } from './authenticate.ts';
import { fhirAccessFor, scopesPermit } from './fhir-access.ts';

export function fhirScopeGuard(): RequestHandler {
  return (req, res, next) => {
    const identity = requestIdentity(res);
    if (!identity || req.method === 'OPTIONS') {
      next();
      return;
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const access = fhirAccessFor(method, req.path, isResourceType);
    if (scopesPermit(identity.scopes, access) || access.kind !== 'scoped') {
      next();
      return;
    }
    const target = access.resourceType === '*' ? 'all resource types' : access.resourceType;
    const text =
      access.interaction === 'batch/transaction'
        ? 'Batch and transaction Bundles need every right on every type (a system/*.cruds scope): their entries are not checked one by one'
        : `The access token's scopes do not allow ${access.interaction} on ${target} (needs "${access.permissions}")`;
    res
      .status(403)
      .type('application/fhir+json')
      .send(
        JSON.stringify({
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'forbidden', details: { text } }],
        }),
      );
  };
}
