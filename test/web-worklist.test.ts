/**
 * The coordinators' worklist (web/src/Worklist.tsx) in Chromium against a hub process with
 * AUTH_REQUIRED=true: its columns (the SLA clock, red when overdue; the specialty sought; the next
 * action and who holds it), its filters and sorting done by the hub's search and kept in the URL,
 * "mine", live updates without a reload, and a referring physician's worklist, which shows their
 * cases alone whatever filter, sort or hand-made search they try.
 *
 * Four cases, loaded by an EHR, with deadlines placed relative to now:
 * - OVERDUE, Paul's, in specialist review; the specialist's offer fell due five days ago;
 * - MATCHING, Paul's, in matching, for the hub to offer (its questions call for oncology: the hub
 *   records the specialty sought and the offer's due date on the coordination Task);
 * - REVIEW, Olga's, in report review, held by the coordinator Cora; its approval is due this week;
 * - SHARED, Olga's, in specialist review, due in forty days, shared with Paul by a case-access Task.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { SPECIALTIES } from '../src/cases/specialties.ts';
import { CASE, CASE_STATE, TASK_CODE, opinionCaseFixtures } from './support/opinion-case.ts';
import { fhirFetch } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { UI_TIMEOUT_MS, appToken, watchPage } from './support/web-app.ts';
import { ACCOUNTS, practitioners, startWebHub } from './support/web-hub.ts';
import type { WebHub } from './support/web-hub.ts';

const NUCC = 'http://nucc.org/provider-taxonomy';
const ONCOLOGY = '207RX0202X';
const DAY_MS = 24 * 60 * 60 * 1000;
const [OVERDUE, MATCHING, REVIEW, SHARED] = ['sr-wl-overdue', 'sr-wl-matching', 'sr-wl-review', 'sr-wl-shared'];
const PAULS = [OVERDUE, MATCHING, SHARED];
const ALL = [OVERDUE, MATCHING, REVIEW, SHARED];
/** A change made elsewhere shows within this (the bar). */
const LIVE_MS = 5_000;

/** Monday 00:00 after `now`, local time: the app's end of "this week" (web/src/worklist/search.ts). */
function endOfWeek(now: Date): Date {
  const end = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  end.setDate(end.getDate() + ((8 - end.getDay()) % 7 || 7));
  return end;
}

/** One oncologist the matching may offer a case to (docs/case-workflow.md, "Roster"). */
const rosterFixtures = (): Record<string, unknown>[] => [
  {
    resourceType: 'Practitioner',
    id: 'prac-s',
    active: true,
    name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }],
    extension: [{ url: 'urn:hub:extension:training-level', valueCode: 'attending' }],
    qualification: [
      {
        code: { coding: [{ system: 'urn:hub:qualification', code: 'medical-licence' }] },
        period: { start: '2015-07-01', end: '2099-06-30' },
      },
      { code: { coding: [{ system: 'urn:hub:qualification', code: 'board-certification' }] } },
    ],
  },
  {
    resourceType: 'PractitionerRole',
    id: 'role-prac-s',
    active: true,
    practitioner: { reference: 'Practitioner/prac-s' },
    code: [{ coding: [{ system: 'urn:hub:practitioner-role', code: 'specialist' }] }],
    specialty: [{ coding: [{ system: NUCC, code: ONCOLOGY, display: 'Medical Oncology' }] }],
  },
];

