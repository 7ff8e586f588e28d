/**
 * The coordinators' and admins' screens of the web app in Chromium, against a hub process with
 * AUTH_REQUIRED=true on PostgreSQL and Redis:
 * - the reconciliation inbox: real DICOM studies (pydicom's CT, given other patients by dcmodify)
 *   stored over STOW-RS by a PACS client match no case, or two; a coordinator sees each study's DICOM
 *   identity and thumbnail beside the candidate cases, attaches one to a case (whose ImagingStudy
 *   then shows it), rejects another, and attaches the ambiguous one to a candidate;
 * - the queues: a notification job that fails for real (its recipient has no e-mail address) is
 *   dead-lettered, and once the address is there a coordinator retries it from the Queues screen;
 * - Bull Board: an admin opens it from the Queues screen; a coordinator, a physician, a signed-out
 *   admin and an anonymous browser are refused, and it changes nothing;
 * - a referring physician sees neither screen, and a physician and a specialist whose cases are the
 *   ambiguous study's candidates can neither see nor resolve its reconciliation.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { recordNotification } from '../src/workflow/jobs/notifications.ts';
import { clientToken } from './support/client-token.ts';
import { runDcmtk } from './support/dicom/test-peer.ts';
import { opinionCaseFixtures } from './support/opinion-case.ts';
import { stow } from './support/stow.ts';
import { fhirFetch } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { UI_TIMEOUT_MS, appToken, axeFindings, watchPage } from './support/web-app.ts';
import { ACCOUNTS, practitioners, startWebHub } from './support/web-hub.ts';
import type { WebAccount, WebHub } from './support/web-hub.ts';

/** A second coordinator: an authenticator code is taken once, and two sign-ins may fall in one step. */
const COLIN = { email: 'colin@hub.example.org', role: 'coordinator' } as const satisfies WebAccount;
/** A third coordinator, for the claim's test: each sign-in takes an authenticator code of its own. */
const CLAIRE = { email: 'claire@hub.example.org', role: 'coordinator' } as const satisfies WebAccount;
/** The admin, who alone opens Bull Board. */
const ADA = { email: 'ada@hub.example.org', role: 'admin' } as const satisfies WebAccount;
const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
const REFERENCE = 'urn:hub:reference-number';
const RECONCILE_SEARCH = `Task?code=${encodeURIComponent('urn:hub:task-code|reconcile-imaging')}`;
const MINE = 'sr-ops-mine';
const OTHER = 'sr-ops-other';
const token = (): string => randomBytes(4).toString('hex').toUpperCase();
const dicomUid = (): string => `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`)}`;

interface StoredStudy {
  uid: string;
  imagingStudyId: string;
  taskId: string;
}

describe('the reconciliation and queue screens in Chromium', () => {
  let hub: WebHub;
  const accession = { shared: `ACC-${token()}`, attached: `ACC-${token()}`, rejected: `ACC-${token()}` };
  const references = { mine: generateReferenceNumber(() => 4), other: generateReferenceNumber(() => 6) };
  const studies: Record<'attached' | 'rejected' | 'ambiguous', StoredStudy> = {} as never;

  const asEhr = () => ({ authorization: `Bearer ${hub.ehr}` });
  const read = async (reference: string): Promise<any> => {
    const response = await fhirFetch(`${hub.url}/fhir/${reference}`, { headers: asEhr() });
    expect(response.status).toBe(200);
    return response.body;
  };

  /** A one-instance CT study of a patient of our choosing, as a modality would send it. */
  async function dicomStudy(attributes: Record<string, string>): Promise<{ uid: string; bytes: Buffer }> {
    const file = path.join(hub.dataDir, `${token()}.dcm`);
    await fsp.copyFile(CT_SMALL, file);
    const uid = dicomUid();
    const set = { '0020,000D': uid, ...attributes };
    const run = await runDcmtk('dcmodify', [
      '-nb',
      '-gse',
      '-gin',
      ...Object.entries(set).flatMap(([tag, value]) => ['-i', `(${tag})=${value}`]),
      file,
    ]);
    expect(run).toMatchObject({ code: 0 });
    return { uid, bytes: await fsp.readFile(file) };
  }

  async function storedStudy(uid: string): Promise<StoredStudy> {
    const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`);
    const study = await until(async () => {
      const found = await fhirFetch(`${hub.url}/fhir/ImagingStudy?identifier=${identifier}`, { headers: asEhr() });
      return found.body.entry?.[0]?.resource as { id: string } | undefined;
    }, `the ImagingStudy of ${uid}`);
    const task = await until(async () => {
      const value = encodeURIComponent(`urn:hub:case-resource|reconcile-imaging/${study.id}`);
      const found = await fhirFetch(`${hub.url}/fhir/Task?identifier=${value}`, { headers: asEhr() });
      return found.body.entry?.[0]?.resource as { id: string } | undefined;
    }, `the reconciliation Task of ${uid}`);
    return { uid, imagingStudyId: study.id, taskId: task.id };
  }

  beforeAll(async () => {
    hub = await startWebHub({
      name: 'ops',
      ehrClientId: 'ops-ehr',
      accounts: [ACCOUNTS.cora, COLIN, CLAIRE, ADA, ACCOUNTS.paul, ACCOUNTS.amelia],
    });

    // Two cases in specialist review, Paul's and another physician's, whose requests share an
    // accession number (a RIS that reused one): a study with it matches both.
    const caseOf = (sr: string, reference: string, patient: Record<string, unknown>, requester: string) =>
      opinionCaseFixtures(sr, reference).map((resource) =>
        resource.resourceType === 'ServiceRequest'
          ? {
              ...resource,
              requester: { reference: requester },
              identifier: [
                { system: REFERENCE, value: reference },
                { system: 'urn:example:ris', value: accession.shared },
              ],
            }
          : resource.resourceType === 'Patient'
            ? { ...resource, ...patient }
            : resource,
      );
    const fixtures = [
      ...practitioners('prac-c', 'prac-phys', 'prac-other', 'prac-s'),
      ...caseOf(MINE, references.mine, { birthDate: '1961-04-23' }, 'Practitioner/prac-phys'),
      ...caseOf(
        OTHER,
        references.other,
        { name: [{ given: ['Ingrid'], family: 'Vandermeer' }], birthDate: '1958-03-14' },
        'Practitioner/prac-other',
      ),
    ];
    const loaded = await hub.load(hub.ehr, fixtures);
    expect(loaded.status).toBe(200);
    await hub.settled();

    // A PACS sends three studies: two whose identity names no case, one with the shared accession.
    const pacs = await clientToken(hub.place, 'ops-pacs', 'system/ImagingStudy.crs');
    const attached = await dicomStudy({
      '0008,0050': accession.attached,
      '0010,0010': 'Vandermeer^Ingrid',
      '0010,0020': `MRN-${token()}`,
      '0010,0030': '19580314',
    });
    const rejected = await dicomStudy({
      '0008,0050': accession.rejected,
      '0010,0010': 'Okafor^Tobenna',
      '0010,0020': `MRN-${token()}`,
      '0010,0030': '19770812',
    });
    const ambiguous = await dicomStudy({
      '0008,0050': accession.shared,
      '0010,0010': 'Quintero^Olivia',
      '0010,0020': `MRN-${token()}`,
      '0010,0030': '19610423',
    });
    const sent = await stow(hub.url, [attached.bytes, rejected.bytes, ambiguous.bytes], {
      authorization: `Bearer ${pacs}`,
    });
    expect(sent.status).toBe(200);
    studies.attached = await storedStudy(attached.uid);
    studies.rejected = await storedStudy(rejected.uid);
    studies.ambiguous = await storedStudy(ambiguous.uid);
    await hub.settled();
    expect((await read(`Task/${studies.ambiguous.taskId}`)).businessStatus.coding[0].code).toBe('ambiguous');
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
  });

  test('a referring physician sees neither screen, and the hub refuses both to a physician and a specialist', async () => {
    const { context, page, problems } = await hub.signIn(ACCOUNTS.paul.email, '/reconciliation');
    await page.waitForURL('**/dashboard/reconciliation');
    const refusal = page.getByTestId('staff-only');
    await refusal.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await refusal.textContent()).toContain('Reconciliation is for coordinators and admins');
    await page.getByTestId('signed-in-role').getByText('referring-physician').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByRole('link', { name: 'Reconciliation' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Queues' }).count()).toBe(0);
    await page.goto(`${hub.url}/dashboard/queues`);
    await refusal.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await refusal.textContent()).toContain('Queues is for coordinators and admins');
    expect(await page.content()).not.toContain('Okafor');
    expect(problems).toEqual([]);

    const physician = await appToken(page);
    const specialist = await hub.token(ACCOUNTS.amelia.email);
    for (const [who, bearer] of [
      ['physician', physician],
      ['specialist', specialist],
    ] as const) {
      const as = { authorization: `Bearer ${bearer}` };
      // The queue view and Bull Board's hand-over.
      for (const [method, url] of [
        ['GET', '/admin/queues'],
        ['GET', '/admin/queues/dead-letter'],
        ['POST', '/admin/queues/dead-letter/x/retry'],
        ['POST', '/admin/queues/board/session'],
        ['GET', '/admin/queues/board'],
      ] as const) {
        expect({ who, url, status: (await fetch(`${hub.url}${url}`, { method, headers: as })).status }).toEqual({
          who,
          url,
          status: 403,
        });
      }
      // The ambiguous study's Task names both their cases: they neither see it nor can resolve it.
      const search = await fhirFetch(`${hub.url}/fhir/${RECONCILE_SEARCH}`, { headers: as });
      expect({ who, status: search.status, entries: search.body.entry ?? [] }).toEqual({
        who,
        status: 200,
        entries: [],
      });
      const task = await read(`Task/${studies.ambiguous.taskId}`);
      expect((await fhirFetch(`${hub.url}/fhir/Task/${task.id}`, { headers: as })).status).toBe(404);
      const { meta: _meta, ...fields } = task;
      for (const change of [
        { status: 'rejected', statusReason: { text: 'not ours' } },
        {
          status: 'completed',
          output: [{ type: { text: 'case' }, valueReference: { reference: `ServiceRequest/${MINE}` } }],
        },
      ]) {
        const write = await fhirFetch(`${hub.url}/fhir/Task/${task.id}`, {
          method: 'PUT',
          headers: as,
          body: { ...fields, ...change },
        });
        expect({ who, refused: [403, 404].includes(write.status) }).toEqual({ who, refused: true });
      }
      // The unmatched studies are not theirs either, over DICOMweb.
      const qido = await fetch(`${hub.url}/dicomweb/studies?StudyInstanceUID=${studies.rejected.uid}`, {
        headers: { ...as, accept: 'application/dicom+json' },
      });
      expect(await qido.json()).toEqual([]);
      const thumbnail = await fetch(`${hub.url}/dicomweb/studies/${studies.rejected.uid}/thumbnail`, { headers: as });
      expect(thumbnail.status).toBe(404);
    }
    expect((await read(`Task/${studies.ambiguous.taskId}`)).status).toBe('requested');

    // Nobody signed in: refused everywhere, the board's page saying where to open it.
    for (const url of ['/admin/queues', '/admin/queues/dead-letter', `/fhir/${RECONCILE_SEARCH}`]) {
      expect({ url, status: (await fetch(`${hub.url}${url}`)).status }).toEqual({ url, status: 401 });
    }
    const board = await fetch(`${hub.url}/admin/queues/board`);
    expect(board.status).toBe(401);
    expect(await board.text()).toContain('Open Bull Board from the Queues screen');
    expect((await fetch(`${hub.url}/admin/queues/board/session`, { method: 'POST' })).status).toBe(401);
    await context.close();
  });

  test('a coordinator sees each study beside its candidate cases, attaches one, rejects another', async () => {
    const { context, page, problems } = await hub.signIn(ACCOUNTS.cora.email, '', {
      viewport: { width: 1280, height: 800 },
    });
    await page.getByTestId('signed-in-role').getByText('coordinator').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByRole('navigation', { name: 'Operations' }).getByRole('link', { name: 'Reconciliation' }).click();
    await page.waitForURL('**/dashboard/reconciliation');

    const card = (study: StoredStudy) => page.locator(`article[data-task="${study.taskId}"]`);
    const attached = card(studies.attached);
    await attached.waitFor({ timeout: UI_TIMEOUT_MS });
    await card(studies.rejected).waitFor({ timeout: UI_TIMEOUT_MS });
    await card(studies.ambiguous).waitFor({ timeout: UI_TIMEOUT_MS });
    const field = (locator: typeof attached, name: string) => locator.locator(`[data-field="${name}"]`);
    await field(attached, 'patient-name').getByText('Vandermeer, Ingrid').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await field(attached, 'birth-date').textContent()).toBe('1958-03-14');
    expect(await field(attached, 'accession').textContent()).toBe(accession.attached);
    expect(await field(attached, 'patient-id').textContent()).toMatch(/^MRN-/);
    expect(await field(attached, 'modality').textContent()).toBe('CT');
    expect(await field(attached, 'study-date').textContent()).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(await attached.getByTestId('reason').textContent()).toBe('Matched no case');
    // The thumbnail is the hub's rendering of the study, fetched with the coordinator's token.
    const thumbnail = attached.getByRole('img', { name: /^Thumbnail of the study of Vandermeer/ });
    await thumbnail.waitFor({ timeout: UI_TIMEOUT_MS });
    await until(
      async () => (await thumbnail.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)) > 0,
      'the thumbnail to be drawn',
    );
    // The ambiguous study shows its two candidate cases, with their patients.
    const ambiguous = card(studies.ambiguous);
    expect(await ambiguous.getByTestId('reason').textContent()).toBe('Matched several cases');
    await ambiguous
      .locator(`[data-case-option="${MINE}"]`)
      .getByText('Olivia Quintero')
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await ambiguous.locator(`[data-case-option="${OTHER}"]`).getByText('Ingrid Vandermeer').waitFor({
      timeout: UI_TIMEOUT_MS,
    });
    expect(await axeFindings(page)).toEqual([]);

    // The study's birth date finds Ingrid Vandermeer's case, not Olivia Quintero's; so does its
    // reference number, by which the coordinator attaches the study to it.
    await attached.getByRole('button', { name: 'Cases of patients born 1958-03-14, as the study says' }).click();
    await attached.locator(`[data-case-option="${OTHER}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await attached.locator(`[data-case-option="${MINE}"]`).count()).toBe(0);
    await attached.getByLabel('Reference number, accession number or patient name').fill(references.other);
    await attached.getByRole('button', { name: 'Search cases' }).click();
    const option = attached.locator(`[data-case-option="${OTHER}"]`);
    await option.getByText('Ingrid Vandermeer').waitFor({ timeout: UI_TIMEOUT_MS });
    await option.getByRole('button', { name: `Attach to ${references.other}` }).click();
    await option.getByRole('button', { name: 'Confirm attaching' }).click();
    await page
      .getByTestId('reconcile-notice')
      .getByText(`case ${references.other}`)
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await attached.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    const matched = await until(
      async () => {
        const study = await read(`ImagingStudy/${studies.attached.imagingStudyId}`);
        return study.basedOn?.[0]?.reference === `ServiceRequest/${OTHER}` ? study : undefined;
      },
      'the study to be attached to the case',
      60_000,
    );
    expect(matched.subject).toEqual({ reference: `Patient/pat-${OTHER}` });
    const ofCase = await fhirFetch(`${hub.url}/fhir/ImagingStudy?based-on=ServiceRequest/${OTHER}`, {
      headers: asEhr(),
    });
    expect(ofCase.body.entry.map((entry: any) => entry.resource.id)).toContain(studies.attached.imagingStudyId);
    const completed = await read(`Task/${studies.attached.taskId}`);
    expect(completed.status).toBe('completed');
    expect(completed.meta.source).toMatch(/^urn:hub:actor:coordinator:/);

    // Reject the second, with the reason.
    const rejected = card(studies.rejected);
    await rejected.getByRole('button', { name: 'Reject the study' }).click();
    await rejected.getByLabel('Why is this study rejected?').fill('Sent by a clinic we do not work with');
    await rejected.getByRole('button', { name: 'Confirm rejecting' }).click();
    await rejected.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    const turnedAway = await read(`Task/${studies.rejected.taskId}`);
    expect(turnedAway).toMatchObject({
      status: 'rejected',
      statusReason: { text: 'Sent by a clinic we do not work with' },
    });
    await hub.settled();
    expect((await read(`ImagingStudy/${studies.rejected.imagingStudyId}`)).basedOn).toBeUndefined();

    // The ambiguous one goes to the candidate it belongs to; the inbox is then empty.
    const candidate = ambiguous.locator(`[data-case-option="${MINE}"]`);
    await candidate.getByRole('button', { name: `Attach to ${references.mine}` }).click();
    await candidate.getByRole('button', { name: 'Confirm attaching' }).click();
    await page.getByTestId('reconcile-empty').waitFor({ timeout: UI_TIMEOUT_MS });
    await until(
      async () =>
        (await read(`ImagingStudy/${studies.ambiguous.imagingStudyId}`)).basedOn?.[0]?.reference ===
        `ServiceRequest/${MINE}`,
      'the ambiguous study to be attached',
      60_000,
    );
    expect(problems).toEqual([]);
    await context.close();
  });

  test('a dead-lettered job is retried from the Queues screen and leaves the dead-letter list', async () => {
    // A notification to a physician the hub has no e-mail address for fails for good.
    const practitioner = await fhirFetch(`${hub.url}/fhir/Practitioner`, {
      method: 'POST',
      headers: asEhr(),
      body: { resourceType: 'Practitioner', name: [{ family: 'Noaddress' }] },
    });
    expect(practitioner.status).toBe(201);
    const recipient = `Practitioner/${practitioner.body.id}`;
    const notification = await hub.db.transaction((tx) =>
      recordNotification(
        tx,
        { kind: 'report-released', recipient, caseReference: `ServiceRequest/${MINE}`, dedupeKey: `ops-${token()}` },
        'hub.example.org',
      ),
    );
    const notificationStatus = async (): Promise<string | undefined> =>
      (await hub.db.query<{ status: string }>('SELECT status FROM notification WHERE id = $1', [notification.id]))
        .rows[0]?.status;
    await until(async () => (await notificationStatus()) === 'failed', 'the notification to fail', 60_000);

    const { context, page, problems } = await hub.signIn(COLIN.email, '', { viewport: { width: 800, height: 900 } });
    await page.getByRole('navigation', { name: 'Operations' }).getByRole('link', { name: 'Queues' }).click();
    await page.waitForURL('**/dashboard/queues');
    const counts = page.getByTestId('queue-counts').locator('tr[data-queue="notifications"]');
    await counts.locator('[data-count="deadLettered"]').getByText('1').waitFor({ timeout: UI_TIMEOUT_MS });
    const entry = page.locator('tr[data-dead-letter]').filter({ hasText: notification.id });
    await entry.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await entry.getByTestId('dead-letter-error').textContent()).toBe(
      `recipient ${recipient} has no e-mail address`,
    );
    // Bull Board is the admins': no way to it here, and the hub refuses the coordinator's token.
    expect(await page.getByRole('button', { name: 'Open Bull Board' }).count()).toBe(0);
    const coordinator = { authorization: `Bearer ${await appToken(page)}` };
    expect(
      (await fetch(`${hub.url}/admin/queues/board/session`, { method: 'POST', headers: coordinator })).status,
    ).toBe(403);
    expect((await fetch(`${hub.url}/admin/queues/board`, { headers: coordinator })).status).toBe(403);
    expect(await axeFindings(page)).toEqual([]);

    // Put right what failed, then retry from the screen: the same job runs again and sends the e-mail.
    const updated = await fhirFetch(`${hub.url}/fhir/Practitioner/${practitioner.body.id}`, {
      method: 'PUT',
      headers: asEhr(),
      body: { ...practitioner.body, telecom: [{ system: 'email', value: 'noaddress@clinic.example.org' }] },
    });
    expect(updated.status).toBe(200);
    await entry.getByRole('button', { name: /^Retry job / }).click();
    await entry.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    await page.getByTestId('dead-letters-empty').waitFor({ timeout: UI_TIMEOUT_MS });
    await until(async () => (await notificationStatus()) === 'sent', 'the retried notification to be sent', 60_000);
    await counts.locator('[data-count="deadLettered"]').getByText('0').waitFor({ timeout: UI_TIMEOUT_MS });
    const listed = await fetch(`${hub.url}/admin/queues/dead-letter`, { headers: coordinator });
    expect(((await listed.json()) as { entries: unknown[] }).entries).toEqual([]);
    expect(problems).toEqual([]);
    await context.close();
  });

  test('an admin opens Bull Board from the Queues screen: read-only, under its own CSP, ended by signing out', async () => {
    const { context, page, problems } = await hub.signIn(ADA.email, '/queues');
    await page.waitForURL('**/dashboard/queues');
    const [tab] = await Promise.all([
      context.waitForEvent('page'),
      page.getByRole('button', { name: 'Open Bull Board' }).click(),
    ]);
    await tab.waitForURL('**/admin/queues/board');
    await tab.close();

    const board = await context.newPage();
    const boardProblems = watchPage(board);
    const response = await board.goto(`${hub.url}/admin/queues/board`);
    expect(response?.status()).toBe(200);
    const csp = (await response?.headerValue('content-security-policy')) ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toMatch(/https?:/);
    await board.getByText('case-materials').first().waitFor({ timeout: UI_TIMEOUT_MS });
    await board.getByText('notifications').first().waitFor({ timeout: UI_TIMEOUT_MS });
    // The board changes nothing, whatever its page is made to send.
    const write = await board.evaluate(async () => {
      const attempt = await fetch('/admin/queues/board/api/queues/notifications/retry/failed', { method: 'PUT' });
      return attempt.status;
    });
    expect(write).toBe(405);
    expect(boardProblems).toEqual([]);

    // Signing out of the web app ends the board's visit too (the session its token belongs to).
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: UI_TIMEOUT_MS });
    const after = await board.goto(`${hub.url}/admin/queues/board`);
    expect(after?.status()).toBe(401);
    expect(problems).toEqual([]);
    await context.close();
  });

  test('a case’s claim that refused a PACS’s instances: a coordinator confirms it, and they then join the study', async () => {
    // Paul stores his patient's CD into his case: the study is the case's, on his word.
    const cd = await dicomStudy({ '0010,0010': 'Quintero^Olivia', '0010,0020': 'CD-7788', '0010,0030': '19610423' });
    const paul = { authorization: `Bearer ${await hub.token(ACCOUNTS.paul.email)}` };
    expect((await stow(hub.url, [cd.bytes], paul, `?case=${MINE}`)).status).toBe(200);
    // The hospital's PACS sends the same study under its own identifiers: refused.
    const hospital = await dicomStudy({
      '0020,000D': cd.uid,
      '0010,0010': 'QUINTERO^OLIVIA',
      '0010,0020': 'RAD-7788',
      '0010,0021': 'GENERAL-HOSPITAL',
      '0010,0030': '19610423',
    });
    const pacs = {
      authorization: `Bearer ${await clientToken(hub.place, 'ops-pacs-claim', 'system/ImagingStudy.crs')}`,
    };
    const refused = await stow(hub.url, [hospital.bytes], pacs);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as any)['00081198'].Value[0]['00081197'].Value[0]).toBe(0x0124);

    // A coordinator finds it in the reconciliation inbox, and confirms the case's claim.
    const { context, page, problems } = await hub.signIn(CLAIRE.email, '/reconciliation');
    await page.waitForURL('**/dashboard/reconciliation');
    const claim = page.getByRole('article', { name: 'Refused instances of the study of Quintero, Olivia' });
    await claim.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await claim.getByTestId('reason').textContent()).toBe('Instances refused by a case’s claim');
    expect(await claim.getByRole('link', { name: 'the case' }).getAttribute('href')).toBe(`/dashboard/cases/${MINE}`);
    expect(await axeFindings(page)).toEqual([]);
    await claim.getByRole('button', { name: 'Confirm the claim' }).click();
    await claim.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    await page.getByTestId('reconcile-notice').waitFor({ timeout: UI_TIMEOUT_MS });

    // Sent again, the PACS's instance joins the case's study.
    await until(async () => (await stow(hub.url, [hospital.bytes], pacs)).status === 200, 'the PACS instance stored');
    const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${cd.uid}`);
    await until(async () => {
      const found = await fhirFetch(`${hub.url}/fhir/ImagingStudy?identifier=${identifier}`, { headers: asEhr() });
      const study = found.body.entry?.[0]?.resource;
      return study?.numberOfInstances === 2 && study.basedOn?.[0]?.reference === `ServiceRequest/${MINE}`;
    }, 'the case’s study with both instances');
    expect(problems).toEqual([]);
    await context.close();
  });
});
