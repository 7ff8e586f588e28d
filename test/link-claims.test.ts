/**
 * Every link a person's write records is a claim the hub checked (docs/access.md): a URL naming a
 * Binary links it to the writer's case only where it is an attachment's, which the write must be
 * able to read; an extension's `url`, anything under `meta`, and a Reference held in an element
 * named `reference` (Consent.provision.data.reference) neither link nor slip past the check.
 * Attacker tests: a physician and a patient of one case try to reach another case's Binary and to
 * file a resource into another case.
 */
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const PEOPLE = {
  physician: { role: 'referring-physician' as const, fhirUser: 'Practitioner/prac-a' },
  patient: { role: 'patient' as const, fhirUser: 'Patient/pat-a' },
  otherPhysician: { role: 'referring-physician' as const, fhirUser: 'Practitioner/prac-b' },
};

describe('links recorded only where the claim was checked', () => {
  let testHub: TestHub;
  let ehr: string;
  let victim: string;
  const tokens = {} as Record<keyof typeof PEOPLE, string>;
  const as = (token: string, path: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${testHub.fhir}/${path}`, { ...init, headers: { authorization: `Bearer ${token}` } });
  const readsVictim = async (token: string): Promise<number> =>
    (await fetch(`${testHub.fhir}/Binary/${victim}`, { headers: { authorization: `Bearer ${token}` } })).status;

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    ehr = await clientToken(testHub, 'links-ehr', 'system/*.cruds');
    Object.assign(
      tokens,
      await signInPeople(testHub, PEOPLE, {
        clientId: 'links-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
    const caseOf = (sr: string, patient: string, requester: string) => [
      { resourceType: 'Patient', id: patient, name: [{ family: 'Linkless' }] },
      {
        resourceType: 'ServiceRequest',
        id: sr,
        status: 'active',
        intent: 'order',
        subject: { reference: `Patient/${patient}` },
        requester: { reference: requester },
      },
    ];
    const loaded = await putTransaction(testHub.fhir, ehr, [
      ...caseOf('sr-a', 'pat-a', 'Practitioner/prac-a'),
      ...caseOf('sr-b', 'pat-b', 'Practitioner/prac-b'),
    ]);
    expect(loaded.status).toBe(200);
    // Case B's document, with its PDF.
    const binary = await fetch(`${testHub.fhir}/Binary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ehr}`, 'content-type': 'application/pdf' },
      body: Buffer.from('%PDF-1.4 case B only\n%%EOF\n'),
    });
    victim = ((await binary.json()) as { id: string }).id;
    const document = await as(ehr, 'DocumentReference', {
      method: 'POST',
      body: {
        resourceType: 'DocumentReference',
        status: 'current',
        subject: { reference: 'Patient/pat-b' },
        context: { related: [{ reference: 'ServiceRequest/sr-b' }] },
        content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${victim}` } }],
      },
    });
    expect(document.status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await testHub?.stop();
  });

  test('case B’s physician reads the Binary; case A’s people do not, to begin with', async () => {
    expect(await readsVictim(tokens.otherPhysician)).toBe(200);
    expect(await readsVictim(tokens.physician)).toBe(404);
    expect(await readsVictim(tokens.patient)).toBe(404);
  });

  test('an attachment naming it is refused, wherever it is (an extension’s valueAttachment too)', async () => {
    for (const where of [
      { content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${victim}` } }] },
      {
        extension: [{ url: 'urn:example:scan', valueAttachment: { url: `Binary/${victim}` } }],
        content: [{ attachment: { contentType: 'text/plain', data: 'aGk=' } }],
      },
    ]) {
      const written = await as(tokens.physician, 'DocumentReference', {
        method: 'POST',
        body: {
          resourceType: 'DocumentReference',
          status: 'current',
          context: { related: [{ reference: 'ServiceRequest/sr-a' }] },
          ...where,
        },
      });
      expect(written.status).toBe(403);
    }
    expect(await readsVictim(tokens.physician)).toBe(404);
  });

  test('a Binary URL in meta.extension, or as an extension of a nested Reference, links nothing', async () => {
    const physicianWrites = [
      {
        resourceType: 'DocumentReference',
        status: 'current',
        meta: { extension: [{ url: `Binary/${victim}`, valueString: 'x' }] },
        context: { related: [{ reference: 'ServiceRequest/sr-a' }] },
        content: [{ attachment: { contentType: 'text/plain', data: 'aGk=' } }],
      },
      {
        resourceType: 'Consent',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
        patient: { reference: 'Patient/pat-a' },
        policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
        provision: {
          data: [
            {
              meaning: 'related',
              reference: {
                reference: 'ServiceRequest/sr-a',
                extension: [{ url: `Binary/${victim}`, valueString: 'x' }],
              },
            },
          ],
        },
      },
    ];
    for (const body of physicianWrites) {
      const written = await as(tokens.physician, body.resourceType, { method: 'POST', body });
      expect([body.resourceType, written.status]).toEqual([body.resourceType, 201]);
      expect(await readsVictim(tokens.physician)).toBe(404);
    }
    const fromPatient = await as(tokens.patient, 'Communication', {
      method: 'POST',
      body: {
        resourceType: 'Communication',
        status: 'completed',
        meta: { extension: [{ url: `Binary/${victim}`, valueString: 'x' }] },
        basedOn: [{ reference: 'ServiceRequest/sr-a' }],
        payload: [{ contentString: 'A question' }],
      },
    });
    expect(fromPatient.status).toBe(201);
    expect(await readsVictim(tokens.patient)).toBe(404);
  });

  test('a Reference held in an element named `reference` is a claim: another case cannot be named there', async () => {
    const injected = await as(tokens.physician, 'Consent', {
      method: 'POST',
      body: {
        resourceType: 'Consent',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
        patient: { reference: 'Patient/pat-a' },
        policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
        // Filed into the writer's own case, and into another's by the second entry.
        provision: {
          data: [
            { meaning: 'related', reference: { reference: 'ServiceRequest/sr-a' } },
            { meaning: 'related', reference: { reference: 'ServiceRequest/sr-b' } },
          ],
        },
      },
    });
    expect(injected.status).toBe(403);
    // Case B's people see no Consent of case A's physician.
    const seen = await as(tokens.otherPhysician, 'Consent?_count=50');
    expect(seen.status).toBe(200);
    expect(seen.body.entry ?? []).toEqual([]);
  });
});
