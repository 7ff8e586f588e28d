/**
 * The case after intake (docs/case-workflow.md): materials complete → pre-review Tasks → matching → the
 * specialist's Task → specialist-review. One job step reads the whole case under its lock and moves it
 * as far as the facts allow, every state change through case-state.ts `transition`, all in one
 * transaction. Each step derives what to do from the stored resources, and a Task is created only
 * when its case identifier finds none, so a step that runs twice writes nothing the second time.
 *
 * A coordinator moves a case by writing the coordination Task's businessStatus (the hub has no
 * per-user roles on FHIR writes yet): a businessStatus whose Task.status does not match
 * STATE_RESOURCES is a person's move not yet applied; it is checked as a coordinator's move from the
 * last consistent version's state, then applied (Task.status, ServiceRequest.status) or undone with
 * the refusal as statusReason.
 */
import { parseSearchRequest } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type {
  CodeableConcept,
  DiagnosticReport,
  ImagingStudy,
  Patient,
  Practitioner,
  PractitionerRole,
  Reference,
  ServiceRequest,
  Specimen,
  Task,
} from '@medplum/fhirtypes';
import { ACTOR_ROLES, CASE_STATES, STATE_RESOURCES, transition } from '../cases/case-state.ts';
import type { Actor, ActorRole, CaseFacts, CaseState, PreReview, TransitionResult } from '../cases/case-state.ts';
import { dueAfterPause, dueDate } from '../cases/business-calendar.ts';
import { checkEligibility } from '../cases/jurisdictions.ts';
import type { Eligibility } from '../cases/jurisdictions.ts';
import { matchSpecialists, nextCandidate } from '../cases/matching.ts';
import type { CaseMaterials, Specialty } from '../cases/specialties.ts';
import type { Queryable } from '../db/database.ts';
import { actorOf } from '../auth/actor.ts';
import { DRAFT_STATUSES } from '../auth/case-links.ts';
import { policyInForce, residenceOf } from '../fhir/operations/eligibility.ts';
import { HubRepository } from '../fhir/repository.ts';
import {
  CASE_ROLES,
  TASK_CODE_SYSTEM,
  caseResourceIdentifier,
  caseStateConcept,
  caseStateOf,
  findCaseResource,
  lockCase,
  referencedId,
  taskCode,
} from './case-resources.ts';
import type { TaskCode } from './case-resources.ts';
import { caseDeadline, withCaseClock } from './case-clock.ts';
import { notifyCaseState, notifyPerson } from './case-notifications.ts';
import {
  APPROVE_ROLE,
  PAUSED_AT_EXTENSION,
  amendOpinion,
  amendmentApprovalTask,
  amendmentFacts,
  approveOpinion,
  approveTask,
  authorOf,
  clarifications,
  informationRequests,
  opinionFacts,
} from './opinion.ts';
import type { AmendmentFacts } from './opinion.ts';
import type { WorkflowContext } from './context.ts';
import { expectMaterialTasks } from './expect-material.ts';
import { TASK_INPUT_SYSTEM } from './imaging-match.ts';
import { readOptional } from './materials.ts';
import { questionTexts, requestQuestionnaires } from './quote.ts';
import { offeredIds, settleReassignment } from './reassignment.ts';
import {
  OPEN_TASK_STATUSES,
  loadRoster,
  offerNote,
  rankingExplanation,
  rankingProvenance,
  requestedSpecialistId,
  specialistTask,
  specialistTaskRole,
} from './specialists.ts';

/** Coordination Task.statusReason codes the progression writes (coordinator-visible). */
export const CASE_REASON_SYSTEM = 'urn:hub:case-reason';
/** Task.output types of the coordination Task: what the case produced (the opinion's report and letter). */
export const TASK_OUTPUT_SYSTEM = 'urn:hub:task-output';
const PRE_REVIEW_KINDS = ['radiology', 'pathology'] as const;
type PreReviewKind = (typeof PRE_REVIEW_KINDS)[number];
const PRE_REVIEW_CODE: Record<PreReviewKind, TaskCode> = {
  radiology: 'pre-review-radiology',
  pathology: 'pre-review-pathology',
};
const PRE_REVIEW_MATERIAL: Record<PreReviewKind, 'ImagingStudy' | 'Specimen'> = {
  radiology: 'ImagingStudy',
  pathology: 'Specimen',
};
const ACCEPTED_OFFER: readonly Task['status'][] = ['accepted', 'in-progress', 'on-hold', 'completed'];
const WITHDRAWN_OFFER: readonly Task['status'][] = ['rejected', 'cancelled', 'failed', 'entered-in-error'];

/** Annotation.authorString of the coordinators' returns written on the specialist's Task. */
export const REVIEW_NOTE_AUTHOR = 'Second-opinion hub: report review';
/** The coordinators review a submitted report by 17:00 New York on the next business day. */
const APPROVAL_BUSINESS_DAYS = 1;

export interface ProgressionResult {
  outcome: 'no-case' | 'not-active' | 'unchanged' | 'advanced';
  state?: CaseState;
  /** The open offer to a specialist, whose reminders the job (re)schedules on every run. */
  openOffer?: {
    taskId: string;
    dueAt: string;
  };
  /** The coordinators' open approval of a submitted report, whose escalation the job schedules. */
  openApproval?: { taskId: string; dueAt: string };
  /** Why the case could not go further, for the log (no PHI: codes and state names only). */
  refusal?: string;
}

interface CaseView {
  ctx: WorkflowContext;
  tx: Queryable;
  repo: HubRepository;
  now: Date;
  request: WithId<ServiceRequest>;
  coordination: WithId<Task>;
  state: CaseState;
  eligibility: Eligibility | undefined;
  expectTasks: WithId<Task>[];
  children: WithId<Task>[];
  changed: boolean;
  refusal?: string;
  /** The specialties the matching sought in this run, for the coordination Task (case-clock.ts). */
  specialtiesSought?: readonly Specialty[];
}

/** The case's approval Task, once a submission opened it. */
const approvalOf = (view: CaseView): WithId<Task> | undefined =>
  view.children.find((task) => hasTaskCode(task, 'approve'));

const hasTaskCode = (task: Task, code: TaskCode): boolean =>
  (task.code?.coding ?? []).some((coding) => coding.system === TASK_CODE_SYSTEM && coding.code === code);

function eligibilityOf(ctx: WorkflowContext, patient: Patient | undefined, now: Date): Eligibility | undefined {
  if (!patient) {
    return undefined;
  }
  return checkEligibility(
    residenceOf(patient)?.residence ?? { country: undefined },
    policyInForce(ctx.jurisdictionPolicies, now),
  );
}

// ---- what the case's Tasks say -------------------------------------------------------------------

/** Every expect-material Task is completed, or cancelled (waived by a coordinator, or no longer planned). */
const materialsComplete = (view: CaseView): boolean =>
  view.expectTasks.every((task) => task.status === 'completed' || task.status === 'cancelled');

