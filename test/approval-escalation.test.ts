/**
 * The coordinators' approval is escalated only while the report waits for it (docs/case-workflow.md,
 * "The opinion", step 3): a case cancelled during review, or sent back to the specialist, leaves its
 * `approve` Task open, and its escalation then raises nothing. The reminder job runs as the worker
 * runs it, at the instant its step falls due (the hub's clock moved there, not the calendar).
 */
import type { UserRole } from '../src/auth/users.ts';
import { APPROVAL_REMINDER_POLICY, reminderSteps, runReminder } from '../src/workflow/jobs/case-reminders.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { workflowContextOf } from './support/case-fixtures.ts';
import { signInWithSystem } from './support/login-flow.ts';
import { CASE_STATE, caseInReviewFixtures, draftLetter, draftReport, letterSection } from './support/opinion-case.ts';
import { fhirAs, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

import { jest } from '@jest/globals';

jest.setTimeout(120_000);

const APP = 'escalation-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';

type Person = 'specialist' | 'coordinator';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
};

/** A case in specialist review, with one question and the specialist's offer accepted. */
const caseFixtures = (sr: string): Record<string, unknown>[] =>
  caseInReviewFixtures(sr, {
    patient: { name: [{ family: 'Patient' }] },
    questions: ['Is the nodule malignant?'],
    due: '2026-12-18T22:00:00.000Z',
  });
const section = letterSection;

describe('the approval’s escalation', () => {
  let testHub: TestHub;
  const tokens = {} as Record<Person | 'system', string>;
  const as = fhirAs(() => testHub, tokens);
  const advance = (sr: string) => advanceCase(workflowContextOf(testHub), { serviceRequestId: sr });
  const coordination = async (sr: string) => (await as('coordinator', `Task/coord-${sr}`)).body;
  const moveCase = async (who: Person, sr: string, state: string) => {
    const task = await coordination(sr);
    const written = await as(who, `Task/coord-${sr}`, {
      method: 'PUT',
      body: { ...task, meta: undefined, businessStatus: { coding: [{ system: CASE_STATE, code: state }] } },
    });
    expect([who, written.status]).toEqual([who, 200]);
  };

  /** The specialist writes a complete opinion and submits it: the case's approval Task, as opened. */
  async function submitted(sr: string): Promise<{ taskId: string; dueAt: string }> {
    const letter = await as('specialist', 'Composition', {
      method: 'POST',
      body: draftLetter(sr, [
        { ...section('reviewed', 'The CT and the biopsy report.'), entry: [{ reference: `ServiceRequest/${sr}` }] },
        section('answer', 'Most likely benign.', 1),
        section('discussion', 'The features agree with a hamartoma.'),
        section('recommendation', 'A CT in twelve months.'),
      ]),
    });
    expect(letter.status).toBe(201);
    const report = await as('specialist', 'DiagnosticReport', {
      method: 'POST',
      body: draftReport(sr, letter.body.id, 'Benign nodule.'),
    });
    expect(report.status).toBe(201);
    await moveCase('specialist', sr, 'report-review');
    const result = await advance(sr);
    expect([result.refusal, result.state]).toEqual([undefined, 'report-review']);
    expect(result.openApproval).toBeDefined();
    return result.openApproval as { taskId: string; dueAt: string };
  }

  /** The escalation step run at its instant (and a minute after), as the worker would run it. */
  const escalate = (approval: { taskId: string; dueAt: string }) => {
    const [step] = reminderSteps(new Date(approval.dueAt), APPROVAL_REMINDER_POLICY);
    expect(step?.step).toBe('escalation');
    const late = { ...workflowContextOf(testHub), now: () => new Date((step?.at.getTime() ?? 0) + 60_000) };
    return runReminder(late, { taskId: approval.taskId, step: 'escalation' }, { messageIdDomain: 'test' });
  };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    Object.assign(
      tokens,
      await signInWithSystem(testHub, PEOPLE, { clientId: APP, redirectUri: REDIRECT }, 'escalation-loader'),
    );
    const fixtures = [
      ...['prac-s', 'prac-c', 'prac-phys'].map((id) => ({ resourceType: 'Practitioner', id })),
      ...caseFixtures('sr-cancelled'),
      ...caseFixtures('sr-returned'),
      ...caseFixtures('sr-waiting'),
      ...caseFixtures('sr-writing'),
      ...caseFixtures('sr-under-review'),
      ...caseFixtures('sr-ended'),
    ];
    const loaded = await putTransaction(testHub.fhir, tokens.system, fixtures);
    expect(loaded.status).toBe(200);
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('a report still waiting for its approval is escalated the business morning after it was due', async () => {
    const approval = await submitted('sr-waiting');
    expect(await escalate(approval)).toBe('escalated');
    expect((await coordination('sr-waiting')).priority).toBe('urgent');
  });

  test.each([
    ['cancelled', 'sr-cancelled'],
    ['specialist-review', 'sr-returned'],
  ])('a case moved to %s during review leaves its approve Task open, and nobody is escalated', async (state, sr) => {
    const approval = await submitted(sr);
    await moveCase('coordinator', sr, state);
    expect((await advance(sr)).state).toBe(state);
    // The approve Task is still `requested`: only the hub's record says the report no longer waits.
    expect((await as('coordinator', `Task/${approval.taskId}`)).body.status).toBe('requested');
    const before = await coordination(sr);

    expect(await escalate(approval)).toBe('not-awaiting-approval');
    const after = await coordination(sr);
    expect(after.meta.versionId).toBe(before.meta.versionId);
    expect(after.priority ?? 'routine').toBe('routine');
    expect((after.note ?? []).filter((note: any) => String(note.text).startsWith('Overdue:'))).toEqual([]);
  });

  /** Each of the specialist's reminder steps run at its instant, as the worker would run it. */
  const remindSpecialist = async (sr: string): Promise<string[]> => {
    const outcomes: string[] = [];
    for (const { step, at } of reminderSteps(new Date('2026-12-18T22:00:00.000Z'))) {
      const then = { ...workflowContextOf(testHub), now: () => new Date(at.getTime() + 60_000) };
      outcomes.push(await runReminder(then, { taskId: `offer-${sr}`, step }, { messageIdDomain: 'test' }));
    }
    return outcomes;
  };

  test('the specialist is reminded and escalated while writing, not once the report is submitted or the case ended', async () => {
    await advance('sr-writing');
    expect(new Set(await remindSpecialist('sr-writing'))).toEqual(new Set(['reminded', 'escalated']));

    await submitted('sr-under-review');
    await moveCase('coordinator', 'sr-ended', 'cancelled');
    expect((await advance('sr-ended')).state).toBe('cancelled');
    for (const sr of ['sr-under-review', 'sr-ended']) {
      const before = await coordination(sr);
      const offer = (await as('coordinator', `Task/offer-${sr}`)).body;
      expect(new Set(await remindSpecialist(sr))).toEqual(new Set(['not-awaiting-opinion']));
      expect((await coordination(sr)).meta.versionId).toBe(before.meta.versionId);
      expect((await as('coordinator', `Task/offer-${sr}`)).body.meta.versionId).toBe(offer.meta.versionId);
    }
  });
});
