/**
 * FHIR R4 search over real HTTP, as an EHR drives it: every parameter type and modifier the hub
 * claims, the result parameters, chaining, POST search, and paging that stays correct while the
 * data changes underneath it.
 */
import type { Bundle, BundleEntry, BundleLink, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { defined } from './support/defined.ts';
import { until } from './support/until.ts';

const MRN = 'urn:test:mrn';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const SNOMED = 'http://snomed.info/sct';
const PROTOCOLS = 'http://hub.example.org/protocols';
const OTHER_EHR = 'http://other-ehr.example.org/fhir';
const SUBSETTED = 'SUBSETTED';

let t: TestHub;

/** The fixed data set most tests search; ids are chosen so that expectations read plainly. */
function fixtures(fhir: string): Resource[] {
  const ref = (reference: string) => ({ reference });
  return [
    {
      resourceType: 'Organization',
      id: 'org-clinic',
      identifier: [{ system: 'urn:test:org', value: 'CLINIC' }],
      name: 'Klinik Süd',
      address: [{ city: 'Zürich', country: 'CH' }],
    },
    { resourceType: 'Organization', id: 'org-lab', name: 'North Lab', partOf: ref('Organization/org-clinic') },
    {
      resourceType: 'Practitioner',
      id: 'prac-house',
      identifier: [{ system: 'urn:test:npi', value: '1001' }],
      name: [{ family: 'House', given: ['Gregory'] }],
    },
    { resourceType: 'Practitioner', id: 'prac-cuddy', name: [{ family: 'Cuddy', given: ['Lisa'] }] },
    {
      resourceType: 'Patient',
      id: 'pat-ann',
      identifier: [{ system: MRN, value: 'MRN-001' }],
      active: true,
      name: [{ family: 'Müller', given: ['Ann', 'Marie'] }],
      gender: 'female',
      birthDate: '1970-02-03',
      telecom: [{ system: 'email', value: 'ann@example.org' }],
      address: [{ line: ['Bahnhofstrasse 1'], city: 'Zürich', postalCode: '8001', country: 'CH' }],
      managingOrganization: ref('Organization/org-clinic'),
      generalPractitioner: [ref('Practitioner/prac-house')],
    },
    {
      resourceType: 'Patient',
      id: 'pat-bob',
      identifier: [{ system: MRN, value: 'MRN-002' }, { value: 'LOCAL-7' }],
      active: false,
      name: [{ family: 'Mueller', given: ['Bob'] }],
      gender: 'male',
      birthDate: '1980-05-05',
      address: [{ city: 'Basel', country: 'CH' }],
      managingOrganization: ref('Organization/org-lab'),
    },
    {
      resourceType: 'Patient',
      id: 'pat-cara',
      identifier: [{ system: MRN, value: 'MRN-003' }],
      name: [{ family: 'Smithson', given: ['Cara'] }],
      gender: 'female',
      birthDate: '1980-05-20',
      address: [{ city: 'Bern', country: 'CH' }],
    },
    // Birth date known to the month only: it covers all of May 1980. No gender recorded.
    {
      resourceType: 'Patient',
      id: 'pat-dan',
      identifier: [{ system: MRN, value: 'MRN-004' }],
      name: [{ family: 'Smith', given: ['Dan'] }],
      birthDate: '1980-05',
    },
    {
      resourceType: 'Patient',
      id: 'pat-eve',
      identifier: [{ system: MRN, value: 'MRN-005' }],
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Eve Smith</div>' },
      name: [{ family: 'Smith', given: ['Eve'] }],
      gender: 'female',
      birthDate: '1990-12-31',
      multipleBirthInteger: 2,
      contact: [
        { name: { family: 'Smith', given: ['Sam'] }, telecom: [{ system: 'phone', value: '+41 44 000 00 00' }] },
      ],
    },
    {
      resourceType: 'Patient',
      id: 'pat-fay',
      identifier: [{ system: MRN, value: 'MRN-006' }],
      name: [{ family: 'Adams', given: ['Fay'] }],
      gender: 'female',
      birthDate: '1980-05-20',
    },
    {
      resourceType: 'Encounter',
      id: 'enc-1',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: ref('Patient/pat-ann'),
      participant: [{ individual: ref('Practitioner/prac-house') }],
      period: { start: '2020-03-15T09:00:00+01:00', end: '2020-03-15T10:00:00+01:00' },
      length: { value: 60, unit: 'min', system: UCUM, code: 'min' },
      serviceProvider: ref('Organization/org-clinic'),
    },
    {
      resourceType: 'Encounter',
      id: 'enc-2',
      status: 'in-progress',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: ref('Patient/pat-bob'),
      period: { start: '2021-06-01T08:00:00Z' },
    },
    // Overnight: it overlaps the end of 2020-03-14 and the start of 2020-03-15 without lying within either.
    {
      resourceType: 'Encounter',
      id: 'enc-3',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER' },
      subject: ref('Patient/pat-cara'),
      period: { start: '2020-03-14T22:00:00Z', end: '2020-03-15T02:00:00Z' },
    },
    {
      resourceType: 'Observation',
      id: 'obs-ann-weight',
      status: 'final',
      category: [
        { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] },
      ],
      code: { coding: [{ system: LOINC, code: '29463-7', display: 'Body weight' }] },
      subject: ref('Patient/pat-ann'),
      encounter: ref('Encounter/enc-1'),
      performer: [ref('Practitioner/prac-house')],
      effectiveDateTime: '2020-03-15T10:30:00+01:00',
      valueQuantity: { value: 72.5, unit: 'kg', system: UCUM, code: 'kg' },
    },
    {
      resourceType: 'Observation',
      id: 'obs-ann-glucose',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '2339-0', display: 'Glucose [Mass/volume] in Blood' }] },
      subject: ref('Patient/pat-ann'),
      effectiveDateTime: '2021-01-10T08:00:00Z',
      valueQuantity: { value: 5.35, unit: 'mmol/L', system: UCUM, code: 'mmol/L' },
    },
    {
      resourceType: 'Observation',
      id: 'obs-bob-weight',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '29463-7', display: 'Body weight' }] },
      subject: ref('Patient/pat-bob'),
      effectiveDateTime: '2020-03-20',
      valueQuantity: { value: 100, unit: 'kg', system: UCUM, code: 'kg' },
    },
    // The subject is an absolute URL of this very server.
    {
      resourceType: 'Observation',
      id: 'obs-cara-bp',
      status: 'preliminary',
      code: { coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel' }] },
      subject: ref(`${fhir}/Patient/pat-cara`),
      effectiveDateTime: '2020-03-01T00:00:00Z',
    },
    // A logical reference: the subject is known by identifier only. No effective date.
    {
      resourceType: 'Observation',
      id: 'obs-logical',
      status: 'final',
      code: { text: 'Smoking status narrative' },
      subject: { identifier: { system: MRN, value: 'MRN-005' } },
    },
    // About a patient on another server who happens to have the same id as one of ours.
    {
      resourceType: 'Observation',
      id: 'obs-external',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '29463-7', display: 'Body weight' }] },
      subject: ref(`${OTHER_EHR}/Patient/pat-ann`),
      effectiveDateTime: '2019-07-01',
      valueQuantity: { value: 80, unit: 'kg', system: UCUM, code: 'kg' },
    },
    {
      resourceType: 'ServiceRequest',
      id: 'sr-1',
      identifier: [{ system: 'urn:test:order', value: 'ORD-1' }],
      instantiatesUri: [`${PROTOCOLS}/second-opinion/cardiology`],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: SNOMED, code: '371530004', display: 'Clinical consultation report' }] },
      subject: ref('Patient/pat-ann'),
      requester: ref('Practitioner/prac-house'),
      authoredOn: '2020-03-16',
    },
    {
      resourceType: 'ServiceRequest',
      id: 'sr-2',
      identifier: [{ system: 'urn:test:order', value: 'ORD-2' }],
      instantiatesUri: [`${PROTOCOLS}/second-opinion/oncology/v2`],
      status: 'completed',
      intent: 'order',
      subject: ref('Patient/pat-bob'),
    },
    {
      resourceType: 'ServiceRequest',
      id: 'sr-3',
      identifier: [{ system: 'urn:test:order', value: 'ORD-3' }],
      instantiatesUri: [PROTOCOLS],
      status: 'draft',
      intent: 'proposal',
      subject: ref('Patient/pat-cara'),
    },
    {
      resourceType: 'ServiceRequest',
      id: 'sr-4',
      identifier: [{ system: 'urn:test:order', value: 'ORD-4' }],
      instantiatesUri: [`${PROTOCOLS}/second-opinion-legacy`],
      status: 'revoked',
      intent: 'order',
      subject: ref('Patient/pat-dan'),
    },
    {
      resourceType: 'Task',
      id: 'task-1',
      identifier: [{ system: 'urn:test:task', value: 'T-1' }],
      status: 'requested',
      intent: 'order',
      focus: ref('ServiceRequest/sr-1'),
      for: ref('Patient/pat-ann'),
      owner: ref('Practitioner/prac-cuddy'),
      authoredOn: '2020-03-16T12:00:00Z',
    },
    {
      resourceType: 'Task',
      id: 'task-2',
      identifier: [{ system: 'urn:test:task', value: 'T-2' }],
      status: 'in-progress',
      intent: 'order',
      focus: ref('ServiceRequest/sr-2'),
      for: ref('Patient/pat-bob'),
    },
    {
      resourceType: 'Task',
      id: 'task-3',
      status: 'requested',
      intent: 'order',
      focus: ref('Patient/pat-cara'),
      for: ref('Patient/pat-cara'),
    },
    {
      resourceType: 'Condition',
      id: 'cond-mi',
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
      },
      code: { coding: [{ system: SNOMED, code: '22298006', display: 'Myocardial infarction' }] },
      subject: ref('Patient/pat-ann'),
      encounter: ref('Encounter/enc-1'),
      asserter: ref('Practitioner/prac-house'),
      onsetDateTime: '2019-11-02',
    },
    {
      resourceType: 'Condition',
      id: 'cond-dm',
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }],
      },
      code: { coding: [{ system: SNOMED, code: '44054006', display: 'Type 2 diabetes mellitus' }] },
      subject: ref('Patient/pat-bob'),
      onsetAge: { value: 52, unit: 'a', system: UCUM, code: 'a' },
    },
    // R4 defines no number parameter on the types above; RiskAssessment.probability is one.
    {
      resourceType: 'RiskAssessment',
      id: 'risk-low',
      status: 'final',
      subject: ref('Patient/pat-ann'),
      prediction: [{ probabilityDecimal: 0.25 }],
    },
    {
      resourceType: 'RiskAssessment',
      id: 'risk-high',
      status: 'final',
      subject: ref('Patient/pat-bob'),
      prediction: [{ probabilityDecimal: 0.7 }],
    },
  ] as Resource[];
}

