/**
 * The reviewers' workspace of the web app (issue 15) in Chromium, against a hub process with
 * AUTH_REQUIRED=true: a specialist answers their offers in "My tasks" (accepts one, declines another
 * with a reason), opens the case, reads the records PDF, scrolls a CT series and changes its window,
 * writes the opinion a section per question, finds the autosaved draft after a reload, asks the
 * physician a question (the case waits for the answer, then resumes) and submits the opinion;
 * a report the coordinators return shows their reason and is submitted again. A radiologist fills in
 * the pre-review report. And what they must not see or do: another specialist's case (not found, in
 * the app and at the API), approving their own report, any coordinator's control.
 *
 * Fixtures: test/support/reviewer-fixtures.ts (loaded by an EHR, studies by STOW-RS).
 */
import type { Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { signInPeople } from './support/login-flow.ts';
import { LETTER_LINK, SECTION } from './support/opinion-case.ts';
import { REVIEWER_CASES, reviewerFixtures, sendReviewerStudies, studyUids } from './support/reviewer-fixtures.ts';
import { fhirFetch } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings } from './support/web-app.ts';
import { ACCOUNTS, startWebHub } from './support/web-hub.ts';
import type { SignedIn, WebHub } from './support/web-hub.ts';

const OHIF = 'https://ohif.example.org/viewer';
const WAIT_MS = 30_000;
const UID_ROOT = `2.25.${process.pid}${Date.now()}`;
const { offer: OFFER, decline: DECLINE, other: OTHER, radiology: RADIOLOGY } = REVIEWER_CASES;

