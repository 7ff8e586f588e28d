/**
 * The hub's one clock. Product code that applies a date rule (business days, due dates, reminders,
 * licence and policy periods, ages) takes the current instant from a Clock handed down from the
 * composition root (src/hub.ts), never from `new Date()` of its own, so that a test can run the whole
 * hub at a chosen instant.
 *
 * BullMQ delays and timers always run in real time: a delayed job is scheduled `at - clock.now()`
 * milliseconds ahead, so on a clock that runs at real speed from any start (`clockStartingAt`) it
 * fires when that clock reaches `at`.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that reads `start` now and then advances in real time (tests of date rules). */
export function clockStartingAt(start: Date | string, base: Clock = systemClock): Clock {
  const offsetMs = new Date(start).getTime() - base.now().getTime();
  if (Number.isNaN(offsetMs)) {
    throw new Error(`not an instant: ${String(start)}`);
  }
  return { now: () => new Date(base.now().getTime() + offsetMs) };
}
