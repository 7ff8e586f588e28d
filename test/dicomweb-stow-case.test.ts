/**
 * STOW-RS into a named case (`POST /dicomweb/studies?case=<ServiceRequest id>`, routes/dicomweb/
 * stow-case.ts): a referring physician sends a patient's CD into one of their cases, against a hub
 * with AUTH_REQUIRED=true and its workers. The study is the case's from its first instance, though
 * nothing in it matches the case by the hub's rules; and every way a person could use it to reach
 * what is not theirs is refused: another physician's case, a case that does not exist or is not
 * active, a role that may not store, an instance of a study the hub holds for another case or for a
 * coordinator, and naming no case at all.
 */
import { jest } from '@jest/globals';
import { stow as stowFiles } from './support/stow.ts';
import { clientToken } from './support/client-token.ts';
import { dicomInstance, newUid } from './support/dicom/patient-cd.ts';
import type { InstanceSpec } from './support/dicom/patient-cd.ts';
import { signInPeople } from './support/login-flow.ts';
import { WITH_WORKERS, fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

jest.setTimeout(120_000);

type Who = 'physicianA' | 'physicianB' | 'patientA' | 'specialist' | 'coordinator';
const PEOPLE: Record<Who, { role: any; fhirUser: string }> = {
  physicianA: { role: 'referring-physician', fhirUser: 'Practitioner/prac-a' },
  physicianB: { role: 'referring-physician', fhirUser: 'Practitioner/prac-b' },
  patientA: { role: 'patient', fhirUser: 'Patient/pat-a' },
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
};
/** PS3.18 Store Instances Response: FailedSOPSequence, ReferencedSOPSequence, FailureReason. */
const FAILED = '00081198';
const REFERENCED = '00081199';
const NOT_AUTHORIZED = 0x0124;

const serviceRequest = (id: string, requester: string, patient: string, status = 'active') => ({
  resourceType: 'ServiceRequest',
  id,
  status,
  intent: 'order',
  code: { text: 'Second opinion' },
  subject: { reference: `Patient/${patient}` },
  requester: { reference: `Practitioner/${requester}` },
  orderDetail: [
    {
      coding: [{ system: 'urn:hub:material', code: 'imaging' }],
      extension: [{ url: 'urn:hub:extension:imaging-sites', valueInteger: 1 }],
    },
  ],
});
const coordination = (sr: string, patient: string) => ({
  resourceType: 'Task',
  id: `coord-${sr}`,
  identifier: [{ system: 'urn:hub:case-resource', value: `${sr}/coordination` }],
  status: 'in-progress',
  intent: 'order',
  code: { coding: [{ system: 'urn:hub:task-code', code: 'coordination' }] },
  businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'awaiting-materials' }] },
  basedOn: [{ reference: `ServiceRequest/${sr}` }],
  focus: { reference: `ServiceRequest/${sr}` },
  for: { reference: `Patient/${patient}` },
});
const FIXTURES = [
  ...['prac-a', 'prac-b', 'prac-s', 'prac-c'].map((id) => ({ resourceType: 'Practitioner', id })),
  { resourceType: 'Patient', id: 'pat-a' },
  { resourceType: 'Patient', id: 'pat-b' },
  serviceRequest('sr-a', 'prac-a', 'pat-a'),
  serviceRequest('sr-b', 'prac-b', 'pat-b'),
  serviceRequest('sr-a-draft', 'prac-a', 'pat-a', 'draft'),
  coordination('sr-a', 'pat-a'),
  coordination('sr-b', 'pat-b'),
];

/** An instance of the hospital's patient, whose identifiers match no case by the hub's rules. */
const instance = (studyUid: string, seriesUid = newUid(), sopUid = newUid()): InstanceSpec => ({
  studyUid,
  seriesUid,
  sopUid,
  modality: 'CT',
  patientId: 'HOSPITAL-MRN-77',
  patientName: 'Cd^Patient',
  birthDate: '19610304',
  seriesNumber: 1,
  instanceNumber: 1,
});

