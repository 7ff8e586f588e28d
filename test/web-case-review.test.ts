/**
 * The coordinator's case page in Chromium (web/src/case/Tasks.tsx, Review.tsx, Timeline.tsx) against
 * a hub process with AUTH_REQUIRED=true, its workers running the case workflow: a coordinator assigns a
 * pre-review and reassigns the specialist's Task and reads why the specialist was proposed; reviews a
 * submitted report, returns it with a reason (which reaches the specialist's Task) and, after the
 * specialist submits again through the API, approves it; and reads who did all of it on the timeline.
 * The referring physician and the specialist get none of the coordinator's buttons, and the hub
 * refuses (undoes, says why) the same writes made with their tokens; the physician never sees the draft.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { matchingCaseFixtures, rosterFixtures } from './support/case-review-fixtures.ts';
import {
  CASE,
  CASE_STATE,
  LOINC,
  TASK_CODE,
  draftReport,
  letterSection,
  opinionCaseFixtures,
} from './support/opinion-case.ts';
import { fhirFetch } from './support/test-hub.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings } from './support/web-app.ts';
import { ACCOUNTS, practitioners, startWebHub } from './support/web-hub.ts';
import type { WebHub } from './support/web-hub.ts';

const MATCHING = 'sr-cr-match';
const REVIEW = 'sr-cr-review';
const PRE_REVIEW = 'sr-cr-pre';
const CONCLUSION = 'Benign hamartoma; a CT in twelve months.';
const RETURN_REASON = 'Cite the biopsy in the summary.';

/** A case waiting for its radiology pre-review, which nobody has yet. */
function preReviewFixtures(sr: string, referenceNumber: string): Record<string, unknown>[] {
  return [
    ...matchingCaseFixtures(sr, referenceNumber).map((resource) =>
      resource.id === `coord-${sr}`
        ? { ...resource, businessStatus: { coding: [{ system: CASE_STATE, code: 'pre-review' }] } }
        : resource,
    ),
    {
      resourceType: 'Task',
      id: `pre-${sr}`,
      identifier: [{ system: CASE, value: `${sr}/pre-review-radiology` }],
      status: 'requested',
      intent: 'order',
      code: { coding: [{ system: TASK_CODE, code: 'pre-review-radiology' }] },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      partOf: [{ reference: `Task/coord-${sr}` }],
      for: { reference: `Patient/pat-${sr}` },
    },
  ];
}

