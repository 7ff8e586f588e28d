/**
 * The opinion's release, from an attacker's side (docs/access.md, "Release"): the patient sees a
 * case's reports only once the case is released, whatever a report is coded, and a reviewer cannot
 * put a report before the physician without its approval.
 *
 * Each case is loaded by a system client as the workflow leaves it once the opinion is approved
 * (`report-released`: the final report, its letter, the letter's DocumentReference and its PDF). No
 * worker runs: a case is released to its patient only by a coordinator's move to `report-accessed`,
 * which the tests make last.
 */
import type { UserRole } from '../src/auth/users.ts';
import { signInWithSystem } from './support/login-flow.ts';
import { fhirAs, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

import { jest } from '@jest/globals';

jest.setTimeout(120_000);

const APP = 'release-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const CASE = 'urn:hub:case-resource';
const LOINC = 'http://loinc.org';
const TASK_CODE = 'urn:hub:task-code';
const CASE_STATE = 'urn:hub:case-state';
const LETTER_LINK = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
const PATIENT = 'Patient/pat-1';

type Person = 'physician' | 'colleague' | 'patient' | 'specialist' | 'radiologist' | 'pathologist' | 'coordinator';
type Who = Person | 'system';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  // Works for the clinic that refers some cases (a PractitionerRole the staff wrote).
  colleague: { role: 'referring-physician', fhirUser: 'Practitioner/prac-col' },
  patient: { role: 'patient', fhirUser: PATIENT },
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  // Owns the radiology pre-review of case `coded`.
  radiologist: { role: 'radiologist', fhirUser: 'Practitioner/prac-r' },
  // A reviewer of case `coded` by a coordinator's case-access Task, with no pre-review of theirs.
  pathologist: { role: 'pathologist', fhirUser: 'Practitioner/prac-p' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
};

const reference = (to: string) => ({ reference: to });
const pdf = (text: string): string => Buffer.from(`%PDF-1.4 ${text}`).toString('base64');
const consultation = { coding: [{ system: LOINC, code: '11488-4' }] };
const taskCode = (code: string) => ({ coding: [{ system: TASK_CODE, code }] });
/** What the opinion of case `c` says, so that any answer carrying it can be found. */
const secret = (c: string): string => `opinion-text-of-${c}`;

/** A case whose opinion was approved: released to the physician, not yet to the patient. */
function releasedCase(c: string, requester: string): Record<string, unknown>[] {
  const sr = `ServiceRequest/sr-${c}`;
  return [
    {
      resourceType: 'ServiceRequest',
      id: `sr-${c}`,
      status: 'completed',
      intent: 'order',
      subject: reference(PATIENT),
      requester: reference(requester),
    },
    {
      resourceType: 'Task',
      id: `coord-${c}`,
      identifier: [{ system: CASE, value: `sr-${c}/coordination` }],
      status: 'completed',
      intent: 'order',
      code: taskCode('coordination'),
      businessStatus: { coding: [{ system: CASE_STATE, code: 'report-released' }] },
      basedOn: [reference(sr)],
      focus: reference(sr),
      for: reference(PATIENT),
    },
    {
      resourceType: 'Task',
      id: `spec-${c}`,
      identifier: [{ system: CASE, value: `sr-${c}/specialist-opinion/prac-s` }],
      status: 'completed',
      intent: 'order',
      code: taskCode('specialist-opinion'),
      basedOn: [reference(sr)],
      owner: reference('Practitioner/prac-s'),
    },
    // The coordinators' approval, which names the report as its focus.
    {
      resourceType: 'Task',
      id: `approve-${c}`,
      identifier: [{ system: CASE, value: `sr-${c}/approve` }],
      status: 'completed',
      intent: 'order',
      code: taskCode('approve'),
      basedOn: [reference(sr)],
      focus: reference(`DiagnosticReport/rep-${c}`),
    },
    { resourceType: 'Binary', id: `pdf-${c}`, contentType: 'application/pdf', data: pdf(secret(c)) },
    {
      resourceType: 'Composition',
      id: `letter-${c}`,
      status: 'final',
      type: consultation,
      subject: reference(PATIENT),
      date: '2026-11-20',
      author: [reference('Practitioner/prac-s')],
      title: 'Consultation',
      section: [
        {
          title: 'Discussion',
          text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${secret(c)}</div>` },
          entry: [reference(sr)],
        },
      ],
    },
    {
      resourceType: 'DiagnosticReport',
      id: `rep-${c}`,
      status: 'final',
      code: consultation,
      subject: reference(PATIENT),
      basedOn: [reference(sr)],
      resultsInterpreter: [reference('Practitioner/prac-s')],
      extension: [{ url: LETTER_LINK, valueReference: reference(`Composition/letter-${c}`) }],
      conclusion: secret(c),
      presentedForm: [{ contentType: 'application/pdf', url: `Binary/pdf-${c}` }],
    },
    {
      resourceType: 'DocumentReference',
      id: `doc-${c}`,
      status: 'current',
      docStatus: 'final',
      type: consultation,
      subject: reference(PATIENT),
      context: { related: [reference(sr)] },
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/pdf-${c}` } }],
    },
  ];
}

