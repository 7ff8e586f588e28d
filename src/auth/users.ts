/**
 * People's accounts (table auth_user, migration 009): e-mail (unique whatever its case), role, the
 * FHIR resource the person is, an scrypt password hash, status, the TOTP secret staff must have, and
 * the failed-login counter behind the lock-out. What each role may see is not decided here.
 *
 * TOTP secrets are stored encrypted (secret-box.ts) when the store has the hub's SecretBox; callers
 * always see the plaintext. A secret stored before encryption (or by a store without the box) still
 * works, and is encrypted when the hub starts (encryptStoredSecrets) or first reads it.
 */
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/database.ts';
import { hashPassword } from './passwords.ts';
import { SecretKeyError, isSealed, sealedKeyId, wrongKey } from './secret-box.ts';
import type { SecretBox } from './secret-box.ts';
import { generateTotpSecret } from './totp.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';

export const USER_ROLES = [
  'coordinator',
  'specialist',
  'radiologist',
  'pathologist',
  'referring-physician',
  'patient',
  'admin',
] as const;
export type UserRole = (typeof USER_ROLES)[number];
export type UserStatus = 'active' | 'disabled';

/** Staff log in with a second factor; patients and referring physicians (outside the service) need not. */
export function requiresTotp(role: UserRole): boolean {
  return role !== 'patient' && role !== 'referring-physician';
}

export function isUserRole(value: string): value is UserRole {
  return (USER_ROLES as readonly string[]).includes(value);
}

export const FHIR_USER_PATTERN = /^(Practitioner|Patient)\/[A-Za-z0-9\-.]{1,64}$/;
const EMAIL_PATTERN = /^[^@\s]+@[^@\s]+$/;

export interface User {
  id: string;
  email: string;
  role: UserRole;
  /** `Practitioner/<id>` or `Patient/<id>`. */
  fhirUser: string | undefined;
  status: UserStatus;
  totpEnrolled: boolean;
  failedAttempts: number;
  lockedUntil: Date | undefined;
  createdAt: Date;
  updatedAt: Date;
}

/** A user with the secrets the login checks. */
export interface UserCredentials extends User {
  passwordHash: string;
  totpSecret: string | undefined;
  totpLastStep: number | undefined;
}

export interface NewUser {
  email: string;
  role: UserRole;
  fhirUser?: string;
  password: string;
}

export class UserStoreError extends Error {}

interface UserRow {
  id: string;
  email: string;
  role: UserRole;
  fhir_user: string | null;
  password_hash: string;
  status: UserStatus;
  totp_secret: string | null;
  totp_last_step: string | number | null;
  failed_attempts: number;
  locked_until: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS =
  'id, email, role, fhir_user, password_hash, status, totp_secret, totp_last_step, failed_attempts, locked_until, created_at, updated_at';

function fromRow(row: UserRow): UserCredentials {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    fhirUser: row.fhir_user ?? undefined,
    status: row.status,
    totpEnrolled: row.totp_secret !== null,
    failedAttempts: row.failed_attempts,
    lockedUntil: row.locked_until === null ? undefined : new Date(row.locked_until),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    passwordHash: row.password_hash,
    totpSecret: row.totp_secret ?? undefined,
    totpLastStep: row.totp_last_step === null ? undefined : Number(row.totp_last_step),
  };
}

/** The user without its secrets. */
export function publicUser(user: UserCredentials): User {
  const { passwordHash: _hash, totpSecret: _secret, totpLastStep: _step, ...rest } = user;
  return rest;
}

export function normalizeEmail(email: string): string {
  return email.trim();
}

export class UserStore {
  private readonly db: Queryable;
  private readonly secrets: SecretBox | undefined;

  /** Without `secrets`, new TOTP secrets are stored as they are, until the hub encrypts them. */
  /** Revocations are stamped on the hub's clock, which RevokedSessions reads them by. */
  private readonly clock: Clock;

  constructor(db: Queryable, secrets?: SecretBox, clock: Clock = systemClock) {
    this.db = db;
    this.secrets = secrets;
    this.clock = clock;
  }

  private seal(totpSecret: string): string {
    return this.secrets ? this.secrets.seal(totpSecret) : totpSecret;
  }

