/**
 * Case intake from the EHR's side: a referral Bundle POSTed to /fhir goes through the outbox, the
 * `fhir-resource-events` router and the `case-intake` worker of a real hub (PostgreSQL, Redis), and
 * the test polls the FHIR API for the coordination Task, the expect-material Tasks and the quote's
 * ChargeItems. The job function is also run directly, repeatedly and concurrently, on the same data.
 */
import { randomInt } from 'node:crypto';
import { Queue } from 'bullmq';
import pg from 'pg';
import { pino } from 'pino';
import { dammCheckDigit } from '../src/cases/reference-number.ts';
import { producerConnection } from '../src/queues/connection.ts';
import { routeResourceEvent } from '../src/workflow/jobs/resource-events.ts';
import { runIntake } from '../src/workflow/intake.ts';
import type { WorkflowContext, WorkflowWorkerDeps } from '../src/workflow/context.ts';
import { fhirFetch, startTestHub, WITH_WORKERS } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { orderDetail, registerPatient as registerPatientAt, workflowContextOf } from './support/case-fixtures.ts';
import type { Planned } from './support/case-fixtures.ts';

const REFERENCE = 'urn:hub:reference-number';
const CASE_RESOURCE = 'urn:hub:case-resource';
const NPI = 'http://hl7.org/fhir/sid/us-npi';

const QUESTIONS = [
  'Is the lesion in the left lower lobe malignant?',
  // Two parts: "and if so, which …" asks a second question.
  'Is surgical resection indicated, and if so, which approach would you choose?',
  'Would you recommend a PET-CT before deciding?',
  'Does the enlarged mediastinal node need a biopsy?',
  'Please comment on the reading of the prior CT.',
];

function serviceRequest(
  referenceNumber: string,
  status: 'draft' | 'active',
  planned: Planned,
  refs: { requester: string; questions?: string; subject: string },
) {
  const identifier = { system: REFERENCE, value: referenceNumber };
  return {
    resourceType: 'ServiceRequest',
    status,
    intent: 'order',
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0336', code: 'S', display: 'Second Opinion' }] },
    ],
    // R4 prr-1: orderDetail (the planned materials) needs a code.
    code: { coding: [{ system: 'urn:hub:service', code: 'second-opinion' }], text: 'Second opinion' },
    identifier: [identifier],
    requisition: identifier,
    subject: { reference: refs.subject },
    requester: { reference: refs.requester },
    ...(refs.questions ? { supportingInfo: [{ reference: refs.questions }] } : {}),
    orderDetail: orderDetail(planned),
  };
}

/** The EHR's referral: Practitioner (conditional create), the questions, and the request. */
function referralBundle(referenceNumber: string, status: 'draft' | 'active', planned: Planned, withQuestions = true) {
  const patient = `Patient?identifier=${REFERENCE}|${referenceNumber}`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:0b6c7e64-8f0c-4f57-9d43-3f4f1c2b8a01',
        resource: {
          resourceType: 'Practitioner',
          identifier: [{ system: NPI, value: '1234567893' }],
          name: [{ family: 'Okonkwo', given: ['Adaeze'] }],
        },
        request: { method: 'POST', url: 'Practitioner', ifNoneExist: `identifier=${NPI}|1234567893` },
      },
      {
        fullUrl: 'urn:uuid:0b6c7e64-8f0c-4f57-9d43-3f4f1c2b8a02',
        resource: {
          resourceType: 'QuestionnaireResponse',
          status: 'completed',
          subject: { reference: patient },
          author: { reference: 'urn:uuid:0b6c7e64-8f0c-4f57-9d43-3f4f1c2b8a01' },
          item: [
            {
              linkId: 'question',
              text: 'Your questions for the specialist',
              answer: QUESTIONS.map((valueString) => ({ valueString })),
            },
          ],
        },
        request: { method: 'POST', url: 'QuestionnaireResponse' },
      },
      {
        fullUrl: 'urn:uuid:0b6c7e64-8f0c-4f57-9d43-3f4f1c2b8a03',
        resource: serviceRequest(referenceNumber, status, planned, {
          subject: patient,
          requester: 'urn:uuid:0b6c7e64-8f0c-4f57-9d43-3f4f1c2b8a01',
          ...(withQuestions ? { questions: 'urn:uuid:0b6c7e64-8f0c-4f57-9d43-3f4f1c2b8a02' } : {}),
        }),
        request: { method: 'POST', url: 'ServiceRequest' },
      },
    ],
  };
}

