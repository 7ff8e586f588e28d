/**
 * The hub's own code systems and the identity of every resource the case workflow creates
 * (docs/case-workflow.md): each carries the identifier `urn:hub:case-resource|<ServiceRequest id>/<role>`,
 * so a job finds what an earlier run of it wrote and never writes it twice.
 */
import { parseSearchRequest } from '@medplum/core';
import type { SearchRequest, WithId } from '@medplum/core';
import type { Bundle, Identifier, Reference, Resource, Task } from '@medplum/fhirtypes';
import { CASE_STATES } from '../cases/case-state.ts';
import type { CaseState } from '../cases/case-state.ts';
import type { Queryable } from '../db/database.ts';
import type { HubRepository } from '../fhir/repository.ts';

export const CASE_RESOURCE_SYSTEM = 'urn:hub:case-resource';
export const TASK_CODE_SYSTEM = 'urn:hub:task-code';
export const CASE_STATE_SYSTEM = 'urn:hub:case-state';
export const MATERIAL_SYSTEM = 'urn:hub:material';
/** Task.input / Task.output types of expect-material Tasks: the material and its counts. */
export const MATERIAL_COUNT_SYSTEM = 'urn:hub:material-count';

export const MATERIAL_KINDS = ['records', 'imaging', 'pathology'] as const;
export type MaterialKind = (typeof MATERIAL_KINDS)[number];

export type TaskCode =
  | 'coordination'
  | 'expect-material'
  | 'reconcile-imaging'
  | 'pre-review-radiology'
  | 'pre-review-pathology'
  | 'specialist-opinion'
  | 'approve';

/** The `<role>` part of a case resource identifier. */
export const CASE_ROLES = {
  coordination: 'coordination',
  expectMaterial: (kind: MaterialKind) => `expect-material/${kind}`,
  charge: (feeCode: string) => `charge/${feeCode}`,
} as const;

export function caseResourceIdentifier(serviceRequestId: string, role: string): Identifier {
  return { system: CASE_RESOURCE_SYSTEM, value: `${serviceRequestId}/${role}` };
}

function identifierQuery(serviceRequestId: string, roles: readonly string[]): string {
  return roles.map((role) => encodeURIComponent(`${CASE_RESOURCE_SYSTEM}|${serviceRequestId}/${role}`)).join(',');
}

/** The case resources of one type with any of `roles`, keyed by role. */
export async function findCaseResources<T extends Resource>(
  repo: HubRepository,
  resourceType: T['resourceType'],
  serviceRequestId: string,
  roles: readonly string[],
): Promise<Map<string, WithId<T>>> {
  const found = new Map<string, WithId<T>>();
  if (roles.length === 0) {
    return found;
  }
  const search = parseSearchRequest<T>(
    `${resourceType}?identifier=${identifierQuery(serviceRequestId, roles)}&_count=${roles.length * 2}`,
  );
  for (const resource of await repo.searchResources<T>(search)) {
    const identifier = (resource as { identifier?: Identifier[] }).identifier?.find(
      (id) => id.system === CASE_RESOURCE_SYSTEM,
    );
    const role = identifier?.value?.slice(serviceRequestId.length + 1);
    if (role && identifier?.value?.startsWith(`${serviceRequestId}/`)) {
      if (found.has(role)) {
        // Conditional writes make this impossible; if it happens, nothing may guess which one counts.
        throw new Error(`case ${serviceRequestId} has two ${resourceType} resources for ${role}`);
      }
      found.set(role, resource);
    }
  }
  return found;
}

export async function findCaseResource<T extends Resource>(
  repo: HubRepository,
  resourceType: T['resourceType'],
  serviceRequestId: string,
  role: string,
): Promise<WithId<T> | undefined> {
  return (await findCaseResources<T>(repo, resourceType, serviceRequestId, [role])).get(role);
}

/**
 * Creates or updates a case resource found by its case identifier (a conditional update). The
 * repository writes nothing when the content is unchanged, so a repeated run leaves no new version.
 */
export async function putCaseResource<T extends Resource>(
  repo: HubRepository,
  serviceRequestId: string,
  role: string,
  resource: T,
): Promise<WithId<T>> {
  const identifier = caseResourceIdentifier(serviceRequestId, role);
  const withIdentifier = {
    ...resource,
    identifier: [
      identifier,
      ...((resource as { identifier?: Identifier[] }).identifier ?? []).filter(
        (id) => id.system !== CASE_RESOURCE_SYSTEM,
      ),
    ],
  } as T;
  const search = parseSearchRequest<T>(
    `${resource.resourceType}?identifier=${identifierQuery(serviceRequestId, [role])}`,
  );
  const { resource: written } = await repo.conditionalUpdate<T>(withIdentifier, search);
  return written;
}

/**
 * Every resource a search matches, however many: the pages are read one after another with the
 * store's keyset cursor (the `next` link's `_cursor`), each as large as the search's `_count`.
 */
export async function searchAll<T extends Resource>(
  repo: HubRepository,
  search: SearchRequest<T>,
): Promise<WithId<T>[]> {
  const found: WithId<T>[] = [];
  let request: SearchRequest<T> | undefined = search;
  while (request) {
    const page: Bundle<WithId<T>> = await repo.search<T>(request);
    for (const entry of page.entry ?? []) {
      if (entry.resource && entry.search?.mode !== 'include') {
        found.push(entry.resource);
      }
    }
    const next = page.link?.find((link) => link.relation === 'next')?.url;
    const cursor = next ? new URL(next).searchParams.get('_cursor') : null;
    request = cursor ? { ...search, cursor } : undefined;
  }
  return found;
}

/**
 * Serialises the workflow jobs of one case: every job step that writes a case's resources takes
 * this lock first, in its transaction, so two steps never interleave their reads and writes.
 */
export async function lockCase(tx: Queryable, serviceRequestId: string): Promise<void> {
  if (!tx.inTransaction) {
    throw new Error('lockCase must run inside the transaction of the job step');
  }
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`case:${serviceRequestId}`]);
}

export function taskCode(code: TaskCode): Task['code'] {
  return { coding: [{ system: TASK_CODE_SYSTEM, code }] };
}

/** The case state a coordination Task records, or undefined when it records none we know. */
export function caseStateOf(task: Task): CaseState | undefined {
  const code = task.businessStatus?.coding?.find((coding) => coding.system === CASE_STATE_SYSTEM)?.code;
  return (CASE_STATES as readonly string[]).includes(code ?? '') ? (code as CaseState) : undefined;
}

export function caseStateConcept(state: CaseState): Task['businessStatus'] {
  return { coding: [{ system: CASE_STATE_SYSTEM, code: state }] };
}

/** `Type/id` of a reference, when it is a relative literal reference to `type`. */
export function referencedId(reference: Reference | undefined, type: string): string | undefined {
  const match = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(reference?.reference ?? '');
  return match && match[1] === type ? match[2] : undefined;
}
