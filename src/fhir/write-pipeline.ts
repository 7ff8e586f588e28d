/**
 * Inside a transaction, resource writes are sent without waiting for their answers, so the work on
 * the next entry of a transaction Bundle (validation, indexing) overlaps the database's work on the
 * previous one. Every other statement on the connection first waits for the writes sent before it
 * and fails with the first write error, so reads see earlier writes, and the transaction commits
 * only after all of them succeeded (`settle` runs before COMMIT).
 */
import type { Queryable } from '../db/database.ts';

export class WritePipeline {
  private readonly conn: Queryable;
  private pending: Promise<unknown>[] = [];
  private failure: { error: unknown } | undefined;

  constructor(conn: Queryable) {
    this.conn = conn;
  }

  send(sql: string, params: readonly unknown[]): void {
    // One statement at a time on the connection (node-postgres deprecates overlapping queries on
    // one client); after a failure the transaction is lost, so later writes are not sent at all.
    const previous = this.pending.at(-1) ?? Promise.resolve();
    this.pending.push(
      previous
        .then(() => (this.failure ? undefined : this.conn.query(sql, params)))
        .catch((error: unknown) => {
          this.failure ??= { error };
        }),
    );
  }

  /** Waits for every write sent so far; throws the first failure (again on every later call). */
  async settle(): Promise<void> {
    if (this.pending.length > 0) {
      const pending = this.pending;
      this.pending = [];
      await Promise.all(pending);
    }
    if (this.failure) {
      throw this.failure.error;
    }
  }

  /** The connection as the rest of the transaction uses it: each statement after the pending writes. */
  ordered(): Queryable {
    return {
      inTransaction: this.conn.inTransaction,
      query: async <R>(sql: string, params?: readonly unknown[]) => {
        await this.settle();
        return this.conn.query<R>(sql, params);
      },
    };
  }
}
