/**
 * The specialist's questions to the referring physician while writing (docs/case-workflow.md, "The
 * opinion", step 2): a Communication based on the case and part of its coordination Task, to the
 * physician. The hub then holds the case in `awaiting-information` (the specialist's clock stops),
 * e-mails the physician, and resumes the review once every question has its answer (a Communication
 * `inResponseTo` it), moving the due date by the days it waited. Shown here with the answers.
 */
import { Badge, Button, Card, Group, Loader, Stack, Text, Textarea, Title } from '@mantine/core';
import type { Bundle, Communication, ServiceRequest, Task } from '@medplum/fhirtypes';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest, searchEntries } from '../fhir.ts';
import { formatDateTime, idOf } from '../format.ts';
import { caseKeys } from './case-data.ts';

const enc = encodeURIComponent;
/** How often an open question's answer is looked for. */
const ANSWER_POLL_MS = 5000;

function textOf(communication: Communication): string {
  return (communication.payload ?? [])
    .map((payload) => payload.contentString)
    .filter((text): text is string => typeof text === 'string')
    .join('\n\n');
}

const answersTo = (question: Communication, all: readonly Communication[]): Communication[] =>
  all.filter((candidate) =>
    (candidate.inResponseTo ?? []).some((reference) => idOf(reference.reference, 'Communication') === question.id),
  );

export interface QuestionsBackProps {
  caseId: string;
  request: ServiceRequest;
  coordination: Task | undefined;
  me: string;
  /** While the case is with the specialist: asking is possible. */
  canAsk: boolean;
}

export function QuestionsBack({ caseId, request, coordination, me, canAsk }: QuestionsBackProps) {
  const queryClient = useQueryClient();
  const [text, setText] = useState('');
  const key = [...caseKeys.all(caseId), 'questions-back'];
  const messages = useQuery({
    queryKey: key,
    queryFn: async () =>
      searchEntries<Communication>(
        await fhirGet<Bundle>(`Communication?based-on=${enc(`ServiceRequest/${caseId}`)}&_count=200`),
        'Communication',
      ),
    // While a question is open, look for the answer now and then.
    refetchInterval: (query) =>
      (query.state.data ?? []).some(
        (message) => (message.partOf ?? []).length > 0 && answersTo(message, query.state.data ?? []).length === 0,
      )
        ? ANSWER_POLL_MS
        : false,
  });
  // The hub moves the case when a question is asked and when the last is answered: read it again then.
  const seen = messages.dataUpdatedAt;
  useEffect(() => {
    if (seen > 0) {
      void queryClient.invalidateQueries({ queryKey: caseKeys.coordination(caseId) });
    }
  }, [seen, caseId, queryClient]);
  const ask = useMutation({
    mutationFn: () =>
      fhirRequest<Communication>('POST', 'Communication', {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: `ServiceRequest/${caseId}` }],
        partOf: [{ reference: `Task/${coordination?.id ?? ''}` }],
        ...(request.requester ? { recipient: [request.requester] } : {}),
        sender: { reference: me },
        sent: new Date().toISOString(),
        payload: [{ contentString: text.trim() }],
      } satisfies Communication),
    onSuccess: async () => {
      setText('');
      await queryClient.invalidateQueries({ queryKey: key });
      await queryClient.invalidateQueries({ queryKey: caseKeys.coordination(caseId) });
    },
  });
  const all = messages.data ?? [];
  const questions = all.filter(
    (message) =>
      (message.inResponseTo ?? []).length === 0 &&
      (message.partOf ?? []).some((reference) => idOf(reference.reference, 'Task') === coordination?.id) &&
      message.sender?.reference === me,
  );
  return (
    <Card withBorder padding="md" data-testid="questions-back">
      <Title order={3} size="h4" mb="xs">
        Questions to the referring physician
      </Title>
      {messages.error ? <ErrorAlert error={messages.error} title="The questions could not be read" /> : null}
      {messages.isPending ? <Loader size="sm" aria-label="Loading your questions" /> : null}
      <Stack gap="sm">
        {questions.map((question) => {
          const answers = answersTo(question, all);
          return (
            <Stack key={question.id} gap={4} data-testid="question-back">
              <Group gap="xs">
                <Text size="sm" c="dimmed">
                  You asked, {formatDateTime(question.sent ?? question.meta?.lastUpdated)}
                </Text>
                <Badge color={answers.length > 0 ? 'green' : 'yellow'} variant="light">
                  {answers.length > 0 ? 'Answered' : 'Waiting for the answer'}
                </Badge>
              </Group>
              <Text size="sm" className="letter-section-question">
                {textOf(question)}
              </Text>
              {answers.map((answer) => (
                <Text key={answer.id} size="sm" className="letter-section-question" data-testid="answer-back">
                  <strong>Answer, {formatDateTime(answer.sent ?? answer.meta?.lastUpdated)}:</strong> {textOf(answer)}
                </Text>
              ))}
            </Stack>
          );
        })}
        {canAsk ? (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              if (text.trim() !== '') {
                ask.mutate();
              }
            }}
          >
            <Stack gap="xs">
              <Textarea
                label="Ask the referring physician"
                description="The case waits for the answer, and your due date moves by the days it takes."
                autosize
                minRows={2}
                value={text}
                onChange={(event) => setText(event.currentTarget.value)}
              />
              {ask.error ? <ErrorAlert error={ask.error} title="The question was not sent" /> : null}
              <div>
                <Button type="submit" variant="default" loading={ask.isPending} disabled={text.trim() === ''}>
                  Send the question
                </Button>
              </div>
            </Stack>
          </form>
        ) : null}
      </Stack>
    </Card>
  );
}
