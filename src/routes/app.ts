/** The express application: request ids and logs, metrics, health, and the FHIR API under /fhir. */
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Express, RequestHandler } from 'express';
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
import { BULL_BOARD_PATH, createBullBoardRoutes } from './bull-board.ts';
import type { AdminQueuesOptions } from './admin-queues.ts';
import type { Auth } from '../auth/index.ts';
import { corsPolicy } from './cors.ts';
import type { CorsPolicy } from './cors.ts';
import { securityHeaders } from './security-headers.ts';
import { createDashboardRoutes } from './dashboard.ts';

export interface AppOptions {
  db: Database;
  redis: Redis;
  logger: Logger;
  metrics: HubMetrics;
  fhir: FhirRoutesOptions;
  dicomweb?: DicomwebOptions;
  /** The queue view; behind `auth.admin` (an admin or coordinator token). */
  adminQueues?: AdminQueuesOptions;
  /** Token endpoint, SMART discovery, bearer authentication of /fhir and /dicomweb (src/auth). */
  auth?: Auth;
  /** False in a process without the `api` role: only health and metrics are served. */
  serveApi?: boolean;
  /** CORS_ALLOWED_ORIGINS; default none. */
  cors?: CorsPolicy;
  /** METRICS_PUBLIC: /metrics without a token. Otherwise it needs `auth.admin` (and without auth it is 403). */
  metricsPublic?: boolean;
  /** Strict-Transport-Security (BASE_URL is https). */
  hsts?: boolean;
  /** The built web app served at /dashboard (routes/dashboard.ts); web/dist by default. */
  dashboardDir?: string;
  /** OHIF_VIEWER_URL, which the web app links studies to (routes/dashboard.ts serves it at /dashboard/settings.json). */
  ohifViewerUrl?: string;
  /** TRUST_PROXY: whose X-Forwarded-For names the client (req.ip, audit/client-address.ts); default none. */
  trustProxy?: false | number | string[];
}

export function createApp(options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // req.ip is the socket's peer unless a trusted proxy forwarded the request; the rate limits and the
  // audit take it only when it is an IP address (audit/client-address.ts).
  app.set('trust proxy', options.trustProxy ?? false);

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
      const failure = res.locals.errorOutcome as
        { issue?: { diagnostics?: string; details?: { text?: string } }[] } | undefined;
      if (res.statusCode >= 500) {
        options.logger.error({ ...entry, error: failure?.issue?.[0]?.details?.text }, 'request failed');
      } else {
        options.logger.debug(entry, 'request');
      }
    });
    next();
  });
  app.use(options.metrics.middleware());
  app.use(securityHeaders({ hsts: options.hsts ?? false }));
  app.use(createHealthRoutes(options.db, options.redis));
  const adminOnly: RequestHandler[] = options.auth
    ? options.auth.admin
    : [
        (_req, res) =>
          void res.status(403).json({ error: 'forbidden', error_description: 'authentication is not configured' }),
      ];
  app.get('/metrics', ...(options.metricsPublic ? [] : adminOnly), async (_req, res) => {
    res.locals.route = 'metrics';
    res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  if (options.serveApi !== false) {
    // Before authentication, so that a 401 or 403 still reaches an allowed origin's script.
    app.use(['/fhir', '/dicomweb', '/oauth2', '/.well-known'], corsPolicy(options.cors ?? { allowedOrigins: [] }));
    if (options.auth) {
      app.use(options.auth.routes);
      app.use('/fhir', ...options.auth.fhir);
    }
    app.use('/fhir', createFhirRoutes({ logger: options.logger.child({ role: 'fhir' }), ...options.fhir }));
    if (options.dicomweb) {
      if (options.auth) {
        app.use('/dicomweb', ...options.auth.dicomweb);
      }
      app.use('/dicomweb', createDicomwebRoutes(options.dicomweb));
    }
    if (options.adminQueues && options.auth) {
      // Before /admin/queues: a browser's visit brings the admin's cookie, not a bearer token.
      app.use(
        BULL_BOARD_PATH,
        createBullBoardRoutes({
          producer: options.adminQueues.producer,
          authenticate: options.auth.admin,
          passes: options.auth.boardPasses,
          secureCookies: options.hsts ?? false,
        }),
      );
    }
    if (options.adminQueues) {
      app.use('/admin/queues', ...adminOnly, createAdminQueueRoutes(options.adminQueues));
    }
    // Files only, no token: the app signs the person in and calls the API with their token.
    app.use(createDashboardRoutes(options.dashboardDir, { ohifViewerUrl: options.ohifViewerUrl }));
  }
  app.use('/fhir', fhirErrorHandler);
  app.use((_req, res) => {
    res.locals.route = 'unknown';
    res
      .status(404)
      .type('application/fhir+json')
      .send(
        JSON.stringify({
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'not-found', details: { text: 'Not found' } }],
        }),
      );
  });
  app.use(fhirErrorHandler);
  return app;
}
