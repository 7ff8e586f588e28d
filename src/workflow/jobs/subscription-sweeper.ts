/**
 * The subscriptions' clock work, in the worker process: once a second it turns off subscriptions
 * whose `end` has passed, queues a heartbeat for each active subscription that has sent nothing for
 * its heartbeat period, and a heartbeat as a probe for each subscription in `error` that has not been
 * tried for a minute (one that gets through makes it active again and sends what was kept). Job ids
 * are per subscription and period, so several worker processes queue each heartbeat once.
 */
import type { Logger } from 'pino';
import type { Database } from '../../db/database.ts';
import type { QueueProducer } from '../../queues/queue-definitions.ts';
import type { Clock } from '../../runtime/clock.ts';
import { SubscriptionStore } from '../subscriptions/store.ts';
import { subscriptionUpkeepQueue } from './subscriptions.ts';

const SWEEP_INTERVAL_MS = 1000;
/** How long a subscription in error waits between probes. */
export const ERROR_PROBE_SECONDS = 60;

export interface SubscriptionSweeper {
  stop(): Promise<void>;
}

export async function sweepSubscriptions(
  db: Database,
  queues: QueueProducer,
  now: Date,
): Promise<{ ended: number; heartbeats: number }> {
  const store = new SubscriptionStore(db);
  const ended = await store.endExpired(now);
  const due = await store.heartbeatsDue(now, ERROR_PROBE_SECONDS);
  for (const { id, periodSeconds } of due) {
    const slot = Math.floor(now.getTime() / (periodSeconds * 1000));
    await queues.add(
      subscriptionUpkeepQueue,
      { subscriptionId: id, kind: 'heartbeat', eventNumber: '0' },
      { jobId: `heartbeat-${id}-${slot}` },
    );
  }
  return { ended, heartbeats: due.length };
}

export function startSubscriptionSweeper(options: {
  db: Database;
  queues: QueueProducer;
  clock: Clock;
  logger: Logger;
}): SubscriptionSweeper {
  let running: Promise<void> | undefined;
  let stopped = false;
  const sweep = (): void => {
    if (running !== undefined || stopped) {
      return;
    }
    running = (async () => {
      try {
        const result = await sweepSubscriptions(options.db, options.queues, options.clock.now());
        if (result.ended > 0) {
          options.logger.info({ ended: result.ended }, 'subscriptions past their end turned off');
        }
      } catch (error) {
        options.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'subscription sweep failed',
        );
      } finally {
        running = undefined;
      }
    })();
  };
  const interval = setInterval(sweep, SWEEP_INTERVAL_MS);
  interval.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(interval);
      await running;
    },
  };
}
