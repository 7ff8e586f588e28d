/**
 * One database interface over two engines: a PostgreSQL pool (DATABASE_URL) or the embedded
 * PGlite (PostgreSQL compiled to WebAssembly) under DATA_DIR, so `npm start` needs no server.
 */
import { createHash } from 'node:crypto';
import { statfsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { openDurablePGlite } from './pglite-durability.ts';
import type { WalFlusher } from './pglite-durability.ts';

// int8 (bigint) and numeric come back as strings by default; our counters fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

/**
 * The row a statement always returns (`INSERT … RETURNING` without a conflict clause, `SELECT count(*)`).
 * No row means the statement itself is wrong; `statement` says which one (what it does, never its values).
 */
export function requiredRow<R>(result: QueryResult<R>, statement: string): R {
  const row = result.rows[0];
  if (row === undefined) {
    throw new Error(`${statement} returned no row`);
  }
  return row;
}

/** Something SQL can be sent to: the database itself or an open transaction. */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** True inside a transaction. */
  readonly inTransaction: boolean;
}

export interface TransactionOptions {
  /** SERIALIZABLE isolation; serialization failures are retried by `transaction`. */
  serializable?: boolean;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Runs `work` on one dedicated connection (for session-level advisory locks). */
  withConnection<T>(work: (conn: Queryable) => Promise<T>): Promise<T>;
  /** Runs a script of several statements (migrations). */
  exec(sql: string): Promise<void>;
  /** Whether a commit this database acknowledges survives a power loss or an OS crash, and why. */
  durability(): Promise<Durability>;
  close(): Promise<void>;
}

export interface Durability {
  durable: boolean;
  /** In words, for the start-up log. */
  detail: string;
}

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']); // serialization failure, deadlock
const MAX_TRANSACTION_ATTEMPTS = 5;

export function isRetryableDbError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && RETRYABLE_SQLSTATES.has((err as { code?: string }).code ?? '');
}

async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isRetryableDbError(err) || n >= MAX_TRANSACTION_ATTEMPTS) {
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * n));
    }
  }
}

const PREPARED_MARKER = '/* prepared */ ';
// Each distinct text is a server-side statement on every pooled connection; past this many (a bug
// that builds unbounded shapes) the rest run unnamed rather than growing every backend's memory.
const MAX_PREPARED_TEXTS = 500;

/**
 * Marks a statement to run as a named prepared statement: PostgreSQL parses and plans it once per
 * connection instead of on every call. For hot statements whose text takes a few shapes and whose
 * plan does not depend on the values (inserts, key lookups), not for searches, whose best plan
 * depends on how common each value is. A 2 KB resource-write CTE costs the server 0.6-0.75 ms of
 * CPU unnamed and 0.2-0.35 ms prepared (bench:fhir measurement). PGlite runs it as plain SQL.
 */
export function prepared(sql: string): string {
  return PREPARED_MARKER + sql;
}

const PREPARED_SEARCH_MARKER = '/* prepared search */ ';
// Search shapes are many more than write shapes: they get a budget of their own, so that they can
// never take the hot write statements' places.
const MAX_PREPARED_SEARCH_TEXTS = 200;

/**
 * Marks a search to run as a named prepared statement. PostgreSQL then plans it with the values for
 * its first five runs on a connection, and afterwards keeps one generic plan only when that plan is
 * estimated no costlier (plan_cache_mode auto), so a search whose best plan depends on its values
 * keeps being planned per value. Used for a person's searches, where planning the access condition
 * cost more than running the search (docs/access.md, "Cost").
 */
export function preparedSearch(sql: string): string {
  return PREPARED_SEARCH_MARKER + sql;
}

type PgQuery = string | { name: string; text: string };

