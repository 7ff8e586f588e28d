/**
 * The daily quota of a person's STOW-RS (DICOM_PERSON_DAILY_BYTES): the bytes of instances one
 * person (a token's user id) may have stored in any 24 hours, so that one referring physician's
 * token cannot fill the disk. System clients (imaging systems, EHRs) and C-STORE are not limited.
 *
 * The bytes are counted per person and hour in the database (migration 032), so the quota holds
 * across restarts and across hub processes. A part's bytes are reserved before it is stored, under
 * an advisory lock per person so that concurrent parts and processes cannot both take the last room,
 * and given back when the part was not stored or its identical bytes were already stored; a part
 * refused a reservation that the hub holds already, byte for byte, goes on without one (stow.ts),
 * since it adds nothing. A process
 * that dies in between leaves its reservation counted: the person loses that room for a day, never
 * gains any. The window is the current hour and the 23 before it, so bytes count for 23 to 24 hours.
 */
import type { Database } from '../../db/database.ts';
import type { Clock } from '../../runtime/clock.ts';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
/** Rows are kept this long, then deleted (at most once an hour per process). */
const KEEP_MS = 2 * DAY_MS;

/** Bytes reserved for one part, in the hour they were counted in. */
export interface QuotaReservation {
  readonly userId: string;
  readonly hour: string;
  readonly bytes: number;
}

export class PersonStowQuota {
  readonly dailyBytes: number;
  private readonly db: Database;
  private readonly clock: Clock;
  private lastPrune = Number.NEGATIVE_INFINITY;

  constructor(db: Database, clock: Clock, dailyBytes: number) {
    this.db = db;
    this.clock = clock;
    this.dailyBytes = dailyBytes;
  }

  /**
   * Whether the person is at or over the quota; if so, the seconds until enough of their bytes leave
   * the window to let them store again (undefined when nothing will leave: nothing was counted).
   */
  async reached(userId: string): Promise<{ reached: boolean; retryAfterSeconds: number | undefined }> {
    await this.prune();
    const now = this.clock.now().getTime();
    const rows = await this.db.query<{ hour: Date | string; bytes: number }>(
      `SELECT hour, bytes FROM stow_person_bytes WHERE user_id = $1 AND hour > $2::timestamptz ORDER BY hour`,
      [userId, new Date(now - DAY_MS).toISOString()],
    );
    const used = rows.rows.reduce((sum, row) => sum + Number(row.bytes), 0);
    // The oldest hours leave the window first: the first whose leaving takes the person under the quota.
    let remaining = used;
    let retryAfterSeconds: number | undefined;
    for (const row of rows.rows) {
      remaining -= Number(row.bytes);
      if (remaining < this.dailyBytes) {
        retryAfterSeconds = Math.max(1, Math.ceil((new Date(row.hour).getTime() + DAY_MS - now) / 1000));
        break;
      }
    }
    return { reached: used >= this.dailyBytes, retryAfterSeconds };
  }

  /** Reserves a part's bytes for the person; undefined when they would take the person over the quota. */
  async reserve(userId: string, bytes: number): Promise<QuotaReservation | undefined> {
    const now = this.clock.now().getTime();
    const hour = new Date(Math.floor(now / HOUR_MS) * HOUR_MS).toISOString();
    return this.db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('stow-person-bytes:' || $1, 0))`, [userId]);
      const used = await tx.query<{ used: number | string | null }>(
        `SELECT sum(bytes) AS used FROM stow_person_bytes WHERE user_id = $1 AND hour > $2::timestamptz`,
        [userId, new Date(now - DAY_MS).toISOString()],
      );
      if (Number(used.rows[0]?.used ?? 0) + bytes > this.dailyBytes) {
        return undefined;
      }
      await tx.query(
        `INSERT INTO stow_person_bytes (user_id, hour, bytes) VALUES ($1, $2::timestamptz, $3)
         ON CONFLICT (user_id, hour) DO UPDATE SET bytes = stow_person_bytes.bytes + EXCLUDED.bytes`,
        [userId, hour, bytes],
      );
      return { userId, hour, bytes };
    });
  }

  /** Gives a reservation back: its part was not stored, or its identical bytes were already stored. */
  async release(reservation: QuotaReservation): Promise<void> {
    await this.db.query(
      `UPDATE stow_person_bytes SET bytes = greatest(bytes - $3, 0) WHERE user_id = $1 AND hour = $2::timestamptz`,
      [reservation.userId, reservation.hour, reservation.bytes],
    );
  }

  private async prune(): Promise<void> {
    const now = this.clock.now().getTime();
    if (Math.abs(now - this.lastPrune) < HOUR_MS) {
      return;
    }
    this.lastPrune = now;
    await this.db.query(`DELETE FROM stow_person_bytes WHERE hour < $1::timestamptz`, [
      new Date(now - KEEP_MS).toISOString(),
    ]);
  }
}
