/**
 * The workers' half of the outbox's guarantee (docs/architecture.md, "The transactional outbox and
 * its relay"). Redis may lose the last writes it acknowledged, so an outbox event is not done when
 * its job is added, but when the job has finished: a worker records that in the database (one
 * statement per finished job), and the relay's sweep adds again the jobs of unfinished events that
 * Redis no longer holds.
 *
 * The same loss can take a job's completion and leave the job, which then runs again. So a job that
 * Redis held before its latest restart runs only if the database does not record it finished: the
 * extra read is paid by those jobs alone, not in normal running.
 */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import { isFinished, markFinished } from '../db/outbox.ts';
import { redactErrorMessage } from './job-data.ts';
import { databaseId, outboxEventId } from './queue-prefix.ts';

/**
 * Jobs created up to this long after the Redis server's start, on this process's clock, count as
 * created before it: room for the clocks of the processes that add jobs, and for the uptime's whole
 * seconds.
 */
const CLOCK_MARGIN_MS = 30_000;
const UPTIME = /^uptime_in_seconds:(\d+)/m;

/**
 * When the Redis server behind a connection started: a job created before then may have run before
 * the restart, and the restart may have lost its completion. Unknown (every job counts as older)
 * from a disconnection until the server has said its uptime again. BullMQ stamps jobs with
 * `Date.now()` of the process that adds them, so this reads the same clock, not the hub's.
 */
export class RedisRestartWatch {
  private readonly connection: Redis;
  private startedAt: number | undefined;
  private closes = 0;

  constructor(connection: Redis) {
    this.connection = connection;
    connection.on('close', () => {
      this.startedAt = undefined;
      this.closes++;
    });
    connection.on('ready', () => void this.refresh());
    if (connection.status === 'ready') {
      void this.refresh();
    }
  }

  private async refresh(): Promise<void> {
    const closes = this.closes;
    try {
      const uptime = UPTIME.exec(await this.connection.info('server'))?.[1];
      if (uptime !== undefined && closes === this.closes) {
        this.startedAt = Date.now() - Number(uptime) * 1000;
      }
    } catch {
      // Stays unknown until the next connection: jobs are checked meanwhile.
    }
  }

  /** True unless the job is known to have been created after the server started. */
  mayPredateRestart(job: Job): boolean {
    return this.startedAt === undefined || job.timestamp < this.startedAt + CLOCK_MARGIN_MS;
  }
}

interface OutboxEvent {
  db: Database;
  id: number;
}

export class OutboxJobs {
  private readonly db: Database | undefined;
  private readonly logger: Logger;
  private database: Promise<string> | undefined;

  /** `db` is undefined where a worker pool serves no database (then no job is an outbox job). */
  constructor(db: Database | undefined, logger: Logger) {
    this.db = db;
    this.logger = logger;
  }

  /** Runs a job; an outbox job is recorded finished after it, or skipped when it already was. */
  async run(job: Job, restarts: RedisRestartWatch, runJob: () => Promise<unknown>): Promise<unknown> {
    const event = await this.outboxEvent(job);
    if (!event) {
      return runJob();
    }
    if (restarts.mayPredateRestart(job) && (await isFinished(event.db, event.id))) {
      this.logger.info({ jobId: job.id }, 'outbox job finished before Redis restarted; not run again');
      return undefined;
    }
    const result = await runJob();
    await this.recordFinished(event, job);
    return result;
  }

  /** Records an outbox job that failed for good: it is in the dead-letter view, not lost. */
  async failedForGood(job: Job): Promise<void> {
    const event = await this.outboxEvent(job);
    if (event) {
      await this.recordFinished(event, job);
    }
  }

  /** The outbox event of a job this database's relay added; undefined for any other job. */
  private async outboxEvent(job: Job): Promise<OutboxEvent | undefined> {
    const db = this.db;
    if (!db || !job.id?.startsWith('outbox-')) {
      return undefined;
    }
    const id = outboxEventId(await this.ownDatabase(db), job.id);
    return id === undefined ? undefined : { db, id };
  }

  private ownDatabase(db: Database): Promise<string> {
    if (!this.database) {
      const pending = databaseId(db);
      this.database = pending;
      pending.catch(() => {
        if (this.database === pending) {
          this.database = undefined;
        }
      });
    }
    return this.database;
  }

  private async recordFinished(event: OutboxEvent, job: Job): Promise<void> {
    try {
      await markFinished(event.db, [event.id]);
    } catch (err) {
      // The job is done; the relay's sweep finds it finished in Redis and records it then.
      this.logger.warn(
        { jobId: job.id, err: { message: redactErrorMessage((err as Error).message) } },
        'could not record an outbox job as finished; the relay will',
      );
    }
  }
}
