/**
 * `npx hub user …` and `hub client add --public` as an operator runs them: real processes on the hub's
 * PostgreSQL database while the hub runs, and on the embedded database while it is stopped. What the
 * CLI prints (the generated password, the TOTP enrolment URI) is used to log in over HTTP.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { totpCode } from '../src/auth/totp.ts';
import { Browser, logIn, pageError, pkcePair, submitLogin } from './support/login-flow.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { runHubCli as hub } from './support/hub-cli.ts';
import { until } from './support/until.ts';

const REDIRECT = 'http://127.0.0.1:8080/callback';

function printed(stdout: string): { password?: string; secret?: string; otpauth?: URL } {
  const password = /^Password \(shown once; hand it over securely\): (\S+)$/m.exec(stdout)?.[1];
  const uri = /^\s+(otpauth:\/\/\S+)$/m.exec(stdout)?.[1];
  const otpauth = uri === undefined ? undefined : new URL(uri);
  return { password, secret: otpauth?.searchParams.get('secret') ?? undefined, otpauth };
}

describe('hub user … and hub client add --public, on PostgreSQL while the hub runs', () => {
  let testHub: TestHub;
  let env: Record<string, string>;
  let workDir: string;
  const request = { clientId: 'dashboard', redirectUri: REDIRECT, scope: 'openid fhirUser user/*.rs' };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    // The hub's DATA_DIR holds the key its TOTP secrets are encrypted with (AUTH_SECRETS_KEY unset).
    env = { DATABASE_URL: testHub.databaseUrl as string, BASE_URL: testHub.baseUrl, DATA_DIR: testHub.config.dataDir };
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-user-cli-'));
  });
  afterAll(async () => {
    await testHub?.stop();
    await fs.rm(workDir, { recursive: true, force: true });
  });

  test('client add --public registers the dashboard; bad redirect URIs and scopes are refused', async () => {
    const added = await hub(
      [
        'client',
        'add',
        '--id',
        'dashboard',
        '--public',
        '--redirect-uri',
        REDIRECT,
        '--redirect-uri',
        'https://hub.example.org/app/callback',
        '--scope',
        'openid fhirUser launch/patient user/*.rs',
      ],
      env,
      // As an operator types it, once: the other calls run the same bin/hub.js without npx.
      { viaNpx: true },
    );
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toContain('Registered public client dashboard (active)');
    expect(added.stdout).toContain(`redirect URIs: ${REDIRECT} https://hub.example.org/app/callback`);
    expect(added.stdout).toContain(`Authorization endpoint: ${testHub.baseUrl}/oauth2/authorize (PKCE S256)`);
    const list = await hub(['client', 'list', '--json'], env);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({
        id: 'dashboard',
        public: true,
        redirectUris: [REDIRECT, 'https://hub.example.org/app/callback'],
        scope: 'openid fhirUser launch/patient user/*.rs',
      }),
      // The web app's own client, registered by the hub at start-up.
      expect.objectContaining({
        id: 'hub-dashboard',
        public: true,
        redirectUris: [`${testHub.baseUrl}/dashboard/callback`],
      }),
    ]);

    const cases: [string[], number, RegExp][] = [
      [
        ['--id', 'a1', '--public', '--redirect-uri', 'http://app.example.org/cb', '--scope', 'user/*.rs'],
        1,
        /must be https/,
      ],
      [
        ['--id', 'a2', '--public', '--redirect-uri', 'https://app.example.org/cb#x', '--scope', 'user/*.rs'],
        1,
        /fragment/,
      ],
      [['--id', 'a3', '--public', '--scope', 'user/*.rs'], 2, /--redirect-uri/],
      [
        ['--id', 'a4', '--public', '--redirect-uri', REDIRECT, '--scope', 'patient/*.rs offline_access'],
        2,
        /not patient\/\*\.rs, offline_access/,
      ],
      [
        ['--id', 'a5', '--public', '--redirect-uri', REDIRECT, '--scope', 'user/Nonsense.rs'],
        2,
        /not a FHIR R4 resource type/,
      ],
      [
        ['--id', 'a6', '--redirect-uri', REDIRECT, '--scope', 'system/*.rs', '--jwks-url', 'https://example.org/jwks'],
        2,
        /--public/,
      ],
      [['--id', 'dashboard', '--public', '--redirect-uri', REDIRECT, '--scope', 'user/*.rs'], 1, /already registered/],
    ];
    for (const [args, code, message] of cases) {
      const result = await hub(['client', 'add', ...args], env);
      expect({ args, code: result.code }).toEqual({ args, code });
      expect(result.stderr).toMatch(message);
    }
  });

  test('user add prints a password and, for staff, the TOTP URI, which log in; list shows the accounts', async () => {
    const added = await hub(
      ['user', 'add', '--email', 'Dr.Grey@Example.org', '--role', 'specialist', '--practitioner', 'prac-9'],
      env,
    );
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toMatch(/^Added user Dr\.Grey@Example\.org \(specialist, active\), id [0-9a-f-]{36}$/m);
    expect(added.stdout).toContain('FHIR user: Practitioner/prac-9');
    const { password, secret, otpauth } = printed(added.stdout);
    expect(password).toMatch(/^[\w-]{20}$/);
    expect(otpauth?.protocol).toBe('otpauth:');
    expect(otpauth?.searchParams.get('issuer')).toBe('Second Opinion Hub');
    const { token } = await logIn(new Browser(), testHub.baseUrl, request, {
      email: 'dr.grey@example.org',
      password: password as string,
      totp: totpCode(secret as string, Date.now()),
    });
    expect(token.scope).toBe('openid fhirUser user/*.rs');
    expect(
      (await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: `Bearer ${token.access_token}` } }))
        .status,
    ).toBe(200);

    const passwordFile = path.join(workDir, 'patient-password');
    await fs.writeFile(passwordFile, 'the patient chose this one\n');
    const patient = await hub(
      [
        'user',
        'add',
        '--email',
        'patient@example.org',
        '--role',
        'patient',
        '--patient',
        'pat-7',
        '--password-file',
        passwordFile,
      ],
      env,
    );
    expect(patient).toMatchObject({ code: 0, stderr: '' });
    expect(patient.stdout).toContain('Password: from the file');
    expect(patient.stdout).not.toContain('otpauth://');
    expect(patient.stdout).not.toContain('the patient chose this one');
    const { token: patientToken } = await logIn(
      new Browser(),
      testHub.baseUrl,
      { ...request, scope: 'launch/patient user/*.rs' },
      { email: 'patient@example.org', password: 'the patient chose this one' },
    );
    expect(patientToken.patient).toBe('pat-7');

    const list = await hub(['user', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^Dr\.Grey@Example\.org\s+specialist\s+active\s+Practitioner\/prac-9\s+yes\s/m);
    expect(list.stdout).toMatch(/^patient@example\.org\s+patient\s+active\s+Patient\/pat-7\s+n\/a\s/m);
    expect(list.stdout).not.toMatch(/scrypt|password/i);
    const json = JSON.parse((await hub(['user', 'list', '--json'], env)).stdout);
    expect(json).toEqual([
      expect.objectContaining({
        email: 'Dr.Grey@Example.org',
        role: 'specialist',
        fhirUser: 'Practitioner/prac-9',
        status: 'active',
        totp: true,
        locked: false,
      }),
      expect.objectContaining({
        email: 'patient@example.org',
        role: 'patient',
        fhirUser: 'Patient/pat-7',
        totp: false,
      }),
    ]);
    expect(JSON.stringify(json)).not.toMatch(/scrypt|secret/i);
  });

  test('user add refuses bad input', async () => {
    const shortFile = path.join(workDir, 'short');
    await fs.writeFile(shortFile, 'short\n');
    const cases: [string[], number, RegExp][] = [
      [['--email', 'x@example.org', '--role', 'surgeon'], 2, /--role must be one of coordinator, specialist/],
      [['--email', 'not-an-email', '--role', 'admin'], 1, /not an e-mail address/],
      [['--email', 'DR.GREY@example.org', '--role', 'admin'], 1, /exists already/],
      [['--email', 'y@example.org', '--role', 'coordinator', '--patient', 'p1'], 2, /--practitioner ID, not --patient/],
      [
        ['--email', 'y@example.org', '--role', 'patient', '--practitioner', 'p1'],
        2,
        /--patient ID, not --practitioner/,
      ],
      [['--email', 'y@example.org', '--role', 'admin', '--password-file', shortFile], 1, /at least 12 characters/],
      [
        ['--email', 'y@example.org', '--role', 'admin', '--password-file', path.join(workDir, 'missing')],
        1,
        /cannot read/,
      ],
      [['--role', 'admin'], 2, /--email is required/],
    ];
    for (const [args, code, message] of cases) {
      const result = await hub(['user', 'add', ...args], env);
      expect({ args, code: result.code }).toEqual({ args, code });
      expect(result.stderr).toMatch(message);
    }
    expect(await hub(['user', 'disable', '--email', 'nobody@example.org'], env)).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no user with the e-mail/),
    });
    expect((await hub(['user', 'frobnicate'], env)).code).toBe(2);
  });

  test('disable signs the user out and refuses logins; enable lets them in again; reset-totp replaces the secret', async () => {
    const added = await hub(['user', 'add', '--email', 'coord@example.org', '--role', 'coordinator'], env);
    const { password, secret } = printed(added.stdout);
    const credentials = { email: 'coord@example.org', password: password as string };
    const { token } = await logIn(new Browser(), testHub.baseUrl, request, {
      ...credentials,
      totp: totpCode(secret as string, Date.now()),
    });

    const disabled = await hub(['user', 'disable', '--email', 'COORD@example.org'], env);
    expect(disabled).toMatchObject({ code: 0 });
    expect(disabled.stdout).toContain('Disabled user coord@example.org');
    // The hub learns of the revocation from the database within a few seconds.
    await until(
      async () =>
        (await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: `Bearer ${token.access_token}` } }))
          .status === 401,
      "the disabled user's token to be refused",
      20_000,
      250,
    );
    const refused = await submitLogin(
      new Browser(),
      testHub.baseUrl,
      { ...request, challenge: pkcePair().challenge },
      { ...credentials, totp: totpCode(secret as string, Date.now() + 30_000) },
    );
    expect(refused.status).toBe(401);
    expect(pageError(refused.html)).toMatch(/not correct/);

    expect(await hub(['user', 'enable', '--email', 'coord@example.org'], env)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('Enabled user coord@example.org'),
    });
    await hub(['user', 'unlock', '--email', 'coord@example.org'], env);
    const reset = await hub(['user', 'reset-totp', '--email', 'coord@example.org'], env);
    expect(reset).toMatchObject({ code: 0 });
    const { secret: newSecret } = printed(reset.stdout);
    expect(newSecret).toBeDefined();
    expect(newSecret).not.toBe(secret);
    const oldCode = await submitLogin(
      new Browser(),
      testHub.baseUrl,
      { ...request, challenge: pkcePair().challenge },
      { ...credentials, totp: totpCode(secret as string, Date.now()) },
    );
    expect(oldCode.status).toBe(401);
    await logIn(new Browser(), testHub.baseUrl, request, {
      ...credentials,
      totp: totpCode(newSecret as string, Date.now()),
    });
    // A patient has no TOTP to reset.
    expect(await hub(['user', 'reset-totp', '--email', 'patient@example.org'], env)).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no TOTP/),
    });
  });
});

describe('hub user … on the embedded database while the hub is stopped', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-user-cli-embedded-'));
  });
  afterAll(async () => {
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('add and list create the tables on a fresh DATA_DIR', async () => {
    const env = { DATA_DIR: dataDir };
    const added = await hub(['user', 'add', '--email', 'admin@example.org', '--role', 'admin'], env);
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toContain('otpauth://totp/');
    const client = await hub(
      ['client', 'add', '--id', 'dashboard', '--public', '--redirect-uri', REDIRECT, '--scope', 'openid user/*.rs'],
      env,
    );
    expect(client).toMatchObject({ code: 0, stderr: '' });
    const list = JSON.parse((await hub(['user', 'list', '--json'], env)).stdout);
    expect(list).toEqual([expect.objectContaining({ email: 'admin@example.org', role: 'admin', totp: true })]);

    // The hub started on that DATA_DIR lets the admin log in with what the CLI printed.
    const { password, secret } = printed(added.stdout);
    const embeddedHub = await startTestHub({ db: 'pglite', env: { DATA_DIR: dataDir } });
    try {
      const { token } = await logIn(
        new Browser(),
        embeddedHub.baseUrl,
        { clientId: 'dashboard', redirectUri: REDIRECT, scope: 'user/*.rs' },
        {
          email: 'admin@example.org',
          password: password as string,
          totp: totpCode(secret as string, Date.now()),
        },
      );
      expect(token.scope).toBe('user/*.rs');
      // …and the CLI refuses the embedded database while the hub holds it.
      expect((await hub(['user', 'list'], env)).code).toBe(1);
    } finally {
      await embeddedHub.stop();
    }
  });
});
