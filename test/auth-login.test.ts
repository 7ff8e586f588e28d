/**
 * People's login against a real hub on PostgreSQL with AUTH_REQUIRED=true: the authorization-code
 * flow with PKCE driven over HTTP (login page, form with CSRF token and TOTP code, redirect, code
 * exchange), the token's use on /fhir, every refusal, lock-out and unlock by the CLI, logout and
 * session expiry.
 */
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { ClientRegistry } from '../src/auth/clients.ts';
import { LOGIN_REFUSED } from '../src/auth/login.ts';
import { totpCode } from '../src/auth/totp.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import type { UserRole } from '../src/auth/users.ts';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import {
  Browser,
  authorizeUrl,
  exchangeCode,
  hiddenFields,
  logIn,
  pageError,
  pkcePair,
  submitLogin,
} from './support/login-flow.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { runHubCli as hub } from './support/hub-cli.ts';
import { defined } from './support/defined.ts';
import { until } from './support/until.ts';

const APP = 'dashboard';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const OTHER_APP = 'other-app';
const OTHER_REDIRECT = 'https://app.example.org/smart/callback';
const PASSWORD = 'a long enough password';

interface Account {
  email: string;
  password: string;
  totpSecret?: string;
  id: string;
}

/** Now's TOTP code, or the next step's once now's was used (each code is good once). */
const usedSteps = new Map<string, number>();
function freshTotp(account: Account): string {
  const secret = account.totpSecret as string;
  const offset = usedSteps.get(secret) === Math.floor(Date.now() / 30_000) ? 30_000 : 0;
  usedSteps.set(secret, Math.floor((Date.now() + offset) / 30_000));
  return totpCode(secret, Date.now() + offset);
}

async function addAccount(db: Database, email: string, role: UserRole, fhirUser?: string): Promise<Account> {
  const { user, totpSecret } = await new UserStore(db).add({ email, role, fhirUser, password: PASSWORD });
  return { email, password: PASSWORD, totpSecret, id: user.id };
}

const bearer = (token: string): { headers: Record<string, string> } => ({
  headers: { authorization: `Bearer ${token}` },
});

async function registerApps(db: Database): Promise<void> {
  const clients = new ClientRegistry(db);
  await clients.addPublic({
    id: APP,
    redirectUris: [REDIRECT],
    userScopes: parseUserScopes('openid fhirUser launch/patient user/*.rs user/ServiceRequest.cru'),
  });
  await clients.addPublic({
    id: OTHER_APP,
    redirectUris: [OTHER_REDIRECT],
    userScopes: parseUserScopes('openid user/Patient.rs'),
  });
}

