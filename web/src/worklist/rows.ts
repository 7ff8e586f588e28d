/** A worklist page (a search Bundle) as rows: each case's coordination Task, its Tasks, and the people's names. */
import type { Bundle, Reference, Resource, Task } from '@medplum/fhirtypes';
import { formatName } from '../format.ts';
import type { NameOf } from './next-action.ts';
import { TASK_CODE } from './search.ts';

export interface WorklistRow {
  task: Task;
  /** Its Tasks on the page (`_revinclude=Task:part-of`), a follow-up case's coordination Task left out. */
  children: Task[];
}

const isCoordination = (task: Task): boolean =>
  task.code?.coding?.some((coding) => coding.system === TASK_CODE && coding.code === 'coordination') ?? false;

function nameOfResource(resource: Resource): string | undefined {
  switch (resource.resourceType) {
    case 'Practitioner':
      return formatName(resource.name);
    case 'Organization':
      return resource.name;
    case 'PractitionerRole':
      return resource.practitioner?.display;
    default:
      return undefined;
  }
}

export function worklistRows(bundle: Bundle): { rows: WorklistRow[]; nameOf: NameOf } {
  const entries = bundle.entry ?? [];
  const names = new Map<string, string>();
  const included: Task[] = [];
  const matches: Task[] = [];
  for (const entry of entries) {
    const resource = entry.resource;
    if (resource === undefined) {
      continue;
    }
    if (resource.resourceType === 'Task') {
      (entry.search?.mode === 'include' ? included : matches).push(resource);
      continue;
    }
    const name = nameOfResource(resource);
    if (name !== undefined && resource.id !== undefined) {
      names.set(`${resource.resourceType}/${resource.id}`, name);
    }
  }
  const rows = matches.map((task) => ({
    task,
    children: [...matches, ...included].filter(
      (child) =>
        !isCoordination(child) && (child.partOf ?? []).some((parent) => parent.reference === `Task/${task.id ?? ''}`),
    ),
  }));
  const nameOf = (reference: Reference | undefined): string | undefined =>
    reference?.reference === undefined ? reference?.display : (names.get(reference.reference) ?? reference.display);
  return { rows, nameOf };
}
