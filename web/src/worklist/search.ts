/**
 * The worklist's filters and sort as the app's URL keeps them, and the FHIR search on the coordination
 * Tasks they make: every filter and the order are the hub's (search parameters and `_sort`), so a
 * page holds what the hub's access policy lets the person see and nothing is filtered here.
 *
 * The case's deadline is its coordination Task's `restriction.period.end` (search parameter `due`,
 * kept by the hub), the specialties sought its `performerType` (`performer`).
 */
import { CASE_STATE_SYSTEM } from '../case-states.ts';

export const TASK_CODE = 'urn:hub:task-code';
export const NUCC_SYSTEM = 'http://nucc.org/provider-taxonomy';

export const SORT_KEYS = ['changed', 'due', 'reference'] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export const DEADLINE_FILTERS = ['overdue', 'week'] as const;
export type DeadlineFilter = (typeof DEADLINE_FILTERS)[number];

export interface WorklistFilters {
  /** A case state (urn:hub:case-state), or '' for all. */
  state: string;
  deadline: DeadlineFilter | '';
  /** A NUCC code of a specialty sought, or '' for all. */
  specialty: string;
  mine: boolean;
  sort: SortKey;
  descending: boolean;
  pageSize: number;
}

/** A change of some filters, or one computed from the filters as they stand when it is applied. */
export type FilterChange = Partial<WorklistFilters> | ((latest: WorklistFilters) => Partial<WorklistFilters>);

const DEFAULT_PAGE_SIZE = 20;
/** Each key's first direction when chosen: the newest change, the nearest deadline, the lowest number. */
export const FIRST_DESCENDING: Record<SortKey, boolean> = { changed: true, due: false, reference: false };
const SORT_PARAMETER: Record<SortKey, string> = {
  changed: '_lastUpdated',
  due: 'due',
  reference: 'group-identifier',
};

const oneOf = <T extends string>(values: readonly T[], value: string | null): T | undefined =>
  values.find((candidate) => candidate === value);

/** `?count=` sets the page size (1 to 100), e.g. to page through a few cases. */
function pageSizeOf(value: string | null): number {
  const size = Number(value);
  return Number.isInteger(size) && size >= 1 && size <= 100 ? size : DEFAULT_PAGE_SIZE;
}

/** The filters in the app's URL: `state`, `due` (overdue, week), `specialty`, `mine=1`, `sort`, `order`, `count`. */
export function filtersOf(params: URLSearchParams): WorklistFilters {
  const sort = oneOf(SORT_KEYS, params.get('sort')) ?? 'changed';
  const order = params.get('order');
  return {
    state: params.get('state') ?? '',
    deadline: oneOf(DEADLINE_FILTERS, params.get('due')) ?? '',
    specialty: params.get('specialty') ?? '',
    mine: params.get('mine') === '1',
    sort,
    descending: order === 'asc' ? false : order === 'desc' ? true : FIRST_DESCENDING[sort],
    pageSize: pageSizeOf(params.get('count')),
  };
}

/** `params` with the filters written in (defaults left out), other parameters kept. */
export function withFilters(params: URLSearchParams, filters: WorklistFilters): URLSearchParams {
  const next = new URLSearchParams(params);
  const put = (name: string, value: string, absent: string) =>
    value === absent ? next.delete(name) : next.set(name, value);
  put('state', filters.state, '');
  put('due', filters.deadline, '');
  put('specialty', filters.specialty, '');
  put('mine', filters.mine ? '1' : '', '');
  put('sort', filters.sort, 'changed');
  put('order', filters.descending === FIRST_DESCENDING[filters.sort] ? '' : filters.descending ? 'desc' : 'asc', '');
  put('count', filters.pageSize === DEFAULT_PAGE_SIZE ? '' : String(filters.pageSize), '');
  return next;
}

/** Who the signed-in person is, for "mine". */
export interface Person {
  role: string | undefined;
  /** `Practitioner/…` (the token's fhirUser claim). */
  fhirUser: string | undefined;
}

/**
 * What "mine" means for a role, as a search on the coordination Task; undefined where it means nothing
 * more than every case the person sees (a patient) or the person is linked to no Practitioner.
 * - coordinators and admins: the cases they hold, the coordination Task's `owner`;
 * - a referring physician: the cases they referred themselves (the case's ServiceRequest names them
 *   as its `requester`), not a colleague's that their organisation or a coordinator shares with them;
 * - a specialist, radiologist or pathologist: the cases where a Task is theirs (an offer, a pre-review).
 */
export function mineParameter(person: Person): [string, string] | undefined {
  const me = person.fhirUser;
  if (me === undefined || !/^Practitioner\/[A-Za-z0-9\-.]{1,64}$/.test(me)) {
    return undefined;
  }
  switch (person.role) {
    case 'coordinator':
    case 'admin':
      return ['owner', me];
    case 'referring-physician':
      return ['focus:ServiceRequest.requester', me];
    case 'specialist':
    case 'radiologist':
    case 'pathologist':
      return ['_has:Task:part-of:owner', me];
    default:
      return undefined;
  }
}

/** Monday 00:00 after `now`, in the browser's time zone: the end of "this week". */
export function endOfWeek(now: Date): Date {
  const end = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  // Sunday (0) is one day from Monday, Monday itself seven.
  end.setDate(end.getDate() + ((8 - end.getDay()) % 7 || 7));
  return end;
}

/**
 * The first page's search. `now` places "overdue" (due before now, the clock running: a case waiting
 * for the physician's answer has its clock stopped, and its due date moves when answered) and "due
 * this week" (from now to the end of Sunday).
 */
export function worklistSearch(filters: WorklistFilters, person: Person, now: Date): string {
  const query = new URLSearchParams({
    code: `${TASK_CODE}|coordination`,
    _count: String(filters.pageSize),
    _sort: `${filters.descending ? '-' : ''}${SORT_PARAMETER[filters.sort]}`,
  });
  if (filters.state !== '') {
    query.set('business-status', `${CASE_STATE_SYSTEM}|${filters.state}`);
  }
  if (filters.deadline === 'overdue') {
    query.append('due', `lt${now.toISOString()}`);
    query.append('business-status:not', `${CASE_STATE_SYSTEM}|awaiting-information`);
  } else if (filters.deadline === 'week') {
    query.append('due', `ge${now.toISOString()}`);
    query.append('due', `lt${endOfWeek(now).toISOString()}`);
  }
  if (filters.specialty !== '') {
    query.set('performer', `${NUCC_SYSTEM}|${filters.specialty}`);
  }
  const mine = filters.mine ? mineParameter(person) : undefined;
  if (mine !== undefined) {
    query.set(...mine);
  }
  // The Tasks of each case (the offer, pre-reviews, approval, materials) and the people holding them,
  // for the next action; only the elements the row shows, so that polling the page stays small.
  query.append('_revinclude', 'Task:part-of');
  query.append('_include', 'Task:owner');
  query.append('_include', 'Task:requester');
  query.append('_include:iterate', 'Task:owner');
  query.set('_elements', WORKLIST_ELEMENTS.join(','));
  return `Task?${query.toString()}`;
}

/** What the rows read: the Tasks' states, deadlines, holders and materials, the people's names. */
const WORKLIST_ELEMENTS = [
  'status',
  'businessStatus',
  'statusReason',
  'groupIdentifier',
  'code',
  'focus',
  'basedOn',
  'partOf',
  'owner',
  'requester',
  'restriction',
  'performerType',
  'input',
  'name',
];
