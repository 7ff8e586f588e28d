/**
 * The transactional outbox: an event row written in the same transaction as the data it is about.
 * The relay (src/queues/outbox-relay.ts) moves pending rows to BullMQ; the workers record when an
 * event's job has finished (src/queues/outbox-jobs.ts), and until then the relay's sweep makes sure
 * Redis still holds the job.
 */
import { requiredRow } from './database.ts';
import type { Queryable } from './database.ts';

export interface OutboxEventInput {
  queue: string;
  name: string;
  /** Ids only: never a name, identifier or clinical text. */
  payload: Record<string, unknown>;
}

export interface PendingOutboxEvent extends OutboxEventInput {
  id: number;
}

export async function recordOutboxEvent(conn: Queryable, event: OutboxEventInput): Promise<number> {
  const result = await conn.query<{ id: number }>(
    'INSERT INTO outbox (queue, name, payload) VALUES ($1, $2, $3::jsonb) RETURNING id',
    [event.queue, event.name, JSON.stringify(event.payload)],
  );
  return requiredRow(result, 'the outbox insert').id;
}

/** Locks up to `limit` undispatched events, oldest first, skipping those another relay holds. */
export async function lockPendingEvents(tx: Queryable, limit: number): Promise<PendingOutboxEvent[]> {
  const result = await tx.query<PendingOutboxEvent>(
    `SELECT id, queue, name, payload FROM outbox WHERE dispatched_at IS NULL
     ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
    [limit],
  );
  return result.rows;
}

export async function markDispatched(tx: Queryable, ids: number[]): Promise<void> {
  await tx.query('UPDATE outbox SET dispatched_at = now() WHERE id = ANY($1::bigint[])', [ids]);
}

/**
 * Records that the jobs of these events finished: completed, or failed for good (then they wait in
 * the dead-letter view, which is not a loss). The first record stays.
 */
export async function markFinished(conn: Queryable, ids: number[]): Promise<void> {
  await conn.query('UPDATE outbox SET finished_at = now() WHERE id = ANY($1::bigint[]) AND finished_at IS NULL', [ids]);
}

/** Whether the event's job is recorded finished (false for an event no longer in the outbox). */
export async function isFinished(conn: Queryable, id: number): Promise<boolean> {
  const result = await conn.query<{ finished: boolean }>(
    'SELECT finished_at IS NOT NULL AS finished FROM outbox WHERE id = $1',
    [id],
  );
  return result.rows[0]?.finished ?? false;
}

/**
 * Up to `limit` dispatched events whose jobs are not recorded finished, dispatched at least
 * `olderThanMs` ago, in id order from after `afterId` (the sweep goes round them a batch at a time).
 */
export async function unfinishedEvents(
  conn: Queryable,
  options: { afterId: number; olderThanMs: number; limit: number },
): Promise<PendingOutboxEvent[]> {
  const result = await conn.query<PendingOutboxEvent>(
    `SELECT id, queue, name, payload FROM outbox
     WHERE dispatched_at IS NOT NULL AND finished_at IS NULL AND id > $1
       AND dispatched_at < now() - make_interval(secs => $2)
     ORDER BY id LIMIT $3`,
    [options.afterId, options.olderThanMs / 1000, options.limit],
  );
  return result.rows;
}

/** Those of `ids` whose jobs are not recorded finished. */
export async function unfinishedAmong(conn: Queryable, ids: number[]): Promise<Set<number>> {
  const result = await conn.query<{ id: number }>(
    'SELECT id FROM outbox WHERE id = ANY($1::bigint[]) AND finished_at IS NULL',
    [ids],
  );
  return new Set(result.rows.map((row) => Number(row.id)));
}

/** Deletes dispatched events older than `olderThanMs` (the outbox is not an archive). */
export async function pruneDispatched(conn: Queryable, olderThanMs: number): Promise<number> {
  const result = await conn.query(
    `DELETE FROM outbox WHERE dispatched_at IS NOT NULL AND dispatched_at < now() - make_interval(secs => $1)`,
    [olderThanMs / 1000],
  );
  return result.rowCount;
}
