/**
 * Runs a parsed FHIR search against the store. Pages are cut with a keyset cursor over the sort
 * keys and the immutable creation sequence, so a `next` link neither repeats nor skips a resource
 * that existed when the search began, whatever is created or deleted in between.
 */
import { DEFAULT_MAX_SEARCH_COUNT, DEFAULT_SEARCH_COUNT, OperationOutcomeError, badRequest } from '@medplum/core';
import type { Filter, SearchRequest, WithId } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../../db/database.ts';
import { SqlParams, buildCondition, sortExpression } from './conditions.ts';
import type { ConditionOptions, Owner } from './conditions.ts';

export interface SearchPage {
  resources: WithId<Resource>[];
  /** Total matches, when asked for or free to know. */
  total?: number;
  /** Opaque cursor for the next page, when there is one. */
  nextCursor?: string;
  /** Filters that were ignored (unknown parameters in lenient mode). */
  ignored: Filter[];
}

interface Cursor {
  /** Sort key values of the last row of the previous page. */
  v: (string | number | null)[];
  /** Its creation sequence number (the final tie-breaker). */
  s: number;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(text: string, keyCount: number): Cursor {
  try {
    const cursor = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Cursor;
    if (Array.isArray(cursor.v) && cursor.v.length === keyCount && Number.isInteger(cursor.s)) {
      return cursor;
    }
  } catch {
    // fall through
  }
  throw new OperationOutcomeError(badRequest('Invalid _cursor: it belongs to another search or was altered', '_cursor'));
}

interface SortKey {
  sql: string;
  descending: boolean;
}

/** Rows strictly after the cursor in (keys…, seq) order, with NULLs last in both directions. */
function keysetCondition(keys: SortKey[], cursor: Cursor, params: SqlParams): string {
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

function pageSize(request: SearchRequest): number {
  const count = request.count;
  if (count === undefined) {
    return DEFAULT_SEARCH_COUNT;
  }
  if (count === null || !Number.isInteger(count) || count < 0) {
    throw new OperationOutcomeError(badRequest('_count must be a non-negative integer', '_count'));
  }
  return Math.min(count, DEFAULT_MAX_SEARCH_COUNT);
}

function toCursorValue(value: unknown): string | number | null {
  if (value === null || value === undefined) {
    return null;
  }
  if (value instanceof Date) {
    return value.toISOString();
  }
  return typeof value === 'number' ? value : String(value);
}

/** Executes one page of a search. */
export async function runSearch(db: Queryable, request: SearchRequest, options: ConditionOptions): Promise<SearchPage> {
  const params = new SqlParams();
  const ignored: Filter[] = [];
  const conditionOptions: ConditionOptions = { ...options, ignored };
  const types = request.types && request.types.length > 0 ? request.types : [request.resourceType];
  const owner: Owner = { resourceType: types[0], typeSql: 'r.resource_type', idSql: 'r.id', rowAlias: 'r' };

  const where: string[] = [`r.resource_type = ANY(${params.add(types)}::text[])`, 'NOT r.deleted'];
  for (const filter of request.filters ?? []) {
    const condition = buildCondition(filter, owner, params, conditionOptions);
    if (condition) {
      where.push(condition);
    }
  }

  const count = pageSize(request);
  const wantTotal = request.total === 'accurate' || request.total === 'estimate';
  let total: number | undefined;
  if (wantTotal || count === 0) {
    const countParams = params.values.slice();
    const result = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource r WHERE ${where.join(' AND ')}`, countParams);
    total = result.rows[0].n;
  }
  if (count === 0) {
    return { resources: [], total, ignored };
  }

  const keys: SortKey[] = [];
  for (const rule of request.sortRules ?? []) {
    const sql = sortExpression(rule.code, Boolean(rule.descending), owner, params);
    if (!sql) {
      if (options.strict) {
        throw new OperationOutcomeError(badRequest(`Unknown sort parameter "${rule.code}"`, '_sort'));
      }
      ignored.push({ code: '_sort', operator: 'eq', value: rule.code } as Filter);
      continue;
    }
    keys.push({ sql, descending: Boolean(rule.descending) });
  }
  if (request.cursor) {
    where.push(keysetCondition(keys, decodeCursor(request.cursor, keys.length), params));
  }
  const select = ['r.id', 'r.content', 'r.seq', ...keys.map((key, i) => `${key.sql} AS k${i}`)];
  const order = [...keys.map((key) => `${key.sql} ${key.descending ? 'DESC' : 'ASC'} NULLS LAST`), 'r.seq ASC'];
  const offset = request.offset && request.offset > 0 && !request.cursor ? ` OFFSET ${params.add(request.offset)}` : '';
  const sql =
    `SELECT ${select.join(', ')} FROM resource r WHERE ${where.join(' AND ')} ` +
    `ORDER BY ${order.join(', ')} LIMIT ${params.add(count + 1)}${offset}`;
  const result = await db.query<Record<string, unknown>>(sql, params.values);

  const rows = result.rows.slice(0, count);
  const resources = rows.map((row) => JSON.parse(row.content as string) as WithId<Resource>);
  let nextCursor: string | undefined;
  if (result.rows.length > count) {
    const last = rows[rows.length - 1];
    nextCursor = encodeCursor({ v: keys.map((_, i) => toCursorValue(last[`k${i}`])), s: last.seq as number });
  } else if (total === undefined && !request.cursor && !request.offset) {
    total = rows.length;
  }
  return { resources, total, nextCursor, ignored };
}
