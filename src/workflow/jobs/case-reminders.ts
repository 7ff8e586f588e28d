/**
 * The `case-reminders` queue: BullMQ delayed jobs on the business-day calendar for a specialist's
 * opinion Task (business-calendar.ts reminderSchedule from its `restriction.period.end`): reminders
 * to the specialist before the due day, then escalation to the coordinators; and for the
 * coordinators' approval Task of a submitted report, an escalation only. Job data: the Task id
 * and the step (`reminder-<n>` or `escalation`); the job id carries the due instant too, so the same
 * schedule is never added twice and a changed due date schedules afresh.
 *
 * A job that finds the Task finished (completed, declined, cancelled) does nothing; one that runs
 * early (a due date moved later) does nothing; a reminder or an escalation already recorded is not
 * recorded again. An approval is escalated only while the report still waits for it: the case in
 * `report-review` by the hub's own record (case_state) and the approve Task `requested`; a case
 * cancelled or sent back to the specialist leaves its approve Task open, and nobody is late. Likewise
 * the specialist is reminded and escalated only while the case waits for their opinion (matching,
 * specialist review, a question back), not once the report is submitted or the case has ended.
 * Reminder: a note on the Task and an e-mail to the specialist (notifications.ts).
 * Escalation: the coordination Task's priority raised one step and a note saying which Task is
 * overdue, for the coordinators' work list.
 */
import type { Task, TaskRestriction } from '@medplum/fhirtypes';
import { DEFAULT_REMINDER_POLICY, reminderSchedule } from '../../cases/business-calendar.ts';
import type { ReminderPolicy } from '../../cases/business-calendar.ts';
import { actorOf } from '../../auth/actor.ts';
import type { Queryable } from '../../db/database.ts';
import { HubRepository } from '../../fhir/repository.ts';
import {
  CASE_ROLES,
  TASK_CODE_SYSTEM,
  caseStateOf,
  findCaseResource,
  lockCase,
  referencedId,
} from '../case-resources.ts';
import type { WorkflowContext } from '../context.ts';
import { workflowContext } from '../context.ts';
import { readOptional } from '../materials.ts';
import { caseOfTask } from '../progression.ts';
import { OPEN_TASK_STATUSES } from '../specialists.ts';
import { parseJobData } from '../../queues/job-data.ts';
import { recordNotification } from './notifications.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { JobInfo, QueueProducer, WorkerDeps } from '../../queues/queue-definitions.ts';

export const CASE_REMINDERS_QUEUE = 'case-reminders';
export const REMINDER_NOTE_AUTHOR = 'Second-opinion hub: reminder';
export const ESCALATION_NOTE_AUTHOR = 'Second-opinion hub: escalation';
const PRIORITY_STEPS: readonly NonNullable<Task['priority']>[] = ['routine', 'urgent', 'asap', 'stat'];

export interface ReminderJob {
  taskId: string;
  /** `reminder-0`, `reminder-1`, … (in time order) or `escalation`. */
  step: string;
}

/**
 * `no-task`: the Task is gone (deleted, also while the job waited for the case lock), it is not a case's
 * specialist-opinion Task, or (for the escalation) the case has no coordination Task.
 */
export type ReminderOutcome =
  | 'reminded'
  | 'escalated'
  | 'already-recorded'
  | 'task-closed'
  | 'paused'
  | 'not-due'
  | 'no-task'
  | 'unknown-step'
  | 'not-awaiting-approval'
  | 'not-awaiting-opinion';

const dueOf = (restriction: TaskRestriction | undefined): Date | undefined => {
  const end = restriction?.period?.end;
  return end && !Number.isNaN(Date.parse(end)) ? new Date(end) : undefined;
};

/**
 * The coordinators review a submitted report within a business day (issue 14, "SLA"): no reminders,
 * and an escalation the next business morning when it is late.
 */
export const APPROVAL_REMINDER_POLICY: ReminderPolicy = { remindBusinessDaysBefore: [], escalateBusinessDaysAfter: 1 };

/** The Task codes that have a due date the hub watches, and the schedule of each. */
const WATCHED: Readonly<Record<string, ReminderPolicy>> = {
  'specialist-opinion': DEFAULT_REMINDER_POLICY,
  approve: APPROVAL_REMINDER_POLICY,
};