const dollars = (value: number) => ({ value, currency: 'USD' });

describe('case intake', () => {
  let hub: TestHub;
  let sql: pg.Client;
  let ctx: WorkflowContext;

  beforeAll(async () => {
    hub = await startTestHub({ db: 'postgres', env: { ...WITH_WORKERS } });
    sql = new pg.Client({ connectionString: hub.databaseUrl });
    await sql.connect();
    ctx = workflowContextOf(hub);
  }, 60_000);

  afterAll(async () => {
    await sql?.end();
    await hub?.stop();
  });

  const search = async (query: string): Promise<any[]> => {
    const response = await fhirFetch(`${hub.fhir}/${query}${query.includes('?') ? '&' : '?'}_count=1000`);
    expect(response.status).toBe(200);
    return (response.body.entry ?? []).map((entry: { resource: unknown }) => entry.resource);
  };
  const caseResource = async (type: string, serviceRequestId: string, role: string): Promise<any | undefined> =>
    (await search(`${type}?identifier=${encodeURIComponent(`${CASE_RESOURCE}|${serviceRequestId}/${role}`)}`))[0];

  async function registerPatient(): Promise<{ id: string; referenceNumber: string }> {
    return registerPatientAt(hub.fhir, {
      name: [{ family: 'Quillfeather', given: ['Ottoline'] }],
      birthDate: '1961-04-23',
      telecom: [{ system: 'email', value: 'ottoline@example.org' }],
      address: [
        { use: 'home', line: ['12 Elm Street'], city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' },
      ],
    });
  }

  async function submit(
    referenceNumber: string,
    status: 'draft' | 'active',
    planned: Planned,
    withQuestions = true,
  ): Promise<{ serviceRequestId: string; questionsId: string; requesterId: string }> {
    const response = await fhirFetch(hub.fhir, {
      method: 'POST',
      body: referralBundle(referenceNumber, status, planned, withQuestions),
    });
    expect([response.status, response.status === 200 ? '' : JSON.stringify(response.body)]).toEqual([200, '']);
    const id = (index: number) => response.body.entry[index].response.location.split('/')[1];
    return { requesterId: id(0), questionsId: id(1), serviceRequestId: id(2) };
  }

  const coordinationTask = (serviceRequestId: string, state: string) =>
    until(async () => {
      const task = await caseResource('Task', serviceRequestId, 'coordination');
      return task?.businessStatus?.coding?.[0]?.code === state ? task : undefined;
    }, `the coordination Task of ServiceRequest/${serviceRequestId} in state ${state}`);

  const chargeLines = async (serviceRequestId: string) => {
    const items = await search(
      `ChargeItem?identifier=${[
        'specialist-opinion',
        'imaging-review',
        'extra-question',
        'record-pages',
        'record-collection',
      ]
        .map((code) => encodeURIComponent(`${CASE_RESOURCE}|${serviceRequestId}/charge/${code}`))
        .join(',')}`,
    );
    return items
      .map((item) => ({
        code: item.code.coding[0].code,
        status: item.status,
        quantity: item.quantity.value,
        price: item.priceOverride,
        id: item.id,
      }))
      .sort((a, b) => a.code.localeCompare(b.code));
  };

  /** Waits until nothing is left in the outbox or on the event and intake queues. */
  async function settled(): Promise<void> {
    const connection = producerConnection(hub.config.redisUrl);
    const queues = ['fhir-resource-events', 'case-intake'].map(
      (name) => new Queue(name, { connection, prefix: hub.config.queuePrefix }),
    );
    try {
      await until(async () => {
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
      }, 'the outbox and the queues to drain');
    } finally {
      await Promise.all(queues.map((queue) => queue.close()));
      connection.disconnect();
    }
  }

  test('an EHR referral Bundle becomes a submitted case with expected materials and a priced quote', async () => {
    const patient = await registerPatient();
    const { serviceRequestId, requesterId } = await submit(patient.referenceNumber, 'active', {
      imagingSites: 2,
      recordPages: 120,
    });

    const task = await coordinationTask(serviceRequestId, 'submitted');
    expect(task).toMatchObject({
      status: 'requested',
      intent: 'order',
      code: { coding: [{ system: 'urn:hub:task-code', code: 'coordination' }] },
      businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'submitted' }] },
      basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
      focus: { reference: `ServiceRequest/${serviceRequestId}` },
      for: { reference: `Patient/${patient.id}` },
      groupIdentifier: { system: REFERENCE, value: patient.referenceNumber },
      requester: { reference: `Practitioner/${requesterId}` },
    });
    expect(task.identifier).toContainEqual({ system: CASE_RESOURCE, value: `${serviceRequestId}/coordination` });
    const quote = task.extension.find((extension: { url: string }) => extension.url === 'urn:hub:extension:quote');
    expect(quote.extension).toContainEqual({ url: 'total', valueMoney: dollars(1775) });

    const children = await search(`Task?part-of=Task/${task.id}`);
    expect(
      children.map((child) => [child.code.coding[0].code, child.status, child.input[0].valueCoding.code]).sort(),
    ).toEqual([
      ['expect-material', 'requested', 'imaging'],
      ['expect-material', 'requested', 'records'],
    ]);
    const imaging = children.find((child) => child.input[0].valueCoding.code === 'imaging');
    expect(imaging.input).toContainEqual({
      type: { coding: [{ system: 'urn:hub:material-count', code: 'imaging-sites' }] },
      valueInteger: 2,
    });
    expect(imaging.identifier).toContainEqual({
      system: CASE_RESOURCE,
      value: `${serviceRequestId}/expect-material/imaging`,
    });

    // DEFAULT_FEE_SCHEDULE: opinion $750; 2 imaging sites × $375; 6 questions (one has two parts) −
    // 4 included = 2 × $100; 120 pages fall in the 101–125 tier, $75. Lines on expected material are planned.
    expect((await chargeLines(serviceRequestId)).map(({ id: _id, ...line }) => line)).toEqual([
      { code: 'extra-question', status: 'billable', quantity: 2, price: dollars(200) },
      { code: 'imaging-review', status: 'planned', quantity: 2, price: dollars(750) },
      { code: 'record-pages', status: 'planned', quantity: 1, price: dollars(75) },
      { code: 'specialist-opinion', status: 'billable', quantity: 1, price: dollars(750) },
    ]);
    const [opinion] = await search(
      `ChargeItem?identifier=${encodeURIComponent(`${CASE_RESOURCE}|${serviceRequestId}/charge/specialist-opinion`)}`,
    );
    expect(opinion).toMatchObject({
      subject: { reference: `Patient/${patient.id}` },
      supportingInformation: [{ reference: `ServiceRequest/${serviceRequestId}` }],
      code: { coding: [{ system: 'urn:hub:fee-code', code: 'specialist-opinion' }] },
    });
  });

  test('the intake job run again, and concurrently, on the same request creates and changes nothing', async () => {
    const patient = await registerPatient();
    const { serviceRequestId } = await submit(patient.referenceNumber, 'active', { imagingSites: 1, recordPages: 60 });
    await coordinationTask(serviceRequestId, 'submitted');
    await settled();

    const snapshot = async () => {
      const tasks = await search(`Task?focus=ServiceRequest/${serviceRequestId}`);
      const charges = await search(`ChargeItem?subject=Patient/${patient.id}`);
      return [...tasks, ...charges]
        .map((resource) => `${resource.resourceType}/${resource.id}/${resource.meta.versionId}`)
        .sort();
    };
    const before = await snapshot();
    expect(before).toHaveLength(3 + 4); // coordination + 2 expect-material; opinion, imaging, pages, extra questions

    expect(await runIntake(ctx, { serviceRequestId })).toMatchObject({ outcome: 'submitted' });
    expect(await runIntake(ctx, { serviceRequestId })).toMatchObject({ outcome: 'submitted' });
    const concurrent = await Promise.all([1, 2, 3].map(() => runIntake(ctx, { serviceRequestId })));
    expect(concurrent.map((result) => result.outcome)).toEqual(['submitted', 'submitted', 'submitted']);
    expect(await snapshot()).toEqual(before);
  });

  test('a repeated event for the same version of a request queues its intake once', async () => {
    const patient = await registerPatient();
    const { serviceRequestId } = await submit(patient.referenceNumber, 'active', { recordPages: 10 });
    await coordinationTask(serviceRequestId, 'submitted');
    await settled();

    const deps: WorkflowWorkerDeps = {
      ...ctx,
      db: hub.hub.db,
      mailer: undefined as never,
      baseUrl: hub.config.baseUrl,
      logger: pino({ level: 'silent' }),
      queues: hub.hub.workers!.producer,
      clock: hub.clock,
    };
    const job = { id: 'replayed', queue: 'fhir-resource-events', attemptsMade: 0, attempts: 1, finalAttempt: true };
    const event = { resourceType: 'ServiceRequest', id: serviceRequestId, versionId: '1', interaction: 'create' };
    const first = await routeResourceEvent(event, job, deps);
    expect(first).toEqual({ routed: [`case-intake/intake-${serviceRequestId}-v1`] });
    expect(await routeResourceEvent(event, job, deps)).toEqual(first);

    const connection = producerConnection(hub.config.redisUrl);
    const queue = new Queue('case-intake', { connection, prefix: hub.config.queuePrefix });
    try {
      const jobs = await queue.getJobs(['completed', 'waiting', 'active', 'delayed', 'failed', 'prioritized']);
      expect(
        jobs
          .filter((candidate) => candidate.id?.startsWith(`intake-${serviceRequestId}-`))
          .map((candidate) => candidate.id),
      ).toEqual([`intake-${serviceRequestId}-v1`]);
    } finally {
      await queue.close();
      connection.disconnect();
    }
    // Events of other types without a route are acknowledged and route nothing.
    expect(
      await routeResourceEvent({ resourceType: 'Consent', id: 'c1', versionId: '1', interaction: 'create' }, job, deps),
    ).toEqual({ routed: [] });
  });

  test('a draft request creates nothing; completing it (draft → active) submits the case', async () => {
    const patient = await registerPatient();
    const { serviceRequestId } = await submit(patient.referenceNumber, 'draft', { recordPages: 30 });
    await settled();
    expect(await runIntake(ctx, { serviceRequestId })).toEqual({ outcome: 'not-active', status: 'draft' });
    expect(await search(`Task?focus=ServiceRequest/${serviceRequestId}`)).toEqual([]);
    expect(await search(`ChargeItem?subject=Patient/${patient.id}`)).toEqual([]);

    const draft = (await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`)).body;
    const updated = await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`, {
      method: 'PUT',
      body: { ...draft, status: 'active' },
    });
    expect(updated.status).toBe(200);

    const task = await coordinationTask(serviceRequestId, 'submitted');
    expect(task.status).toBe('requested');
    // 30 pages are within the 50 included; 6 questions cost 2 extra.
    expect((await chargeLines(serviceRequestId)).map(({ code, price }) => [code, price.value])).toEqual([
      ['extra-question', 200],
      ['specialist-opinion', 750],
    ]);
    const children = await search(`Task?part-of=Task/${task.id}`);
    expect(children.map((child) => child.input[0].valueCoding.code)).toEqual(['records']);
  });

  test('an active request without questions stays in intake, saying why, until the questions are added', async () => {
    const patient = await registerPatient();
    const { serviceRequestId, questionsId } = await submit(
      patient.referenceNumber,
      'active',
      { imagingSites: 1 },
      false,
    );
    const waiting = await coordinationTask(serviceRequestId, 'intake');
    expect(waiting.status).toBe('draft');
    expect(waiting.statusReason.text).toMatch(/no questions/);
    expect(await search(`ChargeItem?subject=Patient/${patient.id}`)).toEqual([]);
    expect(await search(`Task?part-of=Task/${waiting.id}`)).toEqual([]);

    const current = (await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`)).body;
    const updated = await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`, {
      method: 'PUT',
      body: { ...current, supportingInfo: [{ reference: `QuestionnaireResponse/${questionsId}` }] },
    });
    expect(updated.status).toBe(200);
    const submitted = await coordinationTask(serviceRequestId, 'submitted');
    expect(submitted.id).toBe(waiting.id);
    expect(submitted.status).toBe('requested');
    expect(submitted.statusReason).toBeUndefined();
    expect((await chargeLines(serviceRequestId)).map(({ code, price }) => [code, price.value])).toEqual([
      ['extra-question', 200],
      ['imaging-review', 375],
      ['specialist-opinion', 750],
    ]);
  });

  test('a patient living in New Mexico: the case is declined, the request revoked, nothing charged', async () => {
    const digits = String(randomInt(100_000_000, 999_999_999));
    const referenceNumber = `${digits}${dammCheckDigit(digits)}`;
    const created = await fhirFetch(`${hub.fhir}/Patient`, {
      method: 'POST',
      body: {
        resourceType: 'Patient',
        identifier: [{ system: REFERENCE, value: referenceNumber }],
        name: [{ family: 'Baca', given: ['Lucinda'] }],
        birthDate: '1958-09-02',
        address: [{ use: 'home', city: 'Santa Fe', state: 'NM', postalCode: '87501', country: 'US' }],
      },
    });
    expect(created.status).toBe(201);
    const { serviceRequestId } = await submit(referenceNumber, 'active', { imagingSites: 1 });

    const task = await coordinationTask(serviceRequestId, 'declined');
    expect(task.status).toBe('rejected');
    expect(task.statusReason.coding).toContainEqual({
      system: 'urn:hub:eligibility-reason',
      code: 'no-cross-state-opinion',
    });
    expect(task.statusReason.text).toMatch(/New Mexico/);
    const request = await until(async () => {
      const current = (await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`)).body;
      return current.status === 'revoked' ? current : undefined;
    }, 'the request to be revoked');
    const reason = request.extension.find(
      (extension: { url: string }) => extension.url === 'http://hl7.org/fhir/StructureDefinition/request-statusReason',
    );
    expect(reason.valueCodeableConcept.text).toBe(task.statusReason.text);
    await settled();
    expect(await search(`ChargeItem?subject=Patient/${created.body.id}`)).toEqual([]);
    expect(await search(`Task?part-of=Task/${task.id}`)).toEqual([]);
    // The revoked request is no longer active: running intake again does nothing.
    expect(await runIntake(ctx, { serviceRequestId })).toEqual({ outcome: 'not-active', status: 'revoked' });
  });

  test('records over 200 pages make the quote a manual one', async () => {
    const patient = await registerPatient();
    const { serviceRequestId } = await submit(patient.referenceNumber, 'active', { recordPages: 240 });
    const task = await coordinationTask(serviceRequestId, 'submitted');
    const quote = task.extension.find((extension: { url: string }) => extension.url === 'urn:hub:extension:quote');
    const parts = Object.fromEntries(quote.extension.map((part: { url: string }) => [part.url, part]));
    expect(parts.total).toBeUndefined();
    expect(parts.manualQuote.valueString).toMatch(/240 pages/);
    expect(task.note).toContainEqual(
      expect.objectContaining({ text: expect.stringMatching(/^Manual quote needed: .*240 pages/) }),
    );

    const [pages] = await search(
      `ChargeItem?identifier=${encodeURIComponent(`${CASE_RESOURCE}|${serviceRequestId}/charge/record-pages`)}`,
    );
    expect(pages.priceOverride).toBeUndefined();
    expect(pages.note[0].text).toMatch(/Manual quote needed/);
  });

  test('changing the planned materials of an active request updates the quote in place', async () => {
    const patient = await registerPatient();
    const { serviceRequestId } = await submit(patient.referenceNumber, 'active', { imagingSites: 2, recordPages: 120 });
    const task = await coordinationTask(serviceRequestId, 'submitted');
    const before = await chargeLines(serviceRequestId);

    const current = (await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`)).body;
    const changed = await fhirFetch(`${hub.fhir}/ServiceRequest/${serviceRequestId}`, {
      method: 'PUT',
      body: { ...current, orderDetail: orderDetail({ imagingSites: 3 }) },
    });
    expect(changed.status).toBe(200);

    const after = await until(async () => {
      const lines = await chargeLines(serviceRequestId);
      return lines.find((line) => line.code === 'imaging-review')?.quantity === 3 ? lines : undefined;
    }, 'the re-quote');
    const byCode = (lines: typeof before) => Object.fromEntries(lines.map((line) => [line.code, line]));
    // Same resources, updated: 3 sites × $375; the records no longer planned are withdrawn.
    expect(byCode(after)['imaging-review']).toEqual({
      ...byCode(before)['imaging-review'],
      quantity: 3,
      price: dollars(1125),
    });
    expect(byCode(after)['record-pages']).toEqual({ ...byCode(before)['record-pages'], status: 'entered-in-error' });
    expect(after.map((line) => line.id).sort()).toEqual(before.map((line) => line.id).sort());

    const children = await search(`Task?part-of=Task/${task.id}`);
    const status = Object.fromEntries(children.map((child) => [child.input[0].valueCoding.code, child.status]));
    expect(status).toEqual({ imaging: 'requested', records: 'cancelled' });
    const updated = await coordinationTask(serviceRequestId, 'submitted');
    const quote = updated.extension.find((extension: { url: string }) => extension.url === 'urn:hub:extension:quote');
    expect(quote.extension).toContainEqual({ url: 'total', valueMoney: dollars(750 + 1125 + 200) });
  });
});

