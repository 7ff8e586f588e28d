/**
 * The SQL that stores AuditEvents: common table expressions that insert any number of them (row and
 * search index) from arrays, so one statement stores a whole batch of read audits, and
 * the same expressions ride along in a resource write's own statement (fhir/write.ts), which makes a
 * write and its audit one atomic unit. Inserting an id that is already stored does nothing, so a
 * journal replayed twice stores each event once. AuditEvents never change, so they get no
 * resource_version row (one row less per audited read): their history and vread are empty.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { prepared } from '../db/database.ts';
import type { Queryable } from '../db/database.ts';
import type { SearchIndexRows } from '../fhir/indexer.ts';
import { SqlParams } from '../fhir/search/conditions.ts';
import { INDEX_COLUMNS } from '../fhir/write.ts';
import { auditSearchIndex } from './audit-index.ts';

/** An AuditEvent ready to be stored: its JSON text and search index rows. */
export interface StoredAuditEvent {
  id: string;
  recorded: string;
  content: string;
  index: SearchIndexRows;
}

/** An AuditEvent as stored: version 1, last updated when it was recorded. */
export function withMeta(event: AuditEvent): AuditEvent {
  return { ...event, meta: { versionId: '1', lastUpdated: event.recorded } };
}

/** `content`, when given, is the JSON text of `withMeta(event)` (the journal line), not made again. */
export function toStored(event: AuditEvent, content?: string): StoredAuditEvent {
  const stored = event.meta ? event : withMeta(event);
  return { id: event.id as string, recorded: event.recorded, content: content ?? JSON.stringify(stored), index: auditSearchIndex(stored) };
}

/** The CTEs (`a_*`) that insert `events`; their parameters are added to `p`. */
export function auditInsertCtes(p: SqlParams, events: readonly StoredAuditEvent[]): string[] {
  const ids = p.add(events.map((e) => e.id));
  const recorded = p.add(events.map((e) => e.recorded));
  const contents = p.add(events.map((e) => e.content));
  const rows = `unnest(${ids}::text[], ${recorded}::timestamptz[], ${contents}::text[]) AS u(id, recorded, content)`;
  const ctes = [
    `a_resource AS (INSERT INTO resource (resource_type, id, version, last_updated, deleted, content) ` +
      `SELECT 'AuditEvent', u.id, 1, u.recorded, false, u.content FROM ${rows} ON CONFLICT (resource_type, id) DO NOTHING RETURNING id)`,
  ];
  for (const [table, columns] of Object.entries(INDEX_COLUMNS)) {
    const owners: string[] = [];
    const values: unknown[][] = columns.map(() => []);
    for (const event of events) {
      for (const row of event.index[table as keyof SearchIndexRows] as unknown[][]) {
        owners.push(event.id);
        row.forEach((value, c) => values[c].push(value));
      }
    }
    if (owners.length === 0) continue;
    const arrays = [`${p.add(owners)}::text[]`, ...columns.map(([, sqlType], c) => `${p.add(values[c])}::${sqlType}[]`)];
    const names = columns.map(([name]) => name);
    ctes.push(
      `a_${table} AS (INSERT INTO sp_${table} (resource_type, resource_id, ${names.join(', ')}) ` +
        `SELECT 'AuditEvent', u.* FROM unnest(${arrays.join(', ')}) AS u(resource_id, ${names.join(', ')}) ` +
        `WHERE u.resource_id IN (SELECT id FROM a_resource))`,
    );
  }
  return ctes;
}

/** Stores a batch of AuditEvents in one statement; returns how many were new. */
export async function insertAuditEvents(conn: Queryable, events: readonly StoredAuditEvent[]): Promise<number> {
  if (events.length === 0) return 0;
  const p = new SqlParams();
  const ctes = auditInsertCtes(p, events);
  const result = await conn.query<{ n: number }>(prepared(`WITH ${ctes.join(', ')} SELECT count(*)::int AS n FROM a_resource`), p.values);
  return result.rows[0]?.n ?? 0;
}
