/**
 * The coordination Task: one per case, its businessStatus the case state (docs/case-workflow.md). Built on
 * top of the stored Task so that what others set (owner, their notes, inputs) survives the workflow's
 * rewrites; `lastModified` moves only when something changed.
 */
import { deepEquals } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type { CodeableConcept, Extension, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import { STATE_RESOURCES } from '../cases/case-state.ts';
import type { CaseState } from '../cases/case-state.ts';
import type { Eligibility, EligibilityReason } from '../cases/jurisdictions.ts';
import { REFERENCE_NUMBER_SYSTEM } from '../cases/reference-number.ts';
import { ELIGIBILITY_REASON_SYSTEM } from '../fhir/operations/eligibility.ts';
import { caseStateConcept, taskCode } from './case-resources.ts';
import { QUOTE_EXTENSION, quoteExtension, withQuoteNote } from './quote.ts';
import type { CaseQuote } from './quote.ts';

export const ELIGIBILITY_EXTENSION = 'urn:hub:extension:eligibility';
/** R4 has no ServiceRequest.statusReason; the core extension carries it. */
export const REQUEST_STATUS_REASON_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/request-statusReason';

/**
 * One reason of a screening, kept with it: a restriction's reason is written nowhere else (only a
 * declined or unscreened case has a statusReason, which later moves replace).
 */
function reasonExtension(reason: EligibilityReason): Extension {
  const text = (url: string, value: string | undefined): Extension[] =>
    value === undefined ? [] : [{ url, valueString: value }];
  return {
    url: 'reason',
    extension: [
      { url: 'code', valueCoding: { system: ELIGIBILITY_REASON_SYSTEM, code: reason.code } },
      { url: 'message', valueString: reason.message },
      ...text('detail', reason.detail),
      ...text('jurisdiction', reason.jurisdiction),
      ...text('source', reason.source),
    ],
  };
}

/**
 * The screening for the coordination Task: its outcome (`unscreened` when the residence could not be
 * read), the reviews allowed, the policy version, and each reason.
 */
export function eligibilityExtension(eligibility: Eligibility, outcome: string = eligibility.outcome): Extension {
  return {
    url: ELIGIBILITY_EXTENSION,
    extension: [
      { url: 'outcome', valueCode: outcome },
      { url: 'radiology', valueBoolean: eligibility.allowedReviews.radiology },
      { url: 'pathology', valueBoolean: eligibility.allowedReviews.pathology },
      { url: 'policyVersion', valueString: eligibility.policyVersion },
      ...eligibility.reasons.map(reasonExtension),
    ],
  };
}

/** The reasons of a screening as a statusReason: each coded, and the applicant's wording as text. */
export function eligibilityReason(eligibility: Eligibility): CodeableConcept {
  return {
    coding: eligibility.reasons.map((reason) => ({ system: ELIGIBILITY_REASON_SYSTEM, code: reason.code })),
    text: eligibility.reasons.map((reason) => reason.message).join(' '),
  };
}

export interface CoordinationTaskInput {
  serviceRequest: WithId<ServiceRequest>;
  patient: Reference | undefined;
  referenceNumber: string | undefined;
  state: CaseState;
  statusReason?: CodeableConcept;
  /** The extension recording the screening, when it ran. */
  eligibility?: Extension;
  /** The quote; none removes an earlier one (a declined case). */
  quote?: CaseQuote;
  /** A follow-up question's coordination Task is part of the first case's. */
  partOf?: Reference<Task>;
  existing: Task | undefined;
  now: Date;
}

const OWN_EXTENSIONS = [ELIGIBILITY_EXTENSION, QUOTE_EXTENSION];

export function coordinationTask(input: CoordinationTaskInput): Task {
  const { serviceRequest, existing, state, now } = input;
  const {
    meta: _meta,
    statusReason: _reason,
    extension: earlierExtensions,
    ...kept
  } = existing ?? { resourceType: 'Task' as const };
  const extension = [
    ...(earlierExtensions ?? []).filter((candidate) => !OWN_EXTENSIONS.includes(candidate.url)),
    ...(input.eligibility ? [input.eligibility] : []),
    ...(input.quote ? [quoteExtension(input.quote)] : []),
  ];
  const note = withQuoteNote(existing?.note, input.quote);
  const { note: _note, ...withoutNote } = kept as Task;
  const task: Task = {
    ...withoutNote,
    resourceType: 'Task',
    ...(extension.length > 0 ? { extension } : {}),
    ...(input.referenceNumber
      ? { groupIdentifier: { system: REFERENCE_NUMBER_SYSTEM, value: input.referenceNumber } }
      : {}),
    basedOn: [{ reference: `ServiceRequest/${serviceRequest.id}` }],
    ...(input.partOf ? { partOf: [input.partOf] } : {}),
    status: STATE_RESOURCES[state].taskStatus,
    ...(input.statusReason ? { statusReason: input.statusReason } : {}),
    businessStatus: caseStateConcept(state),
    intent: 'order',
    ...(serviceRequest.priority ? { priority: serviceRequest.priority } : {}),
    code: taskCode('coordination'),
    description: 'Second-opinion case',
    focus: { reference: `ServiceRequest/${serviceRequest.id}` },
    ...(input.patient ? { for: input.patient } : {}),
    authoredOn: existing?.authoredOn ?? now.toISOString(),
    ...(serviceRequest.requester ? { requester: serviceRequest.requester } : {}),
    ...(note.length > 0 ? { note } : {}),
  };
  const { lastModified: _before, ...existingContent } = (existing ? stripMeta(existing) : {}) as Task;
  const { lastModified: _after, ...nextContent } = task;
  task.lastModified =
    existing?.lastModified && deepEquals(existingContent, nextContent) ? existing.lastModified : now.toISOString();
  return task;
}

function stripMeta(task: Task): Task {
  const { meta: _meta, ...rest } = task;
  return rest;
}