/** When the last expected material arrived or was waived: the instant the 10 business days count from. */
function materialsCompletedAt(view: CaseView): Date {
  const instants = view.expectTasks
    .map((task) => task.executionPeriod?.end ?? task.lastModified ?? task.meta?.lastUpdated)
    .filter((value): value is string => value !== undefined)
    .map((value) => Date.parse(value));
  const fallback = Date.parse(
    view.coordination.lastModified ?? view.coordination.meta?.lastUpdated ?? view.now.toISOString(),
  );
  return new Date(instants.length > 0 ? Math.max(...instants) : fallback);
}

/** References to the arrived materials of a type, from the completed expect-material Tasks' output. */
function arrived(view: CaseView, type: 'ImagingStudy' | 'Specimen'): Reference[] {
  const references = view.expectTasks
    .filter((task) => task.status === 'completed')
    .flatMap((task) => task.output ?? [])
    .map((output) => output.valueReference?.reference)
    .filter(
      (reference): reference is string => reference !== undefined && referencedId({ reference }, type) !== undefined,
    );
  return [...new Set(references)].sort().map((reference) => ({ reference }));
}

/** The ids of the arrived materials of a type (arrived() keeps only references with one). */
const arrivedIds = (view: CaseView, type: 'ImagingStudy' | 'Specimen'): string[] =>
  arrived(view, type).flatMap((reference) => referencedId(reference, type) ?? []);

/** The pre-reviews the arrived materials call for and the patient's jurisdiction allows. */
function plannedPreReviews(view: CaseView): { kind: PreReviewKind; materials: Reference[] }[] {
  const allowed = view.eligibility?.allowedReviews ?? { radiology: false, pathology: false };
  return PRE_REVIEW_KINDS.flatMap((kind) => {
    const materials = arrived(view, PRE_REVIEW_MATERIAL[kind]);
    return materials.length > 0 && allowed[kind] ? [{ kind, materials }] : [];
  });
}

const preReviewTasks = (view: CaseView): { kind: PreReviewKind; task: WithId<Task> }[] =>
  PRE_REVIEW_KINDS.flatMap((kind) =>
    view.children
      .filter(
        (task) =>
          hasTaskCode(task, PRE_REVIEW_CODE[kind]) && task.status !== 'cancelled' && task.status !== 'entered-in-error',
      )
      .map((task) => ({ kind, task })),
  );

const reportsOf = (task: Task): Reference[] =>
  (task.output ?? []).flatMap(({ valueReference }) =>
    valueReference && referencedId(valueReference, 'DiagnosticReport') ? [{ reference: valueReference.reference }] : [],
  );

/** The case's pre-reviews for the guards: done when completed with a DiagnosticReport as output. */
const preReviewFacts = (view: CaseView): PreReview[] =>
  preReviewTasks(view).map(({ kind, task }) => ({
    kind,
    reviewerId: referencedId(task.owner, 'Practitioner'),
    done: task.status === 'completed' && reportsOf(task).length > 0,
  }));

/** The specialist-opinion offers, oldest first. */
const offers = (view: CaseView): WithId<Task>[] =>
  view.children
    .filter((task) => hasTaskCode(task, 'specialist-opinion'))
    .sort((a, b) => (a.authoredOn ?? '').localeCompare(b.authoredOn ?? ''));

/** The offer the case stands on: the latest that was not declined or withdrawn. */
const currentOffer = (view: CaseView): WithId<Task> | undefined =>
  offers(view)
    .filter((task) => !WITHDRAWN_OFFER.includes(task.status))
    .at(-1);

function facts(view: CaseView, extra: CaseFacts = {}): CaseFacts {
  const offer = currentOffer(view);
  const assigned =
    offer && ACCEPTED_OFFER.includes(offer.status) ? referencedId(offer.owner, 'Practitioner') : undefined;
  return {
    ...(view.eligibility
      ? { eligibility: { outcome: view.eligibility.outcome, allowedReviews: view.eligibility.allowedReviews } }
      : {}),
    materialsComplete: materialsComplete(view),
    preReviews: preReviewFacts(view),
    ...(assigned ? { assignedSpecialistId: assigned } : {}),
    ...extra,
  };
}

// ---- writes ----------------------------------------------------------------------------------------

/** The coordination Task (and the request) as a state says; statusReason replaced by `reason`. */
async function recordState(view: CaseView, state: CaseState, reason: CodeableConcept | undefined): Promise<void> {
  const { meta, statusReason: _old, ...rest } = view.coordination;
  const next: Task = {
    ...rest,
    status: STATE_RESOURCES[state].taskStatus,
    businessStatus: caseStateConcept(state),
    ...(reason ? { statusReason: reason } : {}),
    lastModified: view.now.toISOString(),
  };
  view.coordination = await view.repo.updateResource<Task>(next, { ifMatch: meta?.versionId });
  const requestStatus = STATE_RESOURCES[state].serviceRequestStatus;
  if (view.request.status !== requestStatus) {
    const { meta: requestMeta, ...request } = view.request;
    view.request = await view.repo.updateResource<ServiceRequest>(
      { ...request, status: requestStatus },
      { ifMatch: requestMeta?.versionId },
    );
  }
  const settled = await view.tx.query(
    `INSERT INTO case_state (case_id, state, since) VALUES ($1, $2, $3)
     ON CONFLICT (case_id) DO UPDATE SET state = EXCLUDED.state, since = EXCLUDED.since
     WHERE case_state.state IS DISTINCT FROM EXCLUDED.state`,
    [view.request.id, state, view.now.toISOString()],
  );
  view.state = state;
  view.changed = true;
  await notifyCaseState(view.ctx, {
    tx: view.tx,
    repo: view.repo,
    serviceRequest: view.request,
    patient: view.coordination.for,
    state,
    // Subscribers hear of a state the hub's record did not have; a refused move written back is none.
    ...(settled.rowCount > 0 ? { task: view.coordination } : {}),
  });
}

/** Applies an allowed transition; records the refusal of one that is not (for the log). */
async function move(view: CaseView, result: TransitionResult): Promise<boolean> {
  if (!result.ok) {
    view.refusal = result.reason;
    return false;
  }
  if (result.changed) {
    await recordState(view, result.state, undefined);
  }
  return true;
}

/** The coordination Task's statusReason set (or, with none, cleared) without a state change. */
/** Sets (or clears) the coordination Task's reason of `code`; whether it wrote. */
async function setReason(view: CaseView, code: string, reason: CodeableConcept | undefined): Promise<boolean> {
  const current = view.coordination.statusReason;
  const ours = current?.coding?.some((coding) => coding.system === CASE_REASON_SYSTEM && coding.code === code);
  if (reason ? current?.text === reason.text && ours : !ours) {
    return false;
  }
  const { meta, statusReason: _old, ...rest } = view.coordination;
  view.coordination = await view.repo.updateResource<Task>(
    { ...rest, ...(reason ? { statusReason: reason } : {}), lastModified: view.now.toISOString() },
    { ifMatch: meta?.versionId },
  );
  view.changed = true;
  return true;
}

