/**
 * The FHIR API driven by fhir-kit-client, a client library written by others, the way an EHR
 * integration uses it: the capability statement first, then CRUD, search with paging, history,
 * conditional writes, and Bundles.
 */
import { CapabilityTool, Client } from 'fhir-kit-client';
import type { FhirResource } from 'fhir-kit-client';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const MRN = 'urn:oid:2.16.840.1.113883.3.4711.1';
const PAGER_SYSTEM = 'urn:oid:2.16.840.1.113883.3.4711.2';

let t: TestHub;
let client: Client;
beforeAll(async () => {
  t = await startTestHub();
  client = new Client({ baseUrl: t.fhir });
});
afterAll(async () => {
  await t?.stop();
});

function patient(family: string, mrn: string, system = MRN): FhirResource {
  return {
    resourceType: 'Patient',
    identifier: [{ system, value: mrn }],
    name: [{ family, given: ['Tomasz'] }],
    gender: 'male',
    birthDate: '1958-11-02',
  };
}

function statusOf(resource: FhirResource): number | undefined {
  return Client.httpFor(resource).response?.status;
}

/** The HTTP status and body of a rejected fhir-kit-client call. */
async function failure(call: Promise<FhirResource>): Promise<{ status: number; data: any }> {
  try {
    await call;
  } catch (err) {
    const response = (err as { response?: { status: number; data: any } }).response;
    if (response) {
      return response;
    }
    throw err;
  }
  throw new Error('expected the request to fail');
}

test('the capability statement lists what an integration needs', async () => {
  const statement = await client.capabilityStatement();
  expect(statement).toMatchObject({ resourceType: 'CapabilityStatement', fhirVersion: '4.0.1', kind: 'instance' });
  const capabilities = new CapabilityTool(statement);
  expect(capabilities.serverCan('transaction')).toBe(true);
  expect(capabilities.serverCan('batch')).toBe(true);
  const interactions = capabilities.interactionsFor({ resourceType: 'Patient' });
  for (const code of ['read', 'vread', 'create', 'update', 'patch', 'delete', 'search-type', 'history-instance']) {
    expect({ code, listed: interactions.includes(code) }).toEqual({ code, listed: true });
  }
  const searchParams = capabilities.searchParamsFor({ resourceType: 'Patient' });
  expect(searchParams).toEqual(
    expect.arrayContaining([
      '_id',
      '_lastUpdated',
      'identifier',
      'name',
      'family',
      'given',
      'birthdate',
      'gender',
      'general-practitioner',
    ]),
  );
  expect(capabilities.resourceSearch('Observation', 'subject')).toBe(true);
  expect(capabilities.resourceCan('Binary', 'read')).toBe(true);
});

test('create, read and vread', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient('Nowak', 'fkc-crud') });
  expect(statusOf(created)).toBe(201);
  const id = created.id as string;
  const location = Client.httpFor(created).response?.headers.get('location');
  expect(location).toBe(`${t.fhir}/Patient/${id}/_history/1`);
  const read = await client.read({ resourceType: 'Patient', id });
  expect(read).toEqual(created);
  const version = await client.vread({ resourceType: 'Patient', id, version: '1' });
  expect(version).toEqual(created);
  const resolved = await client.resolve({ reference: `Patient/${id}` });
  expect(resolved).toEqual(created);
});

test('update with If-Match, and a stale If-Match is 412', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient('Kowalski', 'fkc-update') });
  const id = created.id as string;
  const updated = await client.update({
    resourceType: 'Patient',
    id,
    body: { ...created, gender: 'other' },
    options: { headers: { 'If-Match': 'W/"1"' } },
  });
  expect(updated).toMatchObject({ id, gender: 'other', meta: { versionId: '2' } });
  const stale = await failure(
    client.update({
      resourceType: 'Patient',
      id,
      body: { ...created, gender: 'female' },
      options: { headers: { 'If-Match': 'W/"1"' } },
    }),
  );
  expect(stale.status).toBe(412);
  expect(stale.data.resourceType).toBe('OperationOutcome');
  expect(await client.read({ resourceType: 'Patient', id })).toMatchObject({ gender: 'other' });
});