async function put(resource: Resource): Promise<Resource> {
  const res = await fhirFetch(`${t.fhir}/${resource.resourceType}/${resource.id}`, { method: 'PUT', body: resource });
  expect([res.status, resource.id]).toEqual([201, resource.id]);
  return res.body as Resource;
}

async function create(resource: Resource): Promise<Resource> {
  const res = await fhirFetch(`${t.fhir}/${resource.resourceType}`, { method: 'POST', body: resource });
  expect(res.status).toBe(201);
  return res.body as Resource;
}

async function remove(resource: Resource): Promise<void> {
  const res = await fhirFetch(`${t.fhir}/${resource.resourceType}/${resource.id}`, { method: 'DELETE' });
  expect(res.status).toBe(200);
}

/** GETs a search (a path under /fhir or an absolute link) and insists on a searchset. */
async function search(query: string, headers?: Record<string, string>): Promise<Bundle> {
  const url = query.startsWith('http') ? query : `${t.fhir}/${query}`;
  const res = await fhirFetch(url, { headers });
  expect({ query, status: res.status, outcome: res.status === 200 ? undefined : res.body }).toEqual({
    query,
    status: 200,
    outcome: undefined,
  });
  const bundle = res.body as Bundle;
  expect(bundle.resourceType).toBe('Bundle');
  expect(bundle.type).toBe('searchset');
  return bundle;
}