describe('STOW-RS into a named case', () => {
  let th: TestHub;
  let pacs: string;
  const tokens = {} as Record<Who, string>;

  beforeAll(async () => {
    th = await startTestHub({ env: { AUTH_REQUIRED: 'true', ...WITH_WORKERS } });
    pacs = await clientToken(th, 'stow-case-pacs', 'system/*.cruds');
    const loaded = await putTransaction(th.fhir, pacs, FIXTURES);
    expect(loaded.status).toBe(200);
    Object.assign(
      tokens,
      await signInPeople(th, PEOPLE, {
        clientId: 'stow-case-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
  });

  afterAll(async () => {
    await th?.stop();
  });

  async function stow(token: string, query: string, specs: InstanceSpec[]): Promise<{ status: number; body: any }> {
    const response = await stowFiles(
      th.baseUrl,
      specs.map((spec) => dicomInstance(spec)),
      { authorization: `Bearer ${token}` },
      query,
    );
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  }
  const studyRow = async (uid: string) =>
    (
      await th.hub.db.query<{
        matched_service_request_id: string | null;
        match_method: string | null;
        number_of_instances: number;
      }>(
        'SELECT matched_service_request_id, match_method, number_of_instances FROM dicom_study WHERE study_instance_uid = $1',
        [uid],
      )
    ).rows[0];
  const failureReasons = (body: any): number[] =>
    (body?.[FAILED]?.Value ?? []).map((item: any) => item['00081197'].Value[0] as number);
  const qidoStudies = async (who: Who): Promise<string[]> => {
    const response = await fetch(`${th.baseUrl}/dicomweb/studies`, {
      headers: { authorization: `Bearer ${tokens[who]}`, accept: 'application/dicom+json' },
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as any[]).map((study) => study['0020000D'].Value[0] as string);
  };

  test('a physician stores a CD into their case: the study is the case’s from its first instance', async () => {
    const study = newUid();
    const series = newUid();
    const first = await stow(tokens.physicianA, '?case=sr-a', [instance(study, series), instance(study, series)]);
    expect(first.status).toBe(200);
    expect(first.body[REFERENCED].Value).toHaveLength(2);
    expect(await studyRow(study)).toEqual({
      matched_service_request_id: 'sr-a',
      match_method: 'stored-into-case',
      number_of_instances: 2,
    });
    // A later batch of the same study, as a browser sends a disc in batches: added to it.
    const second = await stow(tokens.physicianA, '?case=sr-a', [instance(study, series)]);
    expect(second.status).toBe(200);
    expect((await studyRow(study))?.number_of_instances).toBe(3);

    // Its ImagingStudy is the case's, the case counts it as its imaging, and its physician sees it.
    const imaging = await until(async () => {
      const found = await fhirFetch(`${th.fhir}/ImagingStudy?based-on=ServiceRequest/sr-a`, {
        headers: { authorization: `Bearer ${tokens.physicianA}` },
      });
      const resource = found.body.entry?.[0]?.resource;
      return resource?.numberOfInstances === 3 ? resource : undefined;
    }, 'the case’s ImagingStudy');
    expect(imaging.subject.reference).toBe('Patient/pat-a');
    await until(async () => {
      const tasks = await fhirFetch(
        `${th.fhir}/Task?code=urn:hub:task-code|expect-material&based-on=ServiceRequest/sr-a`,
        {
          headers: { authorization: `Bearer ${tokens.coordinator}` },
        },
      );
      return tasks.body.entry?.[0]?.resource.status === 'completed';
    }, 'the imaging expected to be in');
    expect(await qidoStudies('physicianA')).toContain(study);
    expect(await qidoStudies('physicianB')).not.toContain(study);
    // No reconciliation: nothing left for a coordinator to match.
    const reconcile = await fhirFetch(`${th.fhir}/Task?code=urn:hub:task-code|reconcile-imaging`, {
      headers: { authorization: `Bearer ${tokens.coordinator}` },
    });
    expect(reconcile.body.entry ?? []).toEqual([]);
  });

  test('refused before anything is stored: no case, another’s case, a missing or inactive case, a role that may not store', async () => {
    const study = newUid();
    const refusals: [Who, string, number][] = [
      ['physicianA', '', 403],
      ['physicianA', '?case=sr-b', 404],
      ['physicianA', '?case=sr-nowhere', 404],
      ['physicianA', '?case=sr-a-draft', 409],
      ['physicianA', '?case=sr-a&case=sr-b', 400],
      ['patientA', '?case=sr-a', 403],
      ['specialist', '?case=sr-a', 403],
    ];
    for (const [who, query, status] of refusals) {
      const answer = await stow(tokens[who], query, [instance(study)]);
      expect([who, query, answer.status, answer.body?.resourceType]).toEqual([who, query, status, 'OperationOutcome']);
    }
    // Another physician's case and one that does not exist answer alike.
    const hidden = await stow(tokens.physicianA, '?case=sr-b', [instance(study)]);
    const missing = await stow(tokens.physicianA, '?case=sr-nowhere', [instance(study)]);
    expect(hidden.body.issue[0].code).toBe(missing.body.issue[0].code);
    expect(await studyRow(study)).toBeUndefined();
  });

  test('an instance of a study the hub holds for another case, or for a coordinator, is refused; the rest is stored', async () => {
    const theirs = newUid();
    const theirInstance = instance(theirs);
    expect((await stow(tokens.physicianB, '?case=sr-b', [theirInstance])).status).toBe(200);
    // A PACS's study that matches no case waits for a coordinator.
    const unmatched = newUid();
    const pacsStow = await stow(pacs, '', [instance(unmatched)]);
    expect(pacsStow.status).toBe(200);

    const mine = newUid();
    const answer = await stow(tokens.physicianA, '?case=sr-a', [
      instance(theirs),
      theirInstance, // the very same bytes: no idempotent "already stored" for a study not theirs
      instance(unmatched),
      instance(mine),
    ]);
    expect(answer.status).toBe(202);
    expect(failureReasons(answer.body)).toEqual([NOT_AUTHORIZED, NOT_AUTHORIZED, NOT_AUTHORIZED]);
    expect(answer.body[REFERENCED].Value).toHaveLength(1);
    expect(await studyRow(theirs)).toMatchObject({ matched_service_request_id: 'sr-b', number_of_instances: 1 });
    expect(await studyRow(unmatched)).toMatchObject({ matched_service_request_id: null, number_of_instances: 1 });
    expect(await studyRow(mine)).toMatchObject({ matched_service_request_id: 'sr-a', number_of_instances: 1 });
    expect(await qidoStudies('physicianA')).not.toContain(theirs);
    expect(await qidoStudies('physicianA')).not.toContain(unmatched);
  });

  test('a new study whose only instance is refused leaves nothing behind', async () => {
    const existing = newUid();
    const series = newUid();
    expect((await stow(tokens.physicianA, '?case=sr-a', [instance(existing, series)])).status).toBe(200);
    // The series is stored under another study: the hub refuses the instance after its study was claimed.
    const orphan = newUid();
    const answer = await stow(tokens.physicianA, '?case=sr-a', [instance(orphan, series)]);
    expect(answer.status).toBe(409);
    expect(failureReasons(answer.body)).toEqual([0xc000]);
    expect(await studyRow(orphan)).toBeUndefined();
  });

  test('a coordinator may store into any case', async () => {
    const study = newUid();
    expect((await stow(tokens.coordinator, '?case=sr-b', [instance(study)])).status).toBe(200);
    expect(await studyRow(study)).toMatchObject({
      matched_service_request_id: 'sr-b',
      match_method: 'stored-into-case',
    });
  });
});