describe('the worklist at /dashboard', () => {
  let hub: WebHub;
  const referenceNumbers: Record<string, string> = {};
  ALL.forEach((sr, i) => (referenceNumbers[sr] = generateReferenceNumber(() => i + 1)));
  const loadedAt = new Date();
  const overdueAt = new Date(loadedAt.getTime() - 5 * DAY_MS);
  // Halfway from now to the end of the week: later than the app's now, earlier than Monday.
  const thisWeek = new Date(loadedAt.getTime() + (endOfWeek(loadedAt).getTime() - loadedAt.getTime()) / 2);
  const farAhead = new Date(loadedAt.getTime() + 40 * DAY_MS);

  function caseFixtures(sr: string, edit: (resource: Record<string, unknown>) => Record<string, unknown>) {
    return opinionCaseFixtures(sr, referenceNumbers[sr] as string).map(edit);
  }
  const isCoordination = (sr: string, resource: Record<string, unknown>) => resource.id === `coord-${sr}`;
  const isOffer = (sr: string, resource: Record<string, unknown>) => resource.id === `offer-${sr}`;
  const state = (code: string) => ({ businessStatus: { coding: [{ system: CASE_STATE, code }] } });
  const due = (at: Date) => ({ restriction: { period: { end: at.toISOString() } } });
  const olgas = (resource: Record<string, unknown>) =>
    resource.resourceType === 'ServiceRequest'
      ? { ...resource, requester: { reference: 'Practitioner/prac-other' } }
      : resource;

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'worklist',
      ehrClientId: 'worklist-ehr',
      accounts: [ACCOUNTS.cora, ACCOUNTS.paul],
    });
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys', 'prac-other'),
      ...rosterFixtures(),
      ...caseFixtures(OVERDUE, (r) => (isOffer(OVERDUE, r) ? { ...r, ...due(overdueAt) } : r)),
      ...caseFixtures(MATCHING, (r) => (isCoordination(MATCHING, r) ? { ...r, ...state('matching') } : r)).filter(
        (r) => !isOffer(MATCHING, r),
      ),
      ...caseFixtures(REVIEW, (r) =>
        isCoordination(REVIEW, r)
          ? { ...r, ...state('report-review'), owner: { reference: 'Practitioner/prac-c' } }
          : isOffer(REVIEW, r)
            ? { ...r, status: 'in-progress' }
            : olgas(r),
      ),
      {
        resourceType: 'Task',
        id: `approve-${REVIEW}`,
        identifier: [{ system: CASE, value: `${REVIEW}/approve` }],
        status: 'requested',
        intent: 'order',
        code: { coding: [{ system: TASK_CODE, code: 'approve' }] },
        basedOn: [{ reference: `ServiceRequest/${REVIEW}` }],
        partOf: [{ reference: `Task/coord-${REVIEW}` }],
        requester: { reference: 'Practitioner/prac-s' },
        ...due(thisWeek),
      },
      ...caseFixtures(SHARED, (r) => (isOffer(SHARED, r) ? { ...r, ...due(farAhead) } : olgas(r))),
      // A coordinator's explicit act: Paul, as a colleague, is a referring physician of Olga's case too.
      {
        resourceType: 'Task',
        id: `access-${SHARED}`,
        status: 'requested',
        intent: 'order',
        code: { coding: [{ system: TASK_CODE, code: 'case-access' }] },
        basedOn: [{ reference: `ServiceRequest/${SHARED}` }],
        owner: { reference: 'Practitioner/prac-phys' },
        input: [
          {
            type: { coding: [{ system: 'urn:hub:case-access-role', code: 'role' }] },
            valueCode: 'referring-physician',
          },
        ],
      },
    ];
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await hub.settled();
  }, 90_000);

  afterAll(async () => {
    await coordinatorContext?.close();
    await hub?.stop();
  });

  let coordinatorContext: BrowserContext | undefined;
  /**
   * A page of Cora's. She signs in once (a TOTP code counts once); each later page is a new tab of
   * the same browser, whose sign-in the hub's login session answers without a form.
   */
  async function asCoordinator(): Promise<{ page: Page; problems: string[] }> {
    let page: Page;
    let problems: string[];
    if (coordinatorContext === undefined) {
      ({ context: coordinatorContext, page, problems } = await hub.signIn('cora@hub.example.org'));
    } else {
      page = await coordinatorContext.newPage();
      problems = watchPage(page);
      await page.goto(`${hub.url}/dashboard`);
    }
    await page.getByTestId('signed-in-role').getByText('coordinator').waitFor({ timeout: UI_TIMEOUT_MS });
    return { page, problems };
  }

  /** The cases of the table in order, once they are `expected` (the hub answers each change anew). */
  async function rowsBecome(page: Page, expected: string[]): Promise<void> {
    let seen: (string | null)[] = [];
    await until(
      async () => {
        const empty = await page.getByTestId('worklist-empty').isVisible();
        seen = empty
          ? []
          : await page
              .locator('[data-testid="worklist"] tbody tr')
              .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-case')));
        return JSON.stringify(seen) === JSON.stringify(expected) && (expected.length > 0 || empty);
      },
      `the worklist to show ${expected.join(', ') || 'no case'} (it shows ${seen.join(', ') || 'none'})`,
      UI_TIMEOUT_MS,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}: it shows ${JSON.stringify(seen)}`);
    });
  }

  const row = (page: Page, sr: string) => page.getByTestId('worklist').locator(`tr[data-case="${sr}"]`);
  const sorted = (cases: string[]) =>
    [...cases].sort((a, b) => (referenceNumbers[a] as string).localeCompare(referenceNumbers[b] as string));

  test('the hub keeps each case’s deadline and specialty sought on its coordination Task', async () => {
    const read = async (sr: string) =>
      (await fhirFetch(`${hub.url}/fhir/Task/coord-${sr}`, { headers: { authorization: `Bearer ${hub.ehr}` } })).body;
    const offers = await fhirFetch(
      `${hub.url}/fhir/Task?part-of=Task/coord-${MATCHING}&code=${TASK_CODE}|specialist-opinion`,
      { headers: { authorization: `Bearer ${hub.ehr}` } },
    );
    const offer = offers.body.entry[0].resource;
    expect({ owner: offer.owner, status: offer.status }).toEqual({
      owner: { reference: 'Practitioner/prac-s' },
      status: 'requested',
    });
    const matching = await read(MATCHING);
    expect(matching.restriction.period.end).toBe(offer.restriction.period.end);
    expect(matching.performerType).toEqual([
      { coding: [{ system: NUCC, code: ONCOLOGY, display: 'Medical Oncology' }], text: 'Medical Oncology' },
    ]);
    expect(Date.parse((await read(OVERDUE)).restriction.period.end)).toBe(overdueAt.getTime());
    expect(Date.parse((await read(REVIEW)).restriction.period.end)).toBe(thisWeek.getTime());
    // The EHR's own writes of the cases stay theirs: the hub's versions name no writer.
    expect(matching.meta.source).toBeUndefined();
  });

  test('columns: the SLA clock in red when overdue, the specialty sought, the next action and who holds it', async () => {
    const { page, problems } = await asCoordinator();
    for (const sr of ALL) {
      await row(page, sr).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await row(page, sr).getByRole('link').textContent()).toBe(referenceNumbers[sr]);
    }
    const clock = (sr: string) => row(page, sr).getByTestId('sla-clock');
    const colour = (sr: string) =>
      clock(sr).evaluate((element) => (globalThis as any).getComputedStyle(element).color as string);
    const rgb = (text: string) => (text.match(/\d+/g) ?? []).map(Number);

    expect(await clock(OVERDUE).textContent()).toMatch(/overdue by \d+ business days?$/);
    expect(await clock(OVERDUE).getAttribute('data-overdue')).toBe('true');
    const [red = 0, green = 255, blue = 255] = rgb(await colour(OVERDUE));
    expect(red).toBeGreaterThan(150);
    expect(green).toBeLessThan(80);
    expect(blue).toBeLessThan(80);
    for (const sr of [MATCHING, REVIEW, SHARED]) {
      expect(await clock(sr).textContent()).toMatch(/\d+ business days? left$/);
      const [r = 0, g = 0] = rgb(await colour(sr));
      expect(r - g).toBeLessThan(60);
    }

    expect(await row(page, MATCHING).getByTestId('specialty').textContent()).toBe('Medical Oncology');
    expect(await row(page, OVERDUE).getByTestId('specialty').textContent()).toBe('—');
    const next = (sr: string) => row(page, sr).getByTestId('next-action').textContent();
    expect(await next(OVERDUE)).toBe('Write the opinion — Dr. Amelia Abernathy');
    expect(await next(MATCHING)).toBe('Accept or decline the offer — Dr. Amelia Abernathy');
    // Cora holds REVIEW's coordination Task: the approval is hers.
    expect(await next(REVIEW)).toBe('Approve or return the report — you');
    expect(problems).toEqual([]);
    await page.close();
  });

  test('filters are FHIR searches kept in the URL: state, overdue, due this week, specialty, mine', async () => {
    const { page, problems } = await asCoordinator();
    await currentOrder(page);
    await page.getByLabel('Deadline').selectOption('overdue');
    await page.waitForURL(/due=overdue/);
    await rowsBecome(page, [OVERDUE]);
    await page.getByLabel('Deadline').selectOption('week');
    await page.waitForURL(/due=week/);
    await rowsBecome(page, [REVIEW]);
    await page.getByLabel('Deadline').selectOption('');

    const specialties = await page.getByLabel('Specialty sought').locator('option').all();
    const offered = await Promise.all(specialties.map((option) => option.getAttribute('value')));
    expect(offered).toEqual(['', ...Object.values(SPECIALTIES).map((specialty) => specialty.nuccCode)]);
    await page.getByLabel('Specialty sought').selectOption(ONCOLOGY);
    await page.waitForURL(new RegExp(`specialty=${ONCOLOGY}`));
    await rowsBecome(page, [MATCHING]);
    await page.getByLabel('Specialty sought').selectOption(SPECIALTIES.cardiology.nuccCode);
    await page
      .getByTestId('worklist-empty')
      .getByText('No cases match these filters.')
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByLabel('Specialty sought').selectOption('');

    await page.getByLabel(/^Mine/).click();
    await page.waitForURL(/mine=1/);
    await rowsBecome(page, [REVIEW]);
    await page.getByLabel(/^Mine/).click();
    await page.waitForURL((url) => !url.search.includes('mine'));
    await page.getByLabel('State').selectOption('specialist-review');
    await page.waitForURL(/state=specialist-review/);
    await currentOrder(page, [OVERDUE, SHARED]);

    // The URL alone restores them: a link or a reload shows the same search.
    await page.goto(`${hub.url}/dashboard?state=specialist-review&due=overdue`);
    await rowsBecome(page, [OVERDUE]);
    expect(await page.getByLabel('State').inputValue()).toBe('specialist-review');
    expect(await page.getByLabel('Deadline').inputValue()).toBe('overdue');
    expect(problems).toEqual([]);
    await page.close();
  });

  test('changes made faster than the page redraws all count: none works from the filters it drew', async () => {
    const { page, problems } = await asCoordinator();
    await page.goto(`${hub.url}/dashboard?mine=1`);
    await rowsBecome(page, [REVIEW]);
    // Untick "mine", choose a state and sort by due date in one go, before React draws again.
    await page.evaluate(() => {
      const doc = (globalThis as any).document;
      const labelled = (text: string) =>
        [...doc.querySelectorAll('label')].find((label: any) => label.textContent.startsWith(text)).control;
      labelled('Mine').click();
      const state = labelled('State');
      state.value = 'specialist-review';
      state.dispatchEvent(new (globalThis as any).Event('change', { bubbles: true }));
      [...doc.querySelectorAll('th button')].find((button: any) => button.textContent.startsWith('Due')).click();
    });
    await page.waitForURL((url) => url.search.includes('sort=due') && !url.search.includes('mine'));
    expect(new URL(page.url()).searchParams.get('state')).toBe('specialist-review');
    await rowsBecome(page, [OVERDUE, SHARED]);
    expect(problems).toEqual([]);
    await page.close();
  });

  /** The rows shown now, once they are `cases` in some order (for the order the hub chose). */
  async function currentOrder(page: Page, cases: string[] = ALL): Promise<string[]> {
    return until(
      async () => {
        const shown = await page
          .locator('[data-testid="worklist"] tbody tr')
          .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-case') ?? ''));
        return shown.length === cases.length && cases.every((sr) => shown.includes(sr)) ? shown : undefined;
      },
      `the worklist to show ${cases.join(', ')}`,
      UI_TIMEOUT_MS,
    );
  }

  test('sorting on the server by due date, reference number and last change, both ways, kept in the URL', async () => {
    const { page, problems } = await asCoordinator();
    const byChange = await currentOrder(page);
    const header = (name: string) => page.getByRole('columnheader', { name: new RegExp(`^${name}`) });
    expect(await header('Last change').getAttribute('aria-sort')).toBe('descending');

    // The order the hub's deadlines give now (MATCHING's is the offer's, which the hub set itself).
    const dues = await Promise.all(
      ALL.map(async (sr) => {
        const task = await fhirFetch(`${hub.url}/fhir/Task/coord-${sr}`, {
          headers: { authorization: `Bearer ${hub.ehr}` },
        });
        return [sr, Date.parse(task.body.restriction.period.end)] as const;
      }),
    );
    const byDue = [...dues].sort((a, b) => a[1] - b[1]).map(([sr]) => sr);
    expect([byDue[0], byDue[3]]).toEqual([OVERDUE, SHARED]);
    await header('Due').getByRole('button').click();
    await page.waitForURL(/sort=due/);
    await rowsBecome(page, byDue);
    expect(await header('Due').getAttribute('aria-sort')).toBe('ascending');
    expect(await header('Last change').getAttribute('aria-sort')).toBeNull();
    await header('Due').getByRole('button').click();
    await page.waitForURL(/order=desc/);
    await rowsBecome(page, [...byDue].reverse());
    expect(await header('Due').getAttribute('aria-sort')).toBe('descending');

    await header('Reference number').getByRole('button').click();
    await rowsBecome(page, sorted(ALL));
    await header('Reference number').getByRole('button').click();
    await rowsBecome(page, sorted(ALL).reverse());

    await header('Last change').getByRole('button').click();
    await rowsBecome(page, byChange);
    await header('Last change').getByRole('button').click();
    await rowsBecome(page, [...byChange].reverse());

    // Paging keeps the order: two a page, the next page continues it.
    await page.goto(`${hub.url}/dashboard?sort=due&count=2`);
    await rowsBecome(page, byDue.slice(0, 2));
    await page.getByRole('button', { name: 'Next page' }).click();
    await rowsBecome(page, byDue.slice(2));
    expect(problems).toEqual([]);
    await page.close();
  });

  test('a referring physician’s worklist shows their cases alone, whatever the filter, sort or search', async () => {
    const { context, page, problems } = await hub.signIn('paul@clinic.example.org', '?sort=due');
    await page.getByTestId('signed-in-role').getByText('referring-physician').waitFor({ timeout: UI_TIMEOUT_MS });
    await rowsBecome(page, [OVERDUE, MATCHING, SHARED]);
    expect(await row(page, MATCHING).getByTestId('next-action').textContent()).toBe(
      'Accept or decline the offer — Dr. Amelia Abernathy',
    );

    // Mine: the cases Paul referred, not the colleague's he was given.
    await page.getByLabel('Mine (cases I referred)').click();
    await page.waitForURL(/mine=1/);
    await rowsBecome(page, [OVERDUE, MATCHING]);
    await page.getByLabel(/^Mine/).click();
    await page.waitForURL((url) => !url.search.includes('mine'));
    // REVIEW is due this week and in report review, but not his: nothing.
    for (const url of ['due=week', 'state=report-review', 'mine=1&due=week', 'sort=reference&order=desc&due=week']) {
      await page.goto(`${hub.url}/dashboard?${url}`);
      await rowsBecome(page, []);
    }
    await page.goto(`${hub.url}/dashboard?specialty=${ONCOLOGY}`);
    await rowsBecome(page, [MATCHING]);
    await page.goto(`${hub.url}/dashboard?sort=reference&order=desc`);
    await rowsBecome(page, sorted(PAULS).reverse());
    const html = await page.content();
    expect(html).not.toContain(referenceNumbers[REVIEW]);
    expect(html).not.toContain('Cora');

    // The same at the API with the token the app holds: the worklist's own searches and an attacker's.
    const token = await appToken(page);
    const search = async (query: string) => {
      const answer = await fhirFetch(`${hub.url}/fhir/${query}`, { headers: { authorization: `Bearer ${token}` } });
      expect(answer.status).toBe(200);
      return (answer.body.entry ?? []).map((entry: any) => `${entry.resource.resourceType}/${entry.resource.id}`);
    };
    const later = new Date(loadedAt.getTime() + 400 * DAY_MS).toISOString();
    const coordinations = await search(`Task?code=${TASK_CODE}|coordination&due=lt${later}&_sort=due&_count=100`);
    expect(coordinations).toEqual([OVERDUE, MATCHING, SHARED].map((sr) => `Task/coord-${sr}`));
    const anyTask = await search(
      `Task?due=le${later}&_sort=-due&_revinclude=Task:part-of&_include=Task:owner&_count=100`,
    );
    expect(anyTask.filter((reference: string) => reference.includes(REVIEW))).toEqual([]);
    expect(anyTask).not.toContain('Practitioner/prac-c');
    expect(await search('Task?owner=Practitioner/prac-c')).toEqual([]);
    expect(await search(`Task?performer=${NUCC}|${ONCOLOGY}`)).toEqual([`Task/coord-${MATCHING}`]);
    // Probing through a Practitioner everyone may read: whether a Task Paul may not see, owned by
    // Cora, falls due before a date must not show. Paul's own offer, owned by Amelia, does (the control).
    const weekEnd = endOfWeek(loadedAt).toISOString();
    expect(await search(`Practitioner?_has:Task:owner:due=lt${weekEnd}`)).toEqual(['Practitioner/prac-s']);
    expect(await search(`Practitioner?_id=prac-c&_has:Task:owner:due=le${later}`)).toEqual([]);
    // The probe itself works: a system client, who sees every case, finds Cora by it.
    const probed = await fhirFetch(`${hub.url}/fhir/Practitioner?_id=prac-c&_has:Task:owner:due=le${later}`, {
      headers: { authorization: `Bearer ${hub.ehr}` },
    });
    expect(probed.body.entry.map((entry: any) => entry.resource.id)).toEqual(['prac-c']);
    expect(await search(`Practitioner?_id=prac-c&_has:Task:owner:business-status=report-review`)).toEqual([]);
    expect(await search(`Task?part-of:Task.due=le${later}&_id=approve-${REVIEW}`)).toEqual([]);
    const summary = await fhirFetch(`${hub.url}/fhir/Task?due=le${later}&_summary=count`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const ehrSummary = await fhirFetch(`${hub.url}/fhir/Task?due=le${later}&_summary=count`, {
      headers: { authorization: `Bearer ${hub.ehr}` },
    });
    expect(summary.body.total).toBeLessThan(ehrSummary.body.total);
    expect(summary.body.total).toBe(anyTask.filter((reference: string) => reference.startsWith('Task/')).length);
    expect(problems).toEqual([]);
    await context.close();
  });

  test('a change made elsewhere shows within 5 s without a reload', async () => {
    const { page, problems } = await asCoordinator();
    await row(page, SHARED).waitFor({ timeout: UI_TIMEOUT_MS });
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => navigations.push(frame.url()));
    // Another coordinator cancels SHARED through the API (its coordination Task's businessStatus).
    const other = await appToken(page);
    const task = (
      await fhirFetch(`${hub.url}/fhir/Task/coord-${SHARED}`, { headers: { authorization: `Bearer ${hub.ehr}` } })
    ).body;
    const moved = await fhirFetch(`${hub.url}/fhir/Task/coord-${SHARED}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${other}` },
      body: { ...task, ...state('cancelled') },
    });
    expect(moved.status).toBe(200);
    const changedAt = Date.now();
    await row(page, SHARED).getByTestId('case-state').getByText('Cancelled').waitFor({ timeout: LIVE_MS });
    expect(Date.now() - changedAt).toBeLessThan(LIVE_MS);
    // Once the hub applied the move, the clock stops and nobody holds a next action.
    await until(
      async () => (await row(page, SHARED).getByTestId('sla-clock').textContent()) === '—',
      'the cancelled case to lose its clock',
      UI_TIMEOUT_MS,
    );
    expect(await row(page, SHARED).getByTestId('next-action').textContent()).toBe('—');
    expect(navigations).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  });

  test('a coordinator takes a case from its page: it is theirs under "Mine"; a physician can do neither', async () => {
    const { page, problems } = await asCoordinator();
    await page.goto(`${hub.url}/dashboard/cases/${MATCHING}`);
    const holder = page.getByTestId('case-holder');
    await holder.getByText('No coordinator holds this case.').waitFor({ timeout: UI_TIMEOUT_MS });
    await holder.getByRole('button', { name: 'Take the case' }).click();
    await holder.getByText('You hold this case.').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await holder.getByRole('button').count()).toBe(0);
    const taken = await fhirFetch(`${hub.url}/fhir/Task/coord-${MATCHING}`, {
      headers: { authorization: `Bearer ${hub.ehr}` },
    });
    expect(taken.body.owner).toEqual({ reference: 'Practitioner/prac-c' });
    await page.goto(`${hub.url}/dashboard?mine=1`);
    await currentOrder(page, [MATCHING, REVIEW]);
    expect(problems).toEqual([]);
    await page.close();

    // Paul referred MATCHING: its page shows him no holder and no control, and the hub refuses his write.
    const paul = await hub.signIn('paul@clinic.example.org', `/cases/${MATCHING}`);
    await paul.page
      .getByText(referenceNumbers[MATCHING] as string)
      .first()
      .waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await paul.page.getByTestId('case-holder').count()).toBe(0);
    const paulsToken = await appToken(paul.page);
    const grab = await fhirFetch(`${hub.url}/fhir/Task/coord-${MATCHING}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${paulsToken}` },
      body: { ...taken.body, meta: undefined, owner: { reference: 'Practitioner/prac-phys' } },
    });
    expect(grab.status).toBe(403);
    const after = await fhirFetch(`${hub.url}/fhir/Task/coord-${MATCHING}`, {
      headers: { authorization: `Bearer ${hub.ehr}` },
    });
    expect(after.body.owner).toEqual({ reference: 'Practitioner/prac-c' });
    expect(paul.problems).toEqual([]);
    await paul.context.close();
  });
});
