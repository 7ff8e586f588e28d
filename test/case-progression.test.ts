/**
 * The case after intake, against a real hub (PostgreSQL, Redis, workers): cases are written through the
 * FHIR API in the shapes of docs/case-workflow.md (coordination Task, expect-material Tasks), and the
 * progression runs from their Task events through the outbox, the `fhir-resource-events` router and the
 * `case-progression` worker. The test plays the other parties through the API too: the materials job
 * completing an expect-material Task, the radiologist completing a pre-review with a DiagnosticReport,
 * the specialist accepting or declining, the coordinator accepting a case. The reminder job function is
 * run directly with a chosen `now`, and every job is run again and must change nothing.
 */
import { randomInt } from 'node:crypto';
import { Queue } from 'bullmq';
import pg from 'pg';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { producerConnection } from '../src/queues/connection.ts';
import {
  CASE_REMINDERS_QUEUE,
  reminderJobId,
  reminderSteps,
  runReminder,
  scheduleReminders,
} from '../src/workflow/jobs/case-reminders.ts';
import { QueueProducer } from '../src/queues/queue-definitions.ts';
import { HUB_QUEUES } from '../src/workflow/jobs/all-queues.ts';
import type { WorkflowContext } from '../src/workflow/context.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { workflowContextOf, workflowSettled } from './support/case-fixtures.ts';
import { fhirFetch, startTestHub, WITH_WORKERS } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { HubRepository } from '../src/fhir/repository.ts';
import { clockStartingAt } from '../src/runtime/clock.ts';

const REFERENCE = 'urn:hub:reference-number';
const CASE_RESOURCE = 'urn:hub:case-resource';
const TASK_CODE = 'urn:hub:task-code';
const CASE_STATE = 'urn:hub:case-state';
const NUCC = 'http://nucc.org/provider-taxonomy';
const ONCOLOGY = '207RX0202X';
const PULMONOLOGY = '207RP1001X';

/** Friday 20 November 2026, 10:00 in New York: ten business days later skips Thanksgiving (26 November). */
const COMPLETED_BEFORE_THANKSGIVING = '2026-11-20T15:00:00.000Z';
/** Monday 7 December 2026, 17:00 in New York (without the holiday it would be Friday 4 December). */
const DUE_AFTER_THANKSGIVING = '2026-12-07T22:00:00.000Z';
/** Where the hub's clock starts: the day the imaging arrives, whatever day the suite runs. */
const HUB_CLOCK_START = '2026-11-20T16:00:00.000Z';

/** How long to wait for the workflow (it runs in the background, slowly on a loaded machine). */
const WAIT_MS = 90_000;

interface Specialist {
  family: string;
  level: 'attending' | 'fellow' | 'resident' | 'intern';
  licenceEnd: string;
  nucc: string;
  keywords?: string[];
}

const ROSTER: Record<string, Specialist> = {
  best: {
    family: 'Abernathy',
    level: 'attending',
    licenceEnd: '2030-06-30',
    nucc: ONCOLOGY,
    keywords: ['lung', 'breast'],
  },
  second: { family: 'Brightwater', level: 'attending', licenceEnd: '2030-06-30', nucc: ONCOLOGY },
  // Would rank first on fit were they eligible.
  trainee: {
    family: 'Castellano',
    level: 'fellow',
    licenceEnd: '2030-06-30',
    nucc: ONCOLOGY,
    keywords: ['lung', 'breast', 'malignan*'],
  },
  expired: {
    family: 'Delacroix',
    level: 'attending',
    licenceEnd: '2025-06-30',
    nucc: ONCOLOGY,
    keywords: ['lung', 'breast', 'malignan*'],
  },
  pulmonologist: { family: 'Eberhardt', level: 'attending', licenceEnd: '2030-06-30', nucc: PULMONOLOGY },
};

interface ExpectSpec {
  kind: 'imaging' | 'records' | 'pathology';
  status: 'requested' | 'completed' | 'cancelled';
  completedAt?: string;
}

interface CaseSpec {
  state: 'awaiting-materials' | 'submitted';
  residence: 'MA' | 'NH';
  questions: string[];
  performer?: string;
  imaging?: boolean;
  /** A biopsy Specimen, delivered as the pathology expect-material Task's output. */
  specimen?: boolean;
  expect: ExpectSpec[];
}

interface Case {
  serviceRequestId: string;
  coordinationId: string;
  patientId: string;
  imagingStudyId?: string;
  specimenId?: string;
  expectIds: Record<string, string>;
}

