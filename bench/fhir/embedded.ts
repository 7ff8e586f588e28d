/**
 * bench:fhir on the embedded database (`--embedded`): the hub with no DATABASE_URL, on PGlite, as
 * `npm start` runs it. The data set is loaded once through the API into a data directory of its own
 * (bench/.work/embedded/<resources>/, kept between bench runs, with a marker written after a complete
 * load), and every run starts a hub on a fresh copy of it, so no run sees what an earlier one wrote.
 * PGlite belongs to one process: everything the bench reads or registers directly in the database is
 * done while no hub has it open.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../../src/db/database.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrate.ts';
import { registerBenchClientIn } from './auth.ts';
import type { BenchCredentials } from './auth.ts';
import type { DatasetMarker } from './database.ts';
import { pendingJobs } from './queues.ts';

export const EMBEDDED_DEFAULT_RESOURCES = 10_000;

/** What a run needs from its copy of the data set, read before its hub opens it. */
export interface EmbeddedRunData {
  credentials: BenchCredentials;
  counts: Record<string, number>;
  patientIds: string[];
  serviceRequestIds: string[];
  practitionerIds: string[];
  pgliteVersion: string;
}

async function withEmbedded<T>(dataDir: string, work: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({ dataDir });
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

export function datasetDir(workDir: string, resources: number): string {
  return path.join(workDir, 'embedded', String(resources));
}

function markerFile(dir: string): string {
  return path.join(dir, 'fhir-bench-marker.json');
}

/** The marker of a complete load of this shape, or undefined when the directory holds none. */
export function readEmbeddedMarker(dir: string, expected: Pick<DatasetMarker, 'version' | 'resources' | 'seed'>) {
  try {
    const marker = JSON.parse(fs.readFileSync(markerFile(dir), 'utf8')) as DatasetMarker;
    return marker.version === expected.version &&
      marker.resources === expected.resources &&
      marker.seed === expected.seed
      ? marker
      : undefined;
  } catch {
    return undefined;
  }
}

/** An empty data directory with the hub's schema and the bench client, ready for a hub to load into. */
export async function createEmbeddedDataset(dir: string): Promise<BenchCredentials> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return withEmbedded(dir, async (db) => {
    await migrate(db);
    return registerBenchClientIn(db);
  });
}

/**
 * Waits, with the hub running, until its workers have had nothing to do for three seconds in a row;
 * the outbox itself can be read only once the hub is stopped (pendingOutbox).
 */
export async function waitForQueuesIdle(redisUrl: string, prefix: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let idle = 0;
  while (idle < 3) {
    if (Date.now() > deadline) {
      return false;
    }
    idle = (await pendingJobs(redisUrl, prefix)) === 0 ? idle + 1 : 0;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  return true;
}

/** Outbox events not yet relayed, read with no hub running. */
export function pendingOutbox(dir: string): Promise<number> {
  return withEmbedded(dir, async (db) => {
    const result = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NULL');
    return result.rows[0]?.n ?? 0;
  });
}

/** Completes a load (no hub running): statistics, and the marker that makes the directory reusable. */
export async function finishEmbeddedDataset(
  dir: string,
  marker: Omit<DatasetMarker, 'maxSeq' | 'migrations'>,
): Promise<DatasetMarker> {
  const complete = await withEmbedded(dir, async (db) => {
    await db.exec('VACUUM (ANALYZE)');
    const maxSeq = (await db.query<{ max: number | null }>('SELECT max(seq)::int AS max FROM resource')).rows[0]?.max;
    const migrations = await db.query<{ name: string }>('SELECT name FROM schema_migration ORDER BY version');
    return { ...marker, maxSeq: maxSeq ?? 0, migrations: migrations.rows.map((row) => row.name) };
  });
  fs.writeFileSync(markerFile(dir), JSON.stringify(complete, null, 2) + '\n');
  return complete;
}

/**
 * A fresh copy of the data set for one run (its hub's DATA_DIR), with the bench client registered
 * under this process's key and the run's targets read from it.
 */
export async function prepareEmbeddedRun(dataset: string, runDir: string, maxSeq: number): Promise<EmbeddedRunData> {
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.cpSync(dataset, runDir, { recursive: true });
  return withEmbedded(runDir, async (db) => {
    const credentials = await registerBenchClientIn(db);
    const counts = await db.query<{ resource_type: string; n: number }>(
      'SELECT resource_type, count(*)::int AS n FROM resource WHERE NOT deleted GROUP BY resource_type ORDER BY resource_type',
    );
    const ids = async (type: string): Promise<string[]> =>
      (
        await db.query<{ id: string }>(
          'SELECT id FROM resource WHERE resource_type = $1 AND seq <= $2 AND NOT deleted ORDER BY seq',
          [type, maxSeq],
        )
      ).rows.map((row) => row.id);
    const version = await db.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return {
      credentials,
      counts: Object.fromEntries(counts.rows.map((row) => [row.resource_type, row.n])),
      patientIds: await ids('Patient'),
      serviceRequestIds: await ids('ServiceRequest'),
      practitionerIds: await ids('Practitioner'),
      pgliteVersion: `PGlite (PostgreSQL ${version.rows[0]?.v ?? '?'})`,
    };
  });
}
