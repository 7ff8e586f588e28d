/**
 * The dead-letter queue: one entry per job that ran out of tries (or was refused), naming its queue,
 * job id, tries and the error, never its data unless the data passed the queue's ids-only schema.
 * The failed job itself stays in BullMQ's failed set; retrying an entry moves that same job (same
 * id) back to waiting, so a retried job still runs once.
 *
 * Entries are written when a worker sees a job fail for good, and by a sweep over each queue's
 * failed set, which catches what the first path cannot: a crash between BullMQ's move to failed
 * and the entry, and jobs failed by BullMQ's stalled-job check. An entry's id is derived from the
 * queue and job id, so writing it twice keeps one.
 */
import { Queue } from 'bullmq';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { redactErrorMessage } from './job-data.ts';
import { DEAD_LETTER_QUEUE } from './queue-definitions.ts';
import type { QueueProducer } from './queue-definitions.ts';

export interface DeadLetterEntry {
  /** `<queue>.<job id>`: the id used by the view and the retry route. */
  id: string;
  queue: string;
  jobId: string;
  jobName: string;
  /** The job's ids, or null when they did not pass the queue's schema. */
  data: Record<string, unknown> | null;
  attempts: number;
  error: string;
  failedAt: string;
}

type EntryData = Omit<DeadLetterEntry, 'id'>;

export type RetryResult =
  | { outcome: 'retried'; entry: DeadLetterEntry }
  | { outcome: 'not-found' }
  | { outcome: 'unknown-queue'; entry: DeadLetterEntry }
  | { outcome: 'not-failed'; entry: DeadLetterEntry; state: string };

/** How many of each queue's most recent failures a sweep looks at. */
const SWEEP_WINDOW = 1000;

export const deadLetterEntryId = (queue: string, jobId: string): string => `${queue}.${jobId}`;

export class DeadLetterQueue {
  private readonly queue: Queue;
  private readonly producer: QueueProducer;

  constructor(options: { connection: Redis; prefix: string; producer: QueueProducer }) {
    this.producer = options.producer;
    // Nothing consumes this queue: its entries wait there until retried.
    this.queue = new Queue(DEAD_LETTER_QUEUE, { connection: options.connection, prefix: options.prefix });
    this.queue.on('error', () => undefined);
  }

  /** Records a job that failed for good; a second record of the same job is ignored. */
  async record(queue: string, job: Job, error: string): Promise<void> {
    const definition = this.producer.definition(queue);
    const valid = definition?.schema.safeParse(job.data).success ?? false;
    const entry: EntryData = {
      queue,
      jobId: job.id as string,
      jobName: job.name,
      data: valid ? (job.data as Record<string, unknown>) : null,
      attempts: job.attemptsMade,
      error: redactErrorMessage(error),
      failedAt: new Date(job.finishedOn ?? Date.now()).toISOString(),
    };
    await this.queue.add('dead-letter', entry, { jobId: deadLetterEntryId(queue, entry.jobId) });
  }

  /** Records every recent failure of the given queues that has no entry yet. */
  async sweep(queues: readonly string[]): Promise<number> {
    let recorded = 0;
    const known = new Set((await this.list()).map((entry) => entry.id));
    for (const name of queues) {
      const failed = await this.producer.queue(name).getFailed(0, SWEEP_WINDOW - 1);
      for (const job of failed) {
        if (job && !known.has(deadLetterEntryId(name, job.id as string))) {
          await this.record(name, job as Job, job.failedReason ?? 'failed');
          recorded++;
        }
      }
    }
    return recorded;
  }

  async list(): Promise<DeadLetterEntry[]> {
    const jobs = await this.queue.getJobs(['waiting', 'prioritized'], 0, -1, true);
    return jobs.filter((job) => job !== undefined).map((job) => ({ id: job.id as string, ...(job.data as EntryData) }));
  }

  async count(): Promise<number> {
    return this.queue.getJobCountByTypes('waiting', 'prioritized');
  }

  /** The number of entries per queue name. */
  async countsByQueue(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const entry of await this.list()) {
      counts.set(entry.queue, (counts.get(entry.queue) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * Moves the entry's job back to waiting with a fresh set of tries, under the same job id, and
   * removes the entry. A job no longer in Redis is added again under that id from the entry's ids.
   */
  async retry(id: string): Promise<RetryResult> {
    const entryJob = await this.queue.getJob(id);
    if (!entryJob) {
      return { outcome: 'not-found' };
    }
    const entry: DeadLetterEntry = { id, ...(entryJob.data as EntryData) };
    const definition = this.producer.definition(entry.queue);
    if (!definition) {
      return { outcome: 'unknown-queue', entry };
    }
    const queue = this.producer.queue(entry.queue);
    const job = await queue.getJob(entry.jobId);
    if (job) {
      const state = await job.getState();
      if (state !== 'failed') {
        // Already retried by other means (or running): never run it twice; the entry is stale.
        await entryJob.remove();
        return { outcome: 'not-failed', entry, state };
      }
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    } else {
      if (entry.data === null) {
        return { outcome: 'not-failed', entry, state: 'removed' };
      }
      await this.producer.add(definition, entry.data, { jobId: entry.jobId, name: entry.jobName });
    }
    await entryJob.remove();
    return { outcome: 'retried', entry };
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
