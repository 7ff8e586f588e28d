/**
 * The released opinion on the physician's page, and their clarification questions about it.
 *
 * Opening it is a deliberate act: the physician's first reading of the released report is what the
 * hub records and what releases it to their patient (docs/access.md, "Release"), so the page fetches
 * nothing of it until they press "Read the opinion" (once the case is report-accessed it opens by
 * itself: it has been read). Clarifications (step 7 of "The opinion" in docs/case-workflow.md) are
 * Communications `about` the report, answered by its author.
 */
import { Alert, Button, Card, Divider, Stack, Text, Title } from '@mantine/core';
import type { Communication, Reference } from '@medplum/fhirtypes';
import { useState } from 'react';
import { idOf } from '../format.ts';
import { Message, SendForm, writerRole } from './messages.tsx';
import { OpinionLetter } from './OpinionLetter.tsx';
import { useOpinion } from './opinion-data.ts';

export interface OpinionProps {
  serviceRequestId: string;
  reportId: string;
  state: string | undefined;
  questions: readonly string[];
  communications: readonly Communication[];
  /** Called when the physician opens the opinion: the page then watches for the case's next state. */
  onRead: () => void;
}

export function Opinion({ serviceRequestId, reportId, state, questions, communications, onRead }: OpinionProps) {
  const [opened, setOpened] = useState(false);
  const open = opened || state === 'report-accessed';
  return (
    <Card withBorder padding="md" data-testid="opinion">
      <Title order={3} size="h4" mb="xs">
        The opinion
      </Title>
      {open ? (
        <Stack>
          <OpinionLetter reportId={reportId} questions={questions} />
          <Divider />
          <Clarifications serviceRequestId={serviceRequestId} reportId={reportId} communications={communications} />
        </Stack>
      ) : (
        <Stack gap="sm" align="flex-start">
          <Alert color="green" title="The specialist’s opinion is ready">
            It is released to you first. Once you open it, your patient can read it too.
          </Alert>
          <Button
            onClick={() => {
              setOpened(true);
              onRead();
            }}
          >
            Read the opinion
          </Button>
        </Stack>
      )}
    </Card>
  );
}

function Clarifications({
  serviceRequestId,
  reportId,
  communications,
}: {
  serviceRequestId: string;
  reportId: string;
  communications: readonly Communication[];
}) {
  // Read only once the opinion is open: the query shares the letter's cache, nothing more is fetched.
  const { report } = useOpinion(reportId);
  const asked = communications.filter(
    (communication) =>
      (communication.inResponseTo ?? []).length === 0 &&
      (communication.about ?? []).some((reference) => idOf(reference.reference, 'DiagnosticReport') === reportId),
  );
  const answersTo = (question: Communication) =>
    communications.filter(
      (communication) =>
        writerRole(communication) === 'specialist' &&
        (communication.inResponseTo ?? []).some(
          (reference) => idOf(reference.reference, 'Communication') === question.id,
        ),
    );
  const author: Reference | undefined = report.data?.resultsInterpreter?.[0];
  return (
    <Stack data-testid="clarifications">
      <Title order={4} size="h5">
        Clarifications
      </Title>
      <Text size="sm" c="dimmed">
        A question about the opinion goes to the specialist who wrote it. Clarifications are free.
      </Text>
      {asked.map((question, index) => (
        <Stack key={question.id} gap="xs" data-testid="clarification">
          <Message communication={question} label={`Your question ${index + 1}`} />
          {answersTo(question).map((answer) => (
            <Message key={answer.id} communication={answer} label="The specialist’s answer" />
          ))}
          {answersTo(question).length === 0 ? (
            <Text size="sm" c="dimmed">
              Not answered yet.
            </Text>
          ) : null}
        </Stack>
      ))}
      <SendForm
        serviceRequestId={serviceRequestId}
        label="Your question about the opinion"
        button="Ask the specialist"
        shape={{
          about: [{ reference: `DiagnosticReport/${reportId}` }],
          ...(author?.reference?.startsWith('Practitioner/') ? { recipient: [{ reference: author.reference }] } : {}),
        }}
      />
    </Stack>
  );
}
