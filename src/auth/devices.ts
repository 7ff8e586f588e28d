/**
 * Known browsers (table auth_device, migration 023): after a person signs in completely (password,
 * and the authenticator code for staff), their browser gets a random token in the `hub_device`
 * cookie, kept for DEVICE_DAYS; the database keeps its SHA-256 only. One cookie holds the tokens of
 * the last few people who signed in on that browser (a shared workstation on a ward).
 *
 * What a known browser changes is only which lock-out applies (login-guard.ts): failures counted
 * against the account from unknown places never hold it back. It proves nothing by itself: the
 * password and the code are asked for as always.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Queryable } from '../db/database.ts';

export const DEVICE_COOKIE = 'hub_device';
export const DEVICE_DAYS = 90;
/** Tokens one browser's cookie keeps (readCookie caps a cookie at 128 characters). */
const TOKENS_PER_BROWSER = 3;
const TOKEN = /^[0-9a-f]{32}$/;

const sha256 = (token: string): Buffer => createHash('sha256').update(token).digest();

/** The tokens in a `hub_device` cookie's value (hex, joined by `-`), malformed ones dropped. */
export function deviceTokens(cookie: string | undefined): string[] {
  return (cookie ?? '')
    .split('-')
    .filter((token) => TOKEN.test(token))
    .slice(0, TOKENS_PER_BROWSER);
}

export class DeviceStore {
  private readonly db: Queryable;

  constructor(db: Queryable) {
    this.db = db;
  }

  /** The one of `tokens` that is a live device of `userId`, if any. */
  async knownToken(userId: string, tokens: readonly string[], now: Date): Promise<string | undefined> {
    if (tokens.length === 0) {
      return undefined;
    }
    const result = await this.db.query<{ token_hash: Buffer }>(
      'SELECT token_hash FROM auth_device WHERE user_id = $1 AND token_hash = ANY($2::bytea[]) AND expires_at > $3',
      [userId, tokens.map(sha256), now],
    );
    const known = new Set(result.rows.map((row) => Buffer.from(row.token_hash).toString('hex')));
    return tokens.find((token) => known.has(sha256(token).toString('hex')));
  }

  /**
   * Records a sign-in on this browser: a new token for `userId` (or the one it had, renewed), and
   * the cookie value to send back, with this person's token first.
   */
  async remember(userId: string, tokens: readonly string[], now: Date): Promise<string> {
    const expiresAt = new Date(now.getTime() + DEVICE_DAYS * 86_400_000);
    const existing = await this.knownToken(userId, tokens, now);
    const token = existing ?? randomBytes(16).toString('hex');
    await this.db.query(
      `INSERT INTO auth_device (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (token_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [sha256(token), userId, now, expiresAt],
    );
    // Expired devices of this person go when they sign in again.
    await this.db.query('DELETE FROM auth_device WHERE user_id = $1 AND expires_at <= $2', [userId, now]);
    return [token, ...tokens.filter((other) => other !== token)].slice(0, TOKENS_PER_BROWSER).join('-');
  }

  /** Forgets every browser of a person (their password was reset, or the account disabled). */
  async forget(userId: string): Promise<void> {
    await this.db.query('DELETE FROM auth_device WHERE user_id = $1', [userId]);
  }
}
