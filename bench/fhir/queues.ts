/**
 * The BullMQ jobs the benchmark causes (every write of a workflow type is relayed as one) live under
 * the bench's own queue prefix. The bench hub runs the workers too (every role, as `npm start` does),
 * so loading the data set starts the case workflow (an intake for each active ServiceRequest, …);
 * the bench waits for it to finish before it takes the data set as loaded, and removes what is left
 * under the prefix itself.
 */
import { Redis } from 'ioredis';

async function withRedis<T>(redisUrl: string, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  await redis.connect();
  try {
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

async function keysMatching(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [nextCursor, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = nextCursor;
    keys.push(...found);
  } while (cursor !== '0');
  return keys;
}

/**
 * Jobs waiting for a worker or running, in every BullMQ queue under `${prefix}:` (its `wait`,
 * `paused` and `active` lists and `prioritized` set). Delayed jobs (a reminder due days later, a
 * retry's back-off) are not counted.
 */
export async function pendingJobs(redisUrl: string, prefix: string): Promise<number> {
  return withRedis(redisUrl, async (redis) => {
    let pending = 0;
    for (const suffix of ['wait', 'paused', 'active']) {
      for (const key of await keysMatching(redis, `${prefix}:*:${suffix}`)) {
        pending += await redis.llen(key);
      }
    }
    for (const key of await keysMatching(redis, `${prefix}:*:prioritized`)) {
      pending += await redis.zcard(key);
    }
    return pending;
  });
}

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
