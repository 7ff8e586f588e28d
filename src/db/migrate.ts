/**
 * Numbered SQL migrations (`migrations/NNN_name.sql`), each applied once in its own transaction.
 * A session-level advisory lock makes concurrent start-ups (two processes) take turns.
 */
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// Any fixed 64-bit number; it only has to be the same in every process of the hub.
const MIGRATION_LOCK_KEY = 7_402_118_953;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function listMigrations(): Promise<Migration[]> {
  const files = (await fs.readdir(MIGRATIONS_DIR)).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number.parseInt(file, 10),
      name: file.replace(/\.sql$/, ''),
      sql: await fs.readFile(MIGRATIONS_DIR + file, 'utf8'),
    })),
  );
}

/**
 * Applies the migrations not applied yet; returns the names of those it applied. `through` stops
 * after that version (an upgrade test builds the schema a store had before a migration with it).
 */
export async function migrate(db: Database, options: { through?: number } = {}): Promise<string[]> {
  const migrations = (await listMigrations()).filter(
    (migration) => options.through === undefined || migration.version <= options.through,
  );
  return db.withConnection(async (conn) => {
    await conn.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await conn.query(`CREATE TABLE IF NOT EXISTS schema_migration (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = await conn.query<{ version: number }>('SELECT version FROM schema_migration');
      const applied = new Set(done.rows.map((row) => row.version));
      const names: string[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.version)) {
          continue;
        }
        await conn.query('BEGIN');
        try {
          for (const statement of splitStatements(migration.sql)) {
            await conn.query(statement);
          }
          await conn.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [
            migration.version,
            migration.name,
          ]);
          await conn.query('COMMIT');
        } catch (err) {
          await conn.query('ROLLBACK');
          throw new Error(`Migration ${migration.name} failed: ${(err as Error).message}`, { cause: err });
        }
        names.push(migration.name);
      }
      return names;
    } finally {
      await conn.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });
}

/**
 * Splits a migration script on the semicolons that end statements; semicolons inside a `$$` quoted
 * body (a function's) do not end one.
 */
function splitStatements(sql: string): string[] {
  const text = sql
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n');
  const statements: string[] = [];
  let start = 0;
  let inBody = false;
  for (let i = 0; i < text.length; i++) {
    if (text.startsWith('$$', i)) {
      inBody = !inBody;
      i++;
    } else if (text[i] === ';' && !inBody) {
      statements.push(text.slice(start, i));
      start = i + 1;
    }
  }
  statements.push(text.slice(start));
  return statements.map((statement) => statement.trim()).filter(Boolean);
}
