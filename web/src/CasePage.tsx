/**
 * A case, at /dashboard/cases/<ServiceRequest id> (the e-mails' links): its state, the patient, the
 * referring physician, the physician's questions (the QuestionnaireResponse), its pre-review and
 * specialist Tasks, the opinion under review, and the timeline of everything that happened to it
 * (case/Tasks.tsx, case/Review.tsx, case/Timeline.tsx). A case the person may not see answers 404
 * at the hub, exactly like a missing one, and shows "not found".
 */
import { Alert, Badge, Box, Card, Group, List, Loader, Stack, Text, Title } from '@mantine/core';
import type {
  Bundle,
  Patient,
  Practitioner,
  PractitionerRole,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  Reference,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { Link, useParams } from 'react-router';
import { AcceptCase } from './case/Accept.tsx';
import { TakeCase } from './case/Take.tsx';
import { Eligibility } from './case/Eligibility.tsx';
import { Materials } from './case/Materials.tsx';
import { Quote } from './case/Quote.tsx';
import { stateColor, stateLabel } from './case-states.ts';
import { ErrorAlert } from './ErrorAlert.tsx';
import { ApiError, fhirGet, searchEntries } from './fhir.ts';
import { caseStateOf, formatName } from './format.ts';
import { OpinionReviewSection } from './case/Review.tsx';
import { CaseTasksSection } from './case/Tasks.tsx';
import { CaseTimeline } from './case/Timeline.tsx';

function NotFound() {
  return (
    <Alert color="gray" title="Case not found" role="alert" data-testid="case-not-found">
      There is no such case, or it is not one of yours. <Link to="/">Back to the cases</Link>
    </Alert>
  );
}

function useResource<T extends Patient | Practitioner | PractitionerRole | QuestionnaireResponse>(
  reference: string | undefined,
) {
  return useQuery({
    queryKey: ['read', reference],
    queryFn: () => fhirGet<T>(reference as string),
    enabled: reference !== undefined && /^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(reference),
  });
}

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Card withBorder padding="md">
      <Title order={3} size="h4" mb="xs">
        {title}
      </Title>
      {children}
    </Card>
  );
}

function PatientCard({ reference }: { reference: Reference | undefined }) {
  const patient = useResource<Patient>(reference?.reference);
  if (patient.error) {
    return <ErrorAlert error={patient.error} title="The patient could not be read" />;
  }
  if (patient.isLoading) {
    return <Loader size="sm" />;
  }
  return (
    <Stack gap={2} data-testid="case-patient">
      <Text fw={600}>{formatName(patient.data?.name) ?? reference?.display ?? 'No name on record'}</Text>
      {patient.data?.birthDate ? <Text size="sm">Born {patient.data.birthDate}</Text> : null}
    </Stack>
  );
}

function PhysicianCard({ reference }: { reference: Reference | undefined }) {
  const requester = useResource<Practitioner | PractitionerRole>(reference?.reference);
  const role = requester.data?.resourceType === 'PractitionerRole' ? requester.data : undefined;
  const practitioner = useResource<Practitioner>(role?.practitioner?.reference);
  if (requester.error) {
    return <ErrorAlert error={requester.error} title="The referring physician could not be read" />;
  }
  if (requester.isLoading || practitioner.isLoading) {
    return <Loader size="sm" />;
  }
  const person = requester.data?.resourceType === 'Practitioner' ? requester.data : practitioner.data;
  const email = person?.telecom?.find((telecom) => telecom.system === 'email')?.value;
  return (
    <Stack gap={2} data-testid="case-physician">
      <Text fw={600}>{formatName(person?.name) ?? reference?.display ?? 'Not on record'}</Text>
      {email ? <Text size="sm">{email}</Text> : null}
    </Stack>
  );
}

