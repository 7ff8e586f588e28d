import { RateLimiter } from './rate-limit.ts';

describe('RateLimiter', () => {
  test('a burst up to the capacity, then one per refill interval', () => {
    const limiter = new RateLimiter({ capacity: 3, refillPerSecond: 0.5 });
    const t0 = 1_000_000;
    expect([0, 1, 2].map(() => limiter.take('10.0.0.1', t0))).toEqual([0, 0, 0]);
    expect(limiter.take('10.0.0.1', t0)).toBe(2);
    expect(limiter.take('10.0.0.2', t0)).toBe(0);
    expect(limiter.take('10.0.0.1', t0 + 1000)).toBe(1);
    expect(limiter.take('10.0.0.1', t0 + 3000)).toBe(0);
    expect(limiter.take('10.0.0.1', t0 + 3000)).toBeGreaterThan(0);
  });

  test('remembers at most maxKeys keys', () => {
    const limiter = new RateLimiter({ capacity: 1, refillPerSecond: 0.001, maxKeys: 2 });
    expect(limiter.take('a', 0)).toBe(0);
    expect(limiter.take('b', 0)).toBe(0);
    expect(limiter.take('c', 0)).toBe(0);
    // "a" was forgotten (least recently used), so it starts full again; "c" is still empty.
    expect(limiter.take('a', 0)).toBe(0);
    expect(limiter.take('c', 0)).toBeGreaterThan(0);
  });
});
