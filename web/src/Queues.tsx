/**
 * The queues, at /dashboard/queues (coordinators and admins): the hub's jobs per queue and the dead
 * letters, the jobs that ran out of tries, each with a Retry that moves the same job back to waiting
 * (the hub's /admin/queues view; it refuses everyone else). Both refresh every few seconds. Admins
 * may also open Bull Board, the hub's read-only look into every job, in a tab of its own.
 */
import { Button, Code, Group, Loader, Stack, Table, Text, Title, VisuallyHidden } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import type { Session } from './auth.ts';
import { ErrorAlert } from './ErrorAlert.tsx';
import { formatDateTime } from './format.ts';
import { BULL_BOARD_PATH, deadLetters, openBoardSession, queueOverview, retryDeadLetter } from './queues/api.ts';
import type { DeadLetterEntry, QueueCounts } from './queues/api.ts';
import { StaffOnly } from './queues/StaffOnly.tsx';

const REFRESH_MS = 5_000;
const COLUMNS: readonly [keyof Omit<QueueCounts, 'name'>, string][] = [
  ['waiting', 'Waiting'],
  ['active', 'Active'],
  ['delayed', 'Delayed'],
  ['failed', 'Failed'],
  ['deadLettered', 'Dead letters'],
  ['completed', 'Completed'],
];

function CountsTable({ queues }: { queues: QueueCounts[] }) {
  return (
    <Table.ScrollContainer minWidth={560}>
      <Table striped data-testid="queue-counts">
        <Table.Thead>
          <Table.Tr>
            <Table.Th scope="col">Queue</Table.Th>
            {COLUMNS.map(([key, label]) => (
              <Table.Th key={key} scope="col" ta="right">
                {label}
              </Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {queues.map((queue) => (
            <Table.Tr key={queue.name} data-queue={queue.name}>
              <Table.Th scope="row" fw={500}>
                {queue.name}
              </Table.Th>
              {COLUMNS.map(([key]) => (
                <Table.Td
                  key={key}
                  ta="right"
                  data-count={key}
                  c={(key === 'deadLettered' || key === 'failed') && queue[key] > 0 ? 'red.9' : undefined}
                >
                  {queue[key]}
                </Table.Td>
              ))}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

/** A dead letter's job data: ids only (the hub refuses anything else in a job). */
function JobIds({ data }: { data: Record<string, unknown> | null }) {
  if (data === null) {
    return <Text size="sm">(its data did not pass the queue's check, and was not kept)</Text>;
  }
  return (
    <Stack gap={0}>
      {Object.entries(data).map(([key, value]) => (
        <Text size="sm" key={key}>
          {key}: <Code>{typeof value === 'string' ? value : JSON.stringify(value)}</Code>
        </Text>
      ))}
    </Stack>
  );
}

function DeadLetterRow({ entry }: { entry: DeadLetterEntry }) {
  const queryClient = useQueryClient();
  const retry = useMutation({
    mutationFn: () => retryDeadLetter(entry.id),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['queues'] }),
  });
  return (
    <Table.Tr data-dead-letter={entry.id}>
      <Table.Td>{entry.queue}</Table.Td>
      <Table.Td>
        <Text size="sm">
          {entry.jobName} <Code>{entry.jobId}</Code>
        </Text>
        <JobIds data={entry.data} />
      </Table.Td>
      <Table.Td ta="right">{entry.attempts}</Table.Td>
      <Table.Td>
        <Text size="sm" data-testid="dead-letter-error">
          {entry.error}
        </Text>
      </Table.Td>
      <Table.Td>{formatDateTime(entry.failedAt)}</Table.Td>
      <Table.Td>
        <Stack gap={4}>
          <Button
            size="compact-sm"
            onClick={() => retry.mutate()}
            loading={retry.isPending}
            aria-label={`Retry job ${entry.jobId} of ${entry.queue}`}
          >
            Retry
          </Button>
          {retry.error ? <ErrorAlert error={retry.error} title="Not retried" /> : null}
        </Stack>
      </Table.Td>
    </Table.Tr>
  );
}

function DeadLetters() {
  const entries = useQuery({ queryKey: ['queues', 'dead-letter'], queryFn: deadLetters, refetchInterval: REFRESH_MS });
  if (entries.error) {
    return <ErrorAlert error={entries.error} />;
  }
  if (entries.data === undefined) {
    return <Loader size="sm" aria-label="Loading the dead letters" />;
  }
  if (entries.data.length === 0) {
    return (
      <Text data-testid="dead-letters-empty">No dead letters: every job that failed for good has been retried.</Text>
    );
  }
  return (
    <Table.ScrollContainer minWidth={720}>
      <Table data-testid="dead-letters" verticalSpacing="xs">
        <Table.Thead>
          <Table.Tr>
            <Table.Th scope="col">Queue</Table.Th>
            <Table.Th scope="col">Job</Table.Th>
            <Table.Th scope="col" ta="right">
              Tries
            </Table.Th>
            <Table.Th scope="col">Error</Table.Th>
            <Table.Th scope="col">Failed</Table.Th>
            <Table.Th scope="col">
              <VisuallyHidden>Action</VisuallyHidden>
            </Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {entries.data.map((entry) => (
            <DeadLetterRow key={entry.id} entry={entry} />
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

function BullBoardButton() {
  const [error, setError] = useState<unknown>(undefined);
  const open = async (): Promise<void> => {
    setError(undefined);
    try {
      await openBoardSession();
      window.open(BULL_BOARD_PATH, '_blank', 'noopener');
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Stack gap={4} align="end">
      <Button variant="default" onClick={() => void open()}>
        Open Bull Board
      </Button>
      {error === undefined ? null : <ErrorAlert error={error} title="Bull Board could not be opened" />}
    </Stack>
  );
}

function QueuesScreen({ session }: { session: Session }) {
  const overview = useQuery({ queryKey: ['queues', 'overview'], queryFn: queueOverview, refetchInterval: REFRESH_MS });
  return (
    <Stack>
      <Group justify="space-between" align="end">
        <Title order={2}>Queues</Title>
        {session.role === 'admin' ? <BullBoardButton /> : null}
      </Group>
      {overview.error ? <ErrorAlert error={overview.error} /> : null}
      {overview.data === undefined && !overview.error ? <Loader aria-label="Loading the queues" /> : null}
      {overview.data ? <CountsTable queues={overview.data.queues} /> : null}
      <Title order={3} size="h4">
        Dead letters{overview.data ? ` (${overview.data.deadLetter.total})` : ''}
      </Title>
      <Text size="sm">
        A job that ran out of tries waits here. Put right what made it fail (the error says what), then retry it: the
        same job runs again, once.
      </Text>
      <DeadLetters />
    </Stack>
  );
}

export function Queues({ session }: { session: Session }) {
  return (
    <StaffOnly session={session} screen="Queues">
      <QueuesScreen session={session} />
    </StaffOnly>
  );
}
