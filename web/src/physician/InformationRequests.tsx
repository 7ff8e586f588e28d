/**
 * The specialist's questions back to the physician (docs/case-workflow.md, "The opinion", step 2): a
 * Communication based on the case and part of its coordination Task, written by the specialist. An
 * open one gets a text box; the answer is a Communication `inResponseTo` it, which the hub counts as
 * the physician's answer and which resumes the specialist's review once every question has one.
 */
import { Badge, Card, Divider, Group, Stack, Text, Title } from '@mantine/core';
import type { Communication, Task } from '@medplum/fhirtypes';
import { idOf } from '../format.ts';
import { Message, SendForm, writerRole } from './messages.tsx';

function answersTo(question: Communication, communications: readonly Communication[]): Communication[] {
  return communications.filter((communication) =>
    (communication.inResponseTo ?? []).some((reference) => idOf(reference.reference, 'Communication') === question.id),
  );
}

export interface InformationRequestsProps {
  serviceRequestId: string;
  coordination: Task;
  communications: readonly Communication[];
  onAnswered: () => void;
}

export function InformationRequests({
  serviceRequestId,
  coordination,
  communications,
  onAnswered,
}: InformationRequestsProps) {
  const questions = communications.filter(
    (communication) =>
      (communication.inResponseTo ?? []).length === 0 &&
      writerRole(communication) === 'specialist' &&
      (communication.partOf ?? []).some((reference) => idOf(reference.reference, 'Task') === coordination.id),
  );
  if (questions.length === 0) {
    return null;
  }
  const open = questions.filter((question) => answersTo(question, communications).length === 0);
  return (
    <Card withBorder padding="md" data-testid="information-requests">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          The specialist’s questions to you
        </Title>
        {open.length > 0 ? (
          <Badge color="orange" variant="light">
            {open.length} to answer
          </Badge>
        ) : (
          <Badge color="green" variant="light">
            All answered
          </Badge>
        )}
      </Group>
      <Stack>
        {questions.map((question, index) => {
          const answers = answersTo(question, communications);
          return (
            <Stack key={question.id} gap="xs" data-testid="information-request" data-answered={answers.length > 0}>
              {index > 0 ? <Divider /> : null}
              <Message communication={question} label={`Question ${index + 1}`} />
              {answers.map((answer) => (
                <Message key={answer.id} communication={answer} label="Answer" />
              ))}
              {answers.length === 0 ? (
                <SendForm
                  serviceRequestId={serviceRequestId}
                  label={`Your answer to question ${index + 1}`}
                  button="Send the answer"
                  shape={{
                    inResponseTo: [{ reference: `Communication/${question.id ?? ''}` }],
                    ...(question.sender ? { recipient: [question.sender] } : {}),
                  }}
                  onSent={onAnswered}
                />
              ) : null}
            </Stack>
          );
        })}
        {open.length === 0 ? (
          <Text size="sm" c="dimmed">
            Every question has its answer; the specialist has them.
          </Text>
        ) : null}
      </Stack>
    </Card>
  );
}