async function searchError(
  query: string,
  headers?: Record<string, string>,
): Promise<{ status: number; outcome: OperationOutcome }> {
  const res = await fhirFetch(`${t.fhir}/${query}`, { headers });
  expect(res.body?.resourceType).toBe('OperationOutcome');
  return { status: res.status, outcome: res.body as OperationOutcome };
}

const matches = (bundle: Bundle): BundleEntry[] => (bundle.entry ?? []).filter((e) => e.search?.mode === 'match');
const ids = (bundle: Bundle): string[] => matches(bundle).map((e) => e.resource?.id as string);
const link = (bundle: Bundle, relation: string): string | undefined =>
  bundle.link?.find((l: BundleLink) => l.relation === relation)?.url;

/** Asserts the set of matching ids, whatever their order. */
async function expectIds(query: string, expected: string[]): Promise<void> {
  const found = ids(await search(query)).sort();
  expect({ query, ids: found }).toEqual({ query, ids: [...expected].sort() });
}

/** Follows `next` links to the end and returns every matching id in the order served. */
async function walk(query: string, between?: (seen: string[]) => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  let url: string | undefined = query;
  for (let page = 0; url && page < 50; page++) {
    const bundle = await search(url);
    seen.push(...ids(bundle));
    url = link(bundle, 'next');
    if (url && between) {
      await between(seen);
    }
  }
  return seen;
}

beforeAll(async () => {
  t = await startTestHub();
  for (const resource of fixtures(t.fhir)) {
    await put(resource);
  }
});

afterAll(async () => {
  await t?.stop();
});

const PATIENTS = 'Patient?identifier=urn:test:mrn|';

