/**
 * `_summary` and `_elements` (R4 search §3.1.1.5.8–9): return part of each resource, marked with
 * the SUBSETTED tag so that no client mistakes it for the whole.
 */
import type { Resource } from '@medplum/fhirtypes';
import { getMandatoryElements, getSummaryElements } from './definitions.ts';

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };
const ALWAYS = ['resourceType', 'id', 'meta'];

export interface SubsetRequest {
  summary?: string;
  elements?: string[];
}

function keepOnly(resource: Resource, keep: (key: string) => boolean): Resource {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (ALWAYS.includes(key) || keep(key)) {
      result[key] = value;
    }
  }
  const meta = { ...resource.meta, tag: [...(resource.meta?.tag ?? []), SUBSETTED] };
  return { ...(result as unknown as Resource), meta };
}

const choicePrefix = (key: string): string => key.replace(/[A-Z].*$/, '');

/** Applies _summary/_elements to one resource; returns it unchanged when neither asks for a subset. */
export function subsetResource(resource: Resource, request: SubsetRequest): Resource {
  const summary = request.summary;
  if (request.elements && request.elements.length > 0) {
    const wanted = new Set(request.elements.map((element) => element.split('.')[0]));
    return keepOnly(resource, (key) => wanted.has(key) || wanted.has(choicePrefix(key)));
  }
  switch (summary) {
    case 'true': {
      const names = getSummaryElements(resource.resourceType);
      return keepOnly(resource, (key) => names.has(key) || names.has(choicePrefix(key)));
    }
    case 'text':
      return keepOnly(resource, (key) => key === 'text' || getMandatoryElements(resource.resourceType).has(key));
    case 'data':
      return keepOnly(resource, (key) => key !== 'text');
    default:
      return resource;
  }
}
