/**
 * Turns a resource into the rows of the search index tables, one row per value of each
 * search parameter, using the R4 SearchParameter FHIRPath expressions.
 */
import {
  convertToSearchableDates,
  convertToSearchableNumbers,
  convertToSearchableQuantities,
  convertToSearchableReferences,
  convertToSearchableStrings,
  convertToSearchableTokens,
  convertToSearchableUris,
  evalFhirPathTyped,
  getSearchParameterDetails,
  toTypedValue,
} from '@medplum/core';
import type { Resource, SearchParameter } from '@medplum/fhirtypes';
import { getSupportedSearchParameters } from './definitions.ts';
import { mapReferences } from './references.ts';
import { parseReference } from '../db/index-rows.ts';
import type { SearchIndexRows } from '../db/index-rows.ts';

export const INDEX_TABLES = ['token', 'string', 'reference', 'date', 'number', 'uri'] as const;
export type IndexTable = (typeof INDEX_TABLES)[number];

/** The index table that holds a search parameter's values. */
export function indexTableFor(param: SearchParameter): IndexTable | undefined {
  switch (param.type) {
    case 'token':
      return 'token';
    case 'string':
      return 'string';
    case 'reference':
      return 'reference';
    case 'date':
      return 'date';
    case 'number':
    case 'quantity':
      return 'number';
    case 'uri':
      return 'uri';
    default:
      return undefined;
  }
}

// convertToSearchableTokens reports display texts under this pseudo-system.
const TEXT_SYSTEM = 'urn:hub:text';
// _id and _lastUpdated are columns of the resource table, not index rows.
const COLUMN_PARAMETERS = new Set(['_id', '_lastUpdated']);

/** Lower case, without diacritics: the form FHIR string search compares. */
export function normalizeString(value: string): string {
  return value
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase();
}

function details(resourceType: string, param: SearchParameter): ReturnType<typeof getSearchParameterDetails> {
  return getSearchParameterDetails(resourceType, param);
}

/** Computes every index row of a resource. */
export function extractSearchIndex(resource: Resource, fhirBase?: string): SearchIndexRows {
  const rows: SearchIndexRows = { token: [], string: [], reference: [], date: [], number: [], uri: [] };
  const typed = [toTypedValue(fhirBase ? localizeReferences(resource, fhirBase) : resource)];
  for (const [code, param] of getSupportedSearchParameters(resource.resourceType)) {
    if (COLUMN_PARAMETERS.has(code)) {
      continue;
    }
    const values = evalFhirPathTyped(details(resource.resourceType, param).parsedExpression, typed);
    if (values.length === 0) {
      continue;
    }
    switch (param.type) {
      case 'token':
        addIdentifierTypes(rows, code, values);
        for (const token of convertToSearchableTokens(values, { textSearchSystem: TEXT_SYSTEM })) {
          if (token.system === TEXT_SYSTEM) {
            if (token.value) {
              rows.token.push([code, null, null, normalizeString(token.value)]);
            }
          } else if (token.value !== undefined || token.system !== undefined) {
            rows.token.push([code, token.system ?? null, token.value ?? null, null]);
          }
        }
        break;
      case 'string':
        for (const value of searchableStrings(values)) {
          rows.string.push([code, normalizeString(value), value]);
        }
        break;
      case 'reference':
        addReferenceIdentifiers(rows, code, values);
        for (const reference of convertToSearchableReferences(values)) {
          const { targetType, targetId } = parseReference(reference);
          rows.reference.push([code, targetType, targetId, reference]);
        }
        break;
      case 'date':
        for (const period of convertToSearchableDates(values)) {
          rows.date.push([code, period.start ?? null, period.end ?? null]);
        }
        break;
      case 'number':
        for (const [low, high] of convertToSearchableNumbers(values)) {
          rows.number.push([code, low ?? null, high ?? null, null, null]);
        }
        break;
      case 'quantity':
        for (const quantity of convertToSearchableQuantities(values)) {
          if (quantity.value !== undefined) {
            rows.number.push([
              code,
              quantity.value,
              quantity.value,
              quantity.system ?? null,
              quantity.code ?? quantity.unit ?? null,
            ]);
          }
        }
        break;
      case 'uri':
        for (const uri of convertToSearchableUris(values)) {
          rows.uri.push([code, uri]);
        }
        break;
      default:
        break;
    }
  }
  return withoutDuplicates(rows);
}

