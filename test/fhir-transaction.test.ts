/**
 * Batch and transaction Bundles (R4 http, "Batch/Transaction") posted to the FHIR base as an EHR sends them:
 * all-or-nothing transactions, urn:uuid and conditional references, conditional creates, a whole
 * referral, batches with partial failures, and two transactions racing for one resource.
 */
import type { Bundle, BundleEntry, HealthcareService, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { defined } from './support/defined.ts';

const MRN = 'urn:oid:1.2.36.146.595.217.0.1';

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t?.stop();
});

/** A fixed urn:uuid per name, so the bundles below read like the ones EHRs send. */
function urn(n: number): string {
  return `urn:uuid:0b7e4c1a-5d3f-4e2a-9c8b-${String(n).padStart(12, '0')}`;
}

function bundle(type: 'transaction' | 'batch', entry: BundleEntry[]): Bundle {
  return { resourceType: 'Bundle', type, entry };
}

function post(resource: Resource, fullUrl?: string, ifNoneExist?: string): BundleEntry {
  return {
    ...(fullUrl ? { fullUrl } : {}),
    resource,
    request: { method: 'POST', url: resource.resourceType, ...(ifNoneExist ? { ifNoneExist } : {}) },
  };
}

function patient(family: string, mrn?: string): Patient {
  return {
    resourceType: 'Patient',
    ...(mrn ? { identifier: [{ system: MRN, value: mrn }] } : {}),
    name: [{ family, given: ['Maria'] }],
    gender: 'female',
    birthDate: '1961-07-14',
  };
}

function observation(text: string, subject: string, extra: Record<string, unknown> = {}): Resource {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { text },
    subject: { reference: subject },
    ...extra,
  };
}

async function send(
  body: Bundle,
): Promise<{ status: number; bundle: Bundle; outcome: OperationOutcome; headers: Headers }> {
  const res = await fhirFetch(t.fhir, { method: 'POST', body });
  return { status: res.status, bundle: res.body, outcome: res.body, headers: res.headers };
}

type Sent = Awaited<ReturnType<typeof send>>;

async function count(query: string): Promise<number> {
  const res = await fhirFetch(`${t.fhir}/${query}${query.includes('?') ? '&' : '?'}_total=accurate`);
  expect(res.status).toBe(200);
  return res.body.total;
}

async function create<T extends Resource>(resource: T): Promise<T & { id: string }> {
  const res = await fhirFetch(`${t.fhir}/${resource.resourceType}`, { method: 'POST', body: resource });
  expect(res.status).toBe(201);
  return res.body;
}

function idOf(location: string | undefined): string {
  return (location ?? '').split('/')[1] ?? '';
}

type Entries<N extends number, R extends BundleEntry[] = []> = R['length'] extends N
  ? R
  : Entries<N, [...R, BundleEntry]>;

/** The Bundle's entries, which must number exactly `n`. */
function entriesOf<const N extends number>(response: Bundle, n: N): Entries<N> {
  expect(response.entry).toHaveLength(n);
  return (response.entry ?? []) as Entries<N>;
}

