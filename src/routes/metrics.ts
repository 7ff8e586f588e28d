/** Prometheus metrics: request counts and latencies by route template, plus Node's defaults. */
import client from 'prom-client';
import type { NextFunction, Request, Response } from 'express';

export class HubMetrics {
  readonly registry = new client.Registry();
  private readonly duration: client.Histogram<'method' | 'route' | 'status'>;
  readonly outboxDispatched: client.Counter;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
    this.duration = new client.Histogram({
      name: 'hub_http_request_duration_seconds',
      help: 'HTTP request latency by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.outboxDispatched = new client.Counter({
      name: 'hub_outbox_events_dispatched_total',
      help: 'Outbox events handed to BullMQ',
      registers: [this.registry],
    });
  }

  /** Express middleware; the route label is the template (`res.locals.route`), never raw paths. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      const end = this.duration.startTimer();
      res.on('finish', () => {
        end({
          method: req.method,
          route: (res.locals.route as string | undefined) ?? 'other',
          status: String(res.statusCode),
        });
      });
      next();
    };
  }
}
