/**
 * FHIR search filters → SQL conditions over the resource table and the sp_* index tables.
 * Every value reaches PostgreSQL as a bind parameter, never spliced into the SQL text.
 */
import {
  Operator,
  OperationOutcomeError,
  badRequest,
  getSearchParameters,
  parseParameter,
  splitSearchOnComma,
} from '@medplum/core';
import type { Filter } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { getSupportedSearchParameters } from '../definitions.ts';
import { indexTableFor, normalizeString } from '../indexer.ts';
import type { IndexTable } from '../indexer.ts';
import type { SqlParams } from '../../db/sql-params.ts';
import { escapeLike, parseSearchDate, parseSearchNumber } from './values.ts';
import type { SearchNumber } from './values.ts';

/** Collects bind parameters and hands out their placeholders. */
/** The resource a condition is about: its type (known when planning) and SQL for its type and id. */
export interface Owner {
  resourceType: string;
  typeSql: string;
  idSql: string;
  /** SQL for its resource row when it is a column set (`r`), for _lastUpdated. */
  rowAlias?: string;
}

export interface ConditionOptions {
  /** The hub's base URL, so absolute references to ourselves match local ones. */
  baseUrl: string;
  /** Unknown parameters are errors (Prefer: handling=strict) instead of being ignored. */
  strict: boolean;
  /** Receives the filters that were ignored, for the self link. */
  ignored?: Filter[];
  /**
   * A person's access policy as a condition on a `resource` row: a chain's target and a `_has`
   * source count only when it holds, so that a search cannot test what the person may not see.
   */
  visible?: (params: SqlParams, alias: string) => string;
}

function unsupported(message: string, code?: string): OperationOutcomeError {
  return new OperationOutcomeError(badRequest(message, code));
}

/** SQL that is true when the owner's index table has a row for `param` matching `match`. */
function exists(
  table: IndexTable,
  owner: Owner,
  param: string,
  params: SqlParams,
  match: (a: string) => string,
): string {
  const a = params.alias('i');
  return (
    `EXISTS (SELECT 1 FROM sp_${table} ${a} WHERE ${a}.resource_type = ${owner.typeSql} AND ` +
    `${a}.resource_id = ${owner.idSql} AND ${a}.param = ${params.add(param)} AND (${match(a)}))`
  );
}

/** The conditions OR-ed (one needs no parentheses). */
function anyOf(parts: readonly string[]): string {
  const [only, ...more] = parts;
  return only !== undefined && more.length === 0 ? only : `(${parts.join(' OR ')})`;
}

/** Builds the SQL condition for one filter on `owner`; returns undefined for an ignored filter. */
export function buildCondition(
  filter: Filter,
  owner: Owner,
  params: SqlParams,
  options: ConditionOptions,
): string | undefined {
  if (filter.code.startsWith('_has:')) {
    return reverseChain(filter, owner, params, options);
  }
  const chainAt = chainSeparator(filter.code);
  if (chainAt > 0) {
    return chain(filter, owner, params, options, chainAt);
  }
  if (filter.code === '_id') {
    return idCondition(filter, owner, params);
  }
  if (filter.code === '_lastUpdated') {
    return lastUpdatedCondition(filter, owner, params);
  }
  const param = getSupportedSearchParameters(owner.resourceType).get(filter.code);
  const table = param && indexTableFor(param);
  if (!param || !table) {
    if (options.strict) {
      throw unsupported(`Unknown search parameter "${filter.code}" for ${owner.resourceType}`, filter.code);
    }
    options.ignored?.push(filter);
    return undefined;
  }
  if (filter.operator === Operator.MISSING || filter.operator === Operator.PRESENT) {
    if (filter.value !== 'true' && filter.value !== 'false') {
      throw unsupported(`:${filter.operator} takes true or false, not "${filter.value}"`, filter.code);
    }
    const wantMissing = (filter.operator === Operator.MISSING) === (filter.value === 'true');
    const any = exists(table, owner, filter.code, params, () => 'true');
    return wantMissing ? `NOT ${any}` : any;
  }
  switch (param.type) {
    case 'token':
      return tokenCondition(filter, param, owner, params);
    case 'string':
      return stringCondition(filter, owner, params);
    case 'reference':
      return referenceCondition(filter, param, owner, params, options);
    case 'date':
      return dateCondition(filter, owner, params);
    case 'number':
    case 'quantity':
      return numberCondition(filter, param, owner, params);
    case 'uri':
      return uriCondition(filter, owner, params);
    default:
      throw unsupported(`Search parameter ${filter.code} of type ${param.type} is not supported`, filter.code);
  }
}

