/**
 * Redis connections for BullMQ. Producers fail fast when Redis is down (the outbox keeps the work);
 * workers wait for Redis to come back (BullMQ requires maxRetriesPerRequest: null for them).
 */
import { Redis } from 'ioredis';

export function producerConnection(redisUrl: string): Redis {
  const redis = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
  redis.on('error', () => undefined); // reported by /healthz and by the callers whose commands fail
  return redis;
}

export function workerConnection(redisUrl: string): Redis {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  return redis;
}
