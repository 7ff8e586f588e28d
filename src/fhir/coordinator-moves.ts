/**
 * Two changes to what a case is charged are the coordinators' alone (docs/case-workflow.md,
 * "Coordinators' moves"): correcting its question count (the coordination Task's
 * `urn:hub:extension:question-count-override`) and waiving a material (cancelling its
 * `expect-material` Task). Both are ordinary Task writes, and a referring physician or a reviewer may
 * update the Tasks of their cases (their offer, the opinion's Tasks, a move of the case), so the
 * repository passes every person's Task write through here before storing it:
 *
 * - a person who is not a coordinator or an admin may not set, change or remove the override, nor
 *   write an expect-material Task at all (403, and nothing is stored);
 * - when a coordinator or admin sets or changes the override, its `setBy` names them, whatever the
 *   client sent (the hub records who corrected the count, as it stamps `meta.source`);
 * - on the coordination Task, the hub's record of the case, such a person may change the
 *   `businessStatus` (their move, which the progression job then checks) and add notes, nothing
 *   else: who holds the case (`owner`), its deadline, the specialty sought, the quote, the
 *   eligibility reasons, the notes already there and the rest are the hub's and the coordinators'
 *   (403 otherwise).
 *
 * System clients are not persons: their scopes are all that limits them (docs/access.md), and the
 * hub's own jobs write without an identity.
 */
import { OperationOutcomeError, deepEquals, forbidden } from '@medplum/core';
import type { Extension, Resource } from '@medplum/fhirtypes';
import type { Identity } from '../auth/access-tokens.ts';

export const QUESTION_COUNT_OVERRIDE_URL = 'urn:hub:extension:question-count-override';
const TASK_CODE_SYSTEM = 'urn:hub:task-code';
const EXPECT_MATERIAL = 'expect-material';
const COORDINATION = 'coordination';
const COORDINATING_ROLES: readonly string[] = ['coordinator', 'admin'];

/** Who is writing, as the repository knows them. */
export interface Writer {
  identity?: Identity;
  /** `urn:hub:actor:<role>:<id>` (auth/actor.ts), stamped as meta.source. */
  actor?: string;
}

function overrideOf(task: Resource | undefined): Extension | undefined {
  return task?.resourceType === 'Task'
    ? task.extension?.find((extension) => extension.url === QUESTION_COUNT_OVERRIDE_URL)
    : undefined;
}

function isTaskCoded(resource: Resource | undefined, code: string): boolean {
  return (
    resource?.resourceType === 'Task' &&
    (resource.code?.coding ?? []).some((coding) => coding.system === TASK_CODE_SYSTEM && coding.code === code)
  );
}

const isExpectMaterial = (resource: Resource | undefined): boolean => isTaskCoded(resource, EXPECT_MATERIAL);

/**
 * The coordination Task but for what a move changes (its state, and the status and reason that go
 * with it: the progression job judges the move), its notes, and `meta` (the hub's).
 */
function beyondTheMove(task: Resource): Record<string, unknown> {
  const {
    meta: _meta,
    businessStatus: _move,
    status: _status,
    statusReason: _reason,
    note: _notes,
    ...rest
  } = task as Resource & { businessStatus?: unknown; status?: unknown; statusReason?: unknown; note?: unknown };
  return rest;
}

/** Whether `after` keeps the coordination Task as it was but for a move and notes added after the others. */
function onlyMovesOrAddsNotes(before: Resource, after: Resource): boolean {
  const notesOf = (task: Resource): unknown[] => (task.resourceType === 'Task' ? (task.note ?? []) : []);
  const kept = notesOf(before);
  return (
    deepEquals(beyondTheMove(before), beyondTheMove(after)) && deepEquals(kept, notesOf(after).slice(0, kept.length))
  );
}

function refuse(text: string, expression: string): never {
  throw new OperationOutcomeError({
    ...forbidden,
    issue: [{ severity: 'error', code: 'forbidden', details: { text }, expression: [expression] }],
  });
}

/** The override with `setBy` naming the writer: their Practitioner when linked, else their actor id. */
function stampedOverride(override: Extension, writer: Writer & { identity: Identity & { kind: 'user' } }): Extension {
  const { fhirUser, userId } = writer.identity;
  const setBy: Extension = fhirUser
    ? { url: 'setBy', valueReference: { reference: fhirUser } }
    : { url: 'setBy', valueString: writer.actor ?? `user ${userId}` };
  return {
    ...override,
    extension: [...(override.extension ?? []).filter((part) => part.url !== 'setBy'), setBy],
  };
}

/**
 * `resource` as it may be stored (the override's `setBy` stamped), or a 403 when a person who does not
 * coordinate touches a coordinator's move. `previous` is the version it replaces, if any.
 */
export function checkCoordinatorMoves<T extends Resource>(
  resource: T,
  previous: Resource | undefined,
  writer: Writer,
): T {
  const { identity } = writer;
  if (resource.resourceType !== 'Task' || identity === undefined || identity.kind !== 'user') {
    return resource;
  }
  const coordinates = COORDINATING_ROLES.includes(identity.role);
  if (!coordinates && (isExpectMaterial(previous) || isExpectMaterial(resource))) {
    refuse(
      'Only a coordinator waives a material or changes what a case expects: expect-material Tasks are written by the hub and the coordinators',
      'Task.status',
    );
  }
  const before = overrideOf(previous);
  const after = overrideOf(resource);
  const corrects = !deepEquals(before ?? null, after ?? null);
  if (!coordinates && corrects) {
    refuse(
      'Only a coordinator corrects the question count of a case (urn:hub:extension:question-count-override)',
      'Task.extension',
    );
  }
  if (!corrects || after === undefined) {
    return resource;
  }
  const stamped = stampedOverride(after, { ...writer, identity });
  return {
    ...resource,
    extension: (resource.extension ?? []).map((extension) => (extension === after ? stamped : extension)),
  };
}

/**
 * A 403 when a person who does not coordinate changes the coordination Task (the hub's record of the
 * case) beyond a move and added notes. Runs after the reference claims, whose refusals say more.
 */
export function checkCaseRecordWrite(resource: Resource, previous: Resource | undefined, writer: Writer): void {
  const { identity } = writer;
  if (
    identity?.kind === 'user' &&
    !COORDINATING_ROLES.includes(identity.role) &&
    previous !== undefined &&
    isTaskCoded(previous, COORDINATION) &&
    !onlyMovesOrAddsNotes(previous, resource)
  ) {
    refuse(
      'Only a coordinator changes the case record: on the coordination Task, others move the case (businessStatus) or add a note',
      'Task',
    );
  }
}
