/**
 * A worker process killed in the middle of a case job. An api+relay hub process takes the requests;
 * the jobs run in a separate HUB_ROLES=worker process. The test holds each job mid-transaction, after
 * its FHIR writes and at the status e-mail it records last (case-notifications.ts): a SHARE lock on
 * the `notification` table lets every other write through but makes the job's INSERT wait. The worker
 * is then SIGKILLed, the lock released (the dead worker's transaction rolls back), and a new worker
 * process picks the stalled job up again. First the intake job, then the progression job applying a
 * coordinator's acceptance. The case must end exactly where it should, with nothing twice: one
 * coordination Task, one ChargeItem per fee line, one expect-material Task per kind, one e-mail per
 * notification.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { startSmtpSink } from './support/smtp-sink.ts';
import type { SmtpSink } from './support/smtp-sink.ts';
import { createTestDatabase, fhirFetch, TEST_REDIS_URL } from './support/test-hub.ts';
import { until } from './support/until.ts';
import { workflowSettled } from './support/case-fixtures.ts';

const CASE_RESOURCE = 'urn:hub:case-resource';
const CASE_STATE = 'urn:hub:case-state';
const REFERENCE = 'urn:hub:reference-number';
const NPI = 'http://hl7.org/fhir/sid/us-npi';
const PATIENT_EMAIL = 'crash.patient@example.org';
const PHYSICIAN_EMAIL = 'crash.physician@example.org';

/** How long to wait for the workflow: restarted workers take a killed one's job over only after its lock expires. */
const WAIT_MS = 150_000;

function referralBundle(referenceNumber: string) {
  const patient = `Patient?identifier=${REFERENCE}|${referenceNumber}`;
  const identifier = { system: REFERENCE, value: referenceNumber };
  const material = (code: string, url: string, value: number) => ({
    coding: [{ system: 'urn:hub:material', code }],
    extension: [{ url, valueInteger: value }],
  });
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:3c1b6a70-2f0e-4d4e-9a61-7e2d00000001',
        resource: {
          resourceType: 'Practitioner',
          identifier: [{ system: NPI, value: '1346053246' }],
          name: [{ family: 'Lindqvist', given: ['Referrer'] }],
          telecom: [{ system: 'email', value: PHYSICIAN_EMAIL }],
        },
        request: { method: 'POST', url: 'Practitioner', ifNoneExist: `identifier=${NPI}|1346053246` },
      },
      {
        fullUrl: 'urn:uuid:3c1b6a70-2f0e-4d4e-9a61-7e2d00000002',
        resource: {
          resourceType: 'QuestionnaireResponse',
          status: 'completed',
          subject: { reference: patient },
          item: [
            {
              linkId: 'question',
              answer: ['Is the mass in the left lung malignant?', 'Is surgery indicated?'].map((valueString) => ({
                valueString,
              })),
            },
          ],
        },
        request: { method: 'POST', url: 'QuestionnaireResponse' },
      },
      {
        fullUrl: 'urn:uuid:3c1b6a70-2f0e-4d4e-9a61-7e2d00000003',
        resource: {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0336', code: 'S' }] }],
          code: { text: 'Second opinion' },
          identifier: [identifier],
          requisition: identifier,
          subject: { reference: patient },
          requester: { reference: 'urn:uuid:3c1b6a70-2f0e-4d4e-9a61-7e2d00000001' },
          supportingInfo: [{ reference: 'urn:uuid:3c1b6a70-2f0e-4d4e-9a61-7e2d00000002' }],
          orderDetail: [
            material('imaging', 'urn:hub:extension:imaging-sites', 2),
            material('records', 'urn:hub:extension:record-pages', 120),
          ],
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
    ],
  };
}

