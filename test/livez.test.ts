/**
 * GET /livez, the liveness probe: answers from the HTTP stack alone, through the same middleware as
 * every route (request id, metrics), and stays 200 when the database and Redis are gone, so an
 * orchestrator restarts the hub for its own faults only (/healthz reports the dependencies).
 */
import pg from 'pg';
import { startTestHub } from './support/test-hub.ts';

describe('GET /livez', () => {
  test('is 200 {"status":"alive"} with a request id, and counted under its route template', async () => {
    const t = await startTestHub({ env: { METRICS_PUBLIC: 'true' } });
    try {
      const res = await fetch(`${t.baseUrl}/livez`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('x-request-id')).toMatch(/^[\w.-]+$/);
      expect(await res.json()).toEqual({ status: 'alive' });
      const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(
        /^hub_http_request_duration_seconds_count\{method="GET",route="livez",status="200"\} [1-9]/m,
      );
    } finally {
      await t.stop();
    }
  });

  test('stays 200 while the database and Redis are both unreachable', async () => {
    const t = await startTestHub({ db: 'postgres', env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    try {
      const url = new URL(t.databaseUrl as string);
      const admin = new pg.Client({ connectionString: new URL('/postgres', url).toString() });
      await admin.connect();
      await admin.query(`DROP DATABASE ${url.pathname.slice(1)} WITH (FORCE)`);
      await admin.end();

      expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(503);
      const res = await fetch(`${t.baseUrl}/livez`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'alive' });
    } finally {
      await t.stop();
    }
  });
});
