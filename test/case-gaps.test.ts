/**
 * The case workflow's edges, from the users' side against a real hub (PostgreSQL, Redis, workers):
 * a coordinator correcting the question count, the physician changing the questions, material
 * nobody planned, material sent before the request was submitted, a follow-up question, and a
 * document too large to count. Each step is also run again directly, and must change nothing.
 */
import { Queue } from 'bullmq';
import pg from 'pg';
import { pino } from 'pino';
import { PDFDocument } from 'pdf-lib';
import { runCaseMaterialStep } from '../src/workflow/jobs/case-materials.ts';
import { producerConnection } from '../src/queues/connection.ts';
import { routeResourceEvent } from '../src/workflow/jobs/resource-events.ts';
import type { WorkflowContext, WorkflowWorkerDeps } from '../src/workflow/context.ts';
import { runIntake } from '../src/workflow/intake.ts';
import { PDF_PAGE_COUNT_MAX_BYTES } from '../src/workflow/materials.ts';
import { fhirFetch, startTestHub, WITH_WORKERS } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { orderDetail, registerPatient as registerPatientAt, workflowContextOf } from './support/case-fixtures.ts';
import type { Planned } from './support/case-fixtures.ts';
import { until } from './support/until.ts';

const REFERENCE = 'urn:hub:reference-number';
const CASE_RESOURCE = 'urn:hub:case-resource';
const CASE_STATE = 'urn:hub:case-state';
const MATERIAL_COUNT = 'urn:hub:material-count';
const OVERRIDE = 'urn:hub:extension:question-count-override';
const NPI = 'http://hl7.org/fhir/sid/us-npi';
const FEE_CODES = [
  'specialist-opinion',
  'imaging-review',
  'biopsy-review',
  'pathology-block',
  'unstained-slide',
  'special-stain',
  'extra-question',
  'record-pages',
  'record-collection',
  'follow-up-question',
];

/** Six questions as questions.ts counts them: the second asks two. */
const SIX_QUESTIONS = [
  'Is the lesion in the left lower lobe malignant?',
  'Is surgical resection indicated, and if so, which approach would you choose?',
  'Would you recommend a PET-CT before deciding?',
  'Does the enlarged mediastinal node need a biopsy?',
  'Please comment on the reading of the prior CT.',
];
const ONE_QUESTION = ['Is the lesion in the left lower lobe malignant?'];

const questionnaire = (patient: string, questions: readonly string[]) => ({
  resourceType: 'QuestionnaireResponse',
  status: 'completed',
  subject: { reference: patient },
  item: [{ linkId: 'question', answer: questions.map((valueString) => ({ valueString })) }],
});

/** The EHR's referral: the physician (conditional create), the questions and the request. */
function referralBundle(
  referenceNumber: string,
  options: { status: 'draft' | 'active'; planned: Planned; questions: readonly string[]; basedOn?: string },
) {
  const patient = `Patient?identifier=${REFERENCE}|${referenceNumber}`;
  const reference = { system: REFERENCE, value: referenceNumber };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:5d3f0a2e-8c1b-4e7a-9f60-1b2c3d4e5f01',
        resource: {
          resourceType: 'Practitioner',
          identifier: [{ system: NPI, value: '1234567893' }],
          name: [{ family: 'Okonkwo', given: ['Adaeze'] }],
        },
        request: { method: 'POST', url: 'Practitioner', ifNoneExist: `identifier=${NPI}|1234567893` },
      },
      {
        fullUrl: 'urn:uuid:5d3f0a2e-8c1b-4e7a-9f60-1b2c3d4e5f02',
        resource: questionnaire(patient, options.questions),
        request: { method: 'POST', url: 'QuestionnaireResponse' },
      },
      {
        fullUrl: 'urn:uuid:5d3f0a2e-8c1b-4e7a-9f60-1b2c3d4e5f03',
        resource: {
          resourceType: 'ServiceRequest',
          status: options.status,
          intent: 'order',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0336', code: 'S' }] }],
          // R4 prr-1: orderDetail only with a code.
          code: { text: options.basedOn ? 'Follow-up question' : 'Second opinion' },
          identifier: [reference],
          requisition: reference,
          ...(options.basedOn ? { basedOn: [{ reference: options.basedOn }] } : {}),
          subject: { reference: patient },
          requester: { reference: 'urn:uuid:5d3f0a2e-8c1b-4e7a-9f60-1b2c3d4e5f01' },
          supportingInfo: [{ reference: 'urn:uuid:5d3f0a2e-8c1b-4e7a-9f60-1b2c3d4e5f02' }],
          orderDetail: orderDetail(options.planned),
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
    ],
  };
}

