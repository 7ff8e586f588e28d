/**
 * The opinion from the specialist's question back to the patient's e-mail, end to end, against hub
 * processes as they run in production: an api+relay process takes every request with real tokens
 * (AUTH_REQUIRED=true), the jobs run in a separate worker process, e-mails go to a real SMTP server
 * and the EHR's subscriptions to a real HTTP receiver, all started here. Nothing is called directly
 * except, at the end, one progression job run a second time.
 *
 * The worker is SIGKILLed in the middle of the job that releases the report to the patient (held at
 * the e-mail it records, as case-crash.test.ts holds jobs), and a new worker finishes it: the patient
 * is e-mailed exactly once. A system client's reading of the released report does not count as the
 * physician's.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { DEFAULT_FEE_SCHEDULE } from '../src/cases/fees.ts';
import { DEFAULT_JURISDICTION_POLICY } from '../src/cases/jurisdictions.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { systemClock } from '../src/runtime/clock.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { clientToken } from './support/client-token.ts';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { signInPeople } from './support/login-flow.ts';
import { CASE_STATE, draftLetter, draftReport, letterSection, opinionCaseFixtures } from './support/opinion-case.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { createTestDatabase, fhirFetch } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

const SR = 'sr-e2e';
const PATIENT_EMAIL = `patient-${SR}@example.org`;
const PHYSICIAN_EMAIL = 'paul.physick@clinic.example.org';
const TOPIC = 'urn:hub:subscription-topic:';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
/** A killed worker's job is taken over once its lock expires (BullMQ's stalled-job check). */
const WAIT_MS = 150_000;

type Person = 'specialist' | 'coordinator' | 'physician' | 'patient';
const PEOPLE: Record<
  Person,
  { role: 'specialist' | 'coordinator' | 'referring-physician' | 'patient'; fhirUser: string }
> = {
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  patient: { role: 'patient', fhirUser: `Patient/pat-${SR}` },
};

