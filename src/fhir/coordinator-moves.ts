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
 *   client sent (the hub records who corrected the count, as it stamps `meta.source`).
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

function isExpectMaterial(resource: Resource | undefined): boolean {
  return (
    resource?.resourceType === 'Task' &&
    (resource.code?.coding ?? []).some(
      (coding) => coding.system === TASK_CODE_SYSTEM && coding.code === EXPECT_MATERIAL,
    )
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
  if (deepEquals(before ?? null, after ?? null)) {
    return resource;
  }
  if (!coordinates) {
    refuse(
      'Only a coordinator corrects the question count of a case (urn:hub:extension:question-count-override)',
      'Task.extension',
    );
  }
  if (after === undefined) {
    return resource;
  }
  const stamped = stampedOverride(after, { ...writer, identity });
  return {
    ...resource,
    extension: (resource.extension ?? []).map((extension) => (extension === after ? stamped : extension)),
  };
}
