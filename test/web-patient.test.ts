/**
 * The patient's page of the web app in Chromium, against a hub process with AUTH_REQUIRED=true and its
 * workers: their request's state in plain words, and the opinion only once their physician has opened
 * it. Before that nothing of the opinion is on the page or reachable with the token the app holds;
 * never a staff control, and never another patient's case, by URL or at the API.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { UserStore } from '../src/auth/users.ts';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { systemClock } from '../src/runtime/clock.ts';
import { workflowSettled } from './support/case-fixtures.ts';
import { clientToken } from './support/client-token.ts';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { signInPeople } from './support/login-flow.ts';
import { opinionCaseFixtures } from './support/opinion-case.ts';
import { TEST_REDIS_URL, createTestDatabase, fhirFetch } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import {
  UI_TIMEOUT_MS,
  appToken,
  axeFindings,
  dashboardEnvironment,
  launchChromium,
  signIn,
  watchPage,
} from './support/web-app.ts';
import { OPINION, caseState, inState, releaseOpinion } from './support/web-opinion.ts';
import type { Parties } from './support/web-opinion.ts';

const PASSWORD = 'a long enough password';
const PATIENT = 'olivia@example.org';
const MINE = 'sr-pat-mine';
const OTHER = 'sr-pat-other';

describe('the patient’s page in Chromium', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let api: HubProcess;
  let db: Database;
  let browser: Browser;
  let parties: Parties & { physician: string };
  let opinion: { reportId: string; letterId: string };
  const queuePrefix = `test-web-pat-${process.pid}-${Date.now()}`;
  const referenceNumbers = { mine: generateReferenceNumber(() => 2), other: generateReferenceNumber(() => 8) };

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hub-web-pat-'));
    api = await startHubProcess(
      {
        DATABASE_URL: database.url,
        DATA_DIR: dataDir,
        AUTH_REQUIRED: 'true',
        OUTBOX_POLL_MS: '100',
        QUEUE_PREFIX: queuePrefix,
        ...dashboardEnvironment(),
      },
      60_000,
    );
    db = await openDatabase({ databaseUrl: database.url });
    await new UserStore(db).add({
      email: PATIENT,
      role: 'patient',
      fhirUser: `Patient/pat-${MINE}`,
      password: PASSWORD,
    });
    const place = { baseUrl: api.url, hub: { db, url: api.url }, clock: systemClock } as unknown as TestHub;
    const ehr = await clientToken(place, 'web-pat-ehr', 'system/*.cruds');
    const people = await signInPeople(
      place,
      {
        specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
        coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
        physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
      },
      { clientId: 'web-pat-api', redirectUri: 'http://127.0.0.1:5173/callback', scope: 'openid fhirUser user/*.cruds' },
    );
    parties = { url: api.url, ...people };
    const due = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const fixtures = [
      { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
      {
        resourceType: 'Practitioner',
        id: 'prac-phys',
        name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }],
      },
      {
        resourceType: 'Practitioner',
        id: 'prac-s',
        name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }],
      },
      ...[
        ...opinionCaseFixtures(MINE, referenceNumbers.mine),
        ...opinionCaseFixtures(OTHER, referenceNumbers.other),
      ].map((resource) =>
        resource.resourceType === 'Patient' && resource.id === `pat-${OTHER}`
          ? { ...resource, name: [{ given: ['Henrik'], family: 'Lindqvist' }] }
          : String(resource.id).startsWith('offer-')
            ? { ...resource, restriction: { period: { end: due } } }
            : resource,
      ),
    ];
    const loaded = await fhirFetch(`${api.url}/fhir`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ehr}` },
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
    await workflowSettled({ db, redisUrl: TEST_REDIS_URL, queuePrefix }, 60_000);
    expect(await caseState(parties, MINE)).toBe('specialist-review');
    opinion = await releaseOpinion(parties, MINE);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await db?.close();
    await api?.stop();
    await database?.drop();
    await fsp.rm(dataDir, { recursive: true, force: true });
  });

  async function openHome(): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = watchPage(page);
    await page.goto(`${api.url}/dashboard`);
    await signIn(page, PATIENT, PASSWORD);
    await page.getByTestId('patient-state').waitFor({ timeout: UI_TIMEOUT_MS });
    return { page, problems, close: () => context.close() };
  }
  const asPatient = async (page: Page, reference: string) =>
    fhirFetch(`${api.url}/fhir/${reference}`, { headers: { authorization: `Bearer ${await appToken(page)}` } });

  test('before the physician has read the opinion: the state in plain words, nothing of the opinion, no staff controls', async () => {
    const { page, problems, close } = await openHome();
    const state = page.getByTestId('patient-state');
    await state.getByText('gone to your physician first').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await state.textContent()).not.toMatch(/report-released|Report released/);
    expect(await page.getByTestId('patient-case').textContent()).toContain(referenceNumbers.mine);
    await page.waitForLoadState('networkidle');
    const html = await page.content();
    for (const text of [OPINION.conclusion, OPINION.answer1, OPINION.recommendation]) {
      expect(html).not.toContain(text);
    }
    expect(await page.getByTestId('opinion-letter').count()).toBe(0);
    // With the token the app holds, the hub gives none of it either.
    for (const reference of [`DiagnosticReport/${opinion.reportId}`, `Composition/${opinion.letterId}`]) {
      expect([reference, (await asPatient(page, reference)).status]).toEqual([reference, 404]);
    }
    expect((await asPatient(page, `DiagnosticReport?based-on=ServiceRequest/${MINE}`)).body.entry ?? []).toEqual([]);

    // No staff controls: no worklist, no filters, nothing to write; the only button signs out.
    expect(await page.getByTestId('worklist').count()).toBe(0);
    expect(await page.getByLabel('State').count()).toBe(0);
    expect(await page.locator('input, textarea, select').count()).toBe(0);
    expect(await page.getByRole('button').allTextContents()).toEqual(['Sign out']);
    expect(await axeFindings(page)).toEqual([]);

    // Another patient's case: not found by its URL, nothing of it shown, and refused at the API.
    await page.goto(`${api.url}/dashboard/cases/${OTHER}`);
    await page.getByTestId('case-not-found').waitFor({ timeout: UI_TIMEOUT_MS });
    const other = await page.content();
    expect(other).not.toContain('Lindqvist');
    expect(other).not.toContain(referenceNumbers.other);
    expect((await asPatient(page, `ServiceRequest/${OTHER}`)).status).toBe(404);
    expect((await asPatient(page, `Patient/pat-${OTHER}`)).status).toBe(404);
    const tasks = await asPatient(page, 'Task?code=urn:hub:task-code|coordination');
    expect(tasks.body.entry.map((entry: any) => entry.resource.id)).toEqual([`coord-${MINE}`]);
    expect(problems).toEqual([]);
    await close();
  });

  test('once the physician has read it: the opinion, structured and as the PDF', async () => {
    const read = await fhirFetch(`${api.url}/fhir/DiagnosticReport/${opinion.reportId}`, {
      headers: { authorization: `Bearer ${parties.physician}` },
    });
    expect(read.status).toBe(200);
    await inState(parties, MINE, 'report-accessed');

    // The e-mail's link: the case page.
    const { page, problems, close } = await openHome();
    await page.goto(`${api.url}/dashboard/cases/${MINE}`);
    await page.getByTestId('patient-state').getByText('Your opinion is ready').waitFor({ timeout: UI_TIMEOUT_MS });
    const letter = page.getByTestId('opinion-letter');
    await letter.getByText(OPINION.conclusion).waitFor({ timeout: UI_TIMEOUT_MS });
    await letter.getByText(OPINION.recommendation).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await letter.textContent()).toContain(`Question 1: Is the nodule malignant?${OPINION.answer1}`);
    await letter.getByTestId('pdf-frame').waitFor({ timeout: UI_TIMEOUT_MS });
    await letter.getByRole('link', { name: 'Open the signed opinion as a PDF' }).waitFor({ timeout: UI_TIMEOUT_MS });
    expect((await asPatient(page, `DiagnosticReport/${opinion.reportId}`)).status).toBe(200);
    expect(await page.locator('input, textarea, select').count()).toBe(0);
    expect(await axeFindings(page)).toEqual([]);
    expect(problems).toEqual([]);
    await close();
  });
});
