/**
 * A case, at /dashboard/cases/<ServiceRequest id> (the e-mails' links): its state, the patient, the
 * referring physician, the physician's questions (the QuestionnaireResponse), and the timeline of its
 * states from the coordination Task's history, each with who wrote it (meta.source). A case the
 * person may not see answers 404 at the hub, exactly like a missing one, and shows "not found".
 */
import { Alert, Badge, Box, Card, Group, List, Loader, Stack, Table, Text, Title } from '@mantine/core';
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
import { Eligibility } from './case/Eligibility.tsx';
import { Materials } from './case/Materials.tsx';
import { Quote } from './case/Quote.tsx';
import { stateColor, stateLabel } from './case-states.ts';
import { ErrorAlert } from './ErrorAlert.tsx';
import { ApiError, fhirGet, searchEntries } from './fhir.ts';
import { caseStateOf, formatDateTime, formatName, writerOf } from './format.ts';

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

/** The coordination Task's versions, oldest first, one row per change of state. */
function Timeline({ task }: { task: Task }) {
  const history = useQuery({
    queryKey: ['history', task.id, task.meta?.versionId],
    queryFn: () => fhirGet<Bundle>(`Task/${task.id ?? ''}/_history?_count=100`),
  });
  if (history.error) {
    return <ErrorAlert error={history.error} title="The timeline could not be read" />;
  }
  if (history.isLoading || history.data === undefined) {
    return <Loader size="sm" />;
  }
  const versions = searchEntries<Task>(history.data, 'Task').sort(
    (a, b) => Number(a.meta?.versionId ?? 0) - Number(b.meta?.versionId ?? 0),
  );
  const changes = versions.filter((version, index) => {
    const previous = versions[index - 1];
    return previous === undefined || caseStateOf(previous) !== caseStateOf(version);
  });
  return (
    <Table data-testid="case-timeline">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>When</Table.Th>
          <Table.Th>State</Table.Th>
          <Table.Th>Written by</Table.Th>
          <Table.Th>Reason</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {changes.map((version) => {
          const state = caseStateOf(version);
          return (
            <Table.Tr key={version.meta?.versionId}>
              <Table.Td>{formatDateTime(version.meta?.lastUpdated)}</Table.Td>
              <Table.Td>{state === undefined ? '—' : stateLabel(state)}</Table.Td>
              <Table.Td>{writerOf(version.meta?.source)}</Table.Td>
              <Table.Td>
                {version.statusReason?.text ?? version.statusReason?.coding?.map((c) => c.display ?? c.code).join(', ')}
              </Table.Td>
            </Table.Tr>
          );
        })}
      </Table.Tbody>
    </Table>
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
      <Section title="Timeline">
        {task ? <Timeline task={task} /> : <Text c="dimmed">No coordination Task yet.</Text>}
      </Section>
    </Stack>
  );
}