describe('login with the authorization code flow and PKCE', () => {
  let testHub: TestHub;
  let db: Database;
  let coordinator: Account;
  let specialist: Account;
  let patient: Account;
  let referrer: Account;
  const request = { clientId: APP, redirectUri: REDIRECT, scope: 'openid fhirUser user/*.rs' };

  beforeAll(async () => {
    // TRUST_PROXY: the lock-out tests sign in "from" other addresses (X-Forwarded-For).
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true', TRUST_PROXY: 'loopback' } });
    db = await openDatabase({ databaseUrl: testHub.databaseUrl, poolSize: 2 });
    await registerApps(db);
    coordinator = await addAccount(db, 'Coordinator@Example.org', 'coordinator', 'Practitioner/prac-1');
    specialist = await addAccount(db, 'specialist@example.org', 'specialist', 'Practitioner/prac-2');
    patient = await addAccount(db, 'patient@example.org', 'patient', 'Patient/pat-1');
    referrer = await addAccount(db, 'referrer@example.org', 'referring-physician', 'Practitioner/prac-3');
  });
  afterAll(async () => {
    await db?.close();
    await testHub?.stop();
  });

  test('log in, get a code, exchange it with the verifier: the token reads /fhir/metadata and /fhir/Patient', async () => {
    expect((await fhirFetch(`${testHub.fhir}/Patient`)).status).toBe(401);
    const browser = new Browser();
    const { verifier, challenge } = pkcePair();
    const page = await browser.get(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, state: 'state-1', nonce: 'nonce-1' }),
    );
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    expect(html).not.toMatch(/<script/i);
    expect(html).toMatch(/<form method="post" action="\/oauth2\/authorize">/);
    const fields = hiddenFields(html);
    expect(fields.csrf).toEqual(browser.cookies.get('hub_csrf'));
    expect(fields).toMatchObject({
      client_id: APP,
      redirect_uri: REDIRECT,
      code_challenge: challenge,
      state: 'state-1',
    });

    // E-mail in another case: addresses are compared case-insensitively.
    const posted = await browser.post(`${testHub.baseUrl}/oauth2/authorize`, {
      ...fields,
      email: 'coordinator@example.ORG',
      password: PASSWORD,
      totp: freshTotp(coordinator),
    });
    expect(posted.status).toBe(303);
    const location = new URL(posted.headers.get('location') as string);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe('state-1');
    expect(location.searchParams.get('iss')).toBe(testHub.baseUrl);
    expect(browser.cookies.get('hub_session')).toBeDefined();
    const code = location.searchParams.get('code') as string;

    const token = await exchangeCode(testHub.baseUrl, { code, verifier, clientId: APP, redirectUri: REDIRECT });
    expect(token.status).toBe(200);
    expect(token.body).toMatchObject({ token_type: 'Bearer', scope: 'openid fhirUser user/*.rs' });
    expect(token.body.expires_in).toBeGreaterThan(0);
    expect(token.body.expires_in).toBeLessThanOrEqual(900);
    expect(token.body.patient).toBeUndefined();
    const claims = decodeJwt(token.body.access_token);
    expect(claims).toMatchObject({
      sub: coordinator.id,
      role: 'coordinator',
      fhirUser: 'Practitioner/prac-1',
      client_id: APP,
      scope: 'openid fhirUser user/*.rs',
    });
    expect(typeof claims.sid).toBe('string');

    // The id_token verifies with the hub's published keys and names the user's FHIR resource.
    const configuration = (await (await fetch(`${testHub.baseUrl}/.well-known/smart-configuration`)).json()) as any;
    const idToken = await jwtVerify(token.body.id_token, createRemoteJWKSet(new URL(configuration.jwks_uri)), {
      issuer: testHub.baseUrl,
      audience: APP,
    });
    expect(idToken.payload).toMatchObject({
      sub: coordinator.id,
      nonce: 'nonce-1',
      fhirUser: `${testHub.fhir}/Practitioner/prac-1`,
    });

    expect((await fhirFetch(`${testHub.fhir}/metadata`, bearer(token.body.access_token))).status).toBe(200);
    const patients = await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.body.access_token));
    expect(patients.status).toBe(200);
    expect(patients.body.resourceType).toBe('Bundle');
    // user/*.rs: reading yes, writing no.
    const create = await fhirFetch(`${testHub.fhir}/Patient`, {
      method: 'POST',
      body: { resourceType: 'Patient' },
      ...bearer(token.body.access_token),
    });
    expect(create.status).toBe(403);

    // The session lets the app get a new code without the form (and without a TOTP code).
    const again = pkcePair();
    const silent = await browser.get(
      authorizeUrl(testHub.baseUrl, { ...request, challenge: again.challenge, state: 'state-2' }),
    );
    expect(silent.status).toBe(303);
    const silentLocation = new URL(silent.headers.get('location') as string);
    expect(silentLocation.searchParams.get('state')).toBe('state-2');
    const second = await exchangeCode(testHub.baseUrl, {
      code: silentLocation.searchParams.get('code') as string,
      verifier: again.verifier,
      clientId: APP,
      redirectUri: REDIRECT,
    });
    expect(second.status).toBe(200);
    expect(decodeJwt(second.body.access_token).sid).toBe(claims.sid);
    // prompt=login asks for the credentials again.
    expect(
      (
        await browser.get(
          authorizeUrl(testHub.baseUrl, { ...request, challenge: again.challenge, extra: { prompt: 'login' } }),
        )
      ).status,
    ).toBe(200);
  });

  test('a patient logs in without TOTP; launch/patient gives the patient context; scopes are narrowed to the registration', async () => {
    const { token } = await logIn(
      new Browser(),
      testHub.baseUrl,
      {
        clientId: APP,
        redirectUri: REDIRECT,
        scope: 'launch/patient fhirUser user/*.cruds patient/*.rs offline_access',
      },
      patient,
    );
    expect(token).toMatchObject({
      patient: 'pat-1',
      scope: 'fhirUser launch/patient user/*.rs user/ServiceRequest.cru',
    });
    expect(token.id_token).toBeUndefined();
    expect(decodeJwt(token.access_token)).toMatchObject({
      sub: patient.id,
      role: 'patient',
      fhirUser: 'Patient/pat-1',
    });
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token))).status).toBe(200);
    // CORS: the app's scripts, on its redirect URI's origin, may read the token response; other origins not.
    for (const [origin, allowed] of [
      ['http://127.0.0.1:5173', true],
      ['https://evil.example', false],
    ] as const) {
      const browser = new Browser();
      const { verifier, challenge } = pkcePair();
      const attempt = await submitLogin(browser, testHub.baseUrl, { ...request, challenge }, patient);
      const response = await fetch(`${testHub.baseUrl}/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: attempt.location?.searchParams.get('code') as string,
          code_verifier: verifier,
          client_id: APP,
          redirect_uri: REDIRECT,
        }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('access-control-allow-origin')).toBe(allowed ? origin : null);
    }
    // A staff member asking for launch/patient gets no patient context (there is no patient picker).
    const { token: staff } = await logIn(
      new Browser(),
      testHub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'launch/patient user/*.rs' },
      { ...specialist, totp: freshTotp(specialist) },
    );
    expect(staff.scope).toBe('user/*.rs');
    expect(staff.patient).toBeUndefined();
  });

  test('authorization requests refused: unregistered redirect_uri or client (a page, no redirect), plain or missing PKCE, bad scope', async () => {
    const browser = new Browser();
    const { challenge } = pkcePair();
    for (const url of [
      authorizeUrl(testHub.baseUrl, { ...request, challenge, redirectUri: 'http://127.0.0.1:5173/elsewhere' }),
      authorizeUrl(testHub.baseUrl, { ...request, challenge, redirectUri: OTHER_REDIRECT }),
      authorizeUrl(testHub.baseUrl, { ...request, challenge, clientId: 'nobody' }),
    ]) {
      const response = await browser.get(url);
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(await response.text()).toMatch(/not registered/);
    }
    const expectRedirectError = async (url: string, error: string, description: RegExp): Promise<void> => {
      const response = await browser.get(url);
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location') as string);
      expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
      expect(location.searchParams.get('error')).toBe(error);
      expect(location.searchParams.get('error_description')).toMatch(description);
      expect(location.searchParams.get('code')).toBeNull();
    };
    const verifier = 'v'.repeat(50);
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge: verifier.slice(0, 43), method: 'plain' }),
      'invalid_request',
      /S256/,
    );
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, extra: { code_challenge_method: '' } }),
      'invalid_request',
      /S256/,
    );
    await expectRedirectError(authorizeUrl(testHub.baseUrl, { ...request }), 'invalid_request', /PKCE is required/);
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, extra: { response_type: 'token' } }),
      'unsupported_response_type',
      /code/,
    );
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, scope: 'user/*.d' }),
      'invalid_scope',
      /none of the requested scopes/,
    );
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, scope: 'user/Patient.x' }),
      'invalid_scope',
      /not a SMART user scope/,
    );
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, extra: { aud: 'https://other.example.org/fhir' } }),
      'invalid_request',
      /aud/,
    );
    await expectRedirectError(
      authorizeUrl(testHub.baseUrl, { ...request, challenge, extra: { prompt: 'none' } }),
      'login_required',
      /not logged in/,
    );

    // A form posted without the CSRF cookie's token is refused.
    const page = await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge }));
    const fields = hiddenFields(await page.text());
    const forged = await browser.post(`${testHub.baseUrl}/oauth2/authorize`, {
      ...fields,
      csrf: 'x'.repeat(32),
      email: referrer.email,
      password: referrer.password,
    });
    expect(forged.status).toBe(403);
    expect(forged.headers.get('location')).toBeNull();
  });

  test('code exchange refused: wrong verifier, reused code (which revokes its session), expired code, other redirect_uri or client', async () => {
    const browser = new Browser();
    const getCode = async (): Promise<{ code: string; verifier: string }> => {
      const { verifier, challenge } = pkcePair();
      const response = browser.cookies.has('hub_session')
        ? await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge }))
        : await browser.post(`${testHub.baseUrl}/oauth2/authorize`, {
            ...hiddenFields(await (await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge }))).text()),
            email: referrer.email,
            password: referrer.password,
          });
      expect(response.status).toBe(303);
      return { code: new URL(response.headers.get('location') as string).searchParams.get('code') as string, verifier };
    };
    const expectInvalidGrant = (result: { status: number; body: any }, description: RegExp): void => {
      expect(result.status).toBe(400);
      expect(result.body.error).toBe('invalid_grant');
      expect(result.body.error_description).toMatch(description);
    };

    const wrong = await getCode();
    expectInvalidGrant(
      await exchangeCode(testHub.baseUrl, {
        code: wrong.code,
        verifier: pkcePair().verifier,
        clientId: APP,
        redirectUri: REDIRECT,
      }),
      /code_verifier/,
    );

    const mismatch = await getCode();
    expectInvalidGrant(
      await exchangeCode(testHub.baseUrl, {
        ...mismatch,
        clientId: APP,
        redirectUri: 'http://127.0.0.1:5173/elsewhere',
      }),
      /redirect_uri/,
    );
    const otherClient = await getCode();
    expectInvalidGrant(
      await exchangeCode(testHub.baseUrl, { ...otherClient, clientId: OTHER_APP, redirectUri: REDIRECT }),
      /another client/,
    );
    expectInvalidGrant(
      await exchangeCode(testHub.baseUrl, {
        code: 'no-such-code',
        verifier: pkcePair().verifier,
        clientId: APP,
        redirectUri: REDIRECT,
      }),
      /unknown/,
    );

    const expiring = await getCode();
    await db.query("UPDATE auth_authorization_code SET expires_at = now() - interval '1 second' WHERE used_at IS NULL");
    expectInvalidGrant(
      await exchangeCode(testHub.baseUrl, { ...expiring, clientId: APP, redirectUri: REDIRECT }),
      /expired/,
    );

    const good = await getCode();
    const first = await exchangeCode(testHub.baseUrl, { ...good, clientId: APP, redirectUri: REDIRECT });
    expect(first.status).toBe(200);
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(first.body.access_token))).status).toBe(200);
    expectInvalidGrant(
      await exchangeCode(testHub.baseUrl, { ...good, clientId: APP, redirectUri: REDIRECT }),
      /used before/,
    );
    const refused = await fhirFetch(`${testHub.fhir}/Patient`, bearer(first.body.access_token));
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/invalid_token/);
    // The revoked session no longer authorizes: the login form is shown again.
    expect(
      (await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge: pkcePair().challenge }))).status,
    ).toBe(200);
  });

  test('wrong password and unknown e-mail get the same answer; staff without or with a wrong TOTP code are refused', async () => {
    const attempt = (credentials: { email: string; password: string; totp?: string }) =>
      submitLogin(new Browser(), testHub.baseUrl, { ...request, challenge: pkcePair().challenge }, credentials);
    const answers = [
      await attempt({ email: specialist.email, password: 'not the password at all', totp: freshTotp(specialist) }),
      await attempt({ email: 'nobody@example.org', password: 'not the password at all', totp: '123456' }),
      await attempt({ email: specialist.email, password: PASSWORD }),
      await attempt({
        email: specialist.email,
        password: PASSWORD,
        totp: totpCode(specialist.totpSecret as string, Date.now() - 10 * 60_000),
      }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.location).toBeUndefined();
      expect(pageError(answer.html)).toBe(LOGIN_REFUSED);
    }
    // The form keeps the e-mail, never the password.
    const wrongPassword = defined(answers[0], 'the wrong-password answer');
    expect(wrongPassword.html).toContain('value="specialist@example.org"');
    expect(wrongPassword.html).not.toContain('not the password at all');
    await new UserStore(db).unlock(specialist.email);
  });

  test('five failures from one address lock that address out of the account; another address signs in', async () => {
    const account = await addAccount(db, 'guessed@example.org', 'radiologist', 'Practitioner/prac-4');
    const attempt = (from: string, credentials: { password: string; totp: string }) =>
      submitLogin(
        new Browser(from),
        testHub.baseUrl,
        { ...request, challenge: pkcePair().challenge },
        { email: account.email, ...credentials },
      );
    for (let i = 0; i < 5; i++) {
      const answer = await attempt('203.0.113.5', { password: `wrong password ${i}`, totp: '000000' });
      expect([answer.status, pageError(answer.html)]).toEqual([401, LOGIN_REFUSED]);
    }
    // The address that guessed is held back, even with the right password and code…
    const fromGuesser = await attempt('203.0.113.5', { password: account.password, totp: freshTotp(account) });
    expect(fromGuesser.status).toBe(429);
    expect(pageError(fromGuesser.html)).toMatch(/Too many failed sign-ins for this account from here/);
    // …the account is not: its owner signs in from their own address.
    const fromOwner = await attempt('198.51.100.20', { password: account.password, totp: freshTotp(account) });
    expect(fromOwner.status).toBe(303);
  });

  test('failures from many addresses lock the account to unknown places until `hub user unlock`; the owner’s browser still signs in', async () => {
    const account = await addAccount(db, 'locked@example.org', 'radiologist', 'Practitioner/prac-4');
    // The owner signed in on this browser before: it keeps a device cookie.
    const desk = new Browser('203.0.113.10');
    await logIn(desk, testHub.baseUrl, request, { ...account, totp: freshTotp(account) });
    expect(desk.cookies.get('hub_device')).toMatch(/^[0-9a-f]{32}$/);
    // Their session ended since (signed out, or past its end); the browser keeps the device cookie.
    desk.cookies.delete('hub_session');

    // Twenty wrong guesses spread over four addresses, one of them the desk's own.
    for (const from of ['203.0.113.10', '203.0.113.11', '203.0.113.12', '203.0.113.13']) {
      for (let i = 0; i < 5; i++) {
        const answer = await submitLogin(
          new Browser(from),
          testHub.baseUrl,
          { ...request, challenge: pkcePair().challenge },
          { email: account.email, password: `wrong password ${i}`, totp: '000000' },
        );
        expect(answer.status).toBe(401);
      }
    }
    const listed = JSON.parse(
      (await hub(['user', 'list', '--json'], { DATABASE_URL: testHub.databaseUrl as string })).stdout,
    );
    expect(listed.find((user: { email: string }) => user.email === account.email)).toMatchObject({ locked: true });
    // From a place the account has not signed in from, the right credentials are refused…
    const code = freshTotp(account);
    const elsewhere = await submitLogin(
      new Browser('198.51.100.30'),
      testHub.baseUrl,
      { ...request, challenge: pkcePair().challenge },
      { ...account, totp: code },
    );
    expect([elsewhere.status, pageError(elsewhere.html)]).toEqual([401, LOGIN_REFUSED]);
    // …but the owner's browser, at an address that guessed, signs in: the lock-out is not theirs.
    const { token } = await logIn(desk, testHub.baseUrl, request, { ...account, totp: code });
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token))).status).toBe(200);
    // The cookie alone opens nothing: a wrong password from the known browser is refused.
    desk.cookies.delete('hub_session');
    const wrong = await submitLogin(
      desk,
      testHub.baseUrl,
      { ...request, challenge: pkcePair().challenge },
      { email: account.email, password: 'not it at all', totp: '000000' },
    );
    expect(wrong.status).toBe(401);

    const unlocked = await hub(['user', 'unlock', '--email', account.email], {
      DATABASE_URL: testHub.databaseUrl as string,
    });
    expect(unlocked).toMatchObject({ code: 0 });
    expect(unlocked.stdout).toContain(`Unlocked user ${account.email}`);
    const after = JSON.parse(
      (await hub(['user', 'list', '--json'], { DATABASE_URL: testHub.databaseUrl as string })).stdout,
    );
    expect(after.find((user: { email: string }) => user.email === account.email)).toMatchObject({ locked: false });
  });

  test('each sign-in replaces the browser’s device token: a copy of the old cookie is an unknown place', async () => {
    // A referring physician (no authenticator code), so that one account can sign in again and again.
    const account = await addAccount(db, 'copied@example.org', 'referring-physician', 'Practitioner/prac-5');
    const desk = new Browser('203.0.113.20');
    await logIn(desk, testHub.baseUrl, request, account);
    const first = desk.cookies.get('hub_device') as string;
    expect(first).toMatch(/^[0-9a-f]{32}$/);
    // Someone copies the browser's cookies (a synced profile, a backup) and keeps them.
    const copy = new Browser('198.51.100.40');
    copy.cookies.set('hub_device', first);

    // The owner signs in again on their browser: a new token, the old one forgotten.
    desk.cookies.delete('hub_session');
    await logIn(desk, testHub.baseUrl, request, account);
    const second = desk.cookies.get('hub_device') as string;
    expect(second).toMatch(/^[0-9a-f]{32}$/);
    expect(second).not.toBe(first);

    // Guessing from many addresses locks the account to unknown places.
    for (const from of ['203.0.113.21', '203.0.113.22', '203.0.113.23', '203.0.113.24']) {
      for (let i = 0; i < 5; i++) {
        const answer = await submitLogin(
          new Browser(from),
          testHub.baseUrl,
          { ...request, challenge: pkcePair().challenge },
          { email: account.email, password: `wrong password ${i}` },
        );
        expect(answer.status).toBe(401);
      }
    }
    // The copy's token is no longer a known device: it is refused like any unknown place…
    const fromCopy = await submitLogin(
      copy,
      testHub.baseUrl,
      { ...request, challenge: pkcePair().challenge },
      { email: account.email, password: account.password },
    );
    expect([fromCopy.status, pageError(fromCopy.html)]).toEqual([401, LOGIN_REFUSED]);
    // …while the owner's browser, holding the new token, signs in.
    desk.cookies.delete('hub_session');
    const { token } = await logIn(desk, testHub.baseUrl, request, account);
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token))).status).toBe(200);
  });

  test('a disabled user is refused and signed out everywhere', async () => {
    const account = await addAccount(db, 'disabled@example.org', 'pathologist');
    const { token } = await logIn(new Browser(), testHub.baseUrl, request, { ...account, totp: freshTotp(account) });
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token))).status).toBe(200);
    // Disabled by another process (the CLI's connection), so this hub learns of it from the database.
    await new UserStore(db).setStatus(account.email, 'disabled');
    await until(
      async () => (await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token))).status === 401,
      'the token to be refused',
      20_000,
      250,
    );
    const answer = await submitLogin(
      new Browser(),
      testHub.baseUrl,
      { ...request, challenge: pkcePair().challenge },
      { ...account, totp: freshTotp(account) },
    );
    expect(pageError(answer.html)).toBe(LOGIN_REFUSED);
  });

  test('logout revokes: the token stops working and the session cookie no longer authorizes', async () => {
    const browser = new Browser();
    const { token } = await logIn(
      browser,
      testHub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'user/*.rs' },
      referrer,
    );
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token))).status).toBe(200);
    const logout = await browser.post(
      `${testHub.baseUrl}/oauth2/logout`,
      {},
      { authorization: `Bearer ${token.access_token}` },
    );
    expect(logout.status).toBe(200);
    expect(browser.cookies.has('hub_session')).toBe(false);
    const after = await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token));
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toMatch(/logged out/);

    // RFC 7009 form at /oauth2/revoke, from another browser session of the same person.
    const other = new Browser();
    const { token: second } = await logIn(
      other,
      testHub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'user/*.rs' },
      referrer,
    );
    const revoked = await fetch(`${testHub.baseUrl}/oauth2/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: second.access_token }),
    });
    expect(revoked.status).toBe(200);
    expect((await fhirFetch(`${testHub.fhir}/Patient`, bearer(second.access_token))).status).toBe(401);
    // The session behind the cookie was revoked too: the form is shown again.
    expect(
      (
        await other.get(
          authorizeUrl(testHub.baseUrl, {
            clientId: APP,
            redirectUri: REDIRECT,
            scope: 'user/*.rs',
            challenge: pkcePair().challenge,
          }),
        )
      ).status,
    ).toBe(200);
  });

  test('a session past its absolute end no longer authorizes, and its codes no longer exchange', async () => {
    const browser = new Browser();
    await logIn(browser, testHub.baseUrl, { clientId: APP, redirectUri: REDIRECT, scope: 'user/*.rs' }, patient);
    const { verifier, challenge } = pkcePair();
    const silent = await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge }));
    expect(silent.status).toBe(303);
    const code = new URL(silent.headers.get('location') as string).searchParams.get('code') as string;
    await db.query("UPDATE auth_session SET expires_at = now() - interval '1 second' WHERE user_id = $1", [patient.id]);
    const exchanged = await exchangeCode(testHub.baseUrl, { code, verifier, clientId: APP, redirectUri: REDIRECT });
    expect(exchanged).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: expect.stringMatching(/session has ended/) },
    });
    expect((await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge }))).status).toBe(200);
  });

  test('SMART configuration and the CapabilityStatement advertise the login', async () => {
    const configuration = (await (await fetch(`${testHub.baseUrl}/.well-known/smart-configuration`)).json()) as any;
    expect(configuration).toMatchObject({
      issuer: testHub.baseUrl,
      authorization_endpoint: `${testHub.baseUrl}/oauth2/authorize`,
      token_endpoint: `${testHub.baseUrl}/oauth2/token`,
      revocation_endpoint: `${testHub.baseUrl}/oauth2/revoke`,
      jwks_uri: `${testHub.baseUrl}/.well-known/jwks.json`,
      grant_types_supported: ['authorization_code', 'client_credentials'],
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'none'],
    });
    expect(configuration.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'fhirUser', 'launch/patient', 'user/*.rs', 'system/*.rs']),
    );
    expect(configuration.scopes_supported).not.toContain('offline_access');
    expect(configuration.capabilities).toEqual(
      expect.arrayContaining([
        'launch-standalone',
        'client-public',
        'permission-user',
        'client-confidential-asymmetric',
      ]),
    );
    const jwks = (await (await fetch(configuration.jwks_uri)).json()) as any;
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.keys[0].d).toBeUndefined();

    const metadata = await fhirFetch(`${testHub.fhir}/metadata`);
    const security = metadata.body.rest[0].security;
    expect(security.extension[0].extension).toEqual([
      { url: 'authorize', valueUri: `${testHub.baseUrl}/oauth2/authorize` },
      { url: 'token', valueUri: `${testHub.baseUrl}/oauth2/token` },
      { url: 'revoke', valueUri: `${testHub.baseUrl}/oauth2/revoke` },
    ]);
    expect(security.service[0].text).toMatch(/PKCE S256/);
  });

  // Last: it spends this address's login budget.
  test('the login form is rate-limited per address', async () => {
    const browser = new Browser();
    const page = await browser.get(authorizeUrl(testHub.baseUrl, { ...request, challenge: pkcePair().challenge }));
    const fields = hiddenFields(await page.text());
    let limited: Response | undefined;
    for (let i = 0; i < 40 && !limited; i++) {
      const response = await browser.post(`${testHub.baseUrl}/oauth2/authorize`, {
        ...fields,
        email: `someone-${i}@example.org`,
        password: 'wrong password!',
      });
      if (response.status === 429) {
        limited = response;
      } else {
        expect(response.status).toBe(401);
      }
    }
    expect(limited).toBeDefined();
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(pageError(await (limited as Response).text())).toMatch(/Too many/);
  });
});

