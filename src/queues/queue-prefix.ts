/**
 * A QUEUE_PREFIX belongs to one database. The outbox relay's job ids are `outbox-<database id>-<outbox
 * id>`, and BullMQ silently ignores a job whose id it already holds: a second database on the same
 * Redis and prefix (a fresh database after a reset, a staging copy) would have its events dropped
 * without a word. So the first process to use a prefix records its database's id under
 * `<prefix>:hub:database`, and a process of another database refuses to use it.
 *
 * A restored backup is the same database, with an outbox sequence behind what Redis has seen: the
 * relay records the highest outbox id it dispatched under `<prefix>:hub:outbox-high:<database id>`,
 * and moves the sequence past it before dispatching, so that no id is handed out twice.
 */
import type { Redis } from 'ioredis';
import type { Database, Queryable } from '../db/database.ts';

export class QueuePrefixInUseError extends Error {
  constructor(prefix: string, owner: string, database: string) {
    super(
      `QUEUE_PREFIX "${prefix}" is in use by another database (${owner}); this database is ${database}. ` +
        `Give each database its own QUEUE_PREFIX, or, if the other database is gone for good, delete the Redis key "${ownerKey(prefix)}".`,
    );
    this.name = 'QueuePrefixInUseError';
  }
}

const ownerKey = (prefix: string): string => `${prefix}:hub:database`;
const highKey = (prefix: string, databaseId: string): string => `${prefix}:hub:outbox-high:${databaseId}`;

/** Keeps the larger of the stored and the given outbox id. */
const RAISE_HIGH = `local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`;

/** The id migration 013 gave this database. */
export async function databaseId(db: Queryable): Promise<string> {
  const result = await db.query<{ id: string }>('SELECT id::text AS id FROM hub_database');
  const id = result.rows[0]?.id;
  if (!id) {
    throw new Error('the database has no identity (table hub_database, migration 013)');
  }
  return id;
}

/** The BullMQ job id of an outbox event (BullMQ refuses all-digit custom ids). */
export const outboxJobId = (database: string, eventId: number): string => `outbox-${database}-${eventId}`;

/** The outbox id in a job id that `outboxJobId` made for `database`; undefined for any other job id. */
export function outboxEventId(database: string, jobId: string): number | undefined {
  const prefix = outboxJobId(database, 0).slice(0, -1);
  const rest = jobId.startsWith(prefix) ? jobId.slice(prefix.length) : '';
  return /^[1-9][0-9]{0,15}$/.test(rest) ? Number(rest) : undefined;
}

/** Resolves when the connection is ready (its commands are not queued while it connects). */
function ready(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') {
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error('Redis is not ready'));
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/** Records `database` as the prefix's owner, or throws QueuePrefixInUseError when another database owns it. */
export async function claimQueuePrefix(redis: Redis, prefix: string, database: string): Promise<void> {
  await ready(redis);
  const key = ownerKey(prefix);
  if ((await redis.set(key, database, 'NX')) === 'OK') {
    return;
  }
  const owner = await redis.get(key);
  if (owner !== null && owner !== database) {
    throw new QueuePrefixInUseError(prefix, owner, database);
  }
  if (owner === null) {
    await claimQueuePrefix(redis, prefix, database);
  }
}

/**
 * Moves the outbox sequence past the highest id this database's relay dispatched before (a database
 * restored from a backup is behind it), and gives pending events at or below it new ids (written
 * after the restore while Redis was away, or pending in the backup): under their old ids BullMQ would
 * take them for jobs it already has. An event that was in fact dispatched runs twice, which the
 * workers allow; none is lost. Returns the id the sequence was moved to, if it was.
 */
export async function catchUpOutboxSequence(
  redis: Redis,
  db: Database,
  prefix: string,
  database: string,
): Promise<number | undefined> {
  const high = Number((await redis.get(highKey(prefix, database))) ?? '0');
  if (!(high > 0)) {
    return undefined;
  }
  return db.transaction(async (tx) => {
    const moved = await tx.query<{ moved: string }>(
      `SELECT setval(q.s, $1) AS moved FROM (SELECT pg_get_serial_sequence('outbox', 'id')::regclass AS s) q
       WHERE $1 > coalesce(pg_sequence_last_value(q.s), 0)`,
      [high],
    );
    await tx.query(
      `UPDATE outbox SET id = nextval(pg_get_serial_sequence('outbox', 'id')) WHERE dispatched_at IS NULL AND id <= $1`,
      [high],
    );
    return moved.rows[0]?.moved ? Number(moved.rows[0].moved) : undefined;
  });
}

/** Records that outbox ids up to `eventId` were dispatched. */
export async function recordDispatched(redis: Redis, prefix: string, database: string, eventId: number): Promise<void> {
  await redis.eval(RAISE_HIGH, 1, highKey(prefix, database), String(eventId));
}
