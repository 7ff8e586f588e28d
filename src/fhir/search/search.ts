/**
 * Runs a parsed FHIR search against the store. Pages are cut with a keyset cursor over the sort
 * keys and the immutable creation sequence, so a `next` link neither repeats nor skips a resource
 * that existed when the search began, whatever is created or deleted in between. The cursor helpers
 * also page AuditEvent searches, which run on the audit store (fhir/search/audit-search.ts).
 */
import { createHash } from 'node:crypto';
import {
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  OperationOutcomeError,
  badRequest,
  formatSearchQuery,
} from '@medplum/core';
import type { Filter, SearchRequest, SortRule, WithId } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../../db/database.ts';
import { buildCondition, sortExpression } from './conditions.ts';
import { SqlParams } from '../../db/sql-params.ts';
import type { ConditionOptions, Owner, SortKind } from './conditions.ts';
import { preparedSearch, requiredRow } from '../../db/database.ts';

export interface SearchPage {
  resources: WithId<Resource>[];
  /** Total matches, when asked for or free to know. */
  total?: number;
  /** Opaque cursor for the next page, when there is one. */
  nextCursor?: string;
  /** Filters that were ignored (unknown parameters in lenient mode). */
  ignored: Filter[];
  /** The sort rules that were applied (unknown ones are ignored in lenient mode). */
  sortRules: SortRule[];
}

interface Cursor {
  /** Fingerprint of the search the cursor belongs to. */
  q: string;
  /** Sort key values of the last row of the previous page. */
  v: (string | null)[];
  /** Its creation sequence number (the final tie-breaker). */
  s: number;
}

export interface SortKey {
  sql: string;
  descending: boolean;
  kind: SortKind;
}

/**
 * Identifies a search independently of parameter order (a `next` link lists them sorted), so a
 * cursor cannot be replayed against another search whose sort keys it does not describe.
 */
export function searchFingerprint(types: string[], filters: Filter[], sortRules: SortRule[]): string {
  const parts = [
    types.join(','),
    ...filters.map((f) => JSON.stringify(['f', f.code, f.operator, f.value])).sort(),
    ...sortRules.map((rule) => JSON.stringify(['s', rule.code, Boolean(rule.descending)])),
  ];
  return createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 22);
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

const CURSOR_VALUE: Record<SortKind, (value: unknown) => boolean> = {
  text: (value) => typeof value === 'string',
  timestamp: (value) =>
    typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/.test(value) && !Number.isNaN(Date.parse(value)),
  numeric: (value) => typeof value === 'string' && /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(value),
};

function isValidCursor(cursor: Cursor, fingerprint: string, keys: SortKey[]): boolean {
  return (
    cursor.q === fingerprint &&
    Array.isArray(cursor.v) &&
    cursor.v.length === keys.length &&
    cursor.v.every((value, i) => {
      const key = keys[i];
      return key !== undefined && (value === null || CURSOR_VALUE[key.kind](value));
    }) &&
    Number.isSafeInteger(cursor.s) &&
    cursor.s > 0
  );
}

export function decodeCursor(text: string, fingerprint: string, keys: SortKey[]): Cursor {
  let cursor: Cursor | undefined;
  try {
    cursor = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Cursor;
  } catch {
    // reported below
  }
  if (cursor && typeof cursor === 'object' && isValidCursor(cursor, fingerprint, keys)) {
    return cursor;
  }
  throw new OperationOutcomeError(
    badRequest('Invalid _cursor: it belongs to another search or was altered', '_cursor'),
  );
}

/** Rows strictly after the cursor in (keys…, seq) order, with NULLs last in both directions. */
export function keysetCondition(keys: SortKey[], cursor: Cursor, params: SqlParams): string {
  const alternatives: string[] = [];
  const equalSoFar: string[] = [];
  keys.forEach((key, i) => {
    const value = cursor.v[i];
    if (value === null) {
      // After a NULL only other NULLs (with larger later keys) follow.
      equalSoFar.push(`${key.sql} IS NULL`);
      return;
    }
    const p = params.add(value);
    const after = key.descending ? `${key.sql} < ${p}` : `${key.sql} > ${p}`;
    alternatives.push([...equalSoFar, `(${after} OR ${key.sql} IS NULL)`].join(' AND '));
    equalSoFar.push(`${key.sql} = ${p}`);
  });
  alternatives.push([...equalSoFar, `r.seq > ${params.add(cursor.s)}`].join(' AND '));
  return `(${alternatives.map((a) => `(${a})`).join(' OR ')})`;
}

export function pageSize(request: SearchRequest): number {
  const count = request.count;
  if (count === undefined) {
    return DEFAULT_SEARCH_COUNT;
  }
  if (count === null || !Number.isInteger(count) || count < 0) {
    throw new OperationOutcomeError(badRequest('_count must be a non-negative integer', '_count'));
  }
  return Math.min(count, DEFAULT_MAX_SEARCH_COUNT);
}

export function toCursorValue(value: unknown): string | null {
  if (value === null || value === undefined) {
    return null;
  }
  return value instanceof Date ? value.toISOString() : String(value);
}

export interface SearchOptions extends ConditionOptions {
  /** An extra condition on the resource row (a person's access policy), AND-ed with the search's. */
  restrict?: (params: SqlParams, alias: string) => string;
}

