/**
 * One-time authorization codes (RFC 6749 §4.1.2, table auth_authorization_code) and PKCE (RFC 7636,
 * S256 only). A code lives a minute, is redeemed once, and only by the client it was issued to, with
 * the same redirect URI and the verifier of its challenge. A code presented twice revokes the session
 * it was issued in (RFC 6749 §4.1.2: the tokens issued from it should be revoked).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../db/database.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';

export const AUTHORIZATION_CODE_LIFETIME_SECONDS = 60;
/** RFC 7636 §4.1: 43-128 unreserved characters; §4.2: S256 challenges are 43 base64url characters. */
export const CODE_VERIFIER_PATTERN = /^[A-Za-z0-9\-._~]{43,128}$/;
export const CODE_CHALLENGE_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface CodeGrant {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  scope: string;
  nonce: string | undefined;
  sessionId: string;
}

export type Redemption =
  | { status: 'ok'; grant: CodeGrant }
  | { status: 'unknown' }
  | { status: 'expired' }
  | { status: 'reused'; sessionId: string };

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, compared in constant time. */
export function pkceMatches(verifier: string, challenge: string): boolean {
  if (!CODE_VERIFIER_PATTERN.test(verifier) || !CODE_CHALLENGE_PATTERN.test(challenge)) {
    return false;
  }
  return timingSafeEqual(Buffer.from(sha256(verifier).toString('base64url')), Buffer.from(challenge));
}

interface CodeRow {
  client_id: string;
  redirect_uri: string;
  code_challenge: string;
  scope: string;
  nonce: string | null;
  session_id: string;
  expired: boolean;
}

export class AuthorizationCodes {
  private readonly db: Queryable;
  private readonly clock: Clock;

  constructor(db: Queryable, clock: Clock = systemClock) {
    this.db = db;
    this.clock = clock;
  }

  async issue(grant: CodeGrant, lifetimeSeconds = AUTHORIZATION_CODE_LIFETIME_SECONDS): Promise<string> {
    const code = randomBytes(32).toString('base64url');
    await this.db.query(
      `INSERT INTO auth_authorization_code (code_hash, client_id, redirect_uri, code_challenge, scope, nonce, session_id, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $9::timestamptz + $8 * interval '1 second')`,
      [
        sha256(code),
        grant.clientId,
        grant.redirectUri,
        grant.codeChallenge,
        grant.scope,
        grant.nonce ?? null,
        grant.sessionId,
        lifetimeSeconds,
        this.clock.now(),
      ],
    );
    // Codes are kept a day after they expire, long enough to recognise a replay, then dropped.
    await this.db.query("DELETE FROM auth_authorization_code WHERE expires_at < $1::timestamptz - interval '1 day'", [
      this.clock.now(),
    ]);
    return code;
  }

  /** Marks the code used and returns what it grants; the caller checks client, redirect URI and verifier. */
  async redeem(code: string): Promise<Redemption> {
    const hash = sha256(code);
    const result = await this.db.query<CodeRow>(
      `UPDATE auth_authorization_code SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL
       RETURNING client_id, redirect_uri, code_challenge, scope, nonce, session_id, expires_at <= $2::timestamptz AS expired`,
      [hash, this.clock.now()],
    );
    const row = result.rows[0];
    if (!row) {
      const used = await this.db.query<{ session_id: string }>(
        'SELECT session_id FROM auth_authorization_code WHERE code_hash = $1',
        [hash],
      );
      return used.rows[0] ? { status: 'reused', sessionId: used.rows[0].session_id } : { status: 'unknown' };
    }
    if (row.expired) {
      return { status: 'expired' };
    }
    return {
      status: 'ok',
      grant: {
        clientId: row.client_id,
        redirectUri: row.redirect_uri,
        codeChallenge: row.code_challenge,
        scope: row.scope,
        nonce: row.nonce ?? undefined,
        sessionId: row.session_id,
      },
    };
  }
}
