/**
 * Moves outbox rows into BullMQ. Each event becomes a job whose id is derived from the database's
 * identity and the outbox id, so a relay that dies after enqueueing but before marking the row re-adds
 * the same job id, which BullMQ ignores: the job arrives exactly once. Several relays may run; SKIP
 * LOCKED splits the work. Before its first dispatch the relay makes sure the queue prefix is its
 * database's and its outbox sequence is past every id it dispatched before (queue-prefix.ts).
 */
import { Queue } from 'bullmq';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import { lockPendingEvents, markDispatched, pruneDispatched } from '../db/outbox.ts';
import type { PendingOutboxEvent } from '../db/outbox.ts';
import { catchUpOutboxSequence, claimQueuePrefix, databaseId, outboxJobId, recordDispatched } from './queue-prefix.ts';

const BATCH_SIZE = 200;
// Dispatched rows are kept a week (as long as BullMQ keeps finished jobs) for tracing, then pruned.
const KEEP_DISPATCHED_MS = 7 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS = 3600 * 1000;

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