/** When a step is due for a Task due at `due`, or undefined for a step the schedule does not have. */
function stepInstant(due: Date, step: string, policy: ReminderPolicy): Date | undefined {
  const schedule = reminderSchedule(due, policy);
  if (step === 'escalation') {
    return schedule.escalation;
  }
  const match = /^reminder-(\d+)$/.exec(step);
  return match ? schedule.reminders[Number(match[1])] : undefined;
}

/** The steps of a Task's schedule, each with its instant. */
export function reminderSteps(
  due: Date,
  policy: ReminderPolicy = DEFAULT_REMINDER_POLICY,
): { step: string; at: Date }[] {
  const schedule = reminderSchedule(due, policy);
  return [
    ...schedule.reminders.map((at, index) => ({ step: `reminder-${index}`, at })),
    { step: 'escalation', at: schedule.escalation },
  ];
}

export function reminderJobId(taskId: string, due: Date, step: string): string {
  return `reminder-${taskId}-${due.getTime()}-${step}`;
}

/** The job function's core: runs one step at `ctx.now()`, in one transaction under the case lock. */
export async function runReminder(
  ctx: WorkflowContext,
  data: ReminderJob,
  options: { messageIdDomain: string },
): Promise<ReminderOutcome> {
  return ctx.repository.db.transaction(async (tx) => {
    const repo = new HubRepository(ctx.repository, tx);
    const found = await readOptional<Task>(repo, 'Task', data.taskId);
    const serviceRequestId = found && caseOfTask(found);
    if (!found || !serviceRequestId) {
      return 'no-task';
    }
    await lockCase(tx, serviceRequestId);
    // Read again under the lock; a FHIR DELETE does not take the case lock, so the Task may be gone by now.
    const task = await readOptional<Task>(repo, 'Task', data.taskId);
    const code = task?.code?.coding?.find((coding) => coding.system === TASK_CODE_SYSTEM)?.code;
    const policy = code === undefined ? undefined : WATCHED[code];
    if (!task || !policy) {
      return 'no-task';
    }
    if (!OPEN_TASK_STATUSES.includes(task.status)) {
      return 'task-closed';
    }
    if (code === 'approve' && (task.status !== 'requested' || !(await awaitingApproval(tx, serviceRequestId, task)))) {
      return 'not-awaiting-approval';
    }
    if (code === 'specialist-opinion' && !(await awaitingOpinion(tx, repo, serviceRequestId))) {
      return 'not-awaiting-opinion';
    }
    // The specialist asked the physician a question: the clock stands still until the answer, when
    // the case's progression moves the due date and schedules the reminders again.
    if (task.status === 'on-hold') {
      // Only the hub's own pause counts (the case waiting for the physician's answer): a Task its
      // owner put on hold is still due.
      const coordination = await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination);
      const waiting = coordination?.businessStatus?.coding?.some((coding) => coding.code === 'awaiting-information');
      if (waiting) {
        return 'paused';
      }
    }
    const due = dueOf(task.restriction);
    const at = due && stepInstant(due, data.step, policy);
    if (!due || !at) {
      return 'unknown-step';
    }
    const now = ctx.now();
    if (now.getTime() < at.getTime()) {
      return 'not-due';
    }

    if (data.step !== 'escalation') {
      const count = reminderSchedule(due, policy).reminders.length;
      const text = `Reminder ${Number(data.step.slice('reminder-'.length)) + 1} of ${count}: this opinion is due ${due.toISOString()}.`;
      if ((task.note ?? []).some((note) => note.authorString === REMINDER_NOTE_AUTHOR && note.text === text)) {
        return 'already-recorded';
      }
      const { meta, ...rest } = task;
      await repo.updateResource<Task>(
        {
          ...rest,
          note: [...(task.note ?? []), { authorString: REMINDER_NOTE_AUTHOR, time: now.toISOString(), text }],
        },
        { ifMatch: meta?.versionId },
      );
      const ownerId = referencedId(task.owner, 'Practitioner');
      if (ownerId) {
        await recordNotification(
          tx,
          {
            kind: 'case-status-changed',
            recipient: `Practitioner/${ownerId}`,
            caseReference: `ServiceRequest/${serviceRequestId}`,
            dedupeKey: `Task/${task.id}:${data.step}:${due.getTime()}`,
          },
          options.messageIdDomain,
        );
      }
      return 'reminded';
    }

    const coordination = await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination);
    if (!coordination) {
      return 'no-task';
    }
    const what = code === 'approve' ? 'the approval of the consultation report,' : 'the specialist opinion';
    const text = `Overdue: ${what} Task/${task.id} was due ${due.toISOString()} and is not done; escalated to the coordinators.`;
    if ((coordination.note ?? []).some((note) => note.authorString === ESCALATION_NOTE_AUTHOR && note.text === text)) {
      return 'already-recorded';
    }
    const step = PRIORITY_STEPS.indexOf(coordination.priority ?? 'routine');
    const { meta, ...rest } = coordination;
    await repo.updateResource<Task>(
      {
        ...rest,
        priority: PRIORITY_STEPS[Math.min(step + 1, PRIORITY_STEPS.length - 1)],
        note: [...(coordination.note ?? []), { authorString: ESCALATION_NOTE_AUTHOR, time: now.toISOString(), text }],
        lastModified: now.toISOString(),
      },
      { ifMatch: meta?.versionId },
    );
    return 'escalated';
  });
}

