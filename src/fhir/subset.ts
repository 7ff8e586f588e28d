/**
 * `_summary` and `_elements` (R4 search §3.1.1.5.8–9): return part of each resource, marked with
 * the SUBSETTED tag so that no client mistakes it for the whole.
 */
import { tryGetDataType } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { getMandatoryElements, getSummaryElements } from './definitions.ts';

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };
const ALWAYS = ['resourceType', 'id', 'meta'];

export interface SubsetRequest {
  summary?: string;
  elements?: string[];
}

function keepOnly(resource: Resource, keep: (element: string) => boolean): Resource {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (ALWAYS.includes(key) || keep(elementName(resource.resourceType, key))) {
      result[key] = value;
    }
  }
  const meta = { ...resource.meta, tag: [...(resource.meta?.tag ?? []), SUBSETTED] };
  return { ...(result as unknown as Resource), meta };
}

const choiceKeys = new Map<string, Map<string, string>>();

/** JSON keys of a type's choice elements and the element each belongs to: `multipleBirthInteger` → `multipleBirth`. */
function choiceKeysOf(resourceType: string): Map<string, string> {
  let keys = choiceKeys.get(resourceType);
  if (!keys) {
    keys = new Map();
    for (const [name, element] of Object.entries(tryGetDataType(resourceType)?.elements ?? {})) {
      if (name.endsWith('[x]')) {
        const base = name.slice(0, -3);
        for (const { code } of element.type) {
          keys.set(base + code.charAt(0).toUpperCase() + code.slice(1), base);
        }
      }
    }
    choiceKeys.set(resourceType, keys);
  }
  return keys;
}

/** The element a top-level JSON key carries; `_birthDate` (a primitive's extensions) goes with `birthDate`. */
function elementName(resourceType: string, key: string): string {
  const name = key.startsWith('_') ? key.slice(1) : key;
  return choiceKeysOf(resourceType).get(name) ?? name;
}

/** Applies _summary/_elements to one resource; returns it unchanged when neither asks for a subset. */
export function subsetResource(resource: Resource, request: SubsetRequest): Resource {
  const summary = request.summary;
  if (request.elements && request.elements.length > 0) {
    // Servers SHOULD return the mandatory elements whether they are asked for or not (R4 search, _elements).
    const wanted = new Set([
      ...request.elements.map((element) => element.split('.')[0]),
      ...getMandatoryElements(resource.resourceType),
    ]);
    return keepOnly(resource, (element) => wanted.has(element));
  }
  switch (summary) {
    case 'true': {
      const names = getSummaryElements(resource.resourceType);
      return keepOnly(resource, (element) => names.has(element));
    }
    case 'text':
      return keepOnly(
        resource,
        (element) => element === 'text' || getMandatoryElements(resource.resourceType).has(element),
      );
    case 'data':
      return keepOnly(resource, (element) => element !== 'text');
    default:
      return resource;
  }
}
