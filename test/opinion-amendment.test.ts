/**
 * Amendments after release (issue 14, item 5; docs/case-workflow.md, "Amendments"), from the users'
 * side: people with their own tokens over HTTP against a hub whose workers run the case workflow and
 * send the e-mails to a real SMTP server. The specialist who wrote the released report drafts a
 * correction (a Composition that `replaces` the letter) or an addendum (`appends`), which only they
 * and the staff see, and submits it through the case's approval Task; a coordinator who did not write
 * it approves it: the report `amended` or `appended` with a new PDF that says so, a new
 * DocumentReference that replaces the old one, the earlier versions still readable, and the
 * physician (and, once the report is theirs, the patient) e-mailed once per amendment. Everyone else
 * is refused, with the reason on the coordination Task, and nothing moves.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import type { UserRole } from '../src/auth/users.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { clockStartingAt } from '../src/runtime/clock.ts';
import { APPROVAL_REMINDER_POLICY, reminderSteps, runReminder } from '../src/workflow/jobs/case-reminders.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { workflowContextOf, workflowSettled } from './support/case-fixtures.ts';
import { signInWithSystem } from './support/login-flow.ts';
import {
  CASE_STATE,
  LETTER_LINK,
  OPINION_STAFF,
  TASK_CODE,
  draftLetter,
  draftReport,
  letterSection,
  opinionCaseFixtures,
  otherSpecialistAccess,
} from './support/opinion-case.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { WITH_WORKERS, fhirAs, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

import { jest } from '@jest/globals';

jest.setTimeout(240_000);

const APP = 'amendment-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const REFERENCE_NUMBER = generateReferenceNumber(() => 7);
/** The hub's clock: a Tuesday morning in New York, so that every approval and amendment is dated this day. */
const HUB_CLOCK_START = '2026-12-01T15:00:00Z';
const TODAY = 'December 1, 2026';
const AMENDED_CONCLUSION = 'urn:hub:extension:amended-conclusion';

type Person = 'specialist' | 'otherSpecialist' | 'coordinator' | 'coordinator2' | 'physician' | 'patient';
type Who = Person | 'system';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  otherSpecialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s2' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  coordinator2: { role: 'coordinator', fhirUser: 'Practitioner/prac-c2' },
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  patient: { role: 'patient', fhirUser: 'Patient/pat-sr-1' },
};

/** The letter as first approved: question 2 answered "follow-up imaging". */
const ORIGINAL_SECTIONS = (sr: string) => [
  {
    ...letterSection('reviewed', 'The CT of 12 November and the biopsy report.'),
    entry: [{ reference: `ServiceRequest/${sr}` }],
  },
  letterSection('answer', 'The nodule is most likely benign.', 1),
  letterSection('answer', 'Follow-up imaging only.', 2),
  letterSection('discussion', 'The features agree with a benign hamartoma.'),
  letterSection('recommendation', 'A CT in twelve months.'),
];

/** The corrected letter: question 2 answered again, and why. */
const CORRECTED_SECTIONS = [
  {
    ...letterSection('reviewed', 'The CT of 12 November and the biopsy report.'),
    entry: [{ reference: 'ServiceRequest/sr-1' }],
  },
  letterSection('answer', 'The nodule is most likely benign.', 1),
  letterSection('answer', 'Resection is advised, since the nodule has grown.', 2),
  letterSection('discussion', 'The features agree with a hamartoma that has grown since 2024.'),
  letterSection('recommendation', 'Refer to thoracic surgery.'),
];
const CORRECTION_NOTE = letterSection('amendment', 'The answer to question 2 overlooked the growth since 2024.');

