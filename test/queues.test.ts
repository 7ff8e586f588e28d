/**
 * The queue framework on the real Redis: retries with exponential backoff, the dead-letter queue and
 * its HTTP view with retry, refusal of job data that is not ids only, and draining on close.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { producerConnection } from '../src/queues/connection.ts';
import { JobDataError } from '../src/queues/job-data.ts';
import { defineQueue } from '../src/queues/queue-definitions.ts';
import type { AnyQueueDefinition, WorkerDeps } from '../src/queues/queue-definitions.ts';
import { startWorkers } from '../src/queues/worker-runner.ts';
import type { WorkerPool } from '../src/queues/worker-runner.ts';
import { createAdminQueueRoutes } from '../src/routes/admin-queues.ts';
import { TEST_REDIS_URL } from './support/test-hub.ts';
import { until } from './support/until.ts';

/** How long to wait for a job: less than Jest's timeout, so that a failure names what it waited for. */
const WAIT_MS = 30_000;

describe('queue framework', () => {
  const prefix = `test-queues-${randomBytes(4).toString('hex')}`;
  const redis = producerConnection(TEST_REDIS_URL);
  const logger = pino({ level: 'silent' });

  const flakyStarts = new Map<string, number[]>();
  const flaky = defineQueue({
    name: 'flaky',
    data: { taskId: 'fhirId' },
    attempts: 5,
    backoffMs: 200,
    process: async (data) => {
      const starts = [...(flakyStarts.get(data.taskId) ?? []), Date.now()];
      flakyStarts.set(data.taskId, starts);
      if (starts.length <= 2) {
        throw new Error(`try ${starts.length} failed`);
      }
      return 'done';
    },
  });

  let healed = false;
  const alwaysFails = defineQueue({
    name: 'always-fails',
    data: { taskId: 'fhirId', versionId: 'versionId' },
    attempts: 3,
    backoffMs: 50,
    process: async () => {
      if (!healed) {
        // As a mail server's refusal would: the address must not reach the dead-letter view.
        throw new Error('upstream refused delivery to jane.roe@example.org');
      }
      return 'healed';
    },
  });

  let releaseSlowJob: () => void = () => undefined;
  const slowJobRunning = new Promise<void>((resolveRunning) => {
    releaseSlowJob = resolveRunning;
  });
  let slowJobStarted = false;
  const slow = defineQueue({
    name: 'slow',
    data: { taskId: 'fhirId' },
    process: async () => {
      slowJobStarted = true;
      await slowJobRunning;
      return 'finished';
    },
  });

  const definitions = [flaky, alwaysFails, slow] as AnyQueueDefinition[];
  let pool: WorkerPool;
  let server: http.Server;
  let adminUrl: string;

  beforeAll(async () => {
    // The test queues' job functions use none of the hub's dependencies.
    const deps = {} as WorkerDeps;
    pool = startWorkers(definitions, deps, {
      redisUrl: TEST_REDIS_URL,
      prefix,
      connection: redis,
      logger,
      sweepIntervalMs: 500,
    });
    const app = express();
    app.use('/admin/queues', createAdminQueueRoutes({ producer: pool.producer, deadLetter: pool.deadLetter }));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    adminUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/queues`;
  });

  afterAll(async () => {
    releaseSlowJob();
    await pool?.close();
    await new Promise((resolve) => server?.close(resolve));
    for (const name of [...definitions.map((d) => d.name), 'dead-letter']) {
      const queue = new Queue(name, { connection: redis, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
    redis.disconnect();
  });

  const getJson = async (url: string, init?: RequestInit): Promise<{ status: number; body: any }> => {
    const response = await fetch(url, init);
    return { status: response.status, body: await response.json() };
  };

  test('a job that fails twice is retried with growing delays and then succeeds', async () => {
    const jobId = await pool.producer.add(flaky, { taskId: 'task-1' }, { jobId: 'flaky-1' });
    const queue = pool.producer.queue('flaky');
    const job = await until(
      async () => {
        const current = await queue.getJob(jobId);
        return current && (await current.isCompleted()) ? queue.getJob(jobId) : undefined;
      },
      'the flaky job to complete',
      WAIT_MS,
    );
    expect(job.returnvalue).toBe('done');
    expect(job.attemptsMade).toBe(3);
    const starts = flakyStarts.get('task-1') ?? [];
    expect(starts).toHaveLength(3);
    const [first, second, third] = starts as [number, number, number];
    // Exponential backoff: at least 200 ms before the second try, at least 400 ms before the third.
    expect(second - first).toBeGreaterThanOrEqual(190);
    expect(third - second).toBeGreaterThanOrEqual(390);
    const deadLetter = await getJson(`${adminUrl}/dead-letter`);
    expect(deadLetter.body.entries.filter((entry: { queue: string }) => entry.queue === 'flaky')).toEqual([]);
  });

  test('a job that always fails lands in the dead-letter view and can be retried from it under the same id', async () => {
    const jobId = await pool.producer.add(alwaysFails, { taskId: 'task-2', versionId: '7' }, { jobId: 'always-2' });
    const entry = await until(
      async () => {
        const { body } = await getJson(`${adminUrl}/dead-letter`);
        return (body.entries as { queue: string; jobId: string }[]).find(
          (e) => e.queue === 'always-fails' && e.jobId === jobId,
        );
      },
      'the dead-letter entry',
      WAIT_MS,
    );
    expect(entry).toMatchObject({
      id: `always-fails.${jobId}`,
      queue: 'always-fails',
      jobId,
      jobName: 'always-fails',
      data: { taskId: 'task-2', versionId: '7' },
      attempts: 3,
      error: 'upstream refused delivery to <address>',
    });
    expect(JSON.stringify(entry)).not.toContain('jane.roe');

    const view = await getJson(adminUrl);
    expect(view.status).toBe(200);
    expect(view.body.queues.find((q: { name: string }) => q.name === 'always-fails')).toEqual({
      name: 'always-fails',
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 0,
      failed: 1,
      deadLettered: 1,
    });
    // The failed job stays in BullMQ's failed set too.
    expect(
      await pool.producer
        .queue('always-fails')
        .getJob(jobId)
        .then((job) => job?.isFailed()),
    ).toBe(true);

    healed = true;
    const retry = await getJson(`${adminUrl}/dead-letter/${encodeURIComponent(`always-fails.${jobId}`)}/retry`, {
      method: 'POST',
    });
    expect(retry).toEqual({ status: 202, body: { retried: true, queue: 'always-fails', jobId } });
    const job = await until(
      async () => {
        const current = await pool.producer.queue('always-fails').getJob(jobId);
        return current && (await current.isCompleted()) ? pool.producer.queue('always-fails').getJob(jobId) : undefined;
      },
      'the retried job to complete',
      WAIT_MS,
    );
    expect(job.returnvalue).toBe('healed');
    const after = await getJson(adminUrl);
    expect(after.body.queues.find((q: { name: string }) => q.name === 'always-fails')).toMatchObject({
      completed: 1,
      failed: 0,
      deadLettered: 0,
    });
    expect((await getJson(`${adminUrl}/dead-letter`)).body.entries).toEqual([]);

    const again = await getJson(`${adminUrl}/dead-letter/${encodeURIComponent(`always-fails.${jobId}`)}/retry`, {
      method: 'POST',
    });
    expect(again.status).toBe(404);
  });

  test('the sweep records a failure whose dead-letter entry is missing (a crash after the job failed)', async () => {
    healed = false;
    const jobId = await pool.producer.add(alwaysFails, { taskId: 'task-3', versionId: '1' }, { jobId: 'always-3' });
    const entryId = `always-fails.${jobId}`;
    await until(
      async () => (await pool.deadLetter.list()).find((e) => e.id === entryId),
      'the dead-letter entry',
      WAIT_MS,
    );
    await new Queue('dead-letter', { connection: redis, prefix }).remove(entryId);
    expect((await pool.deadLetter.list()).map((e) => e.id)).not.toContain(entryId);
    await until(
      async () => (await pool.deadLetter.list()).find((e) => e.id === entryId),
      'the sweep to restore the entry',
      WAIT_MS,
    );
  });

  test('job data other than the declared ids is refused when added', async () => {
    const attempts: [string, unknown][] = [
      ['an extra key', { taskId: 'task-4', patientName: 'Jane Roe' }],
      ['free text in an id field', { taskId: 'Jane Roe, born 1970' }],
      ['a missing id', {}],
      ['a nested object', { taskId: { name: 'Jane' } }],
    ];
    for (const [what, data] of attempts) {
      const added = pool.producer.add(flaky, data as { taskId: string });
      await expect(added).rejects.toBeInstanceOf(JobDataError);
      await expect(added).rejects.toThrow(/job data for queue "flaky" refused/);
      // The message names keys, never values.
      await expect(added).rejects.not.toThrow(/Jane/);
      expect(what).toBeTruthy();
    }
    expect(await pool.producer.queue('flaky').getJobCountByTypes('waiting', 'delayed', 'active')).toBe(0);
  });

  test('a job that reaches Redis with more than ids (bypassing the producer) fails at once, is scrubbed and dead-lettered without its data', async () => {
    const raw = new Queue('flaky', { connection: redis, prefix });
    await raw.add('flaky', { taskId: 'task-5', note: 'Jane Roe has a cough' }, { jobId: 'raw-5', attempts: 5 });
    await raw.close();
    const entry = await until(
      async () => (await pool.deadLetter.list()).find((e) => e.id === 'flaky.raw-5'),
      'the refused job to be dead-lettered',
      WAIT_MS,
    );
    expect(entry).toMatchObject({ queue: 'flaky', jobId: 'raw-5', data: null, attempts: 1 });
    expect(entry.error).toMatch(/unexpected key\(s\) "note"/);
    const job = await pool.producer.queue('flaky').getJob('raw-5');
    expect(job?.data).toEqual({});
    expect(JSON.stringify(entry)).not.toContain('Jane');
    expect(flakyStarts.has('task-5')).toBe(false);
  });

  test('close() waits for the running job to finish', async () => {
    const jobId = await pool.producer.add(slow, { taskId: 'task-6' }, { jobId: 'slow-6' });
    await until(async () => slowJobStarted, 'the slow job to start', WAIT_MS);
    const closing = pool.close();
    let closed = false;
    void closing.then(() => {
      closed = true;
    });
    // Time, not an event: close() reports nothing while it waits, and one that ignored the running job
    // would return after its idle wait (IDLE_CLOSE_WAIT_MS, 1 s, in src/queues/worker-runner.ts).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(closed).toBe(false);
    releaseSlowJob();
    await closing;
    const queue = new Queue('slow', { connection: redis, prefix });
    expect(await (await queue.getJob(jobId))?.isCompleted()).toBe(true);
    await queue.close();
  });
});
