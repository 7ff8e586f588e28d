/**
 * TOTP secrets encrypted at rest, against real hubs on one PostgreSQL database: the column holds
 * `v1:<key id>:…` and never the secret, staff still log in with their codes, secrets stored in
 * plaintext before keep working and are encrypted (at start-up, or when first read), the `hub` CLI
 * encrypts with the same key, and a hub or CLI with another key stops with a message naming both keys.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ClientRegistry } from '../src/auth/clients.ts';
import { SecretBox } from '../src/auth/secret-box.ts';
import { totpCode } from '../src/auth/totp.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import { spawnMain } from './support/hub-process.ts';
import { Browser, logIn } from './support/login-flow.ts';
import { TEST_REDIS_URL, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { runHubCli as cli } from './support/hub-cli.ts';
import { defined } from './support/defined.ts';

const APP = 'totp-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const PASSWORD = 'a long enough password';

describe('TOTP secrets at rest', () => {
  const key = randomBytes(32);
  const otherKey = randomBytes(32);
  let testHub: TestHub;
  let sql: pg.Client;
  /** The next TOTP step per secret: each code is accepted once. */
  const nextStep = new Map<string, number>();
  const code = (secret: string): string => {
    const step = Math.max(Math.floor(Date.now() / 30_000), nextStep.get(secret) ?? 0);
    nextStep.set(secret, step + 1);
    return totpCode(secret, step * 30_000);
  };
  const stored = async (email: string): Promise<string> =>
    defined(
      (await sql.query<{ totp_secret: string }>('SELECT totp_secret FROM auth_user WHERE email = $1', [email])).rows[0],
      `the auth_user row of ${email}`,
    ).totp_secret;
  const logsIn = async (hub: TestHub, email: string, secret: string): Promise<boolean> => {
    const { token } = await logIn(
      new Browser(),
      hub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'user/*.rs' },
      { email, password: PASSWORD, totp: code(secret) },
    );
    return typeof token.access_token === 'string';
  };

  beforeAll(async () => {
    testHub = await startTestHub({
      db: 'postgres',
      env: { AUTH_REQUIRED: 'true', AUTH_SECRETS_KEY: key.toString('base64') },
    });
    sql = new pg.Client({ connectionString: testHub.databaseUrl });
    await sql.connect();
    await new ClientRegistry(testHub.hub.db).addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('openid user/*.rs'),
    });
  });
  afterAll(async () => {
    await sql?.end();
    await testHub?.stop();
  });

  test('the column holds the encrypted secret, never the secret; the staff member logs in with their codes', async () => {
    const { totpSecret } = await new UserStore(testHub.hub.db, new SecretBox(key)).add({
      email: 'radiologist@example.org',
      role: 'radiologist',
      password: PASSWORD,
    });
    const secret = totpSecret as string;
    const column = await stored('radiologist@example.org');
    expect(column).toMatch(new RegExp(`^v1:${new SecretBox(key).keyId}:`));
    expect(column).not.toContain(secret);
    expect(
      Buffer.from(defined(column.split(':')[2], 'the sealed payload'), 'base64url').toString('latin1'),
    ).not.toContain(secret);
    expect(await logsIn(testHub, 'radiologist@example.org', secret)).toBe(true);
  });

  test('a secret stored in plaintext keeps working and is encrypted when first read', async () => {
    // A store without the key writes as the hub did before encryption.
    const { totpSecret } = await new UserStore(testHub.hub.db).add({
      email: 'legacy@example.org',
      role: 'specialist',
      password: PASSWORD,
    });
    expect(await stored('legacy@example.org')).toBe(totpSecret);
    expect(await logsIn(testHub, 'legacy@example.org', totpSecret as string)).toBe(true);
    const column = await stored('legacy@example.org');
    expect(column).toMatch(/^v1:/);
    expect(column).not.toContain(totpSecret as string);
    expect(await logsIn(testHub, 'legacy@example.org', totpSecret as string)).toBe(true);
  });

  test('a hub starting on plaintext secrets encrypts them before serving', async () => {
    const { totpSecret } = await new UserStore(testHub.hub.db).add({
      email: 'older@example.org',
      role: 'pathologist',
      password: PASSWORD,
    });
    expect(await stored('older@example.org')).toBe(totpSecret);
    const second = await startTestHub({
      db: 'postgres',
      env: {
        AUTH_REQUIRED: 'true',
        AUTH_SECRETS_KEY: key.toString('base64'),
        DATABASE_URL: testHub.databaseUrl as string,
      },
    });
    try {
      expect(await stored('older@example.org')).toMatch(/^v1:/);
      expect(await logsIn(second, 'older@example.org', totpSecret as string)).toBe(true);
    } finally {
      await second.stop();
    }
  });

  test('the CLI encrypts with the same key; the hub accepts its user', async () => {
    const env = { DATABASE_URL: testHub.databaseUrl as string, AUTH_SECRETS_KEY: key.toString('base64') };
    const added = await cli(['user', 'add', '--email', 'coordinator@example.org', '--role', 'coordinator'], env);
    expect(added.code).toBe(0);
    const secret = new URL(/^\s+(otpauth:\/\/\S+)$/m.exec(added.stdout)?.[1] as string).searchParams.get(
      'secret',
    ) as string;
    const password = /^Password \(shown once; hand it over securely\): (\S+)$/m.exec(added.stdout)?.[1] as string;
    expect(await stored('coordinator@example.org')).toMatch(/^v1:/);
    expect(await stored('coordinator@example.org')).not.toContain(secret);
    const { token } = await logIn(
      new Browser(),
      testHub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'user/*.rs' },
      { email: 'coordinator@example.org', password, totp: code(secret) },
    );
    expect(token.access_token).toEqual(expect.any(String));
  });

  test('another key fails clearly: the hub does not start, the CLI refuses, the store names both keys', async () => {
    const configured = new SecretBox(key).keyId;
    const wrong = new SecretBox(otherKey).keyId;
    const message = new RegExp(`encrypted with key ${configured}, but the configured key is ${wrong}`);
    await new UserStore(testHub.hub.db, new SecretBox(key)).add({
      email: 'keyed@example.org',
      role: 'admin',
      password: PASSWORD,
    });
    await expect(
      new UserStore(testHub.hub.db, new SecretBox(otherKey)).findByEmail('keyed@example.org'),
    ).rejects.toThrow(message);

    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-wrong-key-'));
    const child = spawnMain({
      DATABASE_URL: testHub.databaseUrl as string,
      AUTH_SECRETS_KEY: otherKey.toString('base64'),
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: `test-${randomBytes(4).toString('hex')}`,
      PORT: '0',
      DIMSE_PORT: '0',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
    });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (status) => resolve(status)));
    await fs.rm(dataDir, { recursive: true, force: true });
    expect(exitCode).not.toBe(0);
    expect(output).toMatch(message);
    expect(output).not.toMatch(/hub listening/);

    const refused = await cli(['user', 'add', '--email', 'nobody@example.org', '--role', 'admin'], {
      DATABASE_URL: testHub.databaseUrl as string,
      AUTH_SECRETS_KEY: otherKey.toString('base64'),
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(message);
    expect(
      Number((await sql.query("SELECT count(*) AS n FROM auth_user WHERE email = 'nobody@example.org'")).rows[0].n),
    ).toBe(0);
  });
});
