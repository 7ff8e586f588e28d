/**
 * Starts the hub's roles in one process: the database (migrated), the FHIR API over HTTP and the
 * outbox relay. `close()` stops accepting, drains in-flight requests and closes every pool.
 */
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { HubConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import type { Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
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
  close(): Promise<void>;
}

export async function startHub(config: HubConfig, logger: Logger): Promise<Hub> {
  loadFhirDefinitions();
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize });
  const applied = await migrate(db);
  logger.info({ database: db.kind, migrationsApplied: applied }, 'database ready');

  const redis = producerConnection(config.redisUrl);
  const relay = new OutboxRelay({ db, connection: redis, prefix: config.queuePrefix, pollMs: config.outboxPollMs, logger });
  const blobs = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  const router = createFhirRouter();
  const metrics = new HubMetrics();
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
  });

  const server = http.createServer(app);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  relay.start();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, baseUrl: config.baseUrl }, 'hub listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
      await drained;
      clearTimeout(grace);
      await relay.stop();
      redis.disconnect();
      await db.close();
      logger.info('hub stopped');
    })();
    return closing;
  };
  return { server, db, relay, redis, url, close };
}
