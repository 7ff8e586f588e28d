/**
 * The opinion from the specialist's draft to the coordinators' review (issue 14, steps 1 and 3):
 * the specialist writes the report and its letter over the FHIR API with their own token, submits by
 * moving the case to `report-review`, and the progression job (called as the worker calls it) checks
 * that every question of the physician has an answer before it opens the coordinators' approval Task;
 * a coordinator returns the report with a reason. And the state machine cannot be walked around by
 * writing a Task whose status and businessStatus agree.
 */
import type { UserRole } from '../src/auth/users.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatReferenceNumber, generateReferenceNumber } from '../src/cases/reference-number.ts';
import { dueDate } from '../src/cases/business-calendar.ts';
import { APPROVAL_REMINDER_POLICY, reminderSteps, runReminder } from '../src/workflow/jobs/case-reminders.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { workflowContextOf } from './support/case-fixtures.ts';
import {
  CASE_STATE,
  LOINC,
  OPINION_DUE,
  OPINION_STAFF,
  draftLetter,
  draftReport,
  letterSection,
  opinionCaseFixtures,
  otherSpecialistAccess,
} from './support/opinion-case.ts';
import { signInWithSystem } from './support/login-flow.ts';
import { fhirAs, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const APP = 'opinion-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const REFERENCE_NUMBER = generateReferenceNumber(() => 4);
/** Long enough to fill the letter to three pages. */
const LONG_DISCUSSION = Array.from(
  { length: 9 },
  (_, i) =>
    `Paragraph ${i + 1} of the discussion. ` +
    'The features on the imaging and the histology agree with a benign hamartoma, and nothing in the course so far suggests otherwise. '.repeat(
      6,
    ),
).join('\n\n');

type Person = 'specialist' | 'otherSpecialist' | 'coordinator' | 'physician' | 'patient';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  otherSpecialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s2' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  patient: { role: 'patient', fhirUser: 'Patient/pat-sr-1' },
};

const caseFixtures = (sr: string): Record<string, unknown>[] => opinionCaseFixtures(sr, REFERENCE_NUMBER);
const section = letterSection;

