/**
 * How a queue is declared, once: its name, the ids its jobs carry, how often a job is tried and
 * how long it waits between tries, how many run at once, and the job function. The producer, the
 * worker runner, the outbox relay and the admin view all read the same declaration.
 */
import { Queue } from 'bullmq';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Database } from '../db/database.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import type { Mailer } from '../notify/mailer.ts';
import type { Clock } from '../runtime/clock.ts';
import { jobDataSchema, parseJobData } from './job-data.ts';
import type { JobDataFieldKind, JobDataOf } from './job-data.ts';

/** What a job function may use: the composition root builds it once per process. */
export interface WorkerDeps {
  db: Database;
  repository: RepositoryContext;
  mailer: Mailer;
  /** The hub's public base URL, for links in e-mails. */
  baseUrl: string;
  logger: Logger;
  /** The hub's clock (runtime/clock.ts): every date rule a job applies reads it. */
  clock: Clock;
}

/** What a job function knows about the job it runs. */
export interface JobInfo {
  id: string;
  queue: string;
  /** Tries made before this one. */
  attemptsMade: number;
  attempts: number;
  /** True when a failure now sends the job to the dead-letter queue. */
  finalAttempt: boolean;
}

export type JobFunction<Data> = (data: Data, job: JobInfo, deps: WorkerDeps) => Promise<unknown>;

export interface QueueDefinition<Data = Record<string, unknown>> {
  readonly name: string;
  readonly schema: z.ZodType<Data>;
  readonly attempts: number;
  /** First retry delay; each later retry waits twice as long as the one before. */
  readonly backoffMs: number;
  readonly concurrency: number;
  /**
   * Completed jobs are removed at once instead of kept a week: for jobs never re-added under the same
   * id (not relayed from the outbox), whose job ids should be reusable as soon as one is done.
   */
  readonly removeOnComplete?: boolean;
  // Method syntax on purpose: it lets a QueueDefinition<X> stand in a list of AnyQueueDefinition.
  process(data: Data, job: JobInfo, deps: WorkerDeps): Promise<unknown>;
}

/** A definition with its data type erased, for lists of queues of different kinds. */
export type AnyQueueDefinition = QueueDefinition<unknown>;

const QUEUE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const DEFAULT_ATTEMPTS = 8;
export const DEFAULT_BACKOFF_MS = 1000;

export function defineQueue<F extends Record<string, JobDataFieldKind>>(declaration: {
  name: string;
  /** The payload's fields and the id kind of each: nothing else is accepted. */
  data: F;
  attempts?: number;
  backoffMs?: number;
  concurrency?: number;
  removeOnComplete?: boolean;
  process: JobFunction<JobDataOf<F>>;
}): QueueDefinition<JobDataOf<F>> {
  if (!QUEUE_NAME.test(declaration.name) || declaration.name === DEAD_LETTER_QUEUE) {
    throw new Error(
      `queue name "${declaration.name}" must be lower-case letters, digits and dashes, and not "${DEAD_LETTER_QUEUE}"`,
    );
  }
  const attempts = declaration.attempts ?? DEFAULT_ATTEMPTS;
  const concurrency = declaration.concurrency ?? 1;
  if (!Number.isInteger(attempts) || attempts < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`queue "${declaration.name}": attempts and concurrency must be positive integers`);
  }
  return {
    name: declaration.name,
    schema: jobDataSchema(declaration.data),
    attempts,
    backoffMs: declaration.backoffMs ?? DEFAULT_BACKOFF_MS,
    concurrency,
    ...(declaration.removeOnComplete ? { removeOnComplete: true } : {}),
    process: declaration.process,
  };
}

/** The queue every job that ran out of tries is recorded in (see dead-letter.ts). */
export const DEAD_LETTER_QUEUE = 'dead-letter';

const KEEP_FINISHED_SECONDS = 7 * 24 * 3600;

/** The BullMQ options of a queue's jobs, whoever adds them (producer or outbox relay). */
export function jobOptions(definition: AnyQueueDefinition): JobsOptions {
  return {
    attempts: definition.attempts,
    backoff: { type: 'exponential', delay: definition.backoffMs },
    // Kept long enough that a re-added job id (a relay retry) still finds its job and is ignored.
    removeOnComplete: definition.removeOnComplete === true ? true : { age: KEEP_FINISHED_SECONDS },
    // Failed jobs stay until retried from the dead-letter view.
    removeOnFail: false,
  };
}

/** Adds jobs to declared queues, refusing any payload that is not ids only. */
export class QueueProducer {
  private readonly connection: Redis;
  private readonly prefix: string;
  private readonly definitions = new Map<string, AnyQueueDefinition>();
  private readonly queues = new Map<string, Queue>();

  constructor(options: { connection: Redis; prefix: string; definitions: readonly AnyQueueDefinition[] }) {
    this.connection = options.connection;
    this.prefix = options.prefix;
    for (const definition of options.definitions) {
      this.definitions.set(definition.name, definition);
    }
  }

  get queueNames(): string[] {
    return [...this.definitions.keys()];
  }

  definition(name: string): AnyQueueDefinition | undefined {
    return this.definitions.get(name);
  }

  /** The BullMQ queue of a declared queue name. */
  queue(name: string): Queue {
    const definition = this.definitions.get(name);
    if (!definition) {
      throw new Error(`queue "${name}" is not declared`);
    }
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, {
        connection: this.connection,
        prefix: this.prefix,
        defaultJobOptions: jobOptions(definition),
      });
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue;
  }

  /**
   * Adds a job; `jobId` makes the add idempotent (BullMQ ignores an id it already holds).
   * Returns the job id. Throws a JobDataError when the data is not the queue's ids.
   */
  async add<Data>(
    definition: QueueDefinition<Data>,
    data: Data,
    options: { jobId?: string; name?: string } = {},
  ): Promise<string> {
    const valid = parseJobData(definition.name, definition.schema, data);
    const job = await this.queue(definition.name).add(options.name ?? definition.name, valid, { jobId: options.jobId });
    return job.id as string;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
