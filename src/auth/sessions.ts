/**
 * Login sessions at the hub's authorization server (table auth_session). The browser keeps a random
 * cookie; the database keeps its SHA-256, so a copy of the table logs nobody in. A session ends at an
 * absolute time, after an idle time without use, or when revoked (logout, the user disabled).
 *
 * Access tokens are self-contained JWTs that carry their session's id (`sid`), are cut to end no later
 * than the session could, and live ten minutes at most. Logout must still stop them at once: each
 * process keeps the set of revoked session ids in memory (RevokedSessions), adds its own revocations
 * immediately and fetches the others' from the database at most every few seconds, so checking a
 * token stays a Set lookup. No refresh tokens: while the session lives, the app gets a new code from
 * the authorization endpoint without the person typing anything, and one revocation ends it all.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { requiredRow } from '../db/database.ts';
import type { Queryable } from '../db/database.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';

export interface SessionLimits {
  /** The session ends after this long without use (AUTH_SESSION_IDLE_SECONDS). */
  idleSeconds: number;
  /** …and this long after the login whatever happens (AUTH_SESSION_MAX_SECONDS). */
  maxSeconds: number;
}

export interface ActiveSession {
  id: string;
  userId: string;
  /** When the session ends if it is not used again: min(absolute end, now + idle time). */
  deadline: Date;
  /** The absolute end. */
  expiresAt: Date;
}

interface SessionRow {
  id: string;
  user_id: string;
  deadline: Date | string;
  expires_at: Date | string;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

function fromRow(row: SessionRow): ActiveSession {
  return { id: row.id, userId: row.user_id, deadline: new Date(row.deadline), expiresAt: new Date(row.expires_at) };
}

// "Usable" at the instant `now` (a placeholder): not revoked, before both ends, and the user still active.
const usable = (
  now: string,
): string => `s.revoked_at IS NULL AND s.expires_at > ${now} AND s.last_seen_at + s.idle_seconds * interval '1 second' > ${now}
  AND u.id = s.user_id AND u.status = 'active'`;
const RETURNING = `s.id, s.user_id, s.expires_at, LEAST(s.expires_at, s.last_seen_at + s.idle_seconds * interval '1 second') AS deadline`;

export class SessionStore {
  private readonly db: Queryable;
  private readonly limits: SessionLimits;
  /** Session times are the hub's clock's (runtime/clock.ts), not the database's: tokens are cut to them. */
  private readonly clock: Clock;

  constructor(db: Queryable, limits: SessionLimits, clock: Clock = systemClock) {
    this.db = db;
    this.limits = limits;
    this.clock = clock;
  }

  /** Starts a session; the cookie value is returned once and never stored. */
  async create(userId: string): Promise<{ session: ActiveSession; cookie: string }> {
    const cookie = randomBytes(32).toString('base64url');
    const result = await this.db.query<SessionRow>(
      `INSERT INTO auth_session AS s (id, token_hash, user_id, created_at, last_seen_at, expires_at, idle_seconds)
       VALUES ($1, $2, $3, $6, $6, $6::timestamptz + $4 * interval '1 second', $5) RETURNING ${RETURNING}`,
      [randomUUID(), sha256(cookie), userId, this.limits.maxSeconds, this.limits.idleSeconds, this.clock.now()],
    );
    // Sessions a day past their end can hold no live token: forget them (and their codes, by cascade).
    await this.db.query("DELETE FROM auth_session WHERE expires_at < $1::timestamptz - interval '1 day'", [
      this.clock.now(),
    ]);
    return { session: fromRow(requiredRow(result, 'the session insert')), cookie };
  }

  /** The usable session a cookie belongs to, marked as used now. */
  async useCookie(cookie: string): Promise<ActiveSession | undefined> {
    const result = await this.db.query<SessionRow>(
      `UPDATE auth_session s SET last_seen_at = $2 FROM auth_user u WHERE s.token_hash = $1 AND ${usable('$2::timestamptz')} RETURNING ${RETURNING}`,
      [sha256(cookie), this.clock.now()],
    );
    return result.rows[0] && fromRow(result.rows[0]);
  }

