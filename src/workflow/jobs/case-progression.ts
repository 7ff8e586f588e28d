/**
 * The `case-progression` queue: one job per written version of a case's workflow Task (coordination,
 * expect-material, pre-review, specialist-opinion), routed from `fhir-resource-events`, with the case's
 * ServiceRequest id only. The job runs src/workflow/progression.ts (one transaction) and then makes
 * sure the open specialist offer's reminder and escalation jobs are scheduled (deterministic job ids,
 * so scheduling again adds nothing; done after the commit on every run, so a crash between the two is
 * repaired by the next run, which the offer's own Task event queues).
 */
import type { Task, Communication } from '@medplum/fhirtypes';
import { TASK_CODE_SYSTEM, referencedId } from '../case-resources.ts';
import type { TaskCode } from '../case-resources.ts';
import { workflowContext, workflowDeps } from '../context.ts';
import { advanceCase, caseOfTask } from '../progression.ts';
import type { ProgressionResult } from '../progression.ts';
import { APPROVAL_REMINDER_POLICY, scheduleReminders } from './case-reminders.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { JobInfo, QueueProducer, WorkerDeps } from '../../queues/queue-definitions.ts';
import type { ResourceEventRoute } from './resource-events.ts';

export const CASE_PROGRESSION_QUEUE = 'case-progression';

/** The Task codes whose changes can move a case forward. */
const PROGRESSION_TASK_CODES: readonly TaskCode[] = [
  'coordination',
  'expect-material',
  'pre-review-radiology',
  'pre-review-pathology',
  'specialist-opinion',
  'approve',
];

/** The job function: the case's step, then its open offer's reminders. */
export async function processCaseProgression(
  data: { serviceRequestId: string },
  job: JobInfo,
  deps: WorkerDeps,
): Promise<ProgressionResult> {
  const context = workflowContext(deps);
  const result = await advanceCase(context, data);
  if (result.openOffer) {
    // Delays are measured from the workflow's clock (runtime/clock.ts), so they fire when it reaches each step.
    await scheduleReminders(
      workflowDeps(deps).queues,
      result.openOffer.taskId,
      new Date(result.openOffer.dueAt),
      context.now(),
    );
  }
  if (result.openApproval) {
    await scheduleReminders(
      workflowDeps(deps).queues,
      result.openApproval.taskId,
      new Date(result.openApproval.dueAt),
      context.now(),
      APPROVAL_REMINDER_POLICY,
    );
  }
  deps.logger.info(
    {
      queue: job.queue,
      jobId: job.id,
      serviceRequestId: data.serviceRequestId,
      outcome: result.outcome,
      state: result.state,
    },
    'case progression handled',
  );
  return result;
}

export const caseProgressionQueue = defineQueue({
  name: CASE_PROGRESSION_QUEUE,
  data: { serviceRequestId: 'fhirId' },
  attempts: 8,
  backoffMs: 2000,
  concurrency: 2,
  process: processCaseProgression,
});

/** One job per version of the Task that changed: a repeated event is ignored, a later version runs again. */
export function caseProgressionJobId(taskId: string, versionId: string): string {
  return `progression-${taskId}-v${versionId}`;
}

export function addCaseProgressionJob(
  producer: QueueProducer,
  serviceRequestId: string,
  jobId: string,
): Promise<string> {
  return producer.add(caseProgressionQueue, { serviceRequestId }, { jobId });
}

/** Task events: a workflow Task of a case changed, so the case may move on. */
export const caseProgressionRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') {
    return [];
  }
  const task = await context.read<Task>('Task', event.id);
  const relevant = task?.code?.coding?.some(
    (coding) =>
      coding.system === TASK_CODE_SYSTEM && (PROGRESSION_TASK_CODES as readonly string[]).includes(coding.code ?? ''),
  );
  const serviceRequestId = task && relevant ? caseOfTask(task) : undefined;
  if (!task || !serviceRequestId) {
    return [];
  }
  return [
    {
      queue: caseProgressionQueue,
      data: { serviceRequestId },
      jobId: caseProgressionJobId(task.id, task.meta?.versionId ?? event.versionId),
    },
  ];
};

/**
 * Communication events: a specialist's question to the physician, or the physician's answer, about a
 * case (a Communication based on its ServiceRequest) may pause or resume it.
 */
export const communicationProgressionRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') {
    return [];
  }
  const communication = await context.read<Communication>('Communication', event.id);
  const serviceRequestId = (communication?.basedOn ?? [])
    .map((reference) => referencedId(reference, 'ServiceRequest'))
    .find((id) => id !== undefined);
  if (!communication || !serviceRequestId) {
    return [];
  }
  return [
    {
      queue: caseProgressionQueue,
      data: { serviceRequestId },
      jobId: `progression-communication-${communication.id}-v${communication.meta?.versionId ?? event.versionId}`,
    },
  ];
};
