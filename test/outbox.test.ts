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
import { OutboxRelay, outboxJobId } from '../src/queues/outbox-relay.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { TEST_REDIS_URL, createTestDatabase } from './support/test-hub.ts';

const NODE = path.resolve('node_modules/.bin/node');

function runRelayChild(databaseUrl: string, prefix: string, crashPoint: string): Promise<NodeJS.Signals | number | null> {
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
    repo = new HubRepository({ db, blobs: new FileBlobStore(dataDir), baseUrl: 'http://127.0.0.1:1', binaryMaxBytes: 1e6 });
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
    (await db.query<{ id: number }>('SELECT id FROM outbox WHERE dispatched_at IS NULL ORDER BY id')).rows.map((r) => r.id);

  const waitForJobs = async (expected: number): Promise<void> => {
    for (let i = 0; i < 100 && received.length < expected; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Give a duplicate, if any, the time to arrive too.
    await new Promise((resolve) => setTimeout(resolve, 300));
  };

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
    const rows = await db.query<{ payload: Record<string, string> }>('SELECT payload FROM outbox WHERE dispatched_at IS NULL');
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

  test.each(['before-enqueue', 'after-enqueue'])('relay killed %s: the job arrives exactly once after a restart', async (crashPoint) => {
    received.length = 0;
    await repo.createResource(serviceRequest);
    const [eventId] = await pendingIds();
    expect(eventId).toBeDefined();

    const exit = await runRelayChild(database.url, prefix, crashPoint);
    expect(exit).toBe('SIGKILL');
    expect(await pendingIds()).toEqual([eventId]); // not marked: the crash rolled the relay's transaction back

    const relay = new OutboxRelay({ db, connection: redis, prefix, pollMs: 1000, logger: pino({ level: 'silent' }) });
    expect(await relay.relayOnce()).toBe(1);
    await relay.stop();
    expect(await pendingIds()).toEqual([]);

    await waitForJobs(1);
    expect(received).toEqual([outboxJobId(eventId)]);
  });
});
