/**
 * Running the hub: health, metrics, clean shutdown on SIGTERM, concurrent migrations and the
 * embedded default surviving a restart. Real processes, real PostgreSQL and Redis.
 */
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase } from '../src/db/database.ts';
import { listMigrations, migrate } from '../src/db/migrate.ts';
import { startHubProcess } from './support/hub-process.ts';
import { TEST_DB_KIND, createTestDatabase, fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { defined } from './support/defined.ts';
import { until } from './support/until.ts';

interface HealthBody {
  status: string;
  down: string[];
  checks: Record<string, string>;
}

interface BundleBody {
  type: string;
  entry: { response: { status: string } }[];
}

const patient = (family: string) => ({ resourceType: 'Patient', name: [{ family }], gender: 'unknown' });

function transactionOf(count: number, family: string) {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: count }, () => ({
      request: { method: 'POST', url: 'Patient' },
      resource: patient(family),
    })),
  };
}

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'hub-ops-'));
}

async function countRows(databaseUrl: string, sql: string, params: unknown[] = []): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return Number((await client.query(sql, params)).rows[0].n);
  } finally {
    await client.end();
  }
}

/**
 * A POST whose body arrives in two parts, so the request is in flight for as long as the test likes.
 * `sent` resolves once the first part is handed to the kernel; `finish` sends the rest.
 */
function slowPost(url: string, body: string, agent: http.Agent) {
  const bytes = Buffer.from(body);
  const half = Math.floor(bytes.length / 2);
  let finish!: () => void;
  let sent!: Promise<void>;
  const response = new Promise<{ status: number; body: BundleBody; headers: http.IncomingHttpHeaders }>(
    (resolve, reject) => {
      const req = http.request(url, {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/fhir+json',
          'content-length': String(bytes.length),
          accept: 'application/fhir+json',
        },
      });
      req.once('error', reject);
      req.once('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.once('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as BundleBody, headers: res.headers }),
        );
        res.once('error', reject);
      });
      sent = new Promise((resolveSent) => req.write(bytes.subarray(0, half), () => resolveSent()));
      finish = () => req.end(bytes.subarray(half));
    },
  );
  return { response, sent, finish: () => finish() };
}

/** A POST sent whole on a connection of its own; `sent` resolves once its bytes are handed to the kernel. */
function postNow(url: string, body: unknown): { sent: Promise<void>; response: Promise<number> } {
  let sent!: Promise<void>;
  const response = new Promise<number>((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
    sent = new Promise((resolveSent) => req.end(JSON.stringify(body), () => resolveSent()));
  });
  return { sent, response };
}

/** A GET on a connection of its own (Connection: close); resolves with the status. */
function roundTrip(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      })
      .once('error', reject);
  });
}