/** Every answer of every item, in order (a question's text when the item has one). */
function answersOf(items: QuestionnaireResponseItem[] | undefined): { label?: string; text: string }[] {
  return (items ?? []).flatMap((item) => [
    ...(item.answer ?? []).flatMap((answer) => {
      const value =
        answer.valueString ??
        answer.valueCoding?.display ??
        answer.valueCoding?.code ??
        (answer.valueInteger ?? answer.valueDecimal ?? answer.valueBoolean ?? answer.valueDate)?.toString();
      return value === undefined ? [] : [{ label: item.text, text: value }];
    }),
    ...answersOf(item.item),
  ]);
}

function Questions({ serviceRequest }: { serviceRequest: ServiceRequest }) {
  const reference = serviceRequest.supportingInfo?.find((info) =>
    info.reference?.startsWith('QuestionnaireResponse/'),
  )?.reference;
  const response = useResource<QuestionnaireResponse>(reference);
  if (reference === undefined) {
    return <Text c="dimmed">No questions on record.</Text>;
  }
  if (response.error) {
    return <ErrorAlert error={response.error} title="The questions could not be read" />;
  }
  if (response.isLoading) {
    return <Loader size="sm" />;
  }
  const answers = answersOf(response.data?.item);
  return answers.length === 0 ? (
    <Text c="dimmed">No questions on record.</Text>
  ) : (
    <List type="ordered" data-testid="case-questions">
      {answers.map((answer, index) => (
        <List.Item key={index}>{answer.label ? `${answer.label}: ${answer.text}` : answer.text}</List.Item>
      ))}
    </List>
  );
}

export function CasePage() {
  const { id = '' } = useParams();
  const serviceRequest = useQuery({
    queryKey: ['read', `ServiceRequest/${id}`],
    queryFn: () => fhirGet<ServiceRequest>(`ServiceRequest/${encodeURIComponent(id)}`),
  });
  const coordination = useQuery({
    queryKey: ['coordination', id],
    queryFn: () =>
      fhirGet<Bundle>(
        `Task?code=${encodeURIComponent('urn:hub:task-code|coordination')}&focus=${encodeURIComponent(`ServiceRequest/${id}`)}`,
      ),
    enabled: serviceRequest.isSuccess,
  });
  if (serviceRequest.error instanceof ApiError && [404, 410].includes(serviceRequest.error.status)) {
    return <NotFound />;
  }
  if (serviceRequest.error) {
    return <ErrorAlert error={serviceRequest.error} title="The case could not be read" />;
  }
  if (serviceRequest.isPending) {
    return <Loader aria-label="Loading the case" />;
  }
  const request = serviceRequest.data;
  const task = coordination.data ? searchEntries<Task>(coordination.data, 'Task')[0] : undefined;
  const state = caseStateOf(task);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Case {task?.groupIdentifier?.value ?? request.id}</Title>
        {coordination.isLoading ? (
          <Loader size="sm" />
        ) : (
          <Badge size="lg" color={stateColor(state)} variant="light" data-testid="case-state">
            {state === undefined ? 'No coordination yet' : stateLabel(state)}
          </Badge>
        )}
      </Group>
      {coordination.error ? <ErrorAlert error={coordination.error} title="The case's state could not be read" /> : null}
      <TakeCase serviceRequestId={request.id ?? id} coordination={task} />
      <AcceptCase serviceRequestId={request.id ?? id} coordination={task} />
      <Box className="two-columns">
        <Section title="Patient">
          <PatientCard reference={request.subject} />
        </Section>
        <Section title="Referring physician">
          <PhysicianCard reference={request.requester} />
        </Section>
      </Box>
      <Section title="Questions">
        <Questions serviceRequest={request} />
      </Section>
      <Eligibility serviceRequestId={request.id ?? id} />
      <Quote serviceRequest={request} />
      <Materials serviceRequest={request} />
      <CaseTasksSection serviceRequestId={request.id ?? id} coordination={task} />
      <OpinionReviewSection serviceRequest={request} coordination={task} />
      <Section title="Timeline">
        <CaseTimeline serviceRequest={request} coordination={task} />
      </Section>
    </Stack>
  );
}