/** Position of the "." that starts a chain (`subject:Patient.name`), ignoring dots inside URLs. */
function chainSeparator(code: string): number {
  const dot = code.indexOf('.');
  return dot > 0 && !code.startsWith('_') ? dot : -1;
}

function idCondition(filter: Filter, owner: Owner, params: SqlParams): string {
  const ids = splitSearchOnComma(filter.value);
  const match = `${owner.idSql} = ANY(${params.add(ids)}::text[])`;
  if (filter.operator === Operator.NOT || filter.operator === Operator.NOT_EQUALS) {
    return `NOT (${match})`;
  }
  if (filter.operator !== Operator.EQUALS && filter.operator !== Operator.EXACT) {
    throw unsupported(`Modifier :${filter.operator} is not supported on _id`, '_id');
  }
  return match;
}

function lastUpdatedCondition(filter: Filter, owner: Owner, params: SqlParams): string {
  const parts = splitSearchOnComma(filter.value).map((value) => {
    const range = parseSearchDate(value, '_lastUpdated');
    return rangeComparison(
      filter.operator,
      'lu.last_updated',
      'lu.last_updated',
      { ...range, cast: '::timestamptz' },
      params,
      '_lastUpdated',
    );
  });
  if (owner.rowAlias) {
    return anyOf(parts.map((p) => p.replaceAll('lu.', `${owner.rowAlias}.`)));
  }
  return `EXISTS (SELECT 1 FROM resource lu WHERE lu.resource_type = ${owner.typeSql} AND lu.id = ${owner.idSql} AND ${anyOf(parts)})`;
}

/** A search value as the range it stands for. */
interface SearchRange {
  low: string | number;
  high: string | number;
  cast: '::timestamptz' | '::numeric';
  /** The high bound itself lies outside the range, as with numbers: `100` is [99.5, 100.5). */
  openHigh?: boolean;
}

/** Compares a stored [low, high] range with a search range per the FHIR R4 prefixes. */
function rangeComparison(
  operator: string,
  lowSql: string,
  highSql: string,
  range: SearchRange,
  params: SqlParams,
  code: string,
): string {
  // Placeholders are added on first use: PostgreSQL cannot type a parameter the SQL never uses.
  let loSql: string | undefined;
  let hiSql: string | undefined;
  const bound = {
    get lo(): string {
      return (loSql ??= `${params.add(range.low)}${range.cast}`);
    },
    get hi(): string {
      return (hiSql ??= `${params.add(range.high)}${range.cast}`);
    },
  };
  const inf = range.cast === '::timestamptz' ? "'-infinity'::timestamptz" : "'-Infinity'::numeric";
  const sup = range.cast === '::timestamptz' ? "'infinity'::timestamptz" : "'Infinity'::numeric";
  const storedLow = `COALESCE(${lowSql}, ${inf})`;
  const storedHigh = `COALESCE(${highSql}, ${sup})`;
  const contained = (): string =>
    `(${storedLow} >= ${bound.lo} AND ${storedHigh} ${range.openHigh ? '<' : '<='} ${bound.hi})`;
  switch (operator) {
    case Operator.EQUALS:
    case Operator.EXACT:
      return contained();
    case Operator.NOT_EQUALS:
    case Operator.NOT:
      return `NOT ${contained()}`;
    case Operator.GREATER_THAN:
      return `${storedHigh} > ${bound.hi}`;
    case Operator.LESS_THAN:
      return `${storedLow} < ${bound.lo}`;
    // ge/le: the range above (below) the search value overlaps the stored one, or the search range contains it.
    case Operator.GREATER_THAN_OR_EQUALS:
      return `(${storedHigh} > ${bound.hi} OR ${contained()})`;
    case Operator.LESS_THAN_OR_EQUALS:
      return `(${storedLow} < ${bound.lo} OR ${contained()})`;
    case Operator.STARTS_AFTER:
      return `${storedLow} > ${bound.hi}`;
    case Operator.ENDS_BEFORE:
      return `${storedHigh} < ${bound.lo}`;
    case Operator.APPROXIMATELY:
      // Overlap with the search range (ap is "approximately the same" and left to the server).
      return `(${storedLow} <= ${bound.hi} AND ${storedHigh} >= ${bound.lo})`;
    default:
      throw unsupported(`Prefix or modifier "${operator}" is not supported for ${code}`, code);
  }
}