function connectionRefused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('health and metrics', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ env: { METRICS_PUBLIC: 'true' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  test('/healthz is 200 with JSON when the database and Redis answer', async () => {
    const res = await fetch(`${t.baseUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ status: 'ok', down: [], checks: { database: 'up', redis: 'up' } });
  });

  test('/metrics is Prometheus text with request latencies labelled by route template', async () => {
    const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('Metrics') });
    expect(created.status).toBe(201);
    expect((await fhirFetch(`${t.fhir}/Patient/${created.body.id}`)).status).toBe(200);
    expect((await fhirFetch(`${t.fhir}/Patient?family=Metrics`)).status).toBe(200);
    expect((await fhirFetch(`${t.fhir}/Patient/no-such-id`)).status).toBe(404);

    const res = await fetch(`${t.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE hub_http_request_duration_seconds histogram');
    const count = (labels: string): number => {
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('hub_http_request_duration_seconds_count{') &&
            labels.split(',').every((label) => l.includes(label)),
        );
      return line ? Number(line.split(' ').pop()) : 0;
    };
    expect(count('method="POST",route="fhir/create",status="201"')).toBeGreaterThanOrEqual(1);
    expect(count('method="GET",route="fhir/read",status="200"')).toBeGreaterThanOrEqual(1);
    expect(count('method="GET",route="fhir/read",status="404"')).toBeGreaterThanOrEqual(1);
    expect(count('method="GET",route="fhir/search-type",status="200"')).toBeGreaterThanOrEqual(1);
    expect(count('route="healthz"')).toBeGreaterThanOrEqual(1);
    // Route labels are templates: no id or search value becomes a label (cardinality, and PHI).
    expect(text).not.toContain(created.body.id);
    expect(text).not.toContain('Metrics');
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
  });

  test('/healthz is 503 naming the database when it stops answering', async () => {
    const other = await startTestHub({ db: 'postgres' });
    try {
      const admin = new pg.Client({ connectionString: new URL('/postgres', other.databaseUrl).toString() });
      await admin.connect();
      const name = new URL(other.databaseUrl as string).pathname.slice(1);
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      await admin.end();
      const res = await fetch(`${other.baseUrl}/healthz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as HealthBody;
      expect(body.status).toBe('unavailable');
      expect(body.down).toEqual(['database']);
      expect(body.checks.redis).toBe('up');
    } finally {
      await other.stop();
    }
  });
});

describe('health with Redis down', () => {
  test('/healthz is 503 naming redis when REDIS_URL points at a closed port', async () => {
    const t = await startTestHub({ env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    try {
      const res = await fetch(`${t.baseUrl}/healthz`);
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await res.json()) as HealthBody;
      expect(body.status).toBe('unavailable');
      expect(body.down).toEqual(['redis']);
      expect(body.checks.database).toBe('up');
      expect(body.checks.redis).toMatch(/^down: /);
      // The FHIR API keeps working: writes go to the outbox, not to Redis.
      const created = await fhirFetch(`${t.fhir}/Patient`, { method: 'POST', body: patient('NoRedis') });
      expect(created.status).toBe(201);
    } finally {
      await t.stop();
    }
  });
});

describe('clean shutdown on SIGTERM', () => {
  test('in-flight requests finish, new connections are refused, and the process exits 0', async () => {
    const dataDir = await tempDir();
    const database = TEST_DB_KIND === 'postgres' ? await createTestDatabase() : undefined;
    // A grace period far longer than the test allows: the exit must come from draining, not from it.
    const hub = await startHubProcess(
      {
        DATA_DIR: dataDir,
        SHUTDOWN_GRACE_MS: '60000',
        ...(database ? { DATABASE_URL: database.url } : {}),
      },
      60_000,
    );
    const agent = new http.Agent({ keepAlive: true });
    try {
      const fhir = `${hub.url}/fhir`;
      // Warm up (first-request costs), and leave an idle keep-alive connection open.
      expect((await fhirFetch(`${fhir}/Patient`, { method: 'POST', body: patient('Warm') })).status).toBe(201);

      // One request whose body is still arriving, and a large transaction that takes a while.
      const slow = slowPost(fhir, JSON.stringify(transactionOf(20, 'Slow')), agent);
      const large = slowPost(fhir, JSON.stringify(transactionOf(300, 'Large')), agent);
      large.finish();
      const concurrent = Array.from({ length: 5 }, (_, i) => postNow(`${fhir}/Patient`, patient(`Concurrent${i}`)));
      // Once a later request is answered, the server has accepted and read the ones sent before it, so
      // they are in flight rather than waiting in the kernel's accept queue or socket buffer (those
      // are reset when the listener closes, as with any server).
      await Promise.all([slow.sent, large.sent, ...concurrent.map((request) => request.sent)]);
      expect(await roundTrip(`${hub.url}/livez`)).toBe(200);

      const signalled = Date.now();
      hub.child.kill('SIGTERM');
      await hub.waitForLog('stopped accepting connections; draining', 15_000);
      expect(await connectionRefused(hub.port)).toBe('ECONNREFUSED');

      // The drain has begun (whatever it closes at once is closed before its log line) and the server
      // goes on answering what is in flight: the slow body is finished only after the large answer.
      const largeResult = await large.response;
      slow.finish();
      const [slowResult, ...concurrentStatuses] = await Promise.all([
        slow.response,
        ...concurrent.map((request) => request.response),
      ]);
      expect(slowResult.status).toBe(200);
      expect(slowResult.body.type).toBe('transaction-response');
      expect(slowResult.body.entry.map((e) => e.response.status)).toEqual(
        Array(20).fill(expect.stringMatching(/^201\b/)),
      );
      expect(largeResult.status).toBe(200);
      expect(largeResult.body.entry).toHaveLength(300);
      expect(concurrentStatuses).toEqual(Array(5).fill(201));

      const status = await Promise.race([
        hub.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running'), 15_000).unref()),
      ]);
      const elapsed = Date.now() - signalled;
      expect(status).toEqual({ code: 0, signal: null });
      expect(elapsed).toBeLessThan(10_000);
      const stopped = hub.logs.find((line) => line.msg === 'hub stopped');
      expect(stopped).toMatchObject({ level: 30, service: 'hub' });
      expect(hub.logs.filter((line) => line.level >= 50)).toEqual([]);
      expect(hub.stderr()).toBe('');

      if (database) {
        // The work was committed before the pool closed.
        expect(
          await countRows(database.url, "SELECT count(*) AS n FROM resource WHERE resource_type = 'Patient'"),
        ).toBe(1 + 20 + 300 + 5);
      }
    } finally {
      agent.destroy();
      hub.child.kill('SIGKILL');
      await database?.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('migrations from two processes at once', () => {
  test('two database handles migrating one fresh database concurrently apply each version once', async () => {
    const database = await createTestDatabase();
    const [a, b] = await Promise.all([
      openDatabase({ databaseUrl: database.url }),
      openDatabase({ databaseUrl: database.url }),
    ]);
    try {
      const migrations = await listMigrations();
      expect(migrations.length).toBeGreaterThan(0);
      const [appliedByA, appliedByB] = await Promise.all([migrate(a), migrate(b)]);
      expect([...appliedByA, ...appliedByB].sort()).toEqual(migrations.map((m) => m.name).sort());
      const rows = await a.query<{ version: number; n: number }>(
        'SELECT version, count(*)::int AS n FROM schema_migration GROUP BY version ORDER BY version',
      );
      expect(rows.rows).toEqual(migrations.map((m) => ({ version: m.version, n: 1 })));
      // A later start finds nothing to do.
      expect(await migrate(b)).toEqual([]);
    } finally {
      await a.close();
      await b.close();
      await database.drop();
    }
  });

  test('two hubs started at the same time on one fresh database both come up', async () => {
    const database = await createTestDatabase();
    const dirs = [await tempDir(), await tempDir()];
    const hubs = await Promise.allSettled(
      dirs.map((dir) => startHubProcess({ DATA_DIR: dir, DATABASE_URL: database.url }, 60_000)),
    );
    try {
      for (const hub of hubs) {
        if (hub.status === 'rejected') {
          throw hub.reason;
        }
      }
      const started = hubs.map(
        (hub) => (hub as PromiseFulfilledResult<Awaited<ReturnType<typeof startHubProcess>>>).value,
      );
      const applied = started.flatMap(
        (hub) => hub.logs.find((line) => line.msg === 'database ready')?.migrationsApplied as string[],
      );
      expect(applied.sort()).toEqual((await listMigrations()).map((m) => m.name).sort());
      expect(await countRows(database.url, 'SELECT count(*) AS n FROM schema_migration')).toBe(applied.length);
      expect(await countRows(database.url, 'SELECT count(DISTINCT version) AS n FROM schema_migration')).toBe(
        applied.length,
      );
      for (const hub of started) {
        expect((await fetch(`${hub.url}/healthz`)).status).toBe(200);
      }
      const statuses = await Promise.all(started.map((hub) => hub.stop()));
      expect(statuses).toEqual([
        { code: 0, signal: null },
        { code: 0, signal: null },
      ]);
    } finally {
      for (const hub of hubs) {
        if (hub.status === 'fulfilled') {
          hub.value.child.kill('SIGKILL');
        }
      }
      await database.drop();
      await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
    }
  }, 120_000);
});

describe('a lost database connection', () => {
  test('a connection killed mid-transaction fails that transaction, not the process', async () => {
    const database = await createTestDatabase();
    const db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    try {
      const attempt = db.transaction(async (tx) => {
        const pid = defined(
          (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0],
          'a backend pid',
        ).pid;
        // Killed between two statements, while the client is checked out and idle: node-postgres
        // then emits 'error' on the client, which would crash the process if nobody listened.
        await countRows(database.url, 'SELECT count(*) AS n FROM (SELECT pg_terminate_backend($1)) t', [pid]);
        // Gone from pg_stat_activity: the backend has sent its FATAL and closed the connection.
        await until(
          async () =>
            (await countRows(database.url, 'SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1', [pid])) === 0,
          'the terminated backend to exit',
        );
        await tx.query('SELECT 1');
      });
      await expect(attempt).rejects.toThrow();
      // The pool replaces the broken connection.
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
      await database.drop();
    }
  });
});

describe('the embedded default', () => {
  test('with no DATABASE_URL, data written before a restart is read back after it', async () => {
    const dataDir = await tempDir();
    try {
      // PGlite initialises a new data directory in WebAssembly: seconds, more on a busy machine.
      const first = await startHubProcess({ DATA_DIR: dataDir }, 60_000);
      expect(first.logs.find((line) => line.msg === 'database ready')?.database).toBe('pglite');
      const created = await fhirFetch(`${first.url}/fhir/Patient`, { method: 'POST', body: patient('Embedded') });
      expect(created.status).toBe(201);
      expect(await first.stop()).toEqual({ code: 0, signal: null });

      const second = await startHubProcess({ DATA_DIR: dataDir }, 60_000);
      try {
        expect(second.logs.find((line) => line.msg === 'database ready')?.migrationsApplied).toEqual([]);
        const read = await fhirFetch(`${second.url}/fhir/Patient/${created.body.id}`);
        expect(read.status).toBe(200);
        expect(read.body).toEqual(created.body);
      } finally {
        expect(await second.stop()).toEqual({ code: 0, signal: null });
      }
      expect((await fs.stat(path.join(dataDir, 'pgdata'))).isDirectory()).toBe(true);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }, 150_000);
});
