/**
 * The transactional outbox: a write records its event in the same transaction, and the relay hands
 * it to BullMQ exactly once, even when the relay process is killed mid-way.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { pino } from 'pino';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { pruneDispatched } from '../src/db/outbox.ts';
import { loadFhirDefinitions } from '../src/fhir/definitions.ts';
import { RESOURCE_EVENTS_QUEUE } from '../src/fhir/events.ts';
import { HubRepository } from '../src/fhir/repository.ts';
import { producerConnection, workerConnection } from '../src/queues/connection.ts';
import { OutboxRelay } from '../src/queues/outbox-relay.ts';
import { databaseId, outboxJobId } from '../src/queues/queue-prefix.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import pg from 'pg';
import { ADMIN_DATABASE_URL, TEST_REDIS_URL, createTestDatabase, startTestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { queueDrained } from './support/queue-drained.ts';

const NODE = path.resolve('node_modules/.bin/node');

function runRelayChild(
  databaseUrl: string,
  prefix: string,
  crashPoint: string,
): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['test/support/relay-child.ts', databaseUrl, TEST_REDIS_URL, prefix, crashPoint], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(signal ?? code));
  });
}

describe('transactional outbox and relay', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;
  let repo: HubRepository;
  let dataDir: string;
  const prefix = `test-outbox-${randomBytes(4).toString('hex')}`;
  const redis = producerConnection(TEST_REDIS_URL);
  const workerRedis = workerConnection(TEST_REDIS_URL);
  const received: string[] = [];
  let worker: Worker;
  let queue: Queue;

  beforeAll(async () => {
    loadFhirDefinitions();
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url });
    await migrate(db);
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-outbox-'));
    repo = new HubRepository({
      db,
      blobs: new FileBlobStore(dataDir),
      baseUrl: 'http://127.0.0.1:1',
      binaryMaxBytes: 1e6,
    });
    queue = new Queue(RESOURCE_EVENTS_QUEUE, { connection: redis, prefix });
    worker = new Worker(
      RESOURCE_EVENTS_QUEUE,
      async (job) => {
        received.push(job.id as string);
      },
      { connection: workerRedis, prefix },
    );
  });

  afterAll(async () => {
    await worker?.close();
    await queue?.obliterate({ force: true });
    await queue?.close();
    redis.disconnect();
    workerRedis.disconnect();
    await db?.close();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const pendingIds = async (): Promise<number[]> =>
    (await db.query<{ id: number }>('SELECT id FROM outbox WHERE dispatched_at IS NULL ORDER BY id')).rows.map(
      (r) => r.id,
    );

  const serviceRequest = {
    resourceType: 'ServiceRequest' as const,
    status: 'draft' as const,
    intent: 'order' as const,
    subject: { reference: 'Patient/p1' },
  };

  test('a write records its event in the same transaction, and a rolled-back write records none', async () => {
    const before = (await pendingIds()).length;
    await expect(
      repo.withTransaction(async (tx) => {
        await tx.createResource(serviceRequest);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect((await pendingIds()).length).toBe(before);
    const created = await repo.createResource(serviceRequest);
    const rows = await db.query<{ payload: Record<string, string> }>(
      'SELECT payload FROM outbox WHERE dispatched_at IS NULL',
    );
    expect(rows.rows.map((r) => r.payload)).toContainEqual({
      resourceType: 'ServiceRequest',
      id: created.id,
      versionId: '1',
      interaction: 'create',
    });
    // Drain it so the next tests start clean.
    const relay = new OutboxRelay({ db, connection: redis, prefix, pollMs: 1000, logger: pino({ level: 'silent' }) });
    await relay.relayOnce();
    await relay.stop();
    await queueDrained(queue);
    received.length = 0;
  });

  test('dispatched events older than the retention are pruned; pending ones never are', async () => {
    await db.query(
      `INSERT INTO outbox (queue, name, payload, created_at, dispatched_at) VALUES
       ('q', 'old-dispatched', '{}', now() - interval '9 days', now() - interval '8 days'),
       ('q', 'recent-dispatched', '{}', now(), now()),
       ('q', 'old-pending', '{}', now() - interval '9 days', NULL)`,
    );
    expect(await pruneDispatched(db, 7 * 24 * 3600 * 1000)).toBe(1);
    const left = await db.query<{ name: string }>(`SELECT name FROM outbox WHERE queue = 'q' ORDER BY name`);
    expect(left.rows.map((r) => r.name)).toEqual(['old-pending', 'recent-dispatched']);
    await db.query(`DELETE FROM outbox WHERE queue = 'q'`);
  });

  test.each(['before-enqueue', 'after-enqueue'])(
    'relay killed %s: the job arrives exactly once after a restart',
    async (crashPoint) => {
      received.length = 0;
      await repo.createResource(serviceRequest);
      const [eventId] = await pendingIds();
      expect(eventId).toBeDefined();

      const exit = await runRelayChild(database.url, prefix, crashPoint);
      expect(exit).toBe('SIGKILL');
      expect(await pendingIds()).toEqual([eventId]); // not marked: the crash rolled the relay's transaction back

      const relay = new OutboxRelay({ db, connection: redis, prefix, pollMs: 1000, logger: pino({ level: 'silent' }) });
      // The killed relay's transaction holds the event's row lock until PostgreSQL has seen its
      // connection close (the relay skips locked rows); on a busy machine that takes a moment.
      const relayed = await until(async () => (await relay.relayOnce()) || undefined, 'the event relayed', 10_000, 50);
      expect(relayed).toBe(1);
      await relay.stop();
      expect(await pendingIds()).toEqual([]);

      // Everything either relay queued has been processed once the queue is empty: a duplicate too.
      await queueDrained(queue);
      expect(received).toEqual([outboxJobId(await databaseId(db), eventId!)]);
    },
  );
});

describe('one Redis and one queue prefix, two databases', () => {
  const redis = producerConnection(TEST_REDIS_URL);
  afterAll(() => redis.disconnect());

  test('a hub on a second database refuses to start on a prefix the first one uses, naming QUEUE_PREFIX', async () => {
    const prefix = `test-shared-${randomBytes(4).toString('hex')}`;
    const first = await startTestHub({ db: 'postgres', env: { QUEUE_PREFIX: prefix } });
    try {
      await expect(startTestHub({ db: 'postgres', env: { QUEUE_PREFIX: prefix } })).rejects.toThrow(
        new RegExp(`QUEUE_PREFIX "${prefix}" is in use by another database`),
      );
      // The first hub goes on relaying: a write's event reaches its queue under an id of its database.
      const created = await fetch(`${first.fhir}/ServiceRequest`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify({
          resourceType: 'ServiceRequest',
          status: 'draft',
          intent: 'order',
          subject: { reference: 'Patient/x' },
        }),
      });
      expect(created.status).toBe(201);
      const queue = new Queue(RESOURCE_EVENTS_QUEUE, { connection: redis, prefix });
      const database = await databaseId(first.hub.db);
      const ids = await until(async () => {
        const jobs = await queue.getJobs(['waiting', 'completed', 'active', 'delayed']);
        return jobs.length > 0 && jobs.map((job) => job.id as string);
      }, "the write's event on the queue");
      for (const id of ids) {
        expect(id).toMatch(new RegExp(`^outbox-${database}-\\d+$`));
      }
      await queue.obliterate({ force: true });
      await queue.close();
    } finally {
      await first.stop();
    }
  });

  test('a database restored from a backup has its outbox sequence moved past what it dispatched: no event after the restore is dropped', async () => {
    loadFhirDefinitions();
    const prefix = `test-restore-${randomBytes(4).toString('hex')}`;
    const live = await createTestDatabase();
    const restoredName = `hub_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
    const received: string[] = [];
    const workerRedis = workerConnection(TEST_REDIS_URL);
    const worker = new Worker(RESOURCE_EVENTS_QUEUE, async (job) => void received.push(job.id as string), {
      connection: workerRedis,
      prefix,
    });
    const queue = new Queue(RESOURCE_EVENTS_QUEUE, { connection: redis, prefix });
    const logger = pino({ level: 'silent' });
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-restore-'));
    const writeAndRelay = async (url: string, count: number): Promise<void> => {
      const db = await openDatabase({ databaseUrl: url });
      await migrate(db);
      const repo = new HubRepository({
        db,
        blobs: new FileBlobStore(dataDir),
        baseUrl: 'http://127.0.0.1:1',
        binaryMaxBytes: 1e6,
      });
      for (let i = 0; i < count; i++) {
        await repo.createResource({
          resourceType: 'ServiceRequest',
          status: 'draft',
          intent: 'order',
          subject: { reference: 'Patient/x' },
        });
      }
      const relay = new OutboxRelay({ db, connection: redis, prefix, pollMs: 1000, logger });
      while ((await relay.relayOnce()) > 0) {
        // relay until nothing is left
      }
      await relay.stop();
      await db.close();
    };
    try {
      // Each writeAndRelay has queued all its events when it returns: once the queue is empty, they have arrived.
      await writeAndRelay(live.url, 2);
      await queueDrained(queue);
      // The backup: a copy of the database as it is now.
      await admin.query(`CREATE DATABASE ${restoredName} TEMPLATE ${new URL(live.url).pathname.slice(1)}`);
      await writeAndRelay(live.url, 3);
      await queueDrained(queue);
      expect(received).toHaveLength(5);
      // The live database is lost; the backup is restored in its place, and the hub writes on (here
      // before its relay has seen Redis: the events get ids the lost database had dispatched).
      const restoredUrl = new URL(live.url);
      restoredUrl.pathname = `/${restoredName}`;
      await writeAndRelay(restoredUrl.toString(), 2);
      await queueDrained(queue);
      expect(received).toHaveLength(7);
      expect(new Set(received).size).toBe(7);
    } finally {
      await worker.close();
      workerRedis.disconnect();
      await queue.obliterate({ force: true });
      await queue.close();
      await admin.query(`DROP DATABASE IF EXISTS ${restoredName} WITH (FORCE)`);
      await admin.end();
      await live.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
