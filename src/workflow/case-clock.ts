/**
 * What a worklist reads off the coordination Task, kept there by the progression job so that a plain
 * FHIR search sorts and filters the cases by it (docs/case-workflow.md, "Coordination Task"):
 *
 * - `restriction.period.end`: the deadline the case is held to now (search parameter `due`), the SLA
 *   clock. Only steps with a deadline have one: the specialist's opinion (offered, accepted, or paused
 *   while the physician is asked) and the coordinators' approval of a submitted report or of an
 *   amendment. Any other state has none, so a finished or cancelled case is never overdue.
 * - `performerType`: the specialties the matching sought (NUCC codes; search parameter `performer`),
 *   from the first ranking on; a case not yet matched has none.
 */
import { deepEquals } from '@medplum/core';
import type { CodeableConcept, Task } from '@medplum/fhirtypes';
import type { CaseState } from '../cases/case-state.ts';
import { SPECIALTIES } from '../cases/specialties.ts';
import type { Specialty } from '../cases/specialties.ts';
import { NUCC_SYSTEM } from './specialists.ts';

/** The states in which the specialist's opinion is what the case waits for. */
const OPINION_STATES: readonly CaseState[] = ['matching', 'specialist-review', 'awaiting-information'];

/**
 * The case's running deadline: the coordinators' open approval (a submitted report, or an amendment
 * of a released one) first, else the open offer's due date while the opinion is awaited.
 */
export function caseDeadline(
  state: CaseState,
  openOffer: { dueAt: string } | undefined,
  openApproval: { dueAt: string } | undefined,
): string | undefined {
  if (openApproval) {
    return openApproval.dueAt;
  }
  return openOffer && OPINION_STATES.includes(state) ? openOffer.dueAt : undefined;
}

/** The specialties sought as Task.performerType: one concept each, NUCC-coded. */
export function specialtyConcepts(specialties: readonly Specialty[]): CodeableConcept[] {
  return specialties.map((specialty) => ({
    coding: [{ system: NUCC_SYSTEM, code: SPECIALTIES[specialty].nuccCode, display: SPECIALTIES[specialty].display }],
    text: SPECIALTIES[specialty].display,
  }));
}

/**
 * The coordination Task with its deadline (none removes it) and, when given, the specialties sought;
 * undefined when it already says so. `meta` is left out, so the hub writes the version as its own.
 */
export function withCaseClock(
  task: Task,
  fields: { due: string | undefined; specialties?: readonly Specialty[] },
  now: Date,
): Task | undefined {
  const performerType = fields.specialties ? specialtyConcepts(fields.specialties) : task.performerType;
  const sameDue =
    fields.due === undefined
      ? task.restriction?.period?.end === undefined
      : Date.parse(task.restriction?.period?.end ?? '') === Date.parse(fields.due);
  if (sameDue && deepEquals(performerType ?? [], task.performerType ?? [])) {
    return undefined;
  }
  const { meta: _meta, restriction, performerType: _performerType, ...rest } = task;
  const { period, ...otherRestriction } = restriction ?? {};
  const { end: _end, ...otherPeriod } = period ?? {};
  const keptPeriod = fields.due === undefined ? otherPeriod : { ...otherPeriod, end: fields.due };
  const keptRestriction =
    Object.keys(keptPeriod).length > 0 ? { ...otherRestriction, period: keptPeriod } : otherRestriction;
  return {
    ...rest,
    ...(performerType && performerType.length > 0 ? { performerType } : {}),
    ...(Object.keys(keptRestriction).length > 0 ? { restriction: keptRestriction } : {}),
    lastModified: now.toISOString(),
  };
}
