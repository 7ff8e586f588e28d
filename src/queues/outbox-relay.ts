/**
 * Moves outbox rows into BullMQ. Each event becomes a job whose id is derived from the database's
 * identity and the outbox id, so a relay that dies after enqueueing but before marking the row re-adds
 * the same job id, which BullMQ ignores: the job arrives exactly once. Several relays may run; SKIP
 * LOCKED splits the work. Before its first dispatch the relay makes sure the queue prefix is its
 * database's and its outbox sequence is past every id it dispatched before (queue-prefix.ts).
 *
 * Redis acknowledges writes before they are on disk (`appendfsync everysec`), so a dispatched event
 * is not done until its job is recorded finished (outbox-jobs.ts). A sweep looks at dispatched,
 * unfinished events a batch at a time and adds again, under the same job id, the jobs Redis no longer
 * holds; jobs it finds finished in Redis (completed, or failed for good) it records finished.
 */
import { Queue } from 'bullmq';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import {
  lockPendingEvents,
  markDispatched,
  markFinished,
  pruneDispatched,
  unfinishedAmong,
  unfinishedEvents,
} from '../db/outbox.ts';
import type { PendingOutboxEvent } from '../db/outbox.ts';
import { catchUpOutboxSequence, claimQueuePrefix, databaseId, outboxJobId, recordDispatched } from './queue-prefix.ts';

const BATCH_SIZE = 200;
// Dispatched rows are kept a week (as long as BullMQ keeps finished jobs) for tracing, then pruned.
const KEEP_DISPATCHED_MS = 7 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS = 3600 * 1000;
/** Batches one sweep looks at (more while it finds lost jobs): a backlog of waiting jobs delays it little. */
const SWEEP_PASSES = 10;
/** How long after its dispatch an unfinished event's job must still be in Redis, by default. */
export const DEFAULT_REDISPATCH_AFTER_MS = 30_000;

/** Defaults for every job the relay creates: retries with backoff, finished jobs kept a week. */
export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000 },
  // Kept long enough that a re-relayed event still finds its job and is deduplicated.
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: false,
};

export interface OutboxRelayOptions {
  db: Database;
  connection: Redis;
  prefix: string;
  pollMs: number;
  logger: Logger;
  /** Runs after rows are locked and before any job is added (fault-injection point for tests). */
  beforeEnqueue?: (events: PendingOutboxEvent[]) => Promise<void> | void;
  /** Runs after jobs are added and before the rows are marked (fault-injection point for tests). */
  afterEnqueue?: (events: PendingOutboxEvent[]) => Promise<void> | void;
  /** Counts dispatched events (metrics). */
  onDispatched?: (count: number) => void;
  /**
   * How long after dispatch the sweep looks for an unfinished event's job in Redis, and adds it
   * again when it is gone; the sweep runs every half of it.
   */
  redispatchAfterMs?: number;
  /** A declared queue's own job options (tries, backoff; see queue-definitions.ts); else the defaults. */
  jobOptions?: (queue: string) => JobsOptions | undefined;
}

export class OutboxRelay {
  private readonly options: OutboxRelayOptions;
  private readonly queues = new Map<string, Queue>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private again = false;
  private failures = 0;
  private lastPrune = 0;
  private lastSweep = 0;
  /** The sweep's place: the outbox id after which its next batch starts. */
  private sweptTo = 0;
  /** This database's id, once the prefix is known to be its own. */
  private claimed: string | undefined;

  constructor(options: OutboxRelayOptions) {
    this.options = options;
  }

  /**
   * Claims the queue prefix for this database and catches the outbox sequence up with what was
   * dispatched before (a restored backup); throws QueuePrefixInUseError when another database owns it.
   */
  async claim(): Promise<string> {
    if (this.claimed) {
      return this.claimed;
    }
    const database = await databaseId(this.options.db);
    await claimQueuePrefix(this.options.connection, this.options.prefix, database);
    const moved = await catchUpOutboxSequence(this.options.connection, this.options.db, this.options.prefix, database);
    if (moved !== undefined) {
      this.options.logger.warn(
        { outboxSequence: moved },
        'the outbox sequence was behind what this database dispatched before (a restored backup?); moved past it',
      );
    }
    this.claimed = database;
    return database;
  }

  queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      const defaultJobOptions = this.options.jobOptions?.(name) ?? DEFAULT_JOB_OPTIONS;
      queue = new Queue(name, { connection: this.options.connection, prefix: this.options.prefix, defaultJobOptions });
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Relays one batch; returns how many events it dispatched. */
  async relayOnce(): Promise<number> {
    const database = await this.claim();
    let highest = 0;
    const dispatched = await this.options.db.transaction(async (tx) => {
      const events = await lockPendingEvents(tx, BATCH_SIZE);
      if (events.length === 0) {
        return 0;
      }
      await this.options.beforeEnqueue?.(events);
      await this.addJobs(database, events);
      await this.options.afterEnqueue?.(events);
      await markDispatched(
        tx,
        events.map((event) => event.id),
      );
      highest = Math.max(...events.map((event) => Number(event.id)));
      return events.length;
    });
    if (dispatched > 0) {
      this.options.onDispatched?.(dispatched);
      // After the commit: a relay killed before it leaves its events pending under ids above the mark,
      // so the restart re-adds the same job ids and BullMQ keeps one of each.
      await recordDispatched(this.options.connection, this.options.prefix, database, highest);
    }
    return dispatched;
  }