/** Creates the case's Task of `role` unless it has one; the Task created, if it did. */
async function createChild(view: CaseView, role: string, task: Task): Promise<WithId<Task> | undefined> {
  if (await findCaseResource<Task>(view.repo, 'Task', view.request.id, role)) {
    return undefined;
  }
  const created = await view.repo.createResource<Task>(task);
  view.children.push(created);
  view.changed = true;
  return created;
}

function preReviewTask(view: CaseView, kind: PreReviewKind, materials: Reference[]): Task {
  const now = view.now.toISOString();
  return {
    resourceType: 'Task',
    identifier: [caseResourceIdentifier(view.request.id, PRE_REVIEW_CODE[kind])],
    ...(view.coordination.groupIdentifier ? { groupIdentifier: view.coordination.groupIdentifier } : {}),
    basedOn: [{ reference: `ServiceRequest/${view.request.id}` }],
    partOf: [{ reference: `Task/${view.coordination.id}` }],
    status: 'requested',
    intent: 'order',
    code: taskCode(PRE_REVIEW_CODE[kind]),
    description: kind === 'radiology' ? 'Radiology pre-review of the imaging' : 'Pathology pre-review of the specimens',
    focus: materials[0],
    ...(view.coordination.for ? { for: view.coordination.for } : {}),
    authoredOn: now,
    lastModified: now,
    input: materials.map((reference) => ({
      type: { coding: [{ system: TASK_INPUT_SYSTEM, code: 'material' }] },
      valueReference: reference,
    })),
  };
}

// ---- the steps -------------------------------------------------------------------------------------

/** The hub's own record of the case's settled state and since when (migration 016). */
async function settledRecord(view: CaseView): Promise<{ state: CaseState; since: Date } | undefined> {
  const found = await view.tx.query<{ state: string; since: Date | string }>(
    'SELECT state, since FROM case_state WHERE case_id = $1',
    [view.request.id],
  );
  const row = found.rows[0];
  const state = row && (CASE_STATES as readonly string[]).includes(row.state) ? (row.state as CaseState) : undefined;
  return row && state ? { state, since: new Date(row.since) } : undefined;
}

/**
 * The state the case was in before the latest version: the hub's own record (case_state) once it has
 * one; before that (a store from before migration 016), that of the newest earlier version the hub
 * wrote itself (or an anonymous request, on a trusted network) with its Task.status matching its
 * businessStatus, else of the first version (a coordination Task is created only by the hub, the staff
 * or a system client). A person's versions are never the base of a later move: two moves written
 * before the job runs are checked as one, from the state the hub last settled.
 */
async function settledState(view: CaseView): Promise<CaseState | undefined> {
  const record = await settledRecord(view);
  if (record) {
    return record.state;
  }
  const history = await view.repo.readHistory<Task>('Task', view.coordination.id, { limit: 50 });
  const earlier = (history.entry ?? [])
    .map((entry) => entry.resource)
    .filter((version) => version !== undefined)
    .filter((version) => version.meta?.versionId !== view.coordination.meta?.versionId);
  for (const version of earlier) {
    const state = caseStateOf(version);
    if (state && STATE_RESOURCES[state].taskStatus === version.status && !actorOf(version.meta?.source)) {
      return state;
    }
  }
  const first = earlier.at(-1);
  return first ? caseStateOf(first) : undefined;
}

/**
 * Who wrote the coordination Task's latest version (auth/actor.ts, stamped by the repository): a
 * coordinator or admin moves as a coordinator; any other person or a system client as themselves, so
 * the state machine refuses what their role may not do. A version without a recorded writer came from
 * an anonymous request, served only while AUTH_REQUIRED=false on a trusted network: a coordinator's.
 */
function moverOf(task: { meta?: { source?: string } }): Actor {
  const actor = actorOf(task.meta?.source);
  if (!actor || actor.role === 'coordinator' || actor.role === 'admin') {
    return { role: 'coordinator', id: actor?.id || 'coordinator' };
  }
  const role = (ACTOR_ROLES as readonly string[]).includes(actor.role) ? (actor.role as ActorRole) : 'patient';
  return { role, id: actor.id };
}

/**
 * A move someone wrote on the coordination Task (its businessStatus, with or without the matching
 * status): applied if their role may make it and its guards hold, otherwise undone with the reason.
 * Every version a person or a system client wrote is checked, even one whose status and
 * businessStatus agree: writing a consistent pair is no way around the state machine.
 */
async function applyPersonsMove(view: CaseView): Promise<void> {
  const consistent = view.coordination.status === STATE_RESOURCES[view.state].taskStatus;
  if (consistent && !actorOf(view.coordination.meta?.source)) {
    return;
  }
  const from = await settledState(view);
  if (!from || (consistent && from === view.state)) {
    return;
  }
  const to = view.state;
  const mover = moverOf(view.coordination);
  // A submission is checked against the mover's draft and its letter.
  const opinion = to === 'report-review' ? await opinionFacts(view.repo, view.request, mover) : undefined;
  const result = transition(
    { state: from, referringPhysicianId: referencedId(view.request.requester, 'Practitioner') },
    {
      to,
      actor: mover,
      now: view.now,
      facts: facts(view, {
        reason: view.coordination.statusReason?.text,
        ...(opinion?.reportAuthorId ? { reportAuthorId: opinion.reportAuthorId } : {}),
        ...(opinion?.letterProblems ? { letterProblems: opinion.letterProblems } : {}),
      }),
    },
  );
  if (result.ok && opinion?.report) {
    await openApproval(view, opinion.report, opinion.reportAuthorId);
  }
  if (result.ok) {
    // The coordinator's own statusReason (why they cancelled, failed or accepted) stays; ours goes.
    const theirs = view.coordination.statusReason?.coding?.some((coding) => coding.system === CASE_REASON_SYSTEM)
      ? undefined
      : view.coordination.statusReason;
    await recordState(view, to, theirs);
  } else {
    await recordState(view, from, {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'move-refused' }],
      text: `The move to "${to}" was refused: ${result.reason}`,
    });
    view.refusal = result.reason;
  }
}

/** A submission opens the case's approval Task for the coordinators, or opens it again after a return. */
async function openApproval(
  view: CaseView,
  report: WithId<DiagnosticReport>,
  authorId: string | undefined,
): Promise<void> {
  const task = approveTask({
    request: view.request,
    coordination: view.coordination,
    report,
    authorId,
    now: view.now,
    dueAt: dueDate(view.now, APPROVAL_BUSINESS_DAYS),
  });
  const existing = await findCaseResource<Task>(view.repo, 'Task', view.request.id, APPROVE_ROLE);
  const written = existing
    ? await view.repo.updateResource<Task>({ ...task, id: existing.id }, { ifMatch: existing.meta?.versionId })
    : await view.repo.createResource<Task>(task);
  // The rest of this step reads the children: it must see the approval as now open, not as returned.
  view.children = [...view.children.filter((child) => child.id !== written.id), written];
  view.changed = true;
}

/**
 * A coordinator returned the report (the approval Task `rejected`, with the reason in its
 * statusReason): back to the specialist, the reason on the coordination Task. A return without a
 * reason, or by anyone but the staff, moves nothing and says why.
 */
