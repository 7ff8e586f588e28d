/**
 * Checking a person's credentials: e-mail, password and, for staff, a TOTP code. Every refusal looks
 * the same to the person (LOGIN_REFUSED): an unknown e-mail, a wrong password or code, a locked or a
 * disabled account cannot be told apart, and an unknown e-mail costs as much scrypt time as a known one.
 * The reason is returned for the log, which names the user by id only.
 */
import { decoyPasswordHash, hashPassword, needsRehash, verifyPassword } from './passwords.ts';
import { verifyTotp } from './totp.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';
import { publicUser, requiresTotp } from './users.ts';
import type { User, UserStore } from './users.ts';

export const LOGIN_REFUSED =
  'The e-mail address, password or authenticator code is not correct, or the account is locked or disabled.';
/**
 * Twenty failures in a row from places the account has not signed in from lock it to such places for
 * fifteen minutes (login-guard.ts: fewer failures from one place lock that place out first).
 */
export const ACCOUNT_LOCK_FAILURES = 20;
export const LOCKOUT_SECONDS = 15 * 60;

export type LoginRefusal = 'unknown-user' | 'disabled' | 'locked' | 'wrong-password' | 'totp-missing' | 'wrong-totp';

export type LoginResult =
  { ok: true; user: User } | { ok: false; reason: LoginRefusal; userId?: string; lockedNow?: boolean };

export interface Credentials {
  email: string;
  password: string;
  totp: string;
}

/**
 * `knownDevice`: the browser is one the person signed in from before (devices.ts); the account-wide
 * lock-out, which failures from elsewhere set, then neither applies nor counts.
 */
export async function checkCredentials(
  users: UserStore,
  credentials: Credentials,
  clock: Clock = systemClock,
  knownDevice = false,
): Promise<LoginResult> {
  const now = clock.now();
  const user = await users.findByEmail(credentials.email);
  if (!user) {
    await verifyPassword(credentials.password, await decoyPasswordHash());
    return { ok: false, reason: 'unknown-user' };
  }
  const passwordMatches = await verifyPassword(credentials.password, user.passwordHash);
  if (user.status !== 'active') {
    return { ok: false, reason: 'disabled', userId: user.id };
  }
  if (!knownDevice && user.lockedUntil !== undefined && user.lockedUntil.getTime() > now.getTime()) {
    return { ok: false, reason: 'locked', userId: user.id };
  }

  let refusal: LoginRefusal | undefined;
  let totpStep: number | undefined;
  if (!passwordMatches) {
    refusal = 'wrong-password';
  } else if (requiresTotp(user.role)) {
    if (user.totpSecret === undefined || credentials.totp.trim() === '') {
      refusal = 'totp-missing';
    } else {
      totpStep = verifyTotp(user.totpSecret, credentials.totp, now.getTime(), user.totpLastStep);
      if (totpStep === undefined) {
        refusal = 'wrong-totp';
      }
    }
  }
  if (refusal !== undefined) {
    const lockedNow = knownDevice
      ? false
      : await users.recordFailure(user.id, ACCOUNT_LOCK_FAILURES, LOCKOUT_SECONDS, now);
    return { ok: false, reason: refusal, userId: user.id, lockedNow };
  }
  const rehashed = needsRehash(user.passwordHash) ? await hashPassword(credentials.password) : undefined;
  if (!(await users.recordSuccess(user.id, totpStep, rehashed))) {
    // Another login used the same code between our read and our write.
    return { ok: false, reason: 'wrong-totp', userId: user.id };
  }
  return { ok: true, user: publicUser(user) };
}
