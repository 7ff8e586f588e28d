/**
 * The configuration contract: every variable's default, refusal of bad values with a message that
 * names the variable, and a start-up that stops on such a value.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../src/config.ts';
import { REPO_ROOT, spawnMain } from './support/hub-process.ts';

describe('loadConfig', () => {
  test('defaults, with nothing set', () => {
    expect(loadConfig({})).toEqual({
      host: '127.0.0.1',
      port: 8080,
      baseUrl: 'http://127.0.0.1:8080',
      dataDir: path.resolve('./data'),
      databaseUrl: undefined,
      databasePoolSize: 10,
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'hub',
      logLevel: 'info',
      fhirMaxBodyBytes: 40 * 1024 * 1024,
      binaryMaxBytes: 512 * 1024 * 1024,
      outboxPollMs: 250,
      outboxRedispatchAfterMs: 30_000,
      queueStalledJobMs: 30_000,
      shutdownGraceMs: 10_000,
      dimseHost: '127.0.0.1',
      dimsePort: 11112,
      dimseAeTitle: 'HUB',
      dimseAllowedCallingAeTitles: undefined,
      dimseMaxAssociations: 64,
      dicomStageMaxBytes: 1024 * 1024,
      dicomPersonDailyBytes: 10 * 1024 * 1024 * 1024,
      roles: ['api', 'worker', 'relay'],
      smtpUrl: undefined,
      mailFrom: 'Second Opinion Hub <no-reply@localhost>',
      jurisdictionPolicyFile: undefined,
      authRequired: true,
      authSessionIdleSeconds: 1800,
      authSessionMaxSeconds: 43200,
      corsAllowedOrigins: [],
      subscriptionAllowedNetworks: [],
      trustProxy: false,
      metricsPublic: false,
      auditEnabled: true,
      auditFlushMs: 100,
      auditBatchSize: 500,
      auditJournalFsync: false,
    });
  });

  test('TRUST_PROXY: none, a count of proxies, or their addresses; anything else is refused', () => {
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8 ,fd00::/8' }).trustProxy).toEqual([
      'loopback',
      '10.0.0.0/8',
      'fd00::/8',
    ]);
    for (const bad of ['true', 'everyone', '10.0.0.0/33', 'proxy.example.org']) {
      expect(() => loadConfig({ TRUST_PROXY: bad })).toThrow(/TRUST_PROXY/);
    }
  });

  test('CORS_ALLOWED_ORIGINS: exact origins, comma-separated; a path, a trailing slash or another scheme is refused', () => {
    expect(
      loadConfig({ CORS_ALLOWED_ORIGINS: ' https://viewer.example.org, http://localhost:3000 ,' }).corsAllowedOrigins,
    ).toEqual(['https://viewer.example.org', 'http://localhost:3000']);
    for (const bad of [
      'https://viewer.example.org/',
      'https://viewer.example.org/ohif',
      'viewer.example.org',
      'ftp://viewer.example.org',
      '*',
    ]) {
      expect(() => loadConfig({ CORS_ALLOWED_ORIGINS: bad })).toThrow(
        /CORS_ALLOWED_ORIGINS: must be a comma-separated list of origins/,
      );
    }
    expect(() => loadConfig({ METRICS_PUBLIC: 'yes' })).toThrow(/METRICS_PUBLIC: must be true or false/);
  });

  test('AUTH_REQUIRED is true by default; false is refused unless HOST is a loopback address', () => {
    expect(loadConfig({}).authRequired).toBe(true);
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) {
      expect(loadConfig({ HOST: host, AUTH_REQUIRED: 'false' }).authRequired).toBe(false);
    }
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'hub.internal', '128.0.0.1']) {
      expect(() => loadConfig({ HOST: host, AUTH_REQUIRED: 'false' })).toThrow(
        /AUTH_REQUIRED: may be false only while HOST is a loopback address/,
      );
      expect(loadConfig({ HOST: host }).authRequired).toBe(true);
    }
  });

  test('a DIMSE listener beyond loopback needs an allow-list of calling AE titles', () => {
    expect(() => loadConfig({ DIMSE_HOST: '0.0.0.0' })).toThrow(
      /DIMSE_ALLOWED_CALLING_AE_TITLES: must list the peers' AE titles while DIMSE_HOST \(0\.0\.0\.0\)/,
    );
    expect(
      loadConfig({ DIMSE_HOST: '0.0.0.0', DIMSE_ALLOWED_CALLING_AE_TITLES: 'CT1' }).dimseAllowedCallingAeTitles,
    ).toEqual(['CT1']);
    expect(loadConfig({ DIMSE_HOST: '::1' }).dimseAllowedCallingAeTitles).toBeUndefined();
  });

  test('DIMSE settings: the allow-list is split on commas, blanks dropped', () => {
    expect(
      loadConfig({
        DIMSE_PORT: '0',
        DIMSE_AE_TITLE: 'SECOND_OPINION',
        DIMSE_ALLOWED_CALLING_AE_TITLES: ' CT1, PACS ,,',
      }),
    ).toMatchObject({
      dimsePort: 0,
      dimseAeTitle: 'SECOND_OPINION',
      dimseAllowedCallingAeTitles: ['CT1', 'PACS'],
    });
  });

  test('the runtime contract names of the issue are all read', () => {
    for (const name of ['HOST', 'PORT', 'BASE_URL', 'DATA_DIR', 'DATABASE_URL', 'REDIS_URL']) {
      expect(CONFIG_VARIABLES).toContain(name);
    }
  });

  test('values are read and converted', () => {
    const config = loadConfig({
      HOST: '0.0.0.0',
      PORT: '9090',
      DATA_DIR: '/var/lib/hub',
      DATABASE_URL: 'postgres://hub@db.internal:5432/hub',
      DATABASE_POOL_SIZE: '4',
      REDIS_URL: 'rediss://cache.internal:6380/2',
      QUEUE_PREFIX: 'prod',
      LOG_LEVEL: 'debug',
      FHIR_MAX_BODY_BYTES: '1000',
      BINARY_MAX_BYTES: '2000',
      OUTBOX_POLL_MS: '100',
      SHUTDOWN_GRACE_MS: '3000',
    });
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 9090,
      dataDir: '/var/lib/hub',
      databaseUrl: 'postgres://hub@db.internal:5432/hub',
      databasePoolSize: 4,
      redisUrl: 'rediss://cache.internal:6380/2',
      queuePrefix: 'prod',
      logLevel: 'debug',
      fhirMaxBodyBytes: 1000,
      binaryMaxBytes: 2000,
      outboxPollMs: 100,
      shutdownGraceMs: 3000,
    });
  });

  test('an empty value counts as unset (as `PORT=` in a compose file does)', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({ port: 8080, databaseUrl: undefined });
  });

  test('variables the hub does not read are ignored', () => {
    expect(() => loadConfig({ HOME: '/root', PGPASSWORD: 'x', NODE_ENV: 'production' })).not.toThrow();
  });

  test.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'not a url'],
    ['REDIS_URL', 'nope'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['BASE_URL', 'ftp://hub.example.org'],
    ['LOG_LEVEL', 'loud'],
    ['BINARY_MAX_BYTES', '-1'],
    ['BINARY_MAX_BYTES', '0'],
    ['FHIR_MAX_BODY_BYTES', 'lots'],
    ['DATABASE_POOL_SIZE', '0'],
    ['OUTBOX_POLL_MS', '1.5'],
    ['SHUTDOWN_GRACE_MS', 'soon'],
    ['DIMSE_PORT', '70000'],
    ['DIMSE_AE_TITLE', 'SEVENTEEN_CHARS_X'],
    ['DIMSE_AE_TITLE', 'BACK\\SLASH'],
    ['DIMSE_ALLOWED_CALLING_AE_TITLES', 'CT1,WAY_TOO_LONG_AE_TITLE'],
    ['OHIF_VIEWER_URL', 'viewer.example.org/viewer'],
  ])('%s=%s is refused with a message naming %s', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(new RegExp(`\\b${name}\\b`));
    // Only the bad variable is named.
    for (const other of CONFIG_VARIABLES.filter((n) => n !== name && !n.includes(name) && !name.includes(n))) {
      expect((error as Error).message).not.toMatch(new RegExp(`\\b${other}\\b`));
    }
  });

  test('several bad values are all named in one message', () => {
    expect(() => loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud' })).toThrow(/PORT.*LOG_LEVEL/);
  });

  describe('BASE_URL', () => {
    test('defaults to http://HOST:PORT', () => {
      expect(loadConfig({ HOST: '10.1.2.3', PORT: '9000' }).baseUrl).toBe('http://10.1.2.3:9000');
      expect(loadConfig({ HOST: 'hub.internal' }).baseUrl).toBe('http://hub.internal:8080');
    });

    test('an IPv6 HOST is bracketed in the default', () => {
      expect(loadConfig({ HOST: '::1', PORT: '8081' }).baseUrl).toBe('http://[::1]:8081');
    });

    test('an explicit value wins over HOST and PORT', () => {
      expect(loadConfig({ HOST: '0.0.0.0', PORT: '8080', BASE_URL: 'https://hub.example.org' }).baseUrl).toBe(
        'https://hub.example.org',
      );
    });

    test('trailing slashes are removed', () => {
      expect(loadConfig({ BASE_URL: 'https://hub.example.org/' }).baseUrl).toBe('https://hub.example.org');
      expect(loadConfig({ BASE_URL: 'https://example.org/second-opinion//' }).baseUrl).toBe(
        'https://example.org/second-opinion',
      );
    });
  });

  test('DATA_DIR is made absolute', () => {
    expect(loadConfig({ DATA_DIR: 'relative/dir' }).dataDir).toBe(path.resolve('relative/dir'));
  });

  test("docs/operations.md's table documents every variable", () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
    const documented = [...readme.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((m) => m[1]!);
    expect([...new Set(documented)].sort()).toEqual(expect.arrayContaining([...CONFIG_VARIABLES].sort()));
    for (const name of documented.filter((n) => !n.startsWith('TEST_') && !n.startsWith('HUB_TEST'))) {
      expect(CONFIG_VARIABLES).toContain(name);
    }
  });
});

describe('start-up with a bad value', () => {
  test('node src/main.ts with PORT=abc exits non-zero and names PORT on stderr', async () => {
    const child = spawnMain({ PORT: 'abc' });
    let stderr = '';
    let stdout = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(stderr).toMatch(/\bPORT\b/);
    expect(stdout).toBe('');
  });
});
