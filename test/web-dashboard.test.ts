/**
 * The web app (web/, served at /dashboard) in a real browser: Debian's Chromium driven by
 * playwright-core, against a hub process with AUTH_REQUIRED=true on PostgreSQL and Redis. People sign
 * in through the hub's own login page (password, and the authenticator code for staff), as the
 * hub's `hub-dashboard` client. Two cases are loaded by an EHR; the coordinator sees both, the
 * referring physician of one sees only theirs, and another case's URL shows them a not-found page.
 *
 * The app is the one `npm ci` built (web/dist); `npm run build:web` rebuilds it after a change.
 */
import { CASE_STATES } from '../src/cases/case-state.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { CASE_STATE, opinionCaseFixtures } from './support/opinion-case.ts';
import { fhirFetch } from './support/test-hub.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings } from './support/web-app.ts';
import { ACCOUNTS, practitioners, startWebHub } from './support/web-hub.ts';
import type { WebHub } from './support/web-hub.ts';

const MINE = 'sr-web-mine';
const OTHER = 'sr-web-other';
const label = (state: string | undefined): string => {
  const words = String(state).replace(/-/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
};

describe('the web app at /dashboard in Chromium', () => {
  let hub: WebHub;
  const referenceNumbers = { mine: generateReferenceNumber(() => 3), other: generateReferenceNumber(() => 5) };
  /** Each case's state once the hub's jobs have run on the loaded resources. */
  const states: Record<string, string> = {};

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'dashboard',
      ehrClientId: 'web-ehr',
      accounts: [ACCOUNTS.cora, ACCOUNTS.paul],
    });
    // An EHR loads two cases in specialist review: one of Paul's, one of another physician's.
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys', 'prac-other', 'prac-s'),
      ...opinionCaseFixtures(MINE, referenceNumbers.mine),
      ...opinionCaseFixtures(OTHER, referenceNumbers.other).map((resource) =>
        resource.resourceType === 'ServiceRequest'
          ? { ...resource, requester: { reference: 'Practitioner/prac-other' } }
          : resource.resourceType === 'Patient'
            ? { ...resource, name: [{ given: ['Henrik'], family: 'Lindqvist' }] }
            : resource.resourceType === 'Task' && resource.id === `coord-${OTHER}`
              ? { ...resource, businessStatus: { coding: [{ system: CASE_STATE, code: 'report-review' }] } }
              : resource,
      ),
    ];
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await hub.settled();
    for (const sr of [MINE, OTHER]) {
      const task = await fhirFetch(`${hub.url}/fhir/Task/coord-${sr}`, {
        headers: { authorization: `Bearer ${hub.ehr}` },
      });
      states[sr] = task.body.businessStatus.coding[0].code;
    }
  }, 90_000);

  afterAll(async () => {
    await hub?.stop();
  });

  test('the coordinator signs in with a TOTP code, filters and pages the worklist, and opens a case', async () => {
    // The app must run under its CSP: a blocked script or style element would be reported here.
    const { context, page, problems: violations } = await hub.signIn('cora@hub.example.org');
    await page.getByTestId('signed-in-role').getByText('coordinator').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(new URL(page.url()).pathname).toBe('/dashboard');

    // The worklist: both cases, each with its state and reference number.
    const worklist = page.getByTestId('worklist');
    const mine = worklist.locator(`tr[data-case="${MINE}"]`);
    const other = worklist.locator(`tr[data-case="${OTHER}"]`);
    await mine.waitFor({ timeout: UI_TIMEOUT_MS });
    await other.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await mine.getByRole('link').textContent()).toBe(referenceNumbers.mine);
    expect(await mine.getByTestId('case-state').textContent()).toBe(label(states[MINE]));
    expect(await other.getByTestId('case-state').textContent()).toBe(label(states[OTHER]));
    expect(await mine.textContent()).toMatch(/overdue by \d+ business days?|\d+ business days? left/);
    expect(await axeFindings(page)).toEqual([]);

    // The filter offers exactly the hub's states, and filters on the server.
    const options = await page.getByLabel('State').locator('option').all();
    const offered = await Promise.all(options.map((option) => option.getAttribute('value')));
    expect(offered).toEqual(['', ...CASE_STATES]);
    await page.getByLabel('State').selectOption(states[OTHER] as string);
    await page.waitForURL(/state=/);
    await other.waitFor({ timeout: UI_TIMEOUT_MS });
    await mine.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    await page.getByLabel('State').selectOption('cancelled');
    await page.getByTestId('worklist-empty').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByLabel('State').selectOption('');
    await mine.waitFor({ timeout: UI_TIMEOUT_MS });

    // Paged by the hub: one case a page, Next follows the Bundle's next link, Previous goes back.
    await page.goto(`${hub.url}/dashboard?count=1`);
    const rows = worklist.locator('tbody tr');
    await rows.first().waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await rows.count()).toBe(1);
    const firstCase = await rows.first().getAttribute('data-case');
    await page.getByRole('button', { name: 'Next page' }).click();
    await worklist.locator(`tr[data-case]:not([data-case="${firstCase}"])`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await rows.count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await worklist.locator(`tr[data-case="${firstCase}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.goto(`${hub.url}/dashboard`);
    await mine.waitFor({ timeout: UI_TIMEOUT_MS });

    // The case page: state, patient, physician, questions, timeline.
    await mine.getByRole('link').click();
    await page.waitForURL(`**/dashboard/cases/${MINE}`);
    await page.getByTestId('case-patient').getByText('Olivia Quintero').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-physician').getByText('Dr. Paul Physick').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByTestId('case-questions').getByText('Is the nodule malignant?').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByTestId('case-questions').textContent()).toContain('Which treatment do you advise?');
    expect(await page.getByTestId('case-state').textContent()).toBe(label(states[MINE]));
    const timeline = page.getByTestId('case-timeline');
    await timeline.locator('tbody tr').first().waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await timeline.textContent()).toContain('EHR client web-ehr');
    expect(await axeFindings(page)).toEqual([]);
    expect(violations).toEqual([]);
    await context.close();
  });

  test('a referring physician follows an e-mail link, sees only their own case, and not another’s by URL', async () => {
    // The e-mails link to the case page: the login comes first, then the same page.
    const { context, page } = await hub.signIn('paul@clinic.example.org', `/cases/${MINE}`);
    await page.waitForURL(`**/dashboard/cases/${MINE}`);
    await page.getByTestId('case-patient').getByText('Olivia Quintero').waitFor({ timeout: UI_TIMEOUT_MS });

    // Their worklist holds their case alone.
    await page.getByRole('link', { name: 'Second Opinion Hub' }).click();
    const worklist = page.getByTestId('worklist');
    await worklist.locator(`tr[data-case="${MINE}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await worklist.locator('tbody tr').count()).toBe(1);
    expect(await page.content()).not.toContain(referenceNumbers.other);

    // Another physician's case by its URL: not found, and nothing of it on the page.
    await page.goto(`${hub.url}/dashboard/cases/${OTHER}`);
    await page.getByTestId('case-not-found').waitFor({ timeout: UI_TIMEOUT_MS });
    const html = await page.content();
    expect(html).not.toContain('Lindqvist');
    expect(html).not.toContain(referenceNumbers.other);
    // The same refusal at the API, with the token the app holds.
    const token = await appToken(page);
    const direct = await fhirFetch(`${hub.url}/fhir/ServiceRequest/${OTHER}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(direct.status).toBe(404);
    await context.close();
  });

  test('/dashboard is served with its CSP, index.html revalidated and hashed assets immutable', async () => {
    const index = await fetch(`${hub.url}/dashboard/cases/${MINE}`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await index.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = /<script[^>]*src="([^"]+)"/.exec(html)?.[1];
    expect(script).toMatch(/^\/dashboard\/assets\/.+-[\w-]{8}\.js$/);
    const asset = await fetch(`${hub.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${hub.url}/dashboard/assets/gone-12345678.js`)).status).toBe(404);
  });
});
