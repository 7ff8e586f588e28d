/**
 * Migration 010 against a real PostgreSQL holding AuditEvents the way the hub stored them before
 * (a `resource` row and search index rows each): they move to the audit store with the columns the
 * hub computes for new events (audit-columns.ts), their old rows go, and nothing else is touched.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { listMigrations, migrate } from '../src/db/migrate.ts';
import { defined } from './support/defined.ts';
import { createTestDatabase } from './support/test-hub.ts';
import { authenticationAuditEvent, restAuditEvent } from '../src/audit/audit-event.ts';
import { auditColumns } from '../src/audit/audit-columns.ts';

const site = { baseUrl: 'https://hub.example.org' };
const recorded = new Date('2026-03-04T05:06:07.089Z');

const events: AuditEvent[] = [
  restAuditEvent(site, {
    id: 'old-read',
    recorded,
    actor: {
      userId: 'u1',
      fhirUser: 'Practitioner/dr1',
      clientId: 'app',
      clientIsRequestor: false,
      address: '10.0.0.1',
    },
    outcome: '0',
    interaction: 'read',
    resources: ['Observation/o1'],
    patients: ['Patient/p1'],
  }),
  restAuditEvent(site, {
    id: 'old-delete',
    recorded,
    actor: { clientId: 'ehr', clientIsRequestor: true, address: '::1' },
    outcome: '4',
    interaction: 'delete',
    resources: ['Observation/o2/_history/3'],
    patients: ['Patient/p2'],
  }),
  authenticationAuditEvent(site, {
    id: 'old-token',
    recorded,
    actor: { clientId: 'ehr', clientIsRequestor: true },
    outcome: '0',
    event: 'token',
    scope: 'system/*.rs',
  }),
];

describe('migration 010: AuditEvents into the audit store', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    await db.query(
      'CREATE TABLE schema_migration (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const migration of (await listMigrations()).filter((m) => m.version < 10)) {
      await db.exec(migration.sql);
      await db.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
    }
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  test('old AuditEvent rows move with their search columns; other resources keep theirs', async () => {
    for (const event of events) {
      const content = JSON.stringify({ ...event, meta: { versionId: '1', lastUpdated: event.recorded } });
      await db.query(
        `INSERT INTO resource (resource_type, id, version, last_updated, content) VALUES ('AuditEvent', $1, 1, $2, $3)`,
        [event.id, event.recorded, content],
      );
      await db.query(
        `INSERT INTO sp_date (resource_type, resource_id, param, low, high) VALUES ('AuditEvent', $1, 'date', $2, $2)`,
        [event.id, event.recorded],
      );
      await db.query(
        `INSERT INTO sp_token (resource_type, resource_id, param, system, value) VALUES ('AuditEvent', $1, 'outcome', NULL, $2)`,
        [event.id, event.outcome],
      );
    }
    await db.query(
      `INSERT INTO resource (resource_type, id, version, last_updated, content) VALUES ('Patient', 'p1', 1, now(), '{"resourceType":"Patient","id":"p1"}')`,
    );
    await db.query(
      `INSERT INTO sp_token (resource_type, resource_id, param, system, value) VALUES ('Patient', 'p1', 'active', NULL, 'true')`,
    );

    expect(await migrate(db)).toContain('010_audit_store');

    const rows = await db.query<Record<string, unknown>>(
      'SELECT id, recorded, type, subtype, action, outcome, patient, agent, agent_identifier, entity, content FROM audit_event ORDER BY seq',
    );
    expect(rows.rows.map((row) => row.id)).toEqual(events.map((event) => event.id));
    for (const [i, row] of rows.rows.entries()) {
      const event = defined(events[i], `event ${i}`);
      const columns = auditColumns(event);
      const sorted = (values: unknown): string[] => [...(values as string[])].sort();
      expect({
        recorded: (row.recorded as Date).toISOString(),
        type: row.type,
        subtype: sorted(row.subtype),
        action: row.action,
        outcome: row.outcome,
        patient: sorted(row.patient),
        agent: sorted(row.agent),
        agentIdentifier: sorted(row.agent_identifier),
        entity: sorted(row.entity),
      }).toEqual({
        ...columns,
        subtype: sorted(columns.subtype),
        patient: sorted(columns.patient),
        agent: sorted(columns.agent),
        agentIdentifier: sorted(columns.agentIdentifier),
        entity: sorted(columns.entity),
      });
      expect(JSON.parse(row.content as string)).toMatchObject({ id: event.id, meta: { versionId: '1' } });
    }
    expect(rows.rows[0]).toMatchObject({
      patient: ['Patient/p1'],
      agent: ['Practitioner/dr1'],
      entity: expect.arrayContaining(['Observation/o1', 'Patient/p1']),
    });
    expect(rows.rows[1]).toMatchObject({
      entity: expect.arrayContaining(['Observation/o2']),
      outcome: '4',
      action: 'D',
    });

    const left = await db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM resource WHERE resource_type = 'AuditEvent') + (SELECT count(*) FROM sp_token WHERE resource_type = 'AuditEvent')
        + (SELECT count(*) FROM sp_date WHERE resource_type = 'AuditEvent') AS n`,
    );
    expect(Number(left.rows[0]?.n)).toBe(0);
    const patient = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM sp_token WHERE resource_type = 'Patient' AND resource_id = 'p1'`,
    );
    expect(patient.rows[0]?.n).toBe(1);
    const functions = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE 'audit_migration_%'`,
    );
    expect(functions.rows[0]?.n).toBe(0);
  });
});