describe('transaction Bundles', () => {
  test('a transaction-response carries status, versioned location, etag and lastModified per entry', async () => {
    const existing = await create(patient('Response', 'resp-1'));
    const {
      status,
      bundle: response,
      headers,
    } = await send(
      bundle('transaction', [
        post(patient('ResponseNew'), urn(1)),
        { resource: { ...existing, gender: 'other' }, request: { method: 'PUT', url: `Patient/${existing.id}` } },
        { request: { method: 'GET', url: `Patient/${existing.id}` } },
      ]),
    );
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(response.resourceType).toBe('Bundle');
    expect(response.type).toBe('transaction-response');
    const [createdEntry, updatedEntry, readEntry] = entriesOf(response, 3);
    const newId = createdEntry.resource?.id;
    expect(createdEntry.response).toMatchObject({
      status: expect.stringMatching(/^201/),
      location: `Patient/${newId}/_history/1`,
      etag: 'W/"1"',
      lastModified: createdEntry.resource?.meta?.lastUpdated,
    });
    expect(updatedEntry.response).toMatchObject({ status: expect.stringMatching(/^200/), etag: 'W/"2"' });
    expect(updatedEntry.resource).toMatchObject({ id: existing.id, gender: 'other' });
    expect(readEntry.response?.status).toMatch(/^200/);
    expect(readEntry.resource).toMatchObject({ id: existing.id, meta: { versionId: '2' } });
  });

  describe('is atomic: one failing entry rolls back every other entry', () => {
    test('an invalid resource', async () => {
      const { status, outcome } = await send(
        bundle('transaction', [
          post(patient('AtomicInvalid', 'atomic-invalid'), urn(10)),
          post(observation('weight', urn(10))),
          post({
            resourceType: 'Condition',
            subject: { reference: urn(10) },
            clinicalStatus: { coding: [{ code: 'x' }] },
            colour: 'red',
          } as Resource),
        ]),
      );
      expect(status).toBe(400);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|atomic-invalid`))).toBe(0);
      expect(await count('Observation?code:text=weight')).toBe(0);
    });

    test('a PUT with a stale If-Match', async () => {
      const target = await create(patient('AtomicStale', 'atomic-stale'));
      const updated = await fhirFetch(`${t.fhir}/Patient/${target.id}`, {
        method: 'PUT',
        body: { ...target, gender: 'male' },
      });
      expect(updated.body.meta.versionId).toBe('2');
      const { status, outcome } = await send(
        bundle('transaction', [
          post(patient('AtomicStaleNew', 'atomic-stale-new'), urn(11)),
          post(observation('atomic-stale-height', urn(11))),
          {
            resource: { ...target, gender: 'other' },
            request: { method: 'PUT', url: `Patient/${target.id}`, ifMatch: 'W/"1"' },
          },
        ]),
      );
      expect(status).toBe(412);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|atomic-stale-new`))).toBe(0);
      expect(await count('Observation?code:text=atomic-stale-height')).toBe(0);
      const current = await fhirFetch(`${t.fhir}/Patient/${target.id}`);
      expect(current.body).toMatchObject({ gender: 'male', meta: { versionId: '2' } });
    });

    test('a DELETE of a resource that does not exist', async () => {
      const kept = await create(patient('AtomicDeleteKept', 'atomic-delete-kept'));
      const { status, outcome } = await send(
        bundle('transaction', [
          post(patient('AtomicDeleteNew', 'atomic-delete-new')),
          { request: { method: 'DELETE', url: `Patient/${kept.id}` } },
          { request: { method: 'DELETE', url: 'Patient/no-such-patient-4711' } },
        ]),
      );
      expect(status).toBe(404);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|atomic-delete-new`))).toBe(0);
      expect((await fhirFetch(`${t.fhir}/Patient/${kept.id}`)).status).toBe(200);
    });

    test('a conditional create whose criteria match two resources', async () => {
      await create(patient('AtomicTwin', 'atomic-twin'));
      await create(patient('AtomicTwin', 'atomic-twin'));
      const { status, outcome } = await send(
        bundle('transaction', [
          post(patient('AtomicTwinCompanion', 'atomic-twin-companion')),
          post(patient('AtomicTwin', 'atomic-twin'), urn(12), 'identifier=' + encodeURIComponent(`${MRN}|atomic-twin`)),
          post(observation('atomic-twin-bmi', urn(12))),
        ]),
      );
      expect(status).toBe(412);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|atomic-twin`))).toBe(2);
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|atomic-twin-companion`))).toBe(0);
      expect(await count('Observation?code:text=atomic-twin-bmi')).toBe(0);
    });
  });

  test('urn:uuid fullUrls are rewritten everywhere, deep inside resources and before the referenced entry', async () => {
    const { status, bundle: response } = await send(
      bundle('transaction', [
        // Every reference here points forward, at entries later in the bundle.
        {
          fullUrl: urn(23),
          resource: {
            resourceType: 'DiagnosticReport',
            status: 'final',
            code: { text: 'Lipid panel' },
            subject: { reference: urn(20) },
            performer: [{ reference: urn(21) }],
            result: [{ reference: urn(22) }],
            extension: [
              {
                url: 'https://hub.example/fhir/StructureDefinition/review',
                extension: [{ url: 'reviewer', valueReference: { reference: urn(21) } }],
              },
            ],
          },
          request: { method: 'POST', url: 'DiagnosticReport' },
        },
        post(
          {
            resourceType: 'Condition',
            subject: { reference: urn(20) },
            code: { text: 'Hypercholesterolaemia' },
            evidence: [{ detail: [{ reference: urn(22) }, { reference: urn(23) }] }],
            note: [{ authorReference: { reference: urn(21) }, text: 'See the lipid panel' }],
          },
          urn(24),
        ),
        post(observation('LDL cholesterol', urn(20), { performer: [{ reference: urn(21) }], hasMember: [] }), urn(22)),
        post({ resourceType: 'Practitioner', name: [{ family: 'Okafor', prefix: ['Dr'] }] }, urn(21)),
        post(patient('Forward', 'forward-1'), urn(20)),
      ]),
    );
    expect(status).toBe(200);
    const entries = response.entry ?? [];
    const ids = entries.map((entry) => entry.resource?.id);
    const [reportId, conditionId, observationId, practitionerId, patientId] = ids;
    const report = (await fhirFetch(`${t.fhir}/DiagnosticReport/${reportId}`)).body;
    expect(report.subject.reference).toBe(`Patient/${patientId}`);
    expect(report.performer[0].reference).toBe(`Practitioner/${practitionerId}`);
    expect(report.result[0].reference).toBe(`Observation/${observationId}`);
    expect(report.extension[0].extension[0].valueReference.reference).toBe(`Practitioner/${practitionerId}`);
    const condition = (await fhirFetch(`${t.fhir}/Condition/${conditionId}`)).body;
    expect(condition.evidence[0].detail.map((d: { reference: string }) => d.reference)).toEqual([
      `Observation/${observationId}`,
      `DiagnosticReport/${reportId}`,
    ]);
    expect(condition.note[0].authorReference.reference).toBe(`Practitioner/${practitionerId}`);
    expect(JSON.stringify(entries)).not.toContain('urn:uuid');
    // The rewritten references are what the search index holds.
    expect(await count(`Observation?subject=Patient/${patientId}`)).toBe(1);
    expect(await count(`DiagnosticReport?result=Observation/${observationId}`)).toBe(1);
  });

  describe('conditional references', () => {
    test('"Patient?identifier=system|value" resolves to the one matching resource', async () => {
      const target = await create(patient('Conditional', 'cond-ref-1'));
      const practitioner = await create({
        resourceType: 'Practitioner',
        identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }],
        name: [{ family: 'Brennan' }],
      });
      const { status, bundle: response } = await send(
        bundle('transaction', [
          post(
            observation('cond-ref-glucose', `Patient?identifier=${MRN}|cond-ref-1`, {
              performer: [{ reference: 'Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893' }],
            }),
          ),
        ]),
      );
      expect(status).toBe(200);
      const stored = (await fhirFetch(`${t.fhir}/Observation/${response.entry?.[0]?.resource?.id}`)).body;
      expect(stored.subject.reference).toBe(`Patient/${target.id}`);
      expect(stored.performer[0].reference).toBe(`Practitioner/${practitioner.id}`);
      expect(await count(`Observation?subject=Patient/${target.id}`)).toBe(1);
    });

    test('no match or several matches fail the whole transaction', async () => {
      await create(patient('CondTwin', 'cond-ref-twin'));
      await create(patient('CondTwin', 'cond-ref-twin'));
      const none = await send(
        bundle('transaction', [
          post(patient('CondNoneCompanion', 'cond-none-companion')),
          post(observation('cond-ref-none', `Patient?identifier=${MRN}|cond-ref-nobody`)),
        ]),
      );
      expect(none.status).toBe(404);
      expect(none.outcome.resourceType).toBe('OperationOutcome');
      const several = await send(
        bundle('transaction', [
          post(patient('CondSeveralCompanion', 'cond-several-companion')),
          post(observation('cond-ref-several', `Patient?identifier=${MRN}|cond-ref-twin`)),
        ]),
      );
      expect(several.status).toBe(412);
      expect(several.outcome.resourceType).toBe('OperationOutcome');
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|cond-none-companion`))).toBe(0);
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|cond-several-companion`))).toBe(0);
      expect(await count('Observation?code:text=cond-ref-none')).toBe(0);
      expect(await count('Observation?code:text=cond-ref-several')).toBe(0);
    });
  });

  test('a conditional create (ifNoneExist) inside a transaction does not duplicate and its urn:uuid points at the match', async () => {
    const existing = await create(patient('IfNoneExist', 'ine-1'));
    const referral = (code: string): Bundle =>
      bundle('transaction', [
        post(patient('IfNoneExist', 'ine-1'), urn(30), `identifier=${MRN}|ine-1`),
        post(patient('IfNoneExistNew', 'ine-2'), urn(31), `identifier=${MRN}|ine-2`),
        post(observation(code, urn(30))),
        post(observation(code, urn(31))),
      ]);
    const first = await send(referral('ine-first'));
    expect(first.status).toBe(200);
    const [matched, createdNew, obsExisting, obsNew] = entriesOf(first.bundle, 4);
    expect(matched.response?.status).toMatch(/^200/);
    expect(matched.resource?.id).toBe(existing.id);
    expect(createdNew.response?.status).toMatch(/^201/);
    expect(obsExisting.resource).toMatchObject({ subject: { reference: `Patient/${existing.id}` } });
    expect(obsNew.resource).toMatchObject({ subject: { reference: `Patient/${createdNew.resource?.id}` } });

    const again = await send(referral('ine-second'));
    expect(again.status).toBe(200);
    expect(again.bundle.entry?.map((entry) => entry.response?.status.slice(0, 3))).toEqual([
      '200',
      '200',
      '201',
      '201',
    ]);
    expect(again.bundle.entry?.[1]?.resource?.id).toBe(createdNew.resource?.id);
    expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|ine-1`))).toBe(1);
    expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|ine-2`))).toBe(1);
    expect(await count(`Observation?subject=Patient/${existing.id}`)).toBe(2);
  });

  test('an ifNoneExist naming an unknown parameter fails instead of matching whatever exists', async () => {
    const service: HealthcareService = {
      resourceType: 'HealthcareService',
      identifier: [{ system: 'urn:test:service', value: 'breast-clinic' }],
      name: 'Breast clinic',
    };
    await create(service);
    const { status, outcome } = await send(
      bundle('transaction', [
        post(patient('UnknownCriteria', 'unknown-criteria')),
        post(
          { ...service, identifier: [{ system: 'urn:test:service', value: 'lung-clinic' }], name: 'Lung clinic' },
          urn(32),
          'identifer=urn:test:service|lung-clinic',
        ),
      ]),
    );
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await count('HealthcareService')).toBe(1);
    expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|unknown-criteria`))).toBe(0);
  });

  test('a 30-entry referral whose patient and practitioners are conditional creates lands whole, twice without duplicates', async () => {
    const referral = (run: number): Bundle =>
      bundle('transaction', [
        post(patient('BigConditional', 'big-1'), urn(40), `identifier=${MRN}|big-1`),
        ...Array.from({ length: 4 }, (_, i) =>
          post(
            {
              resourceType: 'Practitioner',
              identifier: [{ system: 'urn:test:big-npi', value: `99000000${i}` }],
            },
            urn(41 + i),
            `identifier=urn:test:big-npi|99000000${i}`,
          ),
        ),
        ...Array.from({ length: 25 }, (_, i) =>
          post(observation(`big-${run}-${i}`, urn(40), { performer: [{ reference: urn(41 + (i % 4)) }] })),
        ),
      ]);
    for (const run of [1, 2]) {
      const { status, bundle: response } = await send(referral(run));
      expect(status).toBe(200);
      expect(response.entry).toHaveLength(30);
    }
    expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|big-1`))).toBe(1);
    expect(await count('Practitioner?identifier=urn:test:big-npi|')).toBe(4);
    const patientId = (await fhirFetch(`${t.fhir}/Patient?identifier=${encodeURIComponent(`${MRN}|big-1`)}`)).body
      .entry[0].resource.id;
    expect(await count(`Observation?subject=Patient/${patientId}`)).toBe(50);
  });

  test('a 50-entry referral lands whole', async () => {
    const entries = referralEntries();
    expect(entries).toHaveLength(50);
    const { status, bundle: response } = await send(bundle('transaction', entries));
    expect(status).toBe(200);
    const results = response.entry ?? [];
    expect(results).toHaveLength(50);
    expect(results.every((entry) => entry.response?.status?.startsWith('201'))).toBe(true);
    const patientId = idOf(results[0]?.response?.location);
    const byType = new Map<string, number>();
    for (const [i, result] of results.entries()) {
      const sent = entries[i]?.resource as Resource;
      expect(result.resource?.resourceType).toBe(sent.resourceType);
      byType.set(sent.resourceType, (byType.get(sent.resourceType) ?? 0) + 1);
      const read = await fhirFetch(`${t.fhir}/${sent.resourceType}/${result.resource?.id}`);
      expect(read.status).toBe(200);
      expect(JSON.stringify(read.body)).not.toContain('urn:uuid');
    }
    for (const type of [
      'Observation',
      'Condition',
      'MedicationStatement',
      'AllergyIntolerance',
      'Procedure',
      'DocumentReference',
      'ServiceRequest',
    ]) {
      expect({ type, count: await count(`${type}?patient=Patient/${patientId}`) }).toEqual({
        type,
        count: byType.get(type),
      });
    }
    const request = (await fhirFetch(`${t.fhir}/ServiceRequest?patient=Patient/${patientId}`)).body.entry[0].resource;
    expect(request.requester.reference).toMatch(/^PractitionerRole\//);
    expect(request.reasonReference).toHaveLength(4);
    expect(request.supportingInfo.length).toBeGreaterThan(20);
    const binaryId = idOf(results.find((r) => r.resource?.resourceType === 'Binary')?.response?.location);
    const letter = results.find((r) => r.resource?.resourceType === 'DocumentReference')?.resource as Resource & {
      content: { attachment: { url: string } }[];
    };
    expect(letter.content[0]?.attachment.url).toBe(`Binary/${binaryId}`);
    const raw = await fetch(`${t.fhir}/Binary/${binaryId}`, { headers: { accept: 'text/plain' } });
    expect(await raw.text()).toBe('Referral letter: please review the enclosed findings.');
  });
});

describe('batch Bundles', () => {
  test('GET entries read and search; the response is a batch-response', async () => {
    const one = await create(patient('BatchRead', 'batch-read-1'));
    const { status, bundle: response } = await send(
      bundle('batch', [
        { request: { method: 'GET', url: `Patient/${one.id}` } },
        { request: { method: 'GET', url: `Patient?identifier=${MRN}|batch-read-1` } },
        { request: { method: 'GET', url: `Patient/${one.id}/_history/1` } },
        { request: { method: 'GET', url: 'Patient/batch-nobody' } },
      ]),
    );
    expect(status).toBe(200);
    expect(response.type).toBe('batch-response');
    const [read, search, vread, missing] = entriesOf(response, 4);
    expect(read.response?.status).toMatch(/^200/);
    expect(read.response?.etag).toBe('W/"1"');
    expect(read.resource).toMatchObject({ id: one.id, resourceType: 'Patient' });
    expect(search.response?.status).toMatch(/^200/);
    expect(search.resource).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
    expect((search.resource as Bundle).entry?.map((e) => e.resource?.id)).toEqual([one.id]);
    expect(vread.resource).toMatchObject({ id: one.id, meta: { versionId: '1' } });
    expect(missing.response?.status).toMatch(/^404/);
    expect(missing.response?.outcome).toMatchObject({ resourceType: 'OperationOutcome' });
  });

  test('failing entries are reported in place while the other entries are stored', async () => {
    const target = await create(patient('BatchStale', 'batch-stale'));
    const { status, bundle: response } = await send(
      bundle('batch', [
        post(patient('BatchGood', 'batch-good')),
        post({ ...patient('BatchBad', 'batch-bad'), gender: 'robot' as Patient['gender'] }),
        {
          resource: { ...target, gender: 'male' },
          request: { method: 'PUT', url: `Patient/${target.id}`, ifMatch: 'W/"9"' },
        },
        { request: { method: 'DELETE', url: 'Patient/batch-nobody' } },
        post(observation('batch-good-pulse', `Patient/${target.id}`)),
      ]),
    );
    expect(status).toBe(200);
    expect(response.type).toBe('batch-response');
    const statuses = response.entry?.map((entry) => entry.response?.status?.slice(0, 3));
    expect(statuses).toEqual(['201', '400', '412', '404', '201']);
    const bad = response.entry?.[1]?.response?.outcome as OperationOutcome;
    expect(bad.resourceType).toBe('OperationOutcome');
    expect(bad.issue.flatMap((issue) => issue.expression ?? [])).toContain('Patient.gender');
    expect(response.entry?.[2]?.response?.outcome).toMatchObject({ resourceType: 'OperationOutcome' });
    expect(defined(response.entry?.[1], 'the invalid entry').resource).toBeUndefined();
    expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|batch-good`))).toBe(1);
    expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|batch-bad`))).toBe(0);
    expect(await count(`Observation?subject=Patient/${target.id}`)).toBe(1);
    expect((await fhirFetch(`${t.fhir}/Patient/${target.id}`)).body.meta.versionId).toBe('1');
  });

  test('a Bundle of another type is refused with 400', async () => {
    const res = await fhirFetch(t.fhir, {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'collection', entry: [] },
    });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('concurrent transactions', () => {
  test('two transactions updating one resource with the same If-Match: one wins, the other changes nothing', async () => {
    const target = await create(patient('Race', 'race-target'));
    const contender = (n: number): Bundle =>
      bundle('transaction', [
        post(patient(`RaceSide${n}`, `race-side-${n}`), urn(40 + n)),
        post(observation(`race-obs-${n}`, urn(40 + n))),
        {
          resource: { ...target, name: [{ family: `Race${n}`, given: ['Maria'] }] },
          request: { method: 'PUT', url: `Patient/${target.id}`, ifMatch: 'W/"1"' },
        },
      ]);
    for (let round = 0; round < 3; round++) {
      const current = (await fhirFetch(`${t.fhir}/Patient/${target.id}`)).body;
      const base = (n: number): Bundle => {
        const b = contender(n + round * 2);
        defined(b.entry?.[2], 'the PUT entry').request = {
          method: 'PUT',
          url: `Patient/${target.id}`,
          ifMatch: `W/"${current.meta.versionId}"`,
        };
        return b;
      };
      const results = await Promise.all([send(base(1)), send(base(2))]);
      const winners = results.filter((r) => r.status === 200);
      const losers = results.filter((r) => r.status !== 200);
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(1);
      const [won] = winners as [Sent];
      const [lost] = losers as [Sent];
      expect([409, 412]).toContain(lost.status);
      expect(lost.outcome.resourceType).toBe('OperationOutcome');
      const winner = results.indexOf(won) + 1 + round * 2;
      const loser = results.indexOf(lost) + 1 + round * 2;
      const after = (await fhirFetch(`${t.fhir}/Patient/${target.id}`)).body;
      expect(after.meta.versionId).toBe(String(Number(current.meta.versionId) + 1));
      expect(after.name[0].family).toBe(`Race${winner}`);
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|race-side-${winner}`))).toBe(1);
      expect(await count('Patient?identifier=' + encodeURIComponent(`${MRN}|race-side-${loser}`))).toBe(0);
      expect(await count(`Observation?code:text=race-obs-${loser}`)).toBe(0);
    }
  });
});