describe('amendments after release', () => {
  let sink: SmtpSink;
  let testHub: TestHub;
  const tokens = {} as Record<Who, string>;
  const ids = {} as { letter: string; report: string; firstPdf: string; firstDocument: string; correction: string };
  const as = fhirAs(() => testHub, tokens);
  const settle = () => workflowSettled(testHub);
  const coordination = async (sr: string) => (await as('coordinator', `Task/coord-${sr}`)).body;
  const stateOf = (task: any): string => task.businessStatus.coding[0].code;
  const approvalOf = async (sr: string) =>
    (await as('coordinator', `Task?code=${TASK_CODE}|approve&based-on=ServiceRequest/${sr}`)).body.entry[0].resource;
  /** `who` writes the case's approval Task with `fields`; the write itself is allowed (the job decides). */
  const writeApproval = async (who: Who, sr: string, fields: Record<string, unknown>) => {
    const approval = await approvalOf(sr);
    const written = await as(who, `Task/${approval.id}`, {
      method: 'PUT',
      body: { ...approval, meta: undefined, statusReason: undefined, ...fields },
    });
    expect([who, written.status]).toEqual([who, 200]);
    await settle();
  };
  const reasonOf = async (sr: string): Promise<string | undefined> => (await coordination(sr)).statusReason?.text;
  /** `who` posts a draft letter of case 1 by the specialist, with `body`'s fields written over it. */
  const draft = (who: Who, body: Record<string, unknown>) =>
    as(who, 'Composition', { method: 'POST', body: { ...draftLetter('sr-1', []), ...body } });
  const notifications = async (kind: string) =>
    (
      await testHub.hub.db.query<{ recipient: string }>(
        'SELECT recipient FROM notification WHERE kind = $1 ORDER BY recipient',
        [kind],
      )
    ).rows.map((row) => row.recipient);
  /** The e-mails the SMTP server received for `address`, parsed. */
  const mailsTo = async (address: string) =>
    Promise.all(
      sink.accepted
        .filter((mail) => mail.recipients.includes(address))
        .map(async (mail) => {
          const parsed = await simpleParser(mail.raw);
          return { subject: parsed.subject ?? '', text: parsed.text ?? '' };
        }),
    );
  const waitForMail = (address: string, subject: string, count: number) =>
    until(
      async () => (await mailsTo(address)).filter((mail) => mail.subject === subject).length >= count,
      `${count} e-mail(s) "${subject}" to ${address}`,
    );
  /** The text of a PDF Binary as `who` downloads it (pdftotext), whitespace folded. */
  const pdfText = async (who: Who, url: string): Promise<string> => {
    const response = await fetch(`${testHub.fhir}/${url}`, {
      headers: { authorization: `Bearer ${tokens[who]}`, accept: 'application/pdf' },
    });
    expect([url, response.status]).toEqual([url, 200]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amendment-pdf-'));
    try {
      const file = path.join(dir, 'letter.pdf');
      fs.writeFileSync(file, Buffer.from(await response.arrayBuffer()));
      return execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  beforeAll(async () => {
    sink = await startSmtpSink();
    testHub = await startTestHub({
      db: 'postgres',
      env: { ...WITH_WORKERS, AUTH_REQUIRED: 'true', SMTP_URL: sink.url },
      clock: clockStartingAt(HUB_CLOCK_START),
    });
    Object.assign(
      tokens,
      await signInWithSystem(testHub, PEOPLE, { clientId: APP, redirectUri: REDIRECT }, 'amendment-ehr'),
    );
    const fixtures = [
      ...OPINION_STAFF,
      { resourceType: 'Practitioner', id: 'prac-c2', name: [{ given: ['Colin'], family: 'Coordinator' }] },
      ...opinionCaseFixtures('sr-1', REFERENCE_NUMBER),
      ...opinionCaseFixtures('sr-2', REFERENCE_NUMBER),
    ];
    const loaded = await putTransaction(testHub.fhir, tokens.system, fixtures);
    expect(loaded.status).toBe(200);
    // A second specialist of case 1, made a reviewer by a coordinator: a member, not the report's author.
    const access = await as('coordinator', 'Task', { method: 'POST', body: otherSpecialistAccess('sr-1') });
    expect(access.status).toBe(201);
    await settle();

    // The opinion of case 1, written, submitted and approved as the workflow has it.
    for (const sr of ['sr-1', 'sr-2']) {
      const letter = await draft('specialist', {
        subject: { reference: `Patient/pat-${sr}` },
        section: ORIGINAL_SECTIONS(sr),
      });
      expect(letter.status).toBe(201);
      const report = await as('specialist', 'DiagnosticReport', {
        method: 'POST',
        body: draftReport(sr, letter.body.id, 'Benign hamartoma; follow-up CT in twelve months.'),
      });
      expect(report.status).toBe(201);
      if (sr === 'sr-1') {
        ids.letter = letter.body.id;
        ids.report = report.body.id;
      }
      const task = await coordination(sr);
      const submitted = await as('specialist', `Task/coord-${sr}`, {
        method: 'PUT',
        body: { ...task, meta: undefined, businessStatus: { coding: [{ system: CASE_STATE, code: 'report-review' }] } },
      });
      expect(submitted.status).toBe(200);
      await settle();
      expect(stateOf(await coordination(sr))).toBe('report-review');
    }
    await writeApproval('coordinator', 'sr-1', { status: 'completed' });
    const released = await coordination('sr-1');
    expect(stateOf(released)).toBe('report-released');
    ids.firstDocument = released.output[1].valueReference.reference.split('/')[1];
    ids.firstPdf = (await as('coordinator', `DiagnosticReport/${ids.report}`)).body.presentedForm[0].url;
  });
  afterAll(async () => {
    await testHub?.stop();
    await sink?.close();
  });

  test('the author drafts a correction that only they and the staff see; an incomplete one is refused with the reason', async () => {
    const correction = await draft('specialist', {
      relatesTo: [{ code: 'replaces', targetReference: { reference: `Composition/${ids.letter}` } }],
      section: CORRECTED_SECTIONS,
    });
    expect(correction.status).toBe(201);
    ids.correction = correction.body.id;
    for (const who of ['physician', 'patient', 'otherSpecialist', 'system'] as const) {
      const seen = who === 'system' ? 200 : 404;
      expect([who, (await as(who, `Composition/${ids.correction}`)).status]).toEqual([who, seen]);
    }
    const search = await as('physician', `Composition?related-ref=Composition/${ids.letter}`);
    expect(search.body.entry ?? []).toEqual([]);

    // Submitted without saying what was changed: refused, and nothing moves.
    await writeApproval('specialist', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${ids.correction}` },
    });
    expect(await reasonOf('sr-1')).toBe(
      'The amendment was refused: The correction is not complete: The correction does not say what was changed ' +
        'and why (a section coded amendment).',
    );
    expect((await approvalOf('sr-1')).meta.source).toBe('urn:hub:actor:specialist:prac-s');
    expect((await as('coordinator', `DiagnosticReport/${ids.report}`)).body.status).toBe('final');

    // Completed (and restating the conclusion), then submitted again: open for the coordinators.
    const saved = (await as('specialist', `Composition/${ids.correction}`)).body;
    const completed = await as('specialist', `Composition/${ids.correction}`, {
      method: 'PUT',
      body: {
        ...saved,
        meta: undefined,
        extension: [{ url: AMENDED_CONCLUSION, valueString: 'Growing hamartoma; resection advised.' }],
        section: [CORRECTION_NOTE, ...saved.section],
      },
    });
    expect(completed.status).toBe(200);
    await writeApproval('specialist', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${ids.correction}` },
    });
    const open = await approvalOf('sr-1');
    expect(open).toMatchObject({
      status: 'requested',
      focus: { reference: `Composition/${ids.correction}` },
      requester: { reference: 'Practitioner/prac-s' },
      description: expect.stringMatching(/^Review the correction of the released consultation report/),
    });
    expect(open.meta.source).toBeUndefined();
    expect(open.restriction.period.end).toBe('2026-12-02T22:00:00.000Z');
    expect(await reasonOf('sr-1')).toBeUndefined();
    expect((await as('physician', `Composition/${ids.correction}`)).status).toBe(404);
    // Late, its review is escalated to the coordinators as a report's is (the reminder job, run as the
    // worker runs it, at the time of its step).
    const [escalation] = reminderSteps(new Date(open.restriction.period.end), APPROVAL_REMINDER_POLICY);
    const late = { ...workflowContextOf(testHub), now: () => new Date((escalation?.at.getTime() ?? 0) + 60_000) };
    expect(await runReminder(late, { taskId: open.id, step: 'escalation' }, { messageIdDomain: 'test' })).toBe(
      'escalated',
    );
    expect((await coordination('sr-1')).note.at(-1).text).toMatch(/^Overdue: the approval of the consultation report/);
    await settle();
  });

  test('only a coordinator who did not write it approves it, or returns it with a reason; nobody publishes a report directly', async () => {
    // No one but the approval makes a consultation report amended, appended or final.
    const report = (await as('specialist', `DiagnosticReport/${ids.report}`)).body;
    for (const status of ['amended', 'corrected', 'appended']) {
      const written = await as('specialist', `DiagnosticReport/${ids.report}`, {
        method: 'PUT',
        body: { ...report, meta: undefined, status },
      });
      expect([status, written.status]).toEqual([status, 403]);
    }
    // Nor back into a draft, which would hide the released report from the physician and patient.
    const letterId = String(report.extension[0].valueReference.reference);
    const letter = (await as('specialist', letterId)).body;
    for (const [path, body] of [
      [`DiagnosticReport/${ids.report}`, { ...report, meta: undefined, status: 'preliminary' }],
      [letterId, { ...letter, meta: undefined, status: 'preliminary' }],
    ] as const) {
      expect([path, (await as('specialist', path, { method: 'PUT', body })).status]).toEqual([path, 403]);
    }
    expect((await as('coordinator', `DiagnosticReport/${ids.report}`)).body.status).toBe('final');
    const own = (await as('specialist', `Composition/${ids.correction}`)).body;
    expect(
      (
        await as('specialist', `Composition/${ids.correction}`, {
          method: 'PUT',
          body: { ...own, meta: undefined, status: 'final' },
        })
      ).status,
    ).toBe(403);
    expect((await draft('specialist', { status: 'final', section: CORRECTED_SECTIONS })).status).toBe(403);
    expect(
      (
        await as('physician', `DiagnosticReport/${ids.report}`, {
          method: 'PUT',
          body: { ...report, meta: undefined, status: 'amended' },
        })
      ).status,
    ).toBe(403);
    const approval = await approvalOf('sr-1');
    expect(
      (
        await as('patient', `Task/${approval.id}`, {
          method: 'PUT',
          body: { ...approval, meta: undefined, status: 'completed' },
        })
      ).status,
    ).toBe(403);

    // The author, another specialist, the physician and the EHR complete the approval: refused each time.
    const refusals: [Who, string][] = [
      ['specialist', 'The amendment’s author cannot approve it; another coordinator must.'],
      ['otherSpecialist', 'Only a coordinator approves an amendment.'],
      ['physician', 'Only a coordinator approves an amendment.'],
      ['system', 'Only a coordinator approves an amendment.'],
    ];
    for (const [who, reason] of refusals) {
      await writeApproval(who, 'sr-1', { status: 'completed' });
      expect([who, await reasonOf('sr-1')]).toEqual([who, `The approval of the amendment was refused: ${reason}`]);
      expect((await as('coordinator', `DiagnosticReport/${ids.report}`)).body.status).toBe('final');
      expect((await as('coordinator', `Composition/${ids.correction}`)).body.status).toBe('preliminary');
    }
    // A coordinator who wrote a version of the amendment is its author too.
    const current = (await as('coordinator2', `Composition/${ids.correction}`)).body;
    expect(
      (
        await as('coordinator2', `Composition/${ids.correction}`, {
          method: 'PUT',
          body: { ...current, meta: undefined, title: 'Consultation (corrected)' },
        })
      ).status,
    ).toBe(200);
    await writeApproval('coordinator2', 'sr-1', { status: 'completed' });
    expect(await reasonOf('sr-1')).toBe(
      'The approval of the amendment was refused: The amendment’s author cannot approve it; another coordinator must.',
    );

    // Returned: without a reason nothing moves; with one, the specialist reads it.
    await writeApproval('coordinator', 'sr-1', { status: 'rejected' });
    expect(await reasonOf('sr-1')).toBe(
      'The return of the amendment was refused: Say why the amendment is returned (the approval Task’s ' +
        'statusReason); the specialist reads it.',
    );
    await writeApproval('coordinator', 'sr-1', { status: 'rejected', statusReason: { text: 'Date the growth.' } });
    const returned = (await coordination('sr-1')).statusReason;
    expect(returned).toEqual({
      coding: [{ system: 'urn:hub:case-reason', code: 'report-returned' }],
      text: 'The amendment was returned to the specialist: Date the growth.',
    });
    expect(stateOf(await coordination('sr-1'))).toBe('report-released');
    expect((await as('coordinator', `DiagnosticReport/${ids.report}`)).body.status).toBe('final');
    await writeApproval('specialist', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${ids.correction}` },
    });
    expect((await approvalOf('sr-1')).meta.source).toBeUndefined();
    expect(await notifications('report-amended')).toEqual([]);
  });

  test('approved: the report amended with a new PDF that says so, a DocumentReference replacing the old; the physician is e-mailed once, the patient not before the physician has read it', async () => {
    await writeApproval('coordinator', 'sr-1', { status: 'completed' });
    expect(await reasonOf('sr-1')).toBeUndefined();
    const task = await coordination('sr-1');
    expect(stateOf(task)).toBe('report-released');
    const [reportOutput, letterOutput] = task.output.map((output: any) => output.valueReference.reference);
    expect(reportOutput).toBe(`DiagnosticReport/${ids.report}`);
    expect(letterOutput).not.toBe(`DocumentReference/${ids.firstDocument}`);
    const report = (await as('coordinator', reportOutput)).body;
    expect(report).toMatchObject({
      status: 'amended',
      conclusion: 'Growing hamartoma; resection advised.',
      extension: [{ url: LETTER_LINK, valueReference: { reference: `Composition/${ids.correction}` } }],
    });
    const pdfUrl = report.presentedForm[0].url;
    expect(pdfUrl).not.toBe(ids.firstPdf);

    // Not the patient's yet (the physician has not read the report), nor did they get an e-mail about it.
    for (const path of [reportOutput, letterOutput, pdfUrl, `Composition/${ids.correction}`, ids.firstPdf]) {
      expect([path, (await as('patient', path)).status]).toEqual([path, 404]);
    }
    await waitForMail('paul.physick@clinic.example.org', 'A second-opinion report has been amended', 1);
    expect(await notifications('report-amended')).toEqual(['Practitioner/prac-phys']);
    expect(await notifications('report-updated')).toEqual([]);
    const [mail] = (await mailsTo('paul.physick@clinic.example.org')).filter((m) => m.subject.includes('amended'));
    expect(mail?.text).toContain(`${testHub.baseUrl}/dashboard/cases/sr-1`);
    expect(mail?.text).not.toMatch(/Quintero|Olivia|hamartoma|\d{3}-\d{3}-\d{4}/);

    // The physician reads it all: the new letter, the new document replacing the old, the PDF marked as amended.
    const letter = (await as('physician', `Composition/${ids.correction}`)).body;
    expect(letter.status).toBe('final');
    expect(letter.attester.at(-1)).toMatchObject({ mode: 'professional', party: { reference: 'Practitioner/prac-c' } });
    const document = (await as('physician', letterOutput)).body;
    expect(document).toMatchObject({
      status: 'current',
      docStatus: 'amended',
      relatesTo: [{ code: 'replaces', target: { reference: `DocumentReference/${ids.firstDocument}` } }],
      content: [{ attachment: { url: pdfUrl, contentType: 'application/pdf' } }],
    });
    expect((await as('physician', `DocumentReference/${ids.firstDocument}`)).body.status).toBe('superseded');
    const provenance = (await as('coordinator', `Provenance?target=${letterOutput}`)).body.entry[0].resource;
    expect(provenance.agent.map((agent: any) => [agent.type.coding[0].code, agent.who.reference])).toEqual([
      ['author', 'Practitioner/prac-s'],
      ['verifier', 'Practitioner/prac-c'],
    ]);
    const amended = await pdfText('physician', pdfUrl);
    for (const expected of [
      'Amended report',
      `This report was amended on ${TODAY}. It replaces the report of ${TODAY}.`,
      'The answer to question 2 overlooked the growth since 2024.',
      'Question 2 Which treatment do you advise? Resection is advised, since the nodule has grown.',
      'Recommendation Refer to thoracic surgery.',
    ]) {
      expect([expected, amended.includes(expected)]).toEqual([expected, true]);
    }
    expect(amended).not.toContain('Follow-up imaging only.');

    // The earlier version stays readable: its PDF, and the report's final version in its history.
    const original = await pdfText('physician', ids.firstPdf);
    expect(original).toContain('Question 2 Which treatment do you advise? Follow-up imaging only.');
    expect(original).not.toContain('Amended report');
    const history = (await as('physician', `DiagnosticReport/${ids.report}/_history`)).body;
    const versions = history.entry.map((entry: any) => [entry.resource.status, entry.resource.presentedForm?.[0]?.url]);
    expect(versions).toEqual([
      ['amended', pdfUrl],
      ['final', ids.firstPdf],
    ]);
    const finalVersion = history.entry[1].resource.meta.versionId;
    expect((await as('physician', `DiagnosticReport/${ids.report}/_history/${finalVersion}`)).body.status).toBe(
      'final',
    );

    // A job run again changes nothing and mails nothing.
    expect(await advanceCase(workflowContextOf(testHub), { serviceRequestId: 'sr-1' })).toMatchObject({
      state: expect.stringMatching(/^report-(released|accessed)$/),
    });
    await settle();
    expect(await notifications('report-amended')).toEqual(['Practitioner/prac-phys']);
  });

  test('after the physician’s reading, an addendum: the report appended, the physician e-mailed again and the patient too', async () => {
    // The physician's reading above released the report to the patient.
    await settle();
    expect(stateOf(await coordination('sr-1'))).toBe('report-accessed');
    await waitForMail('patient-sr-1@example.org', 'Your second opinion is ready', 1);

    const addendum = await draft('specialist', {
      relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${ids.correction}` } }],
      section: [
        {
          ...letterSection('addendum', 'The PET-CT of 20 November shows no uptake in the nodule.'),
          entry: [{ reference: 'ServiceRequest/sr-1' }],
        },
      ],
    });
    expect(addendum.status).toBe(201);
    for (const who of ['physician', 'patient'] as const) {
      expect([who, (await as(who, `Composition/${addendum.body.id}`)).status]).toEqual([who, 404]);
    }
    const previousDocument = (await coordination('sr-1')).output[1].valueReference.reference;
    await writeApproval('specialist', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${addendum.body.id}` },
    });
    expect((await approvalOf('sr-1')).description).toMatch(/^Review the addendum/);
    await writeApproval('coordinator2', 'sr-1', { status: 'completed' });
    expect(await reasonOf('sr-1')).toBeUndefined();

    const task = await coordination('sr-1');
    expect(stateOf(task)).toBe('report-accessed');
    const letterOutput = task.output[1].valueReference.reference;
    const report = (await as('patient', `DiagnosticReport/${ids.report}`)).body;
    // The letter stays the corrected one; the addendum is appended to it.
    expect(report).toMatchObject({
      status: 'appended',
      extension: [{ url: LETTER_LINK, valueReference: { reference: `Composition/${ids.correction}` } }],
    });
    expect((await as('patient', letterOutput)).body.relatesTo).toEqual([
      { code: 'replaces', target: { reference: previousDocument } },
    ]);
    expect((await as('patient', previousDocument)).body.status).toBe('superseded');
    expect((await as('patient', `Composition/${addendum.body.id}`)).body.status).toBe('final');
    const text = await pdfText('patient', report.presentedForm[0].url);
    for (const expected of [
      'Amended report',
      `Addendum of ${TODAY} at the end of this report.`,
      'Question 2 Which treatment do you advise? Resection is advised, since the nodule has grown.',
      `Addendum of ${TODAY} The PET-CT of 20 November shows no uptake in the nodule. Dr. Amelia Abernathy`,
    ]) {
      expect([expected, text.includes(expected)]).toEqual([expected, true]);
    }
    // The earlier PDFs are the patient's to read too, now that the report is.
    expect((await pdfText('patient', ids.firstPdf)).includes('Follow-up imaging only.')).toBe(true);

    // One e-mail per amendment and person: the physician's second, the patient's first.
    await waitForMail('paul.physick@clinic.example.org', 'A second-opinion report has been amended', 2);
    await waitForMail('patient-sr-1@example.org', 'Your second opinion has been updated', 1);
    expect(await notifications('report-amended')).toEqual(['Practitioner/prac-phys', 'Practitioner/prac-phys']);
    expect(await notifications('report-updated')).toEqual(['Patient/pat-sr-1']);
  });

  test('refused: an amendment of a letter no longer current, by another specialist, or of a case not released yet', async () => {
    const sections = [CORRECTION_NOTE, ...CORRECTED_SECTIONS];
    // The first letter was replaced by the correction: amending it again is refused.
    const stale = await draft('specialist', {
      relatesTo: [{ code: 'replaces', targetReference: { reference: `Composition/${ids.letter}` } }],
      section: sections,
    });
    expect(stale.status).toBe(201);
    await writeApproval('specialist', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${stale.body.id}` },
    });
    expect(await reasonOf('sr-1')).toBe(
      `The amendment was refused: The amendment names Composition/${ids.letter}, which is not the released letter ` +
        `(Composition/${ids.correction}).`,
    );
    // Another specialist of the case amends a report that is not theirs.
    const others = await draft('otherSpecialist', {
      author: [{ reference: 'Practitioner/prac-s2' }],
      relatesTo: [{ code: 'replaces', targetReference: { reference: `Composition/${ids.correction}` } }],
      section: sections,
    });
    expect(others.status).toBe(201);
    await writeApproval('otherSpecialist', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${others.body.id}` },
    });
    expect(await reasonOf('sr-1')).toBe(
      'The amendment was refused: Only the specialist who wrote the released report (or a coordinator) submits an amendment of it.',
    );
    // The physician asks for an "amendment" of the released letter itself.
    await writeApproval('physician', 'sr-1', {
      status: 'requested',
      focus: { reference: `Composition/${ids.correction}` },
    });
    expect(await reasonOf('sr-1')).toBe(
      'The amendment was refused: Only the specialist who wrote the released report (or a coordinator) submits an amendment of it.',
    );
    expect((await as('coordinator', `DiagnosticReport/${ids.report}`)).body.status).toBe('appended');

    // Case 2 is in review, not released: its approval pointed at an amendment moves nothing.
    const draftLetter = (await as('specialist', `Composition?subject=Patient/pat-sr-2`)).body.entry[0].resource;
    const early = await draft('specialist', {
      subject: { reference: 'Patient/pat-sr-2' },
      relatesTo: [{ code: 'replaces', targetReference: { reference: `Composition/${draftLetter.id}` } }],
      section: [CORRECTION_NOTE, ...ORIGINAL_SECTIONS('sr-2')],
    });
    expect(early.status).toBe(201);
    await writeApproval('specialist', 'sr-2', {
      status: 'requested',
      focus: { reference: `Composition/${early.body.id}` },
    });
    expect(await reasonOf('sr-2')).toBe(
      'The amendment was refused: The case’s report is not released yet (the case is "report-review"); until it is, ' +
        'the specialist edits the draft.',
    );
    expect(stateOf(await coordination('sr-2'))).toBe('report-review');
    expect(await notifications('report-amended')).toHaveLength(2);
  });
});
