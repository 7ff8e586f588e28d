/**
 * The token and login rate limits shared by hub processes through Redis: two hubs on one database,
 * one Redis and one QUEUE_PREFIX draw on one budget per address, and count an account's failures
 * from one address together; Redis keys name
 * no address or e-mail; a hub whose Redis does not answer still serves logins, limiting per process.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ClientRegistry } from '../src/auth/clients.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { LOGIN_FAILURES_PER_PLACE, TOKEN_PER_IP } from '../src/auth/rate-limit.ts';
import { Browser, authorizeUrl, hiddenFields, pkcePair } from './support/login-flow.ts';
import { TEST_REDIS_URL, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const APP = 'limits-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';

/** A token request refused at once (no client assertion): what counts is whether it is rate-limited. */
async function tokenRequest(hub: TestHub): Promise<number> {
  const response = await fetch(`${hub.baseUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  await response.arrayBuffer();
  return response.status;
}

/** The login form of `hub` in a browser of its own, posted with a wrong password for `email`. */
async function loginAttempt(hub: TestHub, email: string): Promise<number> {
  const browser = new Browser();
  const page = await browser.get(
    authorizeUrl(hub.baseUrl, {
      clientId: APP,
      redirectUri: REDIRECT,
      scope: 'user/*.rs',
      challenge: pkcePair().challenge,
    }),
  );
  const fields = hiddenFields(await page.text());
  const response = await browser.post(`${hub.baseUrl}/oauth2/authorize`, {
    ...fields,
    email,
    password: 'not the password',
  });
  await response.arrayBuffer();
  return response.status;
}

describe('rate limits shared through Redis', () => {
  const prefix = `test-limits-${randomBytes(4).toString('hex')}`;
  let first: TestHub;
  let second: TestHub;
  let redis: Redis;

  beforeAll(async () => {
    const shared = {
      AUTH_REQUIRED: 'true',
      QUEUE_PREFIX: prefix,
      AUTH_SECRETS_KEY: randomBytes(32).toString('base64'),
    };
    first = await startTestHub({ db: 'postgres', env: shared });
    second = await startTestHub({ db: 'postgres', env: { ...shared, DATABASE_URL: first.databaseUrl as string } });
    await new ClientRegistry(first.hub.db).addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('user/*.rs'),
    });
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    const keys = await redis?.keys(`${prefix}:rate-limit:*`);
    if (keys?.length) {
      await redis.del(...keys);
    }
    redis?.disconnect();
    await second?.stop();
    await first?.stop();
  });

  test('token requests from one address: one budget across both hubs, then 429 from either', async () => {
    let sent = 0;
    let limitedAt: number | undefined;
    while (limitedAt === undefined && sent < 2 * TOKEN_PER_IP.capacity) {
      const status = await tokenRequest(sent % 2 === 0 ? first : second);
      sent++;
      if (status === 429) {
        limitedAt = sent;
      } else {
        expect(status).toBe(401);
      }
    }
    // Per process, each hub would allow its own 60 (120 in all); shared, the 61st or so is refused
    // (the bucket regains one token a second while the requests are sent).
    expect(limitedAt).toBeGreaterThan(TOKEN_PER_IP.capacity);
    expect(limitedAt).toBeLessThan(TOKEN_PER_IP.capacity + 15);
    expect(await tokenRequest(first)).toBe(429);
    expect(await tokenRequest(second)).toBe(429);
  });

  test('failed logins for one account from one address: five in all across both hubs lock it there, then 429 from either', async () => {
    const email = 'Target.Person@example.org';
    const statuses: number[] = [];
    for (let attempt = 0; attempt < LOGIN_FAILURES_PER_PLACE.failures; attempt++) {
      statuses.push(await loginAttempt(attempt % 2 === 0 ? first : second, email));
    }
    expect(statuses).toEqual(Array(LOGIN_FAILURES_PER_PLACE.failures).fill(401));
    // The count is one across the hubs, however the e-mail is cased.
    expect(await loginAttempt(second, email.toLowerCase())).toBe(429);
    expect(await loginAttempt(first, email)).toBe(429);
    // Another account from the same address is not held back.
    expect(await loginAttempt(first, 'someone.else@example.org')).toBe(401);
  });

  test('the Redis keys are under QUEUE_PREFIX and hold hashes, not addresses or e-mails', async () => {
    const keys = await redis.keys(`${prefix}:rate-limit:*`);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const key of keys) {
      expect(key).toMatch(new RegExp(`^${prefix}:rate-limit:(token-ip|login-place|login-failures):[0-9a-f]{64}$`));
      expect(key.toLowerCase()).not.toMatch(/example\.org|127\.0\.0\.1|::1|target/);
      expect(await redis.pttl(key)).toBeGreaterThan(0);
    }
    expect(new Set(keys.map((key) => key.split(':')[key.split(':').length - 2]))).toEqual(
      new Set(['token-ip', 'login-place', 'login-failures']),
    );
  });
});

describe('rate limits without Redis', () => {
  let hub: TestHub;
  beforeAll(async () => {
    // Nothing listens on port 1: every Redis command fails at once.
    hub = await startTestHub({ env: { AUTH_REQUIRED: 'true', REDIS_URL: 'redis://127.0.0.1:1' } });
    await new ClientRegistry(hub.hub.db).addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('user/*.rs'),
    });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  test('logins and token requests are still answered, and limited per process', async () => {
    expect(await loginAttempt(hub, 'no-redis@example.org')).toBe(401);
    // At once, so that the bucket regains next to nothing meanwhile.
    const statuses = await Promise.all(Array.from({ length: TOKEN_PER_IP.capacity + 10 }, () => tokenRequest(hub)));
    expect(statuses.filter((status) => status === 401).length).toBeGreaterThanOrEqual(TOKEN_PER_IP.capacity);
    expect(statuses).toContain(429);
    expect(statuses.every((status) => status === 401 || status === 429)).toBe(true);
  });
});
