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
      'SELECT id, public, scopes FROM auth_client ORDER BY id',
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

  test('plays the case through to the approved opinion with every party signed in as itself, declines New Mexico before registration, and the status e-mails arrive once each', async () => {
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
    expect(run.stdout).toMatch(/DiagnosticReport final; Binary\/\S+: \d+ bytes of PDF \(HTTP 200\)/);
    expect(run.stdout).toMatch(/the case stays report-released/);
    const serviceRequestId = /Demo finished: ServiceRequest\/(\S+)'s opinion is released to its physician/.exec(
      run.stdout,
    )?.[1];
    expect(serviceRequestId).toBeDefined();

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

    // submitted (physician, patient), awaiting-materials (physician), specialist-review (physician),
    // report-released (physician): the patient hears nothing until the physician has read the report.
    const rows = await until(async () => {
      const found = await sql.query<{ dedupe_key: string; status: string; message_id: string }>(
        'SELECT dedupe_key, status, message_id FROM notification ORDER BY dedupe_key',
      );
      return found.rows.length === 5 && found.rows.every((row) => row.status === 'sent') ? found.rows : undefined;
    }, 'five notifications sent');
    const states = rows.map((row) =>
      /^case-state:ServiceRequest\/[^:]+:([a-z-]+):(Patient|Practitioner)\//.exec(row.dedupe_key)?.slice(1).join(' '),
    );
    expect(states.sort()).toEqual([
      'awaiting-materials Practitioner',
      'report-released Practitioner',
      'specialist-review Practitioner',
      'submitted Patient',
      'submitted Practitioner',
    ]);
    expect(rows.every((row) => row.dedupe_key.includes(`ServiceRequest/${serviceRequestId}:`))).toBe(true);

    await sink.waitForMessages(5);
    expect(sink.accepted.map((mail) => mail.messageId).sort()).toEqual(rows.map((row) => row.message_id).sort());
    expect(sink.accepted.flatMap((mail) => mail.recipients).sort()).toEqual(
      [PHYSICIAN, PHYSICIAN, PHYSICIAN, PHYSICIAN, PATIENT].sort(),
    );
    for (const received of sink.accepted) {
      const mail = await simpleParser(received.raw);
      expect(mail.text).toContain(`${PUBLIC_BASE}/dashboard/cases/${serviceRequestId}`);
      for (const detail of ['Harriet', 'Demoperson', '1961', 'Boston', 'lung', 'Okonkwo']) {
        expect(received.raw).not.toContain(detail);
      }
      expect(['A second-opinion case has been updated', 'A second-opinion report is ready for you']).toContain(
        mail.subject,
      );
    }

    // The people were signed out at the end: their sessions are revoked.
    const sessions = await sql.query<{ open: number }>(
      'SELECT count(*)::int AS open FROM auth_session WHERE revoked_at IS NULL',
    );
    expect(sessions.rows[0]?.open).toBe(0);
  }, 240_000);
});
