/**
 * The benchmark's own PostgreSQL database: created on first use, kept between runs, and reset to
 * the loaded data set before each run (rows created by the measurements are removed).
 *
 * The data set is described by a JSON marker in the database's COMMENT, written only after a
 * complete load, so a half-loaded database is never reused.
 */
import pg from 'pg';
import { defined } from '../../test/support/defined.ts';

export interface DatasetMarker {
  dataset: 'fhir-bench';
  version: number;
  resources: number;
  seed: number;
  /** The highest `resource.seq` of the loaded data; rows above it were written by measurements. */
  maxSeq: number;
  loadedAt: string;
  loadSeconds: number;
  /** The hub's schema migrations when the data was loaded. */
  migrations: string[];
}

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new Error(`Unsafe database name "${name}" (use lower-case letters, digits and _)`);
  }
  return `"${name}"`;
}

/** What the bench database holds, read from its COMMENT. */
export type DatabaseState =
  | { state: 'absent' }
  /** It exists but bench:fhir did not make it: never dropped without --rebuild. */
  | { state: 'foreign' }
  /** bench:fhir made it and a load did not finish. */
  | { state: 'loading' }
  | { state: 'loaded'; marker: DatasetMarker };

const LOADING_MARKER = JSON.stringify({ dataset: 'fhir-bench', loading: true });

export async function readDatabaseState(adminUrl: string, name: string): Promise<DatabaseState> {
  return withClient(adminUrl, async (client) => {
    const result = await client.query<{ comment: string | null }>(
      `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
      [name],
    );
    if (result.rows.length === 0) {
      return { state: 'absent' };
    }
    let marker: Partial<DatasetMarker> & { loading?: boolean };
    try {
      marker = JSON.parse(result.rows[0]?.comment ?? '') as typeof marker;
    } catch {
      return { state: 'foreign' };
    }
    if (marker.dataset !== 'fhir-bench') {
      return { state: 'foreign' };
    }
    return marker.loading || marker.maxSeq === undefined
      ? { state: 'loading' }
      : { state: 'loaded', marker: marker as DatasetMarker };
  });
}

/** Drops (when present) and creates an empty database, marked as being loaded. */
export async function recreateDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
    await client.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS '${LOADING_MARKER}'`);
  });
}

export async function writeMarker(adminUrl: string, name: string, marker: DatasetMarker): Promise<void> {
  const text = JSON.stringify(marker).replaceAll("'", "''");
  await withClient(adminUrl, (client) => client.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS '${text}'`));
}

/** The highest creation sequence number in the store. */
export async function currentMaxSeq(url: string): Promise<number> {
  return withClient(url, async (client) => {
    const result = await client.query<{ max: string | null }>('SELECT max(seq)::text AS max FROM resource');
    return Number(result.rows[0]?.max ?? 0);
  });
}

export async function countByType(url: string): Promise<Record<string, number>> {
  return withClient(url, async (client) => {
    const result = await client.query<{ resource_type: string; n: number }>(
      'SELECT resource_type, count(*)::int AS n FROM resource WHERE NOT deleted GROUP BY resource_type ORDER BY resource_type',
    );
    return Object.fromEntries(result.rows.map((row) => [row.resource_type, row.n]));
  });
}

/**
 * Removes every resource created after the load (its versions and index rows too), the outbox
 * events already relayed and the audit trail (audit_event, migration 010: every run starts from an
 * empty one), then refreshes the planner's statistics. Returns how many resources were removed.
 */
export async function resetToDataset(url: string, maxSeq: number): Promise<number> {
  return withClient(url, async (client) => {
    const indexTables = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns
       WHERE table_schema = 'public' AND column_name = 'resource_id'
         AND table_name IN (SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'resource_type')
       ORDER BY table_name`,
    );
    await client.query('BEGIN');
    let removed: number;
    try {
      await client.query(
        'CREATE TEMP TABLE bench_extra ON COMMIT DROP AS SELECT resource_type, id FROM resource WHERE seq > $1',
        [maxSeq],
      );
      for (const { table_name: table } of indexTables.rows) {
        await client.query(
          `DELETE FROM ${quoteIdent(table)} t USING bench_extra e WHERE t.resource_type = e.resource_type AND t.resource_id = e.id`,
        );
      }
      await client.query(
        'DELETE FROM resource_version v USING bench_extra e WHERE v.resource_type = e.resource_type AND v.id = e.id',
      );
      removed = (await client.query('DELETE FROM resource WHERE seq > $1', [maxSeq])).rowCount ?? 0;
      await client.query('DELETE FROM outbox WHERE dispatched_at IS NOT NULL');
      const auditRows = await client.query("SELECT to_regclass('audit_event') IS NOT NULL AS present");
      if ((auditRows.rows[0] as { present: boolean }).present) {
        await client.query('TRUNCATE audit_event');
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    }
    if (removed > 0) {
      await client.query('VACUUM (ANALYZE)');
    }
    return removed;
  });
}