test('JSON Patch', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient('Wiśniewski', 'fkc-patch') });
  const id = created.id as string;
  const patched = await client.patch({
    resourceType: 'Patient',
    id,
    jsonPatch: [
      { op: 'test', path: '/gender', value: 'male' },
      { op: 'add', path: '/telecom', value: [{ system: 'phone', value: '+48 22 555 0101', use: 'mobile' }] },
      { op: 'replace', path: '/name/0/given/0', value: 'Tomek' },
    ],
  });
  expect(patched).toMatchObject({ id, meta: { versionId: '2' }, name: [{ family: 'Wiśniewski', given: ['Tomek'] }] });
  expect((patched.telecom as unknown[])[0]).toMatchObject({ value: '+48 22 555 0101' });
  const failedTest = await failure(
    client.patch({ resourceType: 'Patient', id, jsonPatch: [{ op: 'test', path: '/gender', value: 'female' }] }),
  );
  expect(failedTest.status).toBe(400);
  expect(failedTest.data.resourceType).toBe('OperationOutcome');
});

test('delete, then read is 410 and an unknown id is 404', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient('Lewandowska', 'fkc-delete') });
  const id = created.id as string;
  const deleted = await client.delete({ resourceType: 'Patient', id });
  expect(statusOf(deleted)).toBe(200);
  const gone = await failure(client.read({ resourceType: 'Patient', id }));
  expect(gone.status).toBe(410);
  expect(gone.data.resourceType).toBe('OperationOutcome');
  const missing = await failure(client.read({ resourceType: 'Patient', id: 'fkc-nobody' }));
  expect(missing.status).toBe(404);
  expect(missing.data.resourceType).toBe('OperationOutcome');
});

test('search pages through every match with nextPage, by GET and by POST', async () => {
  const created = new Set<string>();
  for (let i = 0; i < 7; i++) {
    const resource = await client.create({
      resourceType: 'Patient',
      body: patient(`Pager${i}`, `page-${i}`, PAGER_SYSTEM),
    });
    created.add(resource.id as string);
  }
  for (const postSearch of [false, true]) {
    let page: FhirResource | undefined = await client.search({
      resourceType: 'Patient',
      searchParams: { identifier: `${PAGER_SYSTEM}|`, given: 'Tomasz', _count: 3, _total: 'accurate' },
      options: { postSearch },
    });
    expect(page).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: created.size });
    const seen: string[] = [];
    let pages = 0;
    while (page) {
      pages++;
      const entries = (page.entry ?? []) as { resource: FhirResource }[];
      seen.push(...entries.map((e) => e.resource.id as string));
      expect(entries.length).toBeLessThanOrEqual(3);
      page = await client.nextPage({ bundle: page as FhirResource & { link: { relation: string; url: string }[] } });
    }
    expect({ postSearch, pages }).toEqual({ postSearch, pages: Math.ceil(created.size / 3) });
    expect(new Set(seen)).toEqual(created);
    expect(seen).toHaveLength(created.size);
  }
});

test('instance and type history', async () => {
  const created = await client.create({ resourceType: 'Patient', body: patient('Historia', 'fkc-history') });
  const id = created.id as string;
  await client.update({ resourceType: 'Patient', id, body: { ...created, gender: 'other' } });
  const history = await client.history({ resourceType: 'Patient', id });
  expect(history).toMatchObject({ resourceType: 'Bundle', type: 'history', total: 2 });
  const versions = (history.entry as { resource: FhirResource; request: { method: string } }[]).map((e) => [
    (e.resource.meta as { versionId: string }).versionId,
    e.request.method,
  ]);
  expect(versions).toEqual([
    ['2', 'PUT'],
    ['1', 'POST'],
  ]);
  const typeHistory = await client.typeHistory({ resourceType: 'Patient' });
  expect(typeHistory).toMatchObject({ resourceType: 'Bundle', type: 'history' });
  const entries = typeHistory.entry as { fullUrl: string; resource?: FhirResource; request: { method: string } }[];
  expect(entries.filter((e) => e.resource?.id === id).map((e) => e.request.method)).toEqual(['PUT', 'POST']);
  // A deletion (the earlier test's) is an entry without a resource.
  expect(entries.some((e) => e.request.method === 'DELETE' && e.resource === undefined)).toBe(true);
});