function dateCondition(filter: Filter, owner: Owner, params: SqlParams): string {
  const ranges = splitSearchOnComma(filter.value).map((value) => parseSearchDate(value, filter.code));
  const negate = filter.operator === Operator.NOT_EQUALS || filter.operator === Operator.NOT;
  const operator = negate ? Operator.EQUALS : filter.operator;
  const found = exists('date', owner, filter.code, params, (a) =>
    anyOf(
      ranges.map((r) =>
        rangeComparison(operator, `${a}.low`, `${a}.high`, { ...r, cast: '::timestamptz' }, params, filter.code),
      ),
    ),
  );
  return negate ? `NOT ${found}` : found;
}

/** The range a number is compared as: its precision for eq, ±10% for ap, the value itself for the rest. */
function numberRange(operator: string, number: SearchNumber): SearchRange {
  switch (operator) {
    case Operator.EQUALS:
    case Operator.EXACT:
      return { low: number.low, high: number.high, openHigh: true, cast: '::numeric' };
    case Operator.APPROXIMATELY:
      return { low: number.approximateLow, high: number.approximateHigh, cast: '::numeric' };
    default:
      return { low: number.value, high: number.value, cast: '::numeric' };
  }
}

function numberCondition(filter: Filter, param: SearchParameter, owner: Owner, params: SqlParams): string {
  const negate = filter.operator === Operator.NOT_EQUALS || filter.operator === Operator.NOT;
  const operator = negate ? Operator.EQUALS : filter.operator;
  const found = exists('number', owner, filter.code, params, (a) =>
    anyOf(
      splitSearchOnComma(filter.value).map((raw) => {
        const [numberText = raw, system, code] = param.type === 'quantity' ? raw.split('|') : [raw];
        const range = numberRange(operator, parseSearchNumber(numberText, filter.code));
        const parts = [rangeComparison(operator, `${a}.low`, `${a}.high`, range, params, filter.code)];
        if (system) {
          parts.push(`${a}.system = ${params.add(system)}`);
        }
        if (code) {
          parts.push(`${a}.code = ${params.add(code)}`);
        }
        return `(${parts.join(' AND ')})`;
      }),
    ),
  );
  return negate ? `NOT ${found}` : found;
}

function tokenMatch(a: string, value: string, params: SqlParams): string {
  const bar = value.indexOf('|');
  if (bar < 0) {
    return `${a}.value = ${params.add(value)}`;
  }
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (system === '') {
    return `(${a}.system IS NULL AND ${a}.value = ${params.add(code)})`;
  }
  if (code === '') {
    return `${a}.system = ${params.add(system)}`;
  }
  return `(${a}.system = ${params.add(system)} AND ${a}.value = ${params.add(code)})`;
}

function tokenCondition(filter: Filter, param: SearchParameter, owner: Owner, params: SqlParams): string {
  const values = splitSearchOnComma(filter.value);
  switch (filter.operator) {
    case Operator.EQUALS:
    case Operator.EXACT:
      return exists('token', owner, filter.code, params, (a) => anyOf(values.map((v) => tokenMatch(a, v, params))));
    case Operator.NOT:
    case Operator.NOT_EQUALS:
      return `NOT ${exists('token', owner, filter.code, params, (a) => anyOf(values.map((v) => tokenMatch(a, v, params))))}`;
    case Operator.TEXT:
      return exists('token', owner, filter.code, params, (a) =>
        anyOf(values.map((v) => `${a}.display LIKE ${params.add('%' + escapeLike(normalizeString(v)) + '%')}`)),
      );
    case Operator.OF_TYPE: {
      if (!param.expression?.includes('identifier')) {
        throw unsupported(`Modifier :of-type applies only to identifiers`, filter.code);
      }
      // system|code|value: the identifier's type coding and its value (R4 search §3.1.1.4.11).
      return exists('token', owner, `${filter.code}:of-type`, params, (a) =>
        anyOf(values.map((v) => `${a}.value = ${params.add(v)}`)),
      );
    }
    default:
      throw unsupported(`Modifier :${filter.operator} is not supported on token parameter ${filter.code}`, filter.code);
  }
}

