/**
 * The SQL of one resource write: the current row, the version row, the search index and, when the
 * write must cause later work, the outbox event, all in one statement (data-modifying CTEs), so a
 * create costs a single round trip and is atomic even outside an explicit transaction.
 */
import { prepared } from '../db/database.ts';
import type { SearchIndexRows } from '../db/index-rows.ts';
import type { CaseLinkRows } from '../auth/case-links.ts';
import { SqlParams } from '../db/sql-params.ts';
import { auditInsertCtes } from '../audit/statement.ts';
import type { StoredAuditEvent } from '../audit/statement.ts';

export interface OutboxEvent {
  queue: string;
  name: string;
  payload: Record<string, unknown>;
}

export interface ResourceWrite {
  resourceType: string;
  id: string;
  version: number;
  lastUpdated: string;
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** JSON text of the stored resource; undefined for a delete. */
  content?: string;
  /** False for a first version: fails with a unique violation if the id is taken. */
  replacing: boolean;
  index?: SearchIndexRows;
  binary?: { key: string; size: number };
  event?: OutboxEvent;
  /** The write's AuditEvents, stored by the same statement (audit/statement.ts). */
  audit?: StoredAuditEvent[];
  /** What the version contributes to case membership (auth/case-links.ts); replaces what the resource gave before. */
  caseLinks?: CaseLinkRows;
}

export const INDEX_COLUMNS = {
  token: [
    ['param', 'text'],
    ['system', 'text'],
    ['value', 'text'],
    ['display', 'text'],
  ],
  string: [
    ['param', 'text'],
    ['normalized', 'text'],
    ['exact', 'text'],
  ],
  reference: [
    ['param', 'text'],
    ['target_type', 'text'],
    ['target_id', 'text'],
    ['reference', 'text'],
  ],
  date: [
    ['param', 'text'],
    ['low', 'timestamptz'],
    ['high', 'timestamptz'],
  ],
  number: [
    ['param', 'text'],
    ['low', 'numeric'],
    ['high', 'numeric'],
    ['system', 'text'],
    ['code', 'text'],
  ],
  uri: [
    ['param', 'text'],
    ['value', 'text'],
  ],
} as const;

/**
 * Builds the single statement that performs a write. It runs as a prepared statement: its text
 * depends only on the resource type's shape (which index tables get rows, update or create, event
 * or not), so each connection parses and plans a few dozen texts once instead of every write.
 */
export function buildWriteStatement(write: ResourceWrite): { sql: string; values: unknown[] } {
  const p = new SqlParams();
  const type = p.add(write.resourceType);
  const id = p.add(write.id);
  const version = p.add(write.version);
  const lastUpdated = p.add(write.lastUpdated);
  const deleted = write.content === undefined;
  const content = p.add(write.content ?? null);
  const ctes: string[] = [];

  const upsert = write.replacing
    ? ` ON CONFLICT (resource_type, id) DO UPDATE SET version = EXCLUDED.version, last_updated = EXCLUDED.last_updated, ` +
      `deleted = EXCLUDED.deleted, content = EXCLUDED.content`
    : '';
  ctes.push(
    `w_resource AS (INSERT INTO resource (resource_type, id, version, last_updated, deleted, content) ` +
      `VALUES (${type}, ${id}, ${version}, ${lastUpdated}::timestamptz, ${deleted}, ${content})${upsert})`,
  );
  ctes.push(
    `w_version AS (INSERT INTO resource_version (resource_type, id, version, last_updated, method, deleted, content) ` +
      `VALUES (${type}, ${id}, ${version}, ${lastUpdated}::timestamptz, ${p.add(write.method)}, ${deleted}, ${content}))`,
  );
  if (write.replacing) {
    for (const table of Object.keys(INDEX_COLUMNS)) {
      ctes.push(`d_${table} AS (DELETE FROM sp_${table} WHERE resource_type = ${type} AND resource_id = ${id})`);
    }
  }
  if (write.index) {
    for (const [table, columns] of Object.entries(INDEX_COLUMNS)) {
      const rows = write.index[table as keyof SearchIndexRows] as unknown[][];
      if (rows.length === 0) {
        continue;
      }
      const arrays = columns.map(([, sqlType], c) => `${p.add(rows.map((row) => row[c]))}::${sqlType}[]`);
      ctes.push(
        `i_${table} AS (INSERT INTO sp_${table} (resource_type, resource_id, ${columns.map(([name]) => name).join(', ')}) ` +
          `SELECT ${type}, ${id}, u.* FROM unnest(${arrays.join(', ')}) AS u)`,
      );
    }
  }
  if (write.binary) {
    ctes.push(
      `w_binary AS (INSERT INTO binary_content (id, version, blob_key, size) ` +
        `VALUES (${id}, ${version}, ${p.add(write.binary.key)}, ${p.add(write.binary.size)}))`,
    );
  }
  if (write.event) {
    ctes.push(
      `w_event AS (INSERT INTO outbox (queue, name, payload) ` +
        `VALUES (${p.add(write.event.queue)}, ${p.add(write.event.name)}, ${p.add(JSON.stringify(write.event.payload))}::jsonb))`,
    );
  }
  if (write.audit && write.audit.length > 0) {
    ctes.push(...auditInsertCtes(p, write.audit));
  }
  if (write.caseLinks) {
    ctes.push(...caseLinkCtes(p, type, id, write.replacing, write.caseLinks));
  }
  return { sql: prepared(`WITH ${ctes.join(', ')} SELECT 1`), values: p.values };
}