/**
 * True while the hub's own record of the case (case_state, migration 016) has it in `report-review`,
 * or, for an amendment of the released report, while the approval is the hub's own opening of it
 * (focus the amendment's Composition; docs/case-workflow.md, "Amendments").
 */
async function awaitingApproval(tx: Queryable, serviceRequestId: string, task: Task): Promise<boolean> {
  const found = await tx.query<{ state: string }>('SELECT state FROM case_state WHERE case_id = $1', [
    serviceRequestId,
  ]);
  const state = found.rows[0]?.state;
  const amendment = referencedId(task.focus, 'Composition') !== undefined && !actorOf(task.meta?.source);
  return state === 'report-review' || (amendment && (state === 'report-released' || state === 'report-accessed'));
}

/** The states in which a case waits for its specialist: offered, writing, or asking the physician. */
const OPINION_STATES: readonly string[] = ['matching', 'specialist-review', 'awaiting-information'];

/**
 * True while the case waits for the specialist's opinion by the hub's own record (case_state), or by
 * its coordination Task for a case the progression has not recorded yet: once the report is
 * submitted, or the case cancelled, declined or failed, the specialist is not late.
 */
async function awaitingOpinion(tx: Queryable, repo: HubRepository, serviceRequestId: string): Promise<boolean> {
  const found = await tx.query<{ state: string }>('SELECT state FROM case_state WHERE case_id = $1', [
    serviceRequestId,
  ]);
  const recorded = found.rows[0]?.state;
  if (recorded !== undefined) {
    return OPINION_STATES.includes(recorded);
  }
  const coordination = await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination);
  const state = coordination && caseStateOf(coordination);
  return state !== undefined && OPINION_STATES.includes(state);
}

export async function processReminder(data: ReminderJob, job: JobInfo, deps: WorkerDeps): Promise<ReminderOutcome> {
  const outcome = await runReminder(workflowContext(deps), data, { messageIdDomain: deps.mailer.domain });
  deps.logger.info(
    { queue: job.queue, jobId: job.id, taskId: data.taskId, step: data.step, outcome },
    'case reminder handled',
  );
  return outcome;
}

export const caseRemindersQueue = defineQueue({
  name: CASE_REMINDERS_QUEUE,
  data: { taskId: 'fhirId', step: 'keyword' },
  attempts: 8,
  backoffMs: 5000,
  concurrency: 2,
  process: processReminder,
});

/**
 * Schedules a Task's reminders and escalation as delayed jobs (a step already past runs at once).
 * Idempotent: BullMQ ignores a job id it holds. Returns the job ids.
 */
export async function scheduleReminders(
  producer: QueueProducer,
  taskId: string,
  due: Date,
  now: Date,
  policy: ReminderPolicy = DEFAULT_REMINDER_POLICY,
): Promise<string[]> {
  const queue = producer.queue(CASE_REMINDERS_QUEUE);
  const ids: string[] = [];
  for (const { step, at } of reminderSteps(due, policy)) {
    const data = parseJobData(CASE_REMINDERS_QUEUE, caseRemindersQueue.schema, { taskId, step });
    const jobId = reminderJobId(taskId, due, step);
    await queue.add(CASE_REMINDERS_QUEUE, data, { jobId, delay: Math.max(0, at.getTime() - now.getTime()) });
    ids.push(jobId);
  }
  return ids;
}
