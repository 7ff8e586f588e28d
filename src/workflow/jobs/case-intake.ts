/**
 * The `case-intake` queue: one job per submitted (or changed, still submitted) ServiceRequest,
 * running src/workflow/intake.ts. Job data: `{ serviceRequestId }`.
 */
import { UnrecoverableError } from 'bullmq';
import { FeeError } from '../../cases/fees.ts';
import type { ServiceRequest } from '@medplum/fhirtypes';
import { runIntake } from '../intake.ts';
import type { IntakeOutcome } from '../intake.ts';
import { workflowContext } from '../context.ts';
import { redactErrorMessage } from '../../queues/job-data.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { JobInfo, QueueProducer, WorkerDeps } from '../../queues/queue-definitions.ts';
import type { ResourceEventRoute } from './resource-events.ts';
import { startWorkers } from '../../queues/worker-runner.ts';
import type { WorkerPool, WorkerRuntimeOptions } from '../../queues/worker-runner.ts';

export const CASE_INTAKE_QUEUE = 'case-intake';

/** The job function: intake of one request, in one transaction (see intake.ts). */
export async function processIntake(
  data: { serviceRequestId: string },
  _job: JobInfo,
  deps: WorkerDeps,
): Promise<IntakeOutcome> {
  try {
    return await runIntake(workflowContext(deps), data);
  } catch (err) {
    // A schedule that cannot price the case does not heal by retrying; the dead-letter view shows it.
    if (err instanceof FeeError) {
      throw new UnrecoverableError(redactErrorMessage(err.message));
    }
    throw err;
  }
}

export const caseIntakeQueue = defineQueue({
  name: CASE_INTAKE_QUEUE,
  data: { serviceRequestId: 'fhirId' },
  attempts: 8,
  backoffMs: 2000,
  concurrency: 2,
  process: processIntake,
});

/**
 * One job per version of the request: a repeated event for the same version (a relay retry) is
 * ignored by BullMQ, while a later change queues its own re-quote.
 */
export function caseIntakeJobId(serviceRequestId: string, versionId: string): string {
  return `intake-${serviceRequestId}-v${versionId}`;
}

export function addIntakeJob(producer: QueueProducer, serviceRequestId: string, versionId: string): Promise<string> {
  return producer.add(caseIntakeQueue, { serviceRequestId }, { jobId: caseIntakeJobId(serviceRequestId, versionId) });
}

/** ServiceRequest events: an active request goes to intake (which decides whether there is work). */
export const serviceRequestIntakeRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') {
    return [];
  }
  const request = await context.read<ServiceRequest>('ServiceRequest', event.id);
  if (request?.status !== 'active') {
    return [];
  }
  return [
    {
      queue: caseIntakeQueue,
      data: { serviceRequestId: request.id },
      jobId: caseIntakeJobId(request.id, request.meta?.versionId ?? event.versionId),
    },
  ];
};

/** Starts a worker for this queue alone (a dedicated process, or a test). */
export function startCaseIntakeWorker(deps: WorkerDeps, options: WorkerRuntimeOptions): WorkerPool {
  return startWorkers([caseIntakeQueue], deps, options);
}
