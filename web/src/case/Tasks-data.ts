/**
 * What the case page's Tasks, Review and Timeline sections read from the hub: the Tasks that are part
 * of the case's coordination Task, the people they name, the rosters a coordinator picks from, and
 * the hub's codes (docs/case-workflow.md; the server's constants, repeated because the app may import
 * only types from src/). After a write the hub's jobs move the case in the background, so the
 * sections read the case again for a while (useFollowHub).
 */
import type { Bundle, Practitioner, PractitionerRole, Reference, Task } from '@medplum/fhirtypes';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback } from 'react';
import { currentSession } from '../auth.ts';
import { fhirGet, searchEntries } from '../fhir.ts';
import { formatName, idOf } from '../format.ts';

export const TASK_CODE_SYSTEM = 'urn:hub:task-code';
export const CASE_REASON_SYSTEM = 'urn:hub:case-reason';
export const PRACTITIONER_ROLE_SYSTEM = 'urn:hub:practitioner-role';

export type ReviewTaskCode = 'pre-review-radiology' | 'pre-review-pathology' | 'specialist-opinion';
export const REVIEW_TASK_CODES: readonly ReviewTaskCode[] = [
  'pre-review-radiology',
  'pre-review-pathology',
  'specialist-opinion',
];
/** A Task that still asks something of its owner. */
export const OPEN_STATUSES: readonly Task['status'][] = [
  'draft',
  'requested',
  'received',
  'accepted',
  'ready',
  'in-progress',
  'on-hold',
];

/** The roster a Task's owner is picked from: the role code of their PractitionerRole. */
export const ROSTER_ROLE: Record<ReviewTaskCode, 'radiologist' | 'pathologist' | 'specialist'> = {
  'pre-review-radiology': 'radiologist',
  'pre-review-pathology': 'pathologist',
  'specialist-opinion': 'specialist',
};

export const caseKey = (serviceRequestId: string, ...rest: string[]): string[] => ['case', serviceRequestId, ...rest];

/** Coordinators and admins make the coordinators' moves; the hub checks every one of them itself. */
export function mayCoordinate(): boolean {
  const role = currentSession()?.role;
  return role === 'coordinator' || role === 'admin';
}

export function taskCodeOf(task: Task | undefined): string | undefined {
  return task?.code?.coding?.find((coding) => coding.system === TASK_CODE_SYSTEM)?.code;
}

export const isReviewTask = (task: Task): boolean =>
  (REVIEW_TASK_CODES as readonly (string | undefined)[]).includes(taskCodeOf(task));

/** The Tasks that are part of the case's coordination Task (pre-reviews, offers, the approval, materials). */
export function useCaseTasks(serviceRequestId: string, coordinationId: string | undefined) {
  return useQuery({
    queryKey: caseKey(serviceRequestId, 'child-tasks', coordinationId ?? ''),
    queryFn: async () =>
      searchEntries<Task>(
        await fhirGet<Bundle>(`Task?part-of=${encodeURIComponent(`Task/${coordinationId ?? ''}`)}&_count=200`),
        'Task',
      ),
    enabled: coordinationId !== undefined,
  });
}

/** The specialist-opinion Tasks, oldest offer first. */
export function offersOf(tasks: readonly Task[]): Task[] {
  return tasks
    .filter((task) => taskCodeOf(task) === 'specialist-opinion')
    .sort((a, b) => (a.authoredOn ?? '').localeCompare(b.authoredOn ?? ''));
}

