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
import { ensureDicomWebEndpoint } from './dicom/ingest.ts';
import { buildCapabilityStatement } from './fhir/capability.ts';
import { loadFhirDefinitions } from './fhir/definitions.ts';
import { createFhirRouter } from './fhir/router.ts';
import type { Logger } from './logger.ts';
import { producerConnection } from './queues/connection.ts';
import { OutboxRelay } from './queues/outbox-relay.ts';
import { createApp } from './routes/app.ts';
import { HubMetrics } from './routes/metrics.ts';
import { FileBlobStore } from './storage/blob-store.ts';
import { HUB_VERSION } from './version.ts';

export interface Hub {
  readonly server: http.Server;
  readonly db: Database;
  readonly relay: OutboxRelay;
  readonly redis: Redis;
  /** The URL the server listens on (the port is resolved when PORT=0). */
  readonly url: string;
  /** The DIMSE listener's port (resolved when DIMSE_PORT=0). */
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

export async function startHub(config: HubConfig, logger: Logger): Promise<Hub> {
  loadFhirDefinitions();
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize });
  const applied = await migrate(db);
  logger.info({ database: db.kind, migrationsApplied: applied }, 'database ready');

  const redis = producerConnection(config.redisUrl);
  if (!(await firstRedisContact(redis, REDIS_CONNECT_WAIT_MS))) {
    logger.warn('redis does not answer yet; writes wait in the outbox until it does');
  }
  const metrics = new HubMetrics();
  const relay = new OutboxRelay({
    db,
    connection: redis,
    prefix: config.queuePrefix,
    pollMs: config.outboxPollMs,
    logger,
    onDispatched: (count) => metrics.outboxDispatched.inc(count),
  });
  const blobs = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  const repositoryContext = { db, blobs, baseUrl: config.baseUrl, binaryMaxBytes: config.binaryMaxBytes };
  const dimseTempDir = path.join(config.dataDir, 'tmp', 'dimse');
  const part10Dir = path.join(config.dataDir, 'tmp', 'part10');
  await fs.mkdir(dimseTempDir, { recursive: true });
  await fs.mkdir(part10Dir, { recursive: true });
  const ingest = { db, blobs, repository: repositoryContext, endpointId: await ensureDicomWebEndpoint(repositoryContext) };
  const stowTempDir = path.join(config.dataDir, 'tmp', 'stow');
  await fs.mkdir(stowTempDir, { recursive: true });
  const router = createFhirRouter();
  const app = createApp({
    db,
    redis,
    logger,
    metrics,
    fhir: {
      router,
      repository: { db, blobs, baseUrl: config.baseUrl, binaryMaxBytes: config.binaryMaxBytes },
      capabilityStatement: buildCapabilityStatement(router, { baseUrl: config.baseUrl, version: HUB_VERSION }),
      maxBodyBytes: config.fhirMaxBodyBytes,
      onWrite: () => relay.kick(),
    },
    dicomweb: { ingest, baseUrl: config.baseUrl, tempDir: stowTempDir, logger: logger.child({ role: 'dicomweb' }) },
  });

  const dimseLogger = logger.child({ role: 'dimse' });
  const storeInstance = createStoreHandler(ingest, part10Dir, dimseLogger);
  let dimse: DimseServer;
  try {
    dimse = await startDimseServer({
      host: config.dimseHost,
      port: config.dimsePort,
      aeTitle: config.dimseAeTitle,
      allowedCallingAeTitles: config.dimseAllowedCallingAeTitles,
      logger: dimseLogger,
      maxPduLength: 1 << 20,
      tempDir: dimseTempDir,
      closeGraceMs: config.shutdownGraceMs,
      onStore: async (request) => {
        const result = await storeInstance(request);
        if (result.status === 0) relay.kick();
        return result;
      },
    });
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
    await dimse.close();
    throw err;
  }
  relay.start();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, baseUrl: config.baseUrl }, 'hub listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      draining = true;
      // Both listeners stop accepting at once; running associations get the same grace as requests.
      const dimseClosed = dimse.close();
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
      await relay.stop();
      redis.disconnect();
      await db.close();
      logger.info('hub stopped');
    })();
    return closing;
  };
  return { server, db, relay, redis, url, dimsePort: dimse.port, close };
}