test('a transaction, and a batch with one failing entry', async () => {
  const patientUrl = 'urn:uuid:3f0c2a5e-8d41-4b9a-a6b7-1c2d3e4f5a6b';
  const response = await client.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: patientUrl, resource: patient('Transakcja', 'fkc-tx'), request: { method: 'POST', url: 'Patient' } },
        {
          resource: {
            resourceType: 'Condition',
            code: { text: 'Suspected pulmonary nodule' },
            subject: { reference: patientUrl },
          },
          request: { method: 'POST', url: 'Condition' },
        },
      ],
    },
  });
  expect(response.type).toBe('transaction-response');
  const entries = response.entry as {
    resource: FhirResource;
    response: { status: string; etag: string };
  }[];
  expect(entries).toHaveLength(2);
  const [patientEntry, conditionEntry] = entries as [(typeof entries)[number], (typeof entries)[number]];
  expect(patientEntry.response.status).toMatch(/^201/);
  expect(patientEntry.response.etag).toBe('W/"1"');
  expect(conditionEntry.resource.subject).toEqual({ reference: `Patient/${patientEntry.resource.id}` });

  const batch = await client.batch({
    body: {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        {
          resource: { resourceType: 'Observation', status: 'final', code: { text: 'Pack-years' } },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: { resourceType: 'Observation', status: 'guessed', code: { text: 'Bad' } },
          request: { method: 'POST', url: 'Observation' },
        },
        { request: { method: 'GET', url: `Patient/${patientEntry.resource.id}` } },
      ],
    },
  });
  expect(batch.type).toBe('batch-response');
  const statuses = (batch.entry as { response: { status: string } }[]).map((e) => e.response.status.slice(0, 3));
  expect(statuses).toEqual(['201', '400', '200']);
});

test('conditional create via If-None-Exist makes one resource', async () => {
  const options = { headers: { 'If-None-Exist': `identifier=${MRN}|fkc-conditional` } };
  const first = await client.create({
    resourceType: 'Patient',
    body: patient('Warunkowy', 'fkc-conditional'),
    options,
  });
  const second = await client.create({
    resourceType: 'Patient',
    body: patient('Warunkowy', 'fkc-conditional'),
    options,
  });
  expect(statusOf(first)).toBe(201);
  expect(statusOf(second)).toBe(200);
  expect(second.id).toBe(first.id);
  const search = await client.search({
    resourceType: 'Patient',
    searchParams: { identifier: `${MRN}|fkc-conditional`, _total: 'accurate' },
  });
  expect(search.total).toBe(1);
});

test('conditional update by search parameters creates, then updates, and refuses an unknown parameter', async () => {
  const organization = (name: string): FhirResource => ({
    resourceType: 'Organization',
    identifier: [{ system: 'urn:test:ods', value: 'RX1' }],
    name,
  });
  const created = await client.update({
    resourceType: 'Organization',
    searchParams: { identifier: 'urn:test:ods|RX1' },
    body: organization('Riverside Hospital'),
  });
  expect(statusOf(created)).toBe(201);
  const updated = await client.update({
    resourceType: 'Organization',
    searchParams: { identifier: 'urn:test:ods|RX1' },
    body: organization('Riverside University Hospital'),
  });
  expect(statusOf(updated)).toBe(200);
  expect(updated).toMatchObject({ id: created.id, meta: { versionId: '2' } });
  // With one Organization stored, an ignored criterion would match it and overwrite it.
  const misspelt = await failure(
    client.update({
      resourceType: 'Organization',
      searchParams: { identifer: 'urn:test:ods|ZZ9' },
      body: organization('Another Trust'),
    }),
  );
  expect(misspelt.status).toBe(400);
  expect(misspelt.data.resourceType).toBe('OperationOutcome');
  expect(await client.read({ resourceType: 'Organization', id: created.id as string })).toMatchObject({
    name: 'Riverside University Hospital',
    meta: { versionId: '2' },
  });
});
