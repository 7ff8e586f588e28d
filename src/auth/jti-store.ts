/**
 * Assertion ids already used (RFC 7523 §3 item 7, SMART Backend Services: a `jti` is refused when seen
 * before within the assertion's lifetime). Kept in PostgreSQL so that every process of the hub sees
 * the same set.
 */
import type { Queryable } from '../db/database.ts';

const PURGE_INTERVAL_MS = 60_000;

export class JtiStore {
  private readonly db: Queryable;
  private lastPurge = 0;

  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * Records `jti` for `clientId` until `expiresAt`; false when it is already recorded and not yet
   * expired (a replay). A row left by an expired assertion is taken over.
   */
  async claim(clientId: string, jti: string, expiresAt: Date, now: Date): Promise<boolean> {
    await this.purgeNowAndThen(now);
    const result = await this.db.query(
      `INSERT INTO auth_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
       WHERE auth_assertion_jti.expires_at < $4`,
      [clientId, jti, expiresAt, now],
    );
    return result.rowCount === 1;
  }

  private async purgeNowAndThen(now: Date): Promise<void> {
    if (now.getTime() - this.lastPurge < PURGE_INTERVAL_MS) {
      return;
    }
    this.lastPurge = now.getTime();
    await this.db.query('DELETE FROM auth_assertion_jti WHERE expires_at < $1', [now]);
  }
}
