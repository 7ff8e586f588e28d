/**
 * The FHIR interaction router: @medplum/fhir-router's routes (CRUD, search, batch/transaction)
 * plus the type- and system-level history it does not route.
 */
import { allOk } from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import type { FhirRequest, FhirRepository, FhirResponse } from '@medplum/fhir-router';
import type { HubRepository } from './repository.ts';

function historyOptions(req: FhirRequest): { since?: string; count?: number; offset?: number } {
  const single = (name: string): string | undefined => {
    const value = req.query[name];
    return Array.isArray(value) ? value[value.length - 1] : value;
  };
  const number = (name: string): number | undefined => {
    const text = single(name);
    return text === undefined ? undefined : Number.parseInt(text, 10) || 0;
  };
  return { since: single('_since'), count: number('_count'), offset: number('_offset') };
}

async function typeHistory(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  return [allOk, await (repo as HubRepository).readChanges(req.params.resourceType, historyOptions(req))];
}

async function systemHistory(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  return [allOk, await (repo as HubRepository).readChanges(undefined, historyOptions(req))];
}

export function createFhirRouter(): FhirRouter {
  const router = new FhirRouter();
  router.add('GET', ':resourceType/_history', typeHistory, 'history-type');
  router.add('GET', '_history', systemHistory, 'history-system');
  return router;
}
