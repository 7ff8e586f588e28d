/**
 * AuditEvent read and search over the audit store (table audit_event, migration 010), for the FHIR
 * repository (fhir/repository.ts routes every AuditEvent read and search here). The parameters an
 * auditor uses: _id, date and _lastUpdated (both `recorded`, with every R4 prefix), patient, agent
 * (and agent:identifier), entity (a `:Type` modifier too), type, subtype, action and outcome, each
 * with comma-separated alternatives and :not; _sort by date, _lastUpdated or _id; _count, _offset,
 * _total. Pages are cut with the same keyset cursor as every other search (fhir/search/search.ts):
 * over the sort keys and the store's own sequence, so paging stays stable while events are added.
 * Any other parameter is unknown here: an error with Prefer: handling=strict, ignored otherwise.
 */
import { Operator, OperationOutcomeError, badRequest, getSearchParameters, splitSearchOnComma } from '@medplum/core';
import type { Filter, SearchRequest, SortRule, WithId } from '@medplum/core';
import type { AuditEvent } from '@medplum/fhirtypes';
import { requiredRow } from '../../db/database.ts';
import type { Queryable } from '../../db/database.ts';
import { SqlParams } from '../../db/sql-params.ts';
import { parseSearchDate } from './values.ts';
import { decodeCursor, keysetCondition, pageOf, pageSize, searchFingerprint } from './search.ts';
import type { SearchPage, SortKey } from './search.ts';
import { localReference } from '../../audit/audit-columns.ts';

export interface AuditSearchOptions {
  /** The hub's base URL: references to `${baseUrl}/fhir/Type/id` are local ones. */
  baseUrl: string;
  /** Prefer: handling=strict */
  strict: boolean;
}

/** The stored JSON of one AuditEvent, or undefined. */
export async function readAuditEvent(db: Queryable, id: string): Promise<WithId<AuditEvent> | undefined> {
  const result = await db.query<{ content: string }>('SELECT content FROM audit_event WHERE id = $1', [id]);
  return result.rows[0] && (JSON.parse(result.rows[0].content) as WithId<AuditEvent>);
}

const fail = (message: string, code: string): OperationOutcomeError =>
  new OperationOutcomeError(badRequest(message, code));

type TokenColumn = { sql: string; array: boolean; codeOnly?: boolean };

const TOKEN_COLUMNS: Record<string, TokenColumn> = {
  type: { sql: 'r.type', array: false },
  subtype: { sql: 'r.subtype', array: true },
  // AuditEvent.action and .outcome are `code`s: a system in the search value is not compared.
  action: { sql: 'r.action', array: false, codeOnly: true },
  outcome: { sql: 'r.outcome', array: false, codeOnly: true },
};

const REFERENCE_COLUMNS: Record<string, string> = { patient: 'r.patient', agent: 'r.agent', entity: 'r.entity' };

/** The AuditEvent search parameters the store answers (the capability statement lists these). */
export const AUDIT_SEARCH_PARAMETERS: ReadonlySet<string> = new Set([
  '_id',
  '_lastUpdated',
  'date',
  ...Object.keys(TOKEN_COLUMNS),
  ...Object.keys(REFERENCE_COLUMNS),
]);

/** SQL true when the `system|code` text `v` matches one search token (R4 search §3.1.1.4.5). */
function tokenMatch(v: string, value: string, p: SqlParams): string {
  const bar = value.indexOf('|');
  if (bar < 0) {
    return `split_part(${v}, '|', 2) = ${p.add(value)}`;
  }
  if (bar === value.length - 1) {
    return `split_part(${v}, '|', 1) = ${p.add(value.slice(0, bar))}`;
  }
  return `${v} = ${p.add(value)}`;
}

function negatable(filter: Filter, condition: string): string {
  if (filter.operator === Operator.NOT || filter.operator === Operator.NOT_EQUALS) {
    return `NOT (${condition})`;
  }
  if (filter.operator !== Operator.EQUALS && filter.operator !== Operator.EXACT) {
    throw fail(`Modifier :${filter.operator} is not supported on AuditEvent ${filter.code}`, filter.code);
  }
  return condition;
}

