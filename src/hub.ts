/**
 * Starts the hub's roles in one process: the database (migrated), the FHIR API over HTTP, the DIMSE
 * listener (C-STORE into the DICOM ingest path) and the outbox relay. `close()` stops accepting,
 * drains in-flight requests and associations, and closes every pool.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { HubConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import type { Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { startDimseServer } from './dicom/dimse/server.ts';
import type { DimseServer } from './dicom/dimse/server.ts';
import { createStoreHandler } from './dicom/dimse/store-handler.ts';
import { createFindHandler } from './dicom/dimse/find-handler.ts';
import { DimseAuditTrail } from './dicom/dimse/audit-trail.ts';
import { ensureDicomWebEndpoint } from './dicom/ingest.ts';
import { StudyRefresher } from './dicom/study-refresher.ts';
import { ClaimRefusals } from './workflow/imaging-claims.ts';
import { buildCapabilityStatement } from './fhir/capability.ts';
import { startAuth } from './auth/index.ts';
import { requestActor } from './auth/request-actor.ts';
import { AuditLog } from './audit/audit-log.ts';
import { Auditor } from './audit/auditor.ts';
import { loadFhirDefinitions, loadTerminologyDefinitions } from './fhir/definitions.ts';
import { createFhirRouter } from './fhir/router.ts';
import { loadJurisdictionPolicies } from './fhir/operations/eligibility.ts';
import type { Logger } from './logger.ts';
import { producerConnection } from './queues/connection.ts';
import { OutboxRelay } from './queues/outbox-relay.ts';
import { HUB_QUEUES, declaredJobOptions } from './workflow/jobs/all-queues.ts';
import { DeadLetterQueue } from './queues/dead-letter.ts';
import { QueueProducer } from './queues/queue-definitions.ts';
import { startWorkers } from './queues/worker-runner.ts';
import type { WorkerPool } from './queues/worker-runner.ts';
import { createMailer } from './notify/mailer.ts';
import type { Mailer } from './notify/mailer.ts';
import { createApp } from './routes/app.ts';
import { PersonStowQuota } from './routes/dicomweb/stow-quota.ts';
import { dicomwebAuditTrail } from './routes/dicomweb/access.ts';
import { fhirAuditTrail } from './routes/fhir-audit-trail.ts';
import { HubMetrics } from './routes/metrics.ts';
import { BlobInstaller } from './storage/blob-installer.ts';
import { FileBlobStore } from './storage/blob-store.ts';
import { StagingBlobStore } from './storage/staging-blob-store.ts';
import { startOrphanSweeper } from './storage/orphan-sweep.ts';
import { startTempSweeper } from './storage/temp-sweep.ts';
import { HUB_VERSION } from './version.ts';
import { systemClock } from './runtime/clock.ts';
import type { Clock } from './runtime/clock.ts';
import type { WorkflowWorkerDeps } from './workflow/context.ts';
import { startSubscriptionSweeper } from './workflow/jobs/subscription-sweeper.ts';
import { EndpointPolicy } from './workflow/subscriptions/endpoint-policy.ts';
import { SUBSCRIPTION_TOPICS } from './workflow/subscriptions/topics.ts';

/** A temporary file untouched for this long belongs to no running upload or render. */
const TEMP_FILE_MAX_AGE_MS = 60 * 60 * 1000;
/** Blobs nothing refers to (storage/orphan-sweep.ts): swept by the worker process, first once start-up has settled. */
const ORPHAN_SWEEP_DELAY_MS = 10 * 60 * 1000;
const ORPHAN_SWEEP_INTERVAL_MS = 6 * 60 * 60 * 1000;

export interface Hub {
  readonly server: http.Server;
  readonly db: Database;
  readonly relay: OutboxRelay;
  readonly redis: Redis;
  /** The queue workers, when this process has the worker role (HUB_ROLES). */
  readonly workers: WorkerPool | undefined;
  /** The URL the server listens on (the port is resolved when PORT=0). */
  readonly url: string;
  /** The DIMSE listener's port (resolved when DIMSE_PORT=0); 0 in a process without the api role. */
  readonly dimsePort: number;
  close(): Promise<void>;
}

const REDIS_CONNECT_WAIT_MS = 3000;

