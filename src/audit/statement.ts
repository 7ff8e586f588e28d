/**
 * The SQL that stores AuditEvents in the audit store (table audit_event, migration 010): one
 * common table expression that inserts any number of them, so one statement stores a whole batch of
 * read audits, and the same expression rides along in a resource write's own statement
 * (fhir/write.ts), which makes a write and its audit one atomic unit. Inserting an id that is
 * already stored does nothing, so a journal replayed twice stores each event once.
 *
 * In a batch, each column travels as one text parameter: the events' values joined by line breaks, an
 * array's elements by the unit separator (U+001F), split again by PostgreSQL. JSON text has no raw line
 * break, and the search columns hold references and codes, where either character is stripped. This
 * spares node-postgres escaping every quote of every event into an array literal, which cost more
 * than the rest of the batch's preparation.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { prepared } from '../db/database.ts';
import type { Queryable } from '../db/database.ts';
import { SqlParams } from '../db/sql-params.ts';
import { auditColumns } from './audit-columns.ts';
import { auditEventJson } from './audit-event.ts';

/** An AuditEvent ready to be stored: its JSON text, and the text of each search column in AUDIT_COLUMNS order. */
export interface StoredAuditEvent {
  id: string;
  content: string;
  fields: readonly string[];
}

const ROW_SEPARATOR = '\n';
const ELEMENT_SEPARATOR = '\u001f';
// eslint-disable-next-line no-control-regex -- the unit separator is the point
const SEPARATORS = /[\n\u001f]/g;

/** The search columns in the order of StoredAuditEvent.fields, and how each text becomes its value. */
const AUDIT_COLUMNS: readonly [name: string, fromText: (u: string) => string][] = [
  ['id', (u) => u],
  ['recorded', (u) => `${u}::timestamptz`],
  ['type', (u) => `NULLIF(${u}, '')`],
  ['subtype', (u) => `coalesce(string_to_array(${u}, E'\\x1f'), '{}')`],
  ['action', (u) => `NULLIF(${u}, '')`],
  ['outcome', (u) => `NULLIF(${u}, '')`],
  ['patient', (u) => `coalesce(string_to_array(${u}, E'\\x1f'), '{}')`],
  ['agent', (u) => `coalesce(string_to_array(${u}, E'\\x1f'), '{}')`],
  ['agent_identifier', (u) => `coalesce(string_to_array(${u}, E'\\x1f'), '{}')`],
  ['entity', (u) => `coalesce(string_to_array(${u}, E'\\x1f'), '{}')`],
];

/** An AuditEvent as stored: version 1, last updated when it was recorded. */
export function withMeta(event: AuditEvent): AuditEvent {
  return event.meta?.versionId === '1' ? event : { ...event, meta: { versionId: '1', lastUpdated: event.recorded } };
}

const text = (value: string | null): string => (value === null ? '' : value.replace(SEPARATORS, ' '));
const list = (values: readonly string[]): string => values.map(text).join(ELEMENT_SEPARATOR);

/** `content`, when given, is the JSON text of `withMeta(event)` (a journal line), not made again. */
export function toStored(event: AuditEvent, content?: string): StoredAuditEvent {
  const stored = withMeta(event);
  const c = auditColumns(stored);
  const id = event.id as string;
  return {
    id,
    content: content ?? auditEventJson(stored),
    fields: [
      text(id),
      c.recorded,
      text(c.type),
      list(c.subtype),
      text(c.action),
      text(c.outcome),
      list(c.patient),
      list(c.agent),
      list(c.agentIdentifier),
      list(c.entity),
    ],
  };
}

/**
 * The CTE (`a_event`) that inserts a write's AuditEvents (one, as a rule); its parameters are added
 * to `p`. Their ids are new, so a plain insert: no conflict to look for.
 */
export function auditInsertCtes(p: SqlParams, events: readonly StoredAuditEvent[]): string[] {
  const names = [...AUDIT_COLUMNS.map(([name]) => name), 'content'];
  const rows = events.map(
    (e) =>
      `(${AUDIT_COLUMNS.map(([, fromText], c) => fromText(`${p.add(e.fields[c])}::text`)).join(', ')}, ${p.add(e.content)})`,
  );
  return [`a_event AS (INSERT INTO audit_event (${names.join(', ')}) VALUES ${rows.join(', ')})`];
}

/** The statement that stores a batch of AuditEvents, skipping ids already stored; its parameters are added to `p`. */
function batchInsert(p: SqlParams, events: readonly StoredAuditEvent[]): string {
  const split = (joined: string): string => `string_to_array(${p.add(joined)}::text, E'\\n')`;
  const sources = [
    ...AUDIT_COLUMNS.map((_, c) => split(events.map((e) => e.fields[c]).join(ROW_SEPARATOR))),
    split(events.map((e) => e.content).join(ROW_SEPARATOR)),
  ];
  const names = [...AUDIT_COLUMNS.map(([name]) => name), 'content'];
  return (
    `WITH a_event AS (INSERT INTO audit_event (${names.join(', ')}) ` +
    `SELECT ${AUDIT_COLUMNS.map(([name, fromText]) => fromText(`u.${name}`)).join(', ')}, u.content ` +
    `FROM unnest(${sources.join(', ')}) AS u(${names.join(', ')}) ` +
    `ON CONFLICT (id) DO NOTHING RETURNING id) SELECT count(*)::int AS n FROM a_event`
  );
}

/** Stores a batch of AuditEvents in one statement; returns how many were new. */
export async function insertAuditEvents(conn: Queryable, events: readonly StoredAuditEvent[]): Promise<number> {
  if (events.length === 0) {
    return 0;
  }
  const p = new SqlParams();
  const result = await conn.query<{ n: number }>(prepared(batchInsert(p, events)), p.values);
  return result.rows[0]?.n ?? 0;
}