describe('token parameters', () => {
  test('code, system|code, |code and system|', async () => {
    await expectIds('Patient?identifier=MRN-002', ['pat-bob']);
    await expectIds('Patient?identifier=urn:test:mrn|MRN-002', ['pat-bob']);
    await expectIds('Patient?identifier=urn:test:other|MRN-002', []);
    await expectIds('Patient?identifier=|LOCAL-7', ['pat-bob']);
    await expectIds('Patient?identifier=|MRN-002', []);
    await expectIds(PATIENTS, ['pat-ann', 'pat-bob', 'pat-cara', 'pat-dan', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&gender=female`, ['pat-ann', 'pat-cara', 'pat-eve', 'pat-fay']);
    await expectIds('Patient?active=true', ['pat-ann']);
    await expectIds(`Observation?code=${LOINC}|29463-7`, ['obs-ann-weight', 'obs-bob-weight', 'obs-external']);
    await expectIds('Condition?clinical-status=active', ['cond-mi']);
  });

  test(':not includes resources without the element; :text matches display and text', async () => {
    await expectIds(`${PATIENTS}&gender:not=female`, ['pat-bob', 'pat-dan']);
    await expectIds('Observation?code:text=body weight', ['obs-ann-weight', 'obs-bob-weight', 'obs-external']);
    await expectIds('Observation?code:text=Smoking', ['obs-logical']);
    await expectIds('Condition?code:text=diabetes', ['cond-dm']);
  });

  test('_id, with OR values and :not', async () => {
    await expectIds('Patient?_id=pat-ann,pat-bob,no-such-id', ['pat-ann', 'pat-bob']);
    await expectIds(`${PATIENTS}&_id:not=pat-ann,pat-bob`, ['pat-cara', 'pat-dan', 'pat-eve', 'pat-fay']);
  });
});

describe('string parameters', () => {
  test('starts-with by default, case- and accent-insensitive', async () => {
    await expectIds('Patient?family=müller', ['pat-ann']);
    await expectIds('Patient?family=MULLER', ['pat-ann']);
    await expectIds('Patient?family=mu', ['pat-ann', 'pat-bob']);
    await expectIds('Patient?family=Smith', ['pat-cara', 'pat-dan', 'pat-eve']);
    await expectIds('Patient?family=ith', []);
    // LIKE wildcards in a value are literal characters.
    await expectIds('Patient?family=sm_th', []);
    await expectIds('Patient?family:contains=%25', []);
    await expectIds('Patient?address-city=zurich', ['pat-ann']);
    await expectIds('Organization?name=klinik sud', ['org-clinic']);
  });

  test('name and address match any of their parts', async () => {
    await expectIds('Patient?name=smith', ['pat-cara', 'pat-dan', 'pat-eve']);
    await expectIds('Patient?name=marie', ['pat-ann']);
    await expectIds('Patient?name=ann', ['pat-ann']);
    await expectIds('Practitioner?name=house', ['prac-house']);
    await expectIds('Patient?address=zurich', ['pat-ann']);
    await expectIds('Patient?address=8001', ['pat-ann']);
  });

  test(':exact and :contains', async () => {
    await expectIds('Patient?family:exact=Smith', ['pat-dan', 'pat-eve']);
    await expectIds('Patient?family:exact=smith', []);
    await expectIds('Patient?family:exact=Müller', ['pat-ann']);
    await expectIds('Patient?family:contains=ITH', ['pat-cara', 'pat-dan', 'pat-eve']);
    await expectIds('Patient?family:contains=ull', ['pat-ann']);
  });

  test('comma-separated values are OR-ed, repeated parameters AND-ed', async () => {
    await expectIds('Patient?family=adams,jones,mueller', ['pat-bob', 'pat-fay']);
    await expectIds('Patient?family=smith&given=eve', ['pat-eve']);
    await expectIds('Patient?name=smith&name=cara', ['pat-cara']);
    await expectIds(`${PATIENTS}&gender=female&birthdate=1980`, ['pat-cara', 'pat-fay']);
  });
});

describe('reference parameters', () => {
  test('by id, Type/id and absolute URL of this server; not the same id on another server', async () => {
    await expectIds('Observation?subject=Patient/pat-ann', ['obs-ann-weight', 'obs-ann-glucose']);
    await expectIds('Observation?subject=pat-ann', ['obs-ann-weight', 'obs-ann-glucose']);
    await expectIds(`Observation?subject=${t.fhir}/Patient/pat-ann`, ['obs-ann-weight', 'obs-ann-glucose']);
    await expectIds(`Observation?subject=${OTHER_EHR}/Patient/pat-ann`, ['obs-external']);
    await expectIds('Observation?subject=Patient/pat-cara', ['obs-cara-bp']);
    await expectIds(`Observation?subject=${t.fhir}/Patient/pat-cara`, ['obs-cara-bp']);
    await expectIds('Observation?subject=Patient/pat-ann,Patient/pat-bob', [
      'obs-ann-weight',
      'obs-ann-glucose',
      'obs-bob-weight',
    ]);
    await expectIds('Observation?patient=Patient/pat-ann', ['obs-ann-weight', 'obs-ann-glucose']);
    await expectIds('Patient?organization=Organization/org-clinic', ['pat-ann']);
    await expectIds('Task?owner=Practitioner/prac-cuddy', ['task-1']);
  });

  test(':[type] restricts the target type', async () => {
    const group = await fhirFetch(`${t.fhir}/Observation`, {
      method: 'POST',
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'group finding' },
        subject: { reference: 'Group/pat-ann' },
      },
    });
    expect(group.status).toBe(201);
    try {
      await expectIds('Observation?subject:Patient=pat-ann', ['obs-ann-weight', 'obs-ann-glucose']);
      await expectIds('Observation?subject:Group=pat-ann', [group.body.id]);
      await expectIds('Observation?subject:Group=Patient/pat-ann', []);
      await expectIds('Observation?subject=pat-ann', ['obs-ann-weight', 'obs-ann-glucose', group.body.id]);
    } finally {
      await fhirFetch(`${t.fhir}/Observation/${group.body.id}`, { method: 'DELETE' });
    }
  });

  test(':identifier finds logical references', async () => {
    await expectIds(`Observation?subject:identifier=${MRN}|MRN-005`, ['obs-logical']);
    await expectIds('Observation?subject:identifier=MRN-005', ['obs-logical']);
    await expectIds(`Observation?subject:identifier=${MRN}|MRN-001`, []);
  });

  test(':missing on a reference', async () => {
    await expectIds(`${PATIENTS}&organization:missing=true`, ['pat-cara', 'pat-dan', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&organization:missing=false`, ['pat-ann', 'pat-bob']);
  });
});

describe('date parameters', () => {
  test('precision: a year, a month and a day each mean their whole range', async () => {
    await expectIds(`${PATIENTS}&birthdate=1980`, ['pat-bob', 'pat-cara', 'pat-dan', 'pat-fay']);
    await expectIds(`${PATIENTS}&birthdate=1980-05`, ['pat-bob', 'pat-cara', 'pat-dan', 'pat-fay']);
    // pat-dan's May 1980 is not contained in one day of it.
    await expectIds(`${PATIENTS}&birthdate=1980-05-20`, ['pat-cara', 'pat-fay']);
    await expectIds(`${PATIENTS}&birthdate=1971`, []);
  });

  test('prefixes eq ne gt lt ge le sa eb ap', async () => {
    await expectIds(`${PATIENTS}&birthdate=eq1980-05-05`, ['pat-bob']);
    await expectIds(`${PATIENTS}&birthdate=ne1980-05-05`, ['pat-ann', 'pat-cara', 'pat-dan', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&birthdate=gt1980-05-20`, ['pat-dan', 'pat-eve']);
    await expectIds(`${PATIENTS}&birthdate=lt1980-05-05`, ['pat-ann', 'pat-dan']);
    await expectIds(`${PATIENTS}&birthdate=ge1980-05-20`, ['pat-cara', 'pat-dan', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&birthdate=le1980-05-05`, ['pat-ann', 'pat-bob', 'pat-dan']);
    await expectIds(`${PATIENTS}&birthdate=sa1980-05-05`, ['pat-cara', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&birthdate=eb1980-05-20`, ['pat-ann', 'pat-bob']);
    await expectIds(`${PATIENTS}&birthdate=ap1980-05-05`, ['pat-bob', 'pat-dan']);
    await expectIds(`${PATIENTS}&birthdate=ge1980&birthdate=lt1981`, ['pat-bob', 'pat-cara', 'pat-dan', 'pat-fay']);
  });

  test('ge and le: the range beyond the value overlaps, or the value contains the stored range', async () => {
    await expectIds('Encounter?date=ge2020-03-15', ['enc-1', 'enc-2']);
    await expectIds('Encounter?date=ge2020-03-14', ['enc-1', 'enc-2', 'enc-3']);
    await expectIds('Encounter?date=le2020-03-15', ['enc-1', 'enc-3']);
    await expectIds('Encounter?date=le2020-03-14', []);
    await expectIds('Encounter?date=ap2020-03-15', ['enc-1', 'enc-3']);
    await expectIds('Encounter?date=ge2020-03-15T08:30:00Z', ['enc-1', 'enc-2']);
    await expectIds('Encounter?date=ge2020-03-15T08:30Z', ['enc-1', 'enc-2']);
  });

  test('full dateTime with a time zone', async () => {
    // Stored as 2020-03-15T10:30:00+01:00, i.e. 09:30Z.
    await expectIds(`Observation?date=${encodeURIComponent('2020-03-15T10:30:00+01:00')}`, ['obs-ann-weight']);
    await expectIds('Observation?date=2020-03-15T09:30:00Z', ['obs-ann-weight']);
    await expectIds('Observation?date=2020-03-15T10:30:00Z', []);
    await expectIds(`Observation?date=${encodeURIComponent('2020-03-15T05:30-04:00')}`, ['obs-ann-weight']);
    await expectIds('Observation?date=2020-03', ['obs-ann-weight', 'obs-bob-weight', 'obs-cara-bp']);
    await expectIds('Observation?date=gt2020-03-15T09:30:00Z', ['obs-ann-glucose', 'obs-bob-weight']);
    await expectIds(`Observation?date=lt${encodeURIComponent('2020-03-15T10:30:00+01:00')}`, [
      'obs-cara-bp',
      'obs-external',
    ]);
    await expectIds('Encounter?date=2020-03-15', ['enc-1']);
    await expectIds('Encounter?date=ge2021', ['enc-2']);
    await expectIds('Encounter?date=lt2021-01-01', ['enc-1', 'enc-3']);
  });

  test(':missing on a date', async () => {
    await expectIds('Observation?date:missing=true', ['obs-logical']);
    await expectIds('Observation?date:missing=false&code=29463-7', [
      'obs-ann-weight',
      'obs-bob-weight',
      'obs-external',
    ]);
  });

  test('_lastUpdated with prefixes', async () => {
    const first = await create({
      resourceType: 'Patient',
      identifier: [{ system: 'urn:test:lastupdated', value: '1' }],
    });
    // Time, not an event: the second create must get a later lastUpdated (millisecond precision).
    const firstUpdated = Date.parse(first.meta?.lastUpdated as string);
    await until(async () => Date.now() > firstUpdated, 'the clock to pass the first lastUpdated', 1_000, 1);
    const second = await create({
      resourceType: 'Patient',
      identifier: [{ system: 'urn:test:lastupdated', value: '2' }],
    });
    const scope = 'Patient?identifier=urn:test:lastupdated|';
    const at = (resource: Resource) => encodeURIComponent(resource.meta?.lastUpdated as string);
    const [a, b] = [first.id as string, second.id as string];
    await expectIds(`${scope}&_lastUpdated=${at(first)}`, [a]);
    await expectIds(`${scope}&_lastUpdated=eq${at(second)}`, [b]);
    await expectIds(`${scope}&_lastUpdated=ne${at(second)}`, [a]);
    await expectIds(`${scope}&_lastUpdated=gt${at(first)}`, [b]);
    await expectIds(`${scope}&_lastUpdated=ge${at(first)}`, [a, b]);
    await expectIds(`${scope}&_lastUpdated=lt${at(second)}`, [a]);
    await expectIds(`${scope}&_lastUpdated=le${at(second)}`, [a, b]);
    await expectIds(`${scope}&_lastUpdated=sa${at(first)}`, [b]);
    await expectIds(`${scope}&_lastUpdated=eb${at(second)}`, [a]);
    await expectIds(`${scope}&_lastUpdated=gt2000-01-01`, [a, b]);
    await expectIds(`${scope}&_lastUpdated=lt2000`, []);
  });
});

describe('number and quantity parameters', () => {
  test('number: the precision of the value sets the range, prefixes compare', async () => {
    await expectIds('RiskAssessment?probability=0.25', ['risk-low']);
    await expectIds('RiskAssessment?probability=0.2', []);
    // 0.3 means [0.25, 0.35).
    await expectIds('RiskAssessment?probability=0.3', ['risk-low']);
    await expectIds('RiskAssessment?probability=gt0.5', ['risk-high']);
    await expectIds('RiskAssessment?probability=le0.25', ['risk-low']);
    await expectIds('RiskAssessment?probability=lt0.25', []);
    await expectIds('RiskAssessment?probability=ne0.25', ['risk-high']);
    await expectIds('RiskAssessment?probability=ap0.72', ['risk-high']);
    await expectIds('RiskAssessment?probability=0.25,0.7', ['risk-high', 'risk-low']);
  });

  test('quantity: value|system|code, value||code and prefixes', async () => {
    await expectIds(`Observation?value-quantity=72.5|${UCUM}|kg`, ['obs-ann-weight']);
    await expectIds('Observation?value-quantity=72.5||kg', ['obs-ann-weight']);
    await expectIds(`Observation?value-quantity=72.5|${UCUM}|g`, []);
    await expectIds('Observation?value-quantity=72.5', ['obs-ann-weight']);
    // 73 means [72.5, 73.5).
    await expectIds('Observation?value-quantity=73', ['obs-ann-weight']);
    // 5.4 means [5.35, 5.45): the stored 5.35 is on the boundary, inside.
    await expectIds(`Observation?value-quantity=5.4|${UCUM}|mmol/L`, ['obs-ann-glucose']);
    await expectIds('Observation?value-quantity=5.3', []);
    await expectIds(`Observation?value-quantity=gt75|${UCUM}|kg`, ['obs-bob-weight', 'obs-external']);
    await expectIds('Observation?value-quantity=ge100', ['obs-bob-weight']);
    await expectIds('Observation?value-quantity=lt10', ['obs-ann-glucose']);
    await expectIds('Observation?value-quantity=ap95||kg', ['obs-bob-weight']);
    await expectIds('Observation?value-quantity:missing=true', ['obs-cara-bp', 'obs-logical']);
    await expectIds('Encounter?length=ge60|http://unitsofmeasure.org|min', ['enc-1']);
    await expectIds('Condition?onset-age=lt60', ['cond-dm']);
  });
});

describe('uri parameters', () => {
  test('equality, :below and :above follow path segments', async () => {
    await expectIds(`ServiceRequest?instantiates-uri=${PROTOCOLS}/second-opinion/cardiology`, ['sr-1']);
    await expectIds(`ServiceRequest?instantiates-uri=${PROTOCOLS}/second-opinion`, []);
    await expectIds(`ServiceRequest?instantiates-uri:below=${PROTOCOLS}/second-opinion`, ['sr-1', 'sr-2']);
    await expectIds(`ServiceRequest?instantiates-uri:below=${PROTOCOLS}`, ['sr-1', 'sr-2', 'sr-3', 'sr-4']);
    await expectIds(`ServiceRequest?instantiates-uri:above=${PROTOCOLS}/second-opinion/oncology/v2/appendix`, [
      'sr-2',
      'sr-3',
    ]);
    await expectIds(`ServiceRequest?instantiates-uri:above=${PROTOCOLS}/second-opinion/cardiology`, ['sr-1', 'sr-3']);
  });
});

describe(':missing on tokens and strings', () => {
  test('true and false', async () => {
    await expectIds(`${PATIENTS}&gender:missing=true`, ['pat-dan']);
    await expectIds(`${PATIENTS}&gender:missing=false`, ['pat-ann', 'pat-bob', 'pat-cara', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&address-city:missing=true`, ['pat-dan', 'pat-eve', 'pat-fay']);
    await expectIds(`${PATIENTS}&address-city:missing=false`, ['pat-ann', 'pat-bob', 'pat-cara']);
  });
});

describe('chained and reverse-chained parameters', () => {
  test('forward chains one level deep, with a type, a modifier or a prefix', async () => {
    await expectIds('Task?focus:ServiceRequest.identifier=urn:test:order|ORD-1', ['task-1']);
    await expectIds('Task?focus:ServiceRequest.status=active,completed', ['task-1', 'task-2']);
    await expectIds('Observation?subject.name=ann', ['obs-ann-weight', 'obs-ann-glucose']);
    await expectIds('Observation?subject:Patient.family=muller', ['obs-ann-weight', 'obs-ann-glucose']);
    await expectIds('Observation?subject.family:exact=Mueller', ['obs-bob-weight']);
    await expectIds('Observation?subject:Patient.birthdate=ge1980', ['obs-bob-weight', 'obs-cara-bp']);
    await expectIds(`Task?patient.identifier=${MRN}|MRN-002`, ['task-2']);
    await expectIds('Encounter?service-provider.name=klinik', ['enc-1']);
  });

  test('reverse chains with _has', async () => {
    await expectIds(`Patient?_has:Observation:patient:code=${LOINC}|29463-7`, ['pat-ann', 'pat-bob']);
    await expectIds('Patient?_has:Observation:subject:value-quantity=gt90', ['pat-bob']);
    // Referred to by our absolute URL: ours. By another server's URL with the same id: not ours.
    await expectIds('Patient?_has:Observation:subject:code=85354-9', ['pat-cara']);
    await expectIds('Patient?_has:Observation:subject:value-quantity=80', []);
    await expectIds('Patient?_has:Task:patient:status=in-progress', ['pat-bob']);
    await expectIds('Practitioner?_has:Encounter:practitioner:date=2020-03', ['prac-house']);
    await expectIds(`Patient?_has:Observation:patient:code=${LOINC}|2339-0&_has:Condition:subject:code=22298006`, [
      'pat-ann',
    ]);
  });

  test('a deeper chain is refused', async () => {
    const { status } = await searchError('Observation?subject:Patient.organization.name=klinik');
    expect(status).toBe(400);
  });
});

describe('sorting and result parameters', () => {
  test('_sort with several keys and a descending one', async () => {
    const bundle = await search(`${PATIENTS}&_sort=-birthdate,family`);
    // pat-dan's May 1980 ends after 1980-05-20; pat-fay and pat-cara share a birth date.
    expect(ids(bundle)).toEqual(['pat-eve', 'pat-dan', 'pat-fay', 'pat-cara', 'pat-bob', 'pat-ann']);
    const ascending = await search(`${PATIENTS}&_sort=birthdate,-family`);
    expect(ids(ascending)).toEqual(['pat-ann', 'pat-dan', 'pat-bob', 'pat-cara', 'pat-fay', 'pat-eve']);
    const byFamily = await search(`${PATIENTS}&_sort=family,given`);
    expect(ids(byFamily)).toEqual(['pat-fay', 'pat-bob', 'pat-ann', 'pat-dan', 'pat-eve', 'pat-cara']);
  });

  test('_sort pages follow next links in order', async () => {
    const order = await walk(`${PATIENTS}&_sort=-birthdate,family&_count=2`);
    expect(order).toEqual(['pat-eve', 'pat-dan', 'pat-fay', 'pat-cara', 'pat-bob', 'pat-ann']);
  });

  test('paging by a key some resources lack: they come last, in either direction', async () => {
    expect(await walk(`${PATIENTS}&_sort=gender&_count=1`)).toEqual([
      'pat-ann',
      'pat-cara',
      'pat-eve',
      'pat-fay',
      'pat-bob',
      'pat-dan',
    ]);
    expect(await walk(`${PATIENTS}&_sort=-gender,-_id&_count=2`)).toEqual([
      'pat-bob',
      'pat-fay',
      'pat-eve',
      'pat-cara',
      'pat-ann',
      'pat-dan',
    ]);
  });

  test('_count, _total=accurate and _summary=count', async () => {
    const page = await search(`${PATIENTS}&_count=2&_total=accurate`);
    expect(matches(page)).toHaveLength(2);
    expect(page.total).toBe(6);
    expect(link(page, 'next')).toContain('_count=2');
    const counted = await search(`${PATIENTS}&_summary=count`);
    expect(counted.total).toBe(6);
    expect(counted.entry ?? []).toHaveLength(0);
    const zero = await search(`${PATIENTS}&gender=female&_count=0`);
    expect(zero.total).toBe(4);
    expect(zero.entry ?? []).toHaveLength(0);
  });

  test('_summary=true keeps summary elements, marks SUBSETTED and survives paging', async () => {
    const page = await search(`${PATIENTS}&_sort=-birthdate&_summary=true&_count=1`);
    const eve = defined(matches(page)[0], 'a first match').resource as Resource & Record<string, unknown>;
    expect(eve.id).toBe('pat-eve');
    expect(eve.name).toEqual([{ family: 'Smith', given: ['Eve'] }]);
    expect(eve.birthDate).toBe('1990-12-31');
    expect(eve.contact).toBeUndefined();
    expect(eve.text).toBeUndefined();
    expect(eve.multipleBirthInteger).toBeUndefined();
    expect(eve.meta?.tag?.map((tag) => tag.code)).toContain(SUBSETTED);
    const nextUrl = link(page, 'next') as string;
    expect(link(page, 'self')).toContain('_summary=true');
    expect(nextUrl).toContain('_summary=true');
    const next = defined(matches(await search(nextUrl))[0], 'a match on the next page').resource as Resource &
      Record<string, unknown>;
    expect(next.id).toBe('pat-dan');
    expect(next.meta?.tag?.map((tag) => tag.code)).toContain(SUBSETTED);
  });

  test('_elements keeps the asked-for and mandatory elements, including choice types, and survives paging', async () => {
    const patients = await search(`Patient?_id=pat-eve&_elements=name,multipleBirth`);
    const eve = defined(matches(patients)[0], 'pat-eve').resource as Resource & Record<string, unknown>;
    expect(Object.keys(eve).sort()).toEqual(['id', 'meta', 'multipleBirthInteger', 'name', 'resourceType']);
    expect(eve.meta?.tag?.map((tag) => tag.code)).toContain(SUBSETTED);

    const observations = await search('Observation?_id=obs-ann-weight&_elements=subject');
    const weight = defined(matches(observations)[0], 'obs-ann-weight').resource as Resource & Record<string, unknown>;
    expect(Object.keys(weight).sort()).toEqual(['code', 'id', 'meta', 'resourceType', 'status', 'subject']);

    const page = await search(`${PATIENTS}&_elements=name&_count=2`);
    const nextUrl = link(page, 'next') as string;
    expect(nextUrl).toContain('_elements=name');
    for (const entry of matches(await search(nextUrl))) {
      expect(Object.keys(entry.resource as object).sort()).toEqual(['id', 'meta', 'name', 'resourceType']);
    }
  });

  test('_include and _revinclude add entries with search.mode "include"', async () => {
    const included = await search(
      'Observation?_id=obs-ann-weight&_include=Observation:subject&_include=Observation:performer',
    );
    expect(ids(included)).toEqual(['obs-ann-weight']);
    const extra = (included.entry ?? []).filter((e) => e.search?.mode === 'include');
    expect(extra.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort()).toEqual([
      'Patient/pat-ann',
      'Practitioner/prac-house',
    ]);
    expect(extra.map((e) => e.fullUrl).sort()).toEqual([
      `${t.fhir}/Patient/pat-ann`,
      `${t.fhir}/Practitioner/prac-house`,
    ]);

    const absolute = await search('Observation?_id=obs-cara-bp&_include=Observation:subject');
    expect((absolute.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.id)).toEqual([
      'pat-cara',
    ]);

    const rev = await search('Patient?_id=pat-ann,pat-cara&_revinclude=Observation:subject&_revinclude=Task:focus');
    expect(ids(rev).sort()).toEqual(['pat-ann', 'pat-cara']);
    const revExtra = (rev.entry ?? []).filter((e) => e.search?.mode === 'include');
    expect(revExtra.map((e) => e.resource?.id).sort()).toEqual([
      'obs-ann-glucose',
      'obs-ann-weight',
      'obs-cara-bp',
      'task-3',
    ]);
    expect(rev.total).toBe(2);

    const typed = await search('Task?_id=task-1&_include=Task:focus:ServiceRequest&_include=Task:owner');
    expect(
      (typed.entry ?? [])
        .filter((e) => e.search?.mode === 'include')
        .map((e) => e.resource?.id)
        .sort(),
    ).toEqual(['prac-cuddy', 'sr-1']);
  });
});

describe('search by POST', () => {
  test('POST /Patient/_search with a form body answers like GET', async () => {
    const query = 'family=smith&gender=female&_sort=family,given&_total=accurate';
    const viaGet = await search(`Patient?${query}`);
    const res = await fhirFetch(`${t.fhir}/Patient/_search`, {
      method: 'POST',
      body: query,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(200);
    const viaPost = res.body as Bundle;
    expect(viaPost.type).toBe('searchset');
    expect(ids(viaPost)).toEqual(ids(viaGet));
    expect(ids(viaPost)).toEqual(['pat-eve', 'pat-cara']);
    expect(viaPost.total).toBe(viaGet.total);
    expect(link(viaPost, 'self')).toBe(link(viaGet, 'self'));

    const repeated = await fhirFetch(`${t.fhir}/Patient/_search`, {
      method: 'POST',
      body: 'name=smith&name=cara',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(ids(repeated.body as Bundle)).toEqual(['pat-cara']);

    // A parameter in the URL and in the body: both apply (AND), neither replaces the other.
    const both = await fhirFetch(`${t.fhir}/Patient/_search?name=smith`, {
      method: 'POST',
      body: 'name=cara',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(ids(both.body as Bundle)).toEqual(['pat-cara']);

    // The :[type] modifier in a form body restricts the target type as it does in a GET query.
    const typed = await fhirFetch(`${t.fhir}/Observation/_search`, {
      method: 'POST',
      body: 'subject:Group=pat-ann',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(ids(typed.body as Bundle)).toEqual([]);
  });
});

describe('paging while the data changes', () => {
  const pagerPatient = (n: number, birthDate: string): Resource => ({
    resourceType: 'Patient',
    id: `pager-${String(n).padStart(2, '0')}`,
    identifier: [{ system: 'urn:test:paging', value: String(n) }],
    name: [{ family: `Pager${String(n).padStart(2, '0')}` }],
    birthDate,
  });

  async function checkPaging(
    system: string,
    query: string,
    sortedOrder?: (all: Resource[]) => string[],
  ): Promise<void> {
    const withSystem = (patient: Resource, value: string): Resource =>
      ({
        ...patient,
        id: `${system}-${patient.id}`,
        identifier: [{ system: `urn:test:${system}`, value }],
      }) as Resource;
    const original: Resource[] = [];
    for (let n = 0; n < 13; n++) {
      // Five distinct birth dates, so the second sort key decides between equals.
      original.push(await put(withSystem(pagerPatient(n, `19${50 + ((n * 7) % 5)}-01-01`), String(n))));
    }
    const deleted = new Set<string>();
    let extra = 100;
    const order = await walk(`${query}&identifier=urn:test:${system}|&_count=4`, async (seen) => {
      // New matching resources, one sorting before everything seen so far and one after.
      for (const birthDate of ['1940-06-06', '1999-06-06']) {
        await put(withSystem(pagerPatient(extra, birthDate), `new-${extra++}`));
      }
      const victim = original.find((p) => !seen.includes(p.id as string) && !deleted.has(p.id as string));
      if (victim) {
        await remove(victim);
        deleted.add(victim.id as string);
      }
    });
    // Nothing is served twice; everything that existed throughout is served exactly once.
    expect(new Set(order).size).toBe(order.length);
    const survivors = original.map((p) => p.id as string).filter((id) => !deleted.has(id));
    expect(survivors.filter((id) => !order.includes(id))).toEqual([]);
    expect(order.filter((id) => deleted.has(id))).toEqual([]);
    expect(deleted.size).toBeGreaterThan(1);
    if (sortedOrder) {
      expect(order.filter((id) => survivors.includes(id))).toEqual(
        sortedOrder(original).filter((id) => survivors.includes(id)),
      );
    }
  }

  test('default order: nothing repeated or skipped while resources are created and deleted', async () => {
    await checkPaging('paging-seq', 'Patient?');
  });

  test('with _sort: nothing repeated or skipped while resources are created and deleted', async () => {
    await checkPaging('paging-sort', 'Patient?_sort=-birthdate,family', (all) =>
      ([...all] as (Resource & { birthDate: string; name: { family: string }[] })[])
        .sort(
          (x, y) =>
            y.birthDate.localeCompare(x.birthDate) || (x.name[0]?.family ?? '').localeCompare(y.name[0]?.family ?? ''),
        )
        .map((p) => p.id as string),
    );
  });
});

describe('unknown parameters and invalid values', () => {
  test('unknown parameters are ignored and left out of the self link', async () => {
    const lenient = await search('Patient?family=smith&colour=blue&_sort=shoe-size');
    expect(ids(lenient).sort()).toEqual(['pat-cara', 'pat-dan', 'pat-eve']);
    const self = link(lenient, 'self') as string;
    expect(self).toContain('family=smith');
    expect(self).not.toContain('colour');
    expect(self).not.toContain('shoe-size');
  });

  test('with Prefer: handling=strict an unknown parameter is a 400', async () => {
    const strict = { prefer: 'handling=strict' };
    const unknown = await searchError('Patient?family=smith&colour=blue', strict);
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.outcome)).toContain('colour');
    expect((await searchError('Patient?_sort=shoe-size', strict)).status).toBe(400);
    await expectIds('Patient?family=smith', ['pat-cara', 'pat-dan', 'pat-eve']);
    expect(ids(await search('Patient?family=smith', strict)).sort()).toEqual(['pat-cara', 'pat-dan', 'pat-eve']);
  });

  test('invalid values are a 400 OperationOutcome', async () => {
    const bad = [
      'Patient?birthdate=2020-13-45',
      'Patient?birthdate=yesterday',
      'Patient?_lastUpdated=gtnot-a-date',
      'Patient?_count=abc',
      'Patient?_count=-1',
      'Observation?value-quantity=heavy',
      'RiskAssessment?probability=0.2.5',
      'Patient?_cursor=not-a-cursor',
      'Patient?gender:below=female',
      'Patient?gender:missing=maybe',
    ];
    for (const query of bad) {
      const { status, outcome } = await searchError(query);
      expect({ query, status }).toEqual({ query, status: 400 });
      expect(outcome.issue?.[0]?.severity).toBe('error');
    }
  });

  test('a tampered _cursor, or one from another search, is a 400', async () => {
    const page = await search(`${PATIENTS}&_sort=birthdate&_count=2`);
    const next = new URL(link(page, 'next') as string);
    const cursor = next.searchParams.get('_cursor') as string;
    expect(cursor).toBeTruthy();
    const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;

    const tamper = async (changed: Record<string, unknown>): Promise<number> => {
      const url = new URL(next);
      url.searchParams.set('_cursor', Buffer.from(JSON.stringify(changed)).toString('base64url'));
      const res = await fhirFetch(url.toString());
      // Refused as a bad cursor, not by a database error about a malformed value.
      expect((res.body as OperationOutcome).issue?.[0]?.expression).toEqual(['_cursor']);
      return res.status;
    };
    expect(await tamper({ ...decoded, v: ['not a date'] })).toBe(400);
    expect(await tamper({ ...decoded, v: [{ evil: true }] })).toBe(400);
    expect(await tamper({ ...decoded, s: 1e30 })).toBe(400);
    expect(await tamper({ ...decoded, s: -5 })).toBe(400);

    const elsewhere = new URL(`${t.fhir}/Patient?family=smith&_sort=family&_count=2`);
    elsewhere.searchParams.set('_cursor', cursor);
    const replayed = await fhirFetch(elsewhere.toString());
    expect(replayed.status).toBe(400);
    expect((replayed.body as OperationOutcome).issue?.[0]?.expression).toEqual(['_cursor']);

    expect((await fhirFetch(next.toString())).status).toBe(200);
  });
});
