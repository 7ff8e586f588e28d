/**
 * E-mail notifications end to end: recorded in the caller's transaction, relayed through the outbox,
 * sent by the hub's worker to a real SMTP server (smtp-server) exactly once, with the link and
 * without the patient's name; the .eml development default; the dead-letter path for a recipient
 * without an address; and a worker process killed in the middle of a send.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { simpleParser } from 'mailparser';
import type { AddressObject } from 'mailparser';
import pg from 'pg';
import { pino } from 'pino';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { loadFhirDefinitions } from '../src/fhir/definitions.ts';
import { HubRepository } from '../src/fhir/repository.ts';
import { createMailer } from '../src/notify/mailer.ts';
import { producerConnection } from '../src/queues/connection.ts';
import {
  NOTIFICATIONS_QUEUE,
  addNotificationJob,
  recordNotification,
  sendNotification,
} from '../src/workflow/jobs/notifications.ts';
import type { NotificationInput } from '../src/workflow/jobs/notifications.ts';
import { OutboxRelay } from '../src/queues/outbox-relay.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { NODE_BIN, REPO_ROOT, startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { createTestDatabase, fhirFetch, startTestHub, TEST_REDIS_URL, WITH_WORKERS } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { userToken } from './support/user-token.ts';
import { defined } from './support/defined.ts';
import { until } from './support/until.ts';
import { queueDrained } from './support/queue-drained.ts';

const PUBLIC_BASE = 'https://hub.example.org';
const MAIL_FROM = 'Second Opinion Hub <no-reply@hub.example.org>';
const PATIENT_FAMILY = 'Quixotic-Testperson';
const PATIENT_GIVEN = 'Zebulon';

const patientResource = (email?: string) => ({
  resourceType: 'Patient',
  name: [{ family: PATIENT_FAMILY, given: [PATIENT_GIVEN] }],
  birthDate: '1961-02-03',
  telecom: [{ system: 'phone', value: '+1 555 0100' }, ...(email ? [{ system: 'email', value: email }] : [])],
});

interface NotificationRow {
  status: string;
  attempts: number;
  sent_at: Date | null;
  message_id: string;
  last_error: string | null;
}

const notificationRow = async (db: Database, id: string): Promise<NotificationRow> =>
  defined(
    (
      await db.query<NotificationRow>(
        'SELECT status, attempts, sent_at, message_id, last_error FROM notification WHERE id = $1',
        [id],
      )
    ).rows[0],
    `notification ${id}`,
  );

function expectNoPatientDetails(text: string): void {
  for (const detail of [PATIENT_FAMILY, PATIENT_GIVEN, '1961', '555 0100']) {
    expect(text).not.toContain(detail);
  }
}

describe('notifications through the hub', () => {
  let sink: SmtpSink;
  let testHub: TestHub;
  let api: string;
  let patientId: string;
  let caseReference: string;

  beforeAll(async () => {
    sink = await startSmtpSink();
    testHub = await startTestHub({ env: { ...WITH_WORKERS, SMTP_URL: sink.url, MAIL_FROM, BASE_URL: PUBLIC_BASE } });
    api = `${testHub.hub.url}/fhir`;
    const patient = await fhirFetch(`${api}/Patient`, {
      method: 'POST',
      body: patientResource('zq.patient@example.org'),
    });
    expect(patient.status).toBe(201);
    patientId = patient.body.id;
    const request = await fhirFetch(`${api}/ServiceRequest`, {
      method: 'POST',
      body: {
        resourceType: 'ServiceRequest',
        status: 'draft',
        intent: 'order',
        subject: { reference: `Patient/${patientId}` },
      },
    });
    expect(request.status).toBe(201);
    caseReference = `ServiceRequest/${request.body.id}`;
  });

  afterAll(async () => {
    await testHub?.stop();
    await sink?.close();
  });

  const record = (input: NotificationInput) =>
    testHub.hub.db.transaction(async (tx) => {
      const recorded = await recordNotification(tx, input, 'hub.example.org');
      return recorded;
    });

  test('a notification recorded in a transaction is e-mailed once, with the link and without the patient name', async () => {
    const before = sink.accepted.length;
    const recorded = await record({
      kind: 'report-ready',
      recipient: `Patient/${patientId}`,
      caseReference,
      dedupeKey: `test-1:${caseReference}`,
    });
    expect(recorded.created).toBe(true);
    expect(recorded.messageId).toBe(`<notification.${recorded.id}@hub.example.org>`);
    testHub.hub.relay.kick();
    await sink.waitForMessages(before + 1);
    const received = defined(sink.accepted[before], 'the new e-mail');

    expect(received.recipients).toEqual(['zq.patient@example.org']);
    expect(received.messageId).toBe(recorded.messageId);
    const mail = await simpleParser(received.raw);
    const link = `${PUBLIC_BASE}/dashboard/cases/${caseReference.split('/')[1]}`;
    expect(mail.text).toContain(link);
    expect(mail.html).toContain(`href="${link}"`);
    expect(mail.subject).toBe('Your second opinion is ready');
    expect((mail.to as AddressObject).value).toEqual([{ address: 'zq.patient@example.org', name: '' }]);
    expect(mail.from?.value).toEqual([{ address: 'no-reply@hub.example.org', name: 'Second Opinion Hub' }]);
    // Neither the raw message nor its decoded parts name the patient.
    expectNoPatientDetails(received.raw);
    expectNoPatientDetails(`${mail.subject}\n${mail.text}\n${mail.html}`);

    const row = await until(async () => {
      const current = await notificationRow(testHub.hub.db, recorded.id);
      return current.status === 'sent' ? current : undefined;
    }, 'the notification to be marked sent');
    expect(row).toMatchObject({ attempts: 1, message_id: recorded.messageId, last_error: null });
    expect(row.sent_at).toBeInstanceOf(Date);

    // The same notification queued again (a second job), and the job function run directly: one e-mail.
    const workers = testHub.hub.workers!;
    const jobId = await addNotificationJob(workers.producer, recorded.id);
    await until(
      async () => (await workers.producer.queue(NOTIFICATIONS_QUEUE).getJob(jobId))?.isCompleted(),
      'the second job to complete',
    );
    const deps = {
      db: testHub.hub.db,
      repository: {
        db: testHub.hub.db,
        blobs: new FileBlobStore(path.join(testHub.config.dataDir, 'blobs')),
        baseUrl: PUBLIC_BASE,
        binaryMaxBytes: 1e6,
      },
      mailer: createMailer({ smtpUrl: sink.url, from: MAIL_FROM, dataDir: testHub.config.dataDir }),
      baseUrl: PUBLIC_BASE,
      logger: pino({ level: 'silent' }),
      clock: testHub.clock,
    };
    const info = { id: 'direct', queue: NOTIFICATIONS_QUEUE, attemptsMade: 0, attempts: 8, finalAttempt: false };
    expect(await sendNotification({ notificationId: recorded.id }, info, deps)).toBe('already-sent');
    deps.mailer.close();
    // Both jobs have finished and the direct run sent nothing; once the queue is empty no job is left to send.
    await queueDrained(workers.producer.queue(NOTIFICATIONS_QUEUE));
    expect(sink.accepted.filter((mail) => mail.messageId === recorded.messageId)).toHaveLength(1);
  });

  test('recording the same dedupe key twice keeps one notification and one outbox event', async () => {
    const input: NotificationInput = {
      kind: 'case-status-changed',
      recipient: `Patient/${patientId}`,
      caseReference,
      dedupeKey: `test-2:${caseReference}`,
    };
    const first = await record(input);
    const second = await record(input);
    expect(second).toEqual({ id: first.id, messageId: first.messageId, created: false });
    const events = await testHub.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM outbox WHERE queue = 'notifications' AND payload->>'notificationId' = $1`,
      [first.id],
    );
    expect(events.rows[0]?.n).toBe(1);
    testHub.hub.relay.kick();
    await until(async () => sink.accepted.some((mail) => mail.messageId === first.messageId), 'the e-mail');
  });

  test('a rolled-back transaction records no notification and sends nothing', async () => {
    const dedupeKey = `test-3:${caseReference}`;
    await expect(
      testHub.hub.db.transaction(async (tx) => {
        await recordNotification(
          tx,
          { kind: 'report-released', recipient: `Patient/${patientId}`, caseReference, dedupeKey },
          'hub.example.org',
        );
        throw new Error('the change was refused');
      }),
    ).rejects.toThrow('the change was refused');
    expect((await testHub.hub.db.query('SELECT id FROM notification WHERE dedupe_key = $1', [dedupeKey])).rows).toEqual(
      [],
    );
  });

  test('bad input is refused with a clear error', async () => {
    const base: NotificationInput = {
      kind: 'report-ready',
      recipient: `Patient/${patientId}`,
      caseReference,
      dedupeKey: 'test-4',
    };
    await expect(record({ ...base, recipient: 'Organization/x' })).rejects.toThrow(/Patient or a Practitioner/);
    await expect(record({ ...base, kind: 'lab-results' as NotificationInput['kind'] })).rejects.toThrow(
      /unknown notification kind/,
    );
    await expect(recordNotification(testHub.hub.db, base, 'hub.example.org')).rejects.toThrow(/inside the transaction/);
  });

  test('a recipient without an e-mail address is dead-lettered; after the address is added, a retry from the view sends it', async () => {
    const practitioner = await fhirFetch(`${api}/Practitioner`, {
      method: 'POST',
      body: {
        resourceType: 'Practitioner',
        name: [{ family: 'Referrer' }],
        telecom: [{ system: 'phone', value: '+1 555 0199' }],
      },
    });
    expect(practitioner.status).toBe(201);
    const recipient = `Practitioner/${practitioner.body.id}`;
    const recorded = await record({
      kind: 'report-released',
      recipient,
      caseReference,
      dedupeKey: `test-5:${caseReference}`,
    });
    testHub.hub.relay.kick();

    const admin = `${testHub.hub.url}/admin/queues`;
    const asAdmin = { headers: { authorization: `Bearer ${await userToken(testHub, 'admin')}` } };
    const entry = await until(async () => {
      const response = await fetch(`${admin}/dead-letter`, asAdmin);
      const body = (await response.json()) as { entries: { queue: string; data: { notificationId: string } | null }[] };
      return body.entries.find((e) => e.queue === NOTIFICATIONS_QUEUE && e.data?.notificationId === recorded.id);
    }, 'the dead-letter entry');
    expect(entry).toMatchObject({ attempts: 1, error: `recipient ${recipient} has no e-mail address` });
    expect(await notificationRow(testHub.hub.db, recorded.id)).toMatchObject({ status: 'failed', attempts: 1 });
    const view = (await (await fetch(admin, asAdmin)).json()) as {
      queues: { name: string; failed: number; deadLettered: number }[];
    };
    expect(view.queues.find((q) => q.name === NOTIFICATIONS_QUEUE)).toMatchObject({ failed: 1, deadLettered: 1 });

    const updated = await fhirFetch(`${api}/Practitioner/${practitioner.body.id}`, {
      method: 'PUT',
      body: { ...practitioner.body, telecom: [{ system: 'email', value: 'referrer@clinic.example.org' }] },
    });
    expect(updated.status).toBe(200);
    const retry = await fetch(
      `${admin}/dead-letter/${encodeURIComponent((entry as unknown as { id: string }).id)}/retry`,
      { method: 'POST', ...asAdmin },
    );
    expect(retry.status).toBe(202);
    const mail = await until(
      async () => sink.accepted.find((m) => m.messageId === recorded.messageId),
      'the e-mail after the retry',
    );
    expect(mail.recipients).toEqual(['referrer@clinic.example.org']);
    await until(
      async () => (await notificationRow(testHub.hub.db, recorded.id)).status === 'sent',
      'the notification to be marked sent',
    );
  });
});

describe('the development default: .eml files under DATA_DIR/mail', () => {
  test('without SMTP_URL each e-mail is written, synced, as one .eml file named after its Message-ID', async () => {
    const testHub = await startTestHub({ env: { ...WITH_WORKERS, BASE_URL: PUBLIC_BASE } });
    try {
      const api = `${testHub.hub.url}/fhir`;
      const patient = await fhirFetch(`${api}/Patient`, {
        method: 'POST',
        body: patientResource('dev.patient@example.org'),
      });
      const recorded = await testHub.hub.db.transaction((tx) =>
        recordNotification(
          tx,
          {
            kind: 'case-status-changed',
            recipient: `Patient/${patient.body.id}`,
            caseReference: 'ServiceRequest/case-1',
            dedupeKey: 'dev-1',
          },
          'localhost',
        ),
      );
      testHub.hub.relay.kick();
      const mailDir = path.join(testHub.config.dataDir, 'mail');
      const files = await until(async () => {
        const names = await fs.readdir(mailDir).catch(() => []);
        return names.length > 0 ? names : undefined;
      }, 'an .eml file');
      expect(files).toEqual([`notification.${recorded.id}@localhost.eml`]);
      const raw = await fs.readFile(path.join(mailDir, files[0]!), 'utf8');
      const mail = await simpleParser(raw);
      expect(mail.messageId).toBe(recorded.messageId);
      expect((mail.to as AddressObject).value[0]?.address).toBe('dev.patient@example.org');
      expect(mail.from?.value).toEqual([{ address: 'no-reply@localhost', name: 'Second Opinion Hub' }]);
      expect(mail.text).toContain(`${PUBLIC_BASE}/dashboard/cases/case-1`);
      expectNoPatientDetails(raw);
      await until(
        async () => (await notificationRow(testHub.hub.db, recorded.id)).status === 'sent',
        'the notification to be marked sent',
      );
    } finally {
      await testHub.stop();
    }
  });
});

describe('a worker killed in the middle of a notification job', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let dataDir: string;
  let sink: SmtpSink;
  const prefix = `test-notify-kill-${randomBytes(4).toString('hex')}`;
  const redis = producerConnection(TEST_REDIS_URL);
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    loadFhirDefinitions();
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url });
    await migrate(db);
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-notify-kill-'));
    sink = await startSmtpSink();
  });

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
    }
    for (const name of [NOTIFICATIONS_QUEUE, 'dead-letter']) {
      const queue = new Queue(name, { connection: redis, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
    redis.disconnect();
    await sink?.close();
    await db?.close();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const startWorkerChild = async (
    smtpUrl: string,
  ): Promise<{ child: ChildProcess; exited: Promise<NodeJS.Signals | number | null> }> => {
    const child = spawn(
      NODE_BIN,
      ['test/support/worker-child.ts', database.url, TEST_REDIS_URL, prefix, smtpUrl, dataDir, PUBLIC_BASE],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.push(child);
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        if (chunk.includes('ready')) {
          resolve();
        }
      });
      void exited.then((status) => reject(new Error(`worker child exited (${status}) before it was ready`)));
    });
    return { child, exited };
  };

  /** A patient with an address, and a notification to them relayed into the queue. */
  const queuedNotification = async (dedupeKey: string) => {
    const repo = new HubRepository({
      db,
      blobs: new FileBlobStore(path.join(dataDir, 'blobs')),
      baseUrl: PUBLIC_BASE,
      binaryMaxBytes: 1e6,
    });
    const patient = await repo.createResource(
      patientResource('kill.patient@example.org') as Parameters<typeof repo.createResource>[0],
    );
    const recorded = await db.transaction((tx) =>
      recordNotification(
        tx,
        { kind: 'report-ready', recipient: `Patient/${patient.id}`, caseReference: 'ServiceRequest/case-9', dedupeKey },
        'hub.example.org',
      ),
    );
    const relay = new OutboxRelay({ db, connection: redis, prefix, pollMs: 1000, logger: pino({ level: 'silent' }) });
    expect(await relay.relayOnce()).toBeGreaterThanOrEqual(1);
    await relay.stop();
    return recorded;
  };

  test('killed while the SMTP server holds its message: after a restart exactly one e-mail is accepted', async () => {
    const recorded = await queuedNotification('kill-1');

    // The first delivery is read in full and never answered: the worker is mid-job, its row locked.
    sink.stall = () => true;
    const first = await startWorkerChild(sink.url);
    await sink.waitForMessages(1);
    expect(sink.stalled.map((mail) => mail.messageId)).toEqual([recorded.messageId]);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    expect(await notificationRow(db, recorded.id)).toMatchObject({ status: 'pending', attempts: 0 });

    sink.stall = () => false;
    const second = await startWorkerChild(sink.url);
    await until(async () => sink.accepted.length > 0, 'the e-mail from the restarted worker');
    await until(
      async () => (await notificationRow(db, recorded.id)).status === 'sent',
      'the notification to be marked sent',
    );
    // The killed worker's job ran again in the new worker; once the queue is empty nothing is left to send a duplicate.
    const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
    await queueDrained(queue);
    await queue.close();
    expect(sink.accepted.map((mail) => mail.messageId)).toEqual([recorded.messageId]);
    expect(sink.accepted[0]?.recipients).toEqual(['kill.patient@example.org']);
    expect(await notificationRow(db, recorded.id)).toMatchObject({ status: 'sent', attempts: 1 });

    // SIGTERM drains and exits cleanly.
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  test('killed after the SMTP server accepted but before the commit: the e-mail goes out again, with the same Message-ID', async () => {
    const ownSink = await startSmtpSink();
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    try {
      const recorded = await queuedNotification('kill-2');
      ownSink.stall = () => true;
      const first = await startWorkerChild(ownSink.url);
      await ownSink.waitForMessages(1);
      // A SHARE lock on the table does not conflict with the worker's row lock, but its UPDATE to
      // 'sent' must wait for it: once the server accepts, the worker cannot commit.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE notification IN SHARE MODE');
      ownSink.release();
      await until(async () => {
        const waiting = await blocker.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'notification'::regclass AND NOT granted AND pid <> pg_backend_pid()`,
        );
        return waiting.rows[0]?.n === 1;
      }, "the worker's commit to wait on the lock");
      first.child.kill('SIGKILL');
      expect(await first.exited).toBe('SIGKILL');
      await blocker.query('ROLLBACK');
      expect(await notificationRow(db, recorded.id)).toMatchObject({ status: 'pending', attempts: 0 });

      ownSink.stall = () => false;
      const second = await startWorkerChild(ownSink.url);
      await until(async () => {
        return (await notificationRow(db, recorded.id)).status === 'sent';
      }, 'the notification to be marked sent');
      // The documented at-least-once window: two deliveries, one Message-ID for the receiver to dedupe by.
      expect(ownSink.accepted.map((mail) => mail.messageId)).toEqual([recorded.messageId, recorded.messageId]);
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    } finally {
      await blocker.end();
      await ownSink.close();
    }
  });
});

describe('HUB_ROLES: an api+relay process and a worker process', () => {
  test('the relay process queues the e-mail, the worker process sends it, and SIGTERM waits for the running send', async () => {
    const database = await createTestDatabase();
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-roles-'));
    const sink = await startSmtpSink();
    const prefix = `test-roles-${randomBytes(4).toString('hex')}`;
    const env = {
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      QUEUE_PREFIX: prefix,
      SMTP_URL: sink.url,
      BASE_URL: PUBLIC_BASE,
      OUTBOX_POLL_MS: '50',
      SHUTDOWN_GRACE_MS: '120000',
    };
    const processes: HubProcess[] = [];
    const db = await openDatabase({ databaseUrl: database.url });
    const queueRedis = producerConnection(TEST_REDIS_URL);
    try {
      const apiProcess = await startHubProcess({ ...env, HUB_ROLES: 'api,relay' });
      processes.push(apiProcess);
      const patient = await fhirFetch(`${apiProcess.url}/fhir/Patient`, {
        method: 'POST',
        body: patientResource('roles.patient@example.org'),
      });
      expect(patient.status).toBe(201);
      const recorded = await db.transaction((tx) =>
        recordNotification(
          tx,
          {
            kind: 'report-released',
            recipient: `Patient/${patient.body.id}`,
            caseReference: 'ServiceRequest/case-r',
            dedupeKey: 'roles-1',
          },
          'hub.example.org',
        ),
      );
      await until(async () => {
        const pending = await db.query(`SELECT id FROM outbox WHERE queue = 'notifications' AND dispatched_at IS NULL`);
        return pending.rows.length === 0;
      }, 'the relay to dispatch the event');
      const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: queueRedis, prefix });
      expect(await queue.getJobCountByTypes('waiting')).toBe(1);
      expect(sink.accepted).toEqual([]);

      sink.stall = () => true;
      const workerProcess = await startHubProcess({ ...env, HUB_ROLES: 'worker' });
      processes.push(workerProcess);
      await sink.waitForMessages(1);
      workerProcess.child.kill('SIGTERM');
      await workerProcess.waitForLog('stopped accepting connections; draining');
      // The send is held by the SMTP server: the process must still be waiting for it. Time, not an
      // event: the process logs nothing while it waits for its workers, and one that ignored the running
      // send would exit after their idle wait (IDLE_CLOSE_WAIT_MS, 1 s, in src/queues/worker-runner.ts).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(workerProcess.child.exitCode).toBeNull();
      sink.release();
      expect(await workerProcess.exited).toEqual({ code: 0, signal: null });
      expect(sink.accepted.map((mail) => mail.messageId)).toEqual([recorded.messageId]);
      expect(await notificationRow(db, recorded.id)).toMatchObject({ status: 'sent', attempts: 1 });
      await queue.obliterate({ force: true });
      await queue.close();
    } finally {
      for (const hubProcess of processes) {
        await hubProcess.stop();
      }
      queueRedis.disconnect();
      await db.close();
      await sink.close();
      await database.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