class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  readonly inTransaction = false;
  private readonly pool: pg.Pool;
  /** Statement name of each text marked prepared(), the same on every connection. */
  private readonly preparedNames = new Map<string, string>();
  private preparedSearchTexts = 0;

  constructor(connectionString: string, poolSize: number) {
    this.pool = new pg.Pool({ connectionString, max: poolSize });
    // An idle client's connection can drop (server restart); the pool replaces it on next use.
    // A checked-out client's 'error' is handled in transaction() and withConnection(): unhandled,
    // it would crash the process; the client's next query fails with the error instead.
    this.pool.on('error', () => undefined);
    // pg-pool drops its own listener while a client is checked out; a connection ended by the server
    // then (a failover, pg_terminate_backend) would emit an unhandled 'error' and crash the process
    // unless every holder listens. This one always does: the client's next query fails instead, and
    // the pool discards a client whose connection has ended.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** The statement as node-postgres takes it: named (prepared once per connection) when marked. */
  private statement(sql: string): PgQuery {
    const search = sql.startsWith(PREPARED_SEARCH_MARKER);
    if (!search && !sql.startsWith(PREPARED_MARKER)) {
      return sql;
    }
    let name = this.preparedNames.get(sql);
    if (name === undefined) {
      const full = search
        ? this.preparedSearchTexts >= MAX_PREPARED_SEARCH_TEXTS
        : this.preparedNames.size - this.preparedSearchTexts >= MAX_PREPARED_TEXTS;
      if (full) {
        return sql;
      }
      name = `hub_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
      this.preparedNames.set(sql, name);
      if (search) {
        this.preparedSearchTexts++;
      }
    }
    return { name, text: sql };
  }

  private async run<R>(
    client: pg.Pool | pg.PoolClient,
    sql: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>> {
    const statement = this.statement(sql);
    const values = params as unknown[] | undefined;
    const result =
      typeof statement === 'string'
        ? await client.query(statement, values)
        : await client.query({ ...statement, values });
    return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
  }

  async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.run<R>(this.pool, sql, params);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return withRetries(async () => {
      const client = await this.pool.connect();
      let broken = false;
      const onError = (): void => {
        broken = true;
      };
      client.on('error', onError);
      try {
        await client.query(options?.serializable ? 'BEGIN ISOLATION LEVEL SERIALIZABLE' : 'BEGIN');
        const tx: Queryable = {
          inTransaction: true,
          query: <R>(sql: string, params?: readonly unknown[]) => this.run<R>(client, sql, params),
        };
        const result = await work(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    });
  }

  async withConnection<T>(work: (conn: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      return await work({
        inTransaction: false,
        query: <R>(sql: string, params?: readonly unknown[]) => this.run<R>(client, sql, params),
      });
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async durability(): Promise<Durability> {
    const settings = await this.pool.query<{ fsync: string; synchronous_commit: string }>(
      "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit",
    );
    const { fsync = 'on', synchronous_commit: synchronousCommit = 'on' } = settings.rows[0] ?? {};
    if (fsync === 'off') {
      return { durable: false, detail: 'the PostgreSQL server runs with fsync=off' };
    }
    if (synchronousCommit === 'off') {
      return { durable: false, detail: 'the PostgreSQL server runs with synchronous_commit=off' };
    }
    return { durable: true, detail: `PostgreSQL with fsync=on, synchronous_commit=${synchronousCommit}` };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

class EmbeddedDatabase implements Database {
  readonly kind = 'pglite';
  readonly inTransaction = false;
  private readonly db: PGlite;
  /** Absent in memory, where nothing outlives the process anyway. */
  private readonly wal: WalFlusher | undefined;

  private readonly dataDir: string | undefined;

  constructor(db: PGlite, durable?: { wal: WalFlusher; dataDir: string }) {
    this.db = db;
    this.wal = durable?.wal;
    this.dataDir = durable?.dataDir;
  }

  /**
   * Every call returns only once the WAL it leaves is on disk: a commit is acknowledged durable, and
   * no read shows what a power loss could still take back. Concurrent calls share one flush.
   */
  private async durable<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } finally {
      await this.wal?.durable();
    }
  }

  async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const result = await this.durable(this.db.query<R>(sql, params as unknown[] | undefined));
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  }

  // PGlite has a single connection and queues every other query behind an open transaction,
  // so transactions are serial and serializable by construction.
  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.durable(
      this.db.transaction(async (inner) =>
        work({
          inTransaction: true,
          async query<R>(sql: string, params?: readonly unknown[]) {
            const result = await inner.query<R>(sql, params as unknown[] | undefined);
            return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
          },
        }),
      ),
    );
  }

  async withConnection<T>(work: (conn: Queryable) => Promise<T>): Promise<T> {
    return work(this);
  }

  async exec(sql: string): Promise<void> {
    await this.durable(this.db.exec(sql));
  }

  async durability(): Promise<Durability> {
    if (!this.wal || !this.dataDir) {
      return { durable: false, detail: 'the embedded database is in memory' };
    }
    if (onMemoryFileSystem(this.dataDir)) {
      return { durable: false, detail: `the embedded database is on a memory file system (${this.dataDir})` };
    }
    return {
      durable: true,
      detail: "the embedded database flushes each commit's write-ahead log (fdatasync) before acknowledging it",
    };
  }

  async close(): Promise<void> {
    await this.db.close();
    this.wal?.close();
  }
}

// statfs(2) magic numbers of file systems whose fsync keeps nothing across a reboot.
const MEMORY_FILE_SYSTEMS = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

function onMemoryFileSystem(dir: string): boolean {
  try {
    return MEMORY_FILE_SYSTEMS.has(statfsSync(dir).type);
  } catch {
    return false;
  }
}

/** Opens PostgreSQL when a URL is given, else the embedded database in `${dataDir}/pgdata` (or in memory). */
export async function openDatabase(options: {
  databaseUrl?: string;
  dataDir?: string;
  poolSize?: number;
}): Promise<Database> {
  if (options.databaseUrl) {
    return new PostgresDatabase(options.databaseUrl, options.poolSize ?? 10);
  }
  if (!options.dataDir) {
    return new EmbeddedDatabase(await PGlite.create());
  }
  const pgdata = path.join(options.dataDir, 'pgdata');
  await fs.mkdir(pgdata, { recursive: true });
  const { pg: embedded, wal } = await openDurablePGlite(pgdata);
  return new EmbeddedDatabase(embedded, { wal, dataDir: pgdata });
}
