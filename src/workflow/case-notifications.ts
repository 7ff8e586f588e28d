/**
 * Status e-mails of a case, and the EHR subscriptions' case-state topics (jobs/subscriptions.ts): when
 * the coordination Task's businessStatus (the case state) changes, the
 * referring physician and the patient are told that something happened, with a link and nothing
 * else (src/notify/templates.ts). Recorded with recordNotification in the transaction that writes
 * the state, so a rolled-back change sends nothing and a committed one sends once.
 *
 * Who hears of which state (the rest are the hub's internal steps, or a coordinator's business):
 *
 * | state                | referring physician     | patient               |
 * |----------------------|-------------------------|-----------------------|
 * | submitted            | case-status-changed     | case-status-changed   |
 * | declined             | case-status-changed     | case-status-changed   |
 * | awaiting-materials   | case-status-changed     |                       |
 * | specialist-review    | case-status-changed     |                       |
 * | report-released      | report-released         |                       |
 * | report-accessed      |                         | report-ready          |
 * | cancelled            | case-status-changed     | case-status-changed   |
 * | failed               | case-status-changed     |                       |
 *
 * A question back to the physician (awaiting-information) is e-mailed per question, not per state
 * (workflow/progression.ts): a case may wait for its physician more than once.
 *
 * One e-mail per (case, state, recipient): the dedupe key is `case-state:ServiceRequest/<id>:<state>:
 * <recipient>`, so a job that runs again, or a case that comes back to a state (matching → specialist
 * review after a declined offer), sends nothing new. A recipient without an e-mail address on file
 * is skipped here (the notification would only fail for good in the queue).
 */
import type { WithId } from '@medplum/core';
import type { Patient, Practitioner, PractitionerRole, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { CaseState } from '../cases/case-state.ts';
import type { Queryable } from '../db/database.ts';
import type { HubRepository } from '../fhir/repository.ts';
import type { NotificationKind } from '../notify/templates.ts';
import { emailAddressOf, recordNotification } from './jobs/notifications.ts';
import { recordCaseStateEvents } from './jobs/subscriptions.ts';
import { referencedId } from './case-resources.ts';
import type { WorkflowContext } from './context.ts';
import { readOptional } from './materials.ts';

export interface StateRecipients {
  physician?: NotificationKind;
  patient?: NotificationKind;
}

/** The table above, as data (documented in the README). */
export const STATE_NOTIFICATIONS: Readonly<Partial<Record<CaseState, StateRecipients>>> = {
  submitted: { physician: 'case-status-changed', patient: 'case-status-changed' },
  declined: { physician: 'case-status-changed', patient: 'case-status-changed' },
  'awaiting-materials': { physician: 'case-status-changed' },
  'specialist-review': { physician: 'case-status-changed' },
  'report-released': { physician: 'report-released' },
  'report-accessed': { patient: 'report-ready' },
  cancelled: { physician: 'case-status-changed', patient: 'case-status-changed' },
  failed: { physician: 'case-status-changed' },
};

/** Message-ID domain when the context was built without a mailer (job functions called by tests). */
const FALLBACK_MESSAGE_ID_DOMAIN = 'localhost';

export function caseStateDedupeKey(serviceRequestId: string, state: CaseState, recipient: string): string {
  return `case-state:ServiceRequest/${serviceRequestId}:${state}:${recipient}`;
}

/** The referring Practitioner: the requester itself, or the Practitioner of a requester PractitionerRole. */
async function physicianOf(repo: HubRepository, request: ServiceRequest): Promise<WithId<Practitioner> | undefined> {
  const practitionerId = referencedId(request.requester, 'Practitioner');
  if (practitionerId) {
    return readOptional<Practitioner>(repo, 'Practitioner', practitionerId);
  }
  const roleId = referencedId(request.requester, 'PractitionerRole');
  const role = roleId ? await readOptional<PractitionerRole>(repo, 'PractitionerRole', roleId) : undefined;
  const viaRole = referencedId(role?.practitioner, 'Practitioner');
  return viaRole ? readOptional<Practitioner>(repo, 'Practitioner', viaRole) : undefined;
}

export interface CaseStateChange {
  tx: Queryable;
  repo: HubRepository;
  serviceRequest: WithId<ServiceRequest>;
  /** The case's Patient (coordination Task.for, else the request's subject). */
  patient: Reference | undefined;
  state: CaseState;
  /**
   * The coordination Task as written with the new state, when the state is new (not written again):
   * the subscribers of the case's topics are told (jobs/subscriptions.ts).
   */
  task?: WithId<Task>;
}

/**
 * Records the e-mails a case state calls for, in the caller's transaction. Call it wherever a state
 * is written (also when it is written again: the dedupe key keeps one). Returns the recipients
 * (`Type/id`) newly recorded, for the log.
 */
export async function notifyCaseState(ctx: WorkflowContext, change: CaseStateChange): Promise<string[]> {
  if (change.task) {
    await recordCaseStateEvents(change.tx, {
      serviceRequestId: change.serviceRequest.id,
      task: change.task,
      state: change.state,
    });
  }
  const plan = STATE_NOTIFICATIONS[change.state];
  if (!plan) {
    return [];
  }
  const candidates: { kind: NotificationKind; resource: WithId<Patient | Practitioner> | undefined }[] = [];
  if (plan.physician) {
    candidates.push({ kind: plan.physician, resource: await physicianOf(change.repo, change.serviceRequest) });
  }
  if (plan.patient) {
    const patientId = referencedId(change.patient, 'Patient') ?? referencedId(change.serviceRequest.subject, 'Patient');
    candidates.push({
      kind: plan.patient,
      resource: patientId ? await readOptional<Patient>(change.repo, 'Patient', patientId) : undefined,
    });
  }
  const recorded: string[] = [];
  for (const { kind, resource } of candidates) {
    if (!resource || !emailAddressOf(resource, ctx.now())) {
      continue;
    }
    const recipient = `${resource.resourceType}/${resource.id}`;
    const result = await recordNotification(
      change.tx,
      {
        kind,
        recipient,
        caseReference: `ServiceRequest/${change.serviceRequest.id}`,
        dedupeKey: caseStateDedupeKey(change.serviceRequest.id, change.state, recipient),
      },
      ctx.messageIdDomain ?? FALLBACK_MESSAGE_ID_DOMAIN,
    );
    if (result.created) {
      recorded.push(recipient);
    }
  }
  if (recorded.length > 0) {
    ctx.logger?.info(
      {
        serviceRequestId: change.serviceRequest.id,
        state: change.state,
        recipients: recorded.map((r) => r.split('/')[0]),
      },
      'case state notifications recorded',
    );
  }
  return recorded;
}

/**
 * One e-mail about a case to one person (a Patient or Practitioner with an address on file), once
 * per `dedupeKey`, in the caller's transaction. Returns whether it was newly recorded.
 */
export async function notifyPerson(
  ctx: WorkflowContext,
  tx: Queryable,
  notice: {
    kind: NotificationKind;
    person: WithId<Patient | Practitioner> | undefined;
    serviceRequestId: string;
    dedupeKey: string;
  },
): Promise<boolean> {
  const { person } = notice;
  if (!person || !emailAddressOf(person, ctx.now())) {
    return false;
  }
  const result = await recordNotification(
    tx,
    {
      kind: notice.kind,
      recipient: `${person.resourceType}/${person.id}`,
      caseReference: `ServiceRequest/${notice.serviceRequestId}`,
      dedupeKey: notice.dedupeKey,
    },
    ctx.messageIdDomain ?? FALLBACK_MESSAGE_ID_DOMAIN,
  );
  return result.created;
}
