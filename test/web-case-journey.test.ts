/**
 * One case through the whole service in the web app (issue 15's bar), in Chromium against a hub
 * process with AUTH_REQUIRED=true, its workers on PostgreSQL and Redis, and an SMTP receiver. Each
 * person has their own browser and signs in through the hub's login page (staff with their
 * authenticator code), and does their part on the app's own screens; only the machines (the EHR,
 * an imaging system) use the API:
 *
 * the EHR refers the case → the coordinator finds it submitted on the worklist, reads the screening
 * and the quote, and accepts it → the referring physician sends a PDF and a CT series from their
 * page → an imaging system sends a prior MR that matches no case, which the coordinator attaches in
 * the reconciliation inbox → the hub moves the case to pre-review, the coordinator assigns the
 * radiologist, who writes the pre-review → the hub offers the case to the specialist, who accepts it
 * in My tasks, reads the imaging, writes the opinion a section per question and submits it → the
 * coordinator reads and approves it → the patient sees nothing of it yet → the physician reads it
 * (the case is report-accessed) → the patient reads it; the coordinator's queues hold no dead letter.
 *
 * Each person is also shown not to see what is not theirs: the other physician's case (on the
 * worklist, by URL, at the API), the staff's controls, the draft before release, the opinion before
 * the physician's reading. Each main screen passes axe-core at 1280×800 and at 800×1000 and fits 800
 * px; with SCREENSHOTS_DIR set (`npm run screenshots`) the journey saves its screens' PNGs there.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { clientToken } from './support/client-token.ts';
import { CASE } from './support/opinion-case.ts';
import { recordsPdf } from './support/reviewer-fixtures.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { stow } from './support/stow.ts';
import { fhirFetch } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { UI_TIMEOUT_MS, appToken } from './support/web-app.ts';
import { startWebHub } from './support/web-hub.ts';
import type { SignedIn, WebHub } from './support/web-hub.ts';
import {
  OTHER,
  PATIENT,
  PEOPLE,
  QUESTIONS,
  SR,
  WIDE,
  cdSeries,
  checkScreen,
  clean,
  journeyBackground,
  priorStudy,
  referral,
} from './support/web-journey.ts';
import type { Person } from './support/web-journey.ts';

type Json = any;

const WAIT_MS = 30_000;
const CD_IMAGES = 4;
const OPINION = {
  reviewed: 'The CT of the chest (four images), the prior MR and the discharge summary.',
  answers: ['The nodule is most likely benign: smooth margins, no growth since the prior MR.', 'Follow-up only.'],
  discussion: 'Nothing in the images or the records suggests malignancy.',
  recommendation: 'A low-dose CT of the chest in twelve months.',
  conclusion: 'Benign-appearing nodule; a CT in twelve months.',
} as const;

describe('one case through the whole service, in the web app', () => {
  let sink: SmtpSink;
  let hub: WebHub;
  let pacs: string;
  const references = { mine: generateReferenceNumber(() => 3), other: generateReferenceNumber(() => 8) };
  const people: Partial<Record<Person, SignedIn>> = {};
  const person = (who: Person): SignedIn => people[who] as SignedIn;

  const fhir = (token: string, resource: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.url}/fhir/${resource}`, { ...init, headers: { authorization: `Bearer ${token}` } });
  const coordinationTask = async (): Promise<Json> => {
    const found = await fhir(hub.ehr, `Task?identifier=${encodeURIComponent(`${CASE}|${SR}/coordination`)}`);
    return found.body.entry?.[0]?.resource;
  };
  const stateOf = (task: Json): string | undefined => task?.businessStatus?.coding?.[0]?.code;
  const caseIn = (state: string) =>
    until(async () => stateOf(await coordinationTask()) === state, `the case in ${state}`, WAIT_MS);
  const mailsTo = (who: Person, subject: string) =>
    sink.accepted.filter((mail) => mail.recipients.includes(PEOPLE[who].email) && mail.raw.includes(subject));
  /** A main screen: axe-core at both widths, 800 px wide without overflow, and its PNG on request. */
  const check = async (page: Page, screen: string, options?: Parameters<typeof checkScreen>[2]) =>
    expect(await checkScreen(page, screen, options)).toEqual(clean(screen));
  /** Waits for `testId` to show `expected`; failing, says what the page's main area showed instead. */
  const waitForText = async (page: Page, testId: string, expected: string | RegExp, timeout = WAIT_MS) => {
    try {
      await page.getByTestId(testId).filter({ hasText: expected }).first().waitFor({ timeout });
    } catch (err) {
      const shown = await page
        .locator('main')
        .textContent({ timeout: 1000 })
        .catch(() => '(no main)');
      throw new Error(`${testId} never showed ${String(expected)}; the page showed: ${shown}`, { cause: err });
    }
  };

  /** `who` in a browser of their own, signed in through the hub's login page at `at`. */
  async function signInAs(who: Person, at: string): Promise<SignedIn> {
    const { context, page, problems } = await hub.signIn(PEOPLE[who].email, at, { viewport: WIDE });
    await page.getByTestId('signed-in-role').getByText(PEOPLE[who].role).waitFor({ timeout: UI_TIMEOUT_MS });
    people[who] = { context, page, problems };
    return { context, page, problems };
  }

  /** What `who` must never see of the other physician's case: not on their home page, not by URL, not at the API. */
  async function otherCaseHidden(who: Person): Promise<void> {
    const { page } = person(who);
    await page.goto(`${hub.url}/dashboard/cases/${OTHER}`);
    await page.getByTestId('case-not-found').waitFor({ timeout: UI_TIMEOUT_MS });
    const html = await page.content();
    expect({ who, lindqvist: html.includes('Lindqvist'), reference: html.includes(references.other) }).toEqual({
      who,
      lindqvist: false,
      reference: false,
    });
    const token = await appToken(page);
    for (const resource of [`ServiceRequest/${OTHER}`, `Patient/pat-${OTHER}`, `QuestionnaireResponse/qr-${OTHER}`]) {
      expect({ who, resource, status: (await fhir(token, resource)).status }).toEqual({ who, resource, status: 404 });
    }
  }

  /** No coordinator's control on `who`'s page as it is now. */
  async function noStaffControls(who: Person): Promise<void> {
    const { page } = person(who);
    const controls = page.getByRole('button', {
      name: /^(Accept the case|Approve the report|Return to the specialist|Correct the question count|Waive|Reassign|Assign|Retry)/,
    });
    expect({ who, controls: await controls.allTextContents() }).toEqual({ who, controls: [] });
    for (const name of ['Reconciliation', 'Queues']) {
      expect({ who, link: name, count: await page.getByRole('link', { name }).count() }).toEqual({
        who,
        link: name,
        count: 0,
      });
    }
  }

  beforeAll(async () => {
    sink = await startSmtpSink();
    hub = await startWebHub({
      name: 'journey',
      ehrClientId: 'journey-ehr',
      accounts: Object.values(PEOPLE),
      env: { SMTP_URL: sink.url },
    });
    pacs = await clientToken(hub.place, 'journey-pacs', 'system/ImagingStudy.crs');
    // Due a month from now, whatever the date: no reminder or escalation fires during the journey.
    const dueAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const loaded = await hub.load(hub.ehr, journeyBackground(references.other, dueAt));
    expect({ status: loaded.status, issue: loaded.body.issue }).toEqual({ status: 200, issue: undefined });
    await hub.settled();
  }, 120_000);

  afterAll(async () => {
    for (const who of Object.values(people)) {
      await who?.context.close();
    }
    await hub?.stop();
    await sink?.close();
  });

  afterEach(() => {
    for (const [who, { problems }] of Object.entries(people)) {
      expect({ who, problems }).toEqual({ who, problems: [] });
    }
  });

  test('the EHR refers the case; the coordinator finds it submitted, reads the screening and the quote, and accepts it', async () => {
    const referred = await hub.load(hub.ehr, referral(references.mine));
    expect({ status: referred.status, issue: referred.body.issue }).toEqual({ status: 200, issue: undefined });
    await caseIn('submitted');

    const { page } = await signInAs('coordinator', '');
    const worklist = page.getByTestId('worklist');
    const row = worklist.locator(`tr[data-case="${SR}"]`);
    await row.getByTestId('case-state').getByText('Submitted').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await row.getByTestId('next-action').textContent()).toContain('Check the residence and accept the case');
    // The coordinators run every case: the other physician's too.
    await worklist.locator(`tr[data-case="${OTHER}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    await check(page, 'worklist');

    await row.getByRole('link', { name: references.mine }).click();
    await page.waitForURL(`**/dashboard/cases/${SR}`);
    await page.getByTestId('case-patient').getByText(PATIENT.name).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-physician').getByText('Dr. Paul Physick').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByTestId('case-questions').textContent()).toContain(QUESTIONS[0]);
    await waitForText(page, 'eligibility-outcome', /^Eligible$/);
    expect(await page.getByTestId('eligibility-reviews').textContent()).toContain('Radiology review allowed');
    // The opinion $750 and two imaging studies at $375; the three pages of records are included.
    await waitForText(page, 'quote-total', '$1,500.00');
    expect(await page.getByTestId('material-imaging').getByTestId('material-status').textContent()).toBe('Expected');
    expect(await page.getByTestId('material-records').getByTestId('material-status').textContent()).toBe('Expected');
    await check(page, 'case-page');

    await page.getByRole('button', { name: 'Accept the case' }).click();
    await page.getByTestId('case-state').getByText('Awaiting materials').waitFor({ timeout: WAIT_MS });
    await page.getByTestId('accept-case').waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    // The move is the coordinator's own, as the hub recorded it.
    const history = await fhir(hub.ehr, `Task/${(await coordinationTask()).id}/_history?_count=50`);
    const move = history.body.entry
      .map((entry: Json) => entry.resource)
      .find((version: Json) => stateOf(version) === 'awaiting-materials' && version.meta.source);
    expect(move.meta.source).toBe('urn:hub:actor:coordinator:prac-c');
  }, 90_000);

  test('the referring physician sees only their case and no staff control, and sends the records and a CT series', async () => {
    const { page } = await signInAs('physician', `/cases/${SR}`);
    await waitForText(page, 'physician-next-step', 'Send the records and imaging');
    await noStaffControls('physician');
    await page.getByRole('link', { name: 'Second Opinion Hub' }).click();
    const worklist = page.getByTestId('worklist');
    await worklist.locator(`tr[data-case="${SR}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await worklist.locator('tbody tr').count()).toBe(1);
    await otherCaseHidden('physician');

    await page.goto(`${hub.url}/dashboard/cases/${SR}`);
    const pdf = path.join(hub.dataDir, 'discharge-summary.pdf');
    await fsp.writeFile(pdf, await recordsPdf(3));
    await page.getByLabel('PDF records').setInputFiles(pdf);
    await page.getByLabel('What they are (optional)').fill('Discharge summary');
    await page.getByRole('button', { name: 'Upload the PDF' }).click();
    await waitForText(page, 'records-upload-outcomes', 'discharge-summary.pdf: Stored with the case');

    const images = await cdSeries(path.join(hub.dataDir, 'CD', 'DICOM'), CD_IMAGES);
    await page.getByLabel('Or some files').setInputFiles(images);
    await page.getByRole('button', { name: `Send ${CD_IMAGES} files` }).click();
    await waitForText(page, 'upload-done', `${CD_IMAGES} of ${CD_IMAGES} DICOM files stored with the case`);
    await page.getByTestId('studies').locator(`tr[data-instances="${CD_IMAGES}"]`).waitFor({ timeout: WAIT_MS });
    await page
      .getByTestId('record')
      .filter({ hasText: 'discharge-summary' })
      .getByText('3 pages')
      .waitFor({ timeout: WAIT_MS });
    await check(page, 'physician-upload', { show: page.getByTestId('uploads') });
  }, 90_000);

  test('an imaging system’s prior study matches no case; the coordinator attaches it, and the hub starts the pre-review', async () => {
    const prior = await priorStudy(hub.dataDir, 'EIC-ACC-0042');
    const sent = await stow(hub.url, [prior.bytes], { authorization: `Bearer ${pacs}` });
    expect(sent.status).toBe(200);
    const reconcile = await until(async () => {
      const found = await fhir(hub.ehr, `Task?code=${encodeURIComponent('urn:hub:task-code|reconcile-imaging')}`);
      return found.body.entry?.[0]?.resource;
    }, 'the study’s reconciliation Task');

    const { page } = person('coordinator');
    await page.getByRole('navigation', { name: 'Operations' }).getByRole('link', { name: 'Reconciliation' }).click();
    await page.waitForURL('**/dashboard/reconciliation');
    const card = page.locator(`article[data-task="${reconcile.id}"]`);
    await card.locator('[data-field="patient-name"]').getByText('Quintero, Olivia').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await card.locator('[data-field="birth-date"]').textContent()).toBe(PATIENT.birthDate);
    expect(await card.getByTestId('reason').textContent()).toBe('Matched no case');
    await card.getByRole('img', { name: /^Thumbnail of the study/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    await check(page, 'reconciliation');
    await card.getByLabel('Reference number, accession number or patient name').fill(references.mine);
    await card.getByRole('button', { name: 'Search cases' }).click();
    const option = card.locator(`[data-case-option="${SR}"]`);
    await option.getByRole('button', { name: `Attach to ${references.mine}` }).click();
    await option.getByRole('button', { name: 'Confirm attaching' }).click();
    await waitForText(page, 'reconcile-notice', `case ${references.mine}`);

    // Both studies and the records are in: the hub takes the case to pre-review, which nobody has yet.
    await caseIn('pre-review');
    await page.getByRole('link', { name: 'Second Opinion Hub' }).click();
    const row = page.getByTestId('worklist').locator(`tr[data-case="${SR}"]`);
    await row.getByTestId('next-action').getByText('Assign the radiology pre-review').waitFor({ timeout: WAIT_MS });
    await row.getByRole('link', { name: references.mine }).click();
    const imaging = page.getByTestId('material-imaging');
    await imaging.locator('img[alt^="Thumbnail of the"]').nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await imaging.getByTestId('material-status').textContent()).toBe('Arrived');
    await waitForText(page, 'materials-missing', 'Nothing is missing');
    const preReview = page.getByTestId('case-tasks').locator('tr[data-code="pre-review-radiology"]');
    await preReview.getByText('Unassigned').waitFor({ timeout: UI_TIMEOUT_MS });
    await check(page, 'case-materials', { show: imaging });
    await page.getByRole('button', { name: 'Assign: Radiology pre-review' }).click();
    await page.getByLabel('Radiologist for the radiology pre-review').selectOption({ label: 'Dr. Rita Radley' });
    await page.getByRole('button', { name: 'Assign', exact: true }).click();
    await preReview.getByText('Dr. Rita Radley').waitFor({ timeout: UI_TIMEOUT_MS });
  }, 90_000);

  test('the radiologist writes the pre-review from My tasks; the hub offers the case to the specialist', async () => {
    const { page } = await signInAs('radiologist', '');
    const open = page.getByTestId('my-open-tasks');
    const row = open.locator(`tr[data-case="${SR}"]`);
    await row.getByTestId('task-status').getByText('Assigned to you').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await open.locator('tbody tr').count()).toBe(1);
    await row.getByRole('link', { name: references.mine }).first().click();
    await page.waitForURL(`**/dashboard/cases/${SR}`);
    // A radiologist writes no opinion.
    await page.getByRole('tab', { name: 'Radiology pre-review report' }).click();
    expect(await page.getByRole('tab', { name: 'Opinion' }).count()).toBe(0);
    await page.getByRole('radio', { name: 'Adequate for the specialist’s review' }).check();
    await page.getByLabel('Findings').fill('A 9 mm nodule in the right upper lobe, unchanged from the prior MR.');
    await page.getByLabel('Impression').fill('Adequate for the specialist’s review.');
    // Both studies, the CD's and the prior, are what was reviewed.
    const studies = page.getByRole('checkbox');
    expect(await studies.count()).toBe(2);
    expect(await studies.nth(1).isChecked()).toBe(true);
    await check(page, 'pre-review-form');
    await page.getByRole('button', { name: 'Submit the radiology pre-review report' }).click();
    await page.getByTestId('pre-review-done').waitFor({ timeout: UI_TIMEOUT_MS });
    await noStaffControls('radiologist');
    await otherCaseHidden('radiologist');

    // The hub matches: the first-ranked oncologist is offered the case.
    await until(async () => {
      const offers = await fhir(
        hub.ehr,
        `Task?code=urn:hub:task-code|specialist-opinion&based-on=ServiceRequest/${SR}`,
      );
      return offers.body.entry?.length > 0;
    }, 'the offer to the specialist');
    const { page: coordinator } = person('coordinator');
    await coordinator.reload();
    const offer = coordinator.getByTestId('case-tasks').locator('tr[data-code="specialist-opinion"]');
    await offer.getByText('Dr. Amelia Abernathy').waitFor({ timeout: WAIT_MS });
    expect(await offer.getByTestId('task-status').textContent()).toBe('requested');
    await coordinator.getByText('Why Dr. Amelia Abernathy was proposed').click();
    await waitForText(coordinator, 'ranking-explanation', 'Offered to Dr. Amelia Abernathy (rank 1 of 2).');
  }, 90_000);

  test('the specialist accepts the offer in My tasks, reads the imaging, writes the opinion and submits it', async () => {
    const { page } = await signInAs('specialist', '');
    const open = page.getByTestId('my-open-tasks');
    const row = open.locator(`tr[data-case="${SR}"]`);
    await row.getByTestId('task-status').getByText('Offered to you').waitFor({ timeout: UI_TIMEOUT_MS });
    // Their tasks only: the other physician's case is another oncologist's.
    expect(await open.locator('tbody tr').count()).toBe(1);
    expect(await page.content()).not.toContain(references.other);
    await check(page, 'my-tasks');
    await row.getByRole('button', { name: `Accept case ${references.mine}` }).click();
    await row.getByTestId('task-status').getByText('Accepted').waitFor({ timeout: UI_TIMEOUT_MS });
    await caseIn('specialist-review');

    await row.getByRole('link', { name: references.mine }).first().click();
    await page.waitForURL(`**/dashboard/cases/${SR}`);
    await page.getByRole('tab', { name: 'Imaging' }).click();
    // Two studies: the CT from the patient's CD, and the prior MR the coordinator attached.
    await page
      .getByRole('group', { name: 'Studies' })
      .getByRole('button', { name: /^CT CHEST/ })
      .click();
    await page.getByTestId('series-button').filter({ hasText: 'Chest 5 mm' }).click();
    await page.getByTestId('frame-position').getByText(`Image 1 of ${CD_IMAGES}`).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('frame-stage').focus();
    await page.keyboard.press('ArrowDown');
    await page.getByTestId('frame-position').getByText(`Image 2 of ${CD_IMAGES}`).waitFor({ timeout: UI_TIMEOUT_MS });
    await check(page, 'imaging-viewer');

    await page.getByRole('tab', { name: 'Opinion' }).click();
    const sections = page.getByTestId('question-section');
    await sections.nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await sections.nth(0).textContent()).toContain(QUESTIONS[0]);
    expect(await sections.nth(1).textContent()).toContain(QUESTIONS[1]);
    await page.getByLabel('What was reviewed').fill(OPINION.reviewed);
    for (const [index, answer] of OPINION.answers.entries()) {
      await page.getByLabel(`Answer to question ${index + 1}`).fill(answer);
    }
    await page.getByLabel('Discussion').fill(OPINION.discussion);
    await page.getByLabel('Recommendation').fill(OPINION.recommendation);
    await page.getByLabel('Conclusion').fill(OPINION.conclusion);
    await page
      .locator('[data-testid="save-status"][data-status="saved"]')
      .getByText(/^Saved at/)
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await check(page, 'opinion-editor');
    await noStaffControls('specialist');
    await page.getByRole('button', { name: 'Submit the opinion for review' }).click();
    await page.getByTestId('submitted').waitFor({ timeout: WAIT_MS });
    await caseIn('report-review');
    await otherCaseHidden('specialist');
  }, 90_000);

  test('the coordinator reads the opinion under review and approves it; the physician is told, and saw no draft', async () => {
    // Under review the physician's page holds nothing of the draft.
    const { page: physician } = person('physician');
    await physician.reload();
    await waitForText(physician, 'physician-next-step', 'being reviewed');
    await physician.waitForLoadState('networkidle');
    expect(await physician.content()).not.toContain(OPINION.conclusion);
    expect(await physician.content()).not.toContain(OPINION.answers[0]);

    const { page } = person('coordinator');
    await page.reload();
    const opinion = page.getByTestId('opinion');
    await waitForText(page, 'opinion-conclusion', OPINION.conclusion);
    const letter = opinion.getByTestId('opinion-letter');
    await letter.getByText(`Question 1: ${QUESTIONS[0]}`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await letter.textContent()).toContain(OPINION.answers[0]);
    await check(page, 'case-review', { show: page.getByTestId('opinion-section') });
    await page.getByRole('button', { name: 'Approve the report' }).click();
    await page.getByRole('button', { name: 'Yes, approve and release' }).click();
    await page.getByTestId('case-state').getByText('Report released').waitFor({ timeout: WAIT_MS });
    await caseIn('report-released');
    await until(async () => mailsTo('physician', 'A second-opinion report is ready for you').length === 1, 'the mail');
  }, 90_000);

  test('before the physician reads it, the patient sees the state in plain words and nothing of the opinion', async () => {
    const { page } = await signInAs('patient', '');
    await waitForText(page, 'patient-state', 'gone to your physician first');
    await page.waitForLoadState('networkidle');
    const html = await page.content();
    for (const text of [OPINION.conclusion, OPINION.answers[0], OPINION.recommendation]) {
      expect(html).not.toContain(text);
    }
    expect(await page.getByTestId('opinion-letter').count()).toBe(0);
    const report = await fhir(await appToken(page), `DiagnosticReport?based-on=ServiceRequest/${SR}`);
    expect(report.body.entry ?? []).toEqual([]);
    expect(mailsTo('patient', 'Your second opinion is ready')).toEqual([]);
    expect(await page.locator('input, textarea, select').count()).toBe(0);
    await check(page, 'patient-waiting', { screenshot: false });
    await noStaffControls('patient');
    await otherCaseHidden('patient');
  }, 60_000);

  test('the physician reads the opinion, which releases it to the patient, who then reads it', async () => {
    const { page } = person('physician');
    await page.reload();
    await waitForText(page, 'physician-next-step', 'The opinion is ready');
    // Nothing of it is fetched until they choose to read it: that reading is what releases it.
    await page.getByTestId('studies').locator('img').nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.waitForLoadState('networkidle');
    expect(await page.content()).not.toContain(OPINION.conclusion);
    expect(stateOf(await coordinationTask())).toBe('report-released');
    await page.getByRole('button', { name: 'Read the opinion' }).click();
    const letter = page.getByTestId('opinion-letter');
    await letter.getByText(OPINION.answers[1]).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await letter.textContent()).toContain(`Question 2: ${QUESTIONS[1]}${OPINION.answers[1]}`);
    expect(await letter.textContent()).toContain(OPINION.conclusion);
    await letter.getByTestId('pdf-frame').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-state').getByText('Report accessed').waitFor({ timeout: WAIT_MS });
    await caseIn('report-accessed');
    await check(page, 'physician-opinion', { show: page.getByTestId('opinion') });

    // The patient is e-mailed a link to their case, and reads the opinion there.
    const [mail] = await until(async () => {
      const mails = mailsTo('patient', 'Your second opinion is ready');
      return mails.length > 0 ? mails : undefined;
    }, 'the patient’s e-mail');
    // Quoted-printable: its soft line breaks undone.
    expect(mail?.raw.replace(/=\r?\n/g, '')).toContain(`${hub.url}/dashboard/cases/${SR}`);
    const { page: patient } = person('patient');
    await patient.goto(`${hub.url}/dashboard/cases/${SR}`);
    await waitForText(patient, 'patient-state', 'Your opinion is ready');
    const theirs = patient.getByTestId('opinion-letter');
    await theirs.getByText(OPINION.answers[0]).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await theirs.textContent()).toContain(`Question 1: ${QUESTIONS[0]}${OPINION.answers[0]}`);
    expect(await theirs.textContent()).toContain(OPINION.conclusion);
    await theirs.getByTestId('pdf-frame').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await patient.locator('input, textarea, select').count()).toBe(0);
    await check(patient, 'patient-opinion');
  }, 90_000);

  test('the coordinator’s worklist shows the case done, and the queues hold no dead letter', async () => {
    const { page } = person('coordinator');
    await page.getByRole('link', { name: 'Second Opinion Hub' }).click();
    const row = page.getByTestId('worklist').locator(`tr[data-case="${SR}"]`);
    await row.getByTestId('case-state').getByText('Report accessed').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByRole('navigation', { name: 'Operations' }).getByRole('link', { name: 'Queues' }).click();
    await page.waitForURL('**/dashboard/queues');
    await page
      .getByTestId('queue-counts')
      .locator('tr[data-queue="notifications"]')
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('dead-letters-empty').waitFor({ timeout: UI_TIMEOUT_MS });
    // Bull Board is the admins'.
    expect(await page.getByRole('button', { name: 'Open Bull Board' }).count()).toBe(0);
    await check(page, 'queues');
  }, 60_000);
});
