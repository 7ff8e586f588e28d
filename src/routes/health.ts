/**
 * GET /livez: the process is up and its HTTP stack answers (touches neither the database nor Redis,
 * so an orchestrator restarts the hub only for its own faults, never for a dependency's outage).
 * GET /healthz: 200 when the database and Redis answer, 503 naming what is down (readiness).
 */
import express from 'express';
import type { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Database } from '../db/database.ts';

const CHECK_TIMEOUT_MS = 2000;

async function check(name: string, probe: () => Promise<unknown>): Promise<[string, string]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return [name, 'up'];
  } catch (err) {
    return [name, `down: ${(err as Error).message}`];
  } finally {
    clearTimeout(timer);
  }
}

export function createHealthRoutes(db: Database, redis: Redis): Router {
  const routes = express.Router();
  routes.get('/livez', (_req, res) => {
    res.locals.route = 'livez';
    res.status(200).json({ status: 'alive' });
  });
  routes.get('/healthz', async (_req, res) => {
    res.locals.route = 'healthz';
    const results = Object.fromEntries(
      await Promise.all([check('database', () => db.query('SELECT 1')), check('redis', () => redis.ping())]),
    );
    const down = Object.entries(results)
      .filter(([, state]) => state !== 'up')
      .map(([name]) => name);
    res
      .status(down.length === 0 ? 200 : 503)
      .json({ status: down.length === 0 ? 'ok' : 'unavailable', down, checks: results });
  });
  return routes;
}