/** Replaces the case-membership rows a resource contributed (migration 012) with `links`. */
function caseLinkCtes(p: SqlParams, type: string, id: string, replacing: boolean, links: CaseLinkRows): string[] {
  const ctes: string[] = [];
  if (replacing) {
    ctes.push(`d_case_resource AS (DELETE FROM case_resource WHERE via_type = ${type} AND via_id = ${id})`);
  }
  if (links.resources.length > 0) {
    const column = (index: number, sqlType: string): string =>
      `${p.add(links.resources.map((row) => row[index]))}::${sqlType}[]`;
    ctes.push(
      `i_case_resource AS (INSERT INTO case_resource (resource_type, resource_id, case_id, report, draft_author, held, via_type, via_id) ` +
        `SELECT u.*, ${type}, ${id} FROM unnest(${column(0, 'text')}, ${column(1, 'text')}, ${column(2, 'text')}, ${column(3, 'boolean')}, ${column(4, 'text')}, ${column(5, 'boolean')}) AS u)`,
    );
  }
  if (links.members) {
    if (replacing) {
      ctes.push(`d_case_member AS (DELETE FROM case_member WHERE via_type = ${type} AND via_id = ${id})`);
    }
    const members = links.members;
    if (members.length > 0) {
      const column = (index: number): string => `${p.add(members.map((row) => row[index]))}::text[]`;
      // A PractitionerRole member stands for its Practitioner and its Organization too (as the role
      // names them now), so that reading a person's cases is an indexed lookup of their references.
      ctes.push(
        `i_case_member AS (INSERT INTO case_member (case_id, member, role, via_type, via_id) ` +
          `WITH u AS (SELECT * FROM unnest(${column(0)}, ${column(1)}, ${column(2)}) AS u (case_id, member, role)) ` +
          `SELECT u.case_id, u.member, u.role, ${type}, ${id} FROM u ` +
          `UNION SELECT u.case_id, x.target_type || '/' || x.target_id, u.role, ${type}, ${id} FROM u JOIN sp_reference x ` +
          `ON x.resource_type = 'PractitionerRole' AND u.member = 'PractitionerRole/' || x.resource_id ` +
          `AND ((x.param = 'practitioner' AND x.target_type = 'Practitioner') OR (x.param = 'organization' AND x.target_type = 'Organization')) ` +
          `AND x.target_id IS NOT NULL)`,
      );
    }
  }
  if (links.releases) {
    if (replacing) {
      ctes.push(`d_case_release AS (DELETE FROM case_release WHERE via_id = ${id})`);
    }
    if (links.releases.length > 0) {
      ctes.push(
        `i_case_release AS (INSERT INTO case_release (case_id, via_id) SELECT u, ${id} FROM unnest(${p.add(links.releases)}::text[]) AS u)`,
      );
    }
  }
  return ctes;
}
