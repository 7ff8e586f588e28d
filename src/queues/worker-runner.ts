/**
 * Runs the workers of declared queues: each job's data is checked against its queue's ids-only
 * schema before the job function sees it (refused data fails at once, without retries), a job that
 * fails for good is recorded in the dead-letter queue, an outbox event's job is recorded finished in
 * the database (outbox-jobs.ts), and `close()` lets running jobs finish.
 */
import { UnrecoverableError, Worker } from 'bullmq';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { workerConnection } from './connection.ts';
import { DeadLetterQueue } from './dead-letter.ts';
import { JobDataError, parseJobData, redactErrorMessage } from './job-data.ts';
import { OutboxJobs, RedisRestartWatch } from './outbox-jobs.ts';
import { QueueProducer } from './queue-definitions.ts';
import type { AnyQueueDefinition, JobInfo, WorkerDeps } from './queue-definitions.ts';

export interface WorkerRuntimeOptions {
  redisUrl: string;
  prefix: string;
  /** Connection for the producer and the dead-letter queue (fails fast when Redis is down). */
  connection: Redis;
  logger: Logger;
  /** How long a running job's lock lasts without renewal: a killed worker's job runs again after it. */
  lockDurationMs?: number;
  /** How often workers look for jobs whose worker died. */
  stalledIntervalMs?: number;
  /** How often the dead-letter sweep runs (see dead-letter.ts). */
  sweepIntervalMs?: number;
}

const DEFAULT_SWEEP_INTERVAL_MS = 60_000;
const CLOSE_POLL_MS = 100;
const IDLE_CLOSE_WAIT_MS = 1000;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function jobInfo(queue: string, job: Job): JobInfo {
  const attempts = job.opts.attempts ?? 1;
  return {
    id: job.id as string,
    queue,
    attemptsMade: job.attemptsMade,
    attempts,
    finalAttempt: job.attemptsMade + 1 >= attempts,
  };
}

/** The processor BullMQ runs: validation first, then the queue's job function. */
export function processorFor(definition: AnyQueueDefinition, deps: WorkerDeps): (job: Job) => Promise<unknown> {
  return async (job) => {
    let data: unknown;
    try {
      data = parseJobData(definition.name, definition.schema, job.data);
    } catch (err) {
      if (err instanceof JobDataError) {
        // Whatever was in the refused payload must not stay in Redis.
        await job.updateData({});
        throw new UnrecoverableError(err.message);
      }
      throw err;
    }
    return definition.process(data, jobInfo(definition.name, job), deps);
  };
}

export class WorkerPool {
  readonly producer: QueueProducer;
  readonly deadLetter: DeadLetterQueue;
  private readonly workers: { worker: Worker; connection: Redis }[] = [];
  private readonly logger: Logger;
  private readonly definitions: readonly AnyQueueDefinition[];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;
  private readonly recording = new Set<Promise<void>>();
  private runningJobs = 0;
  private outbox: OutboxJobs | undefined;

  constructor(definitions: readonly AnyQueueDefinition[], options: WorkerRuntimeOptions) {
    this.definitions = definitions;
    this.logger = options.logger.child({ role: 'worker' });
    this.producer = new QueueProducer({ connection: options.connection, prefix: options.prefix, definitions });
    this.deadLetter = new DeadLetterQueue({
      connection: options.connection,
      prefix: options.prefix,
      producer: this.producer,
    });
  }

