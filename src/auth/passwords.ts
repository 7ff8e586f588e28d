/**
 * Password hashing with scrypt (RFC 7914, memory-hard) from node:crypto. A stored hash names its own
 * parameters — `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64url, 16-byte salt, 32-byte hash) — so
 * the parameters can be raised later: `needsRehash` tells the login to re-hash with the current ones.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';

export interface ScryptParameters {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/** N = 32768, r = 8: 32 MiB and roughly 50-100 ms per hash on a server core. */
export const CURRENT_PARAMETERS: ScryptParameters = { ln: 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const HASH_BYTES = 32;
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 1024;
const FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{32,})$/;

export class PasswordPolicyError extends Error {}

function derive(password: string, salt: Buffer, parameters: ScryptParameters, length: number): Promise<Buffer> {
  const N = 2 ** parameters.ln;
  // scrypt needs 128·N·r bytes; node's default ceiling (32 MiB) is exactly N = 2^15, r = 8.
  const options: ScryptOptions = { N, r: parameters.r, p: parameters.p, maxmem: 256 * N * parameters.r };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, length, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Refuses passwords too short or too long to be sensible (NIST SP 800-63B §5.1.1: length, not composition). */
export function checkPasswordPolicy(password: string): void {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new PasswordPolicyError(`a password has at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new PasswordPolicyError(`a password has at most ${MAX_PASSWORD_LENGTH} characters`);
  }
}

export async function hashPassword(
  password: string,
  parameters: ScryptParameters = CURRENT_PARAMETERS,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, parameters, HASH_BYTES);
  return `$scrypt$ln=${parameters.ln},r=${parameters.r},p=${parameters.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

function parseHash(stored: string): { parameters: ScryptParameters; salt: Buffer; hash: Buffer } | undefined {
  const [, ln, r, p, salt, hash] = FORMAT.exec(stored) ?? [];
  // Every group of FORMAT is required: a match has all five, anything else none.
  if (salt === undefined || hash === undefined) {
    return undefined;
  }
  const parameters = { ln: Number(ln), r: Number(r), p: Number(p) };
  if (parameters.ln < 10 || parameters.ln > 22 || parameters.r < 1 || parameters.p < 1) {
    return undefined;
  }
  return { parameters, salt: Buffer.from(salt, 'base64url'), hash: Buffer.from(hash, 'base64url') };
}

/** True when `password` matches `stored`; the comparison takes the same time wherever they differ. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed || password.length > MAX_PASSWORD_LENGTH) {
    return false;
  }
  const candidate = await derive(password, parsed.salt, parsed.parameters, parsed.hash.length);
  return timingSafeEqual(candidate, parsed.hash);
}

/** True when `stored` was made with weaker parameters than the current ones. */
export function needsRehash(stored: string, current: ScryptParameters = CURRENT_PARAMETERS): boolean {
  const parsed = parseHash(stored);
  if (!parsed) {
    return true;
  }
  const { ln, r, p } = parsed.parameters;
  return ln < current.ln || r < current.r || p < current.p || parsed.hash.length < HASH_BYTES;
}

/** A random password for an account's first login: 20 characters of base64url, about 120 bits. */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url');
}

/**
 * A hash of a random password, computed once: checking a login for an unknown e-mail against it costs
 * as long as checking a real account, so the response time does not tell which e-mails exist.
 */
let decoyHash: Promise<string> | undefined;
export function decoyPasswordHash(): Promise<string> {
  decoyHash ??= hashPassword(generatePassword());
  return decoyHash;
}
