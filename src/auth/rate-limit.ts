/**
 * Token buckets per key (an IP address, an account) for the login and token endpoints. In memory, so
 * per process: with N API processes behind a balancer an address gets up to N times the rate. A
 * multi-process deployment that needs one budget should keep the buckets in Redis (one Lua script
 * doing this same arithmetic) or limit at the reverse proxy. The account lock-out (login.ts) is in the
 * database and holds across processes anyway.
 */

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
    bucket.tokens = Math.min(capacity, bucket.tokens + (Math.max(0, nowMs - bucket.updatedMs) / 1000) * refillPerSecond);
    bucket.updatedMs = nowMs;
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.options.maxKeys) this.evict(nowMs);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / refillPerSecond);
  }

  private evict(nowMs: number): void {
    const fullAfterMs = (this.options.capacity / this.options.refillPerSecond) * 1000;
    for (const [key, bucket] of this.buckets) {
      if (nowMs - bucket.updatedMs >= fullAfterMs) this.buckets.delete(key);
    }
    // Map order is least recently used first.
    while (this.buckets.size > this.options.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
  }
}

/** The limits the hub uses; per process. */
export const LOGIN_PER_IP: BucketOptions = { capacity: 30, refillPerSecond: 10 / 60 };
export const LOGIN_PER_ACCOUNT: BucketOptions = { capacity: 10, refillPerSecond: 1 / 60 };
export const TOKEN_PER_IP: BucketOptions = { capacity: 60, refillPerSecond: 1 };