  /** Starts one worker per definition, and the periodic dead-letter sweep. */
  start(deps: WorkerDeps, options: WorkerRuntimeOptions): void {
    const outbox = new OutboxJobs(deps.db, this.logger);
    this.outbox = outbox;
    for (const definition of this.definitions) {
      const connection = workerConnection(options.redisUrl);
      const restarts = new RedisRestartWatch(connection);
      const runJob = processorFor(definition, deps);
      const countedJob = async (job: Job): Promise<unknown> => {
        this.runningJobs++;
        try {
          return await outbox.run(job, restarts, () => runJob(job));
        } finally {
          this.runningJobs--;
        }
      };
      const worker = new Worker(definition.name, countedJob, {
        connection,
        prefix: options.prefix,
        concurrency: definition.concurrency,
        ...(options.lockDurationMs ? { lockDuration: options.lockDurationMs } : {}),
        ...(options.stalledIntervalMs ? { stalledInterval: options.stalledIntervalMs } : {}),
      });
      worker.on('error', (err) =>
        this.logger.warn({ queue: definition.name, err: { message: redactErrorMessage(err.message) } }, 'worker error'),
      );
      worker.on('failed', (job, err) => {
        if (job) {
          const recorded = this.onFailed(definition.name, job, err);
          this.recording.add(recorded);
          void recorded.finally(() => this.recording.delete(recorded));
        }
      });
      this.workers.push({ worker, connection });
    }
    const interval = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    const sweep = (): void => {
      this.sweeping = this.deadLetter
        .sweep(this.definitions.map((definition) => definition.name))
        .catch((err: unknown) =>
          this.logger.warn(
            { err: { message: redactErrorMessage((err as Error).message) } },
            'dead-letter sweep failed',
          ),
        )
        .finally(() => {
          this.sweeping = undefined;
          if (this.workers.length > 0) {
            this.sweepTimer = setTimeout(sweep, interval);
          }
        });
    };
    sweep();
    this.logger.info({ queues: this.definitions.map((definition) => definition.name) }, 'workers started');
  }

  private async onFailed(queue: string, job: Job, err: Error): Promise<void> {
    const error = redactErrorMessage(err.message);
    try {
      const final = await job.isFailed();
      this.logger.warn({ queue, jobId: job.id, attemptsMade: job.attemptsMade, final, error }, 'job failed');
      if (final) {
        await this.deadLetter.record(queue, job, error);
        await this.outbox?.failedForGood(job);
      }
    } catch (recordError) {
      // The sweep records it later.
      this.logger.warn(
        { queue, jobId: job.id, err: { message: redactErrorMessage((recordError as Error).message) } },
        'dead-letter record failed',
      );
    }
  }

  /**
   * Stops taking jobs and waits for the running ones to finish (BullMQ's close). Stops waiting
   * once no job is running and a second has passed (BullMQ's close waits for Redis, which may be
   * down), or after `graceMs`: jobs still running then are idempotent and run again on another
   * worker once their locks expire.
   */
  async close(graceMs?: number): Promise<void> {
    const running = this.workers.splice(0);
    clearTimeout(this.sweepTimer);
    const started = Date.now();
    let closed = false;
    // Without Redis no running job can finish anyway (nor be marked done): close at once, and
    // BullMQ's graceful close, which waits for Redis, would never return.
    const redisDown = running.some(({ connection }) => connection.status !== 'ready');
    const drained = Promise.all(running.map(({ worker }) => worker.close(redisDown))).then(() => {
      closed = true;
    });
    drained.catch(() => undefined);
    for (;;) {
      await Promise.race([drained, delay(CLOSE_POLL_MS)]);
      const waited = Date.now() - started;
      if (closed || (this.runningJobs === 0 && waited >= IDLE_CLOSE_WAIT_MS)) {
        break;
      }
      if (graceMs !== undefined && waited >= graceMs) {
        this.logger.warn(
          { graceMs, runningJobs: this.runningJobs },
          'jobs still running at the end of the shutdown grace; leaving them to be retried',
        );
        for (const { worker } of running) {
          worker.cancelAllJobs('shutdown');
        }
        break;
      }
    }
    if (!closed) {
      // BullMQ's close is still waiting (for Redis or for a job): cut its connections, or their
      // reconnect timers would keep the process alive.
      for (const { worker } of running) {
        // Not awaited: it waits for an 'end' event that a connection to a dead Redis may never emit.
        worker.disconnect().catch(() => undefined);
      }
    }
    await Promise.race([Promise.all([this.sweeping, ...this.recording]), delay(IDLE_CLOSE_WAIT_MS)]);
    clearTimeout(this.sweepTimer);
    for (const { connection } of running) {
      connection.disconnect();
    }
    await this.deadLetter.close();
    await this.producer.close();
  }
}

/** Starts the workers of `definitions`; `close()` drains them. */
export function startWorkers(
  definitions: readonly AnyQueueDefinition[],
  deps: WorkerDeps,
  options: WorkerRuntimeOptions,
): WorkerPool {
  const pool = new WorkerPool(definitions, options);
  pool.start(deps, options);
  return pool;
}