function tokenCondition(filter: Filter, column: TokenColumn, p: SqlParams): string {
  const values = splitSearchOnComma(filter.value);
  if (column.codeOnly) {
    return negatable(filter, `${column.sql} = ANY(${p.add(values.map((v) => v.slice(v.indexOf('|') + 1)))}::text[])`);
  }
  const exact = values.every((v) => v.indexOf('|') > 0 && !v.endsWith('|')) || values.every((v) => v.startsWith('|'));
  if (exact) {
    const list = `${p.add(values)}::text[]`;
    return negatable(filter, column.array ? `${column.sql} && ${list}` : `${column.sql} = ANY(${list})`);
  }
  const [only, ...more] = values;
  const any = (v: string): string =>
    only !== undefined && more.length === 0
      ? tokenMatch(v, only, p)
      : `(${values.map((value) => tokenMatch(v, value, p)).join(' OR ')})`;
  return negatable(
    filter,
    column.array ? `EXISTS (SELECT 1 FROM unnest(${column.sql}) AS t(v) WHERE ${any('t.v')})` : any(column.sql),
  );
}

/** The stored forms a reference search value matches: `Type/id` (a bare id: each allowed type), or as written. */
function referenceValues(filter: Filter, value: string, baseUrl: string): string[] {
  const fhirBase = `${baseUrl}/fhir/`;
  const local = value.startsWith(fhirBase) ? value.slice(fhirBase.length) : value;
  const typeModifier =
    filter.operator !== Operator.EQUALS && filter.operator !== Operator.NOT && filter.operator !== Operator.NOT_EQUALS
      ? filter.operator
      : undefined;
  if (!local.includes('/') && !local.includes(':')) {
    const targets = typeModifier
      ? [typeModifier]
      : filter.code === 'patient'
        ? ['Patient']
        : (getSearchParameters('AuditEvent')?.[filter.code]?.target ?? []);
    return targets.map((type) => `${type}/${local}`);
  }
  const reference = localReference(local);
  if (typeModifier && !reference.startsWith(`${typeModifier}/`)) {
    return [];
  }
  return [reference];
}

function referenceCondition(filter: Filter, column: string, p: SqlParams, baseUrl: string): string {
  const values = splitSearchOnComma(filter.value);
  if (filter.operator === Operator.IDENTIFIER) {
    if (filter.code !== 'agent') {
      throw fail(`Modifier :identifier is supported on AuditEvent agent only`, filter.code);
    }
    return tokenCondition({ ...filter, operator: Operator.EQUALS }, { sql: 'r.agent_identifier', array: true }, p);
  }
  const typed =
    filter.operator !== Operator.EQUALS && filter.operator !== Operator.NOT && filter.operator !== Operator.NOT_EQUALS;
  if (typed && !/^[A-Z][A-Za-z]+$/.test(filter.operator)) {
    throw fail(`Modifier :${filter.operator} is not supported on AuditEvent ${filter.code}`, filter.code);
  }
  const references = [...new Set(values.flatMap((value) => referenceValues(filter, value, baseUrl)))];
  const overlap = `${column} && ${p.add(references)}::text[]`;
  return typed ? overlap : negatable(filter, overlap);
}

/** `recorded` (an instant) against a search date's range, per the R4 prefixes. */
function dateCondition(filter: Filter, p: SqlParams): string {
  const parts = splitSearchOnComma(filter.value).map((value) => {
    const range = parseSearchDate(value, filter.code);
    const lo = (): string => `${p.add(range.low)}::timestamptz`;
    const hi = (): string => `${p.add(range.high)}::timestamptz`;
    switch (filter.operator) {
      case Operator.EQUALS:
      case Operator.EXACT:
      case Operator.APPROXIMATELY:
      case Operator.NOT_EQUALS:
      case Operator.NOT:
        return `r.recorded BETWEEN ${lo()} AND ${hi()}`;
      case Operator.GREATER_THAN:
      case Operator.STARTS_AFTER:
        return `r.recorded > ${hi()}`;
      case Operator.GREATER_THAN_OR_EQUALS:
        return `r.recorded >= ${lo()}`;
      case Operator.LESS_THAN:
      case Operator.ENDS_BEFORE:
        return `r.recorded < ${lo()}`;
      case Operator.LESS_THAN_OR_EQUALS:
        return `r.recorded <= ${hi()}`;
      default:
        throw fail(`Prefix or modifier "${filter.operator}" is not supported for ${filter.code}`, filter.code);
    }
  });
  const [only, ...more] = parts;
  const any = only !== undefined && more.length === 0 ? only : `(${parts.join(' OR ')})`;
  return filter.operator === Operator.NOT_EQUALS || filter.operator === Operator.NOT ? `NOT ${any}` : any;
}

