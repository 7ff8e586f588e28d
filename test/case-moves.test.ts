/**
 * Case moves written on the coordination Task by people: the progression job (called as the worker
 * calls it) checks each one with the state machine, including a version whose status and
 * businessStatus agree (several states share `in-progress`, and a consistent pair used to pass
 * unchecked).
 */
import { ClientRegistry } from '../src/auth/clients.ts';
import { totpCode } from '../src/auth/totp.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore } from '../src/auth/users.ts';
import type { UserRole } from '../src/auth/users.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { workflowContextOf } from './support/case-fixtures.ts';
import { clientToken } from './support/client-token.ts';
import { Browser, logIn } from './support/login-flow.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const APP = 'moves-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const PASSWORD = 'a long enough password';
const CASE = 'urn:hub:case-resource';
const TASK_CODE = 'urn:hub:task-code';
const CASE_STATE = 'urn:hub:case-state';

type Person = 'specialist' | 'otherSpecialist' | 'coordinator' | 'physician';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  otherSpecialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s2' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
};

/** A case in specialist review: two questions asked, the specialist's offer accepted. */
function caseFixtures(sr: string): Record<string, unknown>[] {
  return [
    { resourceType: 'Patient', id: `pat-${sr}`, name: [{ family: 'Opinion' }] },
    {
      resourceType: 'QuestionnaireResponse',
      id: `qr-${sr}`,
      status: 'completed',
      subject: { reference: `Patient/pat-${sr}` },
      item: [
        {
          linkId: 'question',
          answer: [{ valueString: 'Is the nodule malignant?' }, { valueString: 'Which treatment do you advise?' }],
        },
      ],
    },
    {
      resourceType: 'ServiceRequest',
      id: sr,
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/pat-${sr}` },
      requester: { reference: 'Practitioner/prac-phys' },
      supportingInfo: [{ reference: `QuestionnaireResponse/qr-${sr}` }],
    },
    {
      resourceType: 'Task',
      id: `coord-${sr}`,
      identifier: [{ system: CASE, value: `${sr}/coordination` }],
      status: 'in-progress',
      intent: 'order',
      code: { coding: [{ system: TASK_CODE, code: 'coordination' }] },
      businessStatus: { coding: [{ system: CASE_STATE, code: 'specialist-review' }] },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      focus: { reference: `ServiceRequest/${sr}` },
      for: { reference: `Patient/pat-${sr}` },
    },
    {
      resourceType: 'Task',
      id: `offer-${sr}`,
      identifier: [{ system: CASE, value: `${sr}/specialist-opinion/prac-s` }],
      status: 'accepted',
      intent: 'order',
      code: { coding: [{ system: TASK_CODE, code: 'specialist-opinion' }] },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      partOf: [{ reference: `Task/coord-${sr}` }],
      owner: { reference: 'Practitioner/prac-s' },
    },
  ];
}

describe('case moves written by people', () => {
  let testHub: TestHub;
  const tokens = {} as Record<Person | 'system', string>;
  const as = (who: Person | 'system', path: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${testHub.fhir}/${path}`, { ...init, headers: { authorization: `Bearer ${tokens[who]}` } });
  const advance = (sr: string) => advanceCase(workflowContextOf(testHub), { serviceRequestId: sr });
  const coordination = async (sr: string) => (await as('coordinator', `Task/coord-${sr}`)).body;
  const stateOf = (task: any): string => task.businessStatus.coding[0].code;
  /** `who` writes the coordination Task's businessStatus (and, with `status`, a matching Task.status). */
  const moveCase = async (who: Person, sr: string, state: string, status?: string) => {
    const task = await coordination(sr);
    const written = await as(who, `Task/coord-${sr}`, {
      method: 'PUT',
      body: {
        ...task,
        meta: undefined,
        ...(status ? { status } : {}),
        businessStatus: { coding: [{ system: CASE_STATE, code: state }] },
      },
    });
    expect([who, written.status]).toEqual([who, 200]);
  };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    await new ClientRegistry(testHub.hub.db).addPublic({
      id: APP,
      redirectUris: [REDIRECT],
      userScopes: parseUserScopes('openid fhirUser user/*.cruds'),
    });
    const users = new UserStore(testHub.hub.db);
    for (const [who, person] of Object.entries(PEOPLE) as [Person, (typeof PEOPLE)[Person]][]) {
      const email = `${who.toLowerCase()}@example.org`;
      const { totpSecret } = await users.add({
        email,
        role: person.role,
        fhirUser: person.fhirUser,
        password: PASSWORD,
      });
      const { token } = await logIn(
        new Browser(),
        testHub.baseUrl,
        { clientId: APP, redirectUri: REDIRECT, scope: 'openid fhirUser user/*.cruds' },
        { email, password: PASSWORD, totp: totpSecret ? totpCode(totpSecret, Date.now()) : undefined },
      );
      tokens[who] = token.access_token as string;
    }
    tokens.system = await clientToken(testHub, 'moves-loader', 'system/*.cruds');
    const fixtures = [
      ...['prac-s', 'prac-s2', 'prac-c', 'prac-phys'].map((id) => ({ resourceType: 'Practitioner', id })),
      ...caseFixtures('sr-1'),
      ...caseFixtures('sr-2'),
    ];
    const loaded = await as('system', '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: fixtures.map((resource) => ({
          resource,
          request: { method: 'PUT', url: `${String(resource.resourceType)}/${String(resource.id)}` },
        })),
      },
    });
    expect(loaded.status).toBe(200);
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('writing a status and businessStatus that agree is no way around the state machine', async () => {
    // The physician marks their own case released (completed/report-released): undone.
    await moveCase('physician', 'sr-2', 'report-released', 'completed');
    const refused = await advance('sr-2');
    expect(refused.refusal).toMatch(/cannot go from "specialist-review" to "report-released"/);
    const task = await coordination('sr-2');
    expect([stateOf(task), task.status]).toEqual(['specialist-review', 'in-progress']);
    // The specialist skips review the same way (both states are in-progress): undone.
    await moveCase('specialist', 'sr-2', 'report-review', 'in-progress');
    expect((await advance('sr-2')).refusal).toBe(
      'There is no draft report by the assigned specialist to submit for review.',
    );
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
  });
});
