/**
 * Search parameters of the hub's own, beside the R4 ones (definitions.ts indexes them with the R4
 * bundle, so the indexer, search, `_sort` and the CapabilityStatement treat them alike).
 *
 * R4 defines no search parameter on Task.restriction.period, where the hub keeps a Task's due date
 * (the specialist's and the coordinators' Tasks, and on the coordination Task the case's running
 * deadline, docs/case-workflow.md): `due` makes "overdue", "due this week" and "soonest first" FHIR
 * searches. It is indexed as any parameter, so a search on it is bound by the same access condition.
 */
import type { SearchParameter } from '@medplum/fhirtypes';

export const HUB_SEARCH_PARAMETERS: readonly SearchParameter[] = [
  {
    resourceType: 'SearchParameter',
    id: 'Task-due',
    url: 'urn:hub:search-parameter:Task-due',
    name: 'due',
    status: 'active',
    description:
      'When the Task is due: Task.restriction.period.end. On the coordination Task, the deadline the case is held to now.',
    code: 'due',
    base: ['Task'],
    type: 'date',
    expression: 'Task.restriction.period.end',
  },
];
