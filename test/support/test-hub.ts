/**
 * Starts a real hub for a test: a fresh PostgreSQL database (or the embedded PGlite when
 * HUB_TEST_DB=pglite), a private BullMQ prefix on the real Redis, a temporary DATA_DIR and a free port.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import type { HubConfig } from '../../src/config.ts';
import { startHub } from '../../src/hub.ts';
import type { Hub } from '../../src/hub.ts';
import { createLogger } from '../../src/logger.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import type { Clock } from '../../src/runtime/clock.ts';
import { freePort } from './free-port.ts';

export const ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const TEST_DB_KIND: 'postgres' | 'pglite' = process.env.HUB_TEST_DB === 'pglite' ? 'pglite' : 'postgres';

export interface TestHub {
  hub: Hub;
  config: HubConfig;
  /** The FHIR base URL, e.g. http://127.0.0.1:40123/fhir */
  fhir: string;
  baseUrl: string;
  databaseUrl?: string;
  /** The clock the hub's date rules read (the system clock unless the test chose one). */
  clock: Clock;
  stop(): Promise<void>;
}

/** Creates an empty PostgreSQL database and returns its URL and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `hub_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export async function startTestHub(
  options: { db?: 'postgres' | 'pglite'; env?: Record<string, string>; clock?: Clock } = {},
): Promise<TestHub> {
  const env = options.env ?? {};
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-test-'));
  const database = (options.db ?? TEST_DB_KIND) === 'postgres' ? await createTestDatabase() : undefined;
  const port = await freePort();
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: `test-${randomBytes(4).toString('hex')}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    OUTBOX_POLL_MS: '50',
    // Each test hub listens for DICOM on a free port of its own.
    DIMSE_PORT: '0',
    // No queue workers unless a test asks for them (WITH_WORKERS): they would act on what the test writes.
    HUB_ROLES: 'api,relay',
    // Suites about the FHIR and DICOM semantics run without tokens (allowed on loopback only); the
    // suites about access (access-matrix, audit, hardening, auth-*, dicom-access) pass AUTH_REQUIRED=true.
    AUTH_REQUIRED: 'false',
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...env,
  });
  const clock = options.clock ?? systemClock;
  const hub = await startHub(config, createLogger(config.logLevel), { clock });
  return {
    hub,
    config,
    clock,
    baseUrl: config.baseUrl,
    fhir: `${config.baseUrl}/fhir`,
    databaseUrl: database?.url,
    stop: async () => {
      await hub.close();
      await database?.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The roles of a test hub that runs the case workflow and e-mail workers too. */
export const WITH_WORKERS = { HUB_ROLES: 'api,worker,relay' } as const;

/** fetch() against the FHIR API with JSON in and out. */
/**
 * PUTs each resource at its id in one transaction Bundle: fixtures with fixed ids, loaded by a system
 * client (people cannot choose ids, so update-as-create is an EHR's).
 */
export function putTransaction(
  fhirBase: string,
  token: string,
  resources: readonly object[],
): ReturnType<typeof fhirFetch> {
  return fhirFetch(fhirBase, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: resources.map((resource) => {
        const { resourceType, id } = resource as { resourceType: string; id?: string };
        return { resource, request: { method: 'PUT', url: `${resourceType}/${id}` } };
      }),
    },
  });
}

/**
 * `as(who, path, init)`: a FHIR request to `path` on the hub sent with `who`'s access token from
 * `tokens` (the hub and tokens are read at each call, so they may be filled in later).
 */
export function fhirAs<Who extends string>(hub: () => { fhir: string }, tokens: Record<Who, string>) {
  return (who: Who, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    fhirFetch(`${hub().fhir}/${path}`, {
      ...init,
      headers: { authorization: `Bearer ${tokens[who]}`, ...init.headers },
    });
}

export async function fhirFetch(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: {
      accept: 'application/fhir+json',
      ...(init.body !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
      ...init.headers,
    },
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
  const text = await response.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON
  }
  return { status: response.status, headers: response.headers, body };
}
