/**
 * DICOM access rules and audit (issue 3, "Access rules" and "Audit", applied to DICOM) against a real
 * hub with AUTH_REQUIRED=true. Four studies arrive over DIMSE (storescu): two with case A's accession
 * number, one with case B's, one matching no case; the real matching (workflow/imaging-match.ts) ties
 * them to their cases. People log in through the real authorization-code flow with `user/*.cruds`,
 * so what they are refused is refused by their role's access policy.
 *
 * Then a scripted DICOMweb and DIMSE session by people and peers of its own: each QIDO, WADO and
 * STOW request and each C-STORE and C-FIND association (accepted or refused) leaves exactly one
 * AuditEvent, with the right type and outcome, and no DICOM patient name or ID anywhere in it.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { ClientRegistry } from '../src/auth/clients.ts';
import { parseScopes } from '../src/auth/scopes.ts';
import { totpCode } from '../src/auth/totp.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import type { UserRole } from '../src/auth/users.ts';
import { stow as stowFiles } from './support/stow.ts';
import { readPart10, runDcmtk, storescuProfile } from './support/dicom/test-peer.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { matchImagingStudy } from '../src/workflow/imaging-match.ts';
import { Browser, logIn } from './support/login-flow.ts';
import { fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

import { jest } from '@jest/globals';
import { clientToken } from './support/client-token.ts';

jest.setTimeout(120_000);

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const APP = 'dicom-access-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const PASSWORD = 'a long enough password';
const SYSTEM_CLIENT = 'dicom-access-pacs';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const SUBTYPE = 'urn:second-opinion-hub:audit-subtype';
/** Every DICOM patient name and ID of the fixtures: none may appear in an AuditEvent. */
const SECRET = /Secret|PID-SECRET/i;