/** The notifications the EHR's receiver got, by subscription id. */
class Receiver {
  readonly bySubscription = new Map<string, any[]>();
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const bundle = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const parameters = bundle.entry[0].resource.parameter;
      const subscription = String(parameters.find((p: any) => p.name === 'subscription').valueReference.reference);
      const id = subscription.split('/').at(-1) ?? '';
      this.bySubscription.set(id, [...(this.bySubscription.get(id) ?? []), bundle]);
      res.writeHead(200).end();
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/fhir-notifications`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The event notifications of a subscription: [event number, focus path] in the order received. */
  events(subscriptionId: string): [number, string][] {
    return (this.bySubscription.get(subscriptionId) ?? [])
      .map((bundle) => bundle.entry[0].resource.parameter)
      .filter((parameters: any[]) => parameters.some((p) => p.name === 'type' && p.valueCode === 'event-notification'))
      .map((parameters: any[]) => {
        const event = parameters.find((p) => p.name === 'notification-event').part;
        return [
          Number(event.find((p: any) => p.name === 'event-number').valueString),
          // The path under the hub's FHIR base (each hub process names its own base without BASE_URL).
          String(event.find((p: any) => p.name === 'focus').valueReference.reference).replace(
            /^https?:\/\/[^/]+\/fhir\//,
            '',
          ),
        ];
      });
  }
}

describe('the opinion end to end: hub processes, a killed worker, SMTP and a subscriber', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let sink: SmtpSink;
  let receiver: Receiver;
  let endpoint: string;
  let db: Database;
  let sql: pg.Client;
  let blocker: pg.Client;
  let api: HubProcess;
  const processes: HubProcess[] = [];
  let env: Record<string, string>;
  const tokens = {} as Record<Person | 'ehr', string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-opinion-e2e-'));
    sink = await startSmtpSink();
    receiver = new Receiver();
    endpoint = await receiver.start();
    env = {
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      SMTP_URL: sink.url,
      OUTBOX_POLL_MS: '100',
      AUTH_REQUIRED: 'true',
      SUBSCRIPTION_ALLOWED_NETWORKS: '127.0.0.1/32',
      QUEUE_PREFIX: `test-opinion-e2e-${process.pid}-${Date.now()}`,
    };
    api = await startHubProcess({ ...env, HUB_ROLES: 'api,relay' }, 60_000);
    processes.push(api);
    await startWorker();
    db = await openDatabase({ databaseUrl: database.url });
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    const place = { baseUrl: api.url, hub: { db, url: api.url }, clock: systemClock } as unknown as TestHub;
    Object.assign(
      tokens,
      await signInPeople(place, PEOPLE, {
        clientId: 'e2e-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
    tokens.ehr = await clientToken(place, 'e2e-ehr', 'system/*.cruds');
  }, 120_000);

  afterAll(async () => {
    await blocker?.query('ROLLBACK').catch(() => undefined);
    await blocker?.end();
    await sql?.end();
    await db?.close();
    for (const hubProcess of processes) {
      if (hubProcess.child.exitCode === null && hubProcess.child.signalCode === null) {
        hubProcess.child.kill('SIGKILL');
      }
      await hubProcess.exited;
    }
    await receiver?.stop();
    await sink?.close();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  async function startWorker(): Promise<HubProcess> {
    const worker = await startHubProcess({ ...env, HUB_ROLES: 'worker' }, 60_000);
    processes.push(worker);
    return worker;
  }

  const as = (who: Person | 'ehr', reference: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${api.url}/fhir/${reference}`, { ...init, headers: { authorization: `Bearer ${tokens[who]}` } });
  const write = async (who: Person | 'ehr', reference: string, body: unknown, method = 'POST'): Promise<any> => {
    const response = await as(who, reference, { method, body });
    expect([who, reference, response.status < 300 ? 'ok' : JSON.stringify(response.body)]).toEqual([
      who,
      reference,
      'ok',
    ]);
    return response.body;
  };
  const coordination = async (): Promise<any> => (await as('coordinator', `Task/coord-${SR}`)).body;
  const stateOf = (task: any): string => task.businessStatus.coding[0].code;
  const inState = (state: string, timeoutMs = 30_000) =>
    until(async () => stateOf(await coordination()) === state, `the case in ${state}`, timeoutMs);
  /** `who` writes the coordination Task's businessStatus, as a person moves a case. */
  const moveCase = async (who: Person, state: string): Promise<void> => {
    const task = await coordination();
    await write(
      who,
      `Task/coord-${SR}`,
      { ...task, meta: undefined, businessStatus: { coding: [{ system: CASE_STATE, code: state }] } },
      'PUT',
    );
  };
  const approvalTask = async (status: string): Promise<any> =>
    until(async () => {
      const found = (await as('coordinator', `Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/${SR}`)).body;
      const task = found.entry?.[0]?.resource;
      return task?.status === status ? task : undefined;
    }, `the approval Task ${status}`);
  const mailsTo = (address: string): string[] =>
    sink.accepted.filter((mail) => mail.recipients.includes(address)).map((mail) => mail.raw);
  const subscribe = async (topic: string): Promise<string> => {
    const created = await write('ehr', 'Subscription', {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'The referring EHR follows its cases',
      criteria: `${TOPIC}${topic}`,
      _criteria: {
        extension: [{ url: `${BACKPORT}backport-filter-criteria`, valueString: `ServiceRequest?_id=${SR}` }],
      },
      channel: {
        type: 'rest-hook',
        endpoint,
        payload: 'application/fhir+json',
        _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'id-only' }] },
      },
    });
    await until(async () => (await as('ehr', `Subscription/${created.id}`)).body.status === 'active', 'active');
    return created.id as string;
  };
  /** Holds every write of the `notification` table (the e-mails a job records last) until released. */
  const hold = async (): Promise<void> => {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE notification IN SHARE MODE');
  };
  const jobHeld = () =>
    until(
      async () =>
        (
          await sql.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'notification'::regclass AND NOT granted AND pid <> pg_backend_pid()`,
          )
        ).rows[0]?.n,
      'a job waiting to record its e-mail',
      WAIT_MS,
    );
  const noneWaiting = () =>
    until(
      async () =>
        (
          await sql.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'notification'::regclass AND NOT granted AND pid <> pg_backend_pid()`,
          )
        ).rows[0]?.n === 0,
      'the killed worker’s transaction to end',
      WAIT_MS,
    );

  test('question back, return, approval, the EHR told and fetching the PDF, the physician first, the patient once', async () => {
    const referenceNumber = generateReferenceNumber(() => 7);
    const fixtures = [
      {
        resourceType: 'Practitioner',
        id: 'prac-s',
        name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }],
        telecom: [{ system: 'email', value: 'amelia.abernathy@specialists.example.org' }],
      },
      { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
      {
        resourceType: 'Practitioner',
        id: 'prac-phys',
        name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }],
        telecom: [{ system: 'email', value: PHYSICIAN_EMAIL }],
      },
      {
        resourceType: 'PractitionerRole',
        id: 'role-s',
        practitioner: { reference: 'Practitioner/prac-s' },
        specialty: [{ text: 'Medical Oncology' }],
      },
      // The workers schedule the specialist's reminders from the offer's due date as real delayed jobs:
      // due a month from now, whatever the date the suite runs on, none of them fires during it.
      ...opinionCaseFixtures(SR, referenceNumber).map((resource) =>
        resource.id === `offer-${SR}`
          ? { ...resource, restriction: { period: { end: new Date(Date.now() + 30 * 86_400_000).toISOString() } } }
          : resource,
      ),
    ];
    const states = await subscribe('case-state-changed');
    const questions = await subscribe('information-requested');
    const opinions = await subscribe('opinion-released');
    await write('ehr', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: fixtures.map((resource) => ({
        resource,
        request: { method: 'PUT', url: `${String(resource.resourceType)}/${String(resource.id)}` },
      })),
    });

    // 1. The specialist asks the physician; the physician is e-mailed and the EHR told.
    const question = await write('specialist', 'Communication', {
      resourceType: 'Communication',
      status: 'completed',
      basedOn: [{ reference: `ServiceRequest/${SR}` }],
      partOf: [{ reference: `Task/coord-${SR}` }],
      recipient: [{ reference: 'Practitioner/prac-phys' }],
      payload: [{ contentString: 'Was a PET-CT done before the biopsy?' }],
    });
    await inState('awaiting-information');
    await until(() => Promise.resolve(mailsTo(PHYSICIAN_EMAIL).length === 1), 'the physician’s e-mail');
    await until(() => Promise.resolve(receiver.events(questions).length === 1), 'the information-requested event');
    expect(receiver.events(questions)).toEqual([[1, `Task/coord-${SR}`]]);

    // 2. The physician answers; the specialist's clock runs again.
    await write('physician', 'Communication', {
      resourceType: 'Communication',
      status: 'completed',
      basedOn: [{ reference: `ServiceRequest/${SR}` }],
      inResponseTo: [{ reference: `Communication/${String(question.id)}` }],
      payload: [{ contentString: 'No PET-CT was done.' }],
    });
    await inState('specialist-review');

    // 3. The draft, its submission, a return with a reason, and the submission again.
    const letter = await write(
      'specialist',
      'Composition',
      draftLetter(SR, [
        {
          ...letterSection('reviewed', 'The CT and the biopsy report.'),
          entry: [{ reference: `ServiceRequest/${SR}` }],
        },
        letterSection('answer', 'The nodule is most likely benign.', 1),
        letterSection('answer', 'Follow-up imaging only.', 2),
        letterSection('discussion', 'Nothing suggests malignancy.'),
        letterSection('recommendation', 'A CT in twelve months.'),
      ]),
    );
    const report = await write(
      'specialist',
      'DiagnosticReport',
      draftReport(SR, String(letter.id), 'Benign nodule; follow-up CT in twelve months.'),
    );
    await moveCase('specialist', 'report-review');
    const approval = await approvalTask('requested');
    await write(
      'coordinator',
      `Task/${String(approval.id)}`,
      { ...approval, meta: undefined, status: 'rejected', statusReason: { text: 'Cite the biopsy in the summary.' } },
      'PUT',
    );
    await inState('specialist-review');
    await moveCase('specialist', 'report-review');
    const again = await approvalTask('requested');

    // 4. Approved: released to the physician, who is e-mailed; the EHR is told and fetches the PDF.
    await write(
      'coordinator',
      `Task/${String(again.id)}`,
      { ...again, meta: undefined, status: 'completed', statusReason: undefined },
      'PUT',
    );
    await inState('report-released');
    await until(() => Promise.resolve(mailsTo(PHYSICIAN_EMAIL).length === 2), 'the physician’s second e-mail');
    await until(() => Promise.resolve(receiver.events(opinions).length === 1), 'the opinion-released event');
    const [[number, focus] = [0, '']] = receiver.events(opinions);
    expect([number, focus]).toEqual([1, `DiagnosticReport/${String(report.id)}`]);
    const released = (await as('ehr', focus)).body;
    expect(released.status).toBe('final');
    const pdf = await fetch(`${api.url}/fhir/${String(released.presentedForm[0].url)}`, {
      headers: { authorization: `Bearer ${tokens.ehr}`, accept: 'application/pdf' },
    });
    expect([pdf.status, pdf.headers.get('content-type')]).toEqual([200, 'application/pdf']);
    expect(
      Buffer.from(await pdf.arrayBuffer())
        .subarray(0, 5)
        .toString(),
    ).toBe('%PDF-');

    // The EHR's reading is not the physician's: the patient can read nothing yet and was not e-mailed.
    await until(
      async () =>
        Number((await sql.query('SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL')).rows[0]?.n) === 0,
      'the outbox to drain',
    );
    expect(stateOf(await coordination())).toBe('report-released');
    expect((await as('patient', `DiagnosticReport/${String(report.id)}`)).status).toBe(404);
    expect(mailsTo(PATIENT_EMAIL)).toEqual([]);

    // 5. The physician reads it. The job that releases it to the patient is held at the patient's
    // e-mail, its worker killed, and a new worker runs it again.
    const [firstWorker] = processes.slice(-1);
    await hold();
    expect((await as('physician', `DiagnosticReport/${String(report.id)}`)).status).toBe(200);
    await jobHeld();
    firstWorker?.child.kill('SIGKILL');
    expect(await firstWorker?.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // Released, the dead worker's transaction gets its lock, finds no client and rolls back.
    await blocker.query('ROLLBACK');
    await noneWaiting();
    expect(mailsTo(PATIENT_EMAIL)).toEqual([]);
    await startWorker();
    await inState('report-accessed', WAIT_MS);
    await until(() => Promise.resolve(mailsTo(PATIENT_EMAIL).length === 1), 'the patient’s e-mail', WAIT_MS);

    // The same job run once more (a redelivered job) records nothing new.
    await advanceCase(
      {
        repository: {
          db,
          blobs: new FileBlobStore(path.join(dataDir, 'blobs')),
          baseUrl: api.url,
          binaryMaxBytes: 1e7,
        },
        jurisdictionPolicies: [DEFAULT_JURISDICTION_POLICY],
        feeSchedules: [DEFAULT_FEE_SCHEDULE],
        now: () => new Date(),
      },
      { serviceRequestId: SR },
    );
    const notices = await sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM notification WHERE recipient = $1 AND kind = 'report-ready'",
      [`Patient/pat-${SR}`],
    );
    expect(notices.rows[0]?.n).toBe(1);
    // Long enough for a duplicate to have been sent, had one been queued: every queued e-mail is sent by now.
    await until(
      async () =>
        Number((await sql.query("SELECT count(*) AS n FROM notification WHERE status = 'pending'")).rows[0]?.n) === 0,
      'every recorded e-mail sent',
    );
    expect(mailsTo(PATIENT_EMAIL)).toHaveLength(1);
    expect(mailsTo(PATIENT_EMAIL)[0]).toContain(`/dashboard/cases/${SR}`);
    expect(mailsTo(PATIENT_EMAIL)[0]).not.toContain('Quintero');
    expect((await as('patient', `DiagnosticReport/${String(report.id)}`)).status).toBe(200);

    // The EHR heard of every state, numbered without a gap.
    const expected = [
      'awaiting-information',
      'specialist-review',
      'report-review',
      'specialist-review',
      'report-review',
      'report-released',
      'report-accessed',
    ];
    await until(() => Promise.resolve(receiver.events(states).length === expected.length), 'an event per state');
    expect(
      receiver
        .events(states)
        .map(([n]) => n)
        .sort((a, b) => a - b),
    ).toEqual(expected.map((_, i) => i + 1));
    expect(new Set(receiver.events(states).map(([, f]) => f))).toEqual(new Set([`Task/coord-${SR}`]));
  }, 400_000);
});
