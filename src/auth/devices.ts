/**
 * Known browsers (table auth_device, migration 023): after a person signs in completely (password,
 * and the authenticator code for staff), their browser gets a random token in the `hub_device`
 * cookie, kept for DEVICE_DAYS and replaced at their next sign-in there; the database keeps its
 * SHA-256 only. One cookie holds the tokens of
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
   * Records a sign-in on this browser: a new token for `userId`, and the cookie value to send back,
   * with this person's token first. The token the browser held for them, if any, is forgotten: each
   * sign-in replaces it, so a copy of the cookie taken earlier (a synced profile, a backup) stops
   * counting as this browser once its owner signs in again.
   */
  async remember(userId: string, tokens: readonly string[], now: Date): Promise<string> {
    const expiresAt = new Date(now.getTime() + DEVICE_DAYS * 86_400_000);
    const previous = await this.knownToken(userId, tokens, now);
    const token = randomBytes(16).toString('hex');
    await this.db.query(
      'INSERT INTO auth_device (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)',
      [sha256(token), userId, now, expiresAt],
    );
    // The token replaced, and expired devices of this person, go when they sign in again.
    await this.db.query('DELETE FROM auth_device WHERE user_id = $1 AND (expires_at <= $2 OR token_hash = $3)', [
      userId,
      now,
      previous === undefined ? null : sha256(previous),
    ]);
    return [token, ...tokens.filter((other) => other !== previous)].slice(0, TOKENS_PER_BROWSER).join('-');
  }

  /** Forgets every browser of a person (their password was reset, or the account disabled). */
  async forget(userId: string): Promise<void> {
    await this.db.query('DELETE FROM auth_device WHERE user_id = $1', [userId]);
  }
}
