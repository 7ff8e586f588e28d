/**
 * Statements marked with prepared() run as named prepared statements on PostgreSQL (parsed and
 * planned once per connection), give the same results as plain SQL, and run as plain SQL on PGlite.
 */
import { openDatabase, prepared, preparedSearch } from '../src/db/database.ts';
import { createTestDatabase } from './support/test-hub.ts';

describe('prepared statements', () => {
  test('PostgreSQL: a marked statement is prepared once per connection, inside and outside transactions', async () => {
    const database = await createTestDatabase();
    const db = await openDatabase({ databaseUrl: database.url, poolSize: 1 });
    try {
      const sum = prepared('SELECT $1::int + $2::int AS n');
      expect((await db.query<{ n: number }>(sum, [1, 2])).rows).toEqual([{ n: 3 }]);
      expect((await db.query<{ n: number }>(sum, [40, 2])).rows).toEqual([{ n: 42 }]);
      const inTransaction = await db.transaction(async (tx) => (await tx.query<{ n: number }>(sum, [5, 5])).rows[0]?.n);
      expect(inTransaction).toBe(10);
      // One connection in the pool: the statement it prepared is still there, once.
      const statements = await db.query<{ statement: string }>(
        "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'hub\\_%'",
      );
      expect(statements.rows).toEqual([{ statement: sum }]);
      // Unmarked SQL stays unnamed.
      await db.query('SELECT $1::int AS n', [1]);
      expect((await db.query('SELECT name FROM pg_prepared_statements')).rowCount).toBe(1);
    } finally {
      await db.close();
      await database.drop();
    }
  });

  test('searches have a budget of their own: past 200 shapes they run unnamed, and write statements are still prepared', async () => {
    const database = await createTestDatabase();
    const db = await openDatabase({ databaseUrl: database.url, poolSize: 1 });
    try {
      for (let shape = 0; shape < 230; shape++) {
        expect((await db.query<{ n: number }>(preparedSearch(`SELECT $1::int + ${shape} AS n`), [1])).rows[0]!.n).toBe(
          shape + 1,
        );
      }
      const write = prepared('SELECT $1::int * 2 AS n');
      expect((await db.query<{ n: number }>(write, [21])).rows[0]!.n).toBe(42);
      const named = await db.query<{ statement: string }>(
        "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'hub\\_%'",
      );
      expect(named.rows.filter((row) => row.statement.startsWith('/* prepared search */'))).toHaveLength(200);
      expect(named.rows.map((row) => row.statement)).toContain(write);
    } finally {
      await db.close();
      await database.drop();
    }
  });

  test('PGlite: a marked statement runs as plain SQL', async () => {
    const db = await openDatabase({});
    try {
      expect((await db.query<{ n: number }>(prepared('SELECT $1::int + $2::int AS n'), [2, 3])).rows).toEqual([
        { n: 5 },
      ]);
    } finally {
      await db.close();
    }
  });
});
