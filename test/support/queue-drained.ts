import type { Queue } from 'bullmq';
import { until } from './until.ts';

/**
 * Waits until `queue` has no job waiting, running or waiting to be retried: every job queued so far
 * has been processed. A test that asserts something did not happen (no duplicate job, no second
 * e-mail) waits for this rather than for a while, once everything that could cause it is queued.
 */
export async function queueDrained(queue: Queue, timeoutMs?: number): Promise<void> {
  await until(
    async () => {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(counts).every((n) => n === 0);
    },
    `the ${queue.name} queue to drain`,
    timeoutMs,
  );
}