/**
 * Resolves true when Redis first answers, false on its first error or after `timeoutMs`. The hub
 * starts without Redis (the outbox keeps the work), but should not report it down merely because
 * its first connection is still opening.
 */
function firstRedisContact(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const settle = (ready: boolean): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      resolve(ready);
    };
    const onReady = (): void => settle(true);
    const onError = (): void => settle(false);
    const timer = setTimeout(() => settle(false), timeoutMs);
    redis.once('ready', onReady);
    redis.once('error', onError);
  });
}

export interface HubOptions {
  /** Where every date rule takes the current instant from (runtime/clock.ts); the system clock by default. */
  clock?: Clock;
}

export async function startHub(config: HubConfig, logger: Logger, options: HubOptions = {}): Promise<Hub> {
  const clock = options.clock ?? systemClock;
  // A broken operator policy stops start-up here, before anything is opened.
  const jurisdictionPolicies = await loadJurisdictionPolicies(config.jurisdictionPolicyFile);
  loadFhirDefinitions();
  // The processes that write FHIR resources validate them: their first write should not pay for this.
  if (config.roles.includes('api') || config.roles.includes('worker')) {
    loadTerminologyDefinitions();
  }
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
  });
  const applied = await migrate(db);
  const durability = await db.durability();
  logger.info({ database: db.kind, migrationsApplied: applied, durability: durability.detail }, 'database ready');
  if (!durability.durable) {
    logger.warn(
      { database: db.kind, durability: durability.detail },
      'acknowledged writes can be lost on a power loss or an OS crash',
    );
  }
  // Before anything is served: the journal a killed hub left is stored first (audit/audit-log.ts).
  const auditLog = config.auditEnabled
    ? new AuditLog({
        db,
        dir: path.join(config.dataDir, 'audit'),
        logger: logger.child({ role: 'audit' }),
        flushMs: config.auditFlushMs,
        batchSize: config.auditBatchSize,
        fsync: config.auditJournalFsync,
      })
    : undefined;
  await auditLog?.start();
  const auditor = new Auditor({ baseUrl: config.baseUrl }, auditLog, requestActor, { clock });
  auditor.startSummaries();
  const redis = producerConnection(config.redisUrl);
  const auth = await startAuth({
    db,
    baseUrl: config.baseUrl,
    required: config.authRequired,
    logger,
    auditor,
    sessions: { idleSeconds: config.authSessionIdleSeconds, maxSeconds: config.authSessionMaxSeconds },
    dataDir: config.dataDir,
    secretsKey: config.authSecretsKey,
    rateLimits: { redis, prefix: config.queuePrefix },
    clock,
  }).catch((err: unknown) => {
    redis.disconnect();
    throw err;
  });
  const redisAnswers = await firstRedisContact(redis, REDIS_CONNECT_WAIT_MS);
  if (!redisAnswers) {
    logger.warn('redis does not answer yet; writes wait in the outbox until it does');
  }
  const metrics = new HubMetrics();
  const relay = new OutboxRelay({
    db,
    connection: redis,
    prefix: config.queuePrefix,
    pollMs: config.outboxPollMs,
    redispatchAfterMs: config.outboxRedispatchAfterMs,
    logger,
    onDispatched: (count) => metrics.outboxDispatched.inc(count),
    jobOptions: declaredJobOptions,
  });
  // A queue prefix that another database uses stops start-up here (queues/queue-prefix.ts); without
  // Redis yet, the relay makes the same check before it dispatches anything.
  if (redisAnswers) {
    await relay.claim().catch(async (err: unknown) => {
      redis.disconnect();
      await auditLog?.stop();
      await db.close();
      throw err;
    });
  }
  const blobFiles = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  // Staged DICOM instances (migration 025) become files behind their acknowledgement; until then
  // every reader finds them through `blobs`. The processes that ingest (the api role) install what
  // they staged, and from start-up on the rows a previous run left.
  const installer = new BlobInstaller(db, blobFiles, { logger: logger.child({ role: 'blob-installer' }) });
  const installerStarted = config.roles.includes('api') ? installer.start() : undefined;
  const blobs = new StagingBlobStore(blobFiles, installer);
  const repositoryContext = { db, blobs, baseUrl: config.baseUrl, binaryMaxBytes: config.binaryMaxBytes };
  const studies = new StudyRefresher({
    db,
    // The hub's own writes are audited too, with the hub as the agent.
    repository: { ...repositoryContext, audit: auditor.hubWriteContext('imaging-study') },
    endpointId: await ensureDicomWebEndpoint(repositoryContext),
    logger: logger.child({ role: 'imaging-study' }),
    onRefreshed: () => relay.kick(),
  });
  const claimRefusals = new ClaimRefusals({
    db,
    repository: { ...repositoryContext, audit: auditor.hubWriteContext('imaging-claims') },
    logger: logger.child({ role: 'imaging-claims' }),
    now: () => clock.now(),
  });
  const ingest = {
    db,
    blobs,
    studies,
    staging: config.dicomStageMaxBytes > 0 ? { installer, maxBytes: config.dicomStageMaxBytes } : undefined,
    onClaimRefused: (studyInstanceUid: string) => claimRefusals.refused(studyInstanceUid),
  };
  const dicomwebTempDir = path.join(config.dataDir, 'tmp', 'dicomweb');
  await fs.mkdir(dicomwebTempDir, { recursive: true });
  const subscriptionEndpoints = new EndpointPolicy({ allowedNetworks: config.subscriptionAllowedNetworks });
  const router = createFhirRouter({ repository: repositoryContext, jurisdictionPolicies, now: () => clock.now() });
  const queueProducer = new QueueProducer({ connection: redis, prefix: config.queuePrefix, definitions: HUB_QUEUES });
  const deadLetter = new DeadLetterQueue({ connection: redis, prefix: config.queuePrefix, producer: queueProducer });
  const serveApi = config.roles.includes('api');
  const app = createApp({
    db,
    redis,
    logger,
    metrics,
    serveApi,
    adminQueues: { producer: queueProducer, deadLetter },
    // The DICOMweb audit trail goes first, so that it also sees the refusals of authentication.
    auth: {
      ...auth,
      fhir: [fhirAuditTrail(auditor, logger.child({ role: 'fhir' })), ...auth.fhir],
      dicomweb: [dicomwebAuditTrail(auditor, logger.child({ role: 'dicomweb' })), ...auth.dicomweb],
    },
    cors: { allowedOrigins: config.corsAllowedOrigins },
    metricsPublic: config.metricsPublic,
    trustProxy: config.trustProxy,
    dashboardDir: config.dashboardDir,
    ohifViewerUrl: config.ohifViewerUrl,
    hsts: config.baseUrl.startsWith('https:'),
    fhir: {
      router,
      repository: { db, blobs, baseUrl: config.baseUrl, binaryMaxBytes: config.binaryMaxBytes },
      capabilityStatement: buildCapabilityStatement(router, {
        baseUrl: config.baseUrl,
        version: HUB_VERSION,
        date: clock.now(),
        security: auth.security,
        subscriptionTopics: SUBSCRIPTION_TOPICS,
      }),
      maxBodyBytes: config.fhirMaxBodyBytes,
      onWrite: () => relay.kick(),
      auditor,
      subscriptions: { db, clock, endpoints: subscriptionEndpoints },
    },
    dicomweb: {
      ingest,
      baseUrl: config.baseUrl,
      tempDir: dicomwebTempDir,
      logger: logger.child({ role: 'dicomweb' }),
      auditor,
      personQuota:
        config.dicomPersonDailyBytes > 0 ? new PersonStowQuota(db, clock, config.dicomPersonDailyBytes) : undefined,
    },
  });

  const dimseLogger = logger.child({ role: 'dimse' });
  const dimseAudit = new DimseAuditTrail(auditor, db, dimseLogger);
  // Without the api role the process serves only health and metrics, and no DICOM listener.
  let dimse: DimseServer | undefined;
  try {
    if (serveApi) {
      dimse = await startDimseServer({
        host: config.dimseHost,
        port: config.dimsePort,
        aeTitle: config.dimseAeTitle,
        allowedCallingAeTitles: config.dimseAllowedCallingAeTitles,
        maxAssociations: config.dimseMaxAssociations,
        onRejected: (rejection) => dimseAudit.rejected(rejection),
        logger: dimseLogger,
        maxPduLength: 1 << 20,
        closeGraceMs: config.shutdownGraceMs,
        onFind: createFindHandler(db, dimseLogger, { audit: dimseAudit }),
        store: createStoreHandler(ingest, dimseLogger, dimseAudit),
      });
    }
  } catch (err) {
    redis.disconnect();
    await db.close();
    throw err;
  }

  const server = http.createServer();
  server.keepAliveTimeout = 65_000;
  // While draining, each response closes its connection (Connection: close), so an idle keep-alive
  // connection cannot hold the shutdown open until SHUTDOWN_GRACE_MS.
  let draining = false;
  const inFlight = new Set<http.ServerResponse>();
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (draining) {
      res.setHeader('Connection', 'close');
    }
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
    res.once('finish', () => {
      if (draining) {
        setImmediate(() => server.closeIdleConnections());
      }
    });
  });
  server.on('request', app);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
  } catch (err) {
    await dimse?.close();
    throw err;
  }
  if (config.roles.includes('relay')) {
    relay.start();
  }
  studies.start();
  const tempSweeper = startTempSweeper([blobFiles.tmpDir, path.join(config.dataDir, 'tmp')], {
    maxAgeMs: TEMP_FILE_MAX_AGE_MS,
    intervalMs: TEMP_FILE_MAX_AGE_MS / 4,
    logger,
  });
  const orphanSweeper = config.roles.includes('worker')
    ? startOrphanSweeper(db, blobFiles, {
        logger: logger.child({ role: 'blob-sweep' }),
        delayMs: ORPHAN_SWEEP_DELAY_MS,
        intervalMs: ORPHAN_SWEEP_INTERVAL_MS,
      })
    : undefined;
  const mailer = config.roles.includes('worker')
    ? createMailer({ smtpUrl: config.smtpUrl, from: config.mailFrom, dataDir: config.dataDir })
    : undefined;
  // The workflow queues (src/workflow/context.ts) need more than the framework's WorkerDeps.
  const workerDeps = (mailer: Mailer): WorkflowWorkerDeps => ({
    db,
    repository: { ...repositoryContext, audit: auditor.hubWriteContext('case-workflow') },
    mailer,
    baseUrl: config.baseUrl,
    logger,
    queues: queueProducer,
    jurisdictionPolicies,
    clock,
    subscriptionEndpoints,
  });
  const workers = mailer
    ? startWorkers(HUB_QUEUES, workerDeps(mailer), {
        redisUrl: config.redisUrl,
        prefix: config.queuePrefix,
        connection: redis,
        logger,
        lockDurationMs: config.queueStalledJobMs,
        stalledIntervalMs: Math.max(1_000, Math.round(config.queueStalledJobMs / 2)),
      })
    : undefined;
  const subscriptionSweeper = workers
    ? startSubscriptionSweeper({ db, queues: queueProducer, clock, logger: logger.child({ role: 'subscriptions' }) })
    : undefined;
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, baseUrl: config.baseUrl }, 'hub listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      draining = true;
      // Both listeners stop accepting at once; running associations get the same grace as requests.
      const dimseClosed = dimse?.close();
      // Workers take no new job and finish the running ones (within the grace) while requests drain.
      const workersClosed = workers?.close(config.shutdownGraceMs);
      for (const res of inFlight) {
        if (!res.headersSent) {
          res.setHeader('Connection', 'close');
        }
      }
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      logger.info({ inFlight: inFlight.size }, 'stopped accepting connections; draining');
      const grace = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
      await drained;
      clearTimeout(grace);
      await dimseClosed;
      tempSweeper.stop();
      await orphanSweeper?.stop();
      await subscriptionSweeper?.stop();
      await studies.stop();
      await installer.stop();
      await installerStarted;
      await auditor.stopSummaries();
      await auditLog?.stop();
      await relay.stop();
      await workersClosed;
      mailer?.close();
      await deadLetter.close();
      await queueProducer.close();
      redis.disconnect();
      await db.close();
      logger.info('hub stopped');
    })();
    return closing;
  };
  return { server, db, relay, redis, workers, url, dimsePort: dimse?.port ?? 0, close };
}
