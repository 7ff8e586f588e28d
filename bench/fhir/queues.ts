/**
 * The BullMQ jobs the benchmark causes (every ServiceRequest and Task write is relayed as one) live
 * under the bench's own queue prefix; nothing consumes them, so the bench removes them itself.
 */
import { Redis } from 'ioredis';

/** Deletes every Redis key under `${prefix}:`; returns how many. */
export async function clearQueuePrefix(redisUrl: string, prefix: string): Promise<number> {
  if (!/^[\w.-]+$/.test(prefix) || prefix === 'hub') {
    throw new Error(`Refusing to clear the queue prefix "${prefix}"`);
  }
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  await redis.connect();
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) {
        removed += await redis.unlink(...keys);
      }
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return removed;
}