type Json = any;
type Who = 'physicianA' | 'physicianB' | 'patientA' | 'coordinator' | 'auditPhysician' | 'auditCoordinator';
const PEOPLE: Record<Who, { role: UserRole; fhirUser: string }> = {
  physicianA: { role: 'referring-physician', fhirUser: 'Practitioner/prac-a' },
  physicianB: { role: 'referring-physician', fhirUser: 'Practitioner/prac-b' },
  patientA: { role: 'patient', fhirUser: 'Patient/pat-a' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  // The audited session's own people (its events are told apart by their user ids).
  auditPhysician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-a' },
  auditCoordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
};

/** The studies: accession number, study date (newest first in QIDO order: x, b1, a1, a2), patient. */
const STUDIES = {
  x: { accession: 'ACC-X', date: '20200103', name: 'Secret^Carol', id: 'PID-SECRET-X' },
  b1: { accession: 'ACC-B', date: '20200102', name: 'Secret^Bob', id: 'PID-SECRET-B' },
  a1: { accession: 'ACC-A', date: '20200101', name: 'Secret^Alice', id: 'PID-SECRET-A' },
  a2: { accession: 'ACC-A', date: '20191231', name: 'Secret^Alice', id: 'PID-SECRET-A' },
  // Stored during the audited session: by the coordinator's STOW-RS and by a DIMSE peer.
  stow: { accession: 'ACC-S', date: '20200201', name: 'Secret^Stow', id: 'PID-SECRET-S' },
  dimse: { accession: 'ACC-D', date: '20200202', name: 'Secret^Dimse', id: 'PID-SECRET-D' },
} as const;
type StudyName = keyof typeof STUDIES;

interface Fixture {
  path: string;
  study: string;
  series: string;
  sop: string;
}

const FHIR_FIXTURES = [
  ...['prac-a', 'prac-b', 'prac-c'].map((id) => ({ resourceType: 'Practitioner', id })),
  { resourceType: 'Patient', id: 'pat-a', name: [{ family: 'CaseA' }] },
  { resourceType: 'Patient', id: 'pat-b', name: [{ family: 'CaseB' }] },
  ...(['a', 'b'] as const).map((c) => ({
    resourceType: 'ServiceRequest',
    id: `sr-${c}`,
    status: 'active',
    intent: 'order',
    identifier: [{ system: 'urn:test:accession', value: `ACC-${c.toUpperCase()}` }],
    subject: { reference: `Patient/pat-${c}` },
    requester: { reference: `Practitioner/prac-${c}` },
  })),
  // Each case's coordination Task, which the matching needs to record the study as a material.
  ...(['a', 'b'] as const).map((c) => ({
    resourceType: 'Task',
    id: `coord-${c}`,
    identifier: [{ system: 'urn:hub:case-resource', value: `sr-${c}/coordination` }],
    status: 'in-progress',
    intent: 'order',
    code: { coding: [{ system: 'urn:hub:task-code', code: 'coordination' }] },
    basedOn: [{ reference: `ServiceRequest/sr-${c}` }],
    focus: { reference: `ServiceRequest/sr-${c}` },
    for: { reference: `Patient/pat-${c}` },
  })),
];

describe('DICOM access by role, and its audit', () => {
  let th: TestHub;
  let workDir: string;
  let dicomweb: string;
  let systemToken: string;
  const tokens = {} as Record<Who, string>;
  const userIds = {} as Record<Who, string>;
  const fixtures = new Map<StudyName, Fixture>();
  const fixture = (name: StudyName): Fixture => fixtures.get(name)!;
  const imagingStudyIds = new Map<StudyName, string>();

  const get = (token: string | undefined, path: string, accept?: string) =>
    fetch(`${dicomweb}${path}`, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(accept ? { accept } : {}) },
    });
  const as = (who: Who, path: string, accept?: string) => get(tokens[who], path, accept);
  const studiesSeen = async (token: string, query = ''): Promise<string[]> => {
    const response = await get(token, `/studies${query}`, 'application/dicom+json');
    expect(response.status).toBe(200);
    return ((await response.json()) as Json[]).map((study) => study['0020000D'].Value[0]);
  };
  const nameOf = (uid: string): string => [...fixtures].find(([, file]) => file.study === uid)?.[0] ?? uid;
  const seen = async (who: Who, query = ''): Promise<string[]> => (await studiesSeen(tokens[who], query)).map(nameOf);
  const stow = async (token: string, name: StudyName) => {
    return stowFiles(th.baseUrl, [await readFile(fixture(name).path)], { authorization: `Bearer ${token}` });
  };
  const storescu = (callingAe: string, names: StudyName[]) =>
    Promise.all(names.map((name) => readPart10(fixture(name).path))).then(async (files) => {
      const profile = join(workDir, `${callingAe}.cfg`);
      await writeFile(profile, storescuProfile(files, 'Load'));
      return runDcmtk(
        'storescu',
        [
          '-nh',
          '-xf',
          profile,
          'Load',
          '-aet',
          callingAe,
          '-aec',
          'HUB',
          '127.0.0.1',
          String(th.hub.dimsePort),
          ...names.map((name) => fixture(name).path),
        ],
        30_000,
      );
    });
  const findscu = (callingAe: string, keys: string[]) =>
    runDcmtk(
      'findscu',
      [
        '-v',
        '-S',
        '-aet',
        callingAe,
        '-aec',
        'HUB',
        '127.0.0.1',
        String(th.hub.dimsePort),
        ...keys.flatMap((key) => ['-k', key]),
      ],
      30_000,
    );
  const instancePath = (name: StudyName): string =>
    `/studies/${fixture(name).study}/series/${fixture(name).series}/instances/${fixture(name).sop}`;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dicom-access-'));
    th = await startTestHub({
      db: 'postgres',
      env: {
        AUTH_REQUIRED: 'true',
        DIMSE_AE_TITLE: 'HUB',
        DIMSE_ALLOWED_CALLING_AE_TITLES: 'MODALITY,AUDITSCU,AUDITFIND',
      },
    });
    dicomweb = `${th.baseUrl}/dicomweb`;

    const clients = new ClientRegistry(th.hub.db);
    await clients.addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('openid fhirUser user/*.cruds'),
    });
    const users = new UserStore(th.hub.db);
    for (const [who, person] of Object.entries(PEOPLE) as [Who, (typeof PEOPLE)[Who]][]) {
      const email = `${who.toLowerCase()}@example.org`;
      const { user, totpSecret } = await users.add({
        email,
        role: person.role,
        fhirUser: person.fhirUser,
        password: PASSWORD,
      });
      userIds[who] = user.id;
      const { token } = await logIn(
        new Browser(),
        th.baseUrl,
        { clientId: APP, redirectUri: REDIRECT, scope: 'openid fhirUser user/*.cruds' },
        {
          email,
          password: PASSWORD,
          totp: totpSecret ? totpCode(totpSecret, Date.now()) : undefined,
        },
      );
      tokens[who] = token.access_token as string;
    }
    // A PACS: a system client with ImagingStudy scopes only.
    const key = await generateKeyPair('ES384', { extractable: true });
    await clients.add({
      id: SYSTEM_CLIENT,
      jwks: { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1' }] },
      scopes: parseScopes('system/ImagingStudy.crs'),
    });
    const tokenUrl = `${th.baseUrl}/oauth2/token`;
    const now = Math.floor(Date.now() / 1000);
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
    const issued = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: 'system/ImagingStudy.crs',
      }),
    });
    expect(issued.status).toBe(200);
    systemToken = ((await issued.json()) as Json).access_token;

    // Fixed ids: loaded by a system client (people cannot choose ids, so update-as-create is the EHR's).
    const loaded = await putTransaction(
      th.fhir,
      await clientToken(th, 'fixture-loader', 'system/*.cruds'),
      FHIR_FIXTURES,
    );
    expect(loaded.status).toBe(200);

    // Each study a copy of CT_small with fresh UIDs, its own patient, accession number and date.
    for (const [name, study] of Object.entries(STUDIES) as [StudyName, (typeof STUDIES)[StudyName]][]) {
      const path = join(workDir, `${name}.dcm`);
      await copyFile(join(TEST_FILES, 'CT_small.dcm'), path);
      const set = [
        `(0010,0010)=${study.name}`,
        `(0010,0020)=${study.id}`,
        `(0008,0050)=${study.accession}`,
        `(0008,0020)=${study.date}`,
      ];
      const modified = await runDcmtk('dcmodify', [
        '-nb',
        '-gst',
        '-gse',
        '-gin',
        ...set.flatMap((value) => ['-i', value]),
        path,
      ]);
      expect({ code: modified.code, output: modified.output }).toEqual({ code: 0, output: '' });
      const dump = await runDcmtk('dcmdump', ['-s', '+P', '0020,000d', '+P', '0020,000e', '+P', '0008,0018', path]);
      const printed = [...dump.output.matchAll(/\((\w{4},\w{4})\) UI \[([\d.]+)\]/g)];
      const uid = (tag: string) => printed.find((match) => match[1]!.toLowerCase() === tag)![2]!;
      fixtures.set(name, { path, study: uid('0020,000d'), series: uid('0020,000e'), sop: uid('0008,0018') });
    }
    const stored = await storescu('MODALITY', ['x', 'b1', 'a1', 'a2']);
    expect(stored.code).toBe(0);

    // The release waited for the ImagingStudies; the matching job's own step ties each to its case.
    const repository = {
      db: th.hub.db,
      blobs: new FileBlobStore(join(th.config.dataDir, 'blobs')),
      baseUrl: th.baseUrl,
      binaryMaxBytes: th.config.binaryMaxBytes,
    };
    const outcomes: Record<string, string> = {};
    for (const name of ['x', 'b1', 'a1', 'a2'] as const) {
      const row = await th.hub.db.query<{ imaging_study_id: string }>(
        'SELECT imaging_study_id FROM dicom_study WHERE study_instance_uid = $1',
        [fixture(name).study],
      );
      const id = row.rows[0]!.imaging_study_id;
      imagingStudyIds.set(name, id);
      outcomes[name] = (
        await th.hub.db.transaction((tx) => matchImagingStudy(tx, repository, id, async () => 'not-quoted', new Date()))
      ).outcome;
    }
    expect(outcomes).toEqual({ x: 'unmatched', b1: 'matched', a1: 'matched', a2: 'matched' });
  }, 120_000);

  afterAll(async () => {
    await th?.stop();
    if (workDir) {
      await rm(workDir, { recursive: true, force: true });
    }
  });

  describe('QIDO-RS', () => {
    test('each person sees the studies of their cases; coordinators and system clients every study', async () => {
      expect(await seen('physicianA')).toEqual(['a1', 'a2']);
      expect(await seen('physicianB')).toEqual(['b1']);
      expect(await seen('patientA')).toEqual(['a1', 'a2']);
      expect(await seen('coordinator')).toEqual(['x', 'b1', 'a1', 'a2']);
      expect((await studiesSeen(systemToken)).map(nameOf)).toEqual(['x', 'b1', 'a1', 'a2']);
    });

    test('limit and offset page through what the person may see', async () => {
      expect(await seen('physicianA', '?limit=1')).toEqual(['a1']);
      expect(await seen('physicianA', '?limit=1&offset=1')).toEqual(['a2']);
      expect(await seen('physicianA', '?limit=1&offset=2')).toEqual([]);
      expect(await seen('physicianB', '?limit=1&offset=0')).toEqual(['b1']);
      expect(await seen('physicianB', '?offset=1')).toEqual([]);
      expect(await seen('coordinator', '?limit=2&offset=1')).toEqual(['b1', 'a1']);
    });

    test('another case’s study by its UID, its series and its instances: no match', async () => {
      expect(await seen('physicianA', `?StudyInstanceUID=${fixture('b1').study}`)).toEqual([]);
      expect(await seen('physicianB', `?AccessionNumber=ACC-A`)).toEqual([]);
      for (const level of ['series', 'instances']) {
        const other = await as('physicianA', `/studies/${fixture('b1').study}/${level}`, 'application/dicom+json');
        expect([level, other.status, await other.json()]).toEqual([level, 200, []]);
        const own = await as('physicianA', `/studies/${fixture('a1').study}/${level}`, 'application/dicom+json');
        expect(((await own.json()) as Json[]).length).toBe(1);
      }
    });
  });

  test('All Series and All Instances list only the series and instances of studies the person may see', async () => {
    const studiesIn = async (who: Who | 'system', level: 'series' | 'instances', query = ''): Promise<string[]> => {
      const response = await get(
        who === 'system' ? systemToken : tokens[who],
        `/${level}${query}`,
        'application/dicom+json',
      );
      expect(response.status).toBe(200);
      const found = ((await response.json()) as Json[]).map((item) => nameOf(item['0020000D'].Value[0]));
      return [...new Set(found)].sort();
    };
    for (const level of ['series', 'instances'] as const) {
      expect([level, await studiesIn('physicianA', level)]).toEqual([level, ['a1', 'a2']]);
      expect([level, await studiesIn('physicianB', level)]).toEqual([level, ['b1']]);
      expect([level, await studiesIn('patientA', level)]).toEqual([level, ['a1', 'a2']]);
      expect([level, await studiesIn('coordinator', level)]).toEqual([level, ['a1', 'a2', 'b1', 'x']]);
      expect([level, await studiesIn('system', level)]).toEqual([level, ['a1', 'a2', 'b1', 'x']]);
      // Naming another case's study, its series or its instance finds nothing, as if it were not there.
      const b1 = fixture('b1');
      for (const query of [
        `?StudyInstanceUID=${b1.study}`,
        `?SeriesInstanceUID=${b1.series}`,
        '?AccessionNumber=ACC-B*',
      ]) {
        expect([level, query, await studiesIn('physicianA', level, query)]).toEqual([level, query, []]);
      }
      expect(await studiesIn('physicianA', level, '?limit=1&offset=1')).toHaveLength(1);
    }
  });

  describe('WADO-RS', () => {
    const resources = (name: StudyName): [string, string | undefined][] => [
      [instancePath(name), 'multipart/related; type="application/dicom"'],
      [`/studies/${fixture(name).study}`, undefined],
      [`${instancePath(name)}/metadata`, 'application/dicom+json'],
      [`/studies/${fixture(name).study}/metadata`, 'application/dicom+json'],
      [`${instancePath(name)}/frames/1`, 'multipart/related; type="application/octet-stream"'],
      [`${instancePath(name)}/rendered`, 'image/jpeg'],
      [`/studies/${fixture(name).study}/thumbnail`, 'image/jpeg'],
      [`${instancePath(name)}/bulkdata/7FE00010`, undefined],
    ];
    const statuses = async (who: Who, name: StudyName): Promise<number[]> => {
      const answers: number[] = [];
      for (const [path, accept] of resources(name)) {
        answers.push((await as(who, path, accept)).status);
      }
      return answers;
    };
    const OK = [200, 200, 200, 200, 200, 200, 200, 200];
    const HIDDEN = [404, 404, 404, 404, 404, 404, 404, 404];

    test('another case’s study answers 404 for every resource, exactly like a missing one', async () => {
      expect(await statuses('physicianA', 'b1')).toEqual(HIDDEN);
      expect(await statuses('physicianB', 'a1')).toEqual(HIDDEN);
      expect(await statuses('patientA', 'b1')).toEqual(HIDDEN);
      const hidden = await as('physicianA', `${instancePath('b1')}/metadata`, 'application/dicom+json');
      const missing = await as(
        'physicianA',
        `/studies/1.2.3.4/series/1.2.3.5/instances/1.2.3.6/metadata`,
        'application/dicom+json',
      );
      expect([hidden.status, await hidden.text()]).toEqual([missing.status, await missing.text()]);
    });

    test('their own case’s study: every resource', async () => {
      expect(await statuses('physicianA', 'a1')).toEqual(OK);
      expect(await statuses('patientA', 'a2')).toEqual(OK);
      expect(await statuses('physicianB', 'b1')).toEqual(OK);
    });

    test('a study matched to no case: coordinators only', async () => {
      expect(await statuses('coordinator', 'x')).toEqual(OK);
      expect(await statuses('physicianA', 'x')).toEqual(HIDDEN);
      expect(await statuses('patientA', 'x')).toEqual(HIDDEN);
      const pacs = await get(systemToken, `${instancePath('x')}/metadata`, 'application/dicom+json');
      expect(pacs.status).toBe(200);
    });
  });

  describe('STOW-RS', () => {
    test('refused with 403 to roles whose policy has no ImagingStudy create; nothing is stored', async () => {
      for (const who of ['physicianA', 'patientA'] as const) {
        const answer = await stow(tokens[who], 'x');
        expect([who, answer.status]).toEqual([who, 403]);
        expect((await answer.json()) as Json).toMatchObject({
          resourceType: 'OperationOutcome',
          issue: [{ code: 'forbidden' }],
        });
      }
    });
  });

  test('anonymous requests are refused (AUTH_REQUIRED=true)', async () => {
    expect((await get(undefined, '/studies')).status).toBe(401);
  });

  describe('audit', () => {
    const since = (): string => new Date(Date.now() - 1000).toISOString();
    let started: string;

    async function auditEvents(): Promise<Json[]> {
      const events: Json[] = [];
      let url: string | undefined = `${th.fhir}/AuditEvent?date=ge${encodeURIComponent(started)}&_count=200`;
      while (url) {
        const page = await fhirFetch(url, { headers: { authorization: `Bearer ${tokens.coordinator}` } });
        expect(page.status).toBe(200);
        events.push(...(page.body.entry ?? []).map((entry: Json) => entry.resource));
        url = page.body.link?.find((link: Json) => link.relation === 'next')?.url;
      }
      return events;
    }
    const isDicom = (event: Json): boolean =>
      event.type?.system === DCM && ['110112', '110103', '110104'].includes(event.type.code);
    const summary = (event: Json): string =>
      `${event.type.code}/${event.subtype.find((c: Json) => c.system === SUBTYPE).code}/${event.outcome}`;
    const byUser = (events: Json[], who: Who): Json[] =>
      events.filter((event) => event.agent.some((agent: Json) => agent.altId === userIds[who]));
    const byAe = (events: Json[], ae: string): Json[] =>
      events.filter((event) => event.agent.some((agent: Json) => agent.requestor && agent.altId === `AETITLES=${ae}`));
    const decodedQuery = (event: Json): string | undefined => {
      const query = event.entity?.find((entity: Json) => entity.role?.code === '24')?.query;
      return query === undefined ? undefined : Buffer.from(query, 'base64').toString('utf8');
    };
    const references = (event: Json): string[] =>
      (event.entity ?? [])
        .map((entity: Json) => entity.what?.reference)
        .filter(Boolean)
        .sort();
    const studyUids = (event: Json): string[] =>
      (event.entity ?? [])
        .filter((entity: Json) => entity.role?.code === '3')
        .map((entity: Json) => entity.what.identifier.value)
        .sort();

    test('a scripted DICOMweb and DIMSE session: one event per request and association, right outcome, no DICOM patient values', async () => {
      started = since();
      // The physician: two QIDO (one by name), a WADO of theirs, a WADO of the other case, a refused STOW.
      expect((await as('auditPhysician', '/studies', 'application/dicom+json')).status).toBe(200);
      expect(
        (
          await as(
            'auditPhysician',
            '/studies?PatientName=Secret*&limit=5&StudyInstanceUID=1.2.3.77',
            'application/dicom+json',
          )
        ).status,
      ).toBe(200);
      expect((await as('auditPhysician', `${instancePath('a1')}/metadata`, 'application/dicom+json')).status).toBe(200);
      expect((await as('auditPhysician', instancePath('b1'))).status).toBe(404);
      expect((await stow(tokens.auditPhysician, 'stow')).status).toBe(403);
      // The coordinator: a STOW of a new study, frames of the unmatched study.
      expect((await stow(tokens.auditCoordinator, 'stow')).status).toBe(200);
      expect((await as('auditCoordinator', `${instancePath('x')}/frames/1`)).status).toBe(200);
      // Nobody: a QIDO without a token.
      expect((await get(undefined, '/studies?StudyInstanceUID=1.2.3.401')).status).toBe(401);
      // DIMSE: a C-STORE association, a C-FIND association, and refused ones of each.
      expect((await storescu('AUDITSCU', ['dimse'])).code).toBe(0);
      const find = await findscu('AUDITFIND', ['QueryRetrieveLevel=STUDY', 'PatientName=Secret*', 'StudyInstanceUID']);
      expect(find.output).toMatch(/Received Final Find Response \(Success\)/);
      expect((await storescu('INTRUDER', ['dimse'])).code).not.toBe(0);
      expect((await findscu('INTRUDER2', ['QueryRetrieveLevel=STUDY', 'PatientName=Secret*'])).output).not.toMatch(
        /Final Find Response/,
      );

      const expected = 5 + 2 + 1 + 4;
      const session = (events: Json[]) => [
        ...byUser(events, 'auditPhysician'),
        ...byUser(events, 'auditCoordinator'),
        ...events.filter((event) => decodedQuery(event)?.includes('1.2.3.401')),
        ...['AUDITSCU', 'AUDITFIND', 'INTRUDER', 'INTRUDER2'].flatMap((ae) => byAe(events, ae)),
      ];
      await until(
        async () => (session((await auditEvents()).filter(isDicom)).length >= expected ? true : undefined),
        `${expected} DICOM AuditEvents`,
        30_000,
        100,
      );
      // Anything recorded late shows up by the time a later request's event does: the audit log stores
      // its events in the order they were recorded. The marker is no part of the session.
      expect((await get(undefined, '/studies?StudyInstanceUID=1.2.3.402')).status).toBe(401);
      await until(
        async () => (await auditEvents()).some((event) => decodedQuery(event)?.includes('1.2.3.402')),
        'the marker AuditEvent',
        30_000,
        100,
      );
      const events = (await auditEvents()).filter(isDicom);

      const physician = byUser(events, 'auditPhysician');
      expect(physician.map(summary).sort()).toEqual([
        '110103/wado-rs/0',
        '110103/wado-rs/4',
        '110104/stow-rs/4',
        '110112/qido-rs/0',
        '110112/qido-rs/0',
      ]);
      const queries = physician.filter((event) => event.type.code === '110112');
      expect(queries.map(decodedQuery).sort()).toEqual(['', 'PatientName=redacted&limit=5&StudyInstanceUID=1.2.3.77']);
      expect(references(queries.find((event) => decodedQuery(event) === ''))).toEqual(['Patient/pat-a']);
      const read = physician.find((event) => summary(event) === '110103/wado-rs/0')!;
      expect(references(read)).toEqual([`ImagingStudy/${imagingStudyIds.get('a1')}`, 'Patient/pat-a']);
      expect(studyUids(read)).toEqual([`urn:oid:${fixture('a1').study}`]);
      expect(read.action).toBe('R');
      expect(read.agent.find((agent: Json) => agent.requestor).who.reference).toBe('Practitioner/prac-a');
      const refusedRead = physician.find((event) => summary(event) === '110103/wado-rs/4')!;
      expect([references(refusedRead), studyUids(refusedRead)]).toEqual([[], [`urn:oid:${fixture('b1').study}`]]);

      const coordinator = byUser(events, 'auditCoordinator');
      expect(coordinator.map(summary).sort()).toEqual(['110103/wado-rs/0', '110104/stow-rs/0']);
      const stored = coordinator.find((event) => event.type.code === '110104')!;
      expect([stored.action, studyUids(stored)]).toEqual(['C', [`urn:oid:${fixture('stow').study}`]]);

      const anonymous = events.filter((event) => decodedQuery(event)?.includes('1.2.3.401'));
      expect(anonymous.map(summary)).toEqual(['110112/qido-rs/4']);

      const cStore = byAe(events, 'AUDITSCU');
      expect(cStore.map(summary)).toEqual(['110104/c-store/0']);
      expect(studyUids(cStore[0])).toEqual([`urn:oid:${fixture('dimse').study}`]);
      const source = cStore[0].agent.find((agent: Json) => agent.requestor);
      expect(source).toMatchObject({
        type: { coding: [{ code: '110153' }] },
        who: { identifier: { value: 'AUDITSCU' } },
        network: { type: '2' },
      });
      expect(cStore[0].agent.find((agent: Json) => !agent.requestor)).toMatchObject({
        type: { coding: [{ code: '110152' }] },
        altId: 'AETITLES=HUB',
      });
      const cFind = byAe(events, 'AUDITFIND');
      expect(cFind.map(summary)).toEqual(['110112/c-find/0']);
      expect(decodedQuery(cFind[0])).toBe('QueryRetrieveLevel=STUDY&PatientName=redacted&StudyInstanceUID=');
      // Every study matched to a case has a Patient: A's two, B's one.
      expect(references(cFind[0])).toEqual(['Patient/pat-a', 'Patient/pat-b']);
      expect(byAe(events, 'INTRUDER').map(summary)).toEqual(['110104/c-store/4']);
      expect(byAe(events, 'INTRUDER2').map(summary)).toEqual(['110112/c-find/4']);

      expect(session(events)).toHaveLength(expected);
      for (const event of session(events)) {
        expect([summary(event), SECRET.test(JSON.stringify(event)), SECRET.test(decodedQuery(event) ?? '')]).toEqual([
          summary(event),
          false,
          false,
        ]);
      }
    });

    test("a STOW-RS into a study matched to a case names the study's ImagingStudy and Patient", async () => {
      started = since();
      // A second instance of case A's study: a1 with a new SOP Instance UID.
      const second = join(workDir, 'a1-second.dcm');
      await copyFile(fixture('a1').path, second);
      expect((await runDcmtk('dcmodify', ['-nb', '-gin', second])).code).toBe(0);
      const answer = await stowFiles(th.baseUrl, [await readFile(second)], {
        authorization: `Bearer ${tokens.auditCoordinator}`,
      });
      expect(answer.status).toBe(200);
      const stored = await until(
        async () =>
          byUser((await auditEvents()).filter(isDicom), 'auditCoordinator').find(
            (event) =>
              summary(event) === '110104/stow-rs/0' && studyUids(event).includes(`urn:oid:${fixture('a1').study}`),
          ),
        'the STOW-RS AuditEvent',
        30_000,
        100,
      );
      expect(references(stored)).toEqual([`ImagingStudy/${imagingStudyIds.get('a1')}`, 'Patient/pat-a']);
      expect(studyUids(stored)).toEqual([`urn:oid:${fixture('a1').study}`]);
    });
  });
});
