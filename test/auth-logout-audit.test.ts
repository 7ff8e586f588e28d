/**
 * Logout and revocation are audited (DICOM 110114 User Authentication, subtype 110123 Logout), one
 * AuditEvent per request, whether it ended a session or not, against a real hub with
 * AUTH_REQUIRED=true; the events are read back through the FHIR API.
 */
import { CLIENT_REVOKE_REFUSED_AUDIT_TEXT, LOGOUT_REFUSED_AUDIT_TEXT } from '../src/auth/logout-endpoint.ts';
import { ClientRegistry } from '../src/auth/clients.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import { auditEventsSince, clientToken } from './support/client-token.ts';
import { Browser, logIn } from './support/login-flow.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

const APP = 'logout-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const PASSWORD = 'a long enough password';
const DICOM = 'http://dicom.nema.org/resources/ontology/DCM';

interface Agent {
  type: { coding: { code: string }[] };
  altId?: string;
  who?: { reference?: string };
}

describe('logout audit', () => {
  let testHub: TestHub;
  let auditor: string;
  let userId: string;
  const started = new Date(Date.now() - 1000).toISOString();
  const person = { email: 'leaving@example.org', password: PASSWORD };
  const request = { clientId: APP, redirectUri: REDIRECT, scope: 'openid fhirUser user/*.rs' };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    await new ClientRegistry(testHub.hub.db).addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('openid fhirUser user/*.rs'),
    });
    ({
      user: { id: userId },
    } = await new UserStore(testHub.hub.db).add({
      ...person,
      role: 'referring-physician',
      fhirUser: 'Practitioner/prac-leaving',
    }));
    auditor = await clientToken(testHub, 'auditor', 'system/AuditEvent.rs');
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${testHub.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form),
    });

  test('every logout and revoke, ended or refused, has its Logout AuditEvent naming who asked', async () => {
    // Ended: by bearer token, by RFC 7009 token parameter, by the session cookie with its CSRF token.
    const first = await logIn(new Browser(), testHub.baseUrl, request, person);
    expect((await post('/oauth2/logout', {}, { authorization: `Bearer ${first.token.access_token}` })).status).toBe(
      200,
    );
    const second = await logIn(new Browser(), testHub.baseUrl, request, person);
    expect((await post('/oauth2/revoke', { token: second.token.access_token })).status).toBe(200);
    const browser = new Browser();
    await logIn(browser, testHub.baseUrl, request, person);
    expect(browser.cookies.has('hub_session')).toBe(true);
    expect(
      (await browser.post(`${testHub.baseUrl}/oauth2/logout`, { csrf: browser.cookies.get('hub_csrf') as string }))
        .status,
    ).toBe(200);
    expect(browser.cookies.has('hub_session')).toBe(false);

    // Refused: a token that is not valid, a client's token, a cookie without its CSRF token.
    expect((await post('/oauth2/revoke', { token: 'not-a-token' })).status).toBe(200);
    const ehr = await clientToken(testHub, 'ehr-leaving', 'system/Patient.rs');
    expect((await post('/oauth2/revoke', { token: ehr })).status).toBe(400);
    const third = new Browser();
    await logIn(third, testHub.baseUrl, request, person);
    expect((await third.post(`${testHub.baseUrl}/oauth2/logout`, { csrf: "not the page's token" })).status).toBe(200);
    expect(third.cookies.has('hub_session')).toBe(true);

    const logouts = await until(async () => {
      const events = (await auditEventsSince(testHub, auditor, started)).filter((event) =>
        event.subtype?.some((c: { code: string }) => c.code === '110123'),
      );
      return events.length >= 6 && events;
    }, 'six Logout AuditEvents');
    expect(logouts).toHaveLength(6);
    for (const event of logouts) {
      expect(event.type).toMatchObject({ system: DICOM, code: '110114' });
      expect(event.subtype).toEqual([{ system: DICOM, code: '110123', display: 'Logout' }]);
      expect(event.action).toBe('E');
    }
    const userOf = (event: { agent: Agent[] }) =>
      event.agent.find((agent) => agent.type.coding[0]?.code === 'UserOauthAgent');
    const clientOf = (event: { agent: Agent[] }) =>
      event.agent.find((agent) => agent.type.coding[0]?.code === '110153');
    const ended = logouts.filter((event) => event.outcome === '0');
    expect(ended).toHaveLength(3);
    for (const event of ended) {
      expect(userOf(event)).toMatchObject({ altId: userId, who: { reference: 'Practitioner/prac-leaving' } });
    }
    const refused = logouts.filter((event) => event.outcome === '4');
    expect(refused.map((event) => event.outcomeDesc).sort()).toEqual(
      [CLIENT_REVOKE_REFUSED_AUDIT_TEXT, LOGOUT_REFUSED_AUDIT_TEXT, LOGOUT_REFUSED_AUDIT_TEXT].sort(),
    );
    const byClient = refused.find((event) => event.outcomeDesc === CLIENT_REVOKE_REFUSED_AUDIT_TEXT);
    expect(clientOf(byClient)).toMatchObject({ altId: 'ehr-leaving' });
    expect(userOf(byClient)).toBeUndefined();
    // A refused request names no person: a cookie without its CSRF token proves nothing about who sent it.
    for (const event of refused) {
      expect(userOf(event)).toBeUndefined();
    }
  });
});
