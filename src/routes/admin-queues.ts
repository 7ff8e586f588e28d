/**
 * The queue view for operators, under /admin/queues:
 *   GET  /admin/queues                              counts per queue, dead-lettered included
 *   GET  /admin/queues/dead-letter                  the jobs that ran out of tries
 *   POST /admin/queues/dead-letter/{id}/retry       moves that job (same id) back to waiting
 * Job data is ids only and error messages are redacted, so nothing here identifies a patient.
 * Mounted behind the admin guard (src/auth/admin-guard.ts): an admin's or coordinator's token.
 */
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { DeadLetterQueue } from '../queues/dead-letter.ts';
import type { QueueProducer } from '../queues/queue-definitions.ts';

export interface AdminQueuesOptions {
  producer: QueueProducer;
  deadLetter: DeadLetterQueue;
}

const COUNTED_STATES = ['waiting', 'active', 'delayed', 'completed', 'failed'] as const;

type Handler = (req: Request, res: Response) => Promise<void>;

/** Redis being down is the usual failure here: answer 503 in the same JSON shape. */
function guarded(route: string, handler: Handler): (req: Request, res: Response, next: NextFunction) => Promise<void> {
  return async (req, res) => {
    res.locals.route = route;
    try {
      await handler(req, res);
    } catch (err) {
      res.status(503).json({ error: 'queue store unavailable', detail: (err as Error).message });
    }
  };
}

export function createAdminQueueRoutes(options: AdminQueuesOptions): Router {
  const routes = express.Router();

  routes.get(
    '/',
    guarded('admin-queues', async (_req, res) => {
      const deadLettered = await options.deadLetter.countsByQueue();
      const queues = await Promise.all(
        options.producer.queueNames.map(async (name) => {
          const counts = await options.producer
            .queue(name)
            .getJobCounts(...COUNTED_STATES, 'prioritized', 'waiting-children');
          return {
            name,
            waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts['waiting-children'] ?? 0),
            active: counts.active ?? 0,
            delayed: counts.delayed ?? 0,
            completed: counts.completed ?? 0,
            failed: counts.failed ?? 0,
            deadLettered: deadLettered.get(name) ?? 0,
          };
        }),
      );
      res.json({ queues, deadLetter: { total: [...deadLettered.values()].reduce((sum, n) => sum + n, 0) } });
    }),
  );

  routes.get(
    '/dead-letter',
    guarded('admin-queues-dead-letter', async (_req, res) => {
      res.json({ entries: await options.deadLetter.list() });
    }),
  );

  routes.post(
    '/dead-letter/:id/retry',
    guarded('admin-queues-dead-letter-retry', async (req, res) => {
      const result = await options.deadLetter.retry(String(req.params.id));
      switch (result.outcome) {
        case 'retried':
          res.status(202).json({ retried: true, queue: result.entry.queue, jobId: result.entry.jobId });
          return;
        case 'not-found':
          res.status(404).json({ error: 'no dead-letter entry with this id' });
          return;
        case 'unknown-queue':
          res.status(409).json({ error: `queue "${result.entry.queue}" is not served by this hub` });
          return;
        case 'not-failed':
          res.status(409).json({
            error: `the job is ${result.state}, not failed: nothing to retry`,
            queue: result.entry.queue,
            jobId: result.entry.jobId,
          });
          return;
      }
    }),
  );

  return routes;
}
