/**
 * The `case-materials` queue: one job per written DocumentReference, ImagingStudy, Specimen,
 * reconcile-imaging or confirm-imaging-claim Task (routed from `fhir-resource-events`, workflow/jobs/resource-events.ts), with
 * the resource's type and id only. Each job is one transaction (src/workflow/materials.ts,
 * imaging-match.ts) and idempotent: it derives the case's state from every material the case has,
 * so running it again, or after a later event of the same resource, writes nothing new.
 *
 * The same queue re-quotes a case, `{ resourceType: 'ServiceRequest', id }`, when what it is charged
 * changed outside its materials: the physician's questions (a QuestionnaireResponse version), a
 * coordinator's question-count override, or an expect-material Task waived (requoteTaskRoute).
 */
import type { QuestionnaireResponse, ServiceRequest, Task } from '@medplum/fhirtypes';
import { Operator } from '@medplum/core';
import type { WithId } from '@medplum/core';
import { UnrecoverableError } from 'bullmq';
import { FeeError } from '../../cases/fees.ts';
import type { Database } from '../../db/database.ts';
import { TASK_CODE_SYSTEM, referencedId } from '../case-resources.ts';
import { workflowContext } from '../context.ts';
import type { WorkflowContext } from '../context.ts';
import { DECIDED_CLAIM_STATUSES, claimTaskStudy, resolveClaimConfirmation } from '../imaging-claims.ts';
import { RECONCILE_IMAGING, matchImagingStudy, resolveReconciliation } from '../imaging-match.ts';
import { caseQuoteRecomputer, recordDocument, recordSpecimen, requoteCase } from '../materials.ts';
import { caseOfTask } from '../progression.ts';
import { QUESTION_COUNT_OVERRIDE_EXTENSION, QUOTE_EXTENSION, questionCountOverrideOf } from '../quote.ts';
import { caseIntakeQueue } from './case-intake.ts';
import { redactErrorMessage } from '../../queues/job-data.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { JobInfo, QueueProducer, WorkerDeps } from '../../queues/queue-definitions.ts';
import type { ResourceEventRoute } from './resource-events.ts';

export const CASE_MATERIALS_QUEUE = 'case-materials';

export interface CaseMaterialJob {
  resourceType: string;
  id: string;
}

