/**
 * The audit trail (IHE BALP AuditEvents) from the user's side, against real hubs on PostgreSQL: a
 * scripted session (failed login, login, tokens, create, read, search, update, delete, a refused
 * read) leaves one AuditEvent per access with the right codes, agents and entities; a rolled-back
 * transaction leaves none; reads acknowledged by a hub that is then killed with SIGKILL are stored by
 * the next start from the journal; AuditEvents cannot be created, changed or deleted through the API;
 * the audit store answers an auditor's searches (dates with prefixes, codes, references, sorted and
 * paged with the cursor) for admins and system clients only.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import pg from 'pg';
import { ClientRegistry } from '../src/auth/clients.ts';
import { LOGIN_REFUSED } from '../src/auth/login.ts';
import { parseScopes } from '../src/auth/scopes.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import { stow as stowFiles } from './support/stow.ts';
import { Browser, logIn, pkcePair, submitLogin } from './support/login-flow.ts';
import { startHubProcess } from './support/hub-process.ts';
import { createTestDatabase, fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { defined } from './support/defined.ts';
import { until } from './support/until.ts';

const APP = 'audit-dashboard';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const SYSTEM_CLIENT = 'audit-ehr';
const PASSWORD = 'a long enough password';
const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';

type Json = any;

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

const coding = (event: Json, field: 'type' | 'subtype'): string[] =>
  [event[field]]
    .flat()
    .filter(Boolean)
    .map((c: Json) => `${c.system}|${c.code}`);

const entityRefs = (event: Json, role: string): string[] =>
  (event.entity ?? []).filter((e: Json) => e.role?.code === role).map((e: Json) => e.what?.reference);

function requestor(event: Json): Json {
  return (event.agent ?? []).find((agent: Json) => agent.requestor === true);
}

describe('audit trail of a scripted session', () => {
  let testHub: TestHub;
  let clientToken: string;
  let userToken: string;
  let userId: string;
  const started = new Date(Date.now() - 1000).toISOString();

  async function allAuditEvents(): Promise<Json[]> {
    const events: Json[] = [];
    let url: string | undefined = `${testHub.fhir}/AuditEvent?date=ge${encodeURIComponent(started)}&_count=200`;
    while (url) {
      const page = await fhirFetch(url, { headers: bearer(clientToken) });
      expect(page.status).toBe(200);
      events.push(...(page.body.entry ?? []).map((entry: Json) => entry.resource));
      url = page.body.link?.find((link: Json) => link.relation === 'next')?.url;
    }
    return events;
  }

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    const clients = new ClientRegistry(testHub.hub.db);
    await clients.addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('openid fhirUser user/*.rs'),
    });
    const key = await generateKeyPair('ES384', { extractable: true });
    await clients.add({
      id: SYSTEM_CLIENT,
      jwks: { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1' }] },
      scopes: parseScopes('system/*.cruds'),
    });
    const { user } = await new UserStore(testHub.hub.db).add({
      email: 'referrer@example.org',
      role: 'referring-physician',
      fhirUser: 'Practitioner/prac-audit',
      password: PASSWORD,
    });
    userId = user.id;

    // The session: a refused login, a login with its token, a system client's token.
    const refused = await submitLogin(
      new Browser(),
      testHub.baseUrl,
      { clientId: APP, redirectUri: REDIRECT, scope: 'openid user/*.rs', challenge: pkcePair().challenge, state: 's' },
      { email: 'referrer@example.org', password: 'wrong password!' },
    );
    expect(refused.status).toBe(401);
    userToken = (
      await logIn(
        new Browser(),
        testHub.baseUrl,
        { clientId: APP, redirectUri: REDIRECT, scope: 'openid fhirUser user/*.rs' },
        { email: 'referrer@example.org', password: PASSWORD },
      )
    ).token.access_token;
    const now = Math.floor(Date.now() / 1000);
    const tokenUrl = `${testHub.baseUrl}/oauth2/token`;
    const assertion = await new SignJWT({
      iss: SYSTEM_CLIENT,
      sub: SYSTEM_CLIENT,
      aud: tokenUrl,
      exp: now + 240,
      iat: now,
      jti: randomUUID(),
    })
      .setProtectedHeader({ alg: 'ES384', kid: 'k1', typ: 'JWT' })
      .sign(key.privateKey);
    const token = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: 'system/*.cruds',
      }),
    });
    expect(token.status).toBe(200);
    clientToken = ((await token.json()) as Json).access_token;
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('every access has its AuditEvent, with type, subtype, action, agent, entities and outcome', async () => {
    const as = { headers: bearer(clientToken) };
    const patient = await fhirFetch(`${testHub.fhir}/Patient`, {
      ...as,
      method: 'POST',
      body: { resourceType: 'Patient', name: [{ family: 'Auditson' }] },
    });
    expect(patient.status).toBe(201);
    const p = `Patient/${patient.body.id}`;
    const observation = await fhirFetch(`${testHub.fhir}/Observation`, {
      ...as,
      method: 'POST',
      body: { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: p } },
    });
    expect(observation.status).toBe(201);
    const o = `Observation/${observation.body.id}`;
    expect((await fhirFetch(`${testHub.fhir}/${p}`, as)).status).toBe(200);
    const search = await fhirFetch(`${testHub.fhir}/Observation?subject=${p}`, as);
    expect(search.body.entry).toHaveLength(1);
    expect(
      (await fhirFetch(`${testHub.fhir}/${p}`, { ...as, method: 'PUT', body: { ...patient.body, active: true } }))
        .status,
    ).toBe(200);
    expect((await fhirFetch(`${testHub.fhir}/${o}`, { ...as, method: 'DELETE' })).status).toBe(200);
    expect((await fhirFetch(`${testHub.fhir}/${o}`, as)).status).toBe(410);
    // The person reads too (their policy decides what they see; the read is audited either way).
    const userRead = await fhirFetch(`${testHub.fhir}/${p}`, { headers: bearer(userToken) });

    // 4 authentication events (refused login, login, two tokens) + 8 accesses (the searches below
    // are of AuditEvents, which are not audited).
    const events = await until(
      async () => {
        const found = await allAuditEvents();
        return found.length >= 12 ? found : undefined;
      },
      '12 AuditEvents',
      30_000,
      100,
    );
    expect(events).toHaveLength(12);
    const text = JSON.stringify(events);
    expect(text).not.toContain('Auditson'); // references only, never content
    expect(text).not.toContain('referrer@example.org');
    expect(text).not.toContain(PASSWORD);

    const find = (predicate: (event: Json) => boolean, what: string): Json => {
      const matches = events.filter(predicate);
      if (matches.length !== 1) {
        throw new Error(`${matches.length} AuditEvents for ${what}: ${JSON.stringify(events, null, 1)}`);
      }
      return matches[0];
    };
    const rest =
      (interaction: string, outcome = '0') =>
      (event: Json) =>
        coding(event, 'subtype').includes(`http://hl7.org/fhir/restful-interaction|${interaction}`) &&
        event.outcome === outcome;
    const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

    const failedLogin = find(
      (e) => coding(e, 'subtype').includes(`${DCM}|110122`) && e.outcome === '4',
      'the refused login',
    );
    expect(coding(failedLogin, 'type')).toEqual([`${DCM}|110114`]);
    expect(failedLogin.outcomeDesc).toBe(LOGIN_REFUSED);
    expect(requestor(failedLogin).altId).toBe(userId);
    const login = find(
      (e) =>
        coding(e, 'subtype').includes(`${DCM}|110122`) &&
        !coding(e, 'subtype').some((c) => c.endsWith('|token-issued')) &&
        e.outcome === '0',
      'the login',
    );
    expect(requestor(login).who.reference).toBe('Practitioner/prac-audit');
    expect(login.agent.find((a: Json) => a.type.coding[0].code === '110153').who.identifier.value).toBe(APP);
    const userTokenEvent = find(
      (e) => coding(e, 'subtype').some((c) => c.endsWith('|token-issued')) && requestor(e)?.altId === userId,
      "the person's token",
    );
    expect(userTokenEvent.entity[0].detail[0]).toEqual({
      type: 'scope',
      valueString: expect.stringContaining('user/*.rs'),
    });
    const clientTokenEvent = find(
      (e) =>
        coding(e, 'subtype').some((c) => c.endsWith('|token-issued')) &&
        requestor(e)?.who?.identifier?.value === SYSTEM_CLIENT,
      "the client's token",
    );
    expect(clientTokenEvent.entity[0].detail[0].valueString).toBe('system/*.cruds');

    const created = find((e) => rest('create')(e) && entityRefs(e, '4')[0] === `${p}/_history/1`, 'the Patient create');
    expect(created).toMatchObject({ type: { code: 'rest' }, action: 'C', outcome: '0' });
    expect(entityRefs(created, '1')).toEqual([p]); // BALP PatientCreate: the resource, and the patient it is about
    const createdObservation = find(
      (e) => rest('create')(e) && entityRefs(e, '4')[0] === `${o}/_history/1`,
      'the Observation create',
    );
    expect(entityRefs(createdObservation, '1')).toEqual([p]);
    const clientAgent = requestor(createdObservation);
    expect(clientAgent).toMatchObject({
      type: { coding: [{ code: '110153' }] },
      who: { identifier: { value: SYSTEM_CLIENT } },
      requestor: true,
    });
    expect(clientAgent.network.address).toMatch(/127\.0\.0\.1/);
    const read = find(
      (e) =>
        rest('read')(e) && requestor(e)?.who?.identifier?.value === SYSTEM_CLIENT && entityRefs(e, '4').length === 0,
      'the Patient read',
    );
    expect(read.action).toBe('R');
    expect(entityRefs(read, '1')).toEqual([p]);
    const searched = find(rest('search-type'), 'the search');
    expect(searched.action).toBe('E');
    const query = searched.entity.find((e: Json) => e.role.code === '24');
    expect(Buffer.from(query.query, 'base64').toString()).toBe(`subject=${p}`);
    expect(entityRefs(searched, '1')).toEqual([p]);
    expect(find(rest('update'), 'the update')).toMatchObject({
      action: 'U',
      entity: expect.arrayContaining([expect.objectContaining({ what: { reference: `${p}/_history/2` } })]),
    });
    const deleted = find(rest('delete'), 'the delete');
    expect(deleted.action).toBe('D');
    expect(entityRefs(deleted, '4')).toEqual([`${o}/_history/2`]);
    expect(entityRefs(deleted, '1')).toEqual([p]);
    const gone = find(
      (e) => rest('read', '4')(e) && entityRefs(e, '4')[0] === o,
      'the read of the deleted Observation',
    );
    expect(gone.action).toBe('R');
    const personRead = find(
      (e) =>
        coding(e, 'subtype').includes('http://hl7.org/fhir/restful-interaction|read') && requestor(e)?.altId === userId,
      "the person's read",
    );
    expect(personRead.outcome).toBe(userRead.status === 200 ? '0' : '4');
    expect(personRead.agent.find((a: Json) => a.type.coding[0].code === 'UserOauthAgent').who.reference).toBe(
      'Practitioner/prac-audit',
    );

    // Searchable by the parameters an auditor uses.
    const ids = async (query: string): Promise<string[]> => {
      const page = await fhirFetch(`${testHub.fhir}/AuditEvent?${query}&date=ge${encodeURIComponent(started)}`, as);
      expect(page.status).toBe(200);
      return (page.body.entry ?? []).map((entry: Json) => entry.resource.id).sort();
    };
    expect(await ids(`entity=${p}`)).toEqual(
      [
        createdObservation.id,
        read.id,
        searched.id,
        find(rest('update'), 'update').id,
        deleted.id,
        created.id,
        ...(entityRefs(personRead, '4').length ? [personRead.id] : []),
      ].sort(),
    );
    expect(await ids('subtype=http://hl7.org/fhir/restful-interaction|delete')).toEqual([deleted.id]);
    expect(await ids(`type=${DCM}|110114`)).toEqual(
      [failedLogin.id, login.id, userTokenEvent.id, clientTokenEvent.id].sort(),
    );
    expect(await ids('agent=Practitioner/prac-audit')).toEqual([login.id, personRead.id].sort());
    expect(await ids('outcome=4')).toEqual(
      [failedLogin.id, gone.id, ...(personRead.outcome === '4' ? [personRead.id] : [])].sort(),
    );
  });

  test('AuditEvent search: date prefixes, _sort=-date with cursor paging, _total, _id, codes, references, vread; admins and system clients only', async () => {
    const as = { headers: bearer(clientToken) };
    // Refused writes are audited without being waited for: let the trail settle first.
    let all: Json[] = [];
    await until(
      async () => {
        const before = all.length;
        all = await allAuditEvents();
        return all.length === before ? true : undefined;
      },
      'a settled audit trail',
      30_000,
      100,
    );
    const since = `date=ge${encodeURIComponent(started)}`;
    const total = async (query: string): Promise<number> => {
      const page = await fhirFetch(`${testHub.fhir}/AuditEvent?${query}&${since}&_count=0&_total=accurate`, as);
      expect(page.status).toBe(200);
      return page.body.total;
    };
    const ids = async (query: string): Promise<string[]> => {
      const page = await fhirFetch(`${testHub.fhir}/AuditEvent?${query}&${since}&_count=200`, as);
      expect(page.status).toBe(200);
      return (page.body.entry ?? []).map((entry: Json) => entry.resource.id).sort();
    };

    // Newest first, three per page through the `next` links: each event once, in date order.
    const seen: Json[] = [];
    let url: string | undefined = `${testHub.fhir}/AuditEvent?${since}&_sort=-date&_count=3&_total=accurate`;
    let pages = 0;
    while (url) {
      const page = await fhirFetch(url, as);
      expect(page.status).toBe(200);
      if (pages === 0) {
        expect(page.body.total).toBe(all.length);
      }
      seen.push(...page.body.entry.map((entry: Json) => entry.resource));
      url = page.body.link?.find((link: Json) => link.relation === 'next')?.url;
      pages++;
    }
    expect(pages).toBe(Math.ceil(all.length / 3));
    expect(seen.map((e) => e.id).sort()).toEqual(all.map((e) => e.id).sort());
    const times = seen.map((e) => Date.parse(e.recorded));
    expect(times).toEqual([...times].sort((a, b) => b - a));

    // Prefixes around one event's instant split the trail without a gap or an overlap.
    const pivot = seen[Math.floor(seen.length / 2)];
    const at = encodeURIComponent(pivot.recorded);
    const same = all.filter((e) => e.recorded === pivot.recorded).length;
    expect((await total(`date=lt${at}`)) + (await total(`date=ge${at}`))).toBe(all.length);
    expect((await total(`date=le${at}`)) + (await total(`date=gt${at}`))).toBe(all.length);
    expect(await total(`date=eq${at}`)).toBe(same);
    expect(await total(`date=ne${at}`)).toBe(all.length - same);
    expect(await total(`date=sa${at}`)).toBe(await total(`date=gt${at}`));
    expect(await total(`date=${pivot.recorded.slice(0, 4)}`)).toBe(all.length);
    expect(await total('date=lt2000-01-01')).toBe(0);

    const deleted = all.find((e) => coding(e, 'subtype').includes('http://hl7.org/fhir/restful-interaction|delete'));
    const patient = defined(entityRefs(deleted, '1')[0], 'the Patient the delete is about');
    expect(await ids(`_id=${deleted.id}`)).toEqual([deleted.id]);
    expect(await ids('action=D')).toEqual([deleted.id]);
    expect(await ids('subtype=delete')).toEqual([deleted.id]);
    expect(await total('action:not=D')).toBe(all.length - 1);
    // R4 AuditEvent `patient`: any agent.who or entity.what that is the Patient (any version of it).
    const about = (e: Json): string[] =>
      [...(e.agent ?? []).map((a: Json) => a.who?.reference), ...(e.entity ?? []).map((x: Json) => x.what?.reference)]
        .filter(Boolean)
        .map((reference: string) => reference.replace(/\/_history\/.*$/, ''));
    const ofPatient = all
      .filter((e) => about(e).includes(patient))
      .map((e) => e.id)
      .sort();
    expect(ofPatient.length).toBeGreaterThan(3);
    expect(await ids(`patient=${patient}`)).toEqual(ofPatient);
    expect(await ids(`entity:Patient=${patient.split('/')[1]}`)).toEqual(await ids(`entity=${patient}`));
    const clientEvents = all
      .filter((e) => requestor(e)?.who?.identifier?.value === SYSTEM_CLIENT)
      .map((e) => e.id)
      .sort();
    expect(clientEvents.length).toBeGreaterThan(3);
    expect(await ids(`agent:identifier=${encodeURIComponent(`${testHub.baseUrl}/clients|${SYSTEM_CLIENT}`)}`)).toEqual(
      clientEvents,
    );

    // One version, never changed.
    const vread = await fhirFetch(`${testHub.fhir}/AuditEvent/${deleted.id}/_history/1`, as);
    expect(vread.status).toBe(200);
    expect(vread.body).toEqual(deleted);
    expect((await fhirFetch(`${testHub.fhir}/AuditEvent/${deleted.id}/_history/2`, as)).status).toBe(404);

    // A parameter the store does not search: an error when strict, left out of the self link otherwise.
    const strict = await fhirFetch(`${testHub.fhir}/AuditEvent?entity-role=24`, {
      headers: { ...as.headers, prefer: 'handling=strict' },
    });
    expect(strict.status).toBe(400);
    const lenient = await fhirFetch(`${testHub.fhir}/AuditEvent?entity-role=24&${since}&_count=1`, as);
    expect(lenient.status).toBe(200);
    expect(lenient.body.link.find((link: Json) => link.relation === 'self').url).not.toContain('entity-role');

    // A referring physician sees none of it.
    expect((await fhirFetch(`${testHub.fhir}/AuditEvent?${since}`, { headers: bearer(userToken) })).status).toBe(403);
    expect((await fhirFetch(`${testHub.fhir}/AuditEvent/${deleted.id}`, { headers: bearer(userToken) })).status).toBe(
      404,
    );
  });

  test('AuditEvents cannot be created, changed or deleted through the API, nor in a Bundle', async () => {
    const as = { headers: bearer(clientToken) };
    const [one] = await allAuditEvents();
    for (const [method, url, body] of [
      ['POST', 'AuditEvent', { ...one, id: undefined }],
      ['PUT', `AuditEvent/${one.id}`, { ...one, outcome: '0' }],
      ['PATCH', `AuditEvent/${one.id}`, [{ op: 'replace', path: '/outcome', value: '0' }]],
      ['DELETE', `AuditEvent/${one.id}`, undefined],
    ] as const) {
      const response = await fhirFetch(`${testHub.fhir}/${url}`, {
        ...as,
        method,
        body,
        headers: { ...as.headers, ...(method === 'PATCH' ? { 'content-type': 'application/json-patch+json' } : {}) },
      });
      expect({ method, status: response.status, type: response.body?.resourceType }).toEqual({
        method,
        status: 405,
        type: 'OperationOutcome',
      });
    }
    const bundle = await fhirFetch(testHub.fhir, {
      ...as,
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'DELETE', url: `AuditEvent/${one.id}` } }],
      },
    });
    expect(bundle.status).toBe(405);
    const still = await fhirFetch(`${testHub.fhir}/AuditEvent/${one.id}`, as);
    expect(still.status).toBe(200);
    expect(still.body).toEqual(one);
  });

  test('a batch’s AuditEvent names what each entry touched: the Binary and Patient it read, the matches of its search; failed entries nothing', async () => {
    const as = { headers: bearer(clientToken) };
    const patient = await fhirFetch(`${testHub.fhir}/Patient`, {
      ...as,
      method: 'POST',
      body: { resourceType: 'Patient', name: [{ family: 'Batchread' }] },
    });
    const binary = await fhirFetch(`${testHub.fhir}/Binary`, {
      ...as,
      method: 'POST',
      body: {
        resourceType: 'Binary',
        contentType: 'application/pdf',
        data: Buffer.from('%PDF-1.4 batch').toString('base64'),
      },
    });
    const observation = await fhirFetch(`${testHub.fhir}/Observation`, {
      ...as,
      method: 'POST',
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'batch' },
        subject: { reference: `Patient/${patient.body.id}` },
      },
    });
    const batch = await fhirFetch(testHub.fhir, {
      ...as,
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: `Binary/${binary.body.id}` } },
          { request: { method: 'GET', url: `Patient/${patient.body.id}` } },
          { request: { method: 'GET', url: `Observation?subject=Patient/${patient.body.id}` } },
          { request: { method: 'GET', url: 'Patient/no-such-patient' } },
        ],
      },
    });
    expect(batch.status).toBe(200);
    const event = await until(
      async () => {
        const page = await fhirFetch(
          `${testHub.fhir}/AuditEvent?entity=Binary/${binary.body.id}&subtype=http://hl7.org/fhir/restful-interaction|batch`,
          as,
        );
        return page.body.entry?.[0]?.resource;
      },
      "the batch's AuditEvent",
      30_000,
      100,
    );
    expect(entityRefs(event, '4').sort()).toEqual(
      [
        `Binary/${binary.body.id}/_history/1`,
        `Patient/${patient.body.id}/_history/1`,
        `Observation/${observation.body.id}/_history/1`,
      ].sort(),
    );
    expect(entityRefs(event, '1')).toEqual([`Patient/${patient.body.id}`]);
    expect(JSON.stringify(event)).not.toContain('no-such-patient');
  });

  test('a rolled-back transaction leaves no AuditEvent; a committed one has one per write', async () => {
    const as = { headers: bearer(clientToken) };
    const id = `rollback-${randomUUID()}`;
    const failed = await fhirFetch(testHub.fhir, {
      ...as,
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: { resourceType: 'Patient', id }, request: { method: 'PUT', url: `Patient/${id}` } },
          {
            resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    const committedId = `committed-${randomUUID()}`;
    const committed = await fhirFetch(testHub.fhir, {
      ...as,
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: { resourceType: 'Patient', id: committedId },
            request: { method: 'PUT', url: `Patient/${committedId}` },
          },
        ],
      },
    });
    expect(committed.status).toBe(200);
    // The write's AuditEvent is committed with it: there at once, without waiting for a flush.
    const afterCommit = await testHub.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event WHERE content LIKE $1`,
      [`%Patient/${committedId}/_history/1%`],
    );
    expect(afterCommit.rows[0]?.n).toBe(1);
    // The refused transaction request itself is audited (outcome 4), but no entity of it exists.
    await until(
      async () => {
        const page = await fhirFetch(
          `${testHub.fhir}/AuditEvent?subtype=http://hl7.org/fhir/restful-interaction|transaction&outcome=4`,
          as,
        );
        return page.body.entry?.length ? true : undefined;
      },
      "the refused transaction's AuditEvent",
      30_000,
      100,
    );
    const stored = await testHub.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event WHERE content LIKE $1`,
      [`%${id}%`],
    );
    expect(stored.rows[0]?.n).toBe(0);
    expect((await fhirFetch(`${testHub.fhir}/Patient/${id}`, as)).status).toBe(404);
  });

  test("the hub's own writes are audited, with the hub as the agent: the ImagingStudy a STOW-RS request brings", async () => {
    const as = { headers: bearer(clientToken) };
    const stored = await stowFiles(testHub.baseUrl, [await fs.readFile(CT_SMALL)], as.headers);
    expect(stored.status).toBe(200);
    const studyUid = String(((await stored.json()) as Json)['00081190'].Value[0]).split('/studies/')[1];
    const study = await until(
      async () =>
        (await fhirFetch(`${testHub.fhir}/ImagingStudy?identifier=urn:dicom:uid|urn:oid:${studyUid}`, as)).body
          .entry?.[0]?.resource,
      'the ImagingStudy',
      30_000,
      100,
    );
    const event = await until(
      async () =>
        (
          await fhirFetch(
            `${testHub.fhir}/AuditEvent?entity=ImagingStudy/${study.id}&subtype=${encodeURIComponent('http://hl7.org/fhir/restful-interaction|create')}`,
            as,
          )
        ).body.entry?.[0]?.resource,
      "the ImagingStudy write's AuditEvent",
      30_000,
      100,
    );
    expect(event.outcome).toBe('0');
    const source = (event.agent as Json[]).find((agent) => agent.type.coding[0].code === '110153');
    expect(source).toMatchObject({
      who: { identifier: { system: 'urn:ietf:rfc:3986', value: testHub.baseUrl } },
      altId: 'imaging-study',
      requestor: true,
    });
    expect((event.agent as Json[]).some((agent) => agent.altId === SYSTEM_CLIENT)).toBe(false);
    const byHub = await fhirFetch(
      `${testHub.fhir}/AuditEvent?agent:identifier=${encodeURIComponent(`urn:ietf:rfc:3986|${testHub.baseUrl}`)}&entity=ImagingStudy/${study.id}`,
      as,
    );
    expect(byHub.body.entry?.map((entry: Json) => entry.resource.id)).toContain(event.id);
  });
});

describe('acknowledged reads survive SIGKILL', () => {
  test.each(['false', 'true'])(
    'reads answered by a hub killed before its flush are stored by the next start (AUDIT_JOURNAL_FSYNC=%s)',
    async (fsync) => {
      const database = await createTestDatabase();
      const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-audit-'));
      // A flush interval far beyond the test: whatever is stored came from the journal.
      const env = {
        DATABASE_URL: database.url,
        DATA_DIR: dataDir,
        AUDIT_FLUSH_MS: '600000',
        AUDIT_BATCH_SIZE: '100000',
        AUDIT_JOURNAL_FSYNC: fsync,
        HUB_ROLES: 'api',
      };
      const readsOf = async (db: pg.Client, id: string): Promise<number> =>
        (
          await db.query(
            `SELECT count(*)::int AS n FROM audit_event WHERE content LIKE $1 AND content LIKE '%restful-interaction","code":"read"%'`,
            [`%Patient/${id}"%`],
          )
        ).rows[0].n;
      const db = new pg.Client({ connectionString: database.url });
      let first;
      let second;
      try {
        first = await startHubProcess(env);
        const created = await fhirFetch(`${first.url}/fhir/Patient`, {
          method: 'POST',
          body: { resourceType: 'Patient', active: true },
        });
        expect(created.status).toBe(201);
        const reads = 7;
        for (let i = 0; i < reads; i++) {
          expect((await fhirFetch(`${first.url}/fhir/Patient/${created.body.id}`)).status).toBe(200);
        }
        await db.connect();
        expect(await readsOf(db, created.body.id)).toBe(0);
        first.child.kill('SIGKILL');
        await first.exited;
        second = await startHubProcess(env);
        expect(await readsOf(db, created.body.id)).toBe(reads);
        const search = await fhirFetch(
          `${second.url}/fhir/AuditEvent?entity=Patient/${created.body.id}&subtype=http://hl7.org/fhir/restful-interaction|read`,
        );
        expect(search.body.entry).toHaveLength(reads);
      } finally {
        await db.end().catch(() => undefined);
        first?.child.kill('SIGKILL');
        await second?.stop();
        await database.drop();
        await fs.rm(dataDir, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
