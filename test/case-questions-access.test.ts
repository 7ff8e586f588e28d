/**
 * The physician's questions (a QuestionnaireResponse the ServiceRequest names in supportingInfo, as
 * the EHR's referral sends them; shared/fhir-model.md) belong to the case: its specialist answers
 * them and its physician reads them, while nobody outside the case reads them, and a person cannot
 * make another case's questions theirs by naming them in a request of their own.
 */
import type { UserRole } from '../src/auth/users.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { opinionCaseFixtures } from './support/opinion-case.ts';
import { fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

type Person = 'specialist' | 'otherSpecialist' | 'physician' | 'otherPhysician' | 'patient';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  otherSpecialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s2' },
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  otherPhysician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys2' },
  patient: { role: 'patient', fhirUser: 'Patient/pat-sr-q' },
};

describe('the physician’s questions belong to their case', () => {
  let testHub: TestHub;
  const tokens = {} as Record<Person | 'system', string>;
  const as = (who: Person | 'system', path: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${testHub.fhir}/${path}`, { ...init, headers: { authorization: `Bearer ${tokens[who]}` } });

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    Object.assign(
      tokens,
      await signInPeople(testHub, PEOPLE, {
        clientId: 'questions-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
    tokens.system = await clientToken(testHub, 'questions-ehr', 'system/*.cruds');
    const fixtures = [
      ...['prac-s', 'prac-s2', 'prac-phys', 'prac-phys2'].map((id) => ({ resourceType: 'Practitioner', id })),
      ...opinionCaseFixtures(
        'sr-q',
        generateReferenceNumber(() => 1),
      ),
      // Another case: another physician's, offered to another specialist.
      ...opinionCaseFixtures(
        'sr-q2',
        generateReferenceNumber(() => 2),
      ).map((resource) =>
        resource.resourceType === 'ServiceRequest'
          ? { ...resource, requester: { reference: 'Practitioner/prac-phys2' } }
          : resource.resourceType === 'Task' && resource.id === 'offer-sr-q2'
            ? { ...resource, owner: { reference: 'Practitioner/prac-s2' } }
            : resource,
      ),
    ];
    const loaded = await putTransaction(testHub.fhir, tokens.system, fixtures);
    expect(loaded.status).toBe(200);
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('the case’s specialist, physician and patient read its questions; the other case’s people do not', async () => {
    for (const who of ['specialist', 'physician', 'patient'] as const) {
      expect([who, (await as(who, 'QuestionnaireResponse/qr-sr-q')).status]).toEqual([who, 200]);
      const found = (await as(who, 'QuestionnaireResponse?_count=50')).body;
      expect([who, (found.entry ?? []).map((entry: any) => entry.resource.id)]).toEqual([who, ['qr-sr-q']]);
    }
    for (const who of ['otherSpecialist', 'otherPhysician'] as const) {
      expect([who, (await as(who, 'QuestionnaireResponse/qr-sr-q')).status]).toEqual([who, 404]);
      expect([who, (await as(who, 'QuestionnaireResponse/qr-sr-q2')).status]).toEqual([who, 200]);
    }
  });

  test('a physician cannot take another case’s questions by naming them in a request of theirs', async () => {
    const taken = await as('otherPhysician', 'ServiceRequest', {
      method: 'POST',
      body: {
        resourceType: 'ServiceRequest',
        status: 'draft',
        intent: 'order',
        subject: { reference: 'Patient/pat-sr-q2' },
        requester: { reference: 'Practitioner/prac-phys2' },
        supportingInfo: [{ reference: 'QuestionnaireResponse/qr-sr-q' }],
      },
    });
    expect(taken.status).toBe(403);
    expect(JSON.stringify(taken.body)).toMatch(/supportingInfo/);
    expect((await as('otherPhysician', 'QuestionnaireResponse/qr-sr-q')).status).toBe(404);
  });

  test('a request that stops naming its questions takes them out of the case', async () => {
    const request = (await as('system', 'ServiceRequest/sr-q')).body;
    const written = await as('system', 'ServiceRequest/sr-q', {
      method: 'PUT',
      body: { ...request, meta: undefined, supportingInfo: undefined },
    });
    expect(written.status).toBe(200);
    expect((await as('specialist', 'QuestionnaireResponse/qr-sr-q')).status).toBe(404);
    await as('system', 'ServiceRequest/sr-q', { method: 'PUT', body: { ...request, meta: undefined } });
    expect((await as('specialist', 'QuestionnaireResponse/qr-sr-q')).status).toBe(200);
  });
});