async function reviewReturned(view: CaseView): Promise<void> {
  const approval = approvalOf(view);
  if (!approval || approval.status !== 'rejected') {
    return;
  }
  const returner = moverOf(approval);
  const reason = approval.statusReason?.text?.trim();
  if (returner.role !== 'coordinator' || !reason) {
    await setReason(view, 'move-refused', {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'move-refused' }],
      text:
        returner.role !== 'coordinator'
          ? 'Only a coordinator returns a report to its specialist.'
          : 'Say why the report is returned (the approval Task’s statusReason); the specialist reads it.',
    });
    return;
  }
  const result = transition(
    { state: view.state, referringPhysicianId: undefined },
    { to: 'specialist-review', actor: returner, now: view.now, facts: facts(view) },
  );
  if (!result.ok) {
    view.refusal = result.reason;
    return;
  }
  await recordState(view, 'specialist-review', {
    coding: [{ system: CASE_REASON_SYSTEM, code: 'report-returned' }],
    text: `The report was returned to the specialist: ${reason}`,
  });
  // The reason on the specialist's own Task too, where they work from, kept round after round.
  const offer = currentOffer(view);
  if (offer) {
    await updateOffer(view, offer, (task) => ({
      ...task,
      note: [
        ...(task.note ?? []),
        { authorString: REVIEW_NOTE_AUTHOR, time: view.now.toISOString(), text: `The report was returned: ${reason}` },
      ],
    }));
  }
}

/**
 * A coordinator approved the report (the approval Task `completed`): the letter is rendered and filed
 * (opinion.ts approveOpinion), the coordination Task's output names the report and the letter's
 * DocumentReference, so that an EHR finds the opinion from the Task it follows, and the case is
 * released to the physician. The author cannot approve their own report, nor can anyone but staff.
 */
async function reviewApproved(view: CaseView): Promise<void> {
  const approval = approvalOf(view);
  if (!approval || approval.status !== 'completed') {
    return;
  }
  const reportId = referencedId(approval.focus, 'DiagnosticReport');
  const named = reportId ? await readOptional<DiagnosticReport>(view.repo, 'DiagnosticReport', reportId) : undefined;
  const approver = moverOf(approval);
  const authorId = named ? authorOf(named) : undefined;
  // What is approved is what is current now, checked again: the assigned specialist's draft of this
  // case with a complete letter (the approval Task's focus is writable, and drafts stay editable).
  const opinion = authorId ? await opinionFacts(view.repo, view.request, { role: 'specialist', id: authorId }) : {};
  const report = opinion.report?.id === named?.id && opinion.report?.id !== undefined ? opinion.report : undefined;
  const problems = report ? (opinion.letterProblems ?? ['The report names no letter.']) : [];
  if (!report || problems.length > 0 || authorId !== facts(view).assignedSpecialistId) {
    const reason = !report
      ? 'The approval Task names no draft report of this case.'
      : problems.length > 0
        ? `The letter is not complete: ${problems.join(' ')}`
        : 'The report is not the assigned specialist’s.';
    view.refusal = reason;
    await setReason(view, 'move-refused', {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'move-refused' }],
      text: `The approval was refused: ${reason}`,
    });
    return;
  }
  const result = transition(
    { state: view.state, referringPhysicianId: undefined },
    {
      to: 'report-released',
      actor: approver,
      now: view.now,
      facts: facts(view, authorId ? { reportAuthorId: authorId } : {}),
    },
  );
  if (!result.ok) {
    const reason = result.reason;
    view.refusal = reason;
    await setReason(view, 'move-refused', {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'move-refused' }],
      text: `The approval was refused: ${reason}`,
    });
    return;
  }
  const approved = await approveOpinion({
    repo: view.repo,
    request: view.request,
    coordination: view.coordination,
    report,
    approverId: actorOf(approval.meta?.source)?.id,
    serviceUrl: view.ctx.repository.baseUrl,
    now: view.now,
  });
  view.coordination = {
    ...view.coordination,
    output: [
      ...(view.coordination.output ?? []).filter(
        (output) => !output.type.coding?.some((coding) => coding.system === TASK_OUTPUT_SYSTEM),
      ),
      {
        type: { coding: [{ system: TASK_OUTPUT_SYSTEM, code: 'opinion-report' }] },
        valueReference: { reference: `DiagnosticReport/${approved.report.id}` },
      },
      {
        type: { coding: [{ system: TASK_OUTPUT_SYSTEM, code: 'opinion-letter' }] },
        valueReference: { reference: `DocumentReference/${approved.document.id}` },
      },
    ],
  };
  // The specialist's Task is done: its output is the report, and its reminders stop.
  const offer = currentOffer(view);
  if (offer && offer.status !== 'completed') {
    const { meta: offerMeta, ...rest } = offer;
    const done = await view.repo.updateResource<Task>(
      {
        ...rest,
        status: 'completed',
        output: [
          {
            type: { coding: [{ system: TASK_OUTPUT_SYSTEM, code: 'opinion-report' }] },
            valueReference: { reference: `DiagnosticReport/${approved.report.id}` },
          },
        ],
        lastModified: view.now.toISOString(),
      },
      { ifMatch: offerMeta?.versionId },
    );
    view.children = view.children.map((child) => (child.id === done.id ? done : child));
  }
  await recordState(view, 'report-released', undefined);
}

/**
 * The referring physician read the released report (recorded by the read itself, in report_read,
 * only for a physician who referred the case): the case is report-accessed, which releases the report
 * to the patient and e-mails them. A system client's retrieval records nothing.
 */
