/**
 * The case page's coordination sections in a real browser (Chromium, playwright-core) against a hub
 * process with AUTH_REQUIRED=true, its workers on PostgreSQL and Redis: eligibility with its reasons,
 * the quote with its total, and the materials expected against arrived.
 *
 * An EHR refers a New Hampshire patient (eligible, without radiology review) with five questions,
 * planning imaging, records and a biopsy; the hub's intake screens and quotes the case. A PACS stores
 * a real DICOM study (pydicom's CT_small, with the case's accession number) by STOW-RS and the EHR a
 * three-page PDF; the hub's jobs tie both to the case. The coordinator sees the screening's reason,
 * each quote line and the total, the study's thumbnail and the record's pages, and what is missing;
 * corrects the question count with a reason (the hub re-quotes, and records the reason and who), and
 * waives the pathology. The referring physician opens the same case (whichever page the app gives
 * their role) without those controls, and the hub refuses the same writes made with their token.
 */
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PDFDocument } from 'pdf-lib';
import type { Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { orderDetail } from './support/case-fixtures.ts';
import { runDcmtk } from './support/dicom/test-peer.ts';
import { stow } from './support/stow.ts';
import { fhirFetch } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings } from './support/web-app.ts';
import { ACCOUNTS, practitioners, startWebHub } from './support/web-hub.ts';
import type { SignedIn, WebHub } from './support/web-hub.ts';

type Json = any;

const SR = 'sr-coordination';
const ACCESSION = 'ACC-COORD-1';
const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
const OVERRIDE = 'urn:hub:extension:question-count-override';
const QUESTIONS = [
  'Is the nodule in the right upper lobe malignant?',
  'Should the nodule be biopsied?',
  'Does the prior CT show growth of the nodule?',
  'Would you recommend a PET-CT?',
  'Which surgeon would you refer the patient to?',
];
const CORRECTION = 'Question 3 asks about two separate prior studies.';
const WAIVER = 'The biopsy slides are held abroad and cannot be sent.';

