/**
 * The worklist: the cases (coordination Tasks) the person may see, with their state, SLA clock,
 * specialty sought, next action and who holds it, and last change. Filters and order are FHIR search
 * parameters and `_sort` (worklist/search.ts), kept in the app's URL; paged by the hub (`_count` and
 * the Bundle's next link, a keyset cursor).
 *
 * Live: the page shown is fetched again every few seconds (TanStack Query's refetchInterval, only
 * while the tab is visible), so a change made elsewhere shows without a reload. A page is one search
 * of at most `count` cases with their Tasks and people, cut to the elements the rows show (`_elements`).
 */
import { Anchor, Badge, Button, Group, Loader, Stack, Table, Text, Title } from '@mantine/core';
import type { Bundle } from '@medplum/fhirtypes';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { currentSession } from './auth.ts';
import { stateColor, stateLabel } from './case-states.ts';
import { ErrorAlert } from './ErrorAlert.tsx';
import { fhirGet, nextLink } from './fhir.ts';
import { caseStateOf, formatDateTime, idOf } from './format.ts';
import { nextAction } from './worklist/next-action.ts';
import type { NameOf } from './worklist/next-action.ts';
import { worklistRows } from './worklist/rows.ts';
import type { WorklistRow } from './worklist/rows.ts';
import { filtersOf, mineParameter, withFilters, worklistSearch } from './worklist/search.ts';
import type { FilterChange, Person } from './worklist/search.ts';
import { SlaClock } from './worklist/SlaClock.tsx';
import { SortHeader } from './worklist/SortHeader.tsx';
import { specialtyNames } from './worklist/specialties.ts';
import { useNow } from './worklist/use-now.ts';
import { WorklistFilters } from './worklist/WorklistFilters.tsx';

/** How often the page shown is fetched again: a change made elsewhere shows within this and a request. */
const REFRESH_MS = 3_000;

const MINE_LABELS: Record<string, string> = {
  owner: 'Mine (cases I hold)',
  'focus:ServiceRequest.requester': 'Mine (cases I referred)',
  '_has:Task:part-of:owner': 'Mine (cases assigned to me)',
};

function CaseRow({ row, nameOf, me, now }: { row: WorklistRow; nameOf: NameOf; me: string | undefined; now: Date }) {
  const { task } = row;
  const serviceRequest =
    idOf(task.focus?.reference, 'ServiceRequest') ?? idOf(task.basedOn?.[0]?.reference, 'ServiceRequest');
  const caseState = caseStateOf(task);
  const label = task.groupIdentifier?.value ?? serviceRequest ?? task.id;
  const next = nextAction({ coordination: task, children: row.children }, nameOf, me);
  const specialties = specialtyNames(task.performerType);
  return (
    <Table.Tr data-case={serviceRequest}>
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
        <SlaClock task={task} now={now} />
      </Table.Td>
      <Table.Td data-testid="specialty">
        {specialties.length === 0 ? <Text c="dimmed">—</Text> : specialties.join(', ')}
      </Table.Td>
      <Table.Td data-testid="next-action">
        {next === undefined ? (
          <Text c="dimmed">—</Text>
        ) : (
          <>
            {next.action} — <strong>{next.holder}</strong>
          </>
        )}
      </Table.Td>
      <Table.Td>{formatDateTime(task.meta?.lastUpdated)}</Table.Td>
    </Table.Tr>
  );
}

export function Worklist() {
  const [searchParams, setSearchParams] = useSearchParams();
  const filters = filtersOf(searchParams);
  const session = currentSession();
  const person: Person = { role: session?.role, fhirUser: session?.fhirUser };
  const mine = mineParameter(person);
  const now = useNow();
  // A change applies to the filters in the address bar now, not to those this render drew: the router
  // redraws in a transition, so a second click can come before the first one's redraw.
  const change = (update: FilterChange) => {
    const latest = new URLSearchParams(window.location.search);
    const current = filtersOf(latest);
    setSearchParams(withFilters(latest, { ...current, ...(typeof update === 'function' ? update(current) : update) }));
  };

  // The next links followed so far, for "Previous"; a new search (other filters) starts again. The
  // first page is built anew each minute (the deadline filters place now), the others are the hub's.
  const searchKey = JSON.stringify(filters);
  const [paging, setPaging] = useState<{ key: string; links: string[] }>({ key: searchKey, links: [] });
  const links = paging.key === searchKey ? paging.links : [];
  const current = links.at(-1) ?? worklistSearch(filters, person, now);
  const query = useQuery({
    queryKey: ['worklist', current],
    queryFn: () => fhirGet<Bundle>(current),
    placeholderData: keepPreviousData,
    refetchInterval: REFRESH_MS,
  });
  const bundle = query.data;
  const { rows, nameOf } = bundle ? worklistRows(bundle) : { rows: [], nameOf: () => undefined };
  const next = bundle ? nextLink(bundle) : undefined;
  const filtered = filters.state !== '' || filters.deadline !== '' || filters.specialty !== '' || filters.mine;

  return (
    <Stack>
      <Group justify="space-between" align="end" wrap="wrap">
        <Title order={2}>Cases</Title>
        <WorklistFilters
          filters={filters}
          mineLabel={mine === undefined ? undefined : MINE_LABELS[mine[0]]}
          onChange={change}
        />
      </Group>
      {query.error ? <ErrorAlert error={query.error} /> : null}
      {query.isPending ? <Loader aria-label="Loading the cases" /> : null}
      {bundle && !query.isPlaceholderData && rows.length === 0 ? (
        <Text data-testid="worklist-empty">{filtered ? 'No cases match these filters.' : 'No cases.'}</Text>
      ) : null}
      {rows.length > 0 ? (
        <Table.ScrollContainer minWidth={960}>
          <Table striped highlightOnHover aria-busy={query.isFetching} data-testid="worklist">
            <Table.Thead>
              <Table.Tr>
                <SortHeader label="Reference number" sortKey="reference" filters={filters} onChange={change} />
                <Table.Th>State</Table.Th>
                <SortHeader label="Due" sortKey="due" filters={filters} onChange={change} />
                <Table.Th>Specialty sought</Table.Th>
                <Table.Th>Next action</Table.Th>
                <SortHeader label="Last change" sortKey="changed" filters={filters} onChange={change} />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((row: WorklistRow) => (
                <CaseRow key={row.task.id} row={row} nameOf={nameOf} me={person.fhirUser} now={now} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : null}
      <Group>
        <Button
          variant="default"
          disabled={links.length === 0}
          onClick={() => setPaging({ key: searchKey, links: links.slice(0, -1) })}
        >
          Previous page
        </Button>
        <Button
          variant="default"
          disabled={next === undefined}
          onClick={() => next !== undefined && setPaging({ key: searchKey, links: [...links, next] })}
        >
          Next page
        </Button>
      </Group>
    </Stack>
  );
}