describe('a worker killed in the middle of a case job', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let sink: SmtpSink;
  let sql: pg.Client;
  let blocker: pg.Client;
  let api: HubProcess;
  const processes: HubProcess[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-case-crash-'));
    sink = await startSmtpSink();
    env = {
      DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      SMTP_URL: sink.url,
      BASE_URL: 'https://hub.example.org',
      OUTBOX_POLL_MS: '100',
      // A killed worker's job is taken over once its lock expires: 5 s here, not the default 30 s.
      QUEUE_STALLED_JOB_MS: '5000',
      QUEUE_PREFIX: `test-case-crash-${process.pid}-${Date.now()}`,
    };
    api = await startHubProcess({ ...env, HUB_ROLES: 'api,relay' }, 60_000);
    processes.push(api);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
  }, 90_000);

  afterAll(async () => {
    await blocker?.query('ROLLBACK').catch(() => undefined);
    await blocker?.end();
    await sql?.end();
    for (const hubProcess of processes) {
      if (hubProcess.child.exitCode === null && hubProcess.child.signalCode === null) {
        hubProcess.child.kill('SIGKILL');
      }
      await hubProcess.exited;
    }
    await sink?.close();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const startWorker = async (): Promise<HubProcess> => {
    const worker = await startHubProcess({ ...env, HUB_ROLES: 'worker' }, 60_000);
    processes.push(worker);
    return worker;
  };

  const fhir = async (
    method: string,
    reference: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<any> => {
    const response = await fhirFetch(reference ? `${api.url}/fhir/${reference}` : `${api.url}/fhir`, {
      method,
      body,
      headers,
    });
    if (response.status >= 300) {
      throw new Error(`${method} ${reference}: ${response.status} ${JSON.stringify(response.body)}`);
    }
    return response.body;
  };
  const search = async (query: string): Promise<any[]> =>
    ((await fhir('GET', `${query}${query.includes('?') ? '&' : '?'}_count=1000`)).entry ?? []).map(
      (entry: { resource: unknown }) => entry.resource,
    );
  const caseIdentifier = (resource: any): string | undefined =>
    resource.identifier?.find((id: any) => id.system === CASE_RESOURCE)?.value;
  const stateOf = (task: any): string | undefined =>
    task?.businessStatus?.coding?.find((coding: any) => coding.system === CASE_STATE)?.code;

  /** Holds every INSERT/UPDATE on `notification` until {@link release}; other tables stay writable. */
  const hold = async (): Promise<void> => {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE notification IN SHARE MODE');
  };
  const release = () => blocker.query('ROLLBACK');
  /** A worker's transaction is waiting for the notification table: the job is mid-transaction. */
  const jobHeld = () =>
    until(
      async () => {
        const waiting = await sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'notification'::regclass AND NOT granted AND pid <> pg_backend_pid()`,
        );
        return (waiting.rows[0]?.n ?? 0) > 0;
      },
      'a job to wait on the notification table',
      WAIT_MS,
    );
  /** No transaction of the killed worker is left (its backend noticed the closed connection and rolled back). */
  const noneWaiting = () =>
    until(
      async () => {
        const waiting = await sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)') AND backend_type = 'client backend' AND query ILIKE '%notification%'`,
        );
        return waiting.rows[0]?.n === 0;
      },
      'the killed worker’s transaction to end',
      WAIT_MS,
    );
  const kill = async (worker: HubProcess): Promise<void> => {
    worker.child.kill('SIGKILL');
    expect(await worker.exited).toEqual({ code: null, signal: 'SIGKILL' });
  };

  test('killed mid-intake and mid-progression, restarted: one of everything, one e-mail per notification', async () => {
    const registered = await fhir('POST', 'Patient/$register', {
      resourceType: 'Parameters',
      parameter: [
        {
          name: 'patient',
          resource: {
            resourceType: 'Patient',
            name: [{ family: 'Crashworthy', given: ['Imogen'] }],
            birthDate: '1972-05-17',
            telecom: [{ system: 'email', value: PATIENT_EMAIL }],
            address: [{ use: 'home', city: 'Boston', state: 'MA', country: 'US' }],
          },
        },
      ],
    });
    const parameter = (name: string) => registered.parameter.find((p: { name: string }) => p.name === name);
    const patientId: string = parameter('patient').resource.id;
    const referenceNumber: string = parameter('referenceNumber').valueIdentifier.value;

    // 1. The intake job, held after its writes, and killed.
    await hold();
    const first = await startWorker();
    const referral = await fhir('POST', '', referralBundle(referenceNumber));
    const serviceRequestId: string = referral.entry[2].response.location.split('/')[1];
    const coordinationQuery = `Task?identifier=${encodeURIComponent(`${CASE_RESOURCE}|${serviceRequestId}/coordination`)}`;
    await jobHeld();
    await kill(first);
    await release();
    await noneWaiting();
    // All or nothing: the killed intake left nothing.
    expect(await search(coordinationQuery)).toEqual([]);
    expect(await search(`ChargeItem?subject=Patient/${patientId}`)).toEqual([]);
    expect((await sql.query('SELECT count(*)::int AS n FROM notification')).rows[0].n).toBe(0);

    // A new worker takes the stalled job over (after the dead one's job lock expires).
    const second = await startWorker();
    const submitted = await until(
      async () => {
        const [task] = await search(coordinationQuery);
        return stateOf(task) === 'submitted' ? task : undefined;
      },
      'the restarted intake',
      WAIT_MS,
    );
    await until(
      async () => {
        const rows = await sql.query<{ status: string }>('SELECT status FROM notification');
        return rows.rows.length === 2 && rows.rows.every((row) => row.status === 'sent');
      },
      'the submission e-mails',
      WAIT_MS,
    );

    // 2. The progression job applying the coordinator's acceptance, held and killed.
    await hold();
    await fhir(
      'PUT',
      `Task/${submitted.id}`,
      { ...submitted, businessStatus: { coding: [{ system: CASE_STATE, code: 'awaiting-materials' }] } },
      {
        'if-match': `W/"${submitted.meta.versionId}"`,
      },
    );
    await jobHeld();
    await kill(second);
    await release();
    await noneWaiting();
    // The acceptance is not applied yet: the coordinator's businessStatus, the Task still `requested`.
    const pending = (await search(coordinationQuery))[0];
    expect({ state: stateOf(pending), status: pending.status }).toEqual({
      state: 'awaiting-materials',
      status: 'requested',
    });

    const third = await startWorker();
    await until(
      async () => {
        const [task] = await search(coordinationQuery);
        return stateOf(task) === 'awaiting-materials' && task.status === 'accepted';
      },
      'the restarted progression to apply the acceptance',
      WAIT_MS,
    );
    const rows = await until(
      async () => {
        const found = await sql.query<{ dedupe_key: string; status: string; message_id: string; recipient: string }>(
          'SELECT dedupe_key, status, message_id, recipient FROM notification ORDER BY dedupe_key',
        );
        return found.rows.length === 3 && found.rows.every((row) => row.status === 'sent') ? found.rows : undefined;
      },
      'the acceptance e-mail',
      WAIT_MS,
    );
    // Once nothing is left to run (the killed workers' jobs taken over and finished too), no duplicate can still come.
    await workflowSettled({ db: sql, redisUrl: TEST_REDIS_URL, queuePrefix: env.QUEUE_PREFIX! }, WAIT_MS);

    // Exactly where it should be, with nothing twice.
    const coordination = await search(`Task?focus=ServiceRequest/${serviceRequestId}`);
    const roles = coordination.map(caseIdentifier).sort();
    expect(roles).toEqual([
      `${serviceRequestId}/coordination`,
      `${serviceRequestId}/expect-material/imaging`,
      `${serviceRequestId}/expect-material/records`,
    ]);
    const children = await search(`Task?part-of=Task/${submitted.id}`);
    expect(children.map((task) => task.input[0].valueCoding.code).sort()).toEqual(['imaging', 'records']);
    const charges = await search(`ChargeItem?subject=Patient/${patientId}`);
    const chargeRoles = charges.map(caseIdentifier).sort();
    expect(chargeRoles).toEqual([...new Set(chargeRoles)]);
    // Two questions (within the four included), 2 imaging sites, 120 pages of records (a priced tier).
    expect(chargeRoles).toEqual(
      ['imaging-review', 'record-pages', 'specialist-opinion'].map((code) => `${serviceRequestId}/charge/${code}`),
    );
    expect(
      rows.map((row) =>
        row.dedupe_key.replace(`ServiceRequest/${serviceRequestId}`, 'SR').replace(/(Patient|Practitioner)\/.*/, '$1'),
      ),
    ).toEqual([
      'case-state:SR:awaiting-materials:Practitioner',
      'case-state:SR:submitted:Patient',
      'case-state:SR:submitted:Practitioner',
    ]);
    expect(sink.accepted.map((mail) => mail.messageId).sort()).toEqual(rows.map((row) => row.message_id).sort());
    expect(sink.accepted.flatMap((mail) => mail.recipients).sort()).toEqual([
      PATIENT_EMAIL,
      PHYSICIAN_EMAIL,
      PHYSICIAN_EMAIL,
    ]);
    for (const mail of sink.accepted) {
      expect(mail.raw).not.toMatch(/Crashworthy|Imogen|1972/);
    }
    await third.stop();
  }, 600_000);
});