async function physicianRead(view: CaseView): Promise<void> {
  const read = await view.tx.query<{ reader: string }>('SELECT reader FROM report_read WHERE case_id = $1', [
    view.request.id,
  ]);
  const readerId = read.rows[0]?.reader.replace(/^Practitioner\//, '');
  if (!readerId) {
    return;
  }
  await move(
    view,
    transition(
      // The hub recorded the reader as a referring physician of this case (its membership record).
      { state: view.state, referringPhysicianId: readerId },
      {
        to: 'report-accessed',
        actor: { role: 'referring-physician', id: readerId },
        now: view.now,
        facts: facts(view),
      },
    ),
  );
}

/** The offer Task written with `edit`, kept current in the view (the rest of the step reads it). */
async function updateOffer(view: CaseView, offer: WithId<Task>, edit: (task: Task) => Task): Promise<void> {
  const { meta, ...rest } = offer;
  const written = await view.repo.updateResource<Task>(
    { ...edit(rest), lastModified: view.now.toISOString() },
    { ifMatch: meta?.versionId },
  );
  view.children = view.children.map((child) => (child.id === written.id ? written : child));
}

/**
 * The specialist asked the physician a question (a Communication, docs/case-workflow.md, "The
 * opinion"): the case waits in awaiting-information and the specialist's Task is on hold with the time
 * its clock stopped; the physician is e-mailed once per question (questionMail).
 */
async function askPhysician(view: CaseView): Promise<void> {
  const offer = currentOffer(view);
  const specialistId =
    offer && ACCEPTED_OFFER.includes(offer.status) ? referencedId(offer.owner, 'Practitioner') : undefined;
  if (!offer || !specialistId) {
    return;
  }
  const requests = await informationRequests(view.repo, view.request.id, view.coordination.id, specialistId);
  const question = requests.open[0];
  if (!question) {
    return;
  }
  const result = transition(
    { state: view.state, referringPhysicianId: undefined },
    { to: 'awaiting-information', actor: { role: 'specialist', id: specialistId }, now: view.now, facts: facts(view) },
  );
  if (!(await move(view, result))) {
    return;
  }
  await updateOffer(view, offer, (task) => ({
    ...task,
    status: 'on-hold',
    extension: [
      ...(task.extension ?? []).filter((extension) => extension.url !== PAUSED_AT_EXTENSION),
      { url: PAUSED_AT_EXTENSION, valueDateTime: view.now.toISOString() },
    ],
  }));
}

/**
 * Each question back reaches the physician by e-mail once (link only), whether it paused the case or
 * came while the case was already waiting: the dedupe key holds the question's id.
 */
async function questionMail(view: CaseView): Promise<void> {
  const offer = currentOffer(view);
  const specialistId = offer ? referencedId(offer.owner, 'Practitioner') : undefined;
  if (!specialistId) {
    return;
  }
  const requests = await informationRequests(view.repo, view.request.id, view.coordination.id, specialistId);
  if (requests.open.length === 0) {
    return;
  }
  const physician = await referringPhysician(view);
  for (const question of requests.open) {
    await notifyPerson(view.ctx, view.tx, {
      kind: 'information-requested',
      person: physician,
      serviceRequestId: view.request.id,
      dedupeKey: `information-requested:Communication/${question.id}:Practitioner/${physician?.id ?? ''}`,
    });
  }
}

/**
 * Every question has its answer: back to specialist review, the specialist's Task in progress again
 * and its due date moved by the business days the case waited (opinion.ts dueAfterPause), so the
 * reminders are scheduled again from it.
 */
async function physicianAnswered(view: CaseView): Promise<void> {
  const offer = currentOffer(view);
  const specialistId = offer ? referencedId(offer.owner, 'Practitioner') : undefined;
  if (!offer || !specialistId) {
    return;
  }
  const requests = await informationRequests(view.repo, view.request.id, view.coordination.id, specialistId);
  const answer = requests.answers[0];
  if (requests.open.length > 0 || !answer) {
    return;
  }
  const physicianId = referencedId(view.request.requester, 'Practitioner');
  // Whoever wrote the answer resumes the case as themselves (the state machine decides whether they
  // may); an EHR (a system client) answers for the physician it serves.
  const writer = moverOf(answer);
  const actor: Actor = writer.role === 'ehr' ? { role: 'ehr', id: physicianId ?? writer.id } : writer;
  const result = transition(
    { state: view.state, referringPhysicianId: physicianId },
    { to: 'specialist-review', actor, now: view.now, facts: facts(view) },
  );
  if (!(await move(view, result))) {
    return;
  }
  // When the pause began, by the hub's own record (a client could write the Task's extension).
  const pause = await settledRecord(view);
  const pausedAt =
    pause?.state === 'awaiting-information'
      ? pause.since.toISOString()
      : offer.extension?.find((extension) => extension.url === PAUSED_AT_EXTENSION)?.valueDateTime;
  const due = offer.restriction?.period?.end;
  await updateOffer(view, offer, (task) => ({
    ...task,
    status: 'in-progress',
    extension: (task.extension ?? []).filter((extension) => extension.url !== PAUSED_AT_EXTENSION),
    ...(due && pausedAt
      ? {
          restriction: {
            ...task.restriction,
            period: {
              ...task.restriction?.period,
              end: dueAfterPause(new Date(due), new Date(pausedAt), view.now).toISOString(),
            },
          },
        }
      : {}),
  }));
}

/**
 * Clarification questions about the released report reach its specialist, and their answers the
 * physician: one e-mail each (link only), free of charge (no ChargeItem); the Communications stay
 * with the case.
 */
async function clarificationMail(view: CaseView): Promise<void> {
  const reportId = outputOf(view, 'opinion-report', 'DiagnosticReport');
  const report = reportId ? await readOptional<DiagnosticReport>(view.repo, 'DiagnosticReport', reportId) : undefined;
  if (!report) {
    return;
  }
  const authorId = authorOf(report);
  const exchange = await clarifications(view.repo, view.request.id, report.id, authorId);
  if (exchange.questions.length === 0) {
    return;
  }
  const specialist = authorId ? await readOptional<Practitioner>(view.repo, 'Practitioner', authorId) : undefined;
  for (const question of exchange.questions) {
    await notifyPerson(view.ctx, view.tx, {
      kind: 'clarification-requested',
      person: specialist,
      serviceRequestId: view.request.id,
      dedupeKey: `clarification:Communication/${question.id}:Practitioner/${authorId ?? ''}`,
    });
  }
  const physicianId = referencedId(view.request.requester, 'Practitioner');
  const physician = physicianId ? await readOptional<Practitioner>(view.repo, 'Practitioner', physicianId) : undefined;
  for (const answer of exchange.answers) {
    await notifyPerson(view.ctx, view.tx, {
      kind: 'clarification-answered',
      person: physician,
      serviceRequestId: view.request.id,
      dedupeKey: `clarification:Communication/${answer.id}:Practitioner/${physicianId ?? ''}`,
    });
  }
}

/** The id of what the coordination Task's output lists as `code` (the released report, its letter's document). */
function outputOf(view: CaseView, code: 'opinion-report' | 'opinion-letter', type: string): string | undefined {
  return (view.coordination.output ?? [])
    .filter((output) =>
      output.type.coding?.some((coding) => coding.system === TASK_OUTPUT_SYSTEM && coding.code === code),
    )
    .map((output) => referencedId(output.valueReference, type))
    .find((id) => id !== undefined);
}

const AMENDMENT_REFUSED: CodeableConcept['coding'] = [{ system: CASE_REASON_SYSTEM, code: 'move-refused' }];

/** A refusal about an amendment, on the coordination Task (nothing else moves). */
async function refuseAmendment(view: CaseView, what: string, reason: string): Promise<void> {
  view.refusal = reason;
  await setReason(view, 'move-refused', { coding: AMENDMENT_REFUSED, text: `${what} was refused: ${reason}` });
}

/** The approval Task written by the hub, kept current in the view. */
async function writeApproval(view: CaseView, approval: WithId<Task>, task: Task): Promise<void> {
  const written = await view.repo.updateResource<Task>(
    { ...task, id: approval.id },
    { ifMatch: approval.meta?.versionId },
  );
  view.children = view.children.map((child) => (child.id === written.id ? written : child));
  view.changed = true;
}

/**
 * Amendments after release (docs/case-workflow.md, "Amendments"). The report's author drafts a
 * Composition that replaces (a correction) or appends to (an addendum) the released letter and
 * submits it by setting the case's approval Task to `requested` with the draft as its focus; the
 * hub checks the submission and opens the Task for the coordinators (or says why not). A coordinator
 * who did not write the amendment completes the Task (approved: amendApproved) or rejects it with a
 * reason (returned to the specialist). The case's state does not change: a released report stays
 * released while it is amended.
 */
async function amendments(view: CaseView): Promise<void> {
  const approval = approvalOf(view);
  const compositionId = approval ? referencedId(approval.focus, 'Composition') : undefined;
  if (!approval || !compositionId) {
    return;
  }
  const writer = actorOf(approval.meta?.source);
  // The hub's own version: the amendment is open for review.
  if (approval.status === 'requested' && !writer) {
    return;
  }
  if (!['requested', 'completed', 'rejected'].includes(approval.status)) {
    return;
  }
  const reportId = outputOf(view, 'opinion-report', 'DiagnosticReport');
  const report = reportId ? await readOptional<DiagnosticReport>(view.repo, 'DiagnosticReport', reportId) : undefined;
  if (!report) {
    return;
  }
  if ((DRAFT_STATUSES.DiagnosticReport ?? []).includes(report.status)) {
    await refuseAmendment(view, 'The amendment', `DiagnosticReport/${report.id} is not released (it is a draft).`);
    return;
  }
  const cases = await view.tx.query<{ case_id: string }>(
    "SELECT DISTINCT case_id FROM case_resource WHERE resource_type = 'Composition' AND resource_id = $1",
    [compositionId],
  );
  const amendment = await amendmentFacts({
    repo: view.repo,
    request: view.request,
    report,
    compositionId,
    casesOfAmendment: cases.rows.map((row) => row.case_id),
  });
  const stillDraft = amendment.amendment?.status === 'preliminary';
  const mover = moverOf(approval);
  if (approval.status === 'requested') {
    const mayRequest = mover.role === 'coordinator' || (mover.role === 'specialist' && mover.id === authorOf(report));
    const problems = mayRequest
      ? amendment.problems
      : ['Only the specialist who wrote the released report (or a coordinator) submits an amendment of it.'];
    const { amendment: draft, kind } = amendment;
    if (problems.length > 0 || !draft || !kind) {
      await refuseAmendment(view, 'The amendment', problems.join(' '));
      return;
    }
    await writeApproval(
      view,
      approval,
      amendmentApprovalTask({
        approval,
        amendment: draft,
        kind,
        authorId: amendment.authorId,
        now: view.now,
        dueAt: dueDate(view.now, APPROVAL_BUSINESS_DAYS),
      }),
    );
    await setReason(view, 'move-refused', undefined);
    await setReason(view, 'report-returned', undefined);
    return;
  }
  // Approved or returned already (the amendment is final now), or never a draft: nothing to do.
  if (!stillDraft) {
    return;
  }
  if (approval.status === 'rejected') {
    const reason = approval.statusReason?.text?.trim();
    if (mover.role !== 'coordinator' || !reason) {
      await refuseAmendment(
        view,
        'The return of the amendment',
        mover.role !== 'coordinator'
          ? 'Only a coordinator returns an amendment to its specialist.'
          : 'Say why the amendment is returned (the approval Task’s statusReason); the specialist reads it.',
      );
      return;
    }
    await setReason(view, 'move-refused', undefined);
    await setReason(view, 'report-returned', {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'report-returned' }],
      text: `The amendment was returned to the specialist: ${reason}`,
    });
    return;
  }
  await amendApproved(view, approval, report, amendment);
}

