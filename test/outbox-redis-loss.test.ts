/**
 * The outbox's loss window: Redis with `appendfsync everysec` acknowledges writes it has not yet put
 * on disk, so a machine crash takes the last second of them with it. Events whose jobs were among
 * them must still run, and run once.
 *
 * Killing redis-server alone does not lose anything: it writes its AOF to the kernel before it
 * answers, and the kernel keeps those pages when the process dies (measured: 0 of 50 000
 * acknowledged writes lost to SIGKILL). What `everysec` gives up is the kernel's unflushed pages, on
 * a power loss or an OS crash. So the crash here is SIGKILL, then the AOF as the disk held it a
 * second earlier: the test follows the AOF's size while Redis runs, and cuts the file back to the
 * size it had one second before the kill. Redis is real, and restarts on its own files, on the same
 * port; the hub's relay and the queue framework's workers are the shipped ones.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jest } from '@jest/globals';
import { UnrecoverableError } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { producerConnection } from '../src/queues/connection.ts';
import { databaseId, outboxJobId } from '../src/queues/queue-prefix.ts';
import { defineQueue } from '../src/queues/queue-definitions.ts';
import type { AnyQueueDefinition, WorkerDeps } from '../src/queues/queue-definitions.ts';
import { startWorkers } from '../src/queues/worker-runner.ts';
import type { WorkerPool } from '../src/queues/worker-runner.ts';
import { freePort } from './support/free-port.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

jest.setTimeout(300_000);

/** Enough events that the worker is far behind the relay when Redis goes down. */
const BURST = 1000;
/** What `appendfsync everysec` may lose: the writes of the last second before the crash. */
const UNSYNCED_MS = 1000;
const PROBE_QUEUE = 'outbox-probe';
const FAILING_QUEUE = 'outbox-probe-fails';

/** A redis-server of the test's own, with the AOF settings of docker-compose.yml. */
class RedisServer {
  readonly url: string;
  private readonly dir: string;
  private readonly port: number;
  private process: ChildProcess | undefined;
  private readonly sizes: { at: number; size: number }[] = [];
  private sampler: NodeJS.Timeout | undefined;

  constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        ...['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir],
        ...['--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''],
      ],
      { stdio: 'ignore' },
    );
    this.process = child;
    const probe = new Redis(this.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      // Until the AOF is loaded Redis answers LOADING.
      await until(
        async () => {
          if (child.exitCode !== null) {
            throw new Error(`redis-server exited with ${child.exitCode}`);
          }
          if (probe.status === 'wait' || probe.status === 'end') {
            await probe.connect().catch(() => undefined);
          }
          return (await probe.ping().catch(() => undefined)) === 'PONG';
        },
        'redis-server to answer',
        20_000,
        50,
      );
    } finally {
      probe.disconnect();
    }
    this.sizes.length = 0;
    clearInterval(this.sampler);
    this.sampler = setInterval(() => this.sizes.push({ at: Date.now(), size: this.aofSize() }), 10);
  }

  /** The file Redis 7 appends to: the manifest's incremental file. */
  private aofFile(): string {
    const aofDir = path.join(this.dir, 'appendonlydir');
    const manifest = fs.readFileSync(path.join(aofDir, 'appendonly.aof.manifest'), 'utf8');
    const incremental = manifest
      .split('\n')
      .filter((line) => / type i$/.test(line))
      .map((line) => line.split(' ')[1])
      .at(-1);
    if (!incremental) {
      throw new Error('the AOF manifest names no incremental file');
    }
    return path.join(aofDir, incremental);
  }

  private aofSize(): number {
    try {
      return fs.statSync(this.aofFile()).size;
    } catch {
      return 0;
    }
  }

  async kill(): Promise<void> {
    clearInterval(this.sampler);
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /**
   * A machine crash: the process dies, and of its AOF only what had reached the disk survives, here
   * the file as it was `UNSYNCED_MS` before. Returns how many bytes of acknowledged writes are lost.
   */
  async crash(): Promise<number> {
    const at = Date.now();
    await this.kill();
    const synced = this.sizes.filter((sample) => sample.at <= at - UNSYNCED_MS).at(-1);
    if (!synced) {
      throw new Error('no AOF size sampled a second before the crash');
    }
    const file = this.aofFile();
    const lost = fs.statSync(file).size - synced.size;
    fs.truncateSync(file, synced.size);
    return lost;
  }
}

