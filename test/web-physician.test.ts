/**
 * The referring physician's pages of the web app in Chromium, against a hub process with
 * AUTH_REQUIRED=true and its workers on PostgreSQL and Redis: their case with what it asks of them;
 * a patient's CD uploaded as a folder (55 DICOM files, a DICOMDIR, files that are not DICOM and one
 * file the hub refuses) with STOW-RS in batches, the progress shown and the files not stored listed
 * with the reason; a PDF record; the specialist's question answered; the released opinion read, which
 * is what moves the case to report-accessed; a clarification asked. And what they must not reach:
 * another physician's case, by URL or at the API, and the opinion merely by opening the page.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import type { Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { writePatientCd } from './support/dicom/patient-cd.ts';
import type { PatientCd } from './support/dicom/patient-cd.ts';
import { signInPeople } from './support/login-flow.ts';
import { opinionCaseFixtures } from './support/opinion-case.ts';
import { fhirFetch } from './support/test-hub.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings } from './support/web-app.ts';
import { ACCOUNTS, practitioners, startWebHub } from './support/web-hub.ts';
import type { WebHub } from './support/web-hub.ts';
import { OPINION, askPhysician, caseState, inState, releaseOpinion } from './support/web-opinion.ts';
import type { Parties } from './support/web-opinion.ts';

const PHYSICIAN = ACCOUNTS.paul.email;
const MINE = 'sr-phys-mine';
const OTHER = 'sr-phys-other';
const CT = 30;
const MR = 25;

async function recordsPdf(pages: number): Promise<Buffer> {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let page = 1; page <= pages; page++) {
    pdf.addPage([612, 792]).drawText(`Discharge summary, page ${page}`, { x: 72, y: 720, size: 14, font });
  }
  return Buffer.from(await pdf.save());
}

describe('the referring physician’s pages in Chromium', () => {
  let hub: WebHub;
  let workDir: string;
  let parties: Parties;
  let cd: PatientCd;
  const referenceNumbers = { mine: generateReferenceNumber(() => 4), other: generateReferenceNumber(() => 6) };

  beforeAll(async () => {
    workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hub-web-phys-files-'));
    hub = await startWebHub({
      name: 'phys',
      ehrClientId: 'web-phys-ehr',
      accounts: [ACCOUNTS.paul],
    });
    const people = await signInPeople(
      hub.place,
      {
        specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
        coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
      },
      {
        clientId: 'web-phys-api',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      },
    );
    parties = { url: hub.url, ...people };
    // Due a month from now, whatever the date: no reminder or escalation fires during the suite.
    const due = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys', 'prac-other', 'prac-s'),
      ...[
        ...opinionCaseFixtures(MINE, referenceNumbers.mine),
        ...opinionCaseFixtures(OTHER, referenceNumbers.other),
      ].map((resource) =>
        resource.resourceType === 'ServiceRequest' && resource.id === OTHER
          ? { ...resource, requester: { reference: 'Practitioner/prac-other' } }
          : resource.resourceType === 'Patient' && resource.id === `pat-${OTHER}`
            ? { ...resource, name: [{ given: ['Henrik'], family: 'Lindqvist' }] }
            : String(resource.id).startsWith('offer-')
              ? { ...resource, restriction: { period: { end: due } } }
              : resource,
      ),
    ];
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await hub.settled();
    expect(await caseState(parties, MINE)).toBe('specialist-review');
    cd = await writePatientCd(path.join(workDir, 'PATIENT_CD'), {
      ctCount: CT,
      mrCount: MR,
      patientId: 'HOSP-MRN-4711',
      patientName: 'Quintero^Olivia',
      birthDate: '19640212',
    });
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
    await fsp.rm(workDir, { recursive: true, force: true });
  });

  /** A new browser context, signed in as the physician on their case's page. */
  async function openCase(sr = MINE): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
    const { context, page, problems } = await hub.signIn(PHYSICIAN, `/cases/${sr}`);
    await page.waitForURL(`**/dashboard/cases/${sr}`);
    return { page, problems, close: () => context.close() };
  }
  const asPhysician = async (page: Page, reference: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.url}/fhir/${reference}`, {
      ...init,
      headers: { authorization: `Bearer ${await appToken(page)}` },
    });

  test('uploads a patient’s CD folder and a PDF: batches with progress, the refused files with their reasons, all tied to the case', async () => {
    const { page, problems, close } = await openCase();
    await page.getByTestId('physician-next-step').getByText('Nothing for now').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-patient').getByText('Olivia Quintero').waitFor({ timeout: UI_TIMEOUT_MS });
    // Each STOW-RS request waits a little on its way, so the progress between batches can be seen.
    const stows: string[] = [];
    await page.route('**/dicomweb/studies?**', async (route) => {
      stows.push(route.request().url());
      await new Promise((resolve) => setTimeout(resolve, 400));
      await route.continue();
    });

    await page.getByLabel('The disc’s folder').setInputFiles(cd.dir);
    const selection = page.getByTestId('upload-selection');
    await selection.getByText(`${CT + MR + 1} DICOM files`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await selection.textContent()).toContain('3 files left out');
    await page.getByRole('button', { name: `Send ${CT + MR + 1} files` }).click();
    // Part-way: some batches sent, not all.
    await page
      .getByTestId('upload-progress-text')
      .getByText(new RegExp(`^(10|20|30|40|50) of ${CT + MR + 1} files sent`))
      .waitFor({ timeout: UI_TIMEOUT_MS });
    const done = page.getByTestId('upload-done');
    await done.waitFor({ timeout: 60_000 });
    expect(await done.textContent()).toContain(`${CT + MR} of ${CT + MR + 1} DICOM files stored with the case`);
    expect(await page.getByTestId('upload-progress-text').textContent()).toMatch(
      new RegExp(`^${CT + MR + 1} of ${CT + MR + 1} files sent`),
    );
    // Batches of at most 10 files, each naming the case.
    expect(stows).toHaveLength(Math.ceil((CT + MR + 1) / 10));
    expect(stows.every((url) => url.endsWith(`/dicomweb/studies?case=${MINE}`))).toBe(true);

    // Every file not stored, with the reason: the browser's checks and the hub's FailedSOPSequence.
    const refused = page.getByTestId('upload-refused');
    const reasonOf = async (file: string): Promise<string> =>
      (await refused.locator(`tr[data-path="PATIENT_CD/${file}"]`).textContent()) ?? '';
    expect(await refused.locator('tbody tr').count()).toBe(4);
    expect(await reasonOf('DICOMDIR')).toContain('DICOMDIR');
    expect(await reasonOf('README.TXT')).toContain('Not a DICOM file');
    expect(await reasonOf('VIEWER/AUTORUN.INF')).toContain('Not a DICOM file');
    expect(await reasonOf(cd.inconsistent.path)).toContain('could not read it as DICOM');

    // The studies are the case's: on the page, at the API, and in the hub's index.
    const studies = page.getByTestId('studies');
    await studies.locator(`tr[data-instances="${CT}"]`).waitFor({ timeout: 30_000 });
    await studies.locator(`tr[data-instances="${MR}"]`).waitFor({ timeout: 30_000 });
    const imaging = await asPhysician(page, `ImagingStudy?based-on=ServiceRequest/${MINE}`);
    expect(imaging.body.entry.map((entry: any) => entry.resource.numberOfInstances).sort()).toEqual([MR, CT]);
    expect(imaging.body.entry.every((entry: any) => entry.resource.subject.reference === `Patient/pat-${MINE}`)).toBe(
      true,
    );
    const index = await hub.db.query<{ matched_service_request_id: string; n: number }>(
      'SELECT matched_service_request_id, number_of_instances AS n FROM dicom_study WHERE study_instance_uid = ANY ($1::text[]) ORDER BY n',
      [cd.studyUids],
    );
    expect(index.rows).toEqual([
      { matched_service_request_id: MINE, n: MR },
      { matched_service_request_id: MINE, n: CT },
    ]);

    // A PDF record, and a file that only calls itself one.
    await fsp.writeFile(path.join(workDir, 'discharge-summary.pdf'), await recordsPdf(3));
    await fsp.writeFile(path.join(workDir, 'scan.pdf'), 'not really a PDF');
    await page
      .getByLabel('PDF records')
      .setInputFiles([path.join(workDir, 'discharge-summary.pdf'), path.join(workDir, 'scan.pdf')]);
    await page.getByLabel('What they are (optional)').fill('Discharge summary');
    await page.getByRole('button', { name: 'Upload 2 PDFs' }).click();
    const outcomes = page.getByTestId('records-upload-outcomes');
    await outcomes.getByText('discharge-summary.pdf: Stored with the case').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await outcomes.textContent()).toContain('scan.pdf: Not a PDF');
    await page
      .getByTestId('record')
      .filter({ hasText: 'discharge-summary' })
      .getByText('3 pages')
      .waitFor({ timeout: 30_000 });
    const records = await asPhysician(page, `DocumentReference?related=ServiceRequest/${MINE}`);
    expect(records.body.entry.map((entry: any) => entry.resource.type.text)).toEqual(['Discharge summary']);
    await page.getByTestId('studies').locator('img').nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await axeFindings(page)).toEqual([]);
    expect(problems).toEqual([]);
    await close();
  }, 120_000);

  test('answers the specialist’s question, which resumes the review', async () => {
    await askPhysician(parties, MINE, 'Was a PET-CT done before the biopsy?');
    const { page, problems, close } = await openCase();
    await page.getByTestId('physician-next-step').getByText('asked you a question').waitFor({ timeout: UI_TIMEOUT_MS });
    const request = page.getByTestId('information-request');
    await request.getByText('Was a PET-CT done before the biopsy?').waitFor({ timeout: UI_TIMEOUT_MS });
    // Once the page has settled: the studies' previews drawn.
    await page.getByTestId('studies').locator('img').nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await axeFindings(page)).toEqual([]);
    await page.getByLabel('Your answer to question 1').fill('No PET-CT was done.');
    await page.getByRole('button', { name: 'Send the answer' }).click();
    await request.getByText('No PET-CT was done.').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-state').getByText('Specialist review').waitFor({ timeout: 30_000 });
    expect(await caseState(parties, MINE)).toBe('specialist-review');
    const answers = await asPhysician(page, `Communication?based-on=ServiceRequest/${MINE}&_count=50`);
    const answer = answers.body.entry.map((entry: any) => entry.resource).find((c: any) => c.inResponseTo);
    expect(answer.meta.source).toBe('urn:hub:actor:referring-physician:prac-phys');
    expect(problems).toEqual([]);
    await close();
  }, 90_000);

  test('reads the released opinion, and only reading it moves the case to report-accessed; then asks a clarification', async () => {
    const { reportId } = await releaseOpinion(parties, MINE);
    const { page, problems, close } = await openCase();
    await page.getByTestId('physician-next-step').getByText('The opinion is ready').waitFor({ timeout: UI_TIMEOUT_MS });
    const read = page.getByRole('button', { name: 'Read the opinion' });
    await read.waitFor({ timeout: UI_TIMEOUT_MS });
    // The page is open and has loaded everything else: nothing of the opinion was read yet.
    await page.getByTestId('materials').getByTestId('studies').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.waitForLoadState('networkidle');
    expect(await page.content()).not.toContain(OPINION.conclusion);
    expect((await hub.db.query('SELECT 1 FROM report_read WHERE case_id = $1', [MINE])).rows).toEqual([]);
    expect(await caseState(parties, MINE)).toBe('report-released');

    await read.click();
    const letter = page.getByTestId('opinion-letter');
    await letter.getByText(OPINION.conclusion).waitFor({ timeout: UI_TIMEOUT_MS });
    await letter.getByText(OPINION.recommendation).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await letter.textContent()).toContain(`Question 1: Is the nodule malignant?${OPINION.answer1}`);
    expect(await letter.textContent()).toContain(`Question 2: Which treatment do you advise?${OPINION.answer2}`);
    expect(await letter.textContent()).toContain(OPINION.recommendation);
    expect(await letter.textContent()).toContain('Amelia Abernathy');
    await letter.getByTestId('pdf-frame').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-state').getByText('Report accessed').waitFor({ timeout: 30_000 });
    await inState(parties, MINE, 'report-accessed');

    await page.getByLabel('Your question about the opinion').fill('Should the CT be contrast-enhanced?');
    await page.getByRole('button', { name: 'Ask the specialist' }).click();
    await page
      .getByTestId('clarification')
      .getByText('Should the CT be contrast-enhanced?')
      .waitFor({ timeout: UI_TIMEOUT_MS });
    const messages = await asPhysician(page, `Communication?based-on=ServiceRequest/${MINE}&_count=50`);
    const clarification = messages.body.entry
      .map((entry: any) => entry.resource)
      .find((c: any) => c.about?.[0]?.reference === `DiagnosticReport/${reportId}`);
    expect(clarification.payload[0].contentString).toBe('Should the CT be contrast-enhanced?');
    expect(clarification.meta.source).toBe('urn:hub:actor:referring-physician:prac-phys');
    await page.getByTestId('studies').locator('img').nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await axeFindings(page)).toEqual([]);
    expect(problems).toEqual([]);
    await close();
  }, 120_000);

  test('another physician’s case: not found by URL, refused at the API, nothing stored into it', async () => {
    const { page, problems, close } = await openCase(OTHER);
    await page.getByTestId('case-not-found').waitFor({ timeout: UI_TIMEOUT_MS });
    const html = await page.content();
    expect(html).not.toContain('Lindqvist');
    expect(html).not.toContain(referenceNumbers.other);
    expect(await page.getByTestId('imaging-upload').count()).toBe(0);
    expect((await asPhysician(page, `ServiceRequest/${OTHER}`)).status).toBe(404);
    expect((await asPhysician(page, `Task/coord-${OTHER}`)).status).toBe(404);
    const message = await asPhysician(page, 'Communication', {
      method: 'POST',
      body: {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: `ServiceRequest/${OTHER}` }],
        payload: [{ contentString: 'hello' }],
      },
    });
    expect(message.status).toBe(403);
    const stow = await fetch(`${hub.url}/dicomweb/studies?case=${OTHER}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await appToken(page)}`,
        'content-type': 'multipart/related; type="application/dicom"; boundary=x',
      },
      body: '--x\r\nContent-Type: application/dicom\r\n\r\n\r\n--x--\r\n',
    });
    expect(stow.status).toBe(404);
    // Their own worklist holds their case alone.
    await page.getByRole('link', { name: 'Second Opinion Hub' }).click();
    await page.locator(`tr[data-case="${MINE}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.locator(`tr[data-case="${OTHER}"]`).count()).toBe(0);
    expect(problems).toEqual([]);
    await close();
  });
});