export async function vacuumAnalyze(url: string): Promise<void> {
  await withClient(url, (client) => client.query('VACUUM (ANALYZE)'));
}

/** The ids of the loaded resources of a type (the targets of reads and reference searches). */
export async function loadedIds(url: string, resourceType: string, maxSeq: number): Promise<string[]> {
  return withClient(url, async (client) => {
    const result = await client.query<{ id: string }>(
      'SELECT id FROM resource WHERE resource_type = $1 AND seq <= $2 AND NOT deleted ORDER BY seq',
      [resourceType, maxSeq],
    );
    return result.rows.map((row) => row.id);
  });
}

/** A practitioner as a referring physician: the loaded ServiceRequests whose requester they are. */
export interface ReferringPhysician {
  practitionerId: string;
  /** Their referrals and each one's subject, in load order. */
  cases: { serviceRequestId: string; patientId: string }[];
  /** Every loaded ServiceRequest, theirs or not. */
  serviceRequests: number;
}

/**
 * The practitioner who requested the most of the loaded ServiceRequests (the first loaded among
 * equals: the data set spreads them evenly), with those requests; undefined when none names one.
 */
export async function busiestReferringPhysician(url: string, maxSeq: number): Promise<ReferringPhysician | undefined> {
  return withClient(url, async (client) => {
    const result = await client.query<{ id: string; requester: string; subject: string; total: number }>(
      `WITH referral AS (
         SELECT id, seq, content::jsonb #>> '{requester,reference}' AS requester, content::jsonb #>> '{subject,reference}' AS subject
         FROM resource WHERE resource_type = 'ServiceRequest' AND seq <= $1 AND NOT deleted
       ), busiest AS (
         SELECT requester FROM referral WHERE requester LIKE 'Practitioner/%' AND subject LIKE 'Patient/%'
         GROUP BY requester ORDER BY count(*) DESC, min(seq) LIMIT 1
       )
       SELECT r.id, r.requester, r.subject, (SELECT count(*)::int FROM referral) AS total
       FROM referral r JOIN busiest b USING (requester) WHERE r.subject LIKE 'Patient/%' ORDER BY r.seq`,
      [maxSeq],
    );
    const [first] = result.rows;
    if (first === undefined) {
      return undefined;
    }
    const idOf = (reference: string): string => reference.slice(reference.indexOf('/') + 1);
    return {
      practitionerId: idOf(first.requester),
      cases: result.rows.map((row) => ({ serviceRequestId: row.id, patientId: idOf(row.subject) })),
      serviceRequests: first.total,
    };
  });
}

export async function serverVersion(url: string): Promise<string> {
  return withClient(
    url,
    async (client) =>
      defined((await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0], 'a row').v,
  );
}

/** Outbox events not yet relayed to the queue. */
export async function pendingOutboxEvents(url: string): Promise<number> {
  return withClient(url, async (client) => {
    const result = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NULL',
    );
    return defined(result.rows[0], 'a count row').n;
  });
}

/** Waits until the hub's relay has moved every outbox event to the queue (its work would skew a measurement). */
export async function waitForOutboxDrained(url: string, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await pendingOutboxEvents(url)) > 0) {
    if (Date.now() > deadline) {
      throw new Error('The outbox relay did not drain the outbox in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The names of the hub's schema migrations applied to the database. */
export async function appliedMigrations(url: string): Promise<string[]> {
  return withClient(url, async (client) => {
    const result = await client.query<{ name: string }>('SELECT name FROM schema_migration ORDER BY version');
    return result.rows.map((row) => row.name);
  });
}