describe('the outbox when Redis loses its last second of writes', () => {
  let dir: string;
  let redis: RedisServer;
  let hub: TestHub;
  let pool: WorkerPool;
  let connection: Redis;

  /** The probe's job leaves a row per run, keyed by its job id (which names the outbox event). */
  const probe = defineQueue({
    name: PROBE_QUEUE,
    data: { probeId: 'fhirId' },
    process: async (_data, job, deps) => {
      await deps.db.query('INSERT INTO probe_run (job_id) VALUES ($1)', [job.id]);
    },
  });
  let failingRuns = 0;
  const failing = defineQueue({
    name: FAILING_QUEUE,
    data: { probeId: 'fhirId' },
    process: async () => {
      failingRuns++;
      // Fails for good at once, whatever the tries (the relay adds the hub's defaults for a queue it does not know).
      throw new UnrecoverableError('refused for good');
    },
  });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-redis-loss-'));
    redis = new RedisServer(dir, await freePort());
    await redis.start();
    hub = await startTestHub({
      db: 'postgres',
      env: { REDIS_URL: redis.url, HUB_ROLES: 'api,relay', OUTBOX_REDISPATCH_AFTER_MS: '2000' },
    });
    await hub.hub.db.query('CREATE TABLE probe_run (job_id text NOT NULL)');
    const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    connection = producerConnection(redis.url);
    // The probe's job needs only the database.
    const deps = { db: hub.hub.db, logger } as unknown as WorkerDeps;
    pool = startWorkers([probe, failing] as AnyQueueDefinition[], deps, {
      redisUrl: redis.url,
      prefix: hub.config.queuePrefix,
      connection,
      logger,
      // A job that was running when Redis died is taken up again soon after it is back.
      lockDurationMs: 2000,
      stalledIntervalMs: 1000,
    });
  });

  afterAll(async () => {
    await pool?.close(1000);
    await hub?.stop();
    connection?.disconnect();
    await redis?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('bursts of events, Redis crashes right after the last: every event runs its job exactly once', async () => {
    const db = hub.hub.db;
    // The first burst's jobs reach the disk, and the worker is still taking them when Redis crashes:
    // the crash loses the record of those it finished in the last second, not the jobs.
    const first = await burst();
    const firstDispatched = Date.now();
    // Time itself: the first burst must be older than what the crash loses.
    await until(async () => Date.now() - firstDispatched > UNSYNCED_MS + 200, 'the first burst to reach the disk');
    // The second burst's jobs are lost with Redis's last second.
    const second = await burst();
    const lostBytes = await redis.crash();
    const ranBeforeCrash = await runCounts();
    await redis.start();

    const database = await databaseId(db);
    const expected = [...first, ...second].map((id) => outboxJobId(database, id));
    const missing = async (): Promise<string[]> => {
      const counts = await runCounts();
      return expected.filter((jobId) => !counts.has(jobId));
    };
    // Each lost job comes back once the relay sees it is gone; two minutes leave room for a busy machine.
    await until(async () => (await missing()).length === 0, 'every event to run', 120_000).catch(() => undefined);
    const neverRan = await missing();
    expect({
      lostBytes: lostBytes > 0,
      ranBeforeCrash: ranBeforeCrash.size < expected.length,
      neverRan: neverRan.length,
    }).toEqual({ lostBytes: true, ranBeforeCrash: true, neverRan: 0 });

    // Nothing runs a second time: once every event is recorded finished and the queue is idle (a job
    // Redis still held as running has been taken up again), no job is left that could.
    await until(
      async () => {
        const unfinished = await db.query<{ n: number }>(
          'SELECT count(*) AS n FROM outbox WHERE queue = $1 AND finished_at IS NULL',
          [PROBE_QUEUE],
        );
        const counts = await pool.producer
          .queue(PROBE_QUEUE)
          .getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        return unfinished.rows[0]?.n === 0 && Object.values(counts).every((n) => n === 0);
      },
      'every event finished and the queue idle',
      120_000,
    );
    const counts = await runCounts();
    expect(expected.filter((jobId) => counts.get(jobId) !== 1)).toEqual([]);
    expect(counts.size).toBe(expected.length);
  });

  test('a job that failed for good is not lost: the sweep never adds it again', async () => {
    const db = hub.hub.db;
    const inserted = await db.query<{ id: number }>(
      `INSERT INTO outbox (queue, name, payload) VALUES ($1, 'probe', '{"probeId": "f1"}') RETURNING id`,
      [FAILING_QUEUE],
    );
    const eventId = inserted.rows[0]?.id ?? 0;
    const jobId = outboxJobId(await databaseId(db), eventId);
    hub.hub.relay.kick();
    const finished = async (): Promise<boolean> =>
      (await db.query('SELECT 1 FROM outbox WHERE id = $1 AND finished_at IS NOT NULL', [eventId])).rows.length === 1;
    await until(
      async () => (await pool.deadLetter.list()).some((entry) => entry.jobId === jobId),
      'its dead-letter entry',
    );
    await until(finished, 'the worker to record it finished');
    // As if the worker's record had been lost: the sweep finds the job failed in Redis, records it
    // finished again, and adds nothing.
    await db.query('UPDATE outbox SET finished_at = NULL WHERE id = $1', [eventId]);
    await until(finished, 'the sweep to record it finished');
    expect(await (await pool.producer.queue(FAILING_QUEUE).getJob(jobId))?.getState()).toBe('failed');
    expect(failingRuns).toBe(1);
  });

  /** Writes BURST events for the probe queue and waits until the relay has dispatched them all. */
  async function burst(): Promise<number[]> {
    const db = hub.hub.db;
    const inserted = await db.query<{ id: number }>(
      `INSERT INTO outbox (queue, name, payload)
       SELECT $1, 'probe', jsonb_build_object('probeId', 'p' || g) FROM generate_series(1, $2::int) g RETURNING id`,
      [PROBE_QUEUE, BURST],
    );
    hub.hub.relay.kick();
    await until(
      async () => {
        const pending = await db.query<{ n: number }>(
          'SELECT count(*) AS n FROM outbox WHERE queue = $1 AND dispatched_at IS NULL',
          [PROBE_QUEUE],
        );
        return pending.rows[0]?.n === 0;
      },
      'the burst to be dispatched',
      30_000,
      5,
    );
    return inserted.rows.map((row) => row.id);
  }

  async function runCounts(): Promise<Map<string, number>> {
    const rows = await hub.hub.db.query<{ job_id: string; n: number }>(
      'SELECT job_id, count(*) AS n FROM probe_run GROUP BY job_id',
    );
    return new Map(rows.rows.map((row) => [row.job_id, row.n]));
  }
});