/** Whoever the hub recorded as writing any version of a Composition (its draft's writers). */
async function writersOf(view: CaseView, compositionId: string): Promise<Set<string>> {
  const found = await view.tx.query<{ source: string | null }>(
    `SELECT DISTINCT content::jsonb #>> '{meta,source}' AS source FROM resource_version
     WHERE resource_type = 'Composition' AND id = $1 AND content IS NOT NULL`,
    [compositionId],
  );
  return new Set(found.rows.flatMap((row) => actorOf(row.source ?? undefined)?.id ?? []));
}

/**
 * A coordinator completed the approval of an amendment: checked again (what is current now), by
 * someone who wrote no version of it, then applied in this transaction (opinion.ts amendOpinion); the
 * coordination Task's output names the new DocumentReference, and the physician is e-mailed, and the
 * patient too once the report is theirs to read (report-accessed).
 */
async function amendApproved(
  view: CaseView,
  approval: WithId<Task>,
  report: WithId<DiagnosticReport>,
  facts: AmendmentFacts,
): Promise<void> {
  const approver = moverOf(approval);
  const { amendment, kind, letter } = facts;
  const wroteIt =
    approver.id === facts.authorId || (amendment ? (await writersOf(view, amendment.id)).has(approver.id) : false);
  const reason = wroteIt
    ? 'The amendment’s author cannot approve it; another coordinator must.'
    : approver.role !== 'coordinator'
      ? 'Only a coordinator approves an amendment.'
      : facts.problems.join(' ');
  if (reason || !amendment || !kind || !letter) {
    await refuseAmendment(view, 'The approval of the amendment', reason || 'The amendment cannot be read.');
    return;
  }
  const amended = await amendOpinion({
    repo: view.repo,
    request: view.request,
    coordination: view.coordination,
    report,
    letter,
    amendment,
    kind,
    previousDocumentId: outputOf(view, 'opinion-letter', 'DocumentReference'),
    approverId: actorOf(approval.meta?.source)?.id,
    serviceUrl: view.ctx.repository.baseUrl,
    now: view.now,
  });
  const { meta, statusReason, ...rest } = view.coordination;
  const ours = statusReason?.coding?.some((coding) => coding.system === CASE_REASON_SYSTEM);
  view.coordination = await view.repo.updateResource<Task>(
    {
      ...rest,
      ...(statusReason && !ours ? { statusReason } : {}),
      output: [
        ...(rest.output ?? []).filter(
          (output) =>
            !output.type.coding?.some(
              (coding) => coding.system === TASK_OUTPUT_SYSTEM && coding.code === 'opinion-letter',
            ),
        ),
        {
          type: { coding: [{ system: TASK_OUTPUT_SYSTEM, code: 'opinion-letter' }] },
          valueReference: { reference: `DocumentReference/${amended.document.id}` },
        },
      ],
      lastModified: view.now.toISOString(),
    },
    { ifMatch: meta?.versionId },
  );
  view.changed = true;
  // Once per amendment and recipient: a job run again sends nothing, a second amendment mails again.
  const physician = await referringPhysician(view);
  await notifyPerson(view.ctx, view.tx, {
    kind: 'report-amended',
    person: physician,
    serviceRequestId: view.request.id,
    dedupeKey: `report-amended:Composition/${amendment.id}:Practitioner/${physician?.id ?? ''}`,
  });
  // The patient reads the report only after the physician has (report-accessed): told then, not before.
  if (view.state === 'report-accessed') {
    const patientId = referencedId(view.coordination.for, 'Patient') ?? referencedId(view.request.subject, 'Patient');
    const patient = patientId ? await readOptional<Patient>(view.repo, 'Patient', patientId) : undefined;
    await notifyPerson(view.ctx, view.tx, {
      kind: 'report-updated',
      person: patient,
      serviceRequestId: view.request.id,
      dedupeKey: `report-amended:Composition/${amendment.id}:Patient/${patient?.id ?? ''}`,
    });
  }
}

