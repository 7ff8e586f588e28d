/**
 * The `case-materials` queue: one job per written DocumentReference, ImagingStudy, Specimen or
 * reconcile-imaging Task (routed from `fhir-resource-events`, src/queues/resource-events.ts), with
 * the resource's type and id only. Each job is one transaction (src/workflow/materials.ts,
 * imaging-match.ts) and idempotent: it derives the case's state from every material the case has,
 * so running it again, or after a later event of the same resource, writes nothing new.
 */
import type { Task } from '@medplum/fhirtypes';
import { UnrecoverableError } from 'bullmq';
import { FeeError } from '../cases/fees.ts';
import type { Database } from '../db/database.ts';
import { TASK_CODE_SYSTEM } from '../workflow/case-resources.ts';
import { workflowContext } from '../workflow/context.ts';
import type { WorkflowContext } from '../workflow/context.ts';
import { RECONCILE_IMAGING, matchImagingStudy, resolveReconciliation } from '../workflow/imaging-match.ts';
import { caseQuoteRecomputer, recordDocument, recordSpecimen } from '../workflow/materials.ts';
import { redactErrorMessage } from './job-data.ts';
import { defineQueue } from './queue-definitions.ts';
import type { JobInfo, QueueProducer, WorkerDeps } from './queue-definitions.ts';
import type { ResourceEventRoute } from './resource-events.ts';

export const CASE_MATERIALS_QUEUE = 'case-materials';

export interface CaseMaterialJob {
  resourceType: string;
  id: string;
}

/** Runs one step in one transaction; exported so tests can run a job on real data. */
export async function runCaseMaterialStep(db: Database, context: WorkflowContext, data: CaseMaterialJob): Promise<string> {
  const { repository } = context;
  const recompute = caseQuoteRecomputer(context);
  return db.transaction(async (tx) => {
    switch (data.resourceType) {
      case 'DocumentReference':
        return recordDocument(tx, repository, data.id, recompute);
      case 'Specimen':
        return recordSpecimen(tx, repository, data.id, recompute);
      case 'ImagingStudy':
        return (await matchImagingStudy(tx, repository, data.id, recompute, context.now())).outcome;
      case 'Task':
        return resolveReconciliation(tx, repository, data.id, recompute);
      default:
        return 'ignored';
    }
  });
}

/** The job function: the step, and a log line of ids and the outcome. */
export async function processCaseMaterial(data: CaseMaterialJob, job: JobInfo, deps: WorkerDeps): Promise<string> {
  let outcome: string;
  try {
    outcome = await runCaseMaterialStep(deps.db, workflowContext(deps), data);
  } catch (err) {
    // A schedule that cannot price the case does not heal by retrying (as in case-intake.ts).
    if (err instanceof FeeError) throw new UnrecoverableError(redactErrorMessage(err.message));
    throw err;
  }
  deps.logger.info({ queue: job.queue, jobId: job.id, resourceType: data.resourceType, id: data.id, outcome }, 'case material handled');
  return outcome;
}

export const caseMaterialsQueue = defineQueue({
  name: CASE_MATERIALS_QUEUE,
  data: { resourceType: 'resourceType', id: 'fhirId' },
  attempts: 8,
  backoffMs: 2000,
  concurrency: 2,
  process: processCaseMaterial,
});

/** One job per version of a resource: a repeated event is ignored, a later version runs again. */
export function caseMaterialJobId(resourceType: string, id: string, versionId: string): string {
  return `materials-${resourceType}-${id}-v${versionId}`;
}

export function addCaseMaterialJob(producer: QueueProducer, resourceType: string, id: string, versionId: string): Promise<string> {
  return producer.add(caseMaterialsQueue, { resourceType, id }, { jobId: caseMaterialJobId(resourceType, id, versionId) });
}

/** DocumentReference, ImagingStudy and Specimen events: each written version is looked at once. */
export const caseMaterialRoute: ResourceEventRoute = async (event) => {
  if (event.interaction === 'delete') return [];
  return [{ queue: caseMaterialsQueue, data: { resourceType: event.resourceType, id: event.id }, jobId: caseMaterialJobId(event.resourceType, event.id, event.versionId) }];
};

/** Task events: a reconcile-imaging Task a coordinator completed (or any change to one) is looked at. */
export const reconcileImagingRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') return [];
  const task = await context.read<Task>('Task', event.id);
  const reconcile = task?.code?.coding?.some((coding) => coding.system === TASK_CODE_SYSTEM && coding.code === RECONCILE_IMAGING);
  if (!task || !reconcile || task.status !== 'completed') return [];
  return [{ queue: caseMaterialsQueue, data: { resourceType: 'Task', id: task.id }, jobId: caseMaterialJobId('Task', task.id, task.meta?.versionId ?? event.versionId) }];
};