/** The SQL condition of one filter, or undefined for one this store does not know. */
function condition(filter: Filter, p: SqlParams, options: AuditSearchOptions): string | undefined {
  if (filter.code === '_id') {
    return negatable(filter, `r.id = ANY(${p.add(splitSearchOnComma(filter.value))}::text[])`);
  }
  if (filter.code === 'date' || filter.code === '_lastUpdated') {
    return dateCondition(filter, p);
  }
  const token = TOKEN_COLUMNS[filter.code];
  if (token) {
    return tokenCondition(filter, token, p);
  }
  const reference = REFERENCE_COLUMNS[filter.code];
  if (reference) {
    return referenceCondition(filter, reference, p, options.baseUrl);
  }
  return undefined;
}

const SORT_KEYS: Record<string, Omit<SortKey, 'descending'>> = {
  date: { sql: 'r.recorded', kind: 'timestamp' },
  _lastUpdated: { sql: 'r.recorded', kind: 'timestamp' },
  _id: { sql: 'r.id', kind: 'text' },
};

/** One page of an AuditEvent search. */
export async function searchAuditEvents(
  db: Queryable,
  request: SearchRequest,
  options: AuditSearchOptions,
): Promise<SearchPage> {
  const p = new SqlParams();
  const ignored: Filter[] = [];
  const where: string[] = [];
  for (const filter of request.filters ?? []) {
    const sql = condition(filter, p, options);
    if (sql !== undefined) {
      where.push(sql);
    } else if (options.strict) {
      throw fail(`Search parameter "${filter.code}" is not supported for AuditEvent`, filter.code);
    } else {
      ignored.push(filter);
    }
  }
  const whereSql = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  const count = pageSize(request);
  let total: number | undefined;
  if (request.total === 'accurate' || request.total === 'estimate' || count === 0) {
    const result = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event r ${whereSql}`,
      p.values.slice(),
    );
    total = requiredRow(result, 'the audit search count').n;
  }
  if (count === 0) {
    return { resources: [], total, ignored, sortRules: [] };
  }

  const keys: SortKey[] = [];
  const sortRules: SortRule[] = [];
  for (const rule of request.sortRules ?? []) {
    const key = SORT_KEYS[rule.code];
    if (!key) {
      if (options.strict) {
        throw fail(`Unknown sort parameter "${rule.code}" for AuditEvent`, '_sort');
      }
      continue;
    }
    keys.push({ ...key, descending: Boolean(rule.descending) });
    sortRules.push(rule);
  }
  const used = (request.filters ?? []).filter((filter) => !ignored.includes(filter));
  const fingerprint = searchFingerprint(['AuditEvent'], used, sortRules);
  if (request.cursor) {
    where.push(keysetCondition(keys, decodeCursor(request.cursor, fingerprint, keys), p));
  }
  const select = ['r.content', 'r.seq', ...keys.map((key, i) => `${key.sql} AS k${i}`)];
  const order = [...keys.map((key) => `${key.sql} ${key.descending ? 'DESC' : 'ASC'}`), 'r.seq ASC'];
  const offset = request.offset && request.offset > 0 && !request.cursor ? ` OFFSET ${p.add(request.offset)}` : '';
  const result = await db.query<Record<string, unknown>>(
    `SELECT ${select.join(', ')} FROM audit_event r ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY ${order.join(', ')} LIMIT ${p.add(count + 1)}${offset}`,
    p.values,
  );
  return { ...pageOf(result.rows, { request, count, keys, fingerprint, total }), ignored, sortRules };
}