/** The referring physician's Practitioner: the requester, or the Practitioner of a requesting PractitionerRole. */
async function referringPhysician(view: CaseView): Promise<WithId<Practitioner> | undefined> {
  const roleId = referencedId(view.request.requester, 'PractitionerRole');
  const role = roleId ? await readOptional<PractitionerRole>(view.repo, 'PractitionerRole', roleId) : undefined;
  const practitionerId =
    referencedId(view.request.requester, 'Practitioner') ?? referencedId(role?.practitioner, 'Practitioner');
  return practitionerId ? readOptional<Practitioner>(view.repo, 'Practitioner', practitionerId) : undefined;
}

/**
 * An amendment is for a released report: before release, a person who points the approval Task at a
 * Composition is told to edit the draft instead (the Task moves nothing).
 */
async function amendmentBeforeRelease(view: CaseView): Promise<void> {
  const approval = approvalOf(view);
  if (!approval || !referencedId(approval.focus, 'Composition') || !actorOf(approval.meta?.source)) {
    return;
  }
  await refuseAmendment(
    view,
    'The amendment',
    `The case’s report is not released yet (the case is "${view.state}"); until it is, the specialist edits the draft.`,
  );
}

async function leaveAwaitingMaterials(view: CaseView): Promise<void> {
  if (!materialsComplete(view)) {
    return;
  }
  const planned = plannedPreReviews(view);
  const system = { role: 'system' as const, id: 'case-progression' };
  if (planned.length === 0) {
    await move(
      view,
      transition(
        { state: view.state, referringPhysicianId: undefined },
        { to: 'matching', actor: system, now: view.now, facts: facts(view) },
      ),
    );
    return;
  }
  const preReviews: PreReview[] = planned.map(({ kind }) => ({ kind, done: false }));
  const result = transition(
    { state: view.state, referringPhysicianId: undefined },
    { to: 'pre-review', actor: system, now: view.now, facts: facts(view, { preReviews }) },
  );
  if (!(await move(view, result))) {
    return;
  }
  for (const { kind, materials } of planned) {
    await createChild(view, PRE_REVIEW_CODE[kind], preReviewTask(view, kind, materials));
  }
}

async function finishPreReview(view: CaseView): Promise<void> {
  const pending = preReviewFacts(view).filter((review) => !review.done);
  if (pending.length > 0) {
    return;
  }
  await move(
    view,
    transition(
      { state: view.state, referringPhysicianId: undefined },
      { to: 'matching', actor: { role: 'system', id: 'case-progression' }, now: view.now, facts: facts(view) },
    ),
  );
}

/** The assigned specialist declined or withdrew after accepting: back to matching for the next one. */
async function specialistWithdrew(view: CaseView): Promise<void> {
  const latest = offers(view).at(-1);
  if (!latest || !WITHDRAWN_OFFER.includes(latest.status)) {
    return;
  }
  const specialistId = referencedId(latest.owner, 'Practitioner') ?? '';
  await move(
    view,
    transition(
      { state: view.state, referringPhysicianId: undefined },
      {
        to: 'matching',
        actor: { role: 'specialist', id: specialistId },
        now: view.now,
        facts: facts(view, { assignedSpecialistId: specialistId }),
      },
    ),
  );
}

async function caseMaterials(view: CaseView): Promise<CaseMaterials> {
  const studies = await Promise.all(
    arrivedIds(view, 'ImagingStudy').map((id) => readOptional<ImagingStudy>(view.repo, 'ImagingStudy', id)),
  );
  const specimens = await Promise.all(
    arrivedIds(view, 'Specimen').map((id) => readOptional<Specimen>(view.repo, 'Specimen', id)),
  );
  const conceptText = (concept: CodeableConcept | undefined) =>
    concept?.text ?? concept?.coding?.[0]?.display ?? concept?.coding?.[0]?.code;
  const codingText = (coding: { display?: string; code?: string } | undefined) => coding?.display ?? coding?.code;
  return {
    imaging: studies.flatMap((study) =>
      study
        ? [
            {
              modality: study.modality?.[0]?.code ?? study.series?.[0]?.modality?.code ?? '',
              bodySite: codingText(study.series?.find((series) => series.bodySite)?.bodySite),
            },
          ]
        : [],
    ),
    pathology: specimens.flatMap((specimen) =>
      specimen ? [{ bodySite: conceptText(specimen.collection?.bodySite) }] : [],
    ),
  };
}

/** The roster and the case's ranking as matching sees them now, and when the opinion is due. */
async function ranking(view: CaseView) {
  const dueAt = dueDate(materialsCompletedAt(view));
  const roster = await loadRoster(view.repo, view.now);
  const questions = questionTexts(await requestQuestionnaires(view.repo, view.request));
  const result = matchSpecialists(
    {
      questions,
      materials: await caseMaterials(view),
      requestedSpecialistId: await requestedSpecialistId(view.repo, view.request),
      now: view.now,
      reviewDueBy: dueAt,
    },
    roster.profiles,
  );
  return { roster, result, dueAt };
}

/**
 * A coordinator's reassignment of the specialist (reassignment.ts): applied, the case back in matching
 * until the new specialist accepts, or undone with the reason.
 */
async function reassign(view: CaseView): Promise<void> {
  const outcome = await settleReassignment({
    repo: view.repo,
    now: view.now,
    request: view.request,
    coordination: view.coordination,
    state: view.state,
    offers: offers(view),
    rank: () => ranking(view),
  });
  if (outcome.kind === 'none') {
    return;
  }
  const written = new Map(outcome.written.map((task) => [task.id, task]));
  view.children = [
    ...view.children.map((child) => written.get(child.id) ?? child),
    ...outcome.written.filter((task) => !view.children.some((child) => child.id === task.id)),
  ];
  view.changed = true;
  if (outcome.kind === 'refused') {
    view.refusal = outcome.reason;
    await setReason(view, 'move-refused', {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'move-refused' }],
      text: outcome.reason,
    });
    return;
  }
  if (view.coordination.statusReason?.text?.startsWith('The reassignment')) {
    await setReason(view, 'move-refused', undefined);
  }
  await setReason(view, 'no-specialist', undefined);
  if (view.state === 'specialist-review') {
    await move(
      view,
      transition(
        { state: view.state, referringPhysicianId: undefined },
        {
          to: 'matching',
          actor: { role: 'coordinator', id: outcome.coordinatorId },
          now: view.now,
          facts: facts(view, { assignedSpecialistId: outcome.fromId }),
        },
      ),
    );
  }
}

