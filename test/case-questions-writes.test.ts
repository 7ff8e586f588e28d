/**
 * The physician's questions are theirs (docs/access.md, "What every write is checked for"): the
 * QuestionnaireResponse a case's ServiceRequest names in supportingInfo belongs to the case, so its
 * patient reads it, and the patient's policy lets them write the QuestionnaireResponses of their
 * case (questionnaires of their own). As an attacker would try it against a hub with
 * AUTH_REQUIRED=true: the patient's PUT, PATCH, conditional update, DELETE, transaction and batch
 * entry, and the specialist's PUT, are refused with 403 and change nothing (what the specialist
 * answers, the letter's sections and the question fee stay the physician's). The case's physician
 * and a coordinator still change them, and the patient still writes a questionnaire of their own.
 */
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { opinionCaseFixtures } from './support/opinion-case.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

type Json = any;
type Who = 'patient' | 'specialist' | 'physician' | 'otherPhysician' | 'coordinator';

const SR = 'sr-qw';
const QUESTIONS = `QuestionnaireResponse/qr-${SR}`;
const JSON_PATCH = { 'content-type': 'application/json-patch+json' };

describe('the physician’s questions are written by the physician and the staff only', () => {
  let th: TestHub;
  const tokens = {} as Record<Who | 'system', string>;
  const as = (who: Who | 'system', method: string, path: string, body?: unknown, headers = {}) =>
    fhirFetch(`${th.fhir}/${path}`, { method, body, headers: { authorization: `Bearer ${tokens[who]}`, ...headers } });
  const current = async (): Promise<Json> => {
    const read = await as('coordinator', 'GET', QUESTIONS);
    expect(read.status).toBe(200);
    return read.body;
  };
  /** The questions with the first one rewritten. */
  const rewritten = (questions: Json, text: string): Json => ({
    ...questions,
    meta: undefined,
    item: [{ linkId: 'question', answer: [{ valueString: text }, ...questions.item[0].answer.slice(1)] }],
  });

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    tokens.system = await clientToken(th, 'questions-writes-ehr', 'system/*.cruds');
    const fixtures = [
      ...['prac-phys', 'prac-phys2', 'prac-s', 'prac-c'].map((id) => ({ resourceType: 'Practitioner', id })),
      ...opinionCaseFixtures(
        SR,
        generateReferenceNumber(() => 3),
      ),
    ];
    const loaded = await as('system', 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: fixtures.map((resource) => ({
        resource,
        request: { method: 'PUT', url: `${String(resource.resourceType)}/${String(resource.id)}` },
      })),
    });
    expect(loaded.status).toBe(200);
    Object.assign(
      tokens,
      await signInPeople(
        th,
        {
          patient: { role: 'patient', fhirUser: `Patient/pat-${SR}` },
          specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
          physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
          otherPhysician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys2' },
          coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
        },
        {
          clientId: 'questions-writes-app',
          redirectUri: 'http://127.0.0.1:5173/callback',
          scope: 'openid fhirUser user/*.cruds',
        },
      ),
    );
  }, 60_000);
  afterAll(async () => {
    await th?.stop();
  });

  test('the patient cannot change or delete them by any path, nor the specialist; nothing changes', async () => {
    const before = await current();
    // The patient reads them: the refusals below are the questions', not the case's.
    expect((await as('patient', 'GET', QUESTIONS)).status).toBe(200);
    const forged = rewritten(before, 'Please say the nodule is benign.');

    const put = await as('patient', 'PUT', QUESTIONS, forged);
    expect(put.status).toBe(403);
    expect(put.body.issue[0].details.text).toMatch(/questions ServiceRequest\/sr-qw asks/);

    const patch = await as(
      'patient',
      'PATCH',
      QUESTIONS,
      [{ op: 'replace', path: '/item/0/answer/0/valueString', value: 'Please say the nodule is benign.' }],
      JSON_PATCH,
    );
    expect(patch.status).toBe(403);

    const conditional = await as('patient', 'PUT', `QuestionnaireResponse?_id=qr-${SR}`, forged);
    expect(conditional.status).toBe(403);

    expect((await as('patient', 'DELETE', QUESTIONS)).status).toBe(403);

    const transaction = await as('patient', 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: forged, request: { method: 'PUT', url: QUESTIONS } }],
    });
    expect(transaction.status).toBe(403);

    const batch = await as('patient', 'POST', '', {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: forged, request: { method: 'PUT', url: QUESTIONS } },
        {
          request: { method: 'PATCH', url: QUESTIONS },
          resource: {
            resourceType: 'Binary',
            contentType: 'application/json-patch+json',
            data: Buffer.from(JSON.stringify([{ op: 'remove', path: '/item' }])).toString('base64'),
          },
        },
      ],
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((entry: Json) => entry.response.status.split(' ')[0])).toEqual(['403', '403']);
    for (const entry of batch.body.entry) {
      expect(entry.response.outcome.issue[0].details.text).toMatch(/questions ServiceRequest\/sr-qw asks/);
    }

    const specialist = await as('specialist', 'PUT', QUESTIONS, rewritten(before, 'Is it benign?'));
    expect(specialist.status).toBe(403);
    // Another case's physician does not even see them.
    expect((await as('otherPhysician', 'PUT', QUESTIONS, forged)).status).toBe(404);

    expect(await current()).toEqual(before);
  });

  test('the case’s physician and a coordinator change them; the patient still writes a questionnaire of their own', async () => {
    const before = await current();
    const byPhysician = await as(
      'physician',
      'PUT',
      QUESTIONS,
      rewritten(before, 'Is the nodule malignant, and how fast does it grow?'),
    );
    expect(byPhysician.status).toBe(200);
    expect(byPhysician.body.item[0].answer[0].valueString).toBe('Is the nodule malignant, and how fast does it grow?');

    const byCoordinator = await as(
      'coordinator',
      'PATCH',
      QUESTIONS,
      [{ op: 'replace', path: '/item/0/answer/1/valueString', value: 'Which treatment do you advise, and why?' }],
      JSON_PATCH,
    );
    expect(byCoordinator.status).toBe(200);
    expect((await current()).item[0].answer.map((answer: Json) => answer.valueString)).toEqual([
      'Is the nodule malignant, and how fast does it grow?',
      'Which treatment do you advise, and why?',
    ]);

    // A questionnaire the patient answers in their case is not the physician's questions.
    const own = await as('patient', 'POST', 'QuestionnaireResponse', {
      resourceType: 'QuestionnaireResponse',
      status: 'in-progress',
      basedOn: [{ reference: `ServiceRequest/${SR}` }],
      subject: { reference: `Patient/pat-${SR}` },
      item: [{ linkId: 'symptoms', answer: [{ valueString: 'a cough' }] }],
    });
    expect(own.status).toBe(201);
    const updated = await as('patient', 'PUT', `QuestionnaireResponse/${own.body.id as string}`, {
      ...own.body,
      status: 'completed',
    });
    expect(updated.status).toBe(200);
  });
});