describe('the coordinator’s case page: Tasks, the opinion under review, the timeline', () => {
  let hub: WebHub;
  /** Each person's signed-in page, kept for the whole suite (a TOTP code is good for one login). */
  const pages: Record<string, { context: BrowserContext; page: Page; problems: string[]; token: string }> = {};

  const fhir = (token: string, path: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.url}/fhir/${path}`, { ...init, headers: { authorization: `Bearer ${token}` } });
  const coordination = async (sr: string) => (await fhir(hub.ehr, `Task/coord-${sr}`)).body;
  const stateOf = (task: any): string => task.businessStatus.coding[0].code;
  const approvalOf = async (sr: string) =>
    (await fhir(hub.ehr, `Task?code=${TASK_CODE}|approve&based-on=ServiceRequest/${sr}`)).body.entry[0].resource;
  /** `token`'s person writes a Task again with `changes`, as a client of theirs would. */
  const rewrite = async (token: string, id: string, changes: Record<string, unknown>) => {
    const task = (await fhir(hub.ehr, `Task/${id}`)).body;
    return (await fhir(token, `Task/${id}`, { method: 'PUT', body: { ...task, meta: undefined, ...changes } })).status;
  };
  /** The specialist moves the case to report review (the submission). */
  const submit = async (token: string, sr: string) => {
    const task = await coordination(sr);
    const body = {
      ...task,
      meta: undefined,
      businessStatus: { coding: [{ system: CASE_STATE, code: 'report-review' }] },
    };
    expect((await fhir(token, `Task/coord-${sr}`, { method: 'PUT', body })).status).toBe(200);
  };

  async function signInAs(who: string, email: string, path: string): Promise<Page> {
    const { context, page, problems } = await hub.signIn(email, path, { viewport: { width: 1280, height: 800 } });
    await page.waitForURL(`**/dashboard${path}`);
    await page.getByTestId('signed-in-role').waitFor({ timeout: UI_TIMEOUT_MS });
    pages[who] = { context, page, problems, token: await appToken(page) };
    return page;
  }

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'review',
      ehrClientId: 'review-ehr',
      accounts: [ACCOUNTS.cora, ACCOUNTS.paul, ACCOUNTS.amelia],
    });
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys'),
      ...rosterFixtures(),
      ...matchingCaseFixtures(
        MATCHING,
        generateReferenceNumber(() => 1),
      ),
      ...opinionCaseFixtures(
        REVIEW,
        generateReferenceNumber(() => 2),
      ),
      ...preReviewFixtures(
        PRE_REVIEW,
        generateReferenceNumber(() => 7),
      ),
    ];
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await hub.settled();
    await signInAs('coordinator', 'cora@hub.example.org', `/cases/${MATCHING}`);
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
  });

  test('a coordinator assigns a pre-review, reassigns the specialist’s Task and reads why the specialist was proposed', async () => {
    const { page } = pages.coordinator!;
    const tasks = page.getByTestId('case-tasks');
    const offers = tasks.locator('tr[data-code="specialist-opinion"]');
    await offers.first().getByText('Dr. Amelia Abernathy').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await offers.count()).toBe(1);
    expect(await offers.first().getByTestId('task-status').textContent()).toBe('requested');
    await page.getByText('Why Dr. Amelia Abernathy was proposed').click();
    const ranking = page.getByTestId('ranking-explanation');
    await ranking.getByText('Offered to Dr. Amelia Abernathy (rank 1 of 2).').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await ranking.textContent()).toMatch(
      /Dr\. Fiona Fellowes: a fellow: interns, residents and fellows cannot give opinions/,
    );

    await page.getByRole('button', { name: 'Reassign: Specialist’s opinion' }).click();
    await page
      .getByLabel('Specialist for the specialist’s opinion')
      .selectOption({ label: 'Dr. Ben Brightwater (Medical Oncology)' });
    // The fellow is on the roster and offered too: the hub, not the form, decides who may take a case.
    await page.getByRole('button', { name: 'Reassign', exact: true }).click();
    await offers.nth(1).getByText('Dr. Ben Brightwater').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await offers.first().getByTestId('task-status').textContent()).toBe('cancelled');
    expect(await offers.first().textContent()).toContain('Reassigned to Dr. Ben Brightwater by Cora Coordinator.');
    expect(await offers.first().getByTestId('task-owner').textContent()).toBe('Unassigned');
    expect(await offers.nth(1).getByTestId('task-status').textContent()).toBe('requested');
    await page.getByText('Why Dr. Ben Brightwater was proposed').click();
    await ranking
      .getByText(
        'Reassigned to Dr. Ben Brightwater by Cora Coordinator (coordinator), in place of Dr. Amelia Abernathy.',
      )
      .waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await ranking.textContent()).toContain('Dr. Ben Brightwater is rank 2 of 2');

    // The timeline: the coordinator's write, then the hub's answer, each with who.
    const timeline = page.getByTestId('case-timeline');
    const reassigned = timeline.locator('tr', { hasText: 'owner: Dr. Amelia Abernathy → Dr. Ben Brightwater' });
    await reassigned.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await reassigned.getByTestId('timeline-who').textContent()).toBe('Cora Coordinator (coordinator)');
    const cancelled = timeline.locator('tr', { hasText: 'status: requested → cancelled' });
    expect(await cancelled.getByTestId('timeline-who').textContent()).toBe('the hub');
    expect(await axeFindings(page)).toEqual([]);

    // Reassigned to the fellow: the hub undoes it. The case's members read only that it was refused;
    // the coordinator reads why, from the Provenance of the offer.
    await page.getByRole('button', { name: 'Reassign: Specialist’s opinion' }).click();
    await page
      .getByLabel('Specialist for the specialist’s opinion')
      .selectOption({ label: 'Dr. Fiona Fellowes (Medical Oncology)' });
    await page.getByRole('button', { name: 'Reassign', exact: true }).click();
    const refusal = page.getByTestId('matching-reason');
    await refusal
      .getByText(
        'The reassignment to Dr. Fiona Fellowes was refused: a fellow: interns, residents and fellows cannot give opinions.',
      )
      .waitFor({ timeout: UI_TIMEOUT_MS });
    expect((await coordination(MATCHING)).statusReason.text).toBe(
      'The reassignment to Dr. Fiona Fellowes was refused.',
    );
    expect(await offers.nth(1).getByTestId('task-owner').textContent()).toBe('Dr. Ben Brightwater');
    // The ranking that proposed Brightwater is still the one shown under "why proposed".
    expect(await ranking.textContent()).toContain('Dr. Ben Brightwater is rank 2 of 2');

    // A pre-review nobody has: assigned from the radiologists' roster.
    await page.goto(`${hub.url}/dashboard/cases/${PRE_REVIEW}`);
    const preReview = page.getByTestId('case-tasks').locator('tr[data-code="pre-review-radiology"]');
    await preReview.getByText('Unassigned').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByRole('button', { name: 'Assign: Radiology pre-review' }).click();
    await page.getByLabel('Radiologist for the radiology pre-review').selectOption({ label: 'Dr. Rita Radley' });
    await page.getByRole('button', { name: 'Assign', exact: true }).click();
    await preReview.getByText('Dr. Rita Radley').waitFor({ timeout: UI_TIMEOUT_MS });
    expect((await fhir(hub.ehr, `Task/pre-${PRE_REVIEW}`)).body.owner).toEqual({ reference: 'Practitioner/prac-r' });
    expect(pages.coordinator!.problems).toEqual([]);
  });

  test('the specialist submits a draft; neither they nor the physician get the coordinator’s buttons, and the hub refuses their writes', async () => {
    // The specialist writes the draft and its letter and submits it, with the token the app holds.
    const specialistPage = await signInAs('specialist', 'amelia@specialists.example.org', `/cases/${REVIEW}`);
    const specialist = pages.specialist!.token;
    const letter = await fhir(specialist, 'Composition', {
      method: 'POST',
      body: {
        resourceType: 'Composition',
        status: 'preliminary',
        type: { coding: [{ system: LOINC, code: '11488-4' }] },
        subject: { reference: `Patient/pat-${REVIEW}` },
        date: new Date().toISOString().slice(0, 10),
        author: [{ reference: 'Practitioner/prac-s' }],
        title: 'Consultation',
        section: [
          { ...letterSection('reviewed', 'The CT of the chest.'), entry: [{ reference: `ServiceRequest/${REVIEW}` }] },
          letterSection('answer', 'The nodule is most likely benign.', 1),
          letterSection('answer', 'No treatment; follow-up imaging only.', 2),
          letterSection('discussion', 'The features agree with a hamartoma.'),
          letterSection('recommendation', 'A CT in twelve months.'),
        ],
      },
    });
    expect(letter.status).toBe(201);
    const report = await fhir(specialist, 'DiagnosticReport', {
      method: 'POST',
      body: draftReport(REVIEW, letter.body.id, CONCLUSION),
    });
    expect(report.status).toBe(201);
    await submit(specialist, REVIEW);
    await hub.settled();
    expect(stateOf(await coordination(REVIEW))).toBe('report-review');

    // Whichever page the app gives them, the specialist and the physician get none of the coordinator's buttons.
    const physicianPage = await signInAs('physician', 'paul@clinic.example.org', `/cases/${REVIEW}`);
    const physician = pages.physician!.token;
    for (const page of [specialistPage, physicianPage]) {
      await page.reload();
      await page.getByText('Olivia Quintero').first().waitFor({ timeout: UI_TIMEOUT_MS });
      await page.waitForLoadState('networkidle');
      for (const name of ['Approve the report', 'Return to the specialist', 'Reassign', 'Assign']) {
        expect([name, await page.getByRole('button', { name, exact: true }).count()]).toEqual([name, 0]);
      }
      expect(await page.getByRole('button', { name: /^(Reassign|Assign|Offer to another specialist):/ }).count()).toBe(
        0,
      );
    }
    // The physician sees the draft neither on the page nor at the API.
    const html = await physicianPage.content();
    expect(html).not.toContain(CONCLUSION);
    expect(html).not.toContain('most likely benign');
    expect((await fhir(physician, `DiagnosticReport/${report.body.id}`)).status).toBe(404);
    expect((await fhir(physician, `Composition/${letter.body.id}`)).status).toBe(404);

    // The same moves with their tokens: the hub writes the offer back and refuses the approvals, saying why.
    for (const token of [physician, specialist]) {
      expect(await rewrite(token, `offer-${REVIEW}`, { owner: { reference: 'Practitioner/prac-s2' } })).toBe(200);
      await hub.settled();
      expect((await fhir(hub.ehr, `Task/offer-${REVIEW}`)).body.owner).toEqual({ reference: 'Practitioner/prac-s' });
      expect((await coordination(REVIEW)).statusReason.text).toBe(
        'The reassignment was refused: only a coordinator reassigns the specialist’s Task.',
      );
    }
    for (const [token, role] of [
      [physician, 'The referring physician'],
      [specialist, 'The specialist'],
    ] as const) {
      expect(await rewrite(token, (await approvalOf(REVIEW)).id, { status: 'completed' })).toBe(200);
      await hub.settled();
      const task = await coordination(REVIEW);
      expect(stateOf(task)).toBe('report-review');
      expect(task.statusReason.text).toBe(
        `The approval was refused: ${role} cannot move a case from "report-review" to "report-released"; that is done by a coordinator.`,
      );
    }
    expect(pages.physician!.problems).toEqual([]);
    expect(pages.specialist!.problems).toEqual([]);
  });

  test('the coordinator reads the draft, returns it with a reason that reaches the specialist’s Task, then approves it resubmitted', async () => {
    const { page } = pages.coordinator!;
    await page.goto(`${hub.url}/dashboard/cases/${REVIEW}`);
    const opinion = page.getByTestId('opinion');
    await opinion.getByTestId('opinion-conclusion').getByText(CONCLUSION).waitFor({ timeout: UI_TIMEOUT_MS });
    const letter = opinion.getByTestId('opinion-letter');
    await letter.getByText('Question 1: Is the nodule malignant?').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await letter.textContent()).toContain('The nodule is most likely benign.');
    expect(await letter.textContent()).toContain('Question 2: Which treatment do you advise?');
    // The specialist's refused approval, in words.
    expect(await page.getByTestId('review-refusal').textContent()).toContain('The specialist cannot move a case');

    await page.getByLabel('Why the report goes back to the specialist').fill(RETURN_REASON);
    await page.getByRole('button', { name: 'Return to the specialist' }).click();
    await page.getByTestId('case-state').getByText('Specialist review').waitFor({ timeout: UI_TIMEOUT_MS });
    // The reason on the specialist's own Task, read with their token.
    const offer = (await fhir(pages.specialist!.token, `Task/offer-${REVIEW}`)).body;
    expect(offer.note.at(-1).text).toBe(`The report was returned: ${RETURN_REASON}`);

    // Submitted again through the API; the coordinator approves it.
    await submit(pages.specialist!.token, REVIEW);
    await hub.settled();
    await page.reload();
    await page.getByRole('button', { name: 'Approve the report' }).click();
    await page.getByRole('button', { name: 'Yes, approve and release' }).click();
    await page.getByTestId('case-state').getByText('Report released').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('opinion').getByText('Released (final)').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('pdf-frame').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(stateOf(await coordination(REVIEW))).toBe('report-released');

    // The timeline: the return, the approval and its signature, and the refused attempts, each with who.
    const timeline = page.getByTestId('case-timeline');
    const row = (text: string) => timeline.locator('tr', { hasText: text });
    await row('report approved and signed; author Dr. Amelia Abernathy; verifier Cora Coordinator').waitFor({
      timeout: UI_TIMEOUT_MS,
    });
    const returned = row(`reason: ${RETURN_REASON}`).first();
    expect(await returned.getByTestId('timeline-who').textContent()).toBe('Cora Coordinator (coordinator)');
    const approvals = await row('Approval of the report: status: requested → completed').allTextContents();
    expect(approvals.some((text) => text.includes('Dr. Paul Physick (referring physician)'))).toBe(true);
    expect(approvals.some((text) => text.includes('Cora Coordinator (coordinator)'))).toBe(true);
    const physicianMove = row('owner: Dr. Amelia Abernathy → Dr. Ben Brightwater').first();
    expect(await physicianMove.getByTestId('timeline-who').textContent()).toBe(
      'Dr. Paul Physick (referring physician)',
    );
    expect(await row('state: Report review → Report released').getByTestId('timeline-who').textContent()).toBe(
      'the hub',
    );
    expect(await axeFindings(page)).toEqual([]);
    expect(pages.coordinator!.problems).toEqual([]);
  });
});