describe('session idle time', () => {
  let testHub: TestHub;
  let db: Database;

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true', AUTH_SESSION_IDLE_SECONDS: '4' } });
    db = await openDatabase({ databaseUrl: testHub.databaseUrl, poolSize: 2 });
    await registerApps(db);
  });
  afterAll(async () => {
    await db?.close();
    await testHub?.stop();
  });

  test('tokens end with the session; an idle session no longer authorizes', async () => {
    const account = await addAccount(db, 'idle@example.org', 'referring-physician');
    const browser = new Browser();
    const { token } = await logIn(
      browser,
      testHub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'user/*.rs' },
      account,
    );
    expect(token.expires_in).toBeLessThanOrEqual(4);
    const expiresAt = decodeJwt(token.access_token).exp as number;
    // Time, not an event: past the token's expiry plus the hub's 5 s skew tolerance (and so the 4 s idle).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, (expiresAt + 5) * 1000 + 100 - Date.now())));
    const refused = await fhirFetch(`${testHub.fhir}/Patient`, bearer(token.access_token));
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/expired/);
    const page = await browser.get(
      authorizeUrl(testHub.baseUrl, {
        clientId: APP,
        redirectUri: REDIRECT,
        scope: 'user/*.rs',
        challenge: pkcePair().challenge,
      }),
    );
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form');
  });
});
