/**
 * Encryption at rest of the secrets the hub must read back (staff TOTP secrets): AES-256-GCM with a
 * random 96-bit nonce per value (NIST SP 800-38D §8.2.2), stored as `v1:<key id>:<base64url(nonce ‖
 * ciphertext ‖ tag)>`. The key id (the first 8 bytes of the key's SHA-256, hex) says which key a
 * value needs, so a hub started with another key fails with a message naming both ids instead of
 * refusing every login. The key is AUTH_SECRETS_KEY (base64 of 32 bytes) or, when that is unset, a
 * key file generated once under DATA_DIR (mode 0600) that the hub and the `hub` CLI both read.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export const SECRET_KEY_FILE = 'auth-secrets.key';
const FORMAT = 'v1';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SEALED = /^v1:([0-9a-f]{16}):([A-Za-z0-9_-]+)$/;

export class SecretKeyError extends Error {}

export class SecretBox {
  readonly keyId: string;
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) {
      throw new SecretKeyError(`the secrets key must be ${KEY_BYTES} bytes, not ${key.length}`);
    }
    this.key = key;
    this.keyId = keyIdOf(key);
  }

  seal(plaintext: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    // The key id is authenticated too: a value cannot be relabelled as another key's.
    cipher.setAAD(Buffer.from(`${FORMAT}:${this.keyId}`));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${FORMAT}:${this.keyId}:${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')}`;
  }

  /** The plaintext of a sealed value; throws SecretKeyError when it was sealed with another key or altered. */
  open(sealed: string): string {
    const [, keyId, data] = SEALED.exec(sealed) ?? [];
    if (keyId === undefined || data === undefined) {
      throw new SecretKeyError('the stored secret is not in the encrypted format (v1:<key id>:<data>)');
    }
    if (keyId !== this.keyId) {
      throw wrongKey(keyId, this.keyId);
    }
    const bytes = Buffer.from(data, 'base64url');
    if (bytes.length < NONCE_BYTES + TAG_BYTES) {
      throw new SecretKeyError('the stored secret is truncated');
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(`${FORMAT}:${keyId}`));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new SecretKeyError(
        `a stored secret labelled with key ${keyId} fails its integrity check: it was altered, or sealed with another key`,
      );
    }
  }
}

/** True for a value `seal` produced (anything else is a secret stored before encryption). */
export function isSealed(value: string): boolean {
  return SEALED.test(value);
}

/** The key id a sealed value names, or undefined for a plaintext value. */
export function sealedKeyId(value: string): string | undefined {
  return SEALED.exec(value)?.[1];
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

export function wrongKey(stored: string, configured: string): SecretKeyError {
  return new SecretKeyError(
    `stored TOTP secrets were encrypted with key ${stored}, but the configured key is ${configured}: ` +
      `set AUTH_SECRETS_KEY (or DATA_DIR/${SECRET_KEY_FILE}) to the key they were encrypted with`,
  );
}

/** Decodes AUTH_SECRETS_KEY: base64 (or base64url) of exactly 32 bytes; undefined when it is not one. */
export function decodeSecretsKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    return undefined;
  }
  const key = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  return key.length === KEY_BYTES ? key : undefined;
}

/**
 * The secret box of AUTH_SECRETS_KEY, else of `${dataDir}/auth-secrets.key`, generated on first use
 * (created exclusively, so two processes starting at once end up with the same key).
 */
export async function loadSecretBox(options: { key: string | undefined; dataDir: string }): Promise<SecretBox> {
  if (options.key !== undefined) {
    const key = decodeSecretsKey(options.key);
    if (!key) {
      throw new SecretKeyError('AUTH_SECRETS_KEY must be the base64 of 32 random bytes (e.g. openssl rand -base64 32)');
    }
    return new SecretBox(key);
  }
  const file = path.join(options.dataDir, SECRET_KEY_FILE);
  await fs.mkdir(options.dataDir, { recursive: true });
  try {
    await fs.writeFile(file, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw err;
    }
  }
  const key = decodeSecretsKey(await readKeyFile(file));
  if (!key) {
    throw new SecretKeyError(
      `${file} must hold the base64 of 32 bytes; restore it from a backup, or remove it only if no TOTP secret was encrypted with it`,
    );
  }
  return new SecretBox(key);
}

/** Another process may have created the file an instant ago and not yet written it. */
async function readKeyFile(file: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const text = await fs.readFile(file, 'utf8');
    if (text.trim() !== '' || attempt >= 20) {
      return text;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
