/**
 * Every resource type the second-opinion workflow (shared/fhir-model.md) and a referral bundle use can be
 * created, read back unchanged, found by its patient, and listed in the CapabilityStatement; any
 * other R4 type is at least stored and read back.
 */
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const PATIENT = 'Patient/rt-patient';
const subject = { reference: PATIENT };
const code = { coding: [{ system: 'http://loinc.org', code: '11488-4' }], text: 'Consultation note' };

/** Minimal valid instances, keyed by type, with the search parameter that finds them by patient. */
const EXAMPLES: [Record<string, unknown>, string | undefined][] = [
  [
    { resourceType: 'Practitioner', identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }] },
    undefined,
  ],
  [{ resourceType: 'PractitionerRole', practitioner: { reference: 'Practitioner/x' }, specialty: [code] }, undefined],
  [{ resourceType: 'Organization', name: 'Referring Clinic' }, undefined],
  [{ resourceType: 'Location', name: 'Radiology' }, undefined],
  [{ resourceType: 'RelatedPerson', patient: subject }, 'patient'],
  [{ resourceType: 'ServiceRequest', status: 'draft', intent: 'order', subject }, 'subject'],
  [{ resourceType: 'Task', status: 'requested', intent: 'order', for: subject }, 'patient'],
  [
    { resourceType: 'Questionnaire', status: 'active', item: [{ linkId: 'q', type: 'text', repeats: true }] },
    undefined,
  ],
  [{ resourceType: 'QuestionnaireResponse', status: 'completed', subject }, 'subject'],
  [
    {
      resourceType: 'DocumentReference',
      status: 'current',
      subject,
      content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/x' } }],
    },
    'subject',
  ],
  [
    {
      resourceType: 'Provenance',
      target: [subject],
      recorded: '2026-01-02T03:04:05Z',
      agent: [{ who: { reference: 'Organization/x' } }],
    },
    'patient',
  ],
  [
    {
      resourceType: 'ImagingStudy',
      status: 'available',
      subject,
      identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.3.4' }],
    },
    'subject',
  ],
  [
    {
      resourceType: 'Endpoint',
      status: 'active',
      connectionType: {
        system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type',
        code: 'dicom-wado-rs',
      },
      payloadType: [code],
      address: 'http://127.0.0.1/dicomweb',
    },
    undefined,
  ],
  [{ resourceType: 'Specimen', subject }, 'subject'],
  [{ resourceType: 'DiagnosticReport', status: 'preliminary', code, subject }, 'subject'],
  [{ resourceType: 'Communication', status: 'in-progress', subject }, 'subject'],
  [{ resourceType: 'ChargeItem', status: 'billable', code, subject }, 'subject'],
  [
    { resourceType: 'Consent', status: 'active', scope: code, category: [code], patient: subject, policyRule: code },
    'patient',
  ],
  [{ resourceType: 'Condition', subject, code }, 'subject'],
  [
    { resourceType: 'Observation', status: 'final', code, subject, valueQuantity: { value: 5.4, unit: 'mg' } },
    'subject',
  ],
  [{ resourceType: 'MedicationStatement', status: 'active', medicationCodeableConcept: code, subject }, 'subject'],
  [
    { resourceType: 'MedicationRequest', status: 'active', intent: 'order', medicationCodeableConcept: code, subject },
    'subject',
  ],
  [
    {
      resourceType: 'AllergyIntolerance',
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }],
      },
      patient: subject,
    },
    'patient',
  ],
  [{ resourceType: 'Procedure', status: 'completed', subject }, 'subject'],
  [
    {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject,
    },
    'subject',
  ],
  [
    {
      resourceType: 'Immunization',
      status: 'completed',
      vaccineCode: code,
      patient: subject,
      occurrenceDateTime: '2020-01-01',
    },
    'patient',
  ],
  [{ resourceType: 'FamilyMemberHistory', status: 'completed', patient: subject, relationship: code }, 'patient'],
  [{ resourceType: 'CarePlan', status: 'active', intent: 'plan', subject }, 'subject'],
  [
    {
      resourceType: 'Composition',
      status: 'final',
      type: code,
      subject,
      date: '2026-01-02',
      author: [{ reference: 'Practitioner/x' }],
      title: 'Referral summary',
    },
    'subject',
  ],
  // Types the workflow does not use: still stored and read back.
  [{ resourceType: 'Goal', lifecycleStatus: 'active', description: { text: 'walk' }, subject }, 'subject'],
  [{ resourceType: 'Device', status: 'active' }, undefined],
  [{ resourceType: 'ResearchStudy', status: 'active' }, undefined],
];

describe('resource types', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
    const created = await fhirFetch(`${t.fhir}/Patient/rt-patient`, {
      method: 'PUT',
      body: { resourceType: 'Patient', id: 'rt-patient' },
    });
    expect(created.status).toBe(201);
  });
  afterAll(async () => {
    await t?.stop();
  });

  test.each(EXAMPLES.map(([resource, param]) => [resource.resourceType as string, resource, param] as const))(
    '%s is created, read back unchanged and found by its patient',
    async (type, resource, param) => {
      const created = await fhirFetch(`${t.fhir}/${type}`, { method: 'POST', body: resource });
      expect({ status: created.status, body: created.body }).toMatchObject({ status: 201 });
      const read = await fhirFetch(`${t.fhir}/${type}/${created.body.id}`);
      expect(read.status).toBe(200);
      const { id, meta, ...content } = read.body;
      expect(id).toBe(created.body.id);
      expect(meta.versionId).toBe('1');
      expect(content).toEqual(resource);
      if (param) {
        const found = await fhirFetch(`${t.fhir}/${type}?${param}=${PATIENT}`);
        expect(found.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toContain(created.body.id);
      }
    },
  );

  test("AuditEvent is the hub's own record: clients cannot create one (405)", async () => {
    const auditEvent = {
      resourceType: 'AuditEvent',
      type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
      recorded: '2026-01-02T03:04:05Z',
      agent: [{ requestor: true, who: { reference: 'Practitioner/x' } }],
      source: { observer: { reference: 'Device/hub' } },
      entity: [{ what: { reference: PATIENT } }],
    };
    const created = await fhirFetch(`${t.fhir}/AuditEvent`, { method: 'POST', body: auditEvent });
    expect(created.status).toBe(405);
    expect(created.body.resourceType).toBe('OperationOutcome');
  });

  test('the CapabilityStatement lists every one of these types with its interactions', async () => {
    const statement = (await fhirFetch(`${t.fhir}/metadata`)).body;
    const resources = new Map<string, { interaction: { code: string }[] }>(
      statement.rest[0].resource.map((r: { type: string; interaction: { code: string }[] }) => [r.type, r]),
    );
    for (const [resource] of EXAMPLES) {
      const entry = resources.get(resource.resourceType as string);
      expect(entry).toBeDefined();
      expect(entry?.interaction.map((i) => i.code)).toEqual(
        expect.arrayContaining([
          'read',
          'vread',
          'create',
          'update',
          'patch',
          'delete',
          'search-type',
          'history-instance',
          'history-type',
        ]),
      );
    }
    expect(statement.rest[0].interaction.map((i: { code: string }) => i.code)).toEqual(
      expect.arrayContaining(['transaction', 'batch', 'history-system']),
    );
  });
});
