/**
 * The case's review Tasks: the radiology and pathology pre-reviews and the offers to specialists, each
 * with its status, who has it and when it is due, and for the specialist the ranking that proposed
 * them (the note the hub's matching, or a coordinator's reassignment, wrote on the offer). A
 * coordinator assigns and reassigns them (Tasks-assign.tsx); nobody else gets the buttons, and the hub
 * refuses or undoes anyone else's write all the same.
 */
import { Alert, Badge, Button, Card, Loader, Stack, Table, Text, Title } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { caseStateOf, dueClock, formatDate } from '../format.ts';
import { AssignForm } from './Tasks-assign.tsx';
import { RankingExplanation, useRefusalExplanation } from './Tasks-ranking.tsx';
import {
  CASE_REASON_SYSTEM,
  OPEN_STATUSES,
  isReviewTask,
  mayCoordinate,
  offersOf,
  reasonText,
  taskCodeOf,
  useCaseTasks,
  usePractitionerNames,
} from './Tasks-data.ts';

const LABELS: Record<string, string> = {
  'pre-review-radiology': 'Radiology pre-review',
  'pre-review-pathology': 'Pathology pre-review',
  'specialist-opinion': 'Specialist’s opinion',
};
/** States in which a coordinator may reassign the specialist (the hub refuses it in any other). */
const REASSIGNABLE_STATES = ['matching', 'specialist-review'];

function statusColor(status: Task['status']): string {
  if (status === 'completed') {
    return 'green';
  }
  return OPEN_STATUSES.includes(status) ? 'blue' : 'gray';
}

function Due({ task }: { task: Task }) {
  const due = task.restriction?.period?.end;
  if (due === undefined || !OPEN_STATUSES.includes(task.status)) {
    return <>{due ? formatDate(due) : '—'}</>;
  }
  const clock = dueClock(due);
  return (
    <>
      {formatDate(due)}{' '}
      <Text span size="sm" c={clock.overdue ? 'red.8' : 'dimmed'}>
        ({clock.overdue ? 'overdue by ' : ''}
        {clock.businessDays} business day{clock.businessDays === 1 ? '' : 's'}
        {clock.overdue ? '' : ' left'})
      </Text>
    </>
  );
}

/**
 * The reason the hub wrote on the coordination Task about the specialist: nobody left, or a refused
 * reassignment. The reason says only that a reassignment was refused when why is about the specialist
 * named; a coordinator (`offerId` given) reads why in the Provenance of the offer.
 */
function MatchingReason({ coordination, offerId }: { coordination: Task | undefined; offerId: string | undefined }) {
  const codes = coordination?.statusReason?.coding?.filter((coding) => coding.system === CASE_REASON_SYSTEM) ?? [];
  const text = coordination?.statusReason?.text;
  const refused =
    text?.startsWith('The reassignment') === true && codes.some((coding) => coding.code === 'move-refused');
  const why = useRefusalExplanation(refused ? offerId : undefined, coordination?.meta?.versionId);
  if (text === undefined) {
    return null;
  }
  if (codes.some((coding) => coding.code === 'no-specialist')) {
    return (
      <Alert color="yellow" title="No specialist left to offer the case to" data-testid="matching-reason">
        {text}
      </Alert>
    );
  }
  if (refused) {
    // The Provenance's text begins as the reason does: it is the same refusal, with why.
    const detail = why.data?.startsWith(text.replace(/\.$/, '')) ? why.data : undefined;
    return (
      <Alert color="red" title="The hub undid a reassignment" data-testid="matching-reason">
        {detail ?? text}
        {why.error ? <ErrorAlert error={why.error} title="Why it was refused could not be read" /> : null}
      </Alert>
    );
  }
  return null;
}

export interface CaseTasksProps {
  serviceRequestId: string;
  coordination: Task | undefined;
}