function stringCondition(filter: Filter, owner: Owner, params: SqlParams): string {
  const values = splitSearchOnComma(filter.value);
  switch (filter.operator) {
    case Operator.EQUALS:
    case Operator.STARTS_WITH:
      return exists('string', owner, filter.code, params, (a) =>
        anyOf(values.map((v) => `${a}.normalized LIKE ${params.add(escapeLike(normalizeString(v)) + '%')}`)),
      );
    case Operator.CONTAINS:
      return exists('string', owner, filter.code, params, (a) =>
        anyOf(values.map((v) => `${a}.normalized LIKE ${params.add('%' + escapeLike(normalizeString(v)) + '%')}`)),
      );
    case Operator.EXACT:
      return exists('string', owner, filter.code, params, (a) =>
        anyOf(values.map((v) => `${a}.exact = ${params.add(v)}`)),
      );
    case Operator.NOT:
    case Operator.NOT_EQUALS:
      return `NOT ${exists('string', owner, filter.code, params, (a) =>
        anyOf(values.map((v) => `${a}.normalized LIKE ${params.add(escapeLike(normalizeString(v)) + '%')}`)),
      )}`;
    default:
      throw unsupported(
        `Modifier :${filter.operator} is not supported on string parameter ${filter.code}`,
        filter.code,
      );
  }
}

/** :below and :above compare whole path segments: `…/protocols` is not above `…/protocols-old`. */
function uriCondition(filter: Filter, owner: Owner, params: SqlParams): string {
  const values = splitSearchOnComma(filter.value);
  switch (filter.operator) {
    case Operator.EQUALS:
    case Operator.EXACT:
      return exists('uri', owner, filter.code, params, (a) => `${a}.value = ANY(${params.add(values)}::text[])`);
    case Operator.BELOW:
      return exists('uri', owner, filter.code, params, (a) =>
        anyOf(
          values.map((v) => {
            const base = v.replace(/\/+$/, '');
            return `(${a}.value = ANY(${params.add([v, base])}::text[]) OR ${a}.value LIKE ${params.add(escapeLike(base) + '/%')})`;
          }),
        ),
      );
    case Operator.ABOVE:
      return exists('uri', owner, filter.code, params, (a) =>
        anyOf(
          values.map((v) => {
            const value = params.add(v);
            return `(${a}.value = ${value} OR starts_with(${value}, rtrim(${a}.value, '/') || '/'))`;
          }),
        ),
      );
    case Operator.NOT:
      return `NOT ${exists('uri', owner, filter.code, params, (a) => `${a}.value = ANY(${params.add(values)}::text[])`)}`;
    default:
      throw unsupported(`Modifier :${filter.operator} is not supported on uri parameter ${filter.code}`, filter.code);
  }
}

/**
 * SQL that is true when a stored reference points into this server: relative, or an absolute URL
 * under our base. `http://other-ehr/fhir/Patient/1` is not our Patient/1.
 */
function localReference(a: string, params: SqlParams, baseUrl: string): string {
  return `(strpos(${a}.reference, ':') = 0 OR starts_with(${a}.reference, ${params.add(`${baseUrl}/fhir/`)}))`;
}