  /** Adds the events' jobs, each under its outbox job id (BullMQ ignores an id it holds). */
  private async addJobs(database: string, events: PendingOutboxEvent[]): Promise<void> {
    const byQueue = new Map<string, PendingOutboxEvent[]>();
    for (const event of events) {
      byQueue.set(event.queue, [...(byQueue.get(event.queue) ?? []), event]);
    }
    for (const [queueName, batch] of byQueue) {
      await this.queue(queueName).addBulk(
        batch.map((event) => ({
          name: event.name,
          data: event.payload,
          opts: { jobId: outboxJobId(database, event.id) },
        })),
      );
    }
  }

  /**
   * One pass of the sweep over dispatched events whose jobs are not recorded finished: the next
   * batch of them, dispatched at least `redispatchAfterMs` ago. A job Redis no longer holds is added
   * again under its id; one Redis holds as completed or failed is recorded finished (its worker's
   * record was lost, or came from a worker of an older hub). Returns how many jobs it added again.
   */
  async sweepOnce(): Promise<number> {
    const database = await this.claim();
    const events = await unfinishedEvents(this.options.db, {
      afterId: this.sweptTo,
      olderThanMs: this.options.redispatchAfterMs ?? DEFAULT_REDISPATCH_AFTER_MS,
      limit: BATCH_SIZE,
    });
    const last = events.at(-1);
    this.sweptTo = events.length === BATCH_SIZE && last ? Number(last.id) : 0;
    const jobs = await Promise.all(
      events.map(async (event) => {
        const job = await this.queue(event.queue).getJob(outboxJobId(database, event.id));
        // finishedOn is set when a job completes or fails for good (a retry from the dead-letter view clears it).
        const finished = job?.finishedOn ? ['completed', 'failed'].includes(await job.getState()) : false;
        return { event, held: job !== undefined, finished };
      }),
    );
    const missing = jobs.filter((job) => !job.held).map((job) => job.event);
    // A worker records a job finished before BullMQ completes it (and may remove it): one that
    // finished since the query above is not lost.
    const unfinished =
      missing.length > 0
        ? await unfinishedAmong(
            this.options.db,
            missing.map((e) => e.id),
          )
        : new Set();
    const lost = missing.filter((event) => unfinished.has(Number(event.id)));
    const finished = jobs.filter((job) => job.finished).map((job) => Number(job.event.id));
    if (lost.length > 0) {
      await this.addJobs(database, lost);
      this.options.logger.warn(
        { events: lost.length, firstId: lost[0]?.id },
        'Redis no longer held the jobs of dispatched outbox events (lost in a crash?); added them again',
      );
    }
    if (finished.length > 0) {
      await markFinished(this.options.db, finished);
    }
    return lost.length;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Asks for a run as soon as possible (after a write that recorded an event). */
  kick(): void {
    if (this.stopped) {
      return;
    }
    if (this.running) {
      this.again = true;
    } else {
      this.schedule(0);
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) {
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.loop().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
  }

  private async loop(): Promise<void> {
    let next = this.options.pollMs;
    try {
      let dispatched: number;
      do {
        this.again = false;
        dispatched = await this.relayOnce();
      } while ((dispatched === BATCH_SIZE || this.again) && !this.stopped);
      this.failures = 0;
      const redispatchAfterMs = this.options.redispatchAfterMs ?? DEFAULT_REDISPATCH_AFTER_MS;
      if (Date.now() - this.lastSweep >= redispatchAfterMs / 2) {
        this.lastSweep = Date.now();
        // Up to SWEEP_PASSES batches, and on while batches turn up lost jobs, until the sweep comes round.
        for (let passes = 1; ; passes++) {
          const added = await this.sweepOnce();
          if (this.sweptTo === 0 || this.stopped || (added === 0 && passes >= SWEEP_PASSES)) {
            break;
          }
        }
      }
      if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = Date.now();
        await pruneDispatched(this.options.db, KEEP_DISPATCHED_MS);
      }
    } catch (err) {
      this.failures++;
      next = Math.min(this.options.pollMs * 2 ** this.failures, 30_000);
      this.options.logger.warn(
        { err: { message: (err as Error).message }, retryInMs: next },
        'outbox relay failed; will retry',
      );
    }
    this.schedule(next);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
