import { localRateLimit } from './rate-limit.ts';

describe('localRateLimit', () => {
  test('the capacity of a window, then the seconds until the window ends; keys are separate', async () => {
    const limit = localRateLimit({ capacity: 3, windowSeconds: 120 });
    expect(await Promise.all([0, 1, 2].map(() => limit.take('10.0.0.1')))).toEqual([0, 0, 0]);
    const wait = await limit.take('10.0.0.1');
    expect(wait).toBeGreaterThan(100);
    expect(wait).toBeLessThanOrEqual(120);
    expect(await limit.take('10.0.0.2')).toBe(0);
  });
});