describe('case intake without a worker (the job function alone)', () => {
  let hub: TestHub;
  let ctx: WorkflowContext;

  beforeAll(async () => {
    // No worker role: nothing runs intake but the test.
    hub = await startTestHub({ db: 'postgres', env: { HUB_ROLES: 'api' } });
    ctx = workflowContextOf(hub);
  }, 60_000);

  afterAll(async () => {
    await hub?.stop();
  });

  const count = async (query: string): Promise<number> => {
    const response = await fhirFetch(`${hub.fhir}/${query}&_count=1000&_elements=id`);
    expect(response.status).toBe(200);
    return response.body.entry?.length ?? 0;
  };

  test('a run that fails after its writes leaves nothing; the next run writes everything once', async () => {
    const digits = String(randomInt(100_000_000, 999_999_999));
    const referenceNumber = `${digits}${dammCheckDigit(digits)}`;
    const patient = await fhirFetch(`${hub.fhir}/Patient`, {
      method: 'POST',
      body: {
        resourceType: 'Patient',
        identifier: [{ system: REFERENCE, value: referenceNumber }],
        name: [{ family: 'Marsh', given: ['Idris'] }],
        birthDate: '1970-01-12',
        address: [{ use: 'home', city: 'Worcester', state: 'MA', country: 'US' }],
      },
    });
    expect(patient.status).toBe(201);
    const response = await fhirFetch(hub.fhir, {
      method: 'POST',
      body: referralBundle(referenceNumber, 'active', { imagingSites: 2, recordPages: 120 }),
    });
    expect(response.status).toBe(200);
    const serviceRequestId = response.body.entry[2].response.location.split('/')[1];
    const resources = async () => ({
      tasks: await count(`Task?focus=ServiceRequest/${serviceRequestId}`),
      charges: await count(`ChargeItem?subject=Patient/${patient.body.id}`),
    });

    // The logger runs after the last write of the step: failing there stands for a crash before commit.
    const crashing = {
      info: () => {
        throw new Error('worker killed');
      },
    } as unknown as WorkflowContext['logger'];
    await expect(runIntake({ ...ctx, logger: crashing }, { serviceRequestId })).rejects.toThrow('worker killed');
    expect(await resources()).toEqual({ tasks: 0, charges: 0 });

    expect(await runIntake(ctx, { serviceRequestId })).toMatchObject({ outcome: 'submitted', manualQuote: false });
    expect(await resources()).toEqual({ tasks: 3, charges: 4 });
    expect(await runIntake(ctx, { serviceRequestId })).toMatchObject({ outcome: 'submitted' });
    expect(await resources()).toEqual({ tasks: 3, charges: 4 });
  });
});