/** How long to wait for the workflow (it runs in the background, slowly on a loaded machine). */
const WAIT_MS = 90_000;

interface Case {
  patientId: string;
  referenceNumber: string;
  serviceRequestId: string;
  questionsId: string;
}

const quotePart = (task: any, url: string) =>
  task.extension
    ?.find((extension: { url: string }) => extension.url === 'urn:hub:extension:quote')
    ?.extension?.find((part: { url: string }) => part.url === url);
const stateOf = (task: any): string | undefined =>
  task?.businessStatus?.coding?.find((coding: { system: string }) => coding.system === CASE_STATE)?.code;

describe('closing the gaps of the case workflow', () => {
  let th: TestHub;
  let sql: pg.Client;
  let ctx: WorkflowContext;
  let deps: WorkflowWorkerDeps;

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres', env: { ...WITH_WORKERS } });
    sql = new pg.Client({ connectionString: th.databaseUrl });
    await sql.connect();
    ctx = workflowContextOf(th);
    deps = {
      ...ctx,
      db: th.hub.db,
      mailer: undefined as never,
      baseUrl: th.config.baseUrl,
      logger: pino({ level: 'silent' }),
      queues: th.hub.workers!.producer,
      clock: th.clock,
    };
  }, 60_000);

  afterAll(async () => {
    await sql?.end();
    await th?.stop();
  });

  const read = async (reference: string): Promise<any> => {
    const response = await fhirFetch(`${th.fhir}/${reference}`);
    expect(response.status).toBe(200);
    return response.body;
  };
  const search = async (query: string): Promise<any[]> => {
    const response = await fhirFetch(`${th.fhir}/${query}${query.includes('?') ? '&' : '?'}_count=1000`);
    expect(response.status).toBe(200);
    return (response.body.entry ?? []).map((entry: { resource: unknown }) => entry.resource);
  };
  const byRole = async (type: string, serviceRequestId: string, role: string): Promise<any | undefined> =>
    (await search(`${type}?identifier=${encodeURIComponent(`${CASE_RESOURCE}|${serviceRequestId}/${role}`)}`))[0];
  const coordination = (c: Case) => byRole('Task', c.serviceRequestId, 'coordination');
  const put = async (reference: string, edit: (resource: any) => any): Promise<any> => {
    const current = await read(reference);
    const response = await fhirFetch(`${th.fhir}/${reference}`, {
      method: 'PUT',
      body: edit(structuredClone(current)),
      headers: { 'if-match': `W/"${current.meta.versionId}"` },
    });
    expect([response.status, response.status === 200 ? '' : JSON.stringify(response.body)]).toEqual([200, '']);
    return response.body;
  };

  /** The case's live quote lines: fee code → status, quantity and price in dollars. */
  const chargeLines = async (
    c: Case,
  ): Promise<Record<string, { status: string; quantity: number; price?: number }>> => {
    const query = FEE_CODES.map((code) =>
      encodeURIComponent(`${CASE_RESOURCE}|${c.serviceRequestId}/charge/${code}`),
    ).join(',');
    const items = await search(`ChargeItem?identifier=${query}`);
    return Object.fromEntries(
      items
        .filter((item) => item.status !== 'entered-in-error')
        .map((item) => [
          item.code.coding[0].code,
          {
            status: item.status,
            quantity: item.quantity.value,
            ...(item.priceOverride ? { price: item.priceOverride.value } : {}),
          },
        ]),
    );
  };

  async function registerPatient(): Promise<{ id: string; referenceNumber: string }> {
    return registerPatientAt(th.fhir, {
      name: [{ family: 'Thistlewood', given: ['Marguerite'] }],
      birthDate: '1959-02-17',
      telecom: [{ system: 'email', value: 'marguerite@example.org' }],
      address: [{ use: 'home', city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' }],
    });
  }

  async function refer(
    patient: { id: string; referenceNumber: string },
    options: Parameters<typeof referralBundle>[1],
  ): Promise<Case> {
    const response = await fhirFetch(th.fhir, {
      method: 'POST',
      body: referralBundle(patient.referenceNumber, options),
    });
    expect([response.status, response.status === 200 ? '' : JSON.stringify(response.body)]).toEqual([200, '']);
    const id = (index: number) => response.body.entry[index].response.location.split('/')[1];
    return {
      patientId: patient.id,
      referenceNumber: patient.referenceNumber,
      questionsId: id(1),
      serviceRequestId: id(2),
    };
  }

  const inState = (c: Case, state: string) =>
    until(
      async () => {
        const task = await coordination(c);
        return stateOf(task) === state && task.status !== undefined ? task : undefined;
      },
      `ServiceRequest/${c.serviceRequestId} in state ${state}`,
      WAIT_MS,
    );

  /** Waits until the outbox is relayed and the workflow queues are idle. */
  async function settled(): Promise<void> {
    const connection = producerConnection(th.config.redisUrl);
    const queues = ['fhir-resource-events', 'case-intake', 'case-materials', 'case-progression'].map(
      (name) => new Queue(name, { connection, prefix: th.config.queuePrefix }),
    );
    try {
      await until(
        async () => {
          const pending = Number(
            (await sql.query('SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL')).rows[0].n,
          );
          if (pending > 0) {
            return false;
          }
          for (const queue of queues) {
            const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
            if (Object.values(counts).some((n) => n > 0)) {
              return false;
            }
          }
          return true;
        },
        'the outbox and the queues to drain',
        WAIT_MS,
      );
    } finally {
      await Promise.all(queues.map((queue) => queue.close()));
      connection.disconnect();
    }
  }

  /** The ids of the jobs of a queue starting with a prefix, whatever their state. */
  async function jobIds(queueName: string, prefix: string): Promise<string[]> {
    const connection = producerConnection(th.config.redisUrl);
    const queue = new Queue(queueName, { connection, prefix: th.config.queuePrefix });
    try {
      const jobs = await queue.getJobs(['completed', 'waiting', 'active', 'delayed', 'failed', 'prioritized']);
      return jobs
        .map((job) => job.id ?? '')
        .filter((id) => id.startsWith(prefix))
        .sort();
    } finally {
      await queue.close();
      connection.disconnect();
    }
  }

  /** Every resource of a case with its version: what a repeated job must leave as it is. */
  const snapshot = async (c: Case): Promise<string[]> => {
    const resources = [
      ...(await search(`Task?based-on=ServiceRequest/${c.serviceRequestId}`)),
      ...(await search(`ChargeItem?subject=Patient/${c.patientId}`)),
      ...(await search(`DocumentReference?subject=Patient/${c.patientId}`)),
      await read(`ServiceRequest/${c.serviceRequestId}`),
    ];
    return resources.map((resource) => `${resource.resourceType}/${resource.id}/${resource.meta.versionId}`).sort();
  };

  const requote = (c: Case) =>
    runCaseMaterialStep(th.hub.db, ctx, { resourceType: 'ServiceRequest', id: c.serviceRequestId });
  const routeOnce = { id: 'test', queue: 'fhir-resource-events', attemptsMade: 0, attempts: 1, finalAttempt: true };

  test('a coordinator corrects the question count on the coordination Task: the quote bills it beside the detected count', async () => {
    const c = await refer(await registerPatient(), {
      status: 'active',
      planned: { imagingSites: 1 },
      questions: SIX_QUESTIONS,
    });
    await inState(c, 'submitted');
    expect((await chargeLines(c))['extra-question']).toEqual({ status: 'billable', quantity: 2, price: 200 });

    // The coordinator accepts the case first, so the re-quote runs past intake.
    await settled();
    await put(`Task/${(await coordination(c)).id}`, (task) => ({
      ...task,
      businessStatus: { coding: [{ system: CASE_STATE, code: 'awaiting-materials' }] },
    }));
    await inState(c, 'awaiting-materials');
    await settled();
    const overriding = await put(`Task/${(await coordination(c)).id}`, (task) => ({
      ...task,
      extension: [
        ...task.extension,
        {
          url: OVERRIDE,
          extension: [
            { url: 'count', valueUnsignedInt: 7 },
            { url: 'reason', valueString: 'Question 5 asks about two prior studies.' },
            { url: 'setBy', valueReference: { reference: 'Practitioner/coordinator-1' } },
          ],
        },
      ],
    }));
    const requoted = await until(
      async () => {
        const task = await coordination(c);
        return quotePart(task, 'questionCount')?.valueUnsignedInt === 7 ? task : undefined;
      },
      'the re-quote with the override',
      WAIT_MS,
    );
    expect(stateOf(requoted)).toBe('awaiting-materials');
    expect(quotePart(requoted, 'detectedQuestionCount')).toEqual({ url: 'detectedQuestionCount', valueUnsignedInt: 6 });
    expect(quotePart(requoted, 'questionCountOverridden')).toEqual({
      url: 'questionCountOverridden',
      valueBoolean: true,
    });
    expect(requoted.extension.find((extension: { url: string }) => extension.url === OVERRIDE)).toEqual(
      overriding.extension.find((e: { url: string }) => e.url === OVERRIDE),
    );
    // Opinion $750, one imaging site $375, 7 − 4 questions × $100.
    expect(quotePart(requoted, 'total')).toEqual({
      url: 'total',
      valueMoney: { value: 750 + 375 + 300, currency: 'USD' },
    });
    expect((await chargeLines(c))['extra-question']).toEqual({ status: 'billable', quantity: 3, price: 300 });

    // Run again, directly and through a replayed event: nothing changes, nothing more is queued.
    await settled();
    const before = await snapshot(c);
    expect(await requote(c)).toBe('re-quoted');
    expect(await requote(c)).toBe('re-quoted');
    expect(await snapshot(c)).toEqual(before);
    const event = { resourceType: 'Task', id: requoted.id, versionId: requoted.meta.versionId, interaction: 'update' };
    const routed = await routeResourceEvent(event, routeOnce, deps);
    expect(routed.routed.filter((job) => job.startsWith('case-materials/'))).toEqual([]);
    // One re-quote was queued, for the coordinator's version of the Task; the workflow's own writes queued none.
    expect(await jobIds('case-materials', `materials-requote-${c.serviceRequestId}-`)).toEqual([
      `materials-requote-${c.serviceRequestId}-Task-${requoted.id}-v${overriding.meta.versionId}`,
    ]);

    // An override without a reason is not applied: the quote becomes a manual one that says why.
    await settled();
    await put(`Task/${requoted.id}`, (task) => ({
      ...task,
      extension: task.extension.map((extension: any) =>
        extension.url === OVERRIDE
          ? {
              url: OVERRIDE,
              extension: [
                { url: 'count', valueUnsignedInt: 2 },
                { url: 'setBy', valueString: 'coordinator-1' },
              ],
            }
          : extension,
      ),
    }));
    const refused = await until(
      async () => {
        const task = await coordination(c);
        return quotePart(task, 'manualQuote') ? task : undefined;
      },
      'the manual quote',
      WAIT_MS,
    );
    expect(quotePart(refused, 'manualQuote').valueString).toMatch(/override needs a `reason`/);
    expect(quotePart(refused, 'total')).toBeUndefined();
    expect(quotePart(refused, 'questionCount').valueUnsignedInt).toBe(6);

    // Removing the override returns to the detected count.
    await settled();
    await put(`Task/${requoted.id}`, (task) => ({
      ...task,
      extension: task.extension.filter((extension: { url: string }) => extension.url !== OVERRIDE),
    }));
    const restored = await until(
      async () => {
        const task = await coordination(c);
        return quotePart(task, 'questionCountOverridden')?.valueBoolean === false && !quotePart(task, 'manualQuote')
          ? task
          : undefined;
      },
      'the override removed',
      WAIT_MS,
    );
    expect(quotePart(restored, 'total').valueMoney.value).toBe(750 + 375 + 200);
    expect((await chargeLines(c))['extra-question']).toEqual({ status: 'billable', quantity: 2, price: 200 });
  }, 240_000);

  test('a new version of the physician’s questions re-quotes the case whose request lists them', async () => {
    const c = await refer(await registerPatient(), {
      status: 'active',
      planned: { imagingSites: 1 },
      questions: ONE_QUESTION,
    });
    await inState(c, 'submitted');
    expect(await chargeLines(c)).toEqual({
      'imaging-review': { status: 'planned', quantity: 1, price: 375 },
      'specialist-opinion': { status: 'billable', quantity: 1, price: 750 },
    });
    const patient = `Patient/${c.patientId}`;
    const updated = await put(`QuestionnaireResponse/${c.questionsId}`, (response) => ({
      ...questionnaire(patient, SIX_QUESTIONS),
      id: response.id,
    }));
    await until(
      async () => (await chargeLines(c))['extra-question']?.quantity === 2,
      'the re-quote for six questions',
      WAIT_MS,
    );
    const task = await coordination(c);
    expect(quotePart(task, 'questionCount').valueUnsignedInt).toBe(6);
    expect(quotePart(task, 'total').valueMoney.value).toBe(750 + 375 + 200);

    // The event of that version routes a re-quote (and intake, for a case still in intake) once.
    const event = {
      resourceType: 'QuestionnaireResponse',
      id: c.questionsId,
      versionId: updated.meta.versionId,
      interaction: 'update',
    };
    const routed = await routeResourceEvent(event, routeOnce, deps);
    expect(routed.routed.sort()).toEqual(
      [
        `case-intake/intake-${c.serviceRequestId}-QuestionnaireResponse-${c.questionsId}-v${updated.meta.versionId}`,
        `case-materials/materials-requote-${c.serviceRequestId}-QuestionnaireResponse-${c.questionsId}-v${updated.meta.versionId}`,
      ].sort(),
    );
    await settled();
    const before = await snapshot(c);
    expect(await requote(c)).toBe('re-quoted');
    expect(await requote(c)).toBe('re-quoted');
    expect(await runIntake(ctx, { serviceRequestId: c.serviceRequestId })).toMatchObject({ outcome: 'submitted' });
    expect(await snapshot(c)).toEqual(before);
  }, 180_000);

  const pdfBytes = async (pages: number): Promise<Buffer> => {
    const pdf = await PDFDocument.create();
    for (let page = 0; page < pages; page++) {
      pdf.addPage([612, 792]).drawText(`Clinic letter, page ${page + 1}`);
    }
    return Buffer.from(await pdf.save());
  };
  const uploadBinary = async (bytes: Buffer, contentType: string): Promise<string> => {
    const response = await fetch(`${th.fhir}/Binary`, {
      method: 'POST',
      body: bytes,
      headers: { 'content-type': contentType, accept: 'application/fhir+json' },
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { id: string }).id;
  };
  const postResource = async (resource: Record<string, unknown>): Promise<any> => {
    const response = await fhirFetch(`${th.fhir}/${resource.resourceType as string}`, {
      method: 'POST',
      body: resource,
    });
    expect([response.status, response.status === 201 ? '' : JSON.stringify(response.body)]).toEqual([201, '']);
    return response.body;
  };
  const specimen = (c: Case, site: string) =>
    postResource({
      resourceType: 'Specimen',
      status: 'available',
      subject: { reference: `Patient/${c.patientId}` },
      request: [{ reference: `ServiceRequest/${c.serviceRequestId}` }],
      collection: { bodySite: { text: site } },
    });
  const expectTask = (c: Case, kind: string) => byRole('Task', c.serviceRequestId, `expect-material/${kind}`);
  const outputCount = (task: any, code: string) =>
    task.output?.find(
      (output: any) => output.type.coding[0].system === MATERIAL_COUNT && output.type.coding[0].code === code,
    )?.valueInteger;

  test('materials sent before the request was submitted, of kinds it did and did not plan, are taken up and priced at intake', async () => {
    const c = await refer(await registerPatient(), {
      status: 'draft',
      planned: { recordPages: 120 },
      questions: ONE_QUESTION,
    });
    // Records found by their patient alone, and a biopsy the request does not plan, before submission.
    const binaryId = await uploadBinary(await pdfBytes(3), 'application/pdf');
    const document = await postResource({
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: `Patient/${c.patientId}` },
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${binaryId}` } }],
    });
    const biopsy = await specimen(c, 'left breast');
    await settled();
    expect((await read(`DocumentReference/${document.id}`)).extension).toBeUndefined();
    expect(await search(`Task?based-on=ServiceRequest/${c.serviceRequestId}`)).toEqual([]);

    await put(`ServiceRequest/${c.serviceRequestId}`, (request) => ({ ...request, status: 'active' }));
    const task = await inState(c, 'submitted');
    const records = await expectTask(c, 'records');
    expect(records.status).toBe('completed');
    expect(outputCount(records, 'record-pages')).toBe(3);
    const pathology = await expectTask(c, 'pathology');
    expect(pathology).toMatchObject({ status: 'completed', partOf: [{ reference: `Task/${task.id}` }] });
    expect(pathology.output.map((output: any) => output.valueReference?.reference).filter(Boolean)).toEqual([
      `Specimen/${biopsy.id}`,
    ]);
    const counted = await read(`DocumentReference/${document.id}`);
    expect(counted.extension).toEqual([{ url: 'urn:hub:extension:page-count', valueInteger: 3 }]);
    expect(counted.context.related).toEqual([{ reference: `ServiceRequest/${c.serviceRequestId}` }]);
    // 3 pages are within the 50 included; the unplanned biopsy is priced and billable.
    expect(await chargeLines(c)).toEqual({
      'biopsy-review': { status: 'billable', quantity: 1, price: 425 },
      'specialist-opinion': { status: 'billable', quantity: 1, price: 750 },
    });
    expect(quotePart(task, 'total').valueMoney.value).toBe(750 + 425);

    await settled();
    const before = await snapshot(c);
    expect(await runIntake(ctx, { serviceRequestId: c.serviceRequestId })).toMatchObject({ outcome: 'submitted' });
    expect(await runIntake(ctx, { serviceRequestId: c.serviceRequestId })).toMatchObject({ outcome: 'submitted' });
    expect(await snapshot(c)).toEqual(before);

    // After intake, a second unplanned biopsy site adds to the line.
    await specimen(c, 'right axillary node');
    await until(
      async () => (await chargeLines(c))['biopsy-review']?.quantity === 2,
      'the second biopsy site priced',
      WAIT_MS,
    );
    expect((await chargeLines(c))['biopsy-review']).toEqual({ status: 'billable', quantity: 2, price: 850 });
  }, 180_000);

  test('material that arrives although its plan was dropped is priced and billable; material a coordinator waives is no longer priced', async () => {
    const c = await refer(await registerPatient(), {
      status: 'active',
      planned: { recordPages: 120, biopsySites: 1 },
      questions: ONE_QUESTION,
    });
    await inState(c, 'submitted');
    expect(await chargeLines(c)).toEqual({
      'biopsy-review': { status: 'planned', quantity: 1, price: 425 },
      'record-pages': { status: 'planned', quantity: 1, price: 75 },
      'specialist-opinion': { status: 'billable', quantity: 1, price: 750 },
    });

    // The physician no longer plans pathology; a biopsy comes all the same.
    await settled();
    await put(`ServiceRequest/${c.serviceRequestId}`, (request) => ({
      ...request,
      orderDetail: orderDetail({ recordPages: 120 }),
    }));
    await until(
      async () => (await expectTask(c, 'pathology'))?.status === 'cancelled',
      'the pathology Task cancelled',
      WAIT_MS,
    );
    await until(async () => !(await chargeLines(c))['biopsy-review'], 'the biopsy line withdrawn', WAIT_MS);
    const biopsy = await specimen(c, 'left breast');
    await until(async () => (await chargeLines(c))['biopsy-review'], 'the biopsy priced', WAIT_MS);
    expect((await chargeLines(c))['biopsy-review']).toEqual({ status: 'billable', quantity: 1, price: 425 });
    const pathology = await expectTask(c, 'pathology');
    expect(pathology.output.map((output: any) => output.valueReference?.reference).filter(Boolean)).toEqual([
      `Specimen/${biopsy.id}`,
    ]);

    // Accepted, then the coordinator waives the records: their estimated pages are no longer charged.
    await settled();
    await put(`Task/${(await coordination(c)).id}`, (task) => ({
      ...task,
      businessStatus: { coding: [{ system: CASE_STATE, code: 'awaiting-materials' }] },
    }));
    await inState(c, 'awaiting-materials');
    await settled();
    await put(`Task/${(await expectTask(c, 'records')).id}`, (task) => ({
      ...task,
      status: 'cancelled',
      statusReason: { text: 'The patient has no further records.' },
    }));
    await until(async () => !(await chargeLines(c))['record-pages'], 'the record-pages line withdrawn', WAIT_MS);
    expect(await chargeLines(c)).toEqual({
      'biopsy-review': { status: 'billable', quantity: 1, price: 425 },
      'specialist-opinion': { status: 'billable', quantity: 1, price: 750 },
    });
    expect(quotePart(await coordination(c), 'total').valueMoney.value).toBe(750 + 425);

    await settled();
    const before = await snapshot(c);
    expect(await requote(c)).toBe('re-quoted');
    expect(await requote(c)).toBe('re-quoted');
    expect(await snapshot(c)).toEqual(before);
  }, 240_000);

  test('a follow-up question based on the first request is its own case under the same reference number, billed the follow-up fee only', async () => {
    const patient = await registerPatient();
    const first = await refer(patient, { status: 'active', planned: { imagingSites: 1 }, questions: SIX_QUESTIONS });
    const firstTask = await inState(first, 'submitted');
    const followUp = await refer(patient, {
      status: 'active',
      planned: {},
      questions: ONE_QUESTION,
      basedOn: `ServiceRequest/${first.serviceRequestId}`,
    });
    const task = await inState(followUp, 'submitted');
    expect(task).toMatchObject({
      partOf: [{ reference: `Task/${firstTask.id}` }],
      basedOn: [{ reference: `ServiceRequest/${followUp.serviceRequestId}` }],
      groupIdentifier: { system: REFERENCE, value: patient.referenceNumber },
    });
    expect(await chargeLines(followUp)).toEqual({
      'follow-up-question': { status: 'billable', quantity: 1, price: 250 },
    });
    expect(quotePart(task, 'total').valueMoney.value).toBe(250);
    // The first case keeps its own quote.
    expect((await chargeLines(first))['specialist-opinion']).toEqual({ status: 'billable', quantity: 1, price: 750 });

    await settled();
    const before = await snapshot(followUp);
    expect(await runIntake(ctx, { serviceRequestId: followUp.serviceRequestId })).toMatchObject({
      outcome: 'submitted',
    });
    expect(await requote(followUp)).toBe('re-quoted');
    expect(await snapshot(followUp)).toEqual(before);

    // A follow-up of a request that never became a case waits in intake, saying why, and is not charged.
    const draft = await refer(patient, { status: 'draft', planned: {}, questions: ONE_QUESTION });
    const orphan = await refer(patient, {
      status: 'active',
      planned: {},
      questions: ONE_QUESTION,
      basedOn: `ServiceRequest/${draft.serviceRequestId}`,
    });
    const waiting = await inState(orphan, 'intake');
    expect(waiting.statusReason.text).toBe(
      `The request is based on ServiceRequest/${draft.serviceRequestId}, which is not a case of the hub.`,
    );
    expect(waiting.partOf).toBeUndefined();
    expect(await chargeLines(orphan)).toEqual({});
  }, 180_000);

  test('a document over PDF_PAGE_COUNT_MAX_BYTES is flagged too-large, not parsed, and still counts as records', async () => {
    expect(PDF_PAGE_COUNT_MAX_BYTES).toBe(64 * 1024 * 1024);
    const c = await refer(await registerPatient(), {
      status: 'active',
      planned: { recordPages: 10 },
      questions: ONE_QUESTION,
    });
    await inState(c, 'submitted');
    // A real one-page PDF padded with trailing spaces past the limit: pdf-lib would read it.
    const pdf = await pdfBytes(1);
    const large = Buffer.alloc(PDF_PAGE_COUNT_MAX_BYTES + 1, 0x20);
    pdf.copy(large);
    const binaryId = await uploadBinary(large, 'application/pdf');
    const document = await postResource({
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: `Patient/${c.patientId}` },
      context: { related: [{ reference: `ServiceRequest/${c.serviceRequestId}` }] },
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${binaryId}` } }],
    });
    const flagged = await until(
      async () => {
        const current = await read(`DocumentReference/${document.id}`);
        return current.meta.tag ? current : undefined;
      },
      'the too-large flag',
      WAIT_MS,
    );
    expect(flagged.meta.tag).toEqual([
      {
        system: 'urn:hub:material-flag',
        code: 'too-large',
        display: expect.stringContaining('PDF_PAGE_COUNT_MAX_BYTES'),
      },
    ]);
    expect(flagged.extension).toBeUndefined();
    const records = await until(
      async () => {
        const task = await expectTask(c, 'records');
        return task.status === 'completed' ? task : undefined;
      },
      'the records Task to complete',
      WAIT_MS,
    );
    expect(records.output.map((output: any) => output.valueReference?.reference).filter(Boolean)).toEqual([
      `DocumentReference/${document.id}`,
    ]);

    // A small PDF is read as before.
    const small = await postResource({
      resourceType: 'DocumentReference',
      status: 'current',
      context: { related: [{ reference: `ServiceRequest/${c.serviceRequestId}` }] },
      content: [{ attachment: { contentType: 'application/pdf', data: (await pdfBytes(2)).toString('base64') } }],
    });
    await until(
      async () => (await read(`DocumentReference/${small.id}`)).extension?.[0]?.valueInteger === 2,
      'the small PDF counted',
      WAIT_MS,
    );

    await settled();
    const before = await snapshot(c);
    expect(await runCaseMaterialStep(th.hub.db, ctx, { resourceType: 'DocumentReference', id: document.id })).toBe(
      'synced',
    );
    expect(await runCaseMaterialStep(th.hub.db, ctx, { resourceType: 'DocumentReference', id: document.id })).toBe(
      'synced',
    );
    expect(await snapshot(c)).toEqual(before);
  }, 240_000);
});
