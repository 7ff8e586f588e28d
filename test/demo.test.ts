/**
 * `npm run demo` end to end: a hub process as `npm start` runs it (fresh PostgreSQL database, DIMSE on
 * a free port, a temporary DATA_DIR, SMTP to a real SMTP server started here), and the demo script as
 * a child process against it. The demo itself fails (exit 1) when any step's result does not appear
 * in the API; the test then checks the status e-mails the case sent: one per (state, recipient) of
 * src/workflow/case-notifications.ts, each with the link to the case and nothing of the patient.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import pg from 'pg';
import { NODE_BIN, REPO_ROOT, startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { createTestDatabase, freePort } from './support/test-hub.ts';
import { until as waitUntil } from './support/until.ts';

const PUBLIC_BASE = 'https://hub.example.org';
const PHYSICIAN = 'a.okonkwo@referrer.example.org';
const PATIENT = 'harriet.demoperson@patient.example.org';

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, ['demo/demo.ts', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const until = <T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> =>
  waitUntil(probe, what, timeoutMs, 250);

describe('npm run demo against a running hub', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let sink: SmtpSink;
  let hub: HubProcess;
  let dimsePort: number;
  let sql: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-demo-'));
    sink = await startSmtpSink();
    dimsePort = await freePort();
    hub = await startHubProcess(
      {
        DATABASE_URL: database.url,
        DATA_DIR: dataDir,
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

  test('plays the case through to the specialist, declines New Mexico before registration, and the status e-mails arrive once each', async () => {
    const local = new URL(hub.url);
    const run = await runDemo(['--url', hub.url, '--dimse-host', local.hostname, '--dimse-port', String(dimsePort), '--timeout-seconds', '150']);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/submitted \(requested\)/);
    expect(run.stdout).toMatch(/Imaging review, per imaging site .* × {2}2 +\$750\.00 {2}planned/);
    expect(run.stdout).toMatch(/page count read from the PDF: 4/);
    expect(run.stdout).toMatch(/CT \(by accession number\): ImagingStudy\/\S+ matched/);
    expect(run.stdout).toMatch(/MR \(by reference number as PatientID\): ImagingStudy\/\S+ matched/);
    expect(run.stdout).toMatch(/offered to Dr\. Demo Abernathy, due \d{4}-\d\d-\d\dT/);
    expect(run.stdout).toMatch(/Castellano: a fellow/);
    expect(run.stdout).toMatch(/Patient\/\$register: HTTP 422, not registered: .*New Mexico/);
    const serviceRequestId = /Demo finished: ServiceRequest\/(\S+) is in specialist review/.exec(run.stdout)?.[1];
    expect(serviceRequestId).toBeDefined();

    // submitted (physician, patient), awaiting-materials (physician), specialist-review (physician).
    const rows = await until(async () => {
      const found = await sql.query<{ dedupe_key: string; status: string; message_id: string }>(
        'SELECT dedupe_key, status, message_id FROM notification ORDER BY dedupe_key',
      );
      return found.rows.length === 4 && found.rows.every((row) => row.status === 'sent') ? found.rows : undefined;
    }, 'four notifications sent');
    const states = rows.map((row) => /^case-state:ServiceRequest\/[^:]+:([a-z-]+):(Patient|Practitioner)\//.exec(row.dedupe_key)?.slice(1).join(' '));
    expect(states.sort()).toEqual(['awaiting-materials Practitioner', 'specialist-review Practitioner', 'submitted Patient', 'submitted Practitioner']);
    expect(rows.every((row) => row.dedupe_key.includes(`ServiceRequest/${serviceRequestId}:`))).toBe(true);

    await sink.waitForMessages(4);
    expect(sink.accepted.map((mail) => mail.messageId).sort()).toEqual(rows.map((row) => row.message_id).sort());
    expect(sink.accepted.flatMap((mail) => mail.recipients).sort()).toEqual([PHYSICIAN, PHYSICIAN, PHYSICIAN, PATIENT].sort());
    for (const received of sink.accepted) {
      const mail = await simpleParser(received.raw);
      expect(mail.text).toContain(`${PUBLIC_BASE}/dashboard/cases/${serviceRequestId}`);
      for (const detail of ['Harriet', 'Demoperson', '1961', 'Boston', 'lung', 'Okonkwo']) {
        expect(received.raw).not.toContain(detail);
      }
      expect(mail.subject).toBe('A second-opinion case has been updated');
    }
  }, 240_000);
});