/** Names of the Practitioners these references name, read in one search; a missing one keeps its reference. */
export function usePractitionerNames(references: readonly (Reference | string | undefined)[]) {
  const ids = [
    ...new Set(
      references
        .map((reference) => idOf(typeof reference === 'string' ? reference : reference?.reference, 'Practitioner'))
        .filter((id): id is string => id !== undefined),
    ),
  ].sort();
  const names = useQuery({
    queryKey: ['practitioner-names', ...ids],
    queryFn: async () => {
      const bundle = await fhirGet<Bundle>(
        `Practitioner?_id=${ids.map(encodeURIComponent).join(',')}&_count=${ids.length}`,
      );
      return new Map(
        searchEntries<Practitioner>(bundle, 'Practitioner').map((practitioner) => [
          practitioner.id ?? '',
          formatName(practitioner.name) ?? `Practitioner/${practitioner.id ?? ''}`,
        ]),
      );
    },
    enabled: ids.length > 0,
    staleTime: 60_000,
  });
  return (reference: Reference | string | undefined): string | undefined => {
    const text = typeof reference === 'string' ? reference : reference?.reference;
    const id = idOf(text, 'Practitioner');
    return (id && names.data?.get(id)) ?? (typeof reference === 'string' ? undefined : reference?.display) ?? text;
  };
}

export interface RosterMember {
  practitioner: string;
  name: string;
  specialties: string;
}

/** The active members of a roster (PractitionerRoles coded `urn:hub:practitioner-role|<role>`), by name. */
export function useRoster(role: 'radiologist' | 'pathologist' | 'specialist', enabled: boolean) {
  return useQuery({
    queryKey: ['roster', role],
    queryFn: async (): Promise<RosterMember[]> => {
      const query = new URLSearchParams({
        role: `${PRACTITIONER_ROLE_SYSTEM}|${role}`,
        _include: 'PractitionerRole:practitioner',
        _count: '200',
      });
      const bundle = await fhirGet<Bundle>(`PractitionerRole?${query.toString()}`);
      const practitioners = new Map(
        searchEntries<Practitioner>(bundle, 'Practitioner').map((practitioner) => [
          `Practitioner/${practitioner.id ?? ''}`,
          practitioner,
        ]),
      );
      const members = new Map<string, RosterMember>();
      for (const entry of searchEntries<PractitionerRole>(bundle, 'PractitionerRole')) {
        const reference = entry.practitioner?.reference;
        if (entry.active === false || reference === undefined || members.has(reference)) {
          continue;
        }
        const practitioner = practitioners.get(reference);
        members.set(reference, {
          practitioner: reference,
          name: formatName(practitioner?.name) ?? reference,
          specialties: (entry.specialty ?? [])
            .map((concept) => concept.text ?? concept.coding?.[0]?.display ?? concept.coding?.[0]?.code)
            .filter((text): text is string => text !== undefined)
            .join(', '),
        });
      }
      return [...members.values()].sort((a, b) => a.name.localeCompare(b.name));
    },
    enabled,
    staleTime: 60_000,
  });
}

/** How long the sections read the case again after a write: the hub's jobs usually answer within seconds. */
const FOLLOW_MS = 20_000;
const FOLLOW_EVERY_MS = 1_000;

/** Per case, the timer of the reads that follow a write (module-wide: the form that wrote may be gone). */
const following = new Map<string, ReturnType<typeof setInterval>>();

/**
 * Reads the case again every second for a while, so that what the hub's jobs make of a write (a
 * reassignment applied or undone, a case moved on) shows without a reload. The timer outlives the
 * component that wrote (a form closes once its write is accepted) and stops by itself.
 */
export function useFollowHub(serviceRequestId: string): () => void {
  const queryClient = useQueryClient();
  return useCallback(() => {
    clearInterval(following.get(serviceRequestId));
    const until = Date.now() + FOLLOW_MS;
    const refresh = () => {
      void queryClient.invalidateQueries({ queryKey: caseKey(serviceRequestId) });
      void queryClient.invalidateQueries({ queryKey: ['coordination', serviceRequestId] });
      if (Date.now() > until) {
        clearInterval(following.get(serviceRequestId));
        following.delete(serviceRequestId);
      }
    };
    refresh();
    following.set(serviceRequestId, setInterval(refresh, FOLLOW_EVERY_MS));
  }, [queryClient, serviceRequestId]);
}

/** A Task's statusReason in words. */
export function reasonText(task: Task): string | undefined {
  return (
    task.statusReason?.text ??
    task.statusReason?.coding?.map((coding) => coding.display ?? coding.code).join(', ') ??
    undefined
  );
}