  /** The usable session with this id, marked as used now. */
  async use(id: string): Promise<ActiveSession | undefined> {
    const result = await this.db.query<SessionRow>(
      `UPDATE auth_session s SET last_seen_at = $2 FROM auth_user u WHERE s.id = $1 AND ${usable('$2::timestamptz')} RETURNING ${RETURNING}`,
      [id, this.clock.now()],
    );
    return result.rows[0] && fromRow(result.rows[0]);
  }

  /** The session a cookie belongs to, usable or not, with its person (for the logout's audit). */
  async forCookie(cookie: string): Promise<{ id: string; userId: string; fhirUser: string | undefined } | undefined> {
    const result = await this.db.query<{ id: string; user_id: string; fhir_user: string | null }>(
      'SELECT s.id, s.user_id, u.fhir_user FROM auth_session s JOIN auth_user u ON u.id = s.user_id WHERE s.token_hash = $1',
      [sha256(cookie)],
    );
    const row = result.rows[0];
    return row && { id: row.id, userId: row.user_id, fhirUser: row.fhir_user ?? undefined };
  }

  /** Revokes a session; returns its absolute end (tokens cannot outlive it), undefined when unknown. */
  async revoke(id: string): Promise<Date | undefined> {
    const result = await this.db.query<{ expires_at: Date | string }>(
      'UPDATE auth_session SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING expires_at',
      [id, this.clock.now()],
    );
    return result.rows[0] && new Date(result.rows[0].expires_at);
  }
}

/** How often a process asks the database for sessions other processes revoked. */
export const REVOCATION_REFRESH_MS = 5_000;

/** The ids of revoked sessions whose tokens may still be unexpired, kept per process. */
export class RevokedSessions {
  private readonly db: Queryable;
  private readonly refreshMs: number;
  private readonly clock: Clock;
  /** Session id → the session's absolute end (after it, no token of the session is valid anyway). */
  private readonly revoked = new Map<string, number>();
  private since: Date | undefined;
  private lastRefresh = 0;
  private refreshing: Promise<void> | undefined;

  constructor(db: Queryable, clock: Clock = systemClock, refreshMs = REVOCATION_REFRESH_MS) {
    this.db = db;
    this.clock = clock;
    this.refreshMs = refreshMs;
  }

  /** Records a revocation made by this process. */
  add(sessionId: string, expiresAt: Date): void {
    this.revoked.set(sessionId, expiresAt.getTime());
  }

  /** True when the session was revoked; refreshes from the database when the set is older than refreshMs. */
  async isRevoked(sessionId: string): Promise<boolean> {
    if (this.clock.now().getTime() - this.lastRefresh >= this.refreshMs) {
      this.refreshing ??= this.refresh().finally(() => {
        this.refreshing = undefined;
      });
      await this.refreshing;
    }
    return this.revoked.has(sessionId);
  }

  private async refresh(): Promise<void> {
    // Rows revoked shortly before the last look are read again: a transaction that committed late
    // may carry an earlier revoked_at than one we have already seen.
    const now = this.clock.now();
    const result = await this.db.query<{ id: string; expires_at: Date | string }>(
      `SELECT id, expires_at FROM auth_session
       WHERE revoked_at IS NOT NULL AND expires_at > $2 AND ($1::timestamptz IS NULL OR revoked_at >= $1::timestamptz - interval '1 minute')`,
      [this.since ?? null, now],
    );
    for (const row of result.rows) {
      this.revoked.set(row.id, new Date(row.expires_at).getTime());
    }
    for (const [id, end] of this.revoked) {
      if (end < now.getTime()) {
        this.revoked.delete(id);
      }
    }
    this.since = now;
    this.lastRefresh = now.getTime();
  }
}
