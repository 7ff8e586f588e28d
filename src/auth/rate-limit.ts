/**
 * Token buckets per key (an IP address, an account) for the login and token endpoints. RateLimiter
 * keeps them in this process's memory; SharedRateLimits keeps them in Redis (REDIS_URL, under
 * QUEUE_PREFIX), so that every hub process on one Redis draws on one budget: one Lua script does
 * the same arithmetic atomically, on Redis's clock. Keys hold the SHA-256 of the address or e-mail,
 * never the value. When Redis does not answer, each limiter falls back to its in-process buckets
 * (logged once per outage) rather than refusing logins. The account lock-out (login.ts) is in the
 * database and holds across processes anyway.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface BucketOptions {
  /** Requests allowed at once. */
  capacity: number;
  /** Requests regained per second. */
  refillPerSecond: number;
  /** Keys remembered at most; idle full buckets are dropped first. */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class RateLimiter {
  private readonly options: Required<BucketOptions>;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: BucketOptions) {
    this.options = { maxKeys: 50_000, ...options };
  }

  /** Takes one token for `key`: 0 when allowed, otherwise the seconds until one is available. */
  take(key: string, nowMs: number = Date.now()): number {
    const { capacity, refillPerSecond } = this.options;
    const bucket = this.buckets.get(key) ?? { tokens: capacity, updatedMs: nowMs };
    bucket.tokens = Math.min(
      capacity,
      bucket.tokens + (Math.max(0, nowMs - bucket.updatedMs) / 1000) * refillPerSecond,
    );
    bucket.updatedMs = nowMs;
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.options.maxKeys) {
      this.evict(nowMs);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / refillPerSecond);
  }

  private evict(nowMs: number): void {
    const fullAfterMs = (this.options.capacity / this.options.refillPerSecond) * 1000;
    for (const [key, bucket] of this.buckets) {
      if (nowMs - bucket.updatedMs >= fullAfterMs) {
        this.buckets.delete(key);
      }
    }
    // Map order is least recently used first.
    while (this.buckets.size > this.options.maxKeys) {
      this.buckets.delete(this.buckets.keys().next().value as string);
    }
  }
}

/** Takes one token for a key: 0 when allowed, otherwise the seconds until one is available. */
export interface RateLimit {
  take(key: string): Promise<number>;
}

/** A limiter of this process alone. */
export function localRateLimit(options: BucketOptions): RateLimit {
  const limiter = new RateLimiter(options);
  return { take: async (key) => limiter.take(key) };
}

/**
 * KEYS[1] the bucket (a hash of tokens `t` and last update `u`, in ms); ARGV capacity, refill per ms,
 * and the time after which an untouched bucket is full again (its expiry). Returns {allowed, tokens}:
 * tokens as a string, because Redis turns Lua numbers into integers.
 */
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * refill)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {allowed, tostring(tokens)}
`;

/** A Redis answer slower than this counts as no answer: a login must not wait on it. */
const REDIS_TIMEOUT_MS = 500;

export interface SharedRateLimitOptions {
  redis: Redis;
  /** QUEUE_PREFIX: the hub's namespace in Redis. */
  prefix: string;
  logger: Logger;
  timeoutMs?: number;
}

/** The limiters of every hub process sharing one Redis and prefix. */
export class SharedRateLimits {
  private readonly options: SharedRateLimitOptions;
  private degraded = false;

  constructor(options: SharedRateLimitOptions) {
    this.options = options;
  }

  /** A limiter named `name` (its keys are `<prefix>:rate-limit:<name>:<sha256 of the key>`). */
  limiter(name: string, bucket: BucketOptions): RateLimit {
    const fallback = new RateLimiter(bucket);
    const ttlMs = Math.ceil((bucket.capacity / bucket.refillPerSecond) * 1000);
    return {
      take: async (key) => {
        const redisKey = `${this.options.prefix}:rate-limit:${name}:${createHash('sha256').update(key).digest('hex')}`;
        try {
          const tokens = await this.run(redisKey, bucket, ttlMs);
          this.recovered();
          return tokens === undefined ? 0 : Math.ceil((1 - tokens) / bucket.refillPerSecond);
        } catch (err) {
          this.failed(err as Error);
          return fallback.take(key);
        }
      },
    };
  }

  /** Undefined when allowed, else the tokens left (less than one). */
  private async run(redisKey: string, bucket: BucketOptions, ttlMs: number): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.options.timeoutMs ?? REDIS_TIMEOUT_MS} ms`)),
        this.options.timeoutMs ?? REDIS_TIMEOUT_MS,
      );
    });
    try {
      const evaluation = this.options.redis.eval(
        TAKE_SCRIPT,
        1,
        redisKey,
        bucket.capacity,
        bucket.refillPerSecond / 1000,
        ttlMs,
      );
      // A late answer (or failure) after the timeout is dropped.
      evaluation.catch(() => undefined);
      const [allowed, tokens] = (await Promise.race([evaluation, timeout])) as [number, string];
      return allowed === 1 ? undefined : Number(tokens);
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(err: Error): void {
    if (this.degraded) {
      return;
    }
    this.degraded = true;
    this.options.logger.warn(
      { err: err.message },
      'rate limits: Redis does not answer; limiting per process until it does',
    );
  }

  private recovered(): void {
    if (!this.degraded) {
      return;
    }
    this.degraded = false;
    this.options.logger.info('rate limits: Redis answers again; limits are shared across processes');
  }
}

/** The limits the hub uses. */
export const LOGIN_PER_IP: BucketOptions = { capacity: 30, refillPerSecond: 10 / 60 };
export const LOGIN_PER_ACCOUNT: BucketOptions = { capacity: 10, refillPerSecond: 1 / 60 };
export const TOKEN_PER_IP: BucketOptions = { capacity: 60, refillPerSecond: 1 };