  /** The credentials with the TOTP secret in plaintext; a plaintext one is encrypted now. */
  private async reveal(user: UserCredentials): Promise<UserCredentials> {
    const stored = user.totpSecret;
    if (stored === undefined) {
      return user;
    }
    if (!isSealed(stored)) {
      if (this.secrets) {
        await this.resealStored(user.id, stored, stored);
      }
      return user;
    }
    if (!this.secrets) {
      throw new SecretKeyError('this TOTP secret is encrypted, and no secrets key was given to read it');
    }
    return { ...user, totpSecret: this.secrets.open(stored) };
  }

  private async resealStored(id: string, stored: string, plaintext: string): Promise<void> {
    // Only if unchanged meanwhile (a reset-totp, another process encrypting it first).
    await this.db.query('UPDATE auth_user SET totp_secret = $3 WHERE id = $1 AND totp_secret = $2', [
      id,
      stored,
      this.seal(plaintext),
    ]);
  }

  /**
   * Checks that every encrypted TOTP secret is readable with this store's key (throws SecretKeyError
   * naming both key ids when not) and encrypts those stored in plaintext. Returns how many it encrypted.
   */
  async encryptStoredSecrets(): Promise<number> {
    if (!this.secrets) {
      throw new SecretKeyError('no secrets key to encrypt TOTP secrets with');
    }
    const keyId = this.secrets.keyId;
    const rows = await this.db.query<{ id: string; totp_secret: string }>(
      'SELECT id, totp_secret FROM auth_user WHERE totp_secret IS NOT NULL',
    );
    const foreign = rows.rows.map((row) => sealedKeyId(row.totp_secret)).find((id) => id !== undefined && id !== keyId);
    if (foreign !== undefined) {
      throw wrongKey(foreign, keyId);
    }
    const plaintext = rows.rows.filter((row) => !isSealed(row.totp_secret));
    for (const row of plaintext) {
      await this.resealStored(row.id, row.totp_secret, row.totp_secret);
    }
    return plaintext.length;
  }

  /**
   * Creates an account; staff get a TOTP secret, returned once for enrolment. Throws UserStoreError
   * when the e-mail is taken or a value is not acceptable.
   */
  async add(user: NewUser): Promise<{ user: User; totpSecret: string | undefined }> {
    const email = normalizeEmail(user.email);
    if (!EMAIL_PATTERN.test(email) || email.length > 254) {
      throw new UserStoreError(`"${email}" is not an e-mail address`);
    }
    if (!isUserRole(user.role)) {
      throw new UserStoreError(`the role must be one of ${USER_ROLES.join(', ')}`);
    }
    if (user.fhirUser !== undefined && !FHIR_USER_PATTERN.test(user.fhirUser)) {
      throw new UserStoreError('the FHIR user is Practitioner/<id> or Patient/<id>');
    }
    if (user.role === 'patient' && user.fhirUser !== undefined && !user.fhirUser.startsWith('Patient/')) {
      throw new UserStoreError("a patient's account links to a Patient, not a Practitioner");
    }
    if (user.role !== 'patient' && user.fhirUser?.startsWith('Patient/')) {
      throw new UserStoreError(`a ${user.role}'s account links to a Practitioner, not a Patient`);
    }
    const totpSecret = requiresTotp(user.role) ? generateTotpSecret() : undefined;
    const result = await this.db.query<UserRow>(
      `INSERT INTO auth_user (id, email, role, fhir_user, password_hash, totp_secret)
       SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM auth_user WHERE lower(email) = lower($2))
       ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
      [
        randomUUID(),
        email,
        user.role,
        user.fhirUser ?? null,
        await hashPassword(user.password),
        totpSecret === undefined ? null : this.seal(totpSecret),
      ],
    );
    const row = result.rows[0];
    if (row === undefined) {
      throw new UserStoreError(`an account with the e-mail "${email}" exists already`);
    }
    return { user: publicUser(fromRow(row)), totpSecret };
  }

  async findByEmail(email: string): Promise<UserCredentials | undefined> {
    const result = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM auth_user WHERE lower(email) = lower($1)`, [
      normalizeEmail(email),
    ]);
    return result.rows[0] && this.reveal(fromRow(result.rows[0]));
  }

