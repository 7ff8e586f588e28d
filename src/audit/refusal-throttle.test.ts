/** Which refusals the throttle lets be recorded one by one in a minute, and what its summary says. */
import { RefusalThrottle } from './refusal-throttle.ts';
import type { RefusalLimits } from './refusal-throttle.ts';

const LIMITS: RefusalLimits = {
  perSource: 4,
  total: 10,
  floor: 2,
  floorSources: 3,
  trackedSources: 8,
  perClaimed: 3,
  trackedClaims: 2,
};
const START = Date.UTC(2026, 0, 1);

function admitted(throttle: RefusalThrottle, address: string, times: number): number {
  let recorded = 0;
  for (let i = 0; i < times; i++) {
    recorded += throttle.admit({ address }, START + 1000).record ? 1 : 0;
  }
  return recorded;
}

describe('RefusalThrottle', () => {
  test('past the shared budget each address keeps its floor, for a bounded number of addresses', () => {
    const throttle = new RefusalThrottle(LIMITS, START);
    // Decoys spend the shared budget: 4 + 4 + 2.
    expect(admitted(throttle, 'decoy-1', 6)).toBe(4);
    expect(admitted(throttle, 'decoy-2', 6)).toBe(4);
    expect(admitted(throttle, 'decoy-3', 6)).toBe(2);
    // Then each new address has its first two recorded, three addresses at most.
    expect(admitted(throttle, 'a', 5)).toBe(2);
    expect(admitted(throttle, 'b', 1)).toBe(1);
    expect(admitted(throttle, 'b', 4)).toBe(1);
    expect(admitted(throttle, 'c', 2)).toBe(2);
    expect(admitted(throttle, 'd', 2)).toBe(0);
    const summary = throttle.roll(START + 60_000);
    expect(summary?.count).toBe(2 + 2 + 4 + 3 + 3 + 2);
    expect(Object.fromEntries(summary?.sources ?? [])).toEqual({
      'decoy-1': { recorded: 4, skipped: 2 },
      'decoy-2': { recorded: 4, skipped: 2 },
      'decoy-3': { recorded: 2, skipped: 4 },
      a: { recorded: 2, skipped: 3 },
      b: { recorded: 2, skipped: 3 },
      d: { recorded: 0, skipped: 2 },
    });
  });

  test('addresses beyond the ones told apart are only counted', () => {
    const throttle = new RefusalThrottle(LIMITS, START);
    for (let host = 0; host < 100; host++) {
      admitted(throttle, `2001:db8::${host}`, 1);
    }
    const summary = throttle.roll(START + 60_000);
    // The first 8 are told apart (and recorded: the shared budget lasts); the other 92 only counted.
    expect(summary?.untrackedSources).toBe(92);
    expect(summary?.sources).toEqual([]);
    expect(summary?.count).toBe(92);
  });

  test('claimed identities have a budget each, whatever the addresses and the shared budget', () => {
    const throttle = new RefusalThrottle(LIMITS, START);
    admitted(throttle, 'decoy', 100);
    const claims = (id: string, times: number): number => {
      let recorded = 0;
      for (let i = 0; i < times; i++) {
        recorded += throttle.admit({ claimed: { kind: 'client', id } }, START + 1000).record ? 1 : 0;
      }
      return recorded;
    };
    expect(claims('ehr-1', 5)).toBe(3);
    expect(throttle.admit({ claimed: { kind: 'user', id: 'u-1' } }, START + 1000).record).toBe(true);
    // A third name is beyond the names told apart this minute.
    expect(claims('ehr-2', 1)).toBe(0);
    const summary = throttle.roll(START + 60_000);
    expect(summary?.claimedCount).toBe(3);
    expect(summary?.claims).toEqual([
      [
        { kind: 'client', id: 'ehr-1' },
        { recorded: 3, skipped: 2 },
      ],
    ]);
    expect(summary?.untrackedClaims).toBe(1);
    // A new minute, new budgets.
    expect(claims('ehr-1', 1)).toBe(1);
  });
});
