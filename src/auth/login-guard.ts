/**
 * How sign-in failures hold people back, so that guessing at an account cannot lock its owner out
 * (issue 11): failures count per place, and the owner's own browser is a place of its own.
 *
 * - A place is the browser, when it is a known device of the account (devices.ts), otherwise the
 *   client's address (audit/client-address.ts: behind a proxy named in TRUST_PROXY, the client's own).
 * - Attempts per place, for any account: LOGIN_PER_PLACE (a 429 beyond it).
 * - Failures per place and account: LOGIN_FAILURES_PER_PLACE. Five wrong tries from one address
 *   lock that address out of that account for fifteen minutes; the coordinator at their own desk,
 *   or on their own known browser, is not held back by someone guessing elsewhere.
 * - Failures from unknown places against one account, wherever they come from, count in the
 *   database (login.ts, ACCOUNT_LOCK_FAILURES): guessing spread over many addresses locks the account
 *   to unknown places until the lock passes or an administrator unlocks it. Known browsers still
 *   sign in.
 *
 * A known browser proves nothing by itself: the password, and the authenticator code for staff, are
 * asked for as always.
 */
import type { Request } from 'express';
import { clientAddress } from '../audit/client-address.ts';
import type { Clock } from '../runtime/clock.ts';
import { readCookie } from './cookies.ts';
import { DEVICE_COOKIE, deviceTokens } from './devices.ts';
import type { DeviceStore } from './devices.ts';
import type { FailureLock, RateLimit } from './rate-limit.ts';
import type { UserStore } from './users.ts';

export interface LoginPlace {
  /** `device:<token>` or `ip:<address>`: what the limits count by (hashed before it is stored). */
  key: string;
  knownDevice: boolean;
  /** The device tokens the browser sent, kept when the cookie is renewed. */
  tokens: string[];
}

export interface LoginGuardOptions {
  attempts: RateLimit;
  failures: FailureLock;
  devices: DeviceStore;
  users: UserStore;
  clock: Clock;
}

export class LoginGuard {
  private readonly options: LoginGuardOptions;

  constructor(options: LoginGuardOptions) {
    this.options = options;
  }

  async placeOf(req: Request, email: string): Promise<LoginPlace> {
    const tokens = deviceTokens(readCookie(req, DEVICE_COOKIE));
    const user = tokens.length > 0 && email !== '' ? await this.options.users.findByEmail(email) : undefined;
    const known =
      user === undefined ? undefined : await this.options.devices.knownToken(user.id, tokens, this.options.clock.now());
    return known === undefined
      ? { key: `ip:${clientAddress(req) ?? ''}`, knownDevice: false, tokens }
      : { key: `device:${known}`, knownDevice: true, tokens };
  }

  /** Seconds before this place may try again for this account; 0: it may try now. */
  async waitFor(place: LoginPlace, email: string): Promise<{ seconds: number; why: 'attempts' | 'failures' }> {
    const attempts = await this.options.attempts.take(place.key);
    if (attempts > 0) {
      return { seconds: attempts, why: 'attempts' };
    }
    return { seconds: await this.options.failures.lockedFor(placeAndAccount(place, email)), why: 'failures' };
  }

  async failed(place: LoginPlace, email: string): Promise<void> {
    await this.options.failures.fail(placeAndAccount(place, email));
  }

  /** Clears the place's failures and remembers the browser: the value of its new `hub_device` cookie. */
  async succeeded(place: LoginPlace, email: string, userId: string): Promise<string> {
    await this.options.failures.clear(placeAndAccount(place, email));
    return this.options.devices.remember(userId, place.tokens, this.options.clock.now());
  }
}

function placeAndAccount(place: LoginPlace, email: string): string {
  return `${place.key}|account:${email.trim().toLowerCase()}`;
}