describe('case progression after intake', () => {
  let th: TestHub;
  let sql: pg.Client;
  let ctx: WorkflowContext;
  let reminders: Queue;
  let producer: QueueProducer;
  let connection: ReturnType<typeof producerConnection>;
  const specialists: Record<string, string> = {};

  const fhir = async (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<any> => {
    const response = await fhirFetch(path ? `${th.fhir}/${path}` : th.fhir, { method, body, headers });
    if (response.status >= 300) {
      throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(response.body?.issue ?? response.body)}`);
    }
    return response.body;
  };
  const search = async (query: string): Promise<any[]> =>
    ((await fhir('GET', `${query}${query.includes('?') ? '&' : '?'}_count=1000`)).entry ?? []).map(
      (entry: { resource: unknown }) => entry.resource,
    );
  const children = (c: Case) => search(`Task?part-of=Task/${c.coordinationId}`);
  const withCode = (tasks: any[], code: string) =>
    tasks.filter((task) =>
      task.code?.coding?.some((coding: any) => coding.system === TASK_CODE && coding.code === code),
    );
  const stateOf = (task: any): string | undefined =>
    task.businessStatus?.coding?.find((coding: any) => coding.system === CASE_STATE)?.code;
  const coordination = (c: Case) => fhir('GET', `Task/${c.coordinationId}`);
  /** A PUT of the current version with changes, as a person's client does it (If-Match). */
  const change = async (reference: string, edit: (resource: any) => any): Promise<any> => {
    const current = await fhir('GET', reference);
    return fhir('PUT', reference, edit(structuredClone(current)), { 'if-match': `W/"${current.meta.versionId}"` });
  };
  /** Every Task of the case with its version: a run that changes nothing leaves this as it was. */
  const snapshot = async (c: Case): Promise<string[]> =>
    [await coordination(c), ...(await children(c))].map((task) => `${task.id}@${task.meta.versionId}`).sort();

  beforeAll(async () => {
    // The hub's clock starts an hour after the imaging arrives, so its reminder jobs are ahead of it on any date.
    th = await startTestHub({ db: 'postgres', env: { ...WITH_WORKERS }, clock: clockStartingAt(HUB_CLOCK_START) });
    sql = new pg.Client({ connectionString: th.databaseUrl });
    await sql.connect();
    ctx = workflowContextOf(th);
    connection = producerConnection(th.config.redisUrl);
    producer = new QueueProducer({ connection, prefix: th.config.queuePrefix, definitions: HUB_QUEUES });
    reminders = producer.queue(CASE_REMINDERS_QUEUE);

    for (const [key, spec] of Object.entries(ROSTER)) {
      const practitioner = await fhir('POST', 'Practitioner', {
        resourceType: 'Practitioner',
        active: true,
        name: [{ prefix: ['Dr.'], family: spec.family, given: ['Test'] }],
        telecom: [{ system: 'email', value: `${spec.family.toLowerCase()}@specialists.example.org` }],
        extension: [{ url: 'urn:hub:extension:training-level', valueCode: spec.level }],
        qualification: [
          {
            code: { coding: [{ system: 'urn:hub:qualification', code: 'medical-licence' }] },
            period: { start: '2015-07-01', end: spec.licenceEnd },
          },
          {
            code: { coding: [{ system: 'urn:hub:qualification', code: 'board-certification' }] },
            period: { start: '2016-01-01' },
          },
        ],
      });
      specialists[key] = practitioner.id;
      await fhir('POST', 'PractitionerRole', {
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: `Practitioner/${practitioner.id}` },
        code: [{ coding: [{ system: 'urn:hub:practitioner-role', code: 'specialist' }] }],
        specialty: [{ coding: [{ system: NUCC, code: spec.nucc }] }],
        extension: [
          { url: 'urn:hub:extension:case-capacity', valueInteger: 6 },
          ...(spec.keywords ?? []).map((valueString) => ({
            url: 'urn:hub:extension:subspecialty-keyword',
            valueString,
          })),
        ],
      });
    }
    // A referring oncologist's PractitionerRole: not on the roster, never a candidate.
    const referrer = await fhir('POST', 'Practitioner', {
      resourceType: 'Practitioner',
      name: [{ family: 'Galloway', given: ['Referrer'] }],
    });
    await fhir('POST', 'PractitionerRole', {
      resourceType: 'PractitionerRole',
      active: true,
      practitioner: { reference: `Practitioner/${referrer.id}` },
      specialty: [{ coding: [{ system: NUCC, code: ONCOLOGY }] }],
    });
  }, 120_000);

  afterAll(async () => {
    await reminders?.obliterate({ force: true }).catch(() => undefined);
    await producer?.close();
    connection?.disconnect();
    await sql?.end();
    await th?.stop();
  });

  /**
   * A case as intake and the materials jobs leave it: Patient, physician, questions and a draft request
   * first; then, in one transaction, the coordination Task, its expect-material Tasks and the request
   * made active (so intake finds the case already past submission, or, for `submitted`, runs on it).
   */
  async function createCase(spec: CaseSpec): Promise<Case> {
    const referenceNumber = generateReferenceNumber(() => randomInt(10));
    const identifier = { system: REFERENCE, value: referenceNumber };
    const patient = await fhir('POST', 'Patient', {
      resourceType: 'Patient',
      identifier: [identifier],
      name: [{ family: 'Quillfeather', given: ['Ottoline'] }],
      birthDate: '1961-04-23',
      address: [
        { use: 'home', city: spec.residence === 'MA' ? 'Boston' : 'Concord', state: spec.residence, country: 'US' },
      ],
    });
    const physician = await fhir('POST', 'Practitioner', {
      resourceType: 'Practitioner',
      name: [{ family: 'Okonkwo', given: ['Adaeze'] }],
    });
    const questions = await fhir('POST', 'QuestionnaireResponse', {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      subject: { reference: `Patient/${patient.id}` },
      item: [{ linkId: 'question', answer: spec.questions.map((valueString) => ({ valueString })) }],
    });
    const request = await fhir('POST', 'ServiceRequest', {
      resourceType: 'ServiceRequest',
      status: 'draft',
      intent: 'order',
      priority: 'routine',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0336', code: 'S' }] }],
      code: { text: 'Second opinion' },
      identifier: [identifier],
      requisition: identifier,
      subject: { reference: `Patient/${patient.id}` },
      requester: { reference: `Practitioner/${physician.id}` },
      ...(spec.performer ? { performer: [{ reference: `Practitioner/${spec.performer}` }] } : {}),
      supportingInfo: [{ reference: `QuestionnaireResponse/${questions.id}` }],
    });
    const study = spec.imaging
      ? await fhir('POST', 'ImagingStudy', {
          resourceType: 'ImagingStudy',
          status: 'available',
          subject: { reference: `Patient/${patient.id}` },
          basedOn: [{ reference: `ServiceRequest/${request.id}` }],
          modality: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' }],
          series: [
            {
              uid: '2.25.1',
              modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' },
              bodySite: { display: 'Chest' },
            },
          ],
        })
      : undefined;
    // No Specimen.request here: the materials job would then derive the case's materials from the DICOM index.
    const specimen = spec.specimen
      ? await fhir('POST', 'Specimen', {
          resourceType: 'Specimen',
          status: 'available',
          subject: { reference: `Patient/${patient.id}` },
          collection: { bodySite: { text: 'Left breast' } },
        })
      : undefined;
    const materialOutput = (reference: string) => [
      { type: { coding: [{ system: 'urn:hub:material-count', code: 'material' }] }, valueReference: { reference } },
    ];
    const coordinationUrl = 'urn:uuid:5f0c1d2e-0000-4000-8000-000000000001';
    const states = { 'awaiting-materials': 'accepted', submitted: 'requested' } as const;
    const common = {
      groupIdentifier: identifier,
      basedOn: [{ reference: `ServiceRequest/${request.id}` }],
      intent: 'order',
      focus: { reference: `ServiceRequest/${request.id}` },
      for: { reference: `Patient/${patient.id}` },
    };
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: coordinationUrl,
          resource: {
            resourceType: 'Task',
            ...common,
            identifier: [{ system: CASE_RESOURCE, value: `${request.id}/coordination` }],
            status: states[spec.state],
            businessStatus: { coding: [{ system: CASE_STATE, code: spec.state }] },
            code: { coding: [{ system: TASK_CODE, code: 'coordination' }] },
            requester: { reference: `Practitioner/${physician.id}` },
            authoredOn: '2026-11-16T14:00:00Z',
          },
          request: { method: 'POST', url: 'Task' },
        },
        ...spec.expect.map((expected) => ({
          resource: {
            resourceType: 'Task',
            ...common,
            identifier: [{ system: CASE_RESOURCE, value: `${request.id}/expect-material/${expected.kind}` }],
            partOf: [{ reference: coordinationUrl }],
            status: expected.status,
            code: { coding: [{ system: TASK_CODE, code: 'expect-material' }] },
            input: [
              {
                type: { coding: [{ system: 'urn:hub:material-count', code: 'material' }] },
                valueCoding: { system: 'urn:hub:material', code: expected.kind },
              },
            ],
            ...(expected.status === 'completed' && study && expected.kind === 'imaging'
              ? { output: materialOutput(`ImagingStudy/${study.id}`) }
              : {}),
            ...(expected.status === 'completed' && specimen && expected.kind === 'pathology'
              ? { output: materialOutput(`Specimen/${specimen.id}`) }
              : {}),
            ...(expected.completedAt
              ? { executionPeriod: { end: expected.completedAt }, lastModified: expected.completedAt }
              : {}),
          },
          request: { method: 'POST', url: 'Task' },
        })),
        {
          resource: { ...request, status: 'active' },
          request: { method: 'PUT', url: `ServiceRequest/${request.id}`, ifMatch: `W/"${request.meta.versionId}"` },
        },
      ],
    };
    const result = await fhir('POST', '', bundle);
    const ids = result.entry.map((entry: any) => entry.response.location.split('/')[1]);
    return {
      serviceRequestId: request.id,
      coordinationId: ids[0],
      patientId: patient.id,
      imagingStudyId: study?.id,
      specimenId: specimen?.id,
      expectIds: Object.fromEntries(spec.expect.map((expected, index) => [expected.kind, ids[index + 1]])),
    };
  }

  /** What the materials job does when the imaging arrived: the expect-material Task completed with its output. */
  const imagingArrives = (c: Case, at: string) =>
    change(`Task/${c.expectIds.imaging}`, (task) => ({
      ...task,
      status: 'completed',
      executionPeriod: { end: at },
      lastModified: at,
      output: [
        {
          type: { coding: [{ system: 'urn:hub:material-count', code: 'material' }] },
          valueReference: { reference: `ImagingStudy/${c.imagingStudyId}` },
        },
      ],
    }));

  /** The matching's explanation of an offer: a Provenance (coordinators' reading), not the offer's note. */
  const explanationOf = async (task: any): Promise<string> =>
    (await fhir('GET', `Provenance?target=Task/${task.id}&_sort=-recorded&_count=1`)).entry[0].resource.reason[0].text;
  const offerTo = async (c: Case, specialistKey: string): Promise<any> =>
    until(
      async () =>
        withCode(await children(c), 'specialist-opinion').find(
          (task) => task.owner?.reference === `Practitioner/${specialists[specialistKey]}`,
        ),
      `an offer to ${specialistKey}`,
      WAIT_MS,
    );

  const LUNG_QUESTIONS = [
    'Is the mass in the left lung malignant?',
    'Would you recommend surgery or chemotherapy for this cancer?',
  ];
  const BREAST_QUESTIONS = ['Is the breast cancer on the biopsy malignant, and what staging do you suggest?'];

  let lungCase: Case;

  test('materials complete → a radiology pre-review Task; pre-review done → the best eligible specialist, due 10 business days later skipping Thanksgiving', async () => {
    lungCase = await createCase({
      state: 'awaiting-materials',
      residence: 'MA',
      questions: LUNG_QUESTIONS,
      imaging: true,
      expect: [
        { kind: 'imaging', status: 'requested' },
        { kind: 'records', status: 'cancelled', completedAt: '2026-11-18T15:00:00Z' },
      ],
    });
    // Nothing moves while the imaging is outstanding.
    expect((await advanceCase(ctx, { serviceRequestId: lungCase.serviceRequestId })).state).toBe('awaiting-materials');
    await imagingArrives(lungCase, COMPLETED_BEFORE_THANKSGIVING);

    const preReview = await until(
      async () => withCode(await children(lungCase), 'pre-review-radiology')[0],
      'the radiology pre-review',
      WAIT_MS,
    );
    expect(preReview).toMatchObject({
      status: 'requested',
      intent: 'order',
      partOf: [{ reference: `Task/${lungCase.coordinationId}` }],
      basedOn: [{ reference: `ServiceRequest/${lungCase.serviceRequestId}` }],
      focus: { reference: `ImagingStudy/${lungCase.imagingStudyId}` },
      identifier: [{ system: CASE_RESOURCE, value: `${lungCase.serviceRequestId}/pre-review-radiology` }],
    });
    expect(preReview.owner).toBeUndefined();
    expect(withCode(await children(lungCase), 'pre-review-pathology')).toEqual([]);
    const inPreReview = await coordination(lungCase);
    expect({ state: stateOf(inPreReview), status: inPreReview.status }).toEqual({
      state: 'pre-review',
      status: 'in-progress',
    });
    // No specialist before the pre-review is done.
    expect(withCode(await children(lungCase), 'specialist-opinion')).toEqual([]);

    // The radiologist claims the pre-review and completes it with a report.
    const report = await fhir('POST', 'DiagnosticReport', {
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { text: 'Radiology pre-review' },
      subject: { reference: `Patient/${lungCase.patientId}` },
      basedOn: [{ reference: `ServiceRequest/${lungCase.serviceRequestId}` }],
      imagingStudy: [{ reference: `ImagingStudy/${lungCase.imagingStudyId}` }],
      conclusion: 'Adequate for review.',
    });
    const radiologist = await fhir('POST', 'Practitioner', {
      resourceType: 'Practitioner',
      name: [{ family: 'Fairweather', given: ['Radiologist'] }],
    });
    await change(`Task/${preReview.id}`, (task) => ({
      ...task,
      status: 'in-progress',
      owner: { reference: `Practitioner/${radiologist.id}` },
    }));
    await change(`Task/${preReview.id}`, (task) => ({
      ...task,
      status: 'completed',
      output: [{ type: { text: 'report' }, valueReference: { reference: `DiagnosticReport/${report.id}` } }],
    }));

    const offer = await offerTo(lungCase, 'best');
    expect(offer).toMatchObject({
      status: 'requested',
      partOf: [{ reference: `Task/${lungCase.coordinationId}` }],
      restriction: { period: { end: DUE_AFTER_THANKSGIVING } },
      input: [{ valueReference: { reference: `DiagnosticReport/${report.id}` } }],
    });
    // The case's members read whom it was offered to; who else was ranked, and why, is the coordinators'.
    expect(offer.note.map((n: any) => n.text)).toEqual([
      expect.stringMatching(/^Offered to Dr\. Test Abernathy \(rank 1 of \d\)\.$/),
    ]);
    const note = await explanationOf(offer);
    expect(note).toMatch(/Offered to Dr\. Test Abernathy \(rank 1 of/);
    expect(note).toMatch(/Castellano: .*fellow: interns, residents and fellows cannot give opinions/);
    expect(note).toMatch(/Delacroix: .*licence expired on 2025-06-30/);
    // The note is for coordinators: nothing of the patient's.
    expect(note).not.toMatch(/Quillfeather|Ottoline|1961/);
    expect(withCode(await children(lungCase), 'specialist-opinion')).toHaveLength(1);
    const matching = await coordination(lungCase);
    expect({ state: stateOf(matching), status: matching.status }).toEqual({ state: 'matching', status: 'in-progress' });

    // Reminders and escalation are scheduled as delayed jobs under ids derived from the Task and its due date.
    const due = new Date(DUE_AFTER_THANKSGIVING);
    const steps = reminderSteps(due);
    expect(steps.map((step) => step.at.toISOString())).toEqual([
      '2026-12-03T13:30:00.000Z',
      '2026-12-07T13:30:00.000Z',
      '2026-12-08T13:30:00.000Z',
    ]);
    for (const { step } of steps) {
      const job = await until(() => reminders.getJob(reminderJobId(offer.id, due, step)), `the ${step} job`, WAIT_MS);
      expect(job.data).toEqual({ taskId: offer.id, step });
      expect(await job.getState()).toBe('delayed');
    }

    // The specialist accepts: the case is in specialist review.
    await change(`Task/${offer.id}`, (task) => ({ ...task, status: 'accepted' }));
    await until(
      async () => stateOf(await coordination(lungCase)) === 'specialist-review',
      'specialist review',
      WAIT_MS,
    );
  }, 180_000);

  test('a radiology-prohibited jurisdiction (New Hampshire) gets no radiology pre-review and goes straight to matching', async () => {
    const nhCase = await createCase({
      state: 'awaiting-materials',
      residence: 'NH',
      questions: LUNG_QUESTIONS,
      imaging: true,
      expect: [{ kind: 'imaging', status: 'requested' }],
    });
    await imagingArrives(nhCase, COMPLETED_BEFORE_THANKSGIVING);
    const offer = await offerTo(nhCase, 'best');
    expect(offer.restriction.period.end).toBe(DUE_AFTER_THANKSGIVING);
    const tasks = await children(nhCase);
    expect([...withCode(tasks, 'pre-review-radiology'), ...withCode(tasks, 'pre-review-pathology')]).toEqual([]);
    expect(stateOf(await coordination(nhCase))).toBe('matching');
  }, 180_000);

  test('the requested specialist is honoured when eligible; a requested trainee is not', async () => {
    const requested = await createCase({
      state: 'awaiting-materials',
      residence: 'MA',
      questions: LUNG_QUESTIONS,
      performer: specialists.pulmonologist,
      expect: [{ kind: 'records', status: 'completed', completedAt: '2026-11-24T15:00:00Z' }],
    });
    const offer = await offerTo(requested, 'pulmonologist');
    expect(await explanationOf(offer)).toMatch(/was requested, is eligible and available/);
    // Tuesday 24 November + 10 business days (Thanksgiving skipped) = Wednesday 9 December, 17:00 EST.
    expect(offer.restriction.period.end).toBe('2026-12-09T22:00:00.000Z');

    const trainee = await createCase({
      state: 'awaiting-materials',
      residence: 'MA',
      questions: LUNG_QUESTIONS,
      performer: specialists.trainee,
      expect: [{ kind: 'records', status: 'completed' }],
    });
    const fallback = await offerTo(trainee, 'best');
    expect(await explanationOf(fallback)).toMatch(/Castellano was requested but cannot take the case: a fellow/);
    expect(withCode(await children(trainee), 'specialist-opinion')).toHaveLength(1);
  }, 180_000);

  test('a declined offer goes to the next candidate; with nobody left the case waits in matching with a reason', async () => {
    const breast = await createCase({
      state: 'awaiting-materials',
      residence: 'MA',
      questions: BREAST_QUESTIONS,
      expect: [{ kind: 'records', status: 'completed' }],
    });
    const first = await offerTo(breast, 'best');
    // Open offers count as workload (the lung case's accepted one, and the New Hampshire and trainee cases' pending ones).
    expect(await explanationOf(first)).toMatch(/Abernathy: .*workload 3 of 6 open cases/);
    expect(await explanationOf(first)).not.toMatch(/Galloway/);
    await change(`Task/${first.id}`, (task) => ({
      ...task,
      status: 'rejected',
      statusReason: { text: 'On call this fortnight' },
    }));
    const second = await offerTo(breast, 'second');
    expect(await explanationOf(second)).toMatch(/Declined earlier by: Dr\. Test Abernathy/);
    await change(`Task/${second.id}`, (task) => ({ ...task, status: 'rejected' }));
    const waiting = await until(
      async () => {
        const task = await coordination(breast);
        return task.statusReason?.coding?.[0]?.code === 'no-specialist' && task;
      },
      'the no-specialist reason',
      WAIT_MS,
    );
    expect(stateOf(waiting)).toBe('matching');
    expect(waiting.statusReason.text).toMatch(/No eligible specialist is left .*\(2 declined\)/);
    expect(
      withCode(await children(breast), 'specialist-opinion')
        .map((task) => task.status)
        .sort(),
    ).toEqual(['rejected', 'rejected']);
    // Run again: nothing new.
    const before = await snapshot(breast);
    expect((await advanceCase(ctx, { serviceRequestId: breast.serviceRequestId })).outcome).toBe('unchanged');
    expect(await snapshot(breast)).toEqual(before);
  }, 180_000);

  test('a coordinator accepts a submitted case by its businessStatus; a refused move is undone with the reason', async () => {
    const submitted = await createCase({
      state: 'submitted',
      residence: 'MA',
      questions: LUNG_QUESTIONS,
      imaging: true,
      specimen: true,
      expect: [
        { kind: 'imaging', status: 'completed', completedAt: COMPLETED_BEFORE_THANKSGIVING },
        { kind: 'pathology', status: 'completed', completedAt: COMPLETED_BEFORE_THANKSGIVING },
      ],
    });
    // Materials are complete, but a submitted case waits for the coordinator.
    await until(
      async () => (await coordination(submitted)).extension?.some((e: any) => e.url === 'urn:hub:extension:quote'),
      'the intake',
      WAIT_MS,
    );
    expect((await advanceCase(ctx, { serviceRequestId: submitted.serviceRequestId })).state).toBe('submitted');
    expect(withCode(await children(submitted), 'pre-review-radiology')).toEqual([]);

    // An impossible move (straight to specialist review) is undone.
    await change(`Task/${submitted.coordinationId}`, (task) => ({
      ...task,
      businessStatus: { coding: [{ system: CASE_STATE, code: 'specialist-review' }] },
    }));
    const undone = await until(
      async () => {
        const task = await coordination(submitted);
        return stateOf(task) === 'submitted' && task.statusReason?.coding?.[0]?.code === 'move-refused' && task;
      },
      'the refused move undone',
      WAIT_MS,
    );
    expect(undone.status).toBe('requested');
    expect(undone.statusReason.text).toMatch(/cannot go from "submitted" to "specialist-review"/);

    // The referring physician may write their case's Tasks, but not accept their own case: the
    // hub stamps the writer on the version (meta.source) and the state machine refuses their move.
    const asPhysician = new HubRepository({ ...ctx.repository, actor: 'urn:hub:actor:referring-physician:someone' });
    const current = await coordination(submitted);
    await asPhysician.updateResource({
      ...current,
      businessStatus: { coding: [{ system: CASE_STATE, code: 'awaiting-materials' }] },
    });
    const refused = await until(
      async () => {
        const task = await coordination(submitted);
        return stateOf(task) === 'submitted' && task.statusReason?.text?.includes('awaiting-materials') && task;
      },
      "the physician's move undone",
      WAIT_MS,
    );
    expect(refused.statusReason.coding?.[0]?.code).toBe('move-refused');
    expect(refused.meta.source).toBeUndefined();

    // A client cannot claim to be a coordinator either: a claimed hub actor is dropped.
    const claimed = await fhir('PUT', `Task/${submitted.coordinationId}`, {
      ...refused,
      meta: { source: 'urn:hub:actor:coordinator:x' },
    });
    expect(claimed.meta.source).toBeUndefined();

    await change(`Task/${submitted.coordinationId}`, (task) => ({
      ...task,
      businessStatus: { coding: [{ system: CASE_STATE, code: 'awaiting-materials' }] },
    }));
    await until(
      async () => withCode(await children(submitted), 'pre-review-radiology')[0],
      'the pre-review after acceptance',
      WAIT_MS,
    );
    const tasks = await children(submitted);
    expect(withCode(tasks, 'pre-review-radiology').map((task) => task.focus)).toEqual([
      { reference: `ImagingStudy/${submitted.imagingStudyId}` },
    ]);
    expect(withCode(tasks, 'pre-review-pathology').map((task) => ({ focus: task.focus, status: task.status }))).toEqual(
      [{ focus: { reference: `Specimen/${submitted.specimenId}` }, status: 'requested' }],
    );
    const accepted = await coordination(submitted);
    expect({ state: stateOf(accepted), status: accepted.status, reason: accepted.statusReason }).toEqual({
      state: 'pre-review',
      status: 'in-progress',
      reason: undefined,
    });
    const history = await fhir('GET', `Task/${submitted.coordinationId}/_history`);
    const states = history.entry.map((entry: any) => `${stateOf(entry.resource)}/${entry.resource.status}`).reverse();
    // The acceptance was applied (Task accepted) before the system moved the case on.
    expect(states).toContain('awaiting-materials/accepted');
  }, 180_000);

  test('reminders fire on the business-day schedule, escalate once, and do nothing when the Task is done; every job run twice changes nothing', async () => {
    const offer = withCode(await children(lungCase), 'specialist-opinion')[0];
    const at = (iso: string) => ({ ...ctx, now: () => new Date(iso) });
    const options = { messageIdDomain: 'hub.example.org' };

    expect(await runReminder(at('2026-12-03T13:00:00Z'), { taskId: offer.id, step: 'reminder-0' }, options)).toBe(
      'not-due',
    );
    expect(await runReminder(at('2026-12-03T13:31:00Z'), { taskId: offer.id, step: 'reminder-0' }, options)).toBe(
      'reminded',
    );
    expect(await runReminder(at('2026-12-03T13:32:00Z'), { taskId: offer.id, step: 'reminder-0' }, options)).toBe(
      'already-recorded',
    );
    const reminded = await fhir('GET', `Task/${offer.id}`);
    expect(
      reminded.note
        .filter((note: any) => note.authorString === 'Second-opinion hub: reminder')
        .map((note: any) => note.text),
    ).toEqual([`Reminder 1 of 2: this opinion is due ${DUE_AFTER_THANKSGIVING}.`]);
    const notifications = await sql.query(
      'SELECT kind, recipient, case_reference FROM notification WHERE dedupe_key LIKE $1',
      [`Task/${offer.id}:%`],
    );
    expect(notifications.rows).toEqual([
      {
        kind: 'case-status-changed',
        recipient: `Practitioner/${specialists.best}`,
        case_reference: `ServiceRequest/${lungCase.serviceRequestId}`,
      },
    ]);

    expect(await runReminder(at('2026-12-08T14:00:00Z'), { taskId: offer.id, step: 'escalation' }, options)).toBe(
      'escalated',
    );
    expect(await runReminder(at('2026-12-08T15:00:00Z'), { taskId: offer.id, step: 'escalation' }, options)).toBe(
      'already-recorded',
    );
    const escalated = await coordination(lungCase);
    expect(escalated.priority).toBe('urgent');
    expect(escalated.note.filter((note: any) => note.authorString === 'Second-opinion hub: escalation')).toHaveLength(
      1,
    );
    expect(await runReminder(at('2026-12-08T14:00:00Z'), { taskId: offer.id, step: 'reminder-9' }, options)).toBe(
      'unknown-step',
    );

    // Scheduling again adds no job.
    const due = new Date(DUE_AFTER_THANKSGIVING);
    const countJobs = async () =>
      (await reminders.getJobs(['delayed', 'waiting', 'active', 'completed', 'failed'])).filter(
        (job) => job.data.taskId === offer.id,
      ).length;
    const jobsBefore = await countJobs();
    await scheduleReminders(producer, offer.id, due, th.clock.now());
    await scheduleReminders(producer, offer.id, due, th.clock.now());
    expect(await countJobs()).toBe(jobsBefore);

    // The progression job, run twice directly on every case state it reached, changes nothing.
    await workflowSettled(th, WAIT_MS);
    const before = await snapshot(lungCase);
    for (let run = 0; run < 2; run++) {
      const result = await advanceCase(ctx, { serviceRequestId: lungCase.serviceRequestId });
      expect({ outcome: result.outcome, state: result.state, offer: result.openOffer?.taskId }).toEqual({
        outcome: 'unchanged',
        state: 'specialist-review',
        offer: offer.id,
      });
    }
    expect(await snapshot(lungCase)).toEqual(before);

    // The specialist finishes: later reminders and the escalation do nothing.
    await change(`Task/${offer.id}`, (task) => ({ ...task, status: 'completed' }));
    // The case's clock follows the closed offer (case-clock.ts) before the reminders are tried.
    await workflowSettled(th, WAIT_MS);
    const done = await snapshot(lungCase);
    expect(await runReminder(at('2026-12-07T14:00:00Z'), { taskId: offer.id, step: 'reminder-1' }, options)).toBe(
      'task-closed',
    );
    expect(await runReminder(at('2026-12-09T14:00:00Z'), { taskId: offer.id, step: 'escalation' }, options)).toBe(
      'task-closed',
    );
    expect(await snapshot(lungCase)).toEqual(done);

    // No job of these queues failed for good along the way.
    for (const name of ['fhir-resource-events', 'case-progression', 'case-reminders']) {
      const queue = new Queue(name, { connection, prefix: th.config.queuePrefix });
      expect({ name, failed: await queue.getFailedCount() }).toEqual({ name, failed: 0 });
      await queue.close();
    }
  }, 180_000);

  test('a reminder whose Task is deleted while the job waits for the case does nothing, and says so', async () => {
    const gone = await createCase({
      state: 'awaiting-materials',
      residence: 'MA',
      questions: LUNG_QUESTIONS,
      expect: [{ kind: 'records', status: 'completed', completedAt: COMPLETED_BEFORE_THANKSGIVING }],
    });
    const offer = await until(async () => withCode(await children(gone), 'specialist-opinion')[0], 'an offer', WAIT_MS);
    await workflowSettled(th, WAIT_MS);
    // Another step of the case holds its lock, as a running job would: the reminder job reads the
    // Task, then waits for the case, and meanwhile a coordinator deletes the Task through the API.
    const caseLock = `case:${gone.serviceRequestId}`;
    await sql.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [caseLock]);
    let outcome: Promise<unknown>;
    try {
      outcome = runReminder(
        { ...ctx, now: () => new Date('2026-12-09T14:00:00Z') },
        { taskId: offer.id, step: 'escalation' },
        { messageIdDomain: 'hub.example.org' },
      ).catch((error: unknown) => error);
      await until(
        async () =>
          (
            await sql.query<{ n: number }>(
              'SELECT count(*)::int AS n FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))',
            )
          ).rows[0]!.n > 0,
        'the reminder job to wait for the case',
        WAIT_MS,
      );
      await fhir('DELETE', `Task/${offer.id}`);
    } finally {
      await sql.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [caseLock]);
    }
    expect(await outcome).toBe('no-task');
  }, 180_000);
});