export function CaseTasks({ serviceRequestId, coordination }: CaseTasksProps) {
  const tasks = useCaseTasks(serviceRequestId, coordination?.id);
  const reviewTasks = (tasks.data ?? []).filter(isReviewTask);
  const nameOf = usePractitionerNames(reviewTasks.map((task) => task.owner));
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const coordinates = mayCoordinate();
  const state = caseStateOf(coordination);
  if (tasks.error) {
    return <ErrorAlert error={tasks.error} title="The case’s Tasks could not be read" />;
  }
  if (tasks.isLoading) {
    return <Loader size="sm" aria-label="Loading the Tasks" />;
  }
  const preReviews = reviewTasks.filter((task) => taskCodeOf(task) !== 'specialist-opinion');
  const offers = offersOf(reviewTasks);
  const currentOffer = offers.at(-1);
  const rows = [...preReviews, ...offers];
  /** What a coordinator may do with a Task: assign or reassign an open one; offer the declined last offer again. */
  const action = (task: Task): { verb: string; reopen: boolean } | undefined => {
    if (!coordinates || task.status === 'completed') {
      return undefined;
    }
    if (taskCodeOf(task) !== 'specialist-opinion') {
      return OPEN_STATUSES.includes(task.status)
        ? { verb: task.owner ? 'Reassign' : 'Assign', reopen: false }
        : undefined;
    }
    if (task !== currentOffer || !REASSIGNABLE_STATES.includes(state ?? '')) {
      return undefined;
    }
    if (OPEN_STATUSES.includes(task.status)) {
      return { verb: 'Reassign', reopen: false };
    }
    return task.status === 'rejected' ? { verb: 'Offer to another specialist', reopen: true } : undefined;
  };
  const editingTask = rows.find((task) => task.id === editing);
  const editingAction = editingTask && action(editingTask);
  return (
    <Stack gap="sm" data-testid="case-tasks">
      <MatchingReason coordination={coordination} offerId={coordinates ? currentOffer?.id : undefined} />
      {rows.length === 0 ? (
        <Text c="dimmed">No pre-review or specialist Task yet.</Text>
      ) : (
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Task</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Who</Table.Th>
              <Table.Th>Due</Table.Th>
              {coordinates ? <Table.Th>Coordinator</Table.Th> : null}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((task) => {
              const move = action(task);
              const label = LABELS[taskCodeOf(task) ?? ''] ?? 'Task';
              const reason = reasonText(task);
              return (
                <Table.Tr key={task.id} data-task={task.id} data-code={taskCodeOf(task)}>
                  <Table.Td>
                    {label}
                    {reason ? (
                      <Text size="sm" c="dimmed">
                        {reason}
                      </Text>
                    ) : null}
                  </Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={statusColor(task.status)} data-testid="task-status">
                      {task.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td data-testid="task-owner">{task.owner ? nameOf(task.owner) : 'Unassigned'}</Table.Td>
                  <Table.Td>
                    <Due task={task} />
                  </Table.Td>
                  {coordinates ? (
                    <Table.Td>
                      {move ? (
                        <Button
                          size="xs"
                          variant="light"
                          aria-label={`${move.verb}: ${label}`}
                          onClick={() => setEditing(task.id)}
                        >
                          {move.verb}
                        </Button>
                      ) : null}
                    </Table.Td>
                  ) : null}
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      )}
      {editingTask && editingAction ? (
        <Card withBorder padding="sm">
          <AssignForm
            key={`${editingTask.id ?? ''}@${editingTask.meta?.versionId ?? ''}`}
            serviceRequestId={serviceRequestId}
            task={editingTask}
            label={`the ${(LABELS[taskCodeOf(editingTask) ?? ''] ?? 'Task').toLowerCase()}`}
            reopen={editingAction.reopen}
            onDone={() => setEditing(undefined)}
          />
        </Card>
      ) : null}
      {/* The ranking names other specialists and why they were passed over: the coordinators' reading. */}
      {coordinates && currentOffer?.id ? (
        <RankingExplanation
          key={currentOffer.id}
          target={`Task/${currentOffer.id}`}
          title={`Why ${currentOffer.owner ? nameOf(currentOffer.owner) : 'this specialist'} was proposed`}
        />
      ) : null}
      {coordinates && coordination?.id && !currentOffer ? (
        <RankingExplanation target={`Task/${coordination.id}`} title="Why no specialist was found" />
      ) : null}
    </Stack>
  );
}

/** The section's card, as the case page lays out its sections. */
export function CaseTasksSection(props: CaseTasksProps) {
  return (
    <Card withBorder padding="md">
      <Title order={3} size="h4" mb="xs">
        Pre-review and specialist Tasks
      </Title>
      <CaseTasks {...props} />
    </Card>
  );
}
