/** What a reviewer reads first of a case: the patient, the referring physician, the questions and the reports so far. */
import { Box, Card, List, Loader, Stack, Text, Title } from '@mantine/core';
import type { Patient, Practitioner, PractitionerRole, ServiceRequest } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet } from '../fhir.ts';
import { formatName } from '../format.ts';
import { Reports } from './Reports.tsx';

const LOCAL_REFERENCE = /^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;

function useRead<T extends Patient | Practitioner | PractitionerRole>(reference: string | undefined) {
  return useQuery({
    queryKey: ['read', reference],
    queryFn: () => fhirGet<T>(reference as string),
    enabled: reference !== undefined && LOCAL_REFERENCE.test(reference),
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

function PatientFacts({ request }: { request: ServiceRequest }) {
  const patient = useRead<Patient>(request.subject?.reference);
  if (patient.error) {
    return <ErrorAlert error={patient.error} title="The patient could not be read" />;
  }
  if (patient.isLoading) {
    return <Loader size="sm" />;
  }
  return (
    <Stack gap={2} data-testid="case-patient">
      <Text fw={600}>{formatName(patient.data?.name) ?? 'No name on record'}</Text>
      {patient.data?.birthDate ? <Text size="sm">Born {patient.data.birthDate}</Text> : null}
      {patient.data?.gender ? <Text size="sm">Sex: {patient.data.gender}</Text> : null}
    </Stack>
  );
}

function PhysicianFacts({ request }: { request: ServiceRequest }) {
  const requester = useRead<Practitioner | PractitionerRole>(request.requester?.reference);
  const role = requester.data?.resourceType === 'PractitionerRole' ? requester.data : undefined;
  const practitioner = useRead<Practitioner>(role?.practitioner?.reference);
  if (requester.error) {
    return <ErrorAlert error={requester.error} title="The referring physician could not be read" />;
  }
  const person = requester.data?.resourceType === 'Practitioner' ? requester.data : practitioner.data;
  return (
    <Text fw={600} data-testid="case-physician">
      {formatName(person?.name) ?? request.requester?.display ?? 'Not on record'}
    </Text>
  );
}

export function CaseSummary({
  caseId,
  request,
  questions,
}: {
  caseId: string;
  request: ServiceRequest;
  questions: { data?: string[]; error: unknown; isPending: boolean };
}) {
  return (
    <Stack>
      <Box className="two-columns">
        <Section title="Patient">
          <PatientFacts request={request} />
        </Section>
        <Section title="Referring physician">
          <PhysicianFacts request={request} />
        </Section>
      </Box>
      <Section title="The physician’s questions">
        {questions.error ? <ErrorAlert error={questions.error} title="The questions could not be read" /> : null}
        {questions.isPending ? <Loader size="sm" aria-label="Loading the questions" /> : null}
        {questions.data && questions.data.length === 0 ? <Text c="dimmed">No questions on record.</Text> : null}
        {questions.data && questions.data.length > 0 ? (
          <List type="ordered" data-testid="case-questions">
            {questions.data.map((question, index) => (
              <List.Item key={index}>{question}</List.Item>
            ))}
          </List>
        ) : null}
      </Section>
      <Section title="Reports">
        <Reports caseId={caseId} />
      </Section>
    </Stack>
  );
}
