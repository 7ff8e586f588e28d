import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SECRET_KEY_FILE, SecretBox, SecretKeyError, decodeSecretsKey, isSealed, loadSecretBox } from './secret-box.ts';

describe('SecretBox', () => {
  test('seals with a fresh nonce each time and opens what it sealed', () => {
    const box = new SecretBox(randomBytes(32));
    const first = box.seal('JBSWY3DPEHPK3PXP');
    const second = box.seal('JBSWY3DPEHPK3PXP');
    expect(first).not.toBe(second);
    expect(first).toMatch(new RegExp(`^v1:${box.keyId}:[A-Za-z0-9_-]+$`));
    expect(first).not.toContain('JBSWY3DPEHPK3PXP');
    expect(isSealed(first)).toBe(true);
    expect(isSealed('JBSWY3DPEHPK3PXP')).toBe(false);
    expect(box.open(first)).toBe('JBSWY3DPEHPK3PXP');
    expect(box.open(second)).toBe('JBSWY3DPEHPK3PXP');
  });

  test('another key, an altered value or a relabelled key id is refused with a SecretKeyError', () => {
    const box = new SecretBox(randomBytes(32));
    const other = new SecretBox(randomBytes(32));
    const sealed = box.seal('JBSWY3DPEHPK3PXP');
    expect(() => other.open(sealed)).toThrow(
      new RegExp(`encrypted with key ${box.keyId}, but the configured key is ${other.keyId}`),
    );
    const [, , payload] = sealed.split(':');
    expect(payload).toBeDefined();
    const data = Buffer.from(payload!, 'base64url');
    data[data.length - 20]! ^= 1;
    expect(() => box.open(`v1:${box.keyId}:${data.toString('base64url')}`)).toThrow(SecretKeyError);
    expect(() => box.open(sealed.replace(box.keyId, other.keyId))).toThrow(SecretKeyError);
  });

  test('AUTH_SECRETS_KEY is the base64 of exactly 32 bytes', async () => {
    const key = randomBytes(32);
    expect(decodeSecretsKey(key.toString('base64'))).toEqual(key);
    expect(decodeSecretsKey(key.toString('base64url'))).toEqual(key);
    expect(decodeSecretsKey(randomBytes(16).toString('base64'))).toBeUndefined();
    expect(decodeSecretsKey('not base64!')).toBeUndefined();
    await expect(loadSecretBox({ key: 'short', dataDir: os.tmpdir() })).rejects.toThrow(
      /AUTH_SECRETS_KEY must be the base64 of 32 random bytes/,
    );
    expect((await loadSecretBox({ key: key.toString('base64'), dataDir: os.tmpdir() })).keyId).toBe(
      new SecretBox(key).keyId,
    );
  });

  test('without AUTH_SECRETS_KEY: a key file generated once under DATA_DIR, mode 0600, the same for every process', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-secret-box-'));
    try {
      const boxes = await Promise.all(Array.from({ length: 4 }, () => loadSecretBox({ key: undefined, dataDir })));
      expect(new Set(boxes.map((box) => box.keyId)).size).toBe(1);
      const stat = await fs.stat(path.join(dataDir, SECRET_KEY_FILE));
      expect(stat.mode & 0o777).toBe(0o600);
      const later = await loadSecretBox({ key: undefined, dataDir });
      expect(later.open(boxes[0]!.seal('secret'))).toBe('secret');
      await fs.writeFile(path.join(dataDir, SECRET_KEY_FILE), 'garbage\n');
      await expect(loadSecretBox({ key: undefined, dataDir })).rejects.toThrow(/must hold the base64 of 32 bytes/);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
