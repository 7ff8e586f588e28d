/** The express application: request ids and logs, metrics, health, and the FHIR API under /fhir. */
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Express } from 'express';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import { createFhirRoutes, fhirErrorHandler } from './fhir.ts';
import type { FhirRoutesOptions } from './fhir.ts';
import { createHealthRoutes } from './health.ts';
import { createDicomwebRoutes } from './dicomweb/index.ts';
import type { DicomwebOptions } from './dicomweb/index.ts';
import type { HubMetrics } from './metrics.ts';
import { createAdminQueueRoutes } from './admin-queues.ts';
import type { AdminQueuesOptions } from './admin-queues.ts';
import type { Auth } from '../auth/index.ts';

export interface AppOptions {
  db: Database;
  redis: Redis;
  logger: Logger;
  metrics: HubMetrics;
  fhir: FhirRoutesOptions;
  dicomweb?: DicomwebOptions;
  /** The queue view; NOT yet behind authentication (that is another issue). */
  adminQueues?: AdminQueuesOptions;
  /** Token endpoint, SMART discovery, bearer authentication of /fhir and /dicomweb (src/auth). */
  auth?: Auth;
  /** False in a process without the `api` role: only health and metrics are served. */
  serveApi?: boolean;
}

export function createApp(options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const entry = {
        requestId,
        method: req.method,
        // The path only: query strings carry search values, which can identify a patient.
        path: req.path,
        route: res.locals.route,
        clientId: (res.locals.identity as { clientId?: string } | undefined)?.clientId,
        userId: (res.locals.identity as { userId?: string } | undefined)?.userId,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      };
      const failure = res.locals.errorOutcome as { issue?: { diagnostics?: string; details?: { text?: string } }[] } | undefined;
      if (res.statusCode >= 500) {
        options.logger.error({ ...entry, error: failure?.issue?.[0]?.details?.text }, 'request failed');
      } else {
        options.logger.debug(entry, 'request');
      }
    });
    next();
  });
  app.use(options.metrics.middleware());
  app.use(createHealthRoutes(options.db, options.redis));
  app.get('/metrics', async (_req, res) => {
    res.locals.route = 'metrics';
    res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  if (options.serveApi !== false) {
    if (options.auth) {
      app.use(options.auth.routes);
      app.use('/fhir', ...options.auth.fhir);
    }
    app.use('/fhir', createFhirRoutes(options.fhir));
    if (options.dicomweb) {
      if (options.auth) app.use('/dicomweb', ...options.auth.dicomweb);
      app.use('/dicomweb', createDicomwebRoutes(options.dicomweb));
    }
    if (options.adminQueues) app.use('/admin/queues', createAdminQueueRoutes(options.adminQueues));
  }
  app.use('/fhir', fhirErrorHandler);
  app.use((_req, res) => {
    res.locals.route = 'unknown';
    res.status(404).type('application/fhir+json').send(
      JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found', details: { text: 'Not found' } }] }),
    );
  });
  app.use(fhirErrorHandler);
  return app;
}
