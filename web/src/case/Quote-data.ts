/**
 * What the case page's eligibility, quote and materials sections read from the hub, as the signed-in
 * person: the case's coordination Task (its eligibility and quote extensions), the quote's ChargeItems
 * and the expect-material Tasks, each a query of its own under ['case', <ServiceRequest id>], so a
 * move refreshes them all at once. docs/case-workflow.md describes every element read here.
 */
import type { Bundle, ChargeItem, Extension, Money, Task } from '@medplum/fhirtypes';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import type { QueryClient } from '@tanstack/react-query';
import { currentSession } from '../auth.ts';
import { fhirGet, nextLink, searchEntries } from '../fhir.ts';

export const TASK_CODE_SYSTEM = 'urn:hub:task-code';
export const QUOTE_EXTENSION = 'urn:hub:extension:quote';
export const OVERRIDE_EXTENSION = 'urn:hub:extension:question-count-override';
/** The coordination Task's state when the case is over: nothing more is quoted or awaited. */
export const CLOSED_STATES: readonly string[] = ['declined', 'cancelled', 'failed'];

/** A sub-extension of a complex extension. */
export function partOf(extension: Extension | undefined, url: string): Extension | undefined {
  return extension?.extension?.find((part) => part.url === url);
}

export function extensionOf(resource: { extension?: Extension[] } | undefined, url: string): Extension | undefined {
  return resource?.extension?.find((extension) => extension.url === url);
}

/** The person's role allows the coordinators' moves (the hub decides; this only hides what it would refuse). */
export function mayCoordinate(): boolean {
  const role = currentSession()?.role;
  return role === 'coordinator' || role === 'admin';
}

export function formatMoney(money: Money | undefined): string {
  if (money?.value === undefined) {
    return '—';
  }
  return new Intl.NumberFormat('en-US', { style: 'currency', currency: money.currency ?? 'USD' }).format(money.value);
}

export const caseKey = (serviceRequestId: string, ...rest: string[]): string[] => ['case', serviceRequestId, ...rest];

/** The case's coordination Task, or undefined before intake made it. */
export function useCoordinationTask(serviceRequestId: string, refetchInterval?: number | false) {
  return useQuery({
    queryKey: caseKey(serviceRequestId, 'coordination'),
    queryFn: async () => {
      const query = new URLSearchParams({
        code: `${TASK_CODE_SYSTEM}|coordination`,
        focus: `ServiceRequest/${serviceRequestId}`,
      });
      const bundle = await fhirGet<Bundle>(`Task?${query.toString()}`);
      return searchEntries<Task>(bundle, 'Task')[0] ?? null;
    },
    refetchInterval,
  });
}

/** Every page of a search the hub pages (a few at most: a case has a dozen lines or Tasks). */
async function searchAll<T extends ChargeItem | Task>(path: string, resourceType: T['resourceType']): Promise<T[]> {
  const found: T[] = [];
  let next: string | undefined = path;
  for (let page = 0; next !== undefined && page < 10; page += 1) {
    const bundle: Bundle = await fhirGet<Bundle>(next);
    found.push(...searchEntries<T>(bundle, resourceType));
    next = nextLink(bundle);
  }
  return found;
}

/**
 * The quote's lines: the patient's ChargeItems that name this case's ServiceRequest (R4 ChargeItem
 * has no search parameter for it), without those a re-quote withdrew (`entered-in-error`). Keyed on
 * the coordination Task's version too: a re-quote writes the lines and the Task's quote in one
 * transaction, so lines read just before it committed are read again once the new quote shows.
 */
export function useChargeItems(
  serviceRequestId: string,
  patient: string | undefined,
  coordinationVersion: string | undefined,
  refetchInterval?: number | false,
) {
  return useQuery({
    queryKey: caseKey(serviceRequestId, 'charges', coordinationVersion ?? ''),
    placeholderData: keepPreviousData,
    queryFn: async () => {
      const items = await searchAll<ChargeItem>(
        `ChargeItem?subject=${encodeURIComponent(patient ?? '')}&_count=100`,
        'ChargeItem',
      );
      return items.filter(
        (item) =>
          item.status !== 'entered-in-error' &&
          (item.supportingInformation ?? []).some((info) => info.reference === `ServiceRequest/${serviceRequestId}`),
      );
    },
    enabled: patient !== undefined && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(patient),
    refetchInterval,
  });
}

/** The case's expect-material Tasks, one per kind planned or arrived. */
export function useExpectMaterialTasks(serviceRequestId: string, refetchInterval?: number | false) {
  return useQuery({
    queryKey: caseKey(serviceRequestId, 'expect-material'),
    queryFn: () => {
      const query = new URLSearchParams({
        code: `${TASK_CODE_SYSTEM}|expect-material`,
        focus: `ServiceRequest/${serviceRequestId}`,
        _count: '50',
      });
      return searchAll<Task>(`Task?${query.toString()}`, 'Task');
    },
    refetchInterval,
  });
}

/** After a move: everything the case page shows of the case is read again (the header's state too). */
export async function refreshCase(queryClient: QueryClient, serviceRequestId: string): Promise<void> {
  await Promise.all([
    queryClient.invalidateQueries({ queryKey: caseKey(serviceRequestId) }),
    queryClient.invalidateQueries({ queryKey: ['coordination', serviceRequestId] }),
  ]);
}

export function useRefreshCase(serviceRequestId: string): () => Promise<void> {
  const queryClient = useQueryClient();
  return () => refreshCase(queryClient, serviceRequestId);
}

/** The hub's `If-Match` for the version a move was made on: a concurrent change fails instead of being overwritten. */
export function ifMatch(task: Task): Record<string, string> {
  return task.meta?.versionId ? { 'if-match': `W/"${task.meta.versionId}"` } : {};
}