describe('the reviewers’ workspace in Chromium', () => {
  let hub: WebHub;
  let coordinator: string;
  let physician: string;
  const referenceNumbers = {
    offer: generateReferenceNumber(() => 1),
    decline: generateReferenceNumber(() => 2),
    other: generateReferenceNumber(() => 6),
    radiology: generateReferenceNumber(() => 7),
  };
  /** The specialist's browser, kept from one test to the next as a person's session would be. */
  let specialist: SignedIn;

  const asEhr = (resource: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.url}/fhir/${resource}`, { ...init, headers: { authorization: `Bearer ${hub.ehr}` } });
  const asCoordinator = (resource: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.url}/fhir/${resource}`, { ...init, headers: { authorization: `Bearer ${coordinator}` } });
  const stateOf = async (sr: string): Promise<any> => (await asEhr(`Task/coord-${sr}`)).body;
  const caseIn = (sr: string, state: string) =>
    until(
      async () => {
        const task = await stateOf(sr);
        return task.businessStatus.coding[0].code === state ? task : undefined;
      },
      `case ${sr} in ${state}`,
      WAIT_MS,
    );

  /** `email` signed in at `path` in a new browser context, with their authenticator code (staff). */
  async function signedIn(email: string, path: string): Promise<SignedIn> {
    const browsing = await hub.signIn(email, path, { viewport: { width: 1280, height: 800 } });
    await browsing.page.getByTestId('signed-in-role').waitFor({ timeout: UI_TIMEOUT_MS });
    return browsing;
  }

  /** At 800 px wide the page still fits: nothing wider than the window but what scrolls inside. */
  async function fitsNarrow(page: Page): Promise<void> {
    await page.setViewportSize({ width: 800, height: 800 });
    const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(overflow).toBe(0);
  }

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'rev',
      ehrClientId: 'web-rev-ehr',
      accounts: [ACCOUNTS.amelia, ACCOUNTS.rita],
      env: { OHIF_VIEWER_URL: OHIF },
    });
    const fixtures = await reviewerFixtures(referenceNumbers, new Date());
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await sendReviewerStudies(hub.url, hub.ehr, hub.dataDir, UID_ROOT);
    await hub.settled();
    ({ coordinator, physician } = await signInPeople(
      hub.place,
      {
        coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
        physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
      },
      { clientId: 'web-rev-api', redirectUri: 'http://127.0.0.1:5173/callback', scope: 'openid fhirUser user/*.cruds' },
    ));
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
  });

  test('My tasks: the specialist declines one offer with a reason and accepts another; no coordinator controls', async () => {
    specialist = await signedIn('amelia@specialists.example.org', '');
    const { page } = specialist;
    expect(new URL(page.url()).pathname).toBe('/dashboard');
    const open = page.getByTestId('my-open-tasks');
    const offered = open.locator(`tr[data-case="${OFFER}"]`);
    const declined = open.locator(`tr[data-case="${DECLINE}"]`);
    await offered.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await open.locator('tbody tr').count()).toBe(2);
    // Seven days from now hold five business days, whatever today is.
    expect(await offered.getByTestId('due-date').textContent()).toMatch(/5 business days left$/);
    expect(await offered.getByTestId('task-status').textContent()).toBe('Offered to you');
    // The home page is theirs, not the coordinators' worklist, and another's case is not listed.
    expect(await page.getByTestId('worklist').count()).toBe(0);
    expect(await page.getByLabel('State').count()).toBe(0);
    expect(await page.content()).not.toContain(referenceNumbers.other);
    expect(await axeFindings(page)).toEqual([]);
    await fitsNarrow(page);

    // Declining needs a reason; with one, the offer goes back to the hub's matching.
    await declined.getByRole('button', { name: `Decline case ${referenceNumbers.decline}` }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Decline the case' }).click();
    await dialog.getByText('Say why you decline the case.').waitFor({ timeout: UI_TIMEOUT_MS });
    await dialog.getByLabel('Reason for declining').fill('On leave until the end of the month');
    expect(await axeFindings(page)).toEqual([]);
    await dialog.getByRole('button', { name: 'Decline the case' }).click();
    await declined.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    const declinedTask = (await asEhr(`Task/offer-${DECLINE}`)).body;
    expect([declinedTask.status, declinedTask.statusReason.text]).toEqual([
      'rejected',
      'On leave until the end of the month',
    ]);
    expect(declinedTask.meta.source).toBe('urn:hub:actor:specialist:prac-s');
    await page.getByTestId('my-closed-tasks').locator(`tr[data-case="${DECLINE}"]`).waitFor({ timeout: UI_TIMEOUT_MS });

    // Accepted: the case goes to specialist review.
    await offered.getByRole('button', { name: `Accept case ${referenceNumbers.offer}` }).click();
    await offered.getByTestId('task-status').getByText('Accepted').waitFor({ timeout: UI_TIMEOUT_MS });
    await caseIn(OFFER, 'specialist-review');
    expect((await asEhr(`Task/offer-${OFFER}`)).body.status).toBe('accepted');

    // Nothing of a coordinator's on their pages: no moves, assignments, approvals or queues.
    for (const name of [/approve/i, /return/i, /assign/i, /waive/i, /cancel the case/i]) {
      expect([String(name), await page.getByRole('button', { name }).count()]).toEqual([String(name), 0]);
    }
    expect(specialist.problems).toEqual([]);
  });

  test('the case: its questions, the records PDF inline, a CT series scrolled and windowed, an OHIF link', async () => {
    const { page } = specialist;
    const frameRequests: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/frames/')) {
        frameRequests.push(decodeURIComponent(request.url()));
      }
    });
    await page.getByRole('link', { name: referenceNumbers.offer }).first().click();
    await page.waitForURL(`**/dashboard/cases/${OFFER}`);
    await page.getByTestId('case-questions').getByText('Is the nodule malignant?').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByTestId('case-questions').textContent()).toContain('Which treatment do you advise?');
    await page.getByTestId('case-state').getByText('Specialist review').waitFor({ timeout: UI_TIMEOUT_MS });

    // The records: the PDF shown in place, from bytes fetched with the token.
    await page.getByRole('tab', { name: 'Records' }).click();
    await page.getByRole('button', { name: 'Show Discharge summary' }).click();
    const frame = page.getByTestId('pdf-frame');
    await frame.waitFor({ timeout: UI_TIMEOUT_MS });
    const src = await frame.getAttribute('src');
    expect(src).toMatch(/^blob:/);
    // Chromium's PDF viewer renders it: the bytes were framed as application/pdf.
    await until(
      async () => page.frames().some((child) => child.url().startsWith('chrome-extension:')),
      'the PDF viewer in the frame',
    );
    // A record that calls itself a PDF but is HTML is not framed: a download of opaque bytes instead.
    await page.getByRole('button', { name: 'Show Outside letter' }).click();
    const notPdf = page.getByTestId('not-a-pdf');
    await notPdf.getByText('This document is not a PDF').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await notPdf.getByRole('link', { name: 'Download Outside letter' }).getAttribute('href')).toMatch(/^blob:/);
    expect(await page.getByTestId('pdf-frame').count()).toBe(1);
    expect(page.frames().some((child) => child.url().startsWith('blob:') && child.url() !== (src ?? ''))).toBe(false);
    expect(await page.title()).not.toBe('injected');

    // The imaging: two series with thumbnails; the first one's five images.
    await page.getByRole('tab', { name: 'Imaging' }).click();
    const uids = studyUids(UID_ROOT).offer;
    const seriesButtons = page.getByTestId('series-button');
    await seriesButtons.first().waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await seriesButtons.count()).toBe(2);
    await page.getByRole('img', { name: 'Thumbnail of Series 1: Series 1' }).waitFor({ timeout: UI_TIMEOUT_MS });
    const ohif = new URL((await page.getByTestId('ohif-link').getAttribute('href')) as string);
    expect(`${ohif.origin}${ohif.pathname}`).toBe(OHIF);
    expect(ohif.searchParams.get('StudyInstanceUIDs')).toBe(uids.study);

    const position = page.getByTestId('frame-position');
    const image = page.getByTestId('frame-image');
    const shows = async (instance: number, window?: string) => {
      await until(
        async () => {
          const shown = decodeURIComponent((await image.getAttribute('data-path')) ?? '');
          return (
            shown.includes(`/instances/${uids.instances[0]?.[instance - 1]}/frames/1/rendered`) &&
            (window === undefined ? !shown.includes('window=') : shown.includes(`window=${window}`))
          );
        },
        `instance ${instance}${window ? ` at window ${window}` : ''} on screen`,
        UI_TIMEOUT_MS,
      );
      expect(await image.getAttribute('src')).toMatch(/^blob:/);
    };
    await position.getByText(/^Image 1 of 5/).waitFor({ timeout: UI_TIMEOUT_MS });
    await shows(1);
    expect(await axeFindings(page)).toEqual([]);
    await fitsNarrow(page);

    // Arrow keys, then the mouse wheel, then End.
    await page.getByTestId('frame-stage').focus();
    await page.keyboard.press('ArrowDown');
    await position.getByText(/^Image 2 of 5/).waitFor({ timeout: UI_TIMEOUT_MS });
    await shows(2);
    await page.getByTestId('frame-stage').hover();
    await page.mouse.wheel(0, 100);
    await position.getByText(/^Image 3 of 5/).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.mouse.wheel(0, 100);
    await position.getByText(/^Image 4 of 5/).waitFor({ timeout: UI_TIMEOUT_MS });
    await shows(4);
    await page.getByTestId('frame-stage').focus();
    await page.keyboard.press('End');
    await position.getByText(/^Image 5 of 5/).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.keyboard.press('ArrowUp');
    await position.getByText(/^Image 4 of 5/).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(frameRequests.some((url) => url.includes('window='))).toBe(false);

    // Window/level: a CT preset, then a center and width typed in; each asks the hub for new pixels.
    await page.getByLabel('Window', { exact: true }).selectOption('lung');
    await shows(4, '-600,1500');
    expect(
      frameRequests.some((url) => url.includes(`${uids.instances[0]?.[3]}/frames/1/rendered?window=-600,1500`)),
    ).toBe(true);
    await page.getByLabel('Window center').fill('60');
    await page.getByLabel('Window width').fill('350');
    await shows(4, '60,350');
    await page.getByRole('button', { name: 'Reset the window' }).click();
    await shows(4);

    // The other series.
    await seriesButtons.nth(1).click();
    await position.getByText(/^Image 1 of 1/).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(specialist.problems).toEqual([]);
  });

  const answers = {
    reviewed: 'The CT of the chest (two series) and the discharge summary.',
    first: 'The nodule is most likely benign.',
    second: 'Follow-up imaging only.',
    discussion: 'The nodule has smooth margins & no growth.\n\nNothing suggests malignancy.',
    recommendation: 'A CT in twelve months.',
  };

  test('the opinion: a section per question, saved as typed, found after a reload, a question back, submitted', async () => {
    const { page } = specialist;
    await page.getByRole('tab', { name: 'Opinion' }).click();
    const questions = page.getByTestId('question-section');
    await questions.first().waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await questions.count()).toBe(2);
    expect(await questions.nth(0).textContent()).toContain('Is the nodule malignant?');
    expect(await questions.nth(1).textContent()).toContain('Which treatment do you advise?');
    const submit = page.getByRole('button', { name: 'Submit the opinion for review' });
    expect(await submit.isDisabled()).toBe(true);
    expect(await axeFindings(page)).toEqual([]);
    await fitsNarrow(page);

    await page.getByLabel('What was reviewed').fill(answers.reviewed);
    await page.getByLabel('Answer to question 1').fill(answers.first);
    const status = page.getByTestId('save-status');
    await page
      .locator('[data-testid="save-status"][data-status="saved"]')
      .getByText(/^Saved at/)
      .waitFor({
        timeout: UI_TIMEOUT_MS,
      });
    expect(await page.getByTestId('letter-problems').textContent()).toContain('Answer question 2.');
    await page.getByLabel('Answer to question 2').fill(answers.second);
    await page.getByLabel('Discussion').fill(answers.discussion);
    await page.getByLabel('Recommendation').fill(answers.recommendation);
    await page.locator('[data-testid="save-status"][data-status="saved"]').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await status.textContent()).toMatch(/^Saved at/);

    // Stored as the hub expects: a draft report naming its letter, a section per question.
    const drafts = (await asCoordinator(`DiagnosticReport?based-on=ServiceRequest/${OFFER}&status=preliminary`)).body;
    expect(drafts.entry).toHaveLength(1);
    const report = drafts.entry[0].resource;
    expect(report.resultsInterpreter).toEqual([{ reference: 'Practitioner/prac-s' }]);
    const letterId = report.extension.find((extension: any) => extension.url === LETTER_LINK).valueReference.reference;
    const letter = (await asCoordinator(letterId)).body;
    const sections = letter.section.map((section: any) => [
      section.code.coding.find((coding: any) => coding.system === SECTION).code,
      section.extension?.[0]?.valueUnsignedInt,
    ]);
    expect(sections).toEqual([
      ['reviewed', undefined],
      ['answer', 1],
      ['answer', 2],
      ['discussion', undefined],
      ['recommendation', undefined],
    ]);
    expect(letter.section[0].entry[0]).toEqual({ reference: `ServiceRequest/${OFFER}` });
    expect(letter.section[3].text.div).toContain('<p>The nodule has smooth margins &amp; no growth.</p><p>');

    // A reload finds the draft as it was left.
    await page.reload();
    await page.getByLabel('Answer to question 2').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByLabel('What was reviewed').inputValue()).toBe(answers.reviewed);
    expect(await page.getByLabel('Answer to question 1').inputValue()).toBe(answers.first);
    expect(await page.getByLabel('Answer to question 2').inputValue()).toBe(answers.second);
    expect(await page.getByLabel('Discussion').inputValue()).toBe(answers.discussion);
    expect(await page.getByLabel('Recommendation').inputValue()).toBe(answers.recommendation);

    // A question to the physician: the case waits for the answer, and submitting waits with it.
    await page.getByLabel('Ask the referring physician').fill('Was a PET-CT done before the biopsy?');
    await page.getByRole('button', { name: 'Send the question' }).click();
    await page.getByTestId('question-back').getByText('Waiting for the answer').waitFor({ timeout: UI_TIMEOUT_MS });
    await caseIn(OFFER, 'awaiting-information');
    await page.getByText('The case waits for the physician’s answer').waitFor({ timeout: WAIT_MS });
    expect(await submit.isDisabled()).toBe(true);
    const asked = (await asEhr(`Communication?based-on=ServiceRequest/${OFFER}`)).body.entry[0].resource;
    expect(asked).toMatchObject({
      partOf: [{ reference: `Task/coord-${OFFER}` }],
      recipient: [{ reference: 'Practitioner/prac-phys' }],
      payload: [{ contentString: 'Was a PET-CT done before the biopsy?' }],
    });
    const answered = await fhirFetch(`${hub.url}/fhir/Communication`, {
      method: 'POST',
      headers: { authorization: `Bearer ${physician}` },
      body: {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: `ServiceRequest/${OFFER}` }],
        inResponseTo: [{ reference: `Communication/${asked.id}` }],
        payload: [{ contentString: 'No PET-CT was done.' }],
      },
    });
    expect(answered.status).toBe(201);
    await caseIn(OFFER, 'specialist-review');
    await page
      .getByTestId('answer-back')
      .getByText(/No PET-CT was done\./)
      .waitFor({ timeout: WAIT_MS });
    await page.getByRole('button', { name: 'Submit the opinion for review', disabled: false }).waitFor({
      timeout: WAIT_MS,
    });

    // Submitted: the hub checks the letter and opens the coordinators' approval.
    await page.getByRole('button', { name: 'Submit the opinion for review' }).click();
    await page.getByTestId('submitted').waitFor({ timeout: WAIT_MS });
    await caseIn(OFFER, 'report-review');
    const approval = (await asCoordinator(`Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/${OFFER}`)).body
      .entry[0].resource;
    expect([approval.status, approval.focus.reference]).toEqual(['requested', `DiagnosticReport/${report.id}`]);
    expect(specialist.problems).toEqual([]);
  });

  test('a returned report shows the coordinators’ reason and is submitted again; its author cannot approve it', async () => {
    const { page } = specialist;
    const approvalOf = async () =>
      (await asCoordinator(`Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/${OFFER}`)).body.entry[0]
        .resource;
    const approval = await approvalOf();
    const returned = await asCoordinator(`Task/${approval.id}`, {
      method: 'PUT',
      body: {
        ...approval,
        meta: undefined,
        status: 'rejected',
        statusReason: { text: 'Cite the biopsy in the summary.' },
      },
    });
    expect(returned.status).toBe(200);
    await caseIn(OFFER, 'specialist-review');

    await page.reload();
    await page
      .getByTestId('returned-reason')
      .getByText(/Cite the biopsy in the summary\./)
      .waitFor({
        timeout: UI_TIMEOUT_MS,
      });
    expect(await axeFindings(page)).toEqual([]);
    await page.getByLabel('What was reviewed').fill(`${answers.reviewed} The biopsy report of 2 November.`);
    await page
      .locator('[data-testid="save-status"][data-status="saved"]')
      .getByText(/^Saved at/)
      .waitFor({
        timeout: UI_TIMEOUT_MS,
      });
    await page.getByRole('button', { name: 'Submit the opinion for review' }).click();
    await page.getByTestId('submitted').waitFor({ timeout: WAIT_MS });
    await caseIn(OFFER, 'report-review');
    const reopened = await approvalOf();
    expect(reopened.status).toBe('requested');
    const letterId = (await asCoordinator(reopened.focus.reference)).body.extension[0].valueReference.reference;
    expect((await asCoordinator(letterId)).body.section[0].text.div).toContain('The biopsy report of 2 November.');

    // No approval control in the app; with the app's token at the API, the hub refuses it.
    expect(await page.getByRole('button', { name: /approve/i }).count()).toBe(0);
    const token = await appToken(page);
    const selfApproved = await fhirFetch(`${hub.url}/fhir/Task/${reopened.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: { ...reopened, meta: undefined, status: 'completed' },
    });
    expect(selfApproved.status).toBe(200);
    const refused = await until(
      async () => {
        const task = await stateOf(OFFER);
        return /coordinator/.test(task.statusReason?.text ?? '') ? task : undefined;
      },
      'the refusal of the self-approval',
      WAIT_MS,
    );
    expect(refused.businessStatus.coding[0].code).toBe('report-review');
    const released = await asEhr(`DiagnosticReport?based-on=ServiceRequest/${OFFER}&status=final`);
    expect(released.body.total ?? released.body.entry?.length ?? 0).toBe(0);
    expect(specialist.problems).toEqual([]);
  });

  test('a specialist sees nothing of a case not offered to them, in the app or at the API', async () => {
    const { page } = specialist;
    await page.goto(`${hub.url}/dashboard/cases/${OTHER}`);
    await page.getByTestId('case-not-found').waitFor({ timeout: UI_TIMEOUT_MS });
    const html = await page.content();
    expect(html).not.toContain('Lindqvist');
    expect(html).not.toContain(referenceNumbers.other);
    const token = await appToken(page);
    const as = (resource: string) =>
      fhirFetch(`${hub.url}/fhir/${resource}`, { headers: { authorization: `Bearer ${token}` } });
    for (const resource of [
      `ServiceRequest/${OTHER}`,
      `Task/coord-${OTHER}`,
      `Task/offer-${OTHER}`,
      `Patient/pat-${OTHER}`,
      `QuestionnaireResponse/qr-${OTHER}`,
    ]) {
      expect([resource, (await as(resource)).status]).toEqual([resource, 404]);
    }
    // Their own case's questions they read: the request's supportingInfo makes them the case's.
    expect((await as(`QuestionnaireResponse/qr-${OFFER}`)).status).toBe(200);
    expect((await as(`Task?based-on=ServiceRequest/${OTHER}`)).body.entry ?? []).toEqual([]);
    await specialist.context.close();
  });

  test('a radiologist fills in the pre-review report; the case goes on to matching', async () => {
    const radiologist = await signedIn('rita@radiology.example.org', '');
    const { page } = radiologist;
    const row = page.getByTestId('my-open-tasks').locator(`tr[data-case="${RADIOLOGY}"]`);
    await row.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await row.textContent()).toContain('Radiology pre-review');
    expect(await row.getByTestId('task-status').textContent()).toBe('Assigned to you');
    await row.getByRole('link', { name: referenceNumbers.radiology }).first().click();
    await page.waitForURL(`**/dashboard/cases/${RADIOLOGY}`);
    await page.getByTestId('case-questions').waitFor({ timeout: UI_TIMEOUT_MS });
    // A radiologist writes no opinion.
    expect(await page.getByRole('tab', { name: 'Opinion' }).count()).toBe(0);

    await page.getByRole('tab', { name: 'Radiology pre-review report' }).click();
    const submit = page.getByRole('button', { name: 'Submit the radiology pre-review report' });
    await submit.click();
    await page.getByText('Write the findings.').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await axeFindings(page)).toEqual([]);
    await page.getByLabel('Adequate with limitations').check();
    await page.getByLabel('Findings').fill('A 9 mm nodule in the right upper lobe; slice thickness 5 mm.');
    await page.getByLabel('Impression').fill('Adequate for review; thin slices would help.');
    const study = page.getByRole('checkbox');
    expect(await study.count()).toBe(1);
    expect(await study.isChecked()).toBe(true);
    await submit.click();
    await page.getByTestId('pre-review-done').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-report').getByText('Adequate for review; thin slices would help.').waitFor({
      timeout: UI_TIMEOUT_MS,
    });

    const task = (await asEhr(`Task/pre-${RADIOLOGY}`)).body;
    expect(task.status).toBe('completed');
    const report = (await asEhr(task.output[0].valueReference.reference)).body;
    expect(report).toMatchObject({
      status: 'final',
      basedOn: [{ reference: `ServiceRequest/${RADIOLOGY}` }],
      performer: [{ reference: 'Practitioner/prac-r' }],
      conclusion: 'Adequate for review; thin slices would help.',
      conclusionCode: [{ coding: [{ system: 'urn:hub:pre-review-adequacy', code: 'limited' }] }],
    });
    expect(report.imagingStudy).toHaveLength(1);
    expect(report.meta.source).toBe('urn:hub:actor:radiologist:prac-r');
    await caseIn(RADIOLOGY, 'matching');
    // Nor may the radiologist read the specialist's case.
    const token = await appToken(page);
    const other = await fhirFetch(`${hub.url}/fhir/QuestionnaireResponse/qr-${OFFER}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(other.status).toBe(404);
    expect(radiologist.problems).toEqual([]);
    await radiologist.context.close();
  });

  test('the hub tells the app where OHIF is, with no token and nothing else', async () => {
    const settings = await fetch(`${hub.url}/dashboard/settings.json`);
    expect(settings.status).toBe(200);
    expect(await settings.json()).toEqual({ ohifViewerUrl: OHIF });
  });
});
