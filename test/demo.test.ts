/**
 * `npm run demo:setup` then `npm run demo` end to end, as the README runs them: the setup registers
 * the demo's parties in a fresh PostgreSQL database, a hub process runs as `npm start` does with
 * AUTH_REQUIRED=true (DIMSE on a free port, a temporary DATA_DIR, SMTP to a real SMTP server started
 * here), and the demo script runs as a child process against it, every party with its own token. The
 * demo itself fails (exit 1) when any step's result does not appear in the API; the test then checks
 * who the hub recorded as the writer of each move (meta.source), and the status e-mails the case
 * sent: one per (state, recipient) of src/workflow/case-notifications.ts, each with the link to the
 * case and nothing of the patient.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import pg from 'pg';
import { NODE_BIN, REPO_ROOT, cleanEnvironment, startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { createTestDatabase } from './support/test-hub.ts';
import { freePort } from './support/free-port.ts';
import { until } from './support/until.ts';
import { defined } from './support/defined.ts';

const PUBLIC_BASE = 'https://hub.example.org';
const PHYSICIAN = 'a.okonkwo@referrer.example.org';
const PATIENT = 'harriet.demoperson@patient.example.org';

/** Runs a demo script with exactly `env` as its configuration (nothing leaks in from the test runner's). */
function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, [script, ...args], {
      cwd: REPO_ROOT,
      env: { ...cleanEnvironment(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The first id after `prefix` in the demo's output. */
function idAfter(stdout: string, prefix: RegExp): string {
  const id = new RegExp(`${prefix.source}([A-Za-z0-9.-]+)`).exec(stdout)?.[1];
  if (!id) {
    throw new Error(`the demo printed no ${prefix.source}`);
  }
  return id;
}

interface Version {
  version: number;
  resource: any;
}

describe('npm run demo:setup, then npm run demo against a running hub that requires authentication', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let sink: SmtpSink;
  let hub: HubProcess;
  let dimsePort: number;
  let sql: pg.Client;
  let setup: { code: number | null; stdout: string; stderr: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-demo-'));
    sink = await startSmtpSink();
    dimsePort = await freePort();
    setup = await runScript('demo/setup.ts', [], { DATABASE_URL: database.url, DATA_DIR: dataDir });
    hub = await startHubProcess(
      {
        DATABASE_URL: database.url,
        DATA_DIR: dataDir,
        AUTH_REQUIRED: 'true',
        DIMSE_PORT: String(dimsePort),
        SMTP_URL: sink.url,
        BASE_URL: PUBLIC_BASE,
        MAIL_FROM: 'Second Opinion Hub <no-reply@hub.example.org>',
        OUTBOX_POLL_MS: '100',
        // The demo's EHR receives its notifications on this machine, as the README starts the hub.
        SUBSCRIPTION_ALLOWED_NETWORKS: '127.0.0.1/32',
      },
      60_000,
    );
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
  }, 90_000);

  afterAll(async () => {
    await sql?.end();
    await hub?.stop();
    await sink?.close();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const versions = async (type: string, id: string): Promise<Version[]> =>
    (
      await sql.query<{ version: number; content: string }>(
        'SELECT version, content FROM resource_version WHERE resource_type = $1 AND id = $2 ORDER BY version',
        [type, id],
      )
    ).rows.map((row) => ({ version: row.version, resource: JSON.parse(row.content) }));

  test('the setup registers the clients and accounts and writes their secrets for its owner only; run again, it changes nothing', async () => {
    expect({ code: setup.code, stderr: setup.stderr }).toEqual({ code: 0, stderr: '' });
    const file = path.join(dataDir, 'demo', 'credentials.json');
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    const credentials = JSON.parse(await fs.readFile(file, 'utf8'));
    expect(setup.stdout).not.toContain(credentials.people.coordinator.password);
    expect(setup.stdout).not.toContain(credentials.people.coordinator.totpSecret);
    const clients = await sql.query<{ id: string; public: boolean; scopes: string }>(
      // The demo's clients (the hub registers clients of its own, such as its web app's).
      "SELECT id, public, scopes FROM auth_client WHERE id LIKE 'demo-%' ORDER BY id",
    );
    expect(clients.rows).toEqual([
      { id: 'demo-app', public: true, scopes: 'openid fhirUser user/*.cruds' },
      { id: 'demo-ehr', public: false, scopes: 'system/*.cruds' },
      { id: 'demo-registration', public: false, scopes: 'system/*.cruds' },
    ]);
    const users = await sql.query<{ role: string; fhir_user: string | null; totp: boolean }>(
      'SELECT role, fhir_user, totp_secret IS NOT NULL AS totp FROM auth_user ORDER BY role, fhir_user',
    );
    expect(users.rows).toEqual([
      { role: 'coordinator', fhir_user: null, totp: true },
      { role: 'radiologist', fhir_user: 'Practitioner/demo-radiologist', totp: true },
      // Not staff: the physician signs in with a password alone.
      { role: 'referring-physician', fhir_user: 'Practitioner/demo-referring-physician', totp: false },
      { role: 'specialist', fhir_user: 'Practitioner/demo-oncologist', totp: true },
      { role: 'specialist', fhir_user: 'Practitioner/demo-oncology-fellow', totp: true },
      { role: 'specialist', fhir_user: 'Practitioner/demo-pulmonologist', totp: true },
      { role: 'specialist', fhir_user: 'Practitioner/demo-thoracic-oncologist', totp: true },
    ]);

    expect(credentials.people['referring-physician']).toEqual({
      email: PHYSICIAN,
      password: expect.any(String),
      role: 'referring-physician',
      practitionerId: 'demo-referring-physician',
    });

    const again = await runScript('demo/setup.ts', [], { DATABASE_URL: database.url, DATA_DIR: dataDir });
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stdout).toMatch(/registered already/);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual(credentials);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  });

  test('a setup by an earlier demo without the physician gets the physician added, and everything else kept', async () => {
    const file = path.join(dataDir, 'demo', 'credentials.json');
    const credentials = JSON.parse(await fs.readFile(file, 'utf8'));
    const { 'referring-physician': _physician, ...earlier } = credentials.people;
    await fs.writeFile(file, JSON.stringify({ ...credentials, people: earlier }), { mode: 0o600 });
    await sql.query("DELETE FROM auth_user WHERE role = 'referring-physician'");

    const upgrade = await runScript('demo/setup.ts', [], { DATABASE_URL: database.url, DATA_DIR: dataDir });
    expect({ code: upgrade.code, stderr: upgrade.stderr }).toEqual({ code: 0, stderr: '' });
    expect(upgrade.stdout).toMatch(
      /referring-physician account \(password only\) linked to Practitioner\/demo-referring-physician/,
    );
    expect(upgrade.stdout).not.toMatch(/system clients/);
    const upgraded = JSON.parse(await fs.readFile(file, 'utf8'));
    expect(upgraded).toEqual({
      ...credentials,
      people: {
        ...earlier,
        'referring-physician': { ...credentials.people['referring-physician'], password: expect.any(String) },
      },
    });
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    const physicians = await sql.query("SELECT fhir_user FROM auth_user WHERE role = 'referring-physician'");
    expect(physicians.rows).toEqual([{ fhir_user: 'Practitioner/demo-referring-physician' }]);

    const again = await runScript('demo/setup.ts', [], { DATABASE_URL: database.url, DATA_DIR: dataDir });
    expect(again.stdout).toMatch(/registered already/);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual(upgraded);
  });

  test('plays the case to the end with every party signed in as itself, the EHR told on its receiver, declines New Mexico before registration, and every e-mail arrives once, link only', async () => {
    const anonymous = await fetch(`${hub.url}/fhir/Patient`);
    expect(anonymous.status).toBe(401);

    const local = new URL(hub.url);
    const run = await runScript(
      'demo/demo.ts',
      ['--url', hub.url, '--dimse-host', local.hostname, '--dimse-port', String(dimsePort), '--timeout-seconds', '150'],
      { DATA_DIR: dataDir },
    );
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/the coordinator signed in \(authorization code \+ PKCE, TOTP\)/);
    expect(run.stdout).toMatch(/submitted \(requested\)/);
    expect(run.stdout).toMatch(/Imaging review, per imaging site .* × {2}2 +\$750\.00 {2}planned/);
    expect(run.stdout).toMatch(/page count read from the PDF: 4/);
    expect(run.stdout).toMatch(/CT \(by accession number\): ImagingStudy\/\S+ matched/);
    expect(run.stdout).toMatch(/MR \(by reference number as PatientID\): ImagingStudy\/\S+ matched/);
    expect(run.stdout).toMatch(/offered to Dr\. Demo Abernathy, due \d{4}-\d\d-\d\dT/);
    expect(run.stdout).toMatch(/Castellano: a fellow/);
    expect(run.stdout).toMatch(/Patient\/\$register: HTTP 422, not registered: .*New Mexico/);
    expect(run.stdout).toMatch(
      /case specialist-review: The move to "report-review" was refused: The letter is not complete: The letter has no section for the recommendation\./,
    );
    expect(run.stdout).toMatch(/case report-review; Task\/\S+ \(approve\) focus DiagnosticReport\//);
    expect(run.stdout).toMatch(
      /case specialist-review: The report was returned to the specialist: Name the pre-review report in the summary\./,
    );
    expect(run.stdout).toMatch(
      /case report-released; the coordination Task's output: DiagnosticReport\/\S+, DocumentReference\//,
    );
    expect(run.stdout).toMatch(/the EHR \(a system client\) may read it: HTTP 200; the physician may not: HTTP 404/);
    expect(run.stdout).toMatch(
      /the referring physician \(Practitioner\/demo-referring-physician\) signed in \(authorization code \+ PKCE, password only: not staff\)/,
    );
    expect(run.stdout).toMatch(/case awaiting-information; the specialist's Task\/\S+ on-hold/);
    expect(run.stdout).toMatch(/the question: "Was the patient ever a smoker/);
    expect(run.stdout).toMatch(
      /Communication\/\S+ in response, written by urn:hub:actor:referring-physician:demo-referring-physician/,
    );
    expect(run.stdout).toMatch(/case specialist-review; Task\/\S+ in-progress, due \d{4}-/);
    expect(run.stdout).toMatch(/DiagnosticReport\/\S+: final; Binary\/\S+: \d+ bytes of PDF\n/);
    expect(run.stdout).toMatch(/the case stays report-released/);
    expect(run.stdout).toMatch(/case report-accessed: the report is released to Patient\//);
    expect(run.stdout).toMatch(/the specialist reads it: "Should the PET-CT come before or after the tumour board\?"/);
    expect(run.stdout).toMatch(
      /written by urn:hub:actor:specialist:demo-thoracic-oncologist; the physician is e-mailed and reads it/,
    );
    expect(run.stdout).toMatch(/a draft: the physician gets HTTP 404/);
    expect(run.stdout).toMatch(/\(approve\) requested, focus Composition\/\S+: "Review the addendum/);
    expect(run.stdout).toMatch(/DiagnosticReport\/\S+ appended, issued .*; case report-accessed/);
    expect(run.stdout).toMatch(/DiagnosticReport\/\S+: appended; Binary\/\S+: \d+ bytes of PDF, fetched by the EHR/);
    expect(run.stdout).toMatch(/the EHR deleted its subscriptions/);
    const serviceRequestId = /Demo finished: ServiceRequest\/(\S+)'s opinion was released, read by its physician/.exec(
      run.stdout,
    )?.[1];
    expect(serviceRequestId).toBeDefined();

    // What the EHR's receiver was told (as the demo printed it): every state from the question on, the
    // question, the release and the addendum, numbered per subscription without a gap, ids only.
    const coordinationId = idAfter(run.stdout, /coordination Task\//);
    const reportId = idAfter(run.stdout, /Task\/\S+ \(approve\) focus DiagnosticReport\//);
    const told = [
      ...run.stdout.matchAll(
        /the EHR's receiver got: event-notification of ([a-z-]+) \(Subscription\/\S+\) event (\d+), focus (\S+)/g,
      ),
    ].map(([, topic, number, focus]) => `${topic} ${number} ${focus}`);
    expect(told.sort()).toEqual(
      [
        ...[1, 2, 3, 4, 5, 6, 7].map((number) => `case-state-changed ${number} Task/${coordinationId}`),
        `information-requested 1 Task/${coordinationId}`,
        `opinion-released 1 DiagnosticReport/${reportId}`,
        `opinion-released 2 DiagnosticReport/${reportId}`,
      ].sort(),
    );
    expect(run.stdout.match(/the EHR's receiver got: handshake of /g)).toHaveLength(3);

    // Who the hub recorded as the writer of each party's writes.
    const coordinatorUser = await sql.query<{ id: string }>("SELECT id FROM auth_user WHERE role = 'coordinator'");
    const coordinatorActor = `urn:hub:actor:coordinator:${defined(coordinatorUser.rows[0], 'the coordinator user').id}`;
    const sourceOf = (version: Version | undefined): string | undefined => version?.resource.meta?.source;
    const [referral] = await versions('ServiceRequest', serviceRequestId!);
    expect(sourceOf(referral)).toBe('urn:hub:actor:ehr:demo-ehr');
    // The EHR's conditional create found the Practitioner the physician's account is linked to.
    expect(referral?.resource.requester).toEqual({ reference: 'Practitioner/demo-referring-physician' });
    const coordination = await versions('Task', idAfter(run.stdout, /coordination Task\//));
    const acceptance = coordination.find(
      (version) =>
        version.resource.businessStatus?.coding?.[0]?.code === 'awaiting-materials' &&
        version.resource.status === 'requested',
    );
    expect(sourceOf(acceptance)).toBe(coordinatorActor);
    // The move was applied by the hub's job (status accepted), which claims no person's identity.
    const applied = coordination.find(
      (version) =>
        version.resource.businessStatus?.coding?.[0]?.code === 'awaiting-materials' &&
        version.resource.status === 'accepted',
    );
    expect(applied!.version).toBeGreaterThan(acceptance!.version);
    expect(sourceOf(applied) ?? '').not.toMatch(/^urn:hub:actor:(coordinator|radiologist|specialist|ehr):/);
    const preReview = await versions('Task', idAfter(run.stdout, /pre-review Task\//));
    expect(
      sourceOf(preReview.find((version) => version.resource.owner && version.resource.status === 'requested')),
    ).toBe(coordinatorActor);
    expect(sourceOf(preReview.find((version) => version.resource.status === 'completed'))).toBe(
      'urn:hub:actor:radiologist:demo-radiologist',
    );
    expect(sourceOf((await versions('DiagnosticReport', idAfter(run.stdout, /with DiagnosticReport\//)))[0])).toBe(
      'urn:hub:actor:radiologist:demo-radiologist',
    );
    const offer = await versions('Task', idAfter(run.stdout, /Task\/(?=\S+ offered to)/));
    expect(sourceOf(offer.find((version) => version.resource.status === 'accepted'))).toBe(
      'urn:hub:actor:specialist:demo-thoracic-oncologist',
    );
    expect(sourceOf((await versions('Practitioner', 'demo-thoracic-oncologist')).at(-1))).toBe(coordinatorActor);

    // Every e-mail the case sent: one per (case, event, recipient), where the event is what the dedupe
    // key names before its recipient (a state, a question, an answer, an amendment). The physician
    // hears of the case's states, the question back, the release, the clarification's answer and the
    // amendment; the specialist of the clarification question; the patient of the submission, and of
    // the report once the physician has read it (ready) and again when it was amended (updated).
    const patientId = idAfter(run.stdout, /reference number [\d ]+ → Patient\//);
    const physician = 'Practitioner/demo-referring-physician';
    const specialist = 'Practitioner/demo-thoracic-oncologist';
    const patient = `Patient/${patientId}`;
    const expected = [
      ['case-status-changed', physician],
      ['case-status-changed', physician],
      ['case-status-changed', physician],
      ['information-requested', physician],
      ['report-released', physician],
      ['clarification-answered', physician],
      ['report-amended', physician],
      ['clarification-requested', specialist],
      ['case-status-changed', patient],
      ['report-ready', patient],
      ['report-updated', patient],
    ].map(([kind, recipient]) => `${kind} ${recipient}`);
    const rows = await until(async () => {
      const found = await sql.query<{
        kind: string;
        recipient: string;
        case_reference: string;
        dedupe_key: string;
        status: string;
        message_id: string;
      }>('SELECT kind, recipient, case_reference, dedupe_key, status, message_id FROM notification');
      return found.rows.length >= expected.length && found.rows.every((row) => row.status === 'sent')
        ? found.rows
        : undefined;
    }, `${expected.length} e-mails sent`);
    expect(rows.map((row) => `${row.kind} ${row.recipient}`).sort()).toEqual(expected.sort());
    expect(new Set(rows.map((row) => row.case_reference))).toEqual(new Set([`ServiceRequest/${serviceRequestId}`]));
    const events = rows.map((row) => {
      expect(row.dedupe_key.endsWith(`:${row.recipient}`)).toBe(true);
      return `${row.case_reference} ${row.dedupe_key.slice(0, -row.recipient.length - 1)} ${row.recipient}`;
    });
    expect(new Set(events).size).toBe(rows.length);
    expect(
      rows
        .filter((row) => row.kind === 'case-status-changed')
        .map((row) => /:(submitted|awaiting-materials|specialist-review):/.exec(row.dedupe_key)?.[1] ?? row.dedupe_key)
        .sort(),
    ).toEqual(['awaiting-materials', 'specialist-review', 'submitted', 'submitted']);

    // The SMTP server got each recorded e-mail once, at the recipient's address, saying nothing but
    // that something happened, with the link to the case and nothing of the patient.
    await sink.waitForMessages(rows.length);
    expect(sink.accepted.map((mail) => mail.messageId).sort()).toEqual(rows.map((row) => row.message_id).sort());
    const addresses: Record<string, string> = {
      [physician]: PHYSICIAN,
      [specialist]: 'abernathy@specialists.example.org',
      [patient]: PATIENT,
    };
    const subjects: Record<string, string> = {
      'case-status-changed': 'A second-opinion case has been updated',
      'information-requested': 'A specialist has a question about a second-opinion case',
      'report-released': 'A second-opinion report is ready for you',
      'report-ready': 'Your second opinion is ready',
      'clarification-requested': 'A question about a second opinion you wrote',
      'clarification-answered': 'The specialist has answered your question',
      'report-amended': 'A second-opinion report has been amended',
      'report-updated': 'Your second opinion has been updated',
    };
    const caseLink = `${PUBLIC_BASE}/dashboard/cases/${serviceRequestId}`;
    const referenceNumber = defined(/reference number ([\d ]+) → /.exec(run.stdout)?.[1], 'the reference number');
    const personal = [
      'Harriet',
      'Demoperson',
      '1961',
      'Boston',
      '02115',
      'Elm Street',
      referenceNumber.trim(),
      referenceNumber.replace(/\D/g, ''),
      'Okonkwo',
      'Abernathy',
      'lung',
      'smoker',
      'PET-CT',
    ];
    for (const received of sink.accepted) {
      const row = defined(
        rows.find((candidate) => candidate.message_id === received.messageId),
        `the row of ${received.messageId}`,
      );
      const mail = await simpleParser(received.raw);
      const html = typeof mail.html === 'string' ? mail.html : '';
      expect([row.kind, received.recipients]).toEqual([row.kind, [addresses[row.recipient]]]);
      expect([row.kind, mail.subject]).toEqual([row.kind, subjects[row.kind]]);
      expect([row.kind, [...new Set(mail.text?.match(/https?:\/\/\S+/g))]]).toEqual([row.kind, [caseLink]]);
      expect([row.kind, [...new Set(html.match(/https?:\/\/[^"<\s]+/g))]]).toEqual([row.kind, [caseLink]]);
      // The decoded message, the link taken out (a random id may hold any digits), holds none of it;
      // nor does the raw message, its random Message-ID and MIME boundaries taken out, hold a name.
      for (const text of [mail.text ?? '', html, mail.subject ?? '']) {
        for (const detail of personal) {
          expect([row.kind, detail, text.replaceAll(caseLink, '').includes(detail)]).toEqual([row.kind, detail, false]);
        }
      }
      let raw = received.raw.replaceAll(received.messageId ?? '', '');
      for (const [, boundary = ''] of received.raw.matchAll(/boundary="?([^";\r\n]+)/g)) {
        raw = raw.replaceAll(boundary, '');
      }
      for (const detail of personal.filter((word) => /^[A-Za-z -]+$/.test(word))) {
        expect([row.kind, detail, raw.includes(detail)]).toEqual([row.kind, detail, false]);
      }
    }

    // The people were signed out at the end: their sessions are revoked.
    const sessions = await sql.query<{ open: number }>(
      'SELECT count(*)::int AS open FROM auth_session WHERE revoked_at IS NULL',
    );
    expect(sessions.rows[0]?.open).toBe(0);
  }, 240_000);
});