/** A realistic referral from an EHR: the patient, who refers, why, and the supporting record. */
function referralEntries(): BundleEntry[] {
  let n = 100;
  const next = (): string => urn(n++);
  const entries: BundleEntry[] = [];
  const add = (resource: Resource): string => {
    const fullUrl = next();
    entries.push(post(resource, fullUrl));
    return fullUrl;
  };
  const patientUrl = add(patient('Referral', 'referral-1'));
  const referringOrg = add({
    resourceType: 'Organization',
    name: 'Harbour Street Medical Centre',
    identifier: [{ system: 'urn:test:org', value: 'hsmc' }],
  });
  const practitioner = add({
    resourceType: 'Practitioner',
    name: [{ family: 'Lindqvist', given: ['Eva'], prefix: ['Dr'] }],
  });
  const role = add({
    resourceType: 'PractitionerRole',
    practitioner: { reference: practitioner },
    organization: { reference: referringOrg },
    code: [{ text: 'General practitioner' }],
  });
  const encounter = add({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: patientUrl },
    participant: [{ individual: { reference: practitioner } }],
    serviceProvider: { reference: referringOrg },
    period: { start: '2024-03-01T09:00:00Z', end: '2024-03-01T09:20:00Z' },
  });
  const conditions = ['Breast lump, left', 'Hypertension', 'Type 2 diabetes', 'Hypothyroidism'].map((text) =>
    add({
      resourceType: 'Condition',
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
      },
      code: { text },
      subject: { reference: patientUrl },
      encounter: { reference: encounter },
      recorder: { reference: role },
    }),
  );
  const observations: string[] = [];
  for (let i = 0; i < 26; i++) {
    observations.push(
      add(
        observation(`Lab result ${i + 1}`, patientUrl, {
          encounter: { reference: encounter },
          performer: [{ reference: referringOrg }],
          effectiveDateTime: '2024-02-27',
          valueQuantity: { value: 4 + i / 10, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
        }),
      ),
    );
  }
  for (const text of [
    'Metformin 500 mg',
    'Levothyroxine 50 mcg',
    'Ramipril 5 mg',
    'Atorvastatin 20 mg',
    'Aspirin 75 mg',
  ]) {
    add({
      resourceType: 'MedicationStatement',
      status: 'active',
      medicationCodeableConcept: { text },
      subject: { reference: patientUrl },
    });
  }
  for (const text of ['Penicillin', 'Latex']) {
    add({
      resourceType: 'AllergyIntolerance',
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }],
      },
      code: { text },
      patient: { reference: patientUrl },
      recorder: { reference: practitioner },
    });
  }
  for (const text of ['Mammography', 'Ultrasound-guided core biopsy']) {
    add({
      resourceType: 'Procedure',
      status: 'completed',
      code: { text },
      subject: { reference: patientUrl },
      encounter: { reference: encounter },
    });
  }
  const letterBinary = next();
  entries.push({
    fullUrl: letterBinary,
    resource: {
      resourceType: 'Binary',
      contentType: 'text/plain',
      data: Buffer.from('Referral letter: please review the enclosed findings.').toString('base64'),
    },
    request: { method: 'POST', url: 'Binary' },
  });
  const letter = add({
    resourceType: 'DocumentReference',
    status: 'current',
    type: { text: 'Referral letter' },
    subject: { reference: patientUrl },
    author: [{ reference: role }],
    content: [{ attachment: { contentType: 'text/plain', url: letterBinary, title: 'Referral letter' } }],
  });
  add({
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { text: 'Second opinion: breast oncology' },
    subject: { reference: patientUrl },
    encounter: { reference: encounter },
    requester: { reference: role },
    reasonReference: conditions.map((reference) => ({ reference })),
    supportingInfo: [...observations, letter].map((reference) => ({ reference })),
  });
  add({
    resourceType: 'Organization',
    name: 'Second Opinion Service',
    identifier: [{ system: 'urn:test:org', value: 'sos' }],
    partOf: { reference: referringOrg },
  });
  add({
    resourceType: 'DocumentReference',
    status: 'current',
    type: { text: 'Imaging report' },
    subject: { reference: patientUrl },
    context: { encounter: [{ reference: encounter }], related: [{ reference: conditions[0] }] },
    content: [
      {
        attachment: {
          contentType: 'text/plain',
          data: Buffer.from('Mammography: 14 mm mass, BI-RADS 4.').toString('base64'),
        },
      },
    ],
  });
  add({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'Smoking status' },
    subject: { reference: patientUrl },
    valueCodeableConcept: { text: 'Never smoker' },
  });
  return entries;
}