describe('the opinion: draft, submission, return', () => {
  let testHub: TestHub;
  const tokens = {} as Record<Person | 'system', string>;
  const as = fhirAs(() => testHub, tokens);
  const advance = (sr: string) => advanceCase(workflowContextOf(testHub), { serviceRequestId: sr });
  const coordination = async (sr: string) => (await as('coordinator', `Task/coord-${sr}`)).body;
  const stateOf = (task: any): string => task.businessStatus.coding[0].code;
  /** Readings of a released report recorded so far (the events they queued). */
  const readEvents = async (): Promise<number> =>
    Number(
      (await testHub.hub.db.query<{ n: string }>("SELECT count(*) AS n FROM outbox WHERE name = 'report-read'")).rows[0]
        ?.n,
    );
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
    Object.assign(
      tokens,
      await signInWithSystem(testHub, PEOPLE, { clientId: APP, redirectUri: REDIRECT }, 'opinion-loader'),
    );
    const fixtures = [...OPINION_STAFF, ...caseFixtures('sr-1'), ...caseFixtures('sr-2')];
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

  test('a letter that leaves a question unanswered cannot be submitted; once complete, the coordinators get an approval Task', async () => {
    const letter = await as('specialist', 'Composition', {
      method: 'POST',
      body: draftLetter('sr-1', [
        {
          ...section('reviewed', 'The CT of 12 November and the biopsy report.'),
          entry: [{ reference: 'ServiceRequest/sr-1' }],
        },
        section('answer', 'The nodule is most likely benign.', 1),
        section('discussion', LONG_DISCUSSION.split('\n\n').join('</p><p>')),
        section('recommendation', 'A CT in twelve months.'),
      ]),
    });
    expect(letter.status).toBe(201);
    const report = await as('specialist', 'DiagnosticReport', {
      method: 'POST',
      body: draftReport('sr-1', letter.body.id, 'Benign nodule; follow-up CT in twelve months.'),
    });
    expect(report.status).toBe(201);

    // A consultation note from elsewhere, sent by the EHR as material and read by the physician now,
    // is not the opinion: it releases nothing later (checked in the approval test).
    const priorNote = await as('system', 'DocumentReference', {
      method: 'POST',
      body: {
        resourceType: 'DocumentReference',
        status: 'current',
        type: { coding: [{ system: LOINC, code: '11488-4' }] },
        subject: { reference: 'Patient/pat-sr-1' },
        context: { related: [{ reference: 'ServiceRequest/sr-1' }] },
        content: [
          { attachment: { contentType: 'text/plain', data: Buffer.from('An earlier opinion.').toString('base64') } },
        ],
      },
    });
    expect(priorNote.status).toBe(201);
    expect((await as('physician', `DocumentReference/${priorNote.body.id}`)).status).toBe(200);

    // Submitted with question 2 unanswered: undone, and the coordination Task says why.
    await moveCase('specialist', 'sr-1', 'report-review');
    expect((await advance('sr-1')).refusal).toBe('The letter is not complete: Question 2 of 2 has no answer.');
    let task = await coordination('sr-1');
    expect(stateOf(task)).toBe('specialist-review');
    expect(task.statusReason.text).toMatch(/Question 2 of 2 has no answer/);
    expect(
      (await as('coordinator', 'Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/sr-1')).body.total ?? 0,
    ).toBe(0);

    // The answer added (a draft is saved as often as the specialist likes), then submitted again.
    const saved = (await as('specialist', `Composition/${letter.body.id}`)).body;
    const answered = await as('specialist', `Composition/${letter.body.id}`, {
      method: 'PUT',
      body: { ...saved, meta: undefined, section: [...saved.section, section('answer', 'Follow-up imaging only.', 2)] },
    });
    expect(answered.status).toBe(200);
    await moveCase('specialist', 'sr-1', 'report-review');
    const submittedAt = testHub.clock.now();
    const submitted = await advance('sr-1');
    expect(submitted.refusal).toBeUndefined();
    task = await coordination('sr-1');
    expect([stateOf(task), task.status]).toEqual(['report-review', 'in-progress']);
    const approvals = (await as('coordinator', 'Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/sr-1'))
      .body;
    expect(approvals.entry).toHaveLength(1);
    const approval = approvals.entry[0].resource;
    expect(approval).toMatchObject({
      status: 'requested',
      focus: { reference: `DiagnosticReport/${report.body.id}` },
      partOf: [{ reference: 'Task/coord-sr-1' }],
      requester: { reference: 'Practitioner/prac-s' },
    });
    // The report-review SLA: due by 17:00 New York the next business day; late, it escalates to the
    // coordinators the business morning after (the reminder job, run as the worker runs it, at that time).
    expect(approval.restriction.period.end).toBe(dueDate(submittedAt, 1).toISOString());
    expect(submitted.openApproval).toEqual({ taskId: approval.id, dueAt: approval.restriction.period.end });
    const [escalation] = reminderSteps(new Date(approval.restriction.period.end), APPROVAL_REMINDER_POLICY);
    expect(escalation?.step).toBe('escalation');
    const late = { ...workflowContextOf(testHub), now: () => new Date((escalation?.at.getTime() ?? 0) + 60_000) };
    expect(await runReminder(late, { taskId: approval.id, step: 'escalation' }, { messageIdDomain: 'test' })).toBe(
      'escalated',
    );
    const escalated = await coordination('sr-1');
    expect(escalated.priority).toBe('urgent');
    expect(escalated.note.at(-1).text).toMatch(/^Overdue: the approval of the consultation report, Task\//);

    // Still a draft: the physician sees neither the report nor the approval's focus.
    expect((await as('physician', `DiagnosticReport/${report.body.id}`)).status).toBe(404);

    // Returned without a reason: nothing moves, and the coordination Task says what is missing.
    const noReason = await as('coordinator', `Task/${approval.id}`, {
      method: 'PUT',
      body: { ...approval, meta: undefined, status: 'rejected' },
    });
    expect(noReason.status).toBe(200);
    await advance('sr-1');
    task = await coordination('sr-1');
    expect(stateOf(task)).toBe('report-review');
    expect(task.statusReason.text).toMatch(/Say why the report is returned/);

    // Returned with a reason: back to the specialist, who reads why.
    const current = (await as('coordinator', `Task/${approval.id}`)).body;
    const returned = await as('coordinator', `Task/${approval.id}`, {
      method: 'PUT',
      body: {
        ...current,
        meta: undefined,
        status: 'rejected',
        statusReason: { text: 'Cite the biopsy in the summary.' },
      },
    });
    expect(returned.status).toBe(200);
    await advance('sr-1');
    task = await coordination('sr-1');
    expect(stateOf(task)).toBe('specialist-review');
    expect(task.statusReason.text).toBe('The report was returned to the specialist: Cite the biopsy in the summary.');
    expect(await advance('sr-1')).toMatchObject({ outcome: 'unchanged', state: 'specialist-review' });

    // Submitted again: the same approval Task is open again.
    await moveCase('specialist', 'sr-1', 'report-review');
    await advance('sr-1');
    expect(stateOf(await coordination('sr-1'))).toBe('report-review');
    const reopened = (await as('coordinator', `Task/${approval.id}`)).body;
    expect(reopened.status).toBe('requested');

    // The specialist cannot bounce their own report back by returning it themselves.
    const selfReturned = await as('specialist', `Task/${approval.id}`, {
      method: 'PUT',
      body: { ...reopened, meta: undefined, status: 'rejected', statusReason: { text: 'Let me rewrite it.' } },
    });
    expect(selfReturned.status).toBe(200);
    await advance('sr-1');
    task = await coordination('sr-1');
    expect(stateOf(task)).toBe('report-review');
    expect(task.statusReason.text).toBe('Only a coordinator returns a report to its specialist.');
  });

  test('the approval: by a coordinator, not the author; the letter as a PDF, the report final, the physician’s to read', async () => {
    const approval = (await as('coordinator', 'Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/sr-1')).body
      .entry[0].resource;
    // Put back to requested after the specialist's attempt above, then the specialist approves their own: refused.
    const byAuthor = await as('specialist', `Task/${approval.id}`, {
      method: 'PUT',
      body: { ...approval, meta: undefined, status: 'completed', statusReason: undefined },
    });
    expect(byAuthor.status).toBe(200);
    expect((await advance('sr-1')).refusal).toBe(
      'The specialist cannot move a case from "report-review" to "report-released"; that is done by a coordinator.',
    );
    expect(stateOf(await coordination('sr-1'))).toBe('report-review');

    // The letter edited after submission so that question 2 has no answer: the approval is refused.
    const letterId = (await as('specialist', `DiagnosticReport/${approval.focus.reference.split('/')[1]}`)).body
      .extension[0].valueReference.reference;
    const letter = (await as('specialist', letterId)).body;
    const withoutAnswer = letter.section.filter(
      (section: any) => !section.extension?.some((extension: any) => extension.valueUnsignedInt === 2),
    );
    expect(
      (
        await as('specialist', letterId, {
          method: 'PUT',
          body: { ...letter, meta: undefined, section: withoutAnswer },
        })
      ).status,
    ).toBe(200);
    const early = (await as('coordinator', `Task/${approval.id}`)).body;
    await as('coordinator', `Task/${approval.id}`, {
      method: 'PUT',
      body: { ...early, meta: undefined, status: 'completed', statusReason: undefined },
    });
    expect((await advance('sr-1')).refusal).toBe('The letter is not complete: Question 2 of 2 has no answer.');
    expect(stateOf(await coordination('sr-1'))).toBe('report-review');
    const restored = (await as('specialist', letterId)).body;
    expect(
      (
        await as('specialist', letterId, {
          method: 'PUT',
          body: { ...restored, meta: undefined, section: letter.section },
        })
      ).status,
    ).toBe(200);

    const current = (await as('coordinator', `Task/${approval.id}`)).body;
    const approved = await as('coordinator', `Task/${approval.id}`, {
      method: 'PUT',
      body: { ...current, meta: undefined, status: 'completed', statusReason: undefined },
    });
    expect(approved.status).toBe(200);
    expect((await advance('sr-1')).refusal).toBeUndefined();
    const task = await coordination('sr-1');
    expect([stateOf(task), task.status]).toEqual(['report-released', 'completed']);
    const [reportOutput, letterOutput] = task.output.map((output: any) => output.valueReference.reference);
    expect(reportOutput).toMatch(/^DiagnosticReport\//);
    expect(letterOutput).toMatch(/^DocumentReference\//);

    // The EHR's prefetch, the coordinator's and the specialist's reading release nothing to the patient.
    const pdfOf = (await as('coordinator', reportOutput)).body.presentedForm[0].url;
    for (const who of ['system', 'coordinator', 'specialist'] as const) {
      for (const path of [reportOutput, letterOutput, pdfOf]) {
        expect([who, path, (await as(who, path)).status]).toEqual([who, path, 200]);
      }
    }
    expect(await readEvents()).toBe(0);
    expect(await advance('sr-1')).toMatchObject({ outcome: 'unchanged', state: 'report-released' });

    // The physician reads the final report, its letter's DocumentReference and the PDF; the patient not yet.
    const report = await as('physician', reportOutput);
    expect(report.status).toBe(200);
    expect(report.body.status).toBe('final');
    const pdfUrl = report.body.presentedForm[0].url;
    const document = await as('physician', letterOutput);
    expect(document.body).toMatchObject({
      status: 'current',
      docStatus: 'final',
      type: { coding: [{ system: LOINC, code: '11488-4' }] },
      category: [{ coding: [{ code: 'clinical-note' }] }],
      content: [{ attachment: { url: pdfUrl, contentType: 'application/pdf' } }],
    });
    for (const path of [reportOutput, letterOutput, pdfUrl]) {
      expect([path, (await as('patient', path)).status]).toEqual([path, 404]);
    }
    const provenance = (await as('coordinator', `Provenance?target=${letterOutput}`)).body.entry[0].resource;
    expect(provenance.agent.map((agent: any) => [agent.type.coding[0].code, agent.who.reference])).toEqual([
      ['author', 'Practitioner/prac-s'],
      ['verifier', 'Practitioner/prac-c'],
    ]);

    const pdf = await fetch(`${testHub.fhir}/${pdfUrl}`, {
      headers: { authorization: `Bearer ${tokens.physician}`, accept: 'application/pdf' },
    });
    expect(pdf.status).toBe(200);
    const bytes = Buffer.from(await pdf.arrayBuffer());
    expect(bytes.subarray(0, 5).toString()).toBe('%PDF-');
    expect(bytes.length).toBeLessThan(200 * 1024);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opinion-pdf-'));
    const file = path.join(dir, 'letter.pdf');
    fs.writeFileSync(file, bytes);
    const text = execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
    for (const expected of [
      'Second Opinion Service',
      'To: Dr. Paul Physick',
      `Patient: Olivia Quintero, reference number ${formatReferenceNumber(REFERENCE_NUMBER)}`,
      'What was reviewed',
      'The CT of 12 November and the biopsy report.',
      'Question 1 Is the nodule malignant? The nodule is most likely benign.',
      'Question 2 Which treatment do you advise? Follow-up imaging only.',
      'Discussion',
      'Paragraph 9 of the discussion.',
      'Recommendation A CT in twelve months.',
      'Dr. Amelia Abernathy Medical Oncology',
      'Page 1 of 3',
      'Page 3 of 3',
    ]) {
      expect([expected, text.includes(expected)]).toEqual([expected, true]);
    }
    // Every font is embedded, and the pages render.
    const fonts = execFileSync('pdffonts', [file], { encoding: 'utf8' }).split('\n').slice(2).filter(Boolean);
    expect(fonts.length).toBeGreaterThan(0);
    expect(fonts.every((line) => /\s(yes)\s+(yes|no)\s+(yes|no)\s+\d+\s+\d+$/.test(line))).toBe(true);
    execFileSync('pdftoppm', ['-png', '-r', '40', file, path.join(dir, 'page')]);
    expect(fs.readdirSync(dir).filter((name) => name.endsWith('.png'))).toHaveLength(3);
    fs.rmSync(dir, { recursive: true, force: true });

    // The specialist's Task is done, with the report as its output (its reminders stop).
    const offer = (await as('coordinator', 'Task/offer-sr-1')).body;
    expect([offer.status, offer.output[0].valueReference.reference]).toEqual(['completed', reportOutput]);
  });

  test('the physician first: their reading releases the report to the patient, who is e-mailed once', async () => {
    const task = await coordination('sr-1');
    const [reportOutput, letterOutput] = task.output.map((output: any) => output.valueReference.reference);
    const pdfUrl = (await as('coordinator', reportOutput)).body.presentedForm[0].url;
    // The physician opened the report above (and the letter, and the PDF): one reading recorded.
    expect(await readEvents()).toBe(1);
    expect(await advance('sr-1')).toMatchObject({ outcome: 'advanced', state: 'report-accessed' });
    expect(stateOf(await coordination('sr-1'))).toBe('report-accessed');
    for (const path of [reportOutput, letterOutput, pdfUrl]) {
      expect([path, (await as('patient', path)).status]).toEqual([path, 200]);
    }
    // Run again, and read again: nothing new, and one e-mail to the patient.
    expect(await advance('sr-1')).toMatchObject({ outcome: 'unchanged', state: 'report-accessed' });
    expect((await as('physician', reportOutput)).status).toBe(200);
    expect(await readEvents()).toBe(1);
    const mails = await testHub.hub.db.query<{ kind: string; recipient: string }>(
      "SELECT kind, recipient FROM notification WHERE recipient = 'Patient/pat-sr-1'",
    );
    expect(mails.rows).toEqual([{ kind: 'report-ready', recipient: 'Patient/pat-sr-1' }]);
  });

  test('after release: the physician’s clarification question reaches the specialist, the answer the physician, one e-mail each', async () => {
    const task = await coordination('sr-1');
    const reportOutput = task.output[0].valueReference.reference;
    const mailsOf = async (kind: string) =>
      (
        await testHub.hub.db.query<{ recipient: string }>('SELECT recipient FROM notification WHERE kind = $1', [kind])
      ).rows.map((row) => row.recipient);
    const message = (who: Person, body: Record<string, unknown>) =>
      as(who, 'Communication', {
        method: 'POST',
        body: {
          resourceType: 'Communication',
          status: 'completed',
          basedOn: [{ reference: 'ServiceRequest/sr-1' }],
          ...body,
        },
      });
    // The patient's message about the report is not a clarification for the specialist.
    expect(
      (await message('patient', { about: [{ reference: reportOutput }], payload: [{ contentString: 'Thanks!' }] }))
        .status,
    ).toBe(201);
    await advance('sr-1');
    expect(await mailsOf('clarification-requested')).toEqual([]);

    const question = await message('physician', {
      about: [{ reference: reportOutput }],
      payload: [{ contentString: 'Would you repeat the CT with contrast?' }],
    });
    expect(question.status).toBe(201);
    await advance('sr-1');
    await advance('sr-1');
    expect(await mailsOf('clarification-requested')).toEqual(['Practitioner/prac-s']);

    const answer = await message('specialist', {
      inResponseTo: [{ reference: `Communication/${question.body.id}` }],
      payload: [{ contentString: 'No contrast is needed.' }],
    });
    expect(answer.status).toBe(201);
    await advance('sr-1');
    expect(await mailsOf('clarification-answered')).toEqual(['Practitioner/prac-phys']);
    // The exchange stays with the case: the physician reads the answer.
    expect((await as('physician', `Communication/${answer.body.id}`)).status).toBe(200);
  });

  test('only the assigned specialist submits, and only a report of their own', async () => {
    // Another specialist, made a member by a coordinator's case-access Task, has no draft and no offer.
    const access = await as('coordinator', 'Task', { method: 'POST', body: otherSpecialistAccess('sr-2') });
    expect(access.status).toBe(201);
    await moveCase('otherSpecialist', 'sr-2', 'report-review');
    expect((await advance('sr-2')).refusal).toBe('This specialist is not the one assigned to the case.');
    // The assigned specialist with no draft at all.
    await moveCase('specialist', 'sr-2', 'report-review');
    expect((await advance('sr-2')).refusal).toBe(
      'There is no draft report by the assigned specialist to submit for review.',
    );
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
  });
  test('writing a status and businessStatus that agree is no way around the state machine', async () => {
    // The physician marks their own case released (completed/report-released): undone.
    await moveCase('physician', 'sr-2', 'report-released', 'completed');
    const refused = await advance('sr-2');
    expect(refused.refusal).toMatch(/cannot go from "specialist-review" to "report-released"/);
    const task = await coordination('sr-2');
    expect([stateOf(task), task.status]).toEqual(['specialist-review', 'in-progress']);
    // Nor does burying the hub's versions under many of one's own (the hub keeps its own record).
    for (let i = 0; i < 55; i++) {
      await moveCase('physician', 'sr-2', 'report-released', 'completed');
    }
    expect((await advance('sr-2')).refusal).toMatch(/cannot go from "specialist-review" to "report-released"/);
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
    // The specialist skips review the same way (both states are in-progress): undone.
    await moveCase('specialist', 'sr-2', 'report-review', 'in-progress');
    expect((await advance('sr-2')).refusal).toBe(
      'There is no draft report by the assigned specialist to submit for review.',
    );
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
  });

  test('questions back: the specialist asks, the case waits and the physician is e-mailed; the answer resumes it', async () => {
    const question = await as('specialist', 'Communication', {
      method: 'POST',
      body: {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: 'ServiceRequest/sr-2' }],
        partOf: [{ reference: 'Task/coord-sr-2' }],
        recipient: [{ reference: 'Practitioner/prac-phys' }],
        sender: { reference: 'Practitioner/prac-s' },
        payload: [{ contentString: 'Was a PET-CT done before the biopsy?' }],
      },
    });
    expect(question.status).toBe(201);
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('awaiting-information');
    const paused = (await as('coordinator', 'Task/offer-sr-2')).body;
    expect(paused.status).toBe('on-hold');
    expect(paused.extension.find((extension: any) => extension.url === 'urn:hub:extension:paused-at')).toBeDefined();
    const mails = await testHub.hub.db.query<{ kind: string }>(
      "SELECT kind FROM notification WHERE recipient = 'Practitioner/prac-phys' AND kind = 'information-requested'",
    );
    expect(mails.rows).toHaveLength(1);

    // A reply by someone who is not the physician (here another reviewer of the case) resumes nothing.
    const reply = (who: Person, text: string) =>
      as(who, 'Communication', {
        method: 'POST',
        body: {
          resourceType: 'Communication',
          status: 'completed',
          basedOn: [{ reference: 'ServiceRequest/sr-2' }],
          inResponseTo: [{ reference: `Communication/${question.body.id}` }],
          payload: [{ contentString: text }],
        },
      });
    expect((await reply('otherSpecialist', 'Not me.')).status).toBe(201);
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('awaiting-information');

    expect((await reply('physician', 'Yes, on 2 November; the report is attached.')).status).toBe(201);
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
    const resumed = (await as('coordinator', 'Task/offer-sr-2')).body;
    expect(resumed.status).toBe('in-progress');
    expect(resumed.extension ?? []).toEqual([]);
    // Asked and answered on the same day: the due date stands (dueAfterPause's unit tests move it).
    expect(resumed.restriction.period.end).toBe(OPINION_DUE);
    // Run again: nothing more.
    expect(await advance('sr-2')).toMatchObject({ outcome: 'unchanged', state: 'specialist-review' });
  });

  /** `who` writes a Communication about case 2; the specialist's are questions back (part of its coordination). */
  const message = async (who: Person, body: Record<string, unknown>): Promise<string> => {
    const written = await as(who, 'Communication', {
      method: 'POST',
      body: {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: 'ServiceRequest/sr-2' }],
        ...(who === 'specialist' ? { partOf: [{ reference: 'Task/coord-sr-2' }] } : {}),
        ...body,
      },
    });
    expect([who, written.status]).toEqual([who, 201]);
    return written.body.id;
  };
  const questionMails = async (): Promise<number> =>
    (
      await testHub.hub.db.query(
        "SELECT 1 FROM notification WHERE recipient = 'Practitioner/prac-phys' AND kind = 'information-requested'",
      )
    ).rows.length;

  test('every question back e-mails the physician once: a second round, and a question asked while the case waits', async () => {
    const before = await questionMails();
    const second = await message('specialist', { payload: [{ contentString: 'Which stain was used?' }] });
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('awaiting-information');
    expect(await questionMails()).toBe(before + 1);
    // Asked while the case already waits for the first answer.
    const third = await message('specialist', { payload: [{ contentString: 'Is the block still available?' }] });
    await advance('sr-2');
    await advance('sr-2');
    expect(await questionMails()).toBe(before + 2);
    for (const question of [second, third]) {
      await message('physician', {
        inResponseTo: [{ reference: `Communication/${question}` }],
        payload: [{ contentString: 'Answered.' }],
      });
    }
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
    expect(await questionMails()).toBe(before + 2);
  });

  test('questions and answers count however many messages the case has (here more than 500)', async () => {
    // The EHR files the patient's messages with the case: 520 of them, all before the question.
    const notes = Array.from({ length: 520 }, (_, i) => ({
      resource: {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: 'ServiceRequest/sr-2' }],
        payload: [{ contentString: `Note ${i + 1}.` }],
      },
      request: { method: 'POST', url: 'Communication' },
    }));
    const filed = await as('system', '', {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'transaction', entry: notes },
    });
    expect(filed.status).toBe(200);
    const question = await message('specialist', { payload: [{ contentString: 'Any new imaging since?' }] });
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('awaiting-information');
    await message('physician', {
      inResponseTo: [{ reference: `Communication/${question}` }],
      payload: [{ contentString: 'None.' }],
    });
    await advance('sr-2');
    expect(stateOf(await coordination('sr-2'))).toBe('specialist-review');
  });
});
