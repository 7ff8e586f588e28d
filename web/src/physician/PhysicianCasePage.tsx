/**
 * A case as its referring physician sees it, at /dashboard/cases/<ServiceRequest id> (the e-mails'
 * links): its state and what it asks of them now, the patient and their questions, the specialist's
 * questions to answer, the released opinion to read and clarifications to ask, the materials with
 * what has arrived, and the uploads of records and of a patient's CD. A case that is not theirs
 * answers 404 at the hub, exactly like a missing one, and shows "not found".
 *
 * After an act whose consequence the hub works out in the background (an answer, the first reading of
 * the opinion, an upload) the page looks again for a while, so the new state shows without a reload.
 */
import { Alert, Badge, Box, Card, Group, List, Loader, Stack, Text, Title } from '@mantine/core';
import type { Patient, Reference } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { stateColor, stateLabel } from '../case-states.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { ApiError, fhirGet } from '../fhir.ts';
import { formatName } from '../format.ts';
import {
  WATCH_MS,
  opinionOutputs,
  useCommunications,
  useCoordination,
  useQuestions,
  useServiceRequest,
} from './case-data.ts';
import { ImagingUpload } from './ImagingUpload.tsx';
import { InformationRequests } from './InformationRequests.tsx';
import { Materials } from './Materials.tsx';
import { nextStep } from './next-step.ts';
import { Opinion } from './Opinion.tsx';
import { RecordsUpload } from './RecordsUpload.tsx';
import './physician.css';

/** How long the page keeps looking for the hub's answer to what the physician did. */
const WATCH_FOR_MS = 60_000;

export function CaseNotFound() {
  return (
    <Alert color="gray" title="Case not found" role="alert" data-testid="case-not-found">
      There is no such case, or it is not one of yours. <Link to="/">Back to your cases</Link>
    </Alert>
  );
}

function PatientName({ reference }: { reference: Reference | undefined }) {
  const path = reference?.reference;
  const patient = useQuery({
    queryKey: ['read', path],
    queryFn: () => fhirGet<Patient>(path ?? ''),
    enabled: path !== undefined && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(path),
  });
  if (patient.error) {
    return <ErrorAlert error={patient.error} title="The patient could not be read" />;
  }
  if (patient.isLoading) {
    return <Loader size="sm" role="status" aria-label="Loading the patient" />;
  }
  return (
    <Stack gap={2} data-testid="case-patient">
      <Text fw={600}>{formatName(patient.data?.name) ?? reference?.display ?? 'No name on record'}</Text>
      {patient.data?.birthDate ? <Text size="sm">Born {patient.data.birthDate}</Text> : null}
    </Stack>
  );
}

/**
 * Whether the page is looking again for the hub's answer to an act: from `start()` for a while, or
 * until `value` (the case's state, say) is no longer what it was then.
 */
function useWatch(value?: string): [boolean, () => void] {
  const [watch, setWatch] = useState<{ until: number; from: string | undefined }>();
  useEffect(() => {
    if (watch === undefined) {
      return undefined;
    }
    const timer = setTimeout(() => setWatch(undefined), Math.max(0, watch.until - Date.now()));
    return () => clearTimeout(timer);
  }, [watch]);
  const changed = watch !== undefined && value !== undefined && value !== watch.from;
  return [watch !== undefined && !changed, () => setWatch({ until: Date.now() + WATCH_FOR_MS, from: value })];
}

export function PhysicianCasePage() {
  const { id = '' } = useParams();
  const request = useServiceRequest(id);
  // The state as last rendered: watching for its change needs it before the coordination query.
  const [shownState, setShownState] = useState<string>();
  const [watchingState, watchState] = useWatch(shownState);
  const [watchingMaterials, watchMaterials] = useWatch();
  const coordination = useCoordination(id, request.isSuccess, watchingState ? WATCH_MS : undefined);
  useEffect(() => setShownState(coordination.state), [coordination.state]);
  const communications = useCommunications(id, request.isSuccess);
  const questions = useQuestions(request.data);
  if (request.error instanceof ApiError && [404, 410].includes(request.error.status)) {
    return <CaseNotFound />;
  }
  if (request.error) {
    return <ErrorAlert error={request.error} title="The case could not be read" />;
  }
  if (request.isPending) {
    return <Loader role="status" aria-label="Loading the case" />;
  }
  const serviceRequest = request.data;
  const { task, state } = coordination;
  const step = nextStep(state, serviceRequest.status);
  const { reportId } = opinionOutputs(task);
  const released = state === 'report-released' || state === 'report-accessed';
  const reason = task?.statusReason?.text;
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Case {task?.groupIdentifier?.value ?? serviceRequest.id}</Title>
        {coordination.isLoading ? (
          <Loader size="sm" role="status" aria-label="Loading the case’s state" />
        ) : (
          <Badge size="lg" color={stateColor(state)} variant="light" data-testid="case-state">
            {state === undefined ? 'Not taken up yet' : stateLabel(state)}
          </Badge>
        )}
      </Group>
      {coordination.error ? <ErrorAlert error={coordination.error} title="The case’s state could not be read" /> : null}
      <Alert
        color={step.asked ? 'yellow' : 'gray'}
        title={step.asked ? 'Asked of you' : 'Where the case is'}
        data-testid="physician-next-step"
      >
        {step.text}
        {['declined', 'cancelled', 'failed'].includes(state ?? '') && reason ? ` ${reason}` : ''}
      </Alert>
      <Box className="two-columns">
        <Card withBorder padding="md">
          <Title order={3} size="h4" mb="xs">
            Patient
          </Title>
          <PatientName reference={serviceRequest.subject} />
        </Card>
        <Card withBorder padding="md">
          <Title order={3} size="h4" mb="xs">
            Your questions
          </Title>
          {questions.error ? <ErrorAlert error={questions.error} title="The questions could not be read" /> : null}
          {questions.questions.length > 0 ? (
            <List type="ordered" data-testid="case-questions">
              {questions.questions.map((question, index) => (
                <List.Item key={index}>{question}</List.Item>
              ))}
            </List>
          ) : (
            <Text c="dimmed">{questions.isLoading ? 'Loading…' : 'No questions on record.'}</Text>
          )}
        </Card>
      </Box>
      {communications.error ? <ErrorAlert error={communications.error} title="The messages could not be read" /> : null}
      {task ? (
        <InformationRequests
          serviceRequestId={id}
          coordination={task}
          communications={communications.communications}
          onAnswered={watchState}
        />
      ) : null}
      {released && reportId !== undefined ? (
        <Opinion
          serviceRequestId={id}
          reportId={reportId}
          state={state}
          questions={questions.questions}
          communications={communications.communications}
          onRead={watchState}
        />
      ) : null}
      <Materials serviceRequestId={id} watching={watchingMaterials} />
      {step.uploads ? (
        <Card withBorder padding="md" data-testid="uploads">
          <Title order={3} size="h4" mb="xs">
            Send materials
          </Title>
          <Stack gap="lg">
            <RecordsUpload serviceRequest={serviceRequest} onUploaded={watchMaterials} />
            <ImagingUpload serviceRequestId={id} onUploaded={watchMaterials} />
          </Stack>
        </Card>
      ) : null}
    </Stack>
  );
}
