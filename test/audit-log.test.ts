/**
 * The audit journal against a real PostgreSQL: a recorded event is in the journal file when
 * record() resolves and in the audit store after a flush; the requests of one moment share one
 * append; a journal left by a process that is gone is stored by the next start, each event once
 * however often it is replayed, and a line cut by a crash is skipped.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AuditEvent } from '@medplum/fhirtypes';
import { pino } from 'pino';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { defined } from './support/defined.ts';
import { createTestDatabase } from './support/test-hub.ts';
import { authenticationAuditEvent, restAuditEvent } from '../src/audit/audit-event.ts';
import { AuditLog } from '../src/audit/audit-log.ts';
import { withMeta } from '../src/audit/statement.ts';

const site = { baseUrl: 'https://hub.example.org' };

function readEvent(id: string, patient: string): AuditEvent {
  return restAuditEvent(site, {
    id,
    recorded: new Date(),
    actor: { clientId: 'ehr', clientIsRequestor: true, address: '127.0.0.1' },
    outcome: '0',
    interaction: 'read',
    resources: [patient],
    patients: [patient],
  });
}

/** A pid no process has now: that of a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  return child.pid;
}

async function journalText(dir: string): Promise<string> {
  const names = await fs.readdir(dir);
  const texts = await Promise.all(names.map((name) => fs.readFile(path.join(dir, name), 'utf8')));
  return texts.join('');
}

describe('AuditLog', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let dir: string;
  const logger = pino({ enabled: false });
  const open = (): AuditLog => new AuditLog({ db, dir, logger, flushMs: 600_000, batchSize: 100_000, fsync: false });
  const stored = async (prefix: string): Promise<number> => {
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_event WHERE id LIKE $1', [
      `${prefix}%`,
    ]);
    return defined(rows[0], 'the count row').n;
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-audit-log-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('record() resolves once the events are in the journal; a flush stores them in the audit store', async () => {
    const log = open();
    await log.start();
    const events = Array.from({ length: 40 }, (_, i) => readEvent(`rec-${i}`, `Patient/p${i}`));
    const before = await journalText(dir);
    expect(before).toBe('');
    // Forty requests of the same moment: each waits for its own record, all share one append.
    await Promise.all(events.map((event) => log.record([event])));
    const lines = (await journalText(dir)).trim().split('\n');
    expect(lines).toHaveLength(40);
    expect(lines.map((line) => (JSON.parse(line) as AuditEvent).id).sort()).toEqual(events.map((e) => e.id).sort());
    expect(await stored('rec-')).toBe(0);

    await log.flush();
    expect(await stored('rec-')).toBe(40);
    expect(await journalText(dir)).toBe('');
    const row = await db.query<{ patient: string[]; entity: string[]; subtype: string[]; content: string }>(
      'SELECT patient, entity, subtype, content FROM audit_event WHERE id = $1',
      ['rec-7'],
    );
    expect(row.rows[0]).toMatchObject({
      patient: ['Patient/p7'],
      entity: ['Patient/p7'],
      subtype: ['http://hl7.org/fhir/restful-interaction|read'],
    });
    expect(JSON.parse(defined(row.rows[0], 'the rec-7 row').content)).toEqual(withMeta(events[7]!));
    await log.stop();
  });

  test('every column lands in its row: empty lists, a batch of one, separators inside values', async () => {
    const log = open();
    await log.start();
    const login = (id: string, userId: string): AuditEvent =>
      authenticationAuditEvent(site, {
        id,
        recorded: new Date(),
        actor: { userId, clientId: 'app', clientIsRequestor: false },
        outcome: '4',
        event: 'login',
      });
    await log.record([login('col-1', 'u1')]);
    await log.flush();
    await log.record([login('col-2', 'odd\nuser\u001fid'), readEvent('col-3', 'Patient/p3'), login('col-4', 'u4')]);
    await log.flush();
    await log.stop();
    const rows = await db.query<Record<string, unknown>>(
      `SELECT id, type, subtype, action, outcome, patient, agent, agent_identifier, entity, content FROM audit_event WHERE id LIKE 'col-%' ORDER BY id`,
    );
    const loginType = 'http://dicom.nema.org/resources/ontology/DCM|110114';
    expect(rows.rows.map(({ content: _content, ...columns }) => columns)).toEqual([
      {
        id: 'col-1',
        type: loginType,
        subtype: ['http://dicom.nema.org/resources/ontology/DCM|110122'],
        action: 'E',
        outcome: '4',
        patient: [],
        agent: [],
        agent_identifier: ['https://hub.example.org/users|u1', 'https://hub.example.org/clients|app'],
        entity: [],
      },
      {
        id: 'col-2',
        type: loginType,
        subtype: ['http://dicom.nema.org/resources/ontology/DCM|110122'],
        action: 'E',
        outcome: '4',
        patient: [],
        agent: [],
        agent_identifier: ['https://hub.example.org/users|odd user id', 'https://hub.example.org/clients|app'],
        entity: [],
      },
      {
        id: 'col-3',
        type: 'http://terminology.hl7.org/CodeSystem/audit-event-type|rest',
        subtype: ['http://hl7.org/fhir/restful-interaction|read'],
        action: 'R',
        outcome: '0',
        patient: ['Patient/p3'],
        agent: [],
        agent_identifier: ['https://hub.example.org/clients|ehr'],
        entity: ['Patient/p3'],
      },
      {
        id: 'col-4',
        type: loginType,
        subtype: ['http://dicom.nema.org/resources/ontology/DCM|110122'],
        action: 'E',
        outcome: '4',
        patient: [],
        agent: [],
        agent_identifier: ['https://hub.example.org/users|u4', 'https://hub.example.org/clients|app'],
        entity: [],
      },
    ]);
    // The JSON keeps the value as it was.
    expect(
      (JSON.parse(defined(rows.rows[1], 'the second row').content as string) as AuditEvent).agent?.[0]?.altId,
    ).toBe('odd\nuser\u001fid');
  });

  test('a journal left by a process that is gone is stored at start, each event once however often it is replayed', async () => {
    const events = Array.from({ length: 5 }, (_, i) => readEvent(`orphan-${i}`, 'Patient/p1'));
    const text = events.map((event) => JSON.stringify(withMeta(event)) + '\n').join('');
    // The same lines in two segments (a segment stored, then found again), and a line cut by the crash.
    await fs.writeFile(path.join(dir, `journal-${deadPid()}-0a0b0c0d-1.ndjson`), text);
    await fs.writeFile(path.join(dir, `journal-${deadPid()}-0a0b0c0e-1.ndjson`), text + text.slice(0, 40));
    const first = open();
    await first.start();
    expect(await stored('orphan-')).toBe(5);
    await first.stop();
    expect((await fs.readdir(dir)).filter((name) => name.includes('0a0b0c0'))).toEqual([]);

    await fs.writeFile(path.join(dir, `journal-${deadPid()}-0a0b0c0f-1.ndjson`), text);
    const second = open();
    await second.start();
    expect(await stored('orphan-')).toBe(5);
    await second.stop();
  });

  test('events recorded before stop() stay in the journal when they cannot be stored, and the next start stores them', async () => {
    const log = open();
    await log.start();
    await log.record([readEvent('late-1', 'Patient/p2')]);
    // A hub killed now (no flush) leaves its segment; a later process finds it as an orphan.
    const segment = defined((await fs.readdir(dir))[0], 'a journal segment');
    const moved = segment.replace(/^journal-\d+-/, `journal-${deadPid()}-`);
    await fs.copyFile(path.join(dir, segment), path.join(dir, moved));
    await log.stop();
    expect(await stored('late-')).toBe(1);
    const next = open();
    await next.start();
    expect(await stored('late-')).toBe(1);
    await next.stop();
  });
});
