/**
 * The intake job (docs/case-workflow.md): a ServiceRequest became active, or changed while its
 * case is still `submitted`. In one transaction, under the case's lock: eligibility of the patient's
 * residence (ineligible: the case is declined and the request revoked), the quote as ChargeItems,
 * the coordination Task and one expect-material Task per planned kind; at submission, the materials
 * that arrived before it (materials.ts takeUpEarlyMaterials). A follow-up question (a request
 * `basedOn` an earlier case's) is a case of its own, part of the first, quoted with the follow-up
 * fee. Every write is a conditional one on the case identifiers and an unchanged resource is not
 * rewritten, so a second run changes nothing, and a crash leaves all of a run or none of it.
 */
import { OperationOutcomeError, getStatus } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type { Patient, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import { transition } from '../cases/case-state.ts';
import type { CaseState } from '../cases/case-state.ts';
import { selectSchedule } from '../cases/fees.ts';
import { checkEligibility } from '../cases/jurisdictions.ts';
import { REFERENCE_NUMBER_SYSTEM } from '../cases/reference-number.ts';
import { policyInForce, residenceOf } from '../fhir/operations/eligibility.ts';
import { HubRepository } from '../fhir/repository.ts';
import {
  CASE_ROLES,
  findCaseResource,
  caseStateOf,
  lockCase,
  putCaseResource,
  referencedId,
} from './case-resources.ts';
import { notifyCaseState } from './case-notifications.ts';
import type { WorkflowContext } from './context.ts';
import {
  REQUEST_STATUS_REASON_EXTENSION,
  coordinationTask,
  eligibilityExtension,
  eligibilityReason,
} from './coordination.ts';
import { expectMaterialTasks, syncExpectMaterialTasks } from './expect-material.ts';
import { caseQuoteRecomputer, takeUpEarlyMaterials } from './materials.ts';
import {
  caseQuoteInputs,
  computeQuote,
  followUpOf,
  questionCountOf,
  requestQuestionnaires,
  writeChargeItems,
} from './quote.ts';

export type IntakeOutcome =
  | { outcome: 'not-found' }
  | { outcome: 'not-active'; status: ServiceRequest['status'] }
  /** The case moved on (accepted, declined, …): intake has nothing more to do. */
  | { outcome: 'past-submission'; state: CaseState | 'unknown' }
  /** The request cannot be submitted yet; the coordination Task (`intake`) says why. */
  | { outcome: 'incomplete'; coordinationTaskId: string; reason: string }
  | { outcome: 'declined'; coordinationTaskId: string }
  | { outcome: 'submitted'; coordinationTaskId: string; manualQuote: boolean };

/** States in which intake (re)runs: before submission, and while submitted (a changed request re-quotes). */
const INTAKE_STATES: readonly CaseState[] = ['intake', 'submitted'];
/** A follow-up question needs a first case that was not turned away. */
const ENDED_STATES: readonly CaseState[] = ['declined', 'cancelled', 'failed'];

/**
 * The first case of a follow-up question (a request `basedOn` an earlier one): its coordination
 * Task, or why the follow-up cannot be taken on.
 */
async function firstCaseOf(
  repo: HubRepository,
  firstRequestId: string,
): Promise<{ coordination: WithId<Task> } | { reason: string }> {
  const coordination = await findCaseResource<Task>(repo, 'Task', firstRequestId, CASE_ROLES.coordination);
  const state = coordination && caseStateOf(coordination);
  if (!coordination || !state) {
    return { reason: `The request is based on ServiceRequest/${firstRequestId}, which is not a case of the hub.` };
  }
  if (ENDED_STATES.includes(state)) {
    return { reason: `The request is a follow-up of ServiceRequest/${firstRequestId}, a case that was ${state}.` };
  }
  return { coordination };
}

async function readIfPresent<T extends ServiceRequest | Patient>(
  repo: HubRepository,
  resourceType: T['resourceType'],
  id: string,
): Promise<WithId<T> | undefined> {
  try {
    return await repo.readResource<T>(resourceType, id);
  } catch (err) {
    if (err instanceof OperationOutcomeError && [404, 410].includes(getStatus(err.outcome))) {
      return undefined;
    }
    throw err;
  }
}

/** The reference number of a case: the request's requisition or identifier, else the patient's. */
function referenceNumberOf(request: ServiceRequest, patient: Patient | undefined): string | undefined {
  const candidates = [request.requisition, ...(request.identifier ?? []), ...(patient?.identifier ?? [])];
  return candidates.find((identifier) => identifier?.system === REFERENCE_NUMBER_SYSTEM && identifier.value)?.value;
}

export async function runIntake(ctx: WorkflowContext, data: { serviceRequestId: string }): Promise<IntakeOutcome> {
  const { serviceRequestId } = data;
  return ctx.repository.db.transaction(async (tx) => {
    await lockCase(tx, serviceRequestId);
    const repo = new HubRepository(ctx.repository, tx);
    const request = await readIfPresent<ServiceRequest>(repo, 'ServiceRequest', serviceRequestId);
    if (!request) {
      return { outcome: 'not-found' };
    }
    if (request.status !== 'active') {
      return { outcome: 'not-active', status: request.status };
    }
    const existing = await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination);
    const state = existing ? caseStateOf(existing) : 'intake';
    if (!state || !INTAKE_STATES.includes(state)) {
      return { outcome: 'past-submission', state: state ?? 'unknown' };
    }

    const now = ctx.now();
    const patientId = referencedId(request.subject, 'Patient');
    const patient = patientId ? await readIfPresent<Patient>(repo, 'Patient', patientId) : undefined;
    const patientReference: Reference<Patient> | undefined = patient
      ? { reference: `Patient/${patient.id}` }
      : undefined;
    // A follow-up question is coordinated as its own case, part of the first and under its reference number.
    const firstRequestId = followUpOf(request);
    const firstCase = firstRequestId ? await firstCaseOf(repo, firstRequestId) : undefined;
    const firstCoordination = firstCase && 'coordination' in firstCase ? firstCase.coordination : undefined;
    const links = {
      serviceRequest: request,
      patient: patientReference,
      referenceNumber: firstCoordination?.groupIdentifier?.value ?? referenceNumberOf(request, patient),
    };
    const writeCoordination = (
      input: Omit<
        Parameters<typeof coordinationTask>[0],
        'serviceRequest' | 'patient' | 'referenceNumber' | 'existing' | 'now'
      >,
    ) =>
      putCaseResource(
        repo,
        serviceRequestId,
        CASE_ROLES.coordination,
        coordinationTask({
          ...links,
          ...(firstCoordination ? { partOf: { reference: `Task/${firstCoordination.id}` } } : {}),
          ...input,
          existing,
          now,
        }),
      );

    // The physician's submission, recorded: the state machine's guards decide whether it stands.
    const questionCount = questionCountOf(await requestQuestionnaires(repo, request));
    const requesterId = request.requester?.reference?.split('/')[1];
    const submitted =
      firstCase && 'reason' in firstCase
        ? { ok: false as const, reason: firstCase.reason }
        : patient
          ? transition(
              { state, referringPhysicianId: requesterId },
              { to: 'submitted', actor: { role: 'ehr', id: requesterId ?? '' }, now, facts: { questionCount } },
            )
          : {
              ok: false as const,
              reason:
                'The request’s subject is not a registered Patient of the hub; refer to the patient by reference number.',
            };
    if (!submitted.ok) {
      const task = await writeCoordination({ state: 'intake', statusReason: { text: submitted.reason } });
      return { outcome: 'incomplete', coordinationTaskId: task.id, reason: submitted.reason };
    }
    if (!patient) {
      // transition() above runs only with a Patient; without one the submission is refused.
      throw new Error(`case ${serviceRequestId}: submitted without a Patient`);
    }
    const subject: Reference<Patient> = { reference: `Patient/${patient.id}` };

    const expectTasks = await expectMaterialTasks(repo, serviceRequestId);
    const caseLinks = (coordination: WithId<Task>) => ({ ...links, coordinationTask: coordination });
    const policy = policyInForce(ctx.jurisdictionPolicies, now);
    const residence = residenceOf(patient);
    const eligibility = checkEligibility(residence?.residence ?? { country: undefined }, policy);
    const unscreened = eligibility.reasons.some(
      (reason) => reason.code === 'residence-missing' || reason.code === 'residence-unrecognised',
    );

    if (eligibility.outcome === 'ineligible' && !unscreened) {
      const declined = transition(
        { state: 'submitted', referringPhysicianId: requesterId },
        { to: 'declined', actor: { role: 'system', id: 'case-intake' }, now, facts: { eligibility } },
      );
      if (!declined.ok) {
        throw new Error(`case ${serviceRequestId}: ${declined.reason}`);
      }
      const reason = eligibilityReason(eligibility);
      const task = await writeCoordination({
        state: 'declined',
        statusReason: reason,
        eligibility: eligibilityExtension(eligibility),
      });
      await writeChargeItems(repo, { serviceRequestId, patient: subject, received: new Set() }, undefined);
      await syncExpectMaterialTasks(repo, caseLinks(task), [], expectTasks, now);
      const { meta, extension, ...fields } = request;
      await repo.updateResource<ServiceRequest>(
        {
          ...fields,
          extension: [
            ...(extension ?? []).filter((candidate) => candidate.url !== REQUEST_STATUS_REASON_EXTENSION),
            { url: REQUEST_STATUS_REASON_EXTENSION, valueCodeableConcept: reason },
          ],
          status: declined.serviceRequestStatus,
        },
        { ifMatch: meta?.versionId },
      );
      await notifyCaseState(ctx, {
        tx,
        repo,
        serviceRequest: request,
        patient: patientReference,
        state: 'declined',
        ...(state !== 'declined' ? { task } : {}),
      });
      return { outcome: 'declined', coordinationTaskId: task.id };
    }

    // Quoted with the schedule in effect at submission: the coordination Task's authoring.
    const submittedAt = existing?.authoredOn && state === 'submitted' ? new Date(existing.authoredOn) : now;
    const inputs = await caseQuoteInputs(repo, request, existing, expectTasks);
    const quote = computeQuote(inputs, selectSchedule(ctx.feeSchedules, submittedAt));
    const task = await writeCoordination({
      state: 'submitted',
      ...(unscreened
        ? {
            statusReason: {
              text: `The patient’s residence could not be screened; a coordinator must check it. ${eligibilityReason(eligibility).text}`,
            },
          }
        : {}),
      eligibility: eligibilityExtension(eligibility, unscreened ? 'unscreened' : eligibility.outcome),
      quote,
    });
    await writeChargeItems(repo, { serviceRequestId, patient: subject, received: inputs.received }, quote);
    await syncExpectMaterialTasks(repo, caseLinks(task), inputs.planned, expectTasks, now);
    // At submission, materials that came before it (or before this job) count now, not after a
    // retry; once submitted, each later material's own job keeps the case up to date.
    if (state === 'intake') {
      await takeUpEarlyMaterials(tx, ctx.repository, request, caseQuoteRecomputer(ctx), now);
    }
    await notifyCaseState(ctx, {
      tx,
      repo,
      serviceRequest: request,
      patient: patientReference,
      state: 'submitted',
      ...(state !== 'submitted' ? { task } : {}),
    });
    ctx.logger?.info(
      { serviceRequestId, coordinationTaskId: task.id, state: 'submitted', manualQuote: quote.needsManualQuote },
      'case intake',
    );
    return { outcome: 'submitted', coordinationTaskId: task.id, manualQuote: quote.needsManualQuote };
  });
}
