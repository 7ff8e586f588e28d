/**
 * The case state machine of shared/fhir-model.md ("Case states"): which actor may move a case where, what must
 * be true first, and what the coordination Task and the ServiceRequest then say. FHIR servers do not
 * enforce workflow; the hub does, here.
 */
import type { DiagnosticReport, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { AllowedReviews, EligibilityOutcome } from './jurisdictions.ts';

export const CASE_STATES = [
  'intake',
  'submitted',
  'awaiting-materials',
  'pre-review',
  'matching',
  'specialist-review',
  'awaiting-information',
  'report-review',
  'report-released',
  'report-accessed',
  'declined',
  'cancelled',
  'failed',
] as const;
export type CaseState = (typeof CASE_STATES)[number];

export interface StateResources {
  readonly taskStatus: Task['status'];
  readonly serviceRequestStatus: ServiceRequest['status'];
  /** The consultation letter's DiagnosticReport.status, once there is one. */
  readonly reportStatus: DiagnosticReport['status'] | undefined;
}

const IN_PROGRESS = { taskStatus: 'in-progress', serviceRequestStatus: 'active' } as const;

/** shared/fhir-model.md, the table of case states. In awaiting-information the specialist's child Task is on-hold. */
export const STATE_RESOURCES: Readonly<Record<CaseState, StateResources>> = {
  intake: { taskStatus: 'draft', serviceRequestStatus: 'draft', reportStatus: undefined },
  submitted: { taskStatus: 'requested', serviceRequestStatus: 'active', reportStatus: undefined },
  'awaiting-materials': { taskStatus: 'accepted', serviceRequestStatus: 'active', reportStatus: undefined },
  'pre-review': { ...IN_PROGRESS, reportStatus: undefined },
  matching: { ...IN_PROGRESS, reportStatus: undefined },
  'specialist-review': { ...IN_PROGRESS, reportStatus: 'preliminary' },
  'awaiting-information': { ...IN_PROGRESS, reportStatus: 'preliminary' },
  'report-review': { ...IN_PROGRESS, reportStatus: 'preliminary' },
  'report-released': { taskStatus: 'completed', serviceRequestStatus: 'completed', reportStatus: 'final' },
  'report-accessed': { taskStatus: 'completed', serviceRequestStatus: 'completed', reportStatus: 'final' },
  declined: { taskStatus: 'rejected', serviceRequestStatus: 'revoked', reportStatus: undefined },
  cancelled: { taskStatus: 'cancelled', serviceRequestStatus: 'revoked', reportStatus: undefined },
  failed: { taskStatus: 'failed', serviceRequestStatus: 'revoked', reportStatus: undefined },
};

export const ACTOR_ROLES = [
  'referring-physician',
  'ehr',
  'coordinator',
  'radiologist',
  'pathologist',
  'specialist',
  'system',
  'patient',
] as const;
export type ActorRole = (typeof ACTOR_ROLES)[number];

/**
 * Who asks. `id` is the Practitioner id for people; for `ehr` the Practitioner the system client acts
 * for (resolved by the auth layer); for `system` the job's name.
 */
export interface Actor {
  readonly role: ActorRole;
  readonly id: string;
}

/** The coordination Task as stored. */
export interface CaseSnapshot {
  readonly state: CaseState;
  readonly referringPhysicianId: string | undefined;
}

export interface PreReview {
  readonly kind: 'radiology' | 'pathology';
  readonly reviewerId?: string;
  readonly done: boolean;
}

/** What the caller read from the case's resources; a guard refuses when a fact it needs is missing. */
export interface CaseFacts {
  readonly questionCount?: number;
  readonly eligibility?: { readonly outcome: EligibilityOutcome; readonly allowedReviews: AllowedReviews };
  /** Every expected material has arrived or been waived by a coordinator. */
  readonly materialsComplete?: boolean;
  /** The pre-reviews the materials call for (empty when there is nothing to pre-review). */
  readonly preReviews?: readonly PreReview[];
  readonly assignedSpecialistId?: string;
  /** Author of the draft consultation report: the specialist who wrote it (Practitioner id). */
  readonly reportAuthorId?: string;
  /** What keeps the draft's letter from being submitted (opinion-letter.ts letterProblems); empty when complete. */
  readonly letterProblems?: readonly string[];
  /** Why, for the dashboard; required to fail a case. */
  readonly reason?: string;
}

export interface TransitionRequest {
  readonly to: CaseState;
  readonly actor: Actor;
  readonly now: Date;
  readonly facts?: CaseFacts;
}

export type TransitionResult =
  | ({
      readonly ok: true;
      readonly state: CaseState;
      /** False when the case already was in `to`: a repeated delivery, nothing to write. */
      readonly changed: boolean;
      readonly at: string;
      readonly message: string;
    } & StateResources)
  | { readonly ok: false; readonly reason: string };

const ROLE_NAMES: Record<ActorRole, string> = {
  'referring-physician': 'the referring physician',
  ehr: 'the referring EHR system',
  coordinator: 'a coordinator',
  radiologist: 'a radiologist',
  pathologist: 'a pathologist',
  specialist: 'the specialist',
  system: 'a system job',
  patient: 'the patient',
};

interface GuardContext {
  readonly snapshot: CaseSnapshot;
  readonly actor: Actor;
  readonly facts: CaseFacts;
}
/** Undefined when the transition may go ahead, otherwise why not. */
type Guard = (context: GuardContext) => string | undefined;

interface TransitionRule {
  readonly from: CaseState;
  readonly to: CaseState;
  readonly actors: readonly ActorRole[];
  readonly guards: readonly Guard[];
  /** Replaces the generic refusal when a role outside `actors` asks. */
  readonly refusedRoleReason?: string;
}

// --- Guards --------------------------------------------------------------------------------------------

const ownCase: Guard = ({ snapshot, actor }) => {
  if (actor.role !== 'referring-physician' && actor.role !== 'ehr') {
    return undefined;
  }
  return actor.id === snapshot.referringPhysicianId
    ? undefined
    : 'Only the case’s own referring physician (or their EHR) can do this; the request comes from another physician.';
};

const hasReferringPhysician: Guard = ({ snapshot }) =>
  snapshot.referringPhysicianId
    ? undefined
    : 'The case has no registered referring physician; the service is physician-to-physician, so one must take part first.';

const hasQuestions: Guard = ({ facts }) =>
  (facts.questionCount ?? 0) > 0
    ? undefined
    : 'The request has no questions; at least one is needed to choose the right specialist.';

const eligible: Guard = ({ facts }) => {
  if (!facts.eligibility) {
    return 'The patient’s eligibility (jurisdiction rules) has not been checked yet.';
  }
  return facts.eligibility.outcome === 'ineligible'
    ? 'The jurisdiction rules do not allow the service for this patient’s residence; decline the case instead.'
    : undefined;
};

const ineligible: Guard = ({ facts }) => {
  if (!facts.eligibility) {
    return 'The patient’s eligibility (jurisdiction rules) has not been checked yet.';
  }
  return facts.eligibility.outcome === 'ineligible'
    ? undefined
    : 'The patient’s residence allows the service; a case is declined only when the jurisdiction rules do not allow it.';
};

const materialsComplete: Guard = ({ facts }) =>
  facts.materialsComplete
    ? undefined
    : 'Not all expected materials have arrived; wait for them, or waive the missing ones, before going on.';

const preReviewsKnown = (facts: CaseFacts): facts is CaseFacts & { preReviews: readonly PreReview[] } =>
  facts.preReviews !== undefined;

const somePreReviewPlanned: Guard = ({ facts }) => {
  if (!preReviewsKnown(facts)) {
    return 'The case’s pre-reviews are not known.';
  }
  return facts.preReviews.length > 0
    ? undefined
    : 'The case has no imaging or pathology to pre-review; move it to matching instead.';
};

// Checked on every step forward, not only into pre-review: a pre-review may be added to a case already in it.
const preReviewsAllowedByJurisdiction: Guard = ({ facts }) => {
  if (!preReviewsKnown(facts)) {
    return 'The case’s pre-reviews are not known.';
  }
  if (facts.preReviews.length === 0) {
    return undefined;
  }
  if (!facts.eligibility) {
    return 'The patient’s eligibility (jurisdiction rules) has not been checked yet.';
  }
  const allowed = facts.eligibility.allowedReviews;
  const prohibited = facts.preReviews.find((review) => !allowed[review.kind]);
  return prohibited
    ? `The patient’s jurisdiction does not allow ${prohibited.kind} review; remove the ${prohibited.kind} pre-review ` +
        '(and tell the referring physician) before going on.'
    : undefined;
};

const reviewerAssigned: Guard = ({ actor, facts }) => {
  if (actor.role !== 'radiologist' && actor.role !== 'pathologist') {
    return undefined;
  }
  const kind = actor.role === 'radiologist' ? 'radiology' : 'pathology';
  const mine = facts.preReviews?.some((review) => review.kind === kind && review.reviewerId === actor.id);
  return mine ? undefined : `This ${actor.role} is not assigned to the case’s ${kind} pre-review.`;
};

const preReviewsDone =
  (what: string): Guard =>
  ({ facts }) => {
    if (!preReviewsKnown(facts)) {
      return 'The case’s pre-reviews are not known.';
    }
    const pending = facts.preReviews.filter((review) => !review.done).map((review) => `${review.kind} pre-review`);
    return pending.length === 0
      ? undefined
      : `${what}: the ${pending.join(' and the ')} ${pending.length > 1 ? 'are' : 'is'} not done.`;
  };

const specialistAssigned: Guard = ({ actor, facts }) => {
  if (!facts.assignedSpecialistId) {
    return 'No specialist is assigned to the case yet.';
  }
  if (actor.role !== 'specialist') {
    return undefined;
  }
  return actor.id === facts.assignedSpecialistId ? undefined : 'This specialist is not the one assigned to the case.';
};

const draftReportByActor: Guard = ({ actor, facts }) =>
  facts.reportAuthorId === actor.id
    ? undefined
    : 'There is no draft report by the assigned specialist to submit for review.';

const letterComplete: Guard = ({ facts }) => {
  if (facts.letterProblems === undefined) {
    return 'The draft report has no letter (a Composition, LOINC 11488-4) to submit.';
  }
  return facts.letterProblems.length === 0
    ? undefined
    : `The letter is not complete: ${facts.letterProblems.join(' ')}`;
};

const approverIsNotAuthor: Guard = ({ actor, facts }) => {
  if (!facts.reportAuthorId) {
    return 'The report’s author is not known, so its approval cannot be checked.';
  }
  return facts.reportAuthorId === actor.id
    ? 'The report’s author cannot approve it; another coordinator must.'
    : undefined;
};

const coordinatorSaysWhy: Guard = ({ actor, facts }) =>
  actor.role !== 'coordinator' || facts.reason?.trim()
    ? undefined
    : 'Say how the physician had the report (a phone call, a printed copy); the reason is kept on the case.';

const hasReason: Guard = ({ facts }) =>
  facts.reason?.trim() ? undefined : 'Say why the case failed; the reason is shown to coordinators.';

// --- The table -----------------------------------------------------------------------------------------

const PHYSICIAN = ['referring-physician', 'ehr'] as const;
const BEFORE_RELEASE = [
  'intake',
  'submitted',
  'awaiting-materials',
  'pre-review',
  'matching',
  'specialist-review',
  'awaiting-information',
  'report-review',
] as const;

const RULES: readonly TransitionRule[] = [
  { from: 'intake', to: 'submitted', actors: PHYSICIAN, guards: [hasReferringPhysician, ownCase, hasQuestions] },
  { from: 'submitted', to: 'awaiting-materials', actors: ['coordinator'], guards: [eligible] },
  { from: 'submitted', to: 'declined', actors: ['system', 'coordinator'], guards: [ineligible] },
  {
    from: 'awaiting-materials',
    to: 'pre-review',
    actors: ['coordinator', 'system', 'radiologist', 'pathologist'],
    guards: [materialsComplete, somePreReviewPlanned, preReviewsAllowedByJurisdiction, reviewerAssigned],
  },
  {
    from: 'awaiting-materials',
    to: 'matching',
    actors: ['system', 'coordinator'],
    guards: [materialsComplete, preReviewsAllowedByJurisdiction, preReviewsDone('The case cannot go to matching yet')],
  },
  // A reviewer found the materials wanting (an unreadable disc, a missing series).
  { from: 'pre-review', to: 'awaiting-materials', actors: ['coordinator'], guards: [] },
  {
    from: 'pre-review',
    to: 'matching',
    actors: ['system', 'coordinator'],
    guards: [preReviewsAllowedByJurisdiction, preReviewsDone('The case cannot go to matching yet')],
  },
  {
    from: 'matching',
    to: 'specialist-review',
    actors: ['specialist', 'coordinator'],
    guards: [
      preReviewsAllowedByJurisdiction,
      preReviewsDone('A specialist cannot be assigned yet'),
      specialistAssigned,
    ],
  },
  // The specialist declines or withdraws; the next candidate is offered the case.
  { from: 'specialist-review', to: 'matching', actors: ['specialist', 'coordinator'], guards: [specialistAssigned] },
  { from: 'specialist-review', to: 'awaiting-information', actors: ['specialist'], guards: [specialistAssigned] },
  {
    from: 'awaiting-information',
    to: 'specialist-review',
    actors: ['referring-physician', 'ehr', 'specialist', 'coordinator'],
    guards: [ownCase, specialistAssigned],
  },
  {
    from: 'specialist-review',
    to: 'report-review',
    actors: ['specialist'],
    guards: [specialistAssigned, draftReportByActor, letterComplete],
  },
  { from: 'report-review', to: 'specialist-review', actors: ['coordinator'], guards: [] },
  { from: 'report-review', to: 'report-released', actors: ['coordinator'], guards: [approverIsNotAuthor] },
  {
    from: 'report-released',
    to: 'report-accessed',
    actors: ['referring-physician', 'coordinator'],
    guards: [ownCase, coordinatorSaysWhy],
    refusedRoleReason:
      'Only the referring physician’s own reading of the report marks it accessed (or a coordinator recording, ' +
      'with a reason, that the physician had it another way); a system client’s retrieval or anyone else’s ' +
      'reading does not.',
  },
  // Withdrawal: the physician until the review work starts, a coordinator until the report is released.
  ...(['intake', 'submitted', 'awaiting-materials'] as const).map((from): TransitionRule => ({
    from,
    to: 'cancelled',
    actors: [...PHYSICIAN, 'coordinator'],
    guards: [ownCase],
  })),
  ...(['pre-review', 'matching', 'specialist-review', 'awaiting-information', 'report-review'] as const).map(
    (from): TransitionRule => ({ from, to: 'cancelled', actors: ['coordinator'], guards: [] }),
  ),
  ...BEFORE_RELEASE.map((from): TransitionRule => ({
    from,
    to: 'failed',
    actors: ['system', 'coordinator'],
    guards: [hasReason],
  })),
];

/** Every allowed (from, to) pair with the roles that may make it; for dashboards and documentation. */
export const TRANSITIONS: readonly {
  readonly from: CaseState;
  readonly to: CaseState;
  readonly actors: readonly ActorRole[];
}[] = RULES.map(({ from, to, actors }) => ({ from, to, actors }));

function listRoles(roles: readonly ActorRole[]): string {
  const names = roles.map((role) => ROLE_NAMES[role]);
  const last = names.pop();
  if (last === undefined) {
    return 'no one';
  }
  return names.length === 0 ? last : `${names.join(', ')} or ${last}`;
}

function succeed(state: CaseState, changed: boolean, now: Date, message: string): TransitionResult {
  return { ok: true, state, changed, at: now.toISOString(), message, ...STATE_RESOURCES[state] };
}

/** Moves a case to `to` if `actor` may and the guards hold; a move to the current state is a no-op. */
export function transition(snapshot: CaseSnapshot, request: TransitionRequest): TransitionResult {
  const { to, actor, now } = request;
  const from = snapshot.state;
  if (to === from) {
    // At-least-once delivery repeats a move already made; guards are not re-run (their facts may have
    // moved on since), but a role that could never have made it is still refused.
    const creators: readonly ActorRole[] = to === 'intake' ? PHYSICIAN : [];
    const roles = new Set([...creators, ...RULES.filter((rule) => rule.to === to).flatMap((rule) => rule.actors)]);
    if (!roles.has(actor.role)) {
      return {
        ok: false,
        reason: `The case is already "${to}", and ${ROLE_NAMES[actor.role]} cannot move a case there.`,
      };
    }
    return succeed(to, false, now, `The case is already "${to}"; nothing changed.`);
  }

  const rule = RULES.find((candidate) => candidate.from === from && candidate.to === to);
  if (!rule) {
    const next = RULES.filter((candidate) => candidate.from === from).map((candidate) => candidate.to);
    return {
      ok: false,
      reason:
        next.length === 0
          ? `The case is in its final state ("${from}"); it cannot change any more.`
          : `A case cannot go from "${from}" to "${to}". From "${from}" it can go to: ${next.join(', ')}.`,
    };
  }
  if (!rule.actors.includes(actor.role)) {
    return {
      ok: false,
      reason:
        rule.refusedRoleReason ??
        `${ROLE_NAMES[actor.role]} cannot move a case from "${from}" to "${to}"; that is done by ${listRoles(rule.actors)}.`.replace(
          /^./,
          (first) => first.toUpperCase(),
        ),
    };
  }
  const context = { snapshot, actor, facts: request.facts ?? {} };
  for (const guard of rule.guards) {
    const refusal = guard(context);
    if (refusal) {
      return { ok: false, reason: refusal };
    }
  }
  return succeed(to, true, now, `The case moved from "${from}" to "${to}".`);
}