/** Matching: offer the case to the best candidate not yet asked, or take the accepted offer. */
async function match(view: CaseView): Promise<void> {
  const offer = currentOffer(view);
  if (offer && ACCEPTED_OFFER.includes(offer.status)) {
    const specialistId = referencedId(offer.owner, 'Practitioner') ?? '';
    await move(
      view,
      transition(
        { state: view.state, referringPhysicianId: undefined },
        { to: 'specialist-review', actor: { role: 'specialist', id: specialistId }, now: view.now, facts: facts(view) },
      ),
    );
    return;
  }
  if (offer) {
    return;
  } // Offered, not answered yet.
  const asked = offers(view)
    .map((task) => referencedId(task.owner, 'Practitioner'))
    .filter((id): id is string => id !== undefined);
  const { roster, result, dueAt } = await ranking(view);
  view.specialtiesSought = result.specialtiesSought;
  // Nor again to a specialist a coordinator took the case from.
  const next = nextCandidate(result.ranking, offeredIds(offers(view), view.request.id));
  if (!next) {
    const why = [...result.excluded, ...roster.unreadable].map(
      (member) => `${member.name}: ${member.reasons.join('; ')}`,
    );
    // The case's members read the reason; who was excluded and why is the coordinators' (Provenance).
    const text = `No eligible specialist is left to offer the case to${asked.length > 0 ? ` (${asked.length} declined)` : ''}; a coordinator must find one.`;
    const written = await setReason(view, 'no-specialist', {
      coding: [{ system: CASE_REASON_SYSTEM, code: 'no-specialist' }],
      text,
    });
    if (written && why.length > 0) {
      await view.repo.createResource(
        rankingProvenance(
          `Task/${view.coordination.id}`,
          `${text}\nNot eligible or not available: ${why.join(' | ')}.`,
          view.now,
        ),
      );
    }
    return;
  }
  await setReason(view, 'no-specialist', undefined);
  const reports = preReviewTasks(view).flatMap(({ task }) => reportsOf(task));
  const task = specialistTask({
    serviceRequest: view.request,
    coordination: view.coordination,
    specialistId: next.specialistId,
    dueAt,
    note: offerNote(result, next),
    reports,
    now: view.now,
  });
  const offered = await createChild(view, specialistTaskRole(next.specialistId), task);
  if (offered) {
    await view.repo.createResource(
      rankingProvenance(`Task/${offered.id}`, rankingExplanation(result, next, asked, roster.unreadable), view.now),
    );
  }
}

// ---- the job step ----------------------------------------------------------------------------------

/** Moves one case as far as its resources allow, in one transaction under the case lock. */
export async function advanceCase(
  ctx: WorkflowContext,
  data: { serviceRequestId: string },
): Promise<ProgressionResult> {
  const { serviceRequestId } = data;
  return ctx.repository.db.transaction(async (tx) => {
    await lockCase(tx, serviceRequestId);
    const repo = new HubRepository(ctx.repository, tx);
    const request = await readOptional<ServiceRequest>(repo, 'ServiceRequest', serviceRequestId);
    const coordination =
      request && (await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination));
    const state = coordination && caseStateOf(coordination);
    if (!request || !coordination || !state) {
      return { outcome: 'no-case' };
    }
    // A released case still waits for its physician's reading and may have clarifications; any other
    // closed case is done.
    if (request.status !== 'active' && state !== 'report-released' && state !== 'report-accessed') {
      return { outcome: 'not-active', state };
    }
    const now = ctx.now();
    const patientId = referencedId(coordination.for, 'Patient') ?? referencedId(request.subject, 'Patient');
    const patient = patientId ? await readOptional<Patient>(repo, 'Patient', patientId) : undefined;
    const children = await repo.searchResources<Task>(
      parseSearchRequest<Task>(`Task?part-of=Task/${coordination.id}&_count=1000`),
    );
    const view: CaseView = {
      ctx,
      tx,
      repo,
      now,
      request,
      coordination,
      state,
      eligibility: eligibilityOf(ctx, patient, now),
      expectTasks: [...(await expectMaterialTasks(repo, serviceRequestId)).values()],
      children,
      changed: false,
    };

    await applyPersonsMove(view);
    await reassign(view);
    if (view.state === 'awaiting-materials') {
      await leaveAwaitingMaterials(view);
    }
    if (view.state === 'pre-review') {
      await finishPreReview(view);
    }
    if (view.state === 'report-review') {
      await reviewReturned(view);
    }
    if (view.state === 'report-review') {
      await reviewApproved(view);
    }
    if (view.state === 'report-released') {
      await physicianRead(view);
    }
    const released = view.state === 'report-released' || view.state === 'report-accessed';
    if (released) {
      await amendments(view);
      await clarificationMail(view);
    } else {
      await amendmentBeforeRelease(view);
    }
    if (view.state === 'specialist-review') {
      await specialistWithdrew(view);
    }
    if (view.state === 'specialist-review') {
      await askPhysician(view);
    }
    if (view.state === 'awaiting-information') {
      await questionMail(view);
      await physicianAnswered(view);
    }
    if (view.state === 'matching') {
      await match(view);
    }

    const open = currentOffer(view);
    const openOffer =
      open && OPEN_TASK_STATUSES.includes(open.status) && open.restriction?.period?.end
        ? { taskId: open.id, dueAt: open.restriction.period.end }
        : undefined;
    ctx.logger?.info(
      { serviceRequestId, state: view.state, changed: view.changed, refusal: view.refusal ? 'refused' : undefined },
      'case progression',
    );
    // The first run after intake records the state the hub settled, so that every later move someone
    // writes is checked against the hub's record rather than the Task's history.
    await tx.query(
      'INSERT INTO case_state (case_id, state, since) VALUES ($1, $2, $3) ON CONFLICT (case_id) DO NOTHING',
      [serviceRequestId, view.state, now.toISOString()],
    );
    const approval = approvalOf(view);
    // Open for the coordinators: a submitted report, or an amendment of a released one the hub accepted.
    const reviewing =
      view.state === 'report-review' ||
      ((view.state === 'report-released' || view.state === 'report-accessed') &&
        referencedId(approval?.focus, 'Composition') !== undefined &&
        !actorOf(approval?.meta?.source));
    const openApproval =
      reviewing && approval?.status === 'requested' && approval.restriction?.period?.end
        ? { taskId: approval.id, dueAt: approval.restriction.period.end }
        : undefined;
    // The worklist's clock and specialties, on the coordination Task; bookkeeping, not an advance.
    const clocked = withCaseClock(
      view.coordination,
      { due: caseDeadline(view.state, openOffer, openApproval), specialties: view.specialtiesSought },
      now,
    );
    if (clocked) {
      view.coordination = await repo.updateResource<Task>(clocked, { ifMatch: view.coordination.meta?.versionId });
    }
    return {
      outcome: view.changed ? 'advanced' : 'unchanged',
      state: view.state,
      ...(openOffer ? { openOffer } : {}),
      ...(openApproval ? { openApproval } : {}),
      ...(view.refusal ? { refusal: view.refusal } : {}),
    };
  });
}

/** The ServiceRequest a Task of a case is based on. */
export function caseOfTask(task: Task): string | undefined {
  return (task.basedOn ?? [])
    .map((reference) => referencedId(reference, 'ServiceRequest'))
    .find((id) => id !== undefined);
}