/** Runs one step in one transaction; exported so tests can run a job on real data. */
export async function runCaseMaterialStep(
  db: Database,
  context: WorkflowContext,
  data: CaseMaterialJob,
): Promise<string> {
  const { repository } = context;
  const recompute = caseQuoteRecomputer(context);
  const now = context.now();
  return db.transaction(async (tx) => {
    switch (data.resourceType) {
      case 'DocumentReference':
        return recordDocument(tx, repository, data.id, recompute, now);
      case 'Specimen':
        return recordSpecimen(tx, repository, data.id, recompute, now);
      case 'ImagingStudy':
        return (await matchImagingStudy(tx, repository, data.id, recompute, now)).outcome;
      case 'Task': {
        const outcome = await resolveReconciliation(tx, repository, data.id, recompute, now);
        return outcome === 'not-reconcile' ? resolveClaimConfirmation(tx, repository, data.id) : outcome;
      }
      // A re-quote of the case (its questions or their count changed): see requoteRoute below.
      case 'ServiceRequest':
        return requoteCase(tx, repository, data.id, recompute);
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
    if (err instanceof FeeError) {
      throw new UnrecoverableError(redactErrorMessage(err.message));
    }
    throw err;
  }
  deps.logger.info(
    { queue: job.queue, jobId: job.id, resourceType: data.resourceType, id: data.id, outcome },
    'case material handled',
  );
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

export function addCaseMaterialJob(
  producer: QueueProducer,
  resourceType: string,
  id: string,
  versionId: string,
): Promise<string> {
  return producer.add(
    caseMaterialsQueue,
    { resourceType, id },
    { jobId: caseMaterialJobId(resourceType, id, versionId) },
  );
}

/** DocumentReference, ImagingStudy and Specimen events: each written version is looked at once. */
export const caseMaterialRoute: ResourceEventRoute = async (event) => {
  if (event.interaction === 'delete') {
    return [];
  }
  return [
    {
      queue: caseMaterialsQueue,
      data: { resourceType: event.resourceType, id: event.id },
      jobId: caseMaterialJobId(event.resourceType, event.id, event.versionId),
    },
  ];
};

/**
 * Task events: a reconcile-imaging Task a coordinator completed, or the hub's confirm-imaging-claim
 * Task of a study decided (workflow/imaging-claims.ts), is looked at.
 */
export const reconcileImagingRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') {
    return [];
  }
  const task = await context.read<Task>('Task', event.id);
  const reconcile = task?.code?.coding?.some(
    (coding) => coding.system === TASK_CODE_SYSTEM && coding.code === RECONCILE_IMAGING,
  );
  const claim = task !== undefined && claimTaskStudy(task) !== undefined;
  if (!task || !((reconcile && task.status === 'completed') || (claim && DECIDED_CLAIM_STATUSES.has(task.status)))) {
    return [];
  }
  return [
    {
      queue: caseMaterialsQueue,
      data: { resourceType: 'Task', id: task.id },
      jobId: caseMaterialJobId('Task', task.id, task.meta?.versionId ?? event.versionId),
    },
  ];
};

/** One re-quote per version of the resource that asked for it: a repeated event adds nothing. */
export function requoteJobId(
  serviceRequestId: string,
  cause: { resourceType: string; id: string; versionId: string },
): string {
  return `materials-requote-${serviceRequestId}-${cause.resourceType}-${cause.id}-v${cause.versionId}`;
}

const requoteJob = (serviceRequestId: string, cause: { resourceType: string; id: string; versionId: string }) => ({
  queue: caseMaterialsQueue,
  data: { resourceType: 'ServiceRequest', id: serviceRequestId },
  jobId: requoteJobId(serviceRequestId, cause),
});

/**
 * Whether a coordination Task's question-count override is not yet what its quote reflects: set,
 * changed or removed since (the quote records the count it billed, whether an override was applied,
 * and why one could not be). Every other write of the Task (state moves, the quote itself)
 * re-quotes nothing.
 */
export function questionCountOverridePending(task: Task): boolean {
  const quote = task.extension?.find((extension) => extension.url === QUOTE_EXTENSION);
  const part = (url: string) => quote?.extension?.find((extension) => extension.url === url);
  const overridden = part('questionCountOverridden')?.valueBoolean === true;
  const recordedProblem = part('questionCountOverrideProblem')?.valueString;
  const present = task.extension?.some((extension) => extension.url === QUESTION_COUNT_OVERRIDE_EXTENSION) ?? false;
  if (!present) {
    return overridden || recordedProblem !== undefined;
  }
  const { override, problem } = questionCountOverrideOf(task);
  if (problem) {
    return recordedProblem !== problem;
  }
  return !overridden || recordedProblem !== undefined || part('questionCount')?.valueUnsignedInt !== override?.count;
}

/**
 * Task events that change what a case is charged: a coordinator's question-count override on the
 * coordination Task, and an expect-material Task cancelled (waived by a coordinator: its material is
 * no longer priced, unless some arrived anyway).
 */
export const requoteTaskRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') {
    return [];
  }
  const task = await context.read<Task>('Task', event.id);
  const code = task?.code?.coding?.find((coding) => coding.system === TASK_CODE_SYSTEM)?.code;
  const serviceRequestId = task ? caseOfTask(task) : undefined;
  if (!task || !serviceRequestId) {
    return [];
  }
  const requote =
    code === 'coordination'
      ? questionCountOverridePending(task)
      : code === 'expect-material' && task.status === 'cancelled';
  return requote
    ? [
        requoteJob(serviceRequestId, {
          resourceType: 'Task',
          id: task.id,
          versionId: task.meta?.versionId ?? event.versionId,
        }),
      ]
    : [];
};

/**
 * QuestionnaireResponse events: the questions of every active case whose request lists the response
 * in supportingInfo changed, so those cases are re-quoted. ServiceRequest has no search parameter on
 * supportingInfo; the cases are found through the response's `basedOn` and its subject's requests.
 */
export const questionnaireResponseRoute: ResourceEventRoute = async (event, context) => {
  // A new response is no request's yet, except in the request's own transaction, whose intake reads it.
  if (event.interaction !== 'update') {
    return [];
  }
  const response = await context.read<QuestionnaireResponse>('QuestionnaireResponse', event.id);
  if (!response) {
    return [];
  }
  const candidates = new Map<string, WithId<ServiceRequest>>();
  for (const reference of response.basedOn ?? []) {
    const id = referencedId(reference, 'ServiceRequest');
    const request = id ? await context.read<ServiceRequest>('ServiceRequest', id) : undefined;
    if (request) {
      candidates.set(request.id, request);
    }
  }
  const patientId = referencedId(response.subject, 'Patient');
  if (patientId) {
    const requests = await context.repository.searchResources<ServiceRequest>({
      resourceType: 'ServiceRequest',
      filters: [
        { code: 'subject', operator: Operator.EQUALS, value: `Patient/${patientId}` },
        { code: 'status', operator: Operator.EQUALS, value: 'active' },
      ],
      count: 1000,
    });
    for (const request of requests) {
      candidates.set(request.id, request);
    }
  }
  const cause = {
    resourceType: 'QuestionnaireResponse',
    id: response.id,
    versionId: response.meta?.versionId ?? event.versionId,
  };
  // A case still in intake (waiting for its questions, say) is intake's to re-run; a quoted one is re-quoted.
  return [...candidates.values()]
    .filter(
      (request) =>
        request.status === 'active' &&
        (request.supportingInfo ?? []).some((info) => referencedId(info, 'QuestionnaireResponse') === response.id),
    )
    .map((request) => request.id)
    .sort()
    .flatMap((id) => [
      requoteJob(id, cause),
      {
        queue: caseIntakeQueue,
        data: { serviceRequestId: id },
        jobId: `intake-${id}-QuestionnaireResponse-${cause.id}-v${cause.versionId}`,
      },
    ]);
};