describe('the case page’s eligibility, quote and materials in Chromium', () => {
  let hub: WebHub;
  /** The coordinator's browser, signed in once for the whole journey (a TOTP code is used once). */
  let coordinator: SignedIn;
  const referenceNumber = generateReferenceNumber(() => 7);

  const fhir = (token: string, method: string, path: string, body?: unknown) =>
    fhirFetch(`${hub.url}/fhir/${path}`, { method, body, headers: { authorization: `Bearer ${token}` } });
  const taskOf = async (identifier: string): Promise<Json> => {
    const found = await fhir(
      hub.ehr,
      'GET',
      `Task?identifier=${encodeURIComponent(`urn:hub:case-resource|${identifier}`)}`,
    );
    return found.body.entry?.[0]?.resource;
  };
  const stateOf = (task: Json): string | undefined => task?.businessStatus?.coding?.[0]?.code;

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'coord',
      ehrClientId: 'coord-ehr',
      accounts: [ACCOUNTS.cora, ACCOUNTS.paul],
    });

    // The referral, as an EHR sends it: the physician, the patient (resident of New Hampshire), the
    // questions and the active request planning one imaging site, 60 pages of records and a biopsy.
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys'),
      {
        resourceType: 'Patient',
        id: `pat-${SR}`,
        identifier: [{ system: 'urn:hub:reference-number', value: referenceNumber }],
        name: [{ given: ['Olivia'], family: 'Quintero' }],
        birthDate: '1961-04-12',
        address: [{ use: 'home', city: 'Concord', state: 'NH', postalCode: '03301', country: 'US' }],
      },
      {
        resourceType: 'QuestionnaireResponse',
        id: `qr-${SR}`,
        status: 'completed',
        subject: { reference: `Patient/pat-${SR}` },
        item: [{ linkId: 'question', answer: QUESTIONS.map((valueString) => ({ valueString })) }],
      },
      {
        resourceType: 'ServiceRequest',
        id: SR,
        status: 'active',
        intent: 'order',
        identifier: [{ system: 'urn:test:accession', value: ACCESSION }],
        subject: { reference: `Patient/pat-${SR}` },
        // R4 prr-1: orderDetail only with a code.
        code: { text: 'Second opinion' },
        requester: { reference: 'Practitioner/prac-phys' },
        supportingInfo: [{ reference: `QuestionnaireResponse/qr-${SR}` }],
        orderDetail: orderDetail({ imagingSites: 1, recordPages: 60, biopsySites: 1 }),
      },
    ];
    const loaded = await hub.load(hub.ehr, fixtures);
    expect({ status: loaded.status, issue: loaded.body.issue }).toEqual({ status: 200, issue: undefined });
    await hub.settled();
    expect(stateOf(await taskOf(`${SR}/coordination`))).toBe('submitted');

    // The material: a three-page PDF of records, and a CT study with the request's accession number.
    const pdf = await PDFDocument.create();
    for (let page = 0; page < 3; page += 1) {
      pdf.addPage([612, 792]).drawText(`Discharge summary, page ${page + 1}`, { x: 72, y: 700 });
    }
    const binary = await fhir(hub.ehr, 'POST', 'Binary', {
      resourceType: 'Binary',
      contentType: 'application/pdf',
      data: Buffer.from(await pdf.save()).toString('base64'),
    });
    expect(binary.status).toBe(201);
    const document = await fhir(hub.ehr, 'POST', 'DocumentReference', {
      resourceType: 'DocumentReference',
      status: 'current',
      type: { text: 'Discharge summary' },
      subject: { reference: `Patient/pat-${SR}` },
      date: new Date().toISOString(),
      content: [
        { attachment: { contentType: 'application/pdf', url: `Binary/${binary.body.id}`, title: 'Discharge summary' } },
      ],
      context: { related: [{ reference: `ServiceRequest/${SR}` }] },
    });
    expect(document.status).toBe(201);
    const study = join(hub.dataDir, 'ct.dcm');
    await copyFile(CT_SMALL, study);
    const modified = await runDcmtk('dcmodify', [
      '-nb',
      '-gst',
      '-gse',
      '-gin',
      '-i',
      `(0008,0050)=${ACCESSION}`,
      study,
    ]);
    expect({ code: modified.code, output: modified.output }).toEqual({ code: 0, output: '' });
    const stored = await stow(hub.url, [await readFile(study)], { authorization: `Bearer ${hub.ehr}` });
    expect(stored.status).toBe(200);
    await hub.settled();
    await until(
      async () => (await taskOf(`${SR}/expect-material/imaging`))?.status === 'completed',
      'the study to be matched to the case',
      30_000,
    );
  }, 150_000);

  afterAll(async () => {
    await coordinator?.context.close();
    await hub?.stop();
  });

  const text = async (page: Page, testId: string): Promise<string> =>
    (await page.getByTestId(testId).first().textContent()) ?? '';
  /** axe-core's findings once the page has settled (no section still loading). */
  const settledAxe = async (page: Page) => {
    await until(
      async () => (await page.locator('.mantine-Loader-root').count()) === 0,
      'the page to load',
      UI_TIMEOUT_MS,
    );
    return axeFindings(page);
  };
  /** Waits for `testId` to show `expected`; failing, says what the page's main area showed instead. */
  const waitForText = async (page: Page, testId: string, expected: string | RegExp): Promise<void> => {
    try {
      await page
        .getByTestId(testId)
        .filter({ hasText: expected })
        .first()
        .waitFor({ timeout: UI_TIMEOUT_MS * 2 });
    } catch (err) {
      const shown = await page
        .locator('main')
        .textContent({ timeout: 1000 })
        .catch(() => '(no main)');
      throw new Error(`${testId} never showed ${String(expected)}; the page showed: ${shown}`, { cause: err });
    }
  };

  test('the coordinator sees the screening’s reasons, the quote and its total, the materials with a thumbnail, and corrects the question count', async () => {
    coordinator = await hub.signIn('cora@hub.example.org', `/cases/${SR}`, { viewport: { width: 1280, height: 800 } });
    const { page } = coordinator;
    await page.waitForURL(`**/dashboard/cases/${SR}`);

    // Eligibility: New Hampshire's rule, with its wording and the reviews it leaves.
    await waitForText(page, 'eligibility-outcome', 'Eligible with restrictions');
    expect(await text(page, 'eligibility-reasons')).toContain('New Hampshire');
    expect(await text(page, 'eligibility-reasons')).toContain('no-radiology');
    expect(await text(page, 'eligibility-reviews')).toContain('Radiology review not allowed');

    // The quote: opinion $750, one question over the four included $100, one imaging site $375, the
    // planned biopsy $425; the three pages of records are within those included.
    await waitForText(page, 'quote-total', '$1,650.00');
    const lines = page.getByTestId('quote-lines');
    const line = (fee: string) => lines.locator(`tr[data-fee="${fee}"]`);
    expect(await line('extra-question').getByTestId('quote-quantity').textContent()).toBe('1');
    expect(await line('biopsy-review').textContent()).toContain('Planned');
    expect(await line('imaging-review').textContent()).toContain('Billable');
    expect(await lines.locator('tr[data-fee="record-pages"]').count()).toBe(0);
    expect(await text(page, 'quote-questions')).toContain('Questions billed: 5');

    // The materials: the study with its thumbnail rendered by the hub, the record's pages, the biopsy missing.
    const imaging = page.getByTestId('material-imaging');
    expect(await imaging.getByTestId('material-status').textContent()).toBe('Arrived');
    const thumbnail = imaging.locator('img[alt^="Thumbnail of the"]');
    await thumbnail.waitFor({ timeout: UI_TIMEOUT_MS });
    await until(
      async () => (await thumbnail.evaluate((img: Json) => img.complete && img.naturalWidth)) > 0,
      'the thumbnail to load',
      UI_TIMEOUT_MS,
    );
    expect(await thumbnail.getAttribute('src')).toMatch(/^blob:/);
    const records = page.getByTestId('material-records');
    await records.getByTestId('record-pages').filter({ hasText: '3 pages' }).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await records.getByTestId('material-expected').textContent()).toContain('60 pages');
    expect(await page.getByTestId('material-pathology').getByTestId('material-status').textContent()).toBe('Expected');
    expect(await text(page, 'materials-missing')).toContain('Pathology: the pathology material');
    // Not yet accepted: the physician's plan still decides what is expected, so nothing is waived yet.
    expect(await page.getByRole('button', { name: /Waive the/ }).count()).toBe(0);

    // The coordinator accepts the case (its state move, made with the token the app holds).
    const token = await appToken(page);
    const task = await taskOf(`${SR}/coordination`);
    const accept = await fhir(token, 'PUT', `Task/${task.id}`, {
      ...task,
      businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'awaiting-materials' }] },
    });
    expect(accept.status).toBe(200);
    await until(async () => stateOf(await taskOf(`${SR}/coordination`)) === 'awaiting-materials', 'the case accepted');
    await hub.settled();
    await page.reload();
    await page.getByRole('button', { name: 'Waive the pathology…' }).waitFor({ timeout: UI_TIMEOUT_MS });

    // A count the hub cannot store is refused in its words, and nothing changes.
    await page.getByRole('button', { name: 'Correct the question count' }).click();
    await page.getByLabel('Questions to bill').fill('3000000000');
    await page.getByLabel('Reason for the correction').fill(CORRECTION);
    expect(await settledAxe(page)).toEqual([]);
    await page.getByRole('button', { name: 'Save the correction' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: 'The hub refused the correction' });
    await refusal.waitFor({ timeout: UI_TIMEOUT_MS });
    expect((await refusal.textContent())?.length).toBeGreaterThan('The hub refused the correction'.length);

    // The correction: six questions, with the reason; the new quote shows.
    await page.getByLabel('Questions to bill').fill('6');
    await page.getByRole('button', { name: 'Save the correction' }).click();
    await waitForText(page, 'quote-total', '$1,750.00');
    await waitForText(page, 'quote-correction', CORRECTION);
    expect(await text(page, 'quote-correction')).toContain('Cora Coordinator');
    expect(await line('extra-question').getByTestId('quote-quantity').textContent()).toBe('2');
    expect(await text(page, 'quote-questions')).toContain('Questions billed: 6');
    expect(await text(page, 'quote-questions')).toContain('the physician’s questions count 5');
    await refusal.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });

    // The hub recorded the reason and who set it (itself, from the token), and re-quoted.
    const corrected = await taskOf(`${SR}/coordination`);
    const override = corrected.extension.find((extension: Json) => extension.url === OVERRIDE);
    expect(override.extension).toEqual([
      { url: 'count', valueUnsignedInt: 6 },
      { url: 'reason', valueString: CORRECTION },
      { url: 'setBy', valueReference: { reference: 'Practitioner/prac-c' } },
    ]);
    // The version that set it is the coordinator's (the hub's re-quote wrote the Task again since).
    const history = await fhir(hub.ehr, 'GET', `Task/${corrected.id}/_history?_count=100`);
    const setting = history.body.entry
      .map((entry: Json) => entry.resource)
      .filter((version: Json) =>
        version.extension?.some(
          (extension: Json) => extension.url === OVERRIDE && JSON.stringify(extension).includes(CORRECTION),
        ),
      )
      .sort((a: Json, b: Json) => Number(a.meta.versionId) - Number(b.meta.versionId))[0];
    expect(setting.meta.source).toBe('urn:hub:actor:coordinator:prac-c');
    expect(await settledAxe(page)).toEqual([]);
    expect(coordinator.problems).toEqual([]);
  }, 120_000);

  test('the referring physician opens the same case without the coordinators’ controls, and the hub refuses their writes', async () => {
    const { context, page, problems } = await hub.signIn('paul@clinic.example.org', `/cases/${SR}`, {
      viewport: { width: 800, height: 900 },
    });
    await page.waitForURL(`**/dashboard/cases/${SR}`);
    // Their view of the case, whichever page the app gives their role, once its materials are in.
    const main = page.locator('main');
    await main.filter({ hasText: 'Olivia Quintero' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await main.filter({ hasText: 'Discharge summary' }).waitFor({ timeout: UI_TIMEOUT_MS });
    // The pathology is still awaited (the coordinator has its waiver button), but not for them.
    expect(await page.getByRole('button', { name: /Correct the question count|Return to the detected/ }).count()).toBe(
      0,
    );
    expect(await page.getByRole('button', { name: /Waive/ }).count()).toBe(0);

    // The same writes with the token the app holds: refused, in words, and nothing changed.
    const token = await appToken(page);
    const task = await taskOf(`${SR}/coordination`);
    const others = task.extension.filter((extension: Json) => extension.url !== OVERRIDE);
    const correction = await fhir(token, 'PUT', `Task/${task.id}`, {
      ...task,
      extension: [
        ...others,
        {
          url: OVERRIDE,
          extension: [
            { url: 'count', valueUnsignedInt: 4 },
            { url: 'reason', valueString: 'Fewer questions' },
            { url: 'setBy', valueReference: { reference: 'Practitioner/prac-phys' } },
          ],
        },
      ],
    });
    expect(correction.status).toBe(403);
    expect(correction.body.issue[0].details.text).toMatch(/Only a coordinator corrects the question count/);
    const pathology = await taskOf(`${SR}/expect-material/pathology`);
    const waiver = await fhir(token, 'PUT', `Task/${pathology.id}`, {
      ...pathology,
      status: 'cancelled',
      statusReason: { text: 'Not sending it' },
    });
    expect(waiver.status).toBe(403);
    expect(waiver.body.issue[0].details.text).toMatch(/Only a coordinator waives a material/);
    expect((await taskOf(`${SR}/coordination`)).meta.versionId).toBe(task.meta.versionId);
    expect((await taskOf(`${SR}/expect-material/pathology`)).status).toBe(pathology.status);
    expect(problems).toEqual([]);
    await context.close();
  }, 90_000);

  test('the coordinator waives the pathology: it is no longer missing or charged', async () => {
    const { page } = coordinator;
    await page.reload();
    await page.getByRole('button', { name: 'Waive the pathology…' }).click();
    await page.getByLabel('Why is the pathology waived?').fill(WAIVER);
    await page.getByRole('button', { name: 'Waive the pathology', exact: true }).click();
    const pathology = page.getByTestId('material-pathology');
    await pathology.getByTestId('material-status').filter({ hasText: 'Waived' }).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await pathology.getByTestId('material-waiver').textContent()).toContain(WAIVER);
    await waitForText(page, 'materials-missing', 'Nothing is missing');
    // $1,750 less the biopsy's $425.
    await waitForText(page, 'quote-total', '$1,325.00');
    // The total is the coordination Task's, the lines are ChargeItems: two searches, refreshed apart.
    await page
      .getByTestId('quote-lines')
      .locator('tr[data-fee="biopsy-review"]')
      .waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    const waived = await taskOf(`${SR}/expect-material/pathology`);
    expect({ status: waived.status, reason: waived.statusReason.text, by: waived.meta.source }).toEqual({
      status: 'cancelled',
      reason: WAIVER,
      by: 'urn:hub:actor:coordinator:prac-c',
    });
    expect(await settledAxe(page)).toEqual([]);
    expect(coordinator.problems).toEqual([]);
  }, 90_000);
});
