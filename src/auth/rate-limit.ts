/**
 * Request budgets per key (an IP address, an account) for the login and token endpoints, kept by
 * rate-limiter-flexible: in Redis (REDIS_URL, under QUEUE_PREFIX) so that every hub process on one
 * Redis draws on one budget, with an in-process limiter as insurance while Redis does not answer
 * (logged once per outage) rather than refusing logins. Keys hold the SHA-256 of the address or
 * e-mail, never the value. The account-wide lock-out (login.ts) is in the database and holds across
 * processes anyway.
 *
 * A budget is a window: `capacity` requests, counted from the first one, for `windowSeconds`.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RLWrapperTimeouts, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

export interface RateLimitOptions {
  /** Requests allowed in one window. */
  capacity: number;
  /** The window's length, from the key's first request. */
  windowSeconds: number;
}

/** Takes one request from a key's budget: 0 when allowed, otherwise the seconds until the window ends. */
export interface RateLimit {
  take(key: string): Promise<number>;
}

/** A Redis answer slower than this counts as no answer: a login must not wait on it. */
const REDIS_TIMEOUT_MS = 500;

function hashed(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

async function take(limiter: Pick<RateLimiterAbstract, 'consume'>, key: string): Promise<number> {
  try {
    await limiter.consume(hashed(key));
    return 0;
  } catch (refusal) {
    if (refusal instanceof RateLimiterRes) {
      return Math.max(1, Math.ceil(refusal.msBeforeNext / 1000));
    }
    throw refusal;
  }
}

/** A limiter of this process alone. */
export function localRateLimit(options: RateLimitOptions): RateLimit {
  const limiter = new RateLimiterMemory({ points: options.capacity, duration: options.windowSeconds });
  return { take: (key) => take(limiter, key) };
}

export interface FailureLockOptions {
  /** Failures in a row (no success between them, none older than `lockSeconds`) that lock the key… */
  failures: number;
  /** …for this long after the last of them. */
  lockSeconds: number;
}

/** Failures counted per key: enough of them lock the key; a success clears the count. */
export interface FailureLock {
  /** Seconds the key stays locked, 0 when it is not. */
  lockedFor(key: string): Promise<number>;
  fail(key: string): Promise<void>;
  clear(key: string): Promise<void>;
}

type FailureCounter = Pick<RateLimiterAbstract, 'get' | 'penalty' | 'block' | 'delete'>;

function failureLockOf(counter: FailureCounter, options: FailureLockOptions): FailureLock {
  return {
    lockedFor: async (key) => {
      const counted = await counter.get(hashed(key));
      return counted !== null && counted.consumedPoints >= options.failures
        ? Math.max(1, Math.ceil(counted.msBeforeNext / 1000))
        : 0;
    },
    fail: async (key) => {
      const counted = await counter.penalty(hashed(key), 1);
      if (counted.consumedPoints >= options.failures) {
        await counter.block(hashed(key), options.lockSeconds);
      }
    },
    clear: async (key) => {
      await counter.delete(hashed(key));
    },
  };
}

/** A failure lock of this process alone. */
export function localFailureLock(options: FailureLockOptions): FailureLock {
  return failureLockOf(new RateLimiterMemory({ points: options.failures, duration: options.lockSeconds }), options);
}

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
  limiter(name: string, options: RateLimitOptions): RateLimit {
    const window = { points: options.capacity, duration: options.windowSeconds };
    const limiter = new RLWrapperTimeouts({
      limiter: new RateLimiterRedis({
        ...window,
        storeClient: this.options.redis,
        keyPrefix: `${this.options.prefix}:rate-limit:${name}`,
        // A disconnected client answers at once with the insurance instead of queueing the command.
        rejectIfRedisNotReady: true,
      }),
      timeoutMs: this.options.timeoutMs ?? REDIS_TIMEOUT_MS,
      insuranceLimiter: new RateLimiterMemory(window),
    });
    return {
      take: async (key) => {
        this.noteRedisState();
        return take(limiter, key);
      },
    };
  }

  /** A failure lock named `name`, shared like the limiters (keys `<prefix>:rate-limit:<name>:<sha256>`). */
  failureLock(name: string, options: FailureLockOptions): FailureLock {
    const window = { points: options.failures, duration: options.lockSeconds };
    const counter = new RLWrapperTimeouts({
      limiter: new RateLimiterRedis({
        ...window,
        storeClient: this.options.redis,
        keyPrefix: `${this.options.prefix}:rate-limit:${name}`,
        rejectIfRedisNotReady: true,
      }),
      timeoutMs: this.options.timeoutMs ?? REDIS_TIMEOUT_MS,
      insuranceLimiter: new RateLimiterMemory(window),
    });
    const lock = failureLockOf(counter, options);
    return {
      lockedFor: async (key) => {
        this.noteRedisState();
        return lock.lockedFor(key);
      },
      fail: (key) => lock.fail(key),
      clear: (key) => lock.clear(key),
    };
  }

  /** Logs the moment limits stop (or start again) being shared; the limiter itself falls back silently. */
  private noteRedisState(): void {
    const ready = this.options.redis.status === 'ready';
    if (ready === !this.degraded) {
      return;
    }
    this.degraded = !ready;
    if (this.degraded) {
      this.options.logger.warn(
        { redis: this.options.redis.status },
        'rate limits: Redis does not answer; limiting per process until it does',
      );
    } else {
      this.options.logger.info('rate limits: Redis answers again; limits are shared across processes');
    }
  }
}

/**
 * The limits the hub uses: on average ten login attempts a minute per place (an address, or a known
 * browser), and five failures in a row for one account from one place lock that place out of that
 * account for fifteen minutes (login-guard.ts).
 */
export const LOGIN_PER_PLACE: RateLimitOptions = { capacity: 30, windowSeconds: 180 };
export const LOGIN_FAILURES_PER_PLACE: FailureLockOptions = { failures: 5, lockSeconds: 15 * 60 };
export const TOKEN_PER_IP: RateLimitOptions = { capacity: 60, windowSeconds: 60 };
