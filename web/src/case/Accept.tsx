/**
 * A coordinator accepts a submitted case (docs/case-workflow.md, "Coordinators' moves"): the
 * coordination Task's businessStatus `awaiting-materials`, written with If-Match on the version read
 * just before. The hub's progression job checks the move (a coordinator's; the patient eligible) and
 * applies it or undoes it with the reason in statusReason (`move-refused`), which shows here; the
 * page follows the hub meanwhile. Declining an ineligible case is the hub's own move at intake.
 */
import { Alert, Button, Card, Group, Stack, Text, Title } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation } from '@tanstack/react-query';
import { CASE_STATE_SYSTEM } from '../case-states.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest } from '../fhir.ts';
import { caseStateOf } from '../format.ts';
import { ifMatch } from './Quote-data.ts';
import { CASE_REASON_SYSTEM, mayCoordinate, useFollowHub } from './Tasks-data.ts';

async function accept(taskId: string): Promise<void> {
  const task = await fhirGet<Task>(`Task/${encodeURIComponent(taskId)}`);
  await fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(taskId)}`,
    { ...task, businessStatus: { coding: [{ system: CASE_STATE_SYSTEM, code: 'awaiting-materials' }] } },
    ifMatch(task),
  );
}

function refusalOf(coordination: Task): string | undefined {
  const refused = coordination.statusReason?.coding?.some(
    (coding) => coding.system === CASE_REASON_SYSTEM && coding.code === 'move-refused',
  );
  return refused ? coordination.statusReason?.text : undefined;
}

export function AcceptCase({ serviceRequestId, coordination }: { serviceRequestId: string; coordination?: Task }) {
  const follow = useFollowHub(serviceRequestId);
  const move = useMutation({ mutationFn: accept, onSuccess: follow });
  if (coordination?.id === undefined || caseStateOf(coordination) !== 'submitted' || !mayCoordinate()) {
    return null;
  }
  const refusal = refusalOf(coordination);
  return (
    <Card withBorder padding="md" data-testid="accept-case">
      <Title order={3} size="h4" mb="xs">
        Accept the case
      </Title>
      <Stack gap="xs">
        <Text size="sm">
          Check the eligibility and the quote below. Accepting the case asks the referring physician for the materials
          it still waits for; the hub then takes it on to pre-review and matching as they arrive.
        </Text>
        {refusal ? (
          <Alert color="red" title="The hub refused the acceptance" data-testid="accept-refusal">
            {refusal}
          </Alert>
        ) : null}
        {move.error ? <ErrorAlert error={move.error} title="The acceptance could not be written" /> : null}
        {move.isSuccess && !refusal ? (
          <Text size="sm" data-testid="accept-sent">
            Accepted: the hub is checking the move.
          </Text>
        ) : (
          <Group>
            <Button loading={move.isPending} onClick={() => move.mutate(coordination.id as string)}>
              Accept the case
            </Button>
          </Group>
        )}
      </Stack>
    </Card>
  );
}