/** Local form of a reference value: `Type/id`, a bare id, or anything else (URL, urn:uuid). */
function referenceMatch(
  a: string,
  value: string,
  typeModifier: string | undefined,
  params: SqlParams,
  baseUrl: string,
): string {
  let local = value;
  const fhirBase = `${baseUrl}/fhir/`;
  if (local.startsWith(fhirBase)) {
    local = local.slice(fhirBase.length);
  }
  // `Type/id`, or a bare id (no `/`, so no `id` below).
  const [type, id, ...deeper] = local.split('/');
  if (type !== undefined && id !== undefined && deeper.length === 0 && /^[A-Z][A-Za-z]+$/.test(type)) {
    if (typeModifier && typeModifier !== type) {
      return 'false';
    }
    return `(${a}.target_type = ${params.add(type)} AND ${a}.target_id = ${params.add(id)} AND ${localReference(a, params, baseUrl)})`;
  }
  if (id === undefined && !local.includes(':')) {
    const typed = typeModifier ? ` AND ${a}.target_type = ${params.add(typeModifier)}` : '';
    return `(${a}.target_id = ${params.add(local)}${typed} AND ${localReference(a, params, baseUrl)})`;
  }
  return `${a}.reference = ${params.add(value)}`;
}

function referenceCondition(
  filter: Filter,
  param: SearchParameter,
  owner: Owner,
  params: SqlParams,
  options: ConditionOptions,
): string {
  const values = splitSearchOnComma(filter.value);
  if (filter.operator === Operator.IDENTIFIER) {
    return exists('token', owner, `${filter.code}:identifier`, params, (a) =>
      anyOf(values.map((v) => tokenMatch(a, v, params))),
    );
  }
  const negate = filter.operator === Operator.NOT || filter.operator === Operator.NOT_EQUALS;
  let typeModifier: string | undefined;
  if (!negate && filter.operator !== Operator.EQUALS) {
    if (!param.target?.includes(filter.operator as never)) {
      throw unsupported(
        `Modifier :${filter.operator} is not supported on reference parameter ${filter.code}`,
        filter.code,
      );
    }
    typeModifier = filter.operator;
  }
  const found = exists('reference', owner, filter.code, params, (a) =>
    anyOf(values.map((v) => referenceMatch(a, v, typeModifier, params, options.baseUrl))),
  );
  return negate ? `NOT ${found}` : found;
}

/** `subject:Patient.name=x`: resources whose subject is a Patient named x (one level deep). */
function chain(filter: Filter, owner: Owner, params: SqlParams, options: ConditionOptions, dot: number): string {
  const link = filter.code.slice(0, dot);
  const rest = filter.code.slice(dot + 1);
  const [linkCode = link, explicitType] = link.split(':');
  const param = getSupportedSearchParameters(owner.resourceType).get(linkCode);
  if (param?.type !== 'reference') {
    throw unsupported(
      `Chained search needs a reference parameter; "${linkCode}" is not one of ${owner.resourceType}`,
      linkCode,
    );
  }
  const targets = explicitType ? [explicitType] : (param.target ?? []);
  if (explicitType && !param.target?.includes(explicitType as never)) {
    throw unsupported(`${owner.resourceType}.${linkCode} cannot refer to ${explicitType}`, linkCode);
  }
  const [restCode = rest] = rest.split(':');
  const usable = targets.filter(
    (type) => rest.startsWith('_') || rest.includes('.') || getSupportedSearchParameters(type).has(restCode),
  );
  if (usable.length === 0) {
    throw unsupported(`No target of ${owner.resourceType}.${linkCode} has the search parameter "${rest}"`, filter.code);
  }
  if (rest.includes('.') || rest.startsWith('_has:')) {
    throw unsupported('Chained search is supported one level deep', filter.code);
  }
  return exists('reference', owner, linkCode, params, (a) => {
    const targets = anyOf(
      usable.map((type) => {
        const target: Owner = { resourceType: type, typeSql: params.add(type), idSql: `${a}.target_id` };
        const condition = buildCondition(innerFilter(type, rest, filter.value), target, params, {
          ...options,
          strict: true,
        });
        return `(${a}.target_type = ${target.typeSql} AND ${condition ?? 'true'})`;
      }),
    );
    const visible = options.visible
      ? ` AND ${visibleRow(params, options.visible, `${a}.target_type`, `${a}.target_id`)}`
      : '';
    return `${localReference(a, params, options.baseUrl)} AND ${targets}${visible}`;
  });
}

/**
 * The filter at the end of a chain, parsed as its own resource type defines it: the search parser
 * keeps a chained key whole (`subject.birthdate:missing`), so its modifier and value prefix are still raw.
 */
