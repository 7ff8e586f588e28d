/**
 * The transactional outbox: an event row written in the same transaction as the data it is about.
 * The relay (src/queues/outbox-relay.ts) moves pending rows to BullMQ.
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

/** Deletes dispatched events older than `olderThanMs` (the outbox is not an archive). */
export async function pruneDispatched(conn: Queryable, olderThanMs: number): Promise<number> {
  const result = await conn.query(
    `DELETE FROM outbox WHERE dispatched_at IS NOT NULL AND dispatched_at < now() - make_interval(secs => $1)`,
    [olderThanMs / 1000],
  );
  return result.rowCount;
}