/** Executes one page of a search. */
export async function runSearch(db: Queryable, request: SearchRequest, options: SearchOptions): Promise<SearchPage> {
  const params = new SqlParams();
  const ignored: Filter[] = [];
  const conditionOptions: ConditionOptions = { ...options, ignored };
  const types = request.types && request.types.length > 0 ? request.types : [request.resourceType];
  // With one type, the type is a constant in every index subquery, so PostgreSQL can use the
  // (resource_type, param, value…) indexes; `= ANY(array)` would hide it and force a scan.
  const [firstType = request.resourceType] = types;
  const typeSql = types.length === 1 ? params.add(firstType) : 'r.resource_type';
  const owner: Owner = { resourceType: firstType, typeSql, idSql: 'r.id', rowAlias: 'r' };

  const where: string[] = [
    types.length === 1 ? `r.resource_type = ${typeSql}` : `r.resource_type = ANY(${params.add(types)}::text[])`,
    'NOT r.deleted',
  ];
  for (const filter of request.filters ?? []) {
    const condition = buildCondition(filter, owner, params, conditionOptions);
    if (condition) {
      where.push(condition);
    }
  }
  if (options.restrict) {
    where.push(options.restrict(params, 'r'));
  }

  const count = pageSize(request);
  const wantTotal = request.total === 'accurate' || request.total === 'estimate';
  let total: number | undefined;
  if (wantTotal || count === 0) {
    const countParams = params.values.slice();
    const result = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM resource r WHERE ${where.join(' AND ')}`,
      countParams,
    );
    total = requiredRow(result, 'the search count').n;
  }
  if (count === 0) {
    return { resources: [], total, ignored, sortRules: [] };
  }

  const keys: SortKey[] = [];
  const sortRules: SortRule[] = [];
  for (const rule of request.sortRules ?? []) {
    const expression = sortExpression(rule.code, Boolean(rule.descending), owner, params);
    if (!expression) {
      if (options.strict) {
        throw new OperationOutcomeError(badRequest(`Unknown sort parameter "${rule.code}"`, '_sort'));
      }
      continue;
    }
    keys.push({ ...expression, descending: Boolean(rule.descending) });
    sortRules.push(rule);
  }
  const used = (request.filters ?? []).filter((filter) => !ignored.includes(filter));
  const fingerprint = searchFingerprint(types, used, sortRules);
  if (request.cursor) {
    where.push(keysetCondition(keys, decodeCursor(request.cursor, fingerprint, keys), params));
  }
  const select = ['r.id', 'r.content', 'r.seq', ...keys.map((key, i) => `${key.sql} AS k${i}`)];
  const order = [...keys.map((key) => `${key.sql} ${key.descending ? 'DESC' : 'ASC'} NULLS LAST`), 'r.seq ASC'];
  const offset = request.offset && request.offset > 0 && !request.cursor ? ` OFFSET ${params.add(request.offset)}` : '';
  const sql =
    `SELECT ${select.join(', ')} FROM resource r WHERE ${where.join(' AND ')} ` +
    `ORDER BY ${order.join(', ')} LIMIT ${params.add(count + 1)}${offset}`;
  // A person's search carries the access condition, whose planning cost more than the rest of a
  // selective search (preparedSearch).
  const result = await db.query<Record<string, unknown>>(options.restrict ? preparedSearch(sql) : sql, params.values);

  return { ...pageOf(result.rows, { request, count, keys, fingerprint, total }), ignored, sortRules };
}

/**
 * A page from the rows of a keyset query that asked for `count + 1` rows (each with `content`, `seq`
 * and the sort keys as `k0`, `k1`, …): the resources, the cursor of the next page when there is one,
 * and the total when it is free (a first page that is the only one).
 */
export function pageOf(
  fetched: readonly Record<string, unknown>[],
  page: {
    request: SearchRequest;
    count: number;
    keys: readonly SortKey[];
    fingerprint: string;
    total: number | undefined;
  },
): { resources: WithId<Resource>[]; total: number | undefined; nextCursor: string | undefined } {
  const rows = fetched.slice(0, page.count);
  const resources = rows.map((row) => JSON.parse(row.content as string) as WithId<Resource>);
  let nextCursor: string | undefined;
  let total = page.total;
  if (fetched.length > page.count) {
    const last = rows.at(-1);
    if (last === undefined) {
      throw new Error('a page is at least one resource long');
    }
    nextCursor = encodeCursor({
      q: page.fingerprint,
      v: page.keys.map((_, i) => toCursorValue(last[`k${i}`])),
      s: Number(last.seq),
    });
  } else if (total === undefined && !page.request.cursor && !page.request.offset) {
    total = rows.length;
  }
  return { resources, total, nextCursor };
}

/**
 * The query string of a search's self, first and next links. formatSearchQuery leaves out _summary
 * and writes _elements as Medplum's _fields; a `next` link must keep both, or page two would
 * return whole resources.
 */
export function searchLinkQuery(request: SearchRequest): string {
  const query = formatSearchQuery({ ...request, fields: undefined });
  const subset = [
    ...(request.fields ? [`_elements=${request.fields.map(encodeURIComponent).join(',')}`] : []),
    ...(request.summary ? [`_summary=${request.summary}`] : []),
  ];
  if (subset.length === 0) {
    return query;
  }
  return `${query}${query ? '&' : '?'}${subset.join('&')}`;
}
