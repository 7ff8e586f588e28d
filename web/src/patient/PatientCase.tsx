/**
 * The patient's case: where their request is, in plain words (plain-words.ts), and the opinion once
 * their physician has opened it (the case report-accessed). Before that the page asks the hub for
 * nothing of the opinion, and the hub would answer 404 if it did. No staff controls, no notes meant
 * for the staff: what a patient may read and nothing more.
 */
import { Alert, Card, Loader, Stack, Text, Title } from '@mantine/core';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { formatDateTime } from '../format.ts';
import { opinionOutputs, useCoordination, useQuestions, useServiceRequest } from '../physician/case-data.ts';
import { OpinionLetter } from '../physician/OpinionLetter.tsx';
import '../physician/physician.css';
import { opinionIsTheirs, plainState } from './plain-words.ts';

export function PatientCase({ serviceRequestId }: { serviceRequestId: string }) {
  const request = useServiceRequest(serviceRequestId);
  const coordination = useCoordination(serviceRequestId, request.isSuccess);
  const questions = useQuestions(request.data);
  if (request.error) {
    return <ErrorAlert error={request.error} title="Your request could not be read" />;
  }
  if (request.isPending || coordination.isPending) {
    return <Loader role="status" aria-label="Loading your request" />;
  }
  const { task, state } = coordination;
  const { reportId } = opinionOutputs(task);
  return (
    <Stack data-testid="patient-case" data-case={serviceRequestId}>
      <Title order={2}>Your second opinion</Title>
      {task?.groupIdentifier?.value ? (
        <Text size="sm" c="dimmed">
          Reference number {task.groupIdentifier.value}
        </Text>
      ) : null}
      {coordination.error ? (
        <ErrorAlert error={coordination.error} title="Where your request is could not be read" />
      ) : null}
      <Alert
        color={opinionIsTheirs(state) ? 'green' : 'blue'}
        title="Where your request is"
        data-testid="patient-state"
      >
        {plainState(state)}
      </Alert>
      {task?.meta?.lastUpdated ? (
        <Text size="sm" c="dimmed">
          Last change: {formatDateTime(task.meta.lastUpdated)}
        </Text>
      ) : null}
      {opinionIsTheirs(state) && reportId !== undefined ? (
        <Card withBorder padding="md">
          <Title order={3} size="h4" mb="xs">
            Your opinion
          </Title>
          <OpinionLetter
            reportId={reportId}
            questions={questions.questions}
            notYet="Your opinion is not available to you yet. Please look again later."
          />
        </Card>
      ) : null}
    </Stack>
  );
}
