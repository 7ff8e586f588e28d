/**
 * The patient's page of the web app in Chromium, against a hub process with AUTH_REQUIRED=true and its
 * workers: their request's state in plain words, and the opinion only once their physician has opened
 * it. Before that nothing of the opinion is on the page or reachable with the token the app holds;
 * never a staff control, and never another patient's case, by URL or at the API.
 */
import type { Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { signInPeople } from './support/login-flow.ts';
import { opinionCaseFixtures } from './support/opinion-case.ts';
import { fhirFetch } from './support/test-hub.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings } from './support/web-app.ts';
import { practitioners, startWebHub } from './support/web-hub.ts';
import type { WebHub } from './support/web-hub.ts';
import { OPINION, caseState, inState, releaseOpinion } from './support/web-opinion.ts';
import type { Parties } from './support/web-opinion.ts';

const PATIENT = 'olivia@example.org';
const MINE = 'sr-pat-mine';
const OTHER = 'sr-pat-other';

describe('the patient’s page in Chromium', () => {
  let hub: WebHub;
  let parties: Parties & { physician: string };
  let opinion: { reportId: string; letterId: string };
  const referenceNumbers = { mine: generateReferenceNumber(() => 2), other: generateReferenceNumber(() => 8) };

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'pat',
      ehrClientId: 'web-pat-ehr',
      accounts: [{ email: PATIENT, role: 'patient', fhirUser: `Patient/pat-${MINE}` }],
    });
    const people = await signInPeople(
      hub.place,
      {
        specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
        coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
        physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
      },
      { clientId: 'web-pat-api', redirectUri: 'http://127.0.0.1:5173/callback', scope: 'openid fhirUser user/*.cruds' },
    );
    parties = { url: hub.url, ...people };
    const due = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys', 'prac-s'),
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
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await hub.settled();
    expect(await caseState(parties, MINE)).toBe('specialist-review');
    opinion = await releaseOpinion(parties, MINE);
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
  });

  async function openHome(): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
    const { context, page, problems } = await hub.signIn(PATIENT);
    await page.getByTestId('patient-state').waitFor({ timeout: UI_TIMEOUT_MS });
    return { page, problems, close: () => context.close() };
  }
  const asPatient = async (page: Page, reference: string) =>
    fhirFetch(`${hub.url}/fhir/${reference}`, { headers: { authorization: `Bearer ${await appToken(page)}` } });

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
    await page.goto(`${hub.url}/dashboard/cases/${OTHER}`);
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
    const read = await fhirFetch(`${hub.url}/fhir/DiagnosticReport/${opinion.reportId}`, {
      headers: { authorization: `Bearer ${parties.physician}` },
    });
    expect(read.status).toBe(200);
    await inState(parties, MINE, 'report-accessed');

    // The e-mail's link: the case page.
    const { page, problems, close } = await openHome();
    await page.goto(`${hub.url}/dashboard/cases/${MINE}`);
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