/**
 * Identical rows match the same searches, and a resource can have very many: an ImagingStudy has
 * one `dicom-class` token per instance, nearly all the same, and is rewritten on every stored one.
 */
export function withoutDuplicates(rows: SearchIndexRows): SearchIndexRows {
  const unique = <Row extends readonly unknown[]>(list: Row[]): Row[] => {
    const seen = new Set<string>();
    return list.filter((row) => {
      const key = JSON.stringify(row);
      if (seen.has(key)) {
        return false;
      }
      seen.add(key);
      return true;
    });
  };
  return {
    token: unique(rows.token),
    string: unique(rows.string),
    reference: unique(rows.reference),
    date: unique(rows.date),
    number: unique(rows.number),
    uri: unique(rows.uri),
  };
}

type Typed = ReturnType<typeof toTypedValue>;

// The string fields of a HumanName and an Address that a `name` or `address` search may match.
const PART_FIELDS = [
  'text',
  'family',
  'given',
  'prefix',
  'suffix',
  'line',
  'city',
  'district',
  'state',
  'postalCode',
  'country',
];

/**
 * The strings a string parameter matches. A HumanName or Address matches on any of its parts
 * (R4 Patient `name`, `address`), so `name=smith` finds "Ann Smith": each part is indexed as
 * well as the whole.
 */
function searchableStrings(values: Typed[]): string[] {
  const strings = new Set(convertToSearchableStrings(values));
  for (const { type, value } of values) {
    if (type !== 'HumanName' && type !== 'Address') {
      continue;
    }
    const fields = value as Record<string, unknown>;
    for (const part of PART_FIELDS.flatMap((field) => fields[field] ?? [])) {
      if (typeof part === 'string' && part.trim() !== '') {
        strings.add(part);
      }
    }
  }
  return [...strings];
}

/** Rows for `identifier:of-type=system|code|value`, kept under the pseudo-parameter `code:of-type`. */
function addIdentifierTypes(rows: SearchIndexRows, code: string, values: Typed[]): void {
  for (const { type, value } of values) {
    if (type !== 'Identifier') {
      continue;
    }
    const identifier = value as { value?: string; type?: { coding?: { system?: string; code?: string }[] } };
    for (const coding of identifier.type?.coding ?? []) {
      if (identifier.value && coding.code) {
        rows.token.push([`${code}:of-type`, null, `${coding.system ?? ''}|${coding.code}|${identifier.value}`, null]);
      }
    }
  }
}

/** Rows for `subject:identifier=system|value`, kept under the pseudo-parameter `code:identifier`. */
function addReferenceIdentifiers(rows: SearchIndexRows, code: string, values: Typed[]): void {
  for (const { value } of values) {
    const identifier = (value as { identifier?: { system?: string; value?: string } } | undefined)?.identifier;
    if (identifier?.value) {
      rows.token.push([`${code}:identifier`, identifier.system ?? null, identifier.value, null]);
    }
  }
}

/**
 * A copy of the resource whose absolute references to this server (`{base}/Patient/1`) read as
 * local ones (`Patient/1`), so that FHIRPath's resolve() in expressions such as
 * `subject.where(resolve() is Patient)` sees their type. The stored resource keeps its own form.
 */
export function localizeReferences<T extends Resource>(resource: T, fhirBase: string): T {
  const prefix = fhirBase.endsWith('/') ? fhirBase : `${fhirBase}/`;
  if (!JSON.stringify(resource).includes(prefix)) {
    return resource;
  }
  return mapReferences(resource, (reference) =>
    reference.startsWith(prefix) ? reference.slice(prefix.length) : reference,
  );
}
