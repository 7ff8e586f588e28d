/**
 * "My tasks", the home page of specialists, radiologists and pathologists: the Tasks the hub has
 * given them (offers of a second opinion, pre-reviews), open ones first with their due dates and the
 * business days left; an offer is accepted or declined here. Each Task comes with its case's
 * coordination Task (`_include=Task:part-of`) for the reference number and the state.
 */
import { Alert, Anchor, Badge, Card, Group, Loader, Stack, Table, Text, Title } from '@mantine/core';
import type { Bundle, Task } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import type { Session } from '../auth.ts';
import { stateColor, stateLabel } from '../case-states.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, searchEntries } from '../fhir.ts';
import { caseStateOf, formatDateTime, idOf } from '../format.ts';
import { OPEN_TASK_STATUSES, REVIEW_TASK_CODES, TASK_CODE_SYSTEM, caseIdOf, taskCodeOf, taskLabel } from './codes.ts';
import { DueDate } from './DueDate.tsx';
import { OfferActions } from './OfferActions.tsx';
import { practitionerOf } from './roles.ts';
import './reviewer.css';

const CLOSED_STATUSES = ['completed', 'rejected', 'cancelled', 'failed'];

function tasksQuery(owner: string, statuses: readonly string[], count: number): string {
  const query = new URLSearchParams({
    owner,
    code: REVIEW_TASK_CODES.map((code) => `${TASK_CODE_SYSTEM}|${code}`).join(','),
    status: statuses.join(','),
    _sort: '-_lastUpdated',
    _count: String(count),
    _include: 'Task:part-of',
  });
  return `Task?${query.toString()}`;
}

/** The person's Tasks on the page and, by id, the coordination Tasks they are part of. */
function split(bundle: Bundle): { tasks: Task[]; coordination: Map<string, Task> } {
  const entries = bundle.entry ?? [];
  const tasks = entries
    .filter((entry) => entry.search?.mode !== 'include')
    .map((entry) => entry.resource)
    .filter((resource): resource is Task => resource?.resourceType === 'Task');
  const coordination = new Map(
    searchEntries<Task>(bundle, 'Task')
      .filter((task) => taskCodeOf(task) === 'coordination' && task.id !== undefined)
      .map((task) => [task.id as string, task]),
  );
  return { tasks, coordination };
}

export function statusLabel(task: Task): string {
  const offer = taskCodeOf(task) === 'specialist-opinion';
  switch (task.status) {
    case 'requested':
      return offer ? 'Offered to you' : 'Assigned to you';
    case 'accepted':
      return 'Accepted';
    case 'in-progress':
      return 'In progress';
    case 'on-hold':
      return 'On hold: waiting for the physician’s answer';
    case 'completed':
      return 'Done';
    case 'rejected':
      return 'Declined';
    case 'cancelled':
      return 'Withdrawn';
    default:
      return task.status;
  }
}

function TaskRows({ tasks, coordination, open }: { tasks: Task[]; coordination: Map<string, Task>; open: boolean }) {
  return (
    <div className="table-scroll">
      <Table striped data-testid={open ? 'my-open-tasks' : 'my-closed-tasks'}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Case</Table.Th>
            <Table.Th>Task</Table.Th>
            <Table.Th>Case state</Table.Th>
            <Table.Th>{open ? 'Due' : 'Last change'}</Table.Th>
            {open ? <Table.Th>Your answer</Table.Th> : null}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {tasks.map((task) => {
            const caseId = caseIdOf(task);
            const parent = task.partOf
              ?.map((reference) => coordination.get(idOf(reference.reference, 'Task') ?? ''))
              .find((found) => found !== undefined);
            const label = parent?.groupIdentifier?.value ?? task.groupIdentifier?.value ?? caseId ?? task.id ?? '';
            const state = caseStateOf(parent);
            const isOffer = taskCodeOf(task) === 'specialist-opinion' && task.status === 'requested';
            return (
              <Table.Tr key={task.id} data-case={caseId} data-task={task.id}>
                <Table.Td>
                  {caseId === undefined ? (
                    label
                  ) : (
                    <Anchor component={Link} to={`/cases/${encodeURIComponent(caseId)}`}>
                      {label}
                    </Anchor>
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="sm" fw={600}>
                    {taskLabel(taskCodeOf(task))}
                  </Text>
                  <Text size="sm" data-testid="task-status">
                    {statusLabel(task)}
                  </Text>
                </Table.Td>
                <Table.Td>
                  {state === undefined ? (
                    <Text c="dimmed">—</Text>
                  ) : (
                    <Badge color={stateColor(state)} variant="light">
                      {stateLabel(state)}
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  {open ? <DueDate due={task.restriction?.period?.end} /> : formatDateTime(task.meta?.lastUpdated)}
                </Table.Td>
                {open ? (
                  <Table.Td>
                    {isOffer ? (
                      <OfferActions task={task} caseLabel={label} />
                    ) : caseId === undefined ? null : (
                      <Anchor component={Link} to={`/cases/${encodeURIComponent(caseId)}`}>
                        Open the case
                      </Anchor>
                    )}
                  </Table.Td>
                ) : null}
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </div>
  );
}

export function MyTasks({ session }: { session: Session }) {
  const me = practitionerOf(session);
  const open = useQuery({
    queryKey: ['my-tasks', 'open', me],
    queryFn: () => fhirGet<Bundle>(tasksQuery(me ?? '', OPEN_TASK_STATUSES, 100)),
    enabled: me !== undefined,
  });
  const closed = useQuery({
    queryKey: ['my-tasks', 'closed', me],
    queryFn: () => fhirGet<Bundle>(tasksQuery(me ?? '', CLOSED_STATUSES, 10)),
    enabled: me !== undefined,
  });
  if (me === undefined) {
    return (
      <Alert color="yellow" title="Your account is not linked to a practitioner" role="alert">
        Cases are offered and assigned to practitioners. Ask an administrator to link your account (
        <code>hub user add … --practitioner</code>).
      </Alert>
    );
  }
  const openTasks = open.data ? split(open.data) : undefined;
  const closedTasks = closed.data ? split(closed.data) : undefined;
  return (
    <Stack>
      <Title order={2}>My tasks</Title>
      {open.error ? <ErrorAlert error={open.error} title="Your tasks could not be read" /> : null}
      {open.isPending ? <Loader aria-label="Loading your tasks" /> : null}
      {openTasks && openTasks.tasks.length === 0 ? (
        <Text data-testid="my-tasks-empty">Nothing is waiting for you.</Text>
      ) : null}
      {openTasks && openTasks.tasks.length > 0 ? (
        <TaskRows tasks={openTasks.tasks} coordination={openTasks.coordination} open />
      ) : null}
      <Card withBorder padding="md">
        <Group justify="space-between" mb="xs">
          <Title order={3} size="h4">
            Recently finished
          </Title>
        </Group>
        {closed.error ? <ErrorAlert error={closed.error} title="Your finished tasks could not be read" /> : null}
        {closedTasks && closedTasks.tasks.length === 0 ? <Text c="dimmed">None yet.</Text> : null}
        {closedTasks && closedTasks.tasks.length > 0 ? (
          <TaskRows tasks={closedTasks.tasks} coordination={closedTasks.coordination} open={false} />
        ) : null}
      </Card>
    </Stack>
  );
}