function innerFilter(resourceType: string, key: string, value: string): Filter {
  const colon = key.indexOf(':');
  const code = colon < 0 ? key : key.slice(0, colon);
  const param = getSearchParameters(resourceType)?.[code];
  if (!param) {
    return { code: key, operator: Operator.EQUALS, value };
  }
  return parseParameter(param, Operator.EQUALS, colon < 0 ? '' : key.slice(colon + 1), value);
}

/** True when the resource (type, id) exists, is not deleted and, with `visible`, passes it. */
function visibleRow(params: SqlParams, visible: ConditionOptions['visible'], typeSql: string, idSql: string): string {
  const row = params.alias('v');
  const policy = visible ? ` AND ${visible(params, row)}` : '';
  return `EXISTS (SELECT 1 FROM resource ${row} WHERE ${row}.resource_type = ${typeSql} AND ${row}.id = ${idSql} AND NOT ${row}.deleted${policy})`;
}

/** `_has:Observation:patient:code=x`: resources referred to by an Observation (via patient) with code x. */
function reverseChain(filter: Filter, owner: Owner, params: SqlParams, options: ConditionOptions): string {
  const [, sourceType, linkCode, ...restParts] = filter.code.split(':');
  const rest = restParts.join(':');
  if (!sourceType || !linkCode || !rest) {
    throw unsupported(`Malformed _has parameter "${filter.code}"`, filter.code);
  }
  const link = getSupportedSearchParameters(sourceType).get(linkCode);
  if (link?.type !== 'reference') {
    throw unsupported(`"${linkCode}" is not a reference parameter of ${sourceType}`, filter.code);
  }
  if (rest.startsWith('_has:')) {
    throw unsupported('Reverse chaining (_has) is supported one level deep', filter.code);
  }
  const a = params.alias('h');
  const source: Owner = { resourceType: sourceType, typeSql: `${a}.resource_type`, idSql: `${a}.resource_id` };
  const condition = buildCondition(innerFilter(sourceType, rest, filter.value), source, params, {
    ...options,
    strict: true,
  });
  return (
    `EXISTS (SELECT 1 FROM sp_reference ${a} WHERE ${a}.resource_type = ${params.add(sourceType)} AND ` +
    `${a}.param = ${params.add(linkCode)} AND ${a}.target_type = ${owner.typeSql} AND ${a}.target_id = ${owner.idSql} AND ` +
    `${localReference(a, params, options.baseUrl)} AND ` +
    `${visibleRow(params, options.visible, `${a}.resource_type`, `${a}.resource_id`)} AND ` +
    `${condition ?? 'true'})`
  );
}

/** How a sort key's values compare, so that a cursor's values can be checked before they reach SQL. */
export type SortKind = 'text' | 'timestamp' | 'numeric';

const SORT_KIND: Record<IndexTable, SortKind> = {
  token: 'text',
  string: 'text',
  reference: 'text',
  date: 'timestamp',
  number: 'numeric',
  uri: 'text',
};

/** SQL for the value a sort rule orders by, or undefined for an unknown parameter. */
export function sortExpression(
  code: string,
  descending: boolean,
  owner: Owner,
  params: SqlParams,
): { sql: string; kind: SortKind } | undefined {
  if (code === '_id') {
    return { sql: owner.idSql, kind: 'text' };
  }
  if (code === '_lastUpdated') {
    return { sql: `${owner.rowAlias ?? 'r'}.last_updated`, kind: 'timestamp' };
  }
  const param = getSupportedSearchParameters(owner.resourceType).get(code);
  const table = param && indexTableFor(param);
  if (!param || !table) {
    return undefined;
  }
  const agg = descending ? 'max' : 'min';
  const column: Record<IndexTable, string> = {
    token: 'value',
    string: 'normalized',
    reference: 'reference',
    date: descending ? 'high' : 'low',
    number: descending ? 'high' : 'low',
    uri: 'value',
  };
  const a = params.alias('s');
  const sql =
    `(SELECT ${agg}(${a}.${column[table]}) FROM sp_${table} ${a} WHERE ${a}.resource_type = ${owner.typeSql} ` +
    `AND ${a}.resource_id = ${owner.idSql} AND ${a}.param = ${params.add(code)})`;
  return { sql, kind: SORT_KIND[table] };
}