const FIXTURES: Record<string, unknown>[] = [
  ...['prac-phys', 'prac-col', 'prac-s', 'prac-r', 'prac-p', 'prac-c'].map((id) => ({
    resourceType: 'Practitioner',
    id,
  })),
  { resourceType: 'Organization', id: 'org-clinic', name: 'The referring clinic' },
  {
    resourceType: 'PractitionerRole',
    id: 'role-col',
    practitioner: reference('Practitioner/prac-col'),
    organization: reference('Organization/org-clinic'),
  },
  { resourceType: 'Patient', id: 'pat-1', name: [{ family: 'Patient' }] },
  ...releasedCase('coded', 'Practitioner/prac-phys'),
  // Referred by the clinic: its physicians are the case's.
  ...releasedCase('clinic', 'Organization/org-clinic'),
  ...releasedCase('search', 'Practitioner/prac-phys'),
  ...releasedCase('include', 'Practitioner/prac-phys'),
  ...releasedCase('others', 'Practitioner/prac-phys'),
  ...releasedCase('paths', 'Practitioner/prac-phys'),
  // Case `paths` has more reports than its opinion (a pre-review, an outside one), and the patient's
  // own material, which is theirs all along.
  { resourceType: 'Binary', id: 'extpdf-paths', contentType: 'application/pdf', data: pdf(secret('paths')) },
  {
    resourceType: 'DiagnosticReport',
    id: 'ext-paths',
    status: 'final',
    code: { text: 'Outside pathology report' },
    subject: reference(PATIENT),
    basedOn: [reference('ServiceRequest/sr-paths')],
    conclusion: secret('paths'),
    presentedForm: [{ contentType: 'application/pdf', url: 'Binary/extpdf-paths' }],
  },
  {
    resourceType: 'DiagnosticReport',
    id: 'pre-paths',
    status: 'final',
    code: { text: 'Radiology pre-review' },
    subject: reference(PATIENT),
    basedOn: [reference('ServiceRequest/sr-paths')],
    conclusion: secret('paths'),
  },
  { resourceType: 'Binary', id: 'matpdf-paths', contentType: 'application/pdf', data: pdf('records') },
  {
    resourceType: 'DocumentReference',
    id: 'mat-paths',
    status: 'current',
    subject: reference(PATIENT),
    context: { related: [reference('ServiceRequest/sr-paths')] },
    content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/matpdf-paths' } }],
  },
  ...releasedCase('version', 'Practitioner/prac-phys'),
  ...releasedCase('history', 'Practitioner/prac-phys'),
  {
    resourceType: 'Task',
    id: 'rad-coded',
    identifier: [{ system: CASE, value: 'sr-coded/pre-review-radiology' }],
    status: 'in-progress',
    intent: 'order',
    code: taskCode('pre-review-radiology'),
    basedOn: [reference('ServiceRequest/sr-coded')],
    owner: reference('Practitioner/prac-r'),
  },
  {
    resourceType: 'Task',
    id: 'access-coded',
    status: 'requested',
    intent: 'order',
    code: taskCode('case-access'),
    basedOn: [reference('ServiceRequest/sr-coded')],
    owner: reference('Practitioner/prac-p'),
    input: [{ type: { coding: [{ system: 'urn:hub:case-access-role', code: 'role' }] }, valueCode: 'reviewer' }],
  },
];

