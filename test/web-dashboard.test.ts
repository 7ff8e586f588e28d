/**
 * The web app (web/, served at /dashboard) in a real browser: Debian's Chromium driven by
 * playwright-core, against a hub process with AUTH_REQUIRED=true on PostgreSQL and Redis. People sign
 * in through the hub's own login page (password, and the authenticator code for staff), as the
 * hub's `hub-dashboard` client. Two cases are loaded by an EHR; the coordinator sees both, the
 * referring physician of one sees only theirs, and another case's URL shows them a not-found page.
 *
 * The app is the one `npm ci` built (web/dist); `npm run build:web` rebuilds it after a change.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { totpCode } from '../src/auth/totp.ts';
import { UserStore } from '../src/auth/users.ts';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { CASE_STATES } from '../src/cases/case-state.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { systemClock } from '../src/runtime/clock.ts';
import { workflowSettled } from './support/case-fixtures.ts';
import { clientToken } from './support/client-token.ts';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { CASE_STATE, opinionCaseFixtures } from './support/opinion-case.ts';
import { TEST_REDIS_URL, createTestDatabase, fhirFetch } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import {
  UI_TIMEOUT_MS,
  appToken,
  axeFindings,
  dashboardEnvironment,
  launchChromium,
  signIn as fillLogin,
  watchPage,
} from './support/web-app.ts';

const PASSWORD = 'a long enough password';
const MINE = 'sr-web-mine';
const OTHER = 'sr-web-other';
const label = (state: string | undefined): string => {
  const words = String(state).replace(/-/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
};

describe('the web app at /dashboard in Chromium', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let api: HubProcess;
  let db: Database;
  let browser: Browser;
  let coordinatorTotp: string;
  const queuePrefix = `test-web-${process.pid}-${Date.now()}`;
  const referenceNumbers = { mine: generateReferenceNumber(() => 3), other: generateReferenceNumber(() => 5) };
  /** Each case's state once the hub's jobs have run on the loaded resources. */
  const states: Record<string, string> = {};

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hub-web-'));
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
    const users = new UserStore(db);
    const coordinator = await users.add({
      email: 'cora@hub.example.org',
      role: 'coordinator',
      fhirUser: 'Practitioner/prac-c',
      password: PASSWORD,
    });
    coordinatorTotp = coordinator.totpSecret as string;
    await users.add({
      email: 'paul@clinic.example.org',
      role: 'referring-physician',
      fhirUser: 'Practitioner/prac-phys',
      password: PASSWORD,
    });
    // An EHR loads two cases in specialist review: one of Paul's, one of another physician's.
    const place = { baseUrl: api.url, hub: { db, url: api.url }, clock: systemClock } as unknown as TestHub;
    const ehr = await clientToken(place, 'web-ehr', 'system/*.cruds');
    const fixtures = [
      { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
      {
        resourceType: 'Practitioner',
        id: 'prac-phys',
        name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }],
      },
      { resourceType: 'Practitioner', id: 'prac-other', name: [{ prefix: ['Dr.'], given: ['Olga'], family: 'Other' }] },
      {
        resourceType: 'Practitioner',
        id: 'prac-s',
        name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }],
      },
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
    for (const sr of [MINE, OTHER]) {
      const task = await fhirFetch(`${api.url}/fhir/Task/coord-${sr}`, { headers: { authorization: `Bearer ${ehr}` } });
      states[sr] = task.body.businessStatus.coding[0].code;
    }
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await db?.close();
    await api?.stop();
    await database?.drop();
    await fsp.rm(dataDir, { recursive: true, force: true });
  });

  async function signIn(page: Page, email: string, totp?: string): Promise<void> {
    await fillLogin(page, email, PASSWORD, totp);
  }

  test('the coordinator signs in with a TOTP code, filters and pages the worklist, and opens a case', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // The app must run under its CSP: a blocked script or style element would be reported here.
    const violations = watchPage(page);
    await page.goto(`${api.url}/dashboard`);
    await signIn(page, 'cora@hub.example.org', totpCode(coordinatorTotp, Date.now()));
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
    await page.goto(`${api.url}/dashboard?count=1`);
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
    await page.goto(`${api.url}/dashboard`);
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
    const context = await browser.newContext();
    const page = await context.newPage();
    // The e-mails link to the case page: the login comes first, then the same page.
    await page.goto(`${api.url}/dashboard/cases/${MINE}`);
    await signIn(page, 'paul@clinic.example.org');
    await page.waitForURL(`**/dashboard/cases/${MINE}`);
    await page.getByTestId('case-patient').getByText('Olivia Quintero').waitFor({ timeout: UI_TIMEOUT_MS });

    // Their worklist holds their case alone.
    await page.getByRole('link', { name: 'Second Opinion Hub' }).click();
    const worklist = page.getByTestId('worklist');
    await worklist.locator(`tr[data-case="${MINE}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await worklist.locator('tbody tr').count()).toBe(1);
    expect(await page.content()).not.toContain(referenceNumbers.other);

    // Another physician's case by its URL: not found, and nothing of it on the page.
    await page.goto(`${api.url}/dashboard/cases/${OTHER}`);
    await page.getByTestId('case-not-found').waitFor({ timeout: UI_TIMEOUT_MS });
    const html = await page.content();
    expect(html).not.toContain('Lindqvist');
    expect(html).not.toContain(referenceNumbers.other);
    // The same refusal at the API, with the token the app holds.
    const token = await appToken(page);
    const direct = await fhirFetch(`${api.url}/fhir/ServiceRequest/${OTHER}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(direct.status).toBe(404);
    await context.close();
  });

  test('/dashboard is served with its CSP, index.html revalidated and hashed assets immutable', async () => {
    const index = await fetch(`${api.url}/dashboard/cases/${MINE}`);
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
    const asset = await fetch(`${api.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${api.url}/dashboard/assets/gone-12345678.js`)).status).toBe(404);
  });
});
