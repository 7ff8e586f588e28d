/**
 * The worklist: the cases (coordination Tasks) the person may see, newest change first, with their
 * state, reference number and the specialist's due date. Paged by the hub (`_count` and the Bundle's
 * next link, a keyset cursor); the state filter is a FHIR search on businessStatus, kept in the URL.
 * The specialist's Task comes with each page (`_revinclude=Task:part-of`).
 */
import { Anchor, Badge, Button, Group, Loader, NativeSelect, Stack, Table, Text, Title } from '@mantine/core';
import type { Bundle, Task } from '@medplum/fhirtypes';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { CASE_STATES, CASE_STATE_SYSTEM, stateColor, stateLabel } from './case-states.ts';
import { ErrorAlert } from './ErrorAlert.tsx';
import { fhirGet, nextLink, searchEntries } from './fhir.ts';
import { caseStateOf, dueClock, formatDate, formatDateTime, idOf } from './format.ts';

const PAGE_SIZE = 20;
const TASK_CODE = 'urn:hub:task-code';
/** A specialist's Task that still runs: offered, accepted, working, or paused for a question. */
const OPEN_OFFER = new Set(['requested', 'received', 'accepted', 'in-progress', 'on-hold', 'ready']);

/** `?count=` in the app's URL sets the page size (1 to 100), e.g. to page through a few cases. */
function pageSizeOf(value: string | null): number {
  const size = Number(value);
  return Number.isInteger(size) && size >= 1 && size <= 100 ? size : PAGE_SIZE;
}

function firstPage(state: string, pageSize: number): string {
  const query = new URLSearchParams({
    code: `${TASK_CODE}|coordination`,
    _count: String(pageSize),
    _sort: '-_lastUpdated',
    _revinclude: 'Task:part-of',
  });
  if (state !== '') {
    query.set('business-status', `${CASE_STATE_SYSTEM}|${state}`);
  }
  return `Task?${query.toString()}`;
}

/** The running specialist-opinion Task of each coordination Task on the page. */
function specialistTasks(bundle: Bundle): Map<string, Task> {
  const byCase = new Map<string, Task>();
  for (const task of searchEntries<Task>(bundle, 'Task')) {
    const isOffer = task.code?.coding?.some(
      (coding) => coding.system === TASK_CODE && coding.code === 'specialist-opinion',
    );
    if (!isOffer || !OPEN_OFFER.has(task.status)) {
      continue;
    }
    for (const parent of task.partOf ?? []) {
      const id = idOf(parent.reference, 'Task');
      if (id !== undefined) {
        byCase.set(id, task);
      }
    }
  }
  return byCase;
}

function Due({ task }: { task: Task | undefined }) {
  const due = task?.restriction?.period?.end;
  if (due === undefined) {
    return <Text c="dimmed">—</Text>;
  }
  const clock = dueClock(due);
  return (
    <Text c={clock.overdue ? 'red' : undefined} fw={clock.overdue ? 700 : undefined} data-overdue={clock.overdue}>
      {formatDate(due)} ·{' '}
      {clock.overdue
        ? `overdue by ${clock.businessDays} business day${clock.businessDays === 1 ? '' : 's'}`
        : `${clock.businessDays} business day${clock.businessDays === 1 ? '' : 's'} left`}
    </Text>
  );
}

export function Worklist() {
  const [searchParams, setSearchParams] = useSearchParams();
  const state = searchParams.get('state') ?? '';
  const first = firstPage(state, pageSizeOf(searchParams.get('count')));
  // The pages seen so far, for "Previous"; the last is the one shown. A new search starts again.
  const [pages, setPages] = useState<{ first: string; urls: string[] }>({ first, urls: [first] });
  const urls = pages.first === first ? pages.urls : [first];
  const current = urls[urls.length - 1] ?? first;
  const query = useQuery({
    queryKey: ['worklist', current],
    queryFn: () => fhirGet<Bundle>(current),
    placeholderData: keepPreviousData,
  });
  const bundle = query.data;
  const cases = bundle
    ? (bundle.entry ?? [])
        .filter((entry) => entry.search?.mode !== 'include')
        .map((entry) => entry.resource)
        .filter((resource): resource is Task => resource?.resourceType === 'Task')
    : [];
  const offers = bundle ? specialistTasks(bundle) : new Map<string, Task>();
  const next = bundle ? nextLink(bundle) : undefined;

  return (
    <Stack>
      <Group justify="space-between" align="end">
        <Title order={2}>Cases</Title>
        <NativeSelect
          label="State"
          value={state}
          onChange={(event) => {
            const next = new URLSearchParams(searchParams);
            if (event.currentTarget.value === '') {
              next.delete('state');
            } else {
              next.set('state', event.currentTarget.value);
            }
            setSearchParams(next);
          }}
          data={[
            { value: '', label: 'All states' },
            ...CASE_STATES.map((code) => ({ value: code, label: stateLabel(code) })),
          ]}
        />
      </Group>
      {query.error ? <ErrorAlert error={query.error} /> : null}
      {query.isPending ? <Loader aria-label="Loading the cases" /> : null}
      {bundle && !query.isPlaceholderData && cases.length === 0 ? (
        <Text data-testid="worklist-empty">No cases{state === '' ? '' : ` in the state “${stateLabel(state)}”`}.</Text>
      ) : null}
      {cases.length > 0 ? (
        <Table striped highlightOnHover aria-busy={query.isFetching} data-testid="worklist">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Reference number</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Specialist due</Table.Th>
              <Table.Th>Last change</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {cases.map((task) => {
              const serviceRequest =
                idOf(task.focus?.reference, 'ServiceRequest') ?? idOf(task.basedOn?.[0]?.reference, 'ServiceRequest');
              const caseState = caseStateOf(task);
              const label = task.groupIdentifier?.value ?? serviceRequest ?? task.id;
              return (
                <Table.Tr key={task.id} data-case={serviceRequest}>
                  <Table.Td>
                    {serviceRequest === undefined ? (
                      label
                    ) : (
                      <Anchor component={Link} to={`/cases/${encodeURIComponent(serviceRequest)}`}>
                        {label}
                      </Anchor>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge color={stateColor(caseState)} variant="light" data-testid="case-state">
                      {caseState === undefined ? 'unknown' : stateLabel(caseState)}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Due task={task.id === undefined ? undefined : offers.get(task.id)} />
                  </Table.Td>
                  <Table.Td>{formatDateTime(task.meta?.lastUpdated)}</Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      ) : null}
      <Group>
        <Button
          variant="default"
          disabled={urls.length < 2}
          onClick={() => setPages({ first, urls: urls.slice(0, -1) })}
        >
          Previous page
        </Button>
        <Button
          variant="default"
          disabled={next === undefined}
          onClick={() => next !== undefined && setPages({ first, urls: [...urls, next] })}
        >
          Next page
        </Button>
      </Group>
    </Stack>
  );
}