describe('the opinion’s release: reports of any code, every read path', () => {
  let testHub: TestHub;
  const tokens = {} as Record<Who, string>;
  const as = fhirAs(() => testHub, tokens);
  const raw = (who: Who, path: string) =>
    fetch(`${testHub.fhir}/${path}`, {
      headers: { authorization: `Bearer ${tokens[who]}`, accept: 'application/pdf' },
    });
  const keysOf = (bundle: any): string[] =>
    (bundle?.entry ?? [])
      .filter((e: any) => e.resource)
      .map((e: any) => `${e.resource.resourceType}/${e.resource.id}`)
      .sort();
  const statuses = async (who: Who, paths: string[]): Promise<[string, number][]> =>
    Promise.all(paths.map(async (path) => [path, (await as(who, path)).status] as [string, number]));
  /** The physicians' first readings recorded (report_read), with the events they queued for the case. */
  const readings = async (c: string): Promise<{ reader: string; events: number }[]> =>
    (
      await testHub.hub.db.query<{ reader: string; events: number }>(
        `SELECT r.reader, (SELECT count(*)::int FROM outbox o WHERE o.name = 'report-read'
           AND o.payload ->> 'serviceRequestId' = r.case_id) AS events
         FROM report_read r WHERE r.case_id = $1`,
        [`sr-${c}`],
      )
    ).rows;
  /** A coordinator records that the physician had the report (the staff's release). */
  const release = async (c: string): Promise<void> => {
    const current = (await as('coordinator', `Task/coord-${c}`)).body;
    const moved = await as('coordinator', `Task/coord-${c}`, {
      method: 'PUT',
      body: {
        ...current,
        meta: undefined,
        businessStatus: { coding: [{ system: CASE_STATE, code: 'report-accessed' }] },
        statusReason: { text: 'Read to the physician by phone.' },
      },
    });
    expect(moved.status).toBe(200);
  };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    Object.assign(
      tokens,
      await signInWithSystem(testHub, PEOPLE, { clientId: APP, redirectUri: REDIRECT }, 'release-loader'),
    );
    // In transactions of at most 50 updates (the router's limit).
    for (let start = 0; start < FIXTURES.length; start += 50) {
      const loaded = await putTransaction(testHub.fhir, tokens.system, FIXTURES.slice(start, start + 50));
      expect(loaded.status).toBe(200);
    }
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  describe('a report coded otherwise is still a report', () => {
    const report = (status: string, code: Record<string, unknown>): Record<string, unknown> => ({
      resourceType: 'DiagnosticReport',
      status,
      code,
      subject: reference(PATIENT),
      basedOn: [reference('ServiceRequest/sr-coded')],
      conclusion: secret('coded'),
    });
    const letter = (status: string): Record<string, unknown> => ({
      resourceType: 'Composition',
      status,
      type: { coding: [{ system: LOINC, code: '34117-2' }] },
      subject: reference(PATIENT),
      date: '2026-11-20',
      author: [reference('Practitioner/prac-s')],
      title: 'Notes',
      section: [{ title: 'Notes', entry: [reference('ServiceRequest/sr-coded')] }],
    });
    const created = {} as Record<
      'DiagnosticReport' | 'Composition' | 'preReview' | 'outside' | 'filed' | 'message',
      string
    >;

    test('a reviewer cannot write a final report under another code (or none): 403, a draft is theirs alone', async () => {
      for (const [who, body] of [
        ['specialist', report('final', { text: 'Second opinion' })],
        ['specialist', report('final', { coding: [{ system: LOINC, code: '60591-5' }] })],
        ['specialist', report('amended', { text: 'Second opinion' })],
        ['specialist', letter('final')],
        // A "pre-review" by someone who does not own the case's pre-review of their kind.
        ['specialist', report('final', { text: 'Radiology pre-review' })],
        ['pathologist', report('final', { text: 'Pathology pre-review' })],
      ] as const) {
        const written = await as(who, body.resourceType as string, { method: 'POST', body });
        expect([who, body.status, written.status]).toEqual([who, body.status, 403]);
        expect(written.body.issue[0].expression).toEqual([`${String(body.resourceType)}.status`]);
      }
      // Written as a draft it is accepted, and seen by its author and the staff only.
      for (const body of [report('preliminary', { text: 'Second opinion' }), letter('preliminary')]) {
        const draft = await as('specialist', body.resourceType as string, { method: 'POST', body });
        expect(draft.status).toBe(201);
        const path = `${String(body.resourceType)}/${String(draft.body.id)}`;
        created[body.resourceType as 'DiagnosticReport' | 'Composition'] = path;
        for (const [who, status] of [
          ['specialist', 200],
          ['coordinator', 200],
          ['physician', 404],
          ['patient', 404],
          ['radiologist', 404],
        ] as const) {
          expect([who, path, (await as(who, path)).status]).toEqual([who, path, status]);
          expect([who, (await as(who, `${path}/_history/1`)).status]).toEqual([who, status]);
        }
        const listed = await as(
          'physician',
          `${String(body.resourceType)}?${body.resourceType === 'Composition' ? 'entry' : 'based-on'}=ServiceRequest/sr-coded`,
        );
        expect(keysOf(listed.body)).not.toContain(path);
      }
    });

    test('the pre-review report is final from its radiologist: the case’s reviewers and physician read it, the patient not before release', async () => {
      const preReview = await as('radiologist', 'DiagnosticReport', {
        method: 'POST',
        body: { ...report('final', { text: 'Radiology pre-review' }), conclusion: 'Adequate for review.' },
      });
      expect(preReview.status).toBe(201);
      const path = `DiagnosticReport/${String(preReview.body.id)}`;
      created.preReview = path;
      expect(await statuses('specialist', [path])).toEqual([[path, 200]]);
      expect(await statuses('physician', [path])).toEqual([[path, 200]]);
      expect(await statuses('patient', [path])).toEqual([[path, 404]]);
      // But not a Composition, even from the radiologist.
      expect((await as('radiologist', 'Composition', { method: 'POST', body: letter('final') })).status).toBe(403);
    });

    test('the patient sees no report of any code before release: an EHR’s, a reviewer’s document and what it attaches', async () => {
      // An outside report the EHR sends as material: the physician's at once, the patient's with the opinion.
      const outside = await as('system', 'DiagnosticReport', {
        method: 'POST',
        body: { ...report('final', { text: 'Outside pathology report' }), conclusion: 'Hamartoma.' },
      });
      expect(outside.status).toBe(201);
      created.outside = `DiagnosticReport/${String(outside.body.id)}`;
      // The specialist files the approved PDF under a document of their own, coded otherwise.
      const filed = await as('specialist', 'DocumentReference', {
        method: 'POST',
        body: {
          resourceType: 'DocumentReference',
          status: 'current',
          type: { text: 'Summary for the patient' },
          subject: reference(PATIENT),
          context: { related: [reference('ServiceRequest/sr-coded')] },
          content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/pdf-coded' } }],
        },
      });
      expect(filed.status).toBe(201);
      created.filed = `DocumentReference/${String(filed.body.id)}`;
      // And writes the opinion to the case in a message.
      const message = await as('specialist', 'Communication', {
        method: 'POST',
        body: {
          resourceType: 'Communication',
          status: 'completed',
          basedOn: [reference('ServiceRequest/sr-coded')],
          payload: [{ contentString: 'Between us: it is a benign hamartoma.' }],
        },
      });
      expect(message.status).toBe(201);
      created.message = `Communication/${String(message.body.id)}`;
      const held = [
        created.outside,
        created.filed,
        created.message,
        created.preReview,
        'Binary/pdf-coded',
        'DiagnosticReport/rep-coded',
      ];
      expect(await statuses('physician', [created.outside, created.message])).toEqual([
        [created.outside, 200],
        [created.message, 200],
      ]);
      expect(await statuses('patient', held)).toEqual(held.map((path) => [path, 404]));
      expect((await raw('patient', 'Binary/pdf-coded')).status).toBe(404);
      const reports = await as('patient', 'DiagnosticReport?based-on=ServiceRequest/sr-coded&_total=accurate');
      expect([keysOf(reports.body), reports.body.total]).toEqual([[], 0]);

      // Released: the patient has them all, but the drafts.
      await release('coded');
      expect(await statuses('patient', held)).toEqual(held.map((path) => [path, 200]));
      expect((await raw('patient', 'Binary/pdf-coded')).status).toBe(200);
      const drafts = [created.DiagnosticReport, created.Composition];
      expect(await statuses('patient', drafts)).toEqual(drafts.map((path) => [path, 404]));
    });
  });

  describe('the physician’s first reading, on every route', () => {
    test('a physician of the clinic that referred the case: their reading is the physician’s', async () => {
      expect((await as('physician', 'DiagnosticReport/rep-clinic')).status).toBe(404);
      expect(await readings('clinic')).toEqual([]);
      expect((await as('colleague', 'DiagnosticReport/rep-clinic')).status).toBe(200);
      expect(await readings('clinic')).toEqual([{ reader: 'Practitioner/prac-col', events: 1 }]);
      // Once: a second reading records nothing more.
      expect((await as('colleague', 'Binary/pdf-clinic')).status).toBe(200);
      expect(await readings('clinic')).toEqual([{ reader: 'Practitioner/prac-col', events: 1 }]);
    });

    test('a search that returns the released report, or includes it, is a reading', async () => {
      expect(await readings('search')).toEqual([]);
      const found = await as('physician', 'DiagnosticReport?based-on=ServiceRequest/sr-search');
      expect(keysOf(found.body)).toEqual(['DiagnosticReport/rep-search']);
      expect(await readings('search')).toEqual([{ reader: 'Practitioner/prac-phys', events: 1 }]);

      expect(await readings('include')).toEqual([]);
      const included = await as('physician', 'ServiceRequest?_id=sr-include&_revinclude=DiagnosticReport:based-on');
      expect(keysOf(included.body)).toEqual(['DiagnosticReport/rep-include', 'ServiceRequest/sr-include']);
      expect(await readings('include')).toEqual([{ reader: 'Practitioner/prac-phys', events: 1 }]);
    });

    test('a version of the released report, or its history, is a reading too', async () => {
      expect(await readings('version')).toEqual([]);
      expect((await as('physician', 'DiagnosticReport/rep-version/_history/1')).status).toBe(200);
      expect(await readings('version')).toEqual([{ reader: 'Practitioner/prac-phys', events: 1 }]);
      expect(await readings('history')).toEqual([]);
      expect((await as('physician', 'Composition/letter-history/_history')).status).toBe(200);
      expect(await readings('history')).toEqual([{ reader: 'Practitioner/prac-phys', events: 1 }]);
    });

    test('no reading: a system client’s, a coordinator’s or a reviewer’s, nor a page without the report’s content', async () => {
      for (const who of ['system', 'coordinator', 'specialist'] as const) {
        for (const path of [
          'DiagnosticReport/rep-others',
          'Binary/pdf-others',
          'DocumentReference/doc-others',
          'DiagnosticReport/rep-others/_history/1',
          'DiagnosticReport?based-on=ServiceRequest/sr-others',
          'ServiceRequest?_id=sr-others&_revinclude=DocumentReference:related',
        ]) {
          expect([who, path, (await as(who, path)).status]).toEqual([who, path, 200]);
        }
      }
      for (const path of [
        'DiagnosticReport?based-on=ServiceRequest/sr-others&_summary=count',
        'DiagnosticReport?based-on=ServiceRequest/sr-others&_summary=true',
        'DiagnosticReport?based-on=ServiceRequest/sr-others&_elements=status',
        'Task?_id=approve-others&_include=Task:focus&_elements=status',
        'Binary?_id=pdf-others',
      ]) {
        expect([path, (await as('physician', path)).status]).toEqual([path, 200]);
      }
      expect(await readings('others')).toEqual([]);
      // The physician's own search of the letter's document, with its content: the reading.
      expect(keysOf((await as('physician', 'DocumentReference?related=ServiceRequest/sr-others')).body)).toEqual([
        'DocumentReference/doc-others',
      ]);
      expect(await readings('others')).toEqual([{ reader: 'Practitioner/prac-phys', events: 1 }]);
    });
  });

  describe('the patient, before the physician’s access, on every read path', () => {
    const HIDDEN = [
      'DiagnosticReport/rep-paths',
      'Composition/letter-paths',
      'DocumentReference/doc-paths',
      'Binary/pdf-paths',
      'DiagnosticReport/pre-paths',
      'DiagnosticReport/ext-paths',
      'Binary/extpdf-paths',
    ];
    /** Every answer the patient got, searched at the end for what the reports say. */
    const answers: string[] = [];
    const patient = async (
      path: string,
      init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
    ) => {
      const answer = await as('patient', path, init);
      answers.push(JSON.stringify(answer.body ?? null));
      return answer;
    };
    const hiddenIn = (bundle: any): string[] => keysOf(bundle).filter((key) => HIDDEN.includes(key));

    test('read, vread and instance history: 404, as for what does not exist', async () => {
      for (const path of HIDDEN) {
        for (const suffix of ['', '/_history/1', '/_history']) {
          expect([`${path}${suffix}`, (await patient(`${path}${suffix}`)).status]).toEqual([`${path}${suffix}`, 404]);
        }
      }
    });

    test('the PDFs raw, current and by version: 404', async () => {
      for (const path of ['Binary/pdf-paths', 'Binary/pdf-paths/_history/1', 'Binary/extpdf-paths']) {
        const answer = await raw('patient', path);
        const text = await answer.text();
        answers.push(text);
        expect([path, answer.status]).toEqual([path, 404]);
      }
    });

    test('searches (by type, parameter, _type, POST _search; _total, _summary=count): none of them', async () => {
      for (const query of [
        'DiagnosticReport?_count=100',
        'Composition?_count=100',
        'DocumentReference?_count=100',
        'Binary?_count=100',
        'DiagnosticReport?based-on=ServiceRequest/sr-paths',
        'DiagnosticReport?subject=Patient/pat-1&status=final',
        'DiagnosticReport?code=http://loinc.org|11488-4',
        'DiagnosticReport?_id=rep-paths,pre-paths,ext-paths',
        'Composition?entry=ServiceRequest/sr-paths',
        'Composition?subject=Patient/pat-1&type=http://loinc.org|11488-4',
        'DocumentReference?related=ServiceRequest/sr-paths&type=http://loinc.org|11488-4',
        'Binary?_id=pdf-paths,extpdf-paths',
        '?_type=DiagnosticReport,Composition,DocumentReference,Binary&_count=100',
        'DiagnosticReport?subject:Patient._id=pat-1',
      ]) {
        const found = await patient(`${query}${query.includes('?') ? '&' : '?'}_total=accurate`);
        expect([query, found.status, hiddenIn(found.body)]).toEqual([query, 200, []]);
        expect([query, found.body.total]).toEqual([query, (found.body.entry ?? []).length]);
      }
      const counted = await patient('DiagnosticReport?based-on=ServiceRequest/sr-paths&_summary=count');
      expect(counted.body.total).toBe(0);
      const posted = await patient('DiagnosticReport/_search', {
        method: 'POST',
        body: 'based-on=ServiceRequest/sr-paths',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect([posted.status, hiddenIn(posted.body)]).toEqual([200, []]);
    });

    test('_include, _revinclude (and :iterate), _has and chains: nothing of the reports', async () => {
      for (const query of [
        'Task?_id=approve-paths&_include=Task:focus',
        'Task?based-on=ServiceRequest/sr-paths&_include=Task:focus&_include:iterate=DiagnosticReport:result',
        'ServiceRequest?_id=sr-paths&_revinclude=DiagnosticReport:based-on&_revinclude=DocumentReference:related&_revinclude=Composition:entry',
        'Patient?_id=pat-1&_revinclude=DiagnosticReport:subject&_revinclude=Composition:subject&_revinclude=DocumentReference:subject',
        'ServiceRequest?_id=sr-paths&_revinclude=Task:based-on&_include:iterate=Task:focus',
      ]) {
        const found = await patient(query);
        expect([query, found.status, hiddenIn(found.body)]).toEqual([query, 200, []]);
      }
      for (const query of [
        'Patient?_has:DiagnosticReport:subject:_id=rep-paths',
        'ServiceRequest?_id=sr-paths&_has:DiagnosticReport:based-on:code=http://loinc.org|11488-4',
        'ServiceRequest?_id=sr-paths&_has:DiagnosticReport:based-on:status=final',
        'ServiceRequest?_has:DiagnosticReport:based-on:_id=pre-paths,ext-paths',
        'Patient?_has:Composition:subject:_id=letter-paths',
        'Patient?_has:DocumentReference:subject:_id=doc-paths',
        'ServiceRequest?_id=sr-paths&_has:DocumentReference:related:type=http://loinc.org|11488-4',
        'Task?_id=approve-paths&focus:DiagnosticReport.status=final',
        'Task?_id=approve-paths&focus:DiagnosticReport.code=http://loinc.org|11488-4',
      ]) {
        const found = await patient(`${query}&_total=accurate`);
        expect([query, found.status, keysOf(found.body), found.body.total]).toEqual([query, 200, [], 0]);
      }
    });

    test('type and system history: none of them', async () => {
      for (const path of [
        'DiagnosticReport/_history?_count=1000',
        'Composition/_history?_count=1000',
        'DocumentReference/_history?_count=1000',
        'Binary/_history?_count=1000',
        '_history?_count=1000',
      ]) {
        const history = await patient(path);
        expect([path, history.status, hiddenIn(history.body)]).toEqual([path, 200, []]);
      }
    });

    test('batch entries and operations: none serves them', async () => {
      const batch = await patient('', {
        method: 'POST',
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            ...HIDDEN.map((url) => ({ request: { method: 'GET', url } })),
            { request: { method: 'GET', url: 'DiagnosticReport?based-on=ServiceRequest/sr-paths' } },
            { request: { method: 'GET', url: 'DiagnosticReport/rep-paths/_history/1' } },
          ],
        },
      });
      expect(batch.status).toBe(200);
      expect(batch.body.entry.map((entry: any) => entry.response.status)).toEqual([
        ...HIDDEN.map(() => '404'),
        '200',
        '404',
      ]);
      expect(batch.body.entry.at(-2).resource.entry).toBeUndefined();
      for (const path of [
        'Patient/pat-1/$everything',
        'ServiceRequest/sr-paths/$everything',
        'Composition/letter-paths/$document',
        'DiagnosticReport/rep-paths/$everything',
        '$graphql?query=%7BDiagnosticReportList%7Bid%20conclusion%7D%7D',
      ]) {
        expect([path, (await patient(path)).status]).toEqual([path, 404]);
      }
      // GraphQL, which the hub does not offer, is not reachable through a batch either.
      const graphql = await patient('', {
        method: 'POST',
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              request: { method: 'POST', url: '$graphql' },
              resource: { query: '{ DiagnosticReportList(subject: "Patient/pat-1") { id conclusion } }' },
            },
          ],
        },
      });
      expect([graphql.status, graphql.body.entry?.[0]?.response?.status]).toEqual([200, '404']);
    });

    test('nothing the patient was given says what the reports say', () => {
      expect(answers.length).toBeGreaterThan(50);
      expect(answers.filter((answer) => answer.includes(secret('paths')))).toEqual([]);
    });

    test('their own material is theirs all along; released, the reports are theirs on the same paths', async () => {
      const material = ['DocumentReference/mat-paths', 'Binary/matpdf-paths'];
      expect(await statuses('patient', material)).toEqual(material.map((path) => [path, 200]));
      await release('paths');
      expect(await statuses('patient', HIDDEN)).toEqual(HIDDEN.map((path) => [path, 200]));
      expect((await raw('patient', 'Binary/pdf-paths')).status).toBe(200);
      const included = await as('patient', 'ServiceRequest?_id=sr-paths&_revinclude=DiagnosticReport:based-on');
      expect(keysOf(included.body)).toEqual([
        'DiagnosticReport/ext-paths',
        'DiagnosticReport/pre-paths',
        'DiagnosticReport/rep-paths',
        'ServiceRequest/sr-paths',
      ]);
      const has = await as('patient', 'ServiceRequest?_has:DiagnosticReport:based-on:_id=rep-paths');
      expect(keysOf(has.body)).toEqual(['ServiceRequest/sr-paths']);
    });
  });
});