  async get(id: string): Promise<UserCredentials | undefined> {
    const result = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM auth_user WHERE id = $1`, [id]);
    return result.rows[0] && this.reveal(fromRow(result.rows[0]));
  }

  /** The account without its secrets (nothing to decrypt): who it is, its role and status. */
  async find(id: string): Promise<User | undefined> {
    const result = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM auth_user WHERE id = $1`, [id]);
    return result.rows[0] && publicUser(fromRow(result.rows[0]));
  }

  async list(): Promise<User[]> {
    const result = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM auth_user ORDER BY lower(email)`);
    return result.rows.map((row) => publicUser(fromRow(row)));
  }

  /** Sets the status; disabling also ends every session of the user. Undefined when there is no such user. */
  async setStatus(email: string, status: UserStatus): Promise<User | undefined> {
    const result = await this.db.query<UserRow>(
      `UPDATE auth_user SET status = $2, updated_at = now() WHERE lower(email) = lower($1) RETURNING ${COLUMNS}`,
      [normalizeEmail(email), status],
    );
    const user = result.rows[0] && fromRow(result.rows[0]);
    if (user && status === 'disabled') {
      await this.revokeSessions(user.id);
      await this.forgetDevices(user.id);
    }
    return user && publicUser(user);
  }

  /** A new TOTP secret (staff only), to be enrolled; the old one stops working. */
  async resetTotp(email: string): Promise<{ user: User; totpSecret: string } | undefined> {
    // Not findByEmail: the old secret need not be readable (a reset is how one recovers from a lost key).
    const rows = await this.db.query<UserRow>(`SELECT ${COLUMNS} FROM auth_user WHERE lower(email) = lower($1)`, [
      normalizeEmail(email),
    ]);
    const found = rows.rows[0] && fromRow(rows.rows[0]);
    if (!found) {
      return undefined;
    }
    if (!requiresTotp(found.role)) {
      throw new UserStoreError(`a ${found.role} has no TOTP (only staff log in with one)`);
    }
    const totpSecret = generateTotpSecret();
    const result = await this.db.query<UserRow>(
      `UPDATE auth_user SET totp_secret = $2, totp_last_step = NULL, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [found.id, this.seal(totpSecret)],
    );
    // A browser known before the reset may be the one the lost key was on.
    await this.forgetDevices(found.id);
    // The account can be deleted between the lookup and the update: then there is none to reset.
    const updated = result.rows[0];
    return updated && { user: publicUser(fromRow(updated)), totpSecret };
  }

  /** Clears the lock-out and the failure count. */
  async unlock(email: string): Promise<User | undefined> {
    const result = await this.db.query<UserRow>(
      `UPDATE auth_user SET failed_attempts = 0, locked_until = NULL, updated_at = now() WHERE lower(email) = lower($1) RETURNING ${COLUMNS}`,
      [normalizeEmail(email)],
    );
    return result.rows[0] && publicUser(fromRow(result.rows[0]));
  }

  /**
   * Counts a failed login; the `maxFailures`-th locks the account for `lockSeconds` and starts the
   * count again. Returns whether this failure locked it.
   */
  async recordFailure(id: string, maxFailures: number, lockSeconds: number, now: Date): Promise<boolean> {
    const result = await this.db.query<{ locked: boolean }>(
      `UPDATE auth_user SET
         failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 ELSE failed_attempts + 1 END,
         locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN $4::timestamptz + $3 * interval '1 second' ELSE locked_until END
       WHERE id = $1 RETURNING locked_until > $4::timestamptz AS locked`,
      [id, maxFailures, lockSeconds, now],
    );
    return result.rows[0]?.locked === true;
  }

  /**
   * Records a successful login: clears the failures, remembers the TOTP step used (refusing a step not
   * after the last one, so two logins racing with one code cannot both pass) and stores a re-hashed
   * password when given. False when the TOTP step was taken meanwhile.
   */
  async recordSuccess(id: string, totpStep: number | undefined, newPasswordHash: string | undefined): Promise<boolean> {
    const result = await this.db.query(
      `UPDATE auth_user SET failed_attempts = 0, locked_until = NULL,
         totp_last_step = COALESCE($2, totp_last_step), password_hash = COALESCE($3, password_hash)
       WHERE id = $1 AND ($2::bigint IS NULL OR totp_last_step IS NULL OR totp_last_step < $2::bigint)`,
      [id, totpStep ?? null, newPasswordHash ?? null],
    );
    return result.rowCount === 1;
  }

  /** The person's known browsers (auth/devices.ts) no longer count as theirs. */
  private async forgetDevices(userId: string): Promise<void> {
    await this.db.query('DELETE FROM auth_device WHERE user_id = $1', [userId]);
  }

  private async revokeSessions(userId: string): Promise<void> {
    // On the writer's clock, as SessionStore.revoke does: RevokedSessions reads revocations by that time.
    await this.db.query('UPDATE auth_session SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL', [
      userId,
      this.clock.now(),
    ]);
  }
}
