/** What the case suites share: the jobs' context on a test hub, the planned materials of a referral, and registering its patient. */
import path from 'node:path';
import type { Patient } from '@medplum/fhirtypes';
import { Queue } from 'bullmq';
import { DEFAULT_FEE_SCHEDULE } from '../../src/cases/fees.ts';
import { DEFAULT_JURISDICTION_POLICY } from '../../src/cases/jurisdictions.ts';
import { RESOURCE_EVENTS_QUEUE } from '../../src/fhir/events.ts';
import { producerConnection } from '../../src/queues/connection.ts';
import { FileBlobStore } from '../../src/storage/blob-store.ts';
import type { WorkflowContext } from '../../src/workflow/context.ts';
import { CASE_INTAKE_QUEUE } from '../../src/workflow/jobs/case-intake.ts';
import { CASE_MATERIALS_QUEUE } from '../../src/workflow/jobs/case-materials.ts';
import { CASE_PROGRESSION_QUEUE } from '../../src/workflow/jobs/case-progression.ts';
import { NOTIFICATIONS_QUEUE } from '../../src/workflow/jobs/notifications.ts';
import {
  SUBSCRIPTION_DELIVERY_QUEUE,
  SUBSCRIPTION_EVENTS_QUEUE,
  SUBSCRIPTION_UPKEEP_QUEUE,
} from '../../src/workflow/jobs/subscriptions.ts';
import { defined } from './defined.ts';
import { fhirFetch } from './test-hub.ts';
import type { TestHub } from './test-hub.ts';
import { until } from './until.ts';

/** The context the case jobs run with, on a test hub's database and storage, the shipped policies and the real clock. */
export function workflowContextOf(testHub: TestHub): WorkflowContext {
  return {
    repository: {
      db: testHub.hub.db,
      blobs: new FileBlobStore(path.join(testHub.config.dataDir, 'blobs')),
      baseUrl: testHub.config.baseUrl,
      binaryMaxBytes: testHub.config.binaryMaxBytes,
    },
    jurisdictionPolicies: [DEFAULT_JURISDICTION_POLICY],
    feeSchedules: [DEFAULT_FEE_SCHEDULE],
    now: () => testHub.clock.now(),
  };
}

/** The counts a physician plans, as the ServiceRequest's orderDetail carries them (docs/case-workflow.md). */
export interface Planned {
  imagingSites?: number;
  recordPages?: number;
  biopsySites?: number;
}

export function orderDetail(planned: Planned): unknown[] {
  const detail = (kind: string, url: string, value: number | undefined) =>
    value === undefined
      ? []
      : [{ coding: [{ system: 'urn:hub:material', code: kind }], extension: [{ url, valueInteger: value }] }];
  return [
    ...detail('imaging', 'urn:hub:extension:imaging-sites', planned.imagingSites),
    ...detail('records', 'urn:hub:extension:record-pages', planned.recordPages),
    ...detail('pathology', 'urn:hub:extension:biopsy-sites', planned.biopsySites),
  ];
}

/** Registers `patient` through `Patient/$register` (with `headers`, e.g. a token) and returns its id and reference number. */
export async function registerPatient(
  fhirBase: string,
  patient: Omit<Patient, 'resourceType'>,
  headers: Record<string, string> = {},
): Promise<{ id: string; referenceNumber: string }> {
  const response = await fhirFetch(`${fhirBase}/Patient/$register`, {
    method: 'POST',
    headers,
    body: {
      resourceType: 'Parameters',
      parameter: [{ name: 'patient', resource: { resourceType: 'Patient', ...patient } }],
    },
  });
  expect({ status: response.status, issue: response.body.issue }).toEqual({ status: 201, issue: undefined });
  const parameter = (name: string) => response.body.parameter.find((p: { name: string }) => p.name === name);
  return { id: parameter('patient').resource.id, referenceNumber: parameter('referenceNumber').valueIdentifier.value };
}

/** The queues whose jobs run as soon as they are queued (case-reminders holds jobs for days: not one of them). */
const WORKFLOW_QUEUES = [
  RESOURCE_EVENTS_QUEUE,
  CASE_INTAKE_QUEUE,
  CASE_MATERIALS_QUEUE,
  CASE_PROGRESSION_QUEUE,
  NOTIFICATIONS_QUEUE,
  SUBSCRIPTION_EVENTS_QUEUE,
  SUBSCRIPTION_DELIVERY_QUEUE,
  SUBSCRIPTION_UPKEEP_QUEUE,
];

/** Where a hub's background work can be seen: its database, and its queues on Redis. */
export interface WorkflowPlace {
  db: { query(sql: string): Promise<{ rows: unknown[] }> };
  redisUrl: string;
  queuePrefix: string;
}

/**
 * Waits until the hub's background work has run out: no study waiting for its ImagingStudy refresh,
 * no outbox event waiting for the relay, no job waiting, running or retrying on the workflow queues,
 * and no job finished since the previous look. Work moves between these places (a job writes an
 * outbox event, then completes), so one idle look could fall between two moves; two looks in a row
 * that see nothing in flight and the same finished counts cannot. A job of a killed worker counts as
 * running until another worker has taken it over and finished it.
 */
export async function workflowSettled(hub: TestHub | WorkflowPlace, timeoutMs?: number): Promise<void> {
  const place: WorkflowPlace =
    'hub' in hub ? { db: hub.hub.db, redisUrl: hub.config.redisUrl, queuePrefix: hub.config.queuePrefix } : hub;
  const connection = producerConnection(place.redisUrl);
  const queues = WORKFLOW_QUEUES.map((name) => new Queue(name, { connection, prefix: place.queuePrefix }));
  let previous: string | undefined;
  try {
    await until(
      async () => {
        const { rows } = await place.db.query(
          `SELECT (SELECT count(*) FROM dicom_study_refresh) + (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) AS n`,
        );
        const pending = Number((defined(rows[0], 'the pending count') as { n: unknown }).n);
        const counts = await Promise.all(
          queues.map((queue) =>
            queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
          ),
        );
        const inFlight =
          pending +
          counts.reduce(
            (sum, c) => sum + (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0),
            0,
          );
        const finished = JSON.stringify(counts.map((c) => [c.completed, c.failed]));
        const settled = inFlight === 0 && finished === previous;
        previous = inFlight === 0 ? finished : undefined;
        return settled;
      },
      'the outbox, the study refreshes and the workflow queues to drain',
      timeoutMs,
    );
  } finally {
    await Promise.all(queues.map((queue) => queue.close()));
    connection.disconnect();
  }
}
