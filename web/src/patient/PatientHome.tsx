/**
 * The patient's home at /dashboard: their requests (their cases' coordination Tasks, which the hub
 * lets them read), the one they have shown whole, several listed with where each is.
 */
import { Anchor, Card, Loader, Stack, Text, Title } from '@mantine/core';
import type { Bundle, Task } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, searchEntries } from '../fhir.ts';
import { caseStateOf, idOf } from '../format.ts';
import { PatientCase } from './PatientCase.tsx';
import { plainState } from './plain-words.ts';

export function PatientHome() {
  const cases = useQuery({
    queryKey: ['patient-cases'],
    queryFn: () =>
      fhirGet<Bundle>(
        `Task?code=${encodeURIComponent('urn:hub:task-code|coordination')}&_sort=-_lastUpdated&_count=50`,
      ),
  });
  if (cases.error) {
    return <ErrorAlert error={cases.error} title="Your requests could not be read" />;
  }
  if (cases.isPending) {
    return <Loader role="status" aria-label="Loading your requests" />;
  }
  const tasks = searchEntries<Task>(cases.data, 'Task').flatMap((task) => {
    const id = idOf(task.focus?.reference, 'ServiceRequest') ?? idOf(task.basedOn?.[0]?.reference, 'ServiceRequest');
    return id === undefined ? [] : [{ task, id }];
  });
  const [only] = tasks;
  if (only === undefined) {
    return (
      <Text data-testid="patient-no-case">
        You have no request for a second opinion yet. Your physician sends it with your reference number; you will be
        e-mailed when it arrives.
      </Text>
    );
  }
  if (tasks.length === 1) {
    return <PatientCase serviceRequestId={only.id} />;
  }
  return (
    <Stack>
      <Title order={2}>Your requests</Title>
      {tasks.map(({ task, id }) => (
        <Card key={id} withBorder padding="md" data-testid="patient-case-summary" data-case={id}>
          <Stack gap={4}>
            <Anchor component={Link} to={`/cases/${encodeURIComponent(id)}`} fw={600}>
              Request {task.groupIdentifier?.value ?? id}
            </Anchor>
            <Text>{plainState(caseStateOf(task))}</Text>
          </Stack>
        </Card>
      ))}
    </Stack>
  );
}
