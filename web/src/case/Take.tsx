/**
 * Who holds the case among the coordinators: the coordination Task's `owner`, which the worklist's
 * "Mine" searches for a coordinator. A coordinator (or admin) takes the case by writing the Task back
 * with themselves as its owner, If-Match the version read just before, so two coordinators taking it
 * at once cannot both think it theirs: the second write fails with the hub's 412 and its words.
 */
import { Button, Group, Text } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation } from '@tanstack/react-query';
import { currentSession } from '../auth.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest } from '../fhir.ts';
import { ifMatch } from './Quote-data.ts';
import { mayCoordinate, useFollowHub, usePractitionerNames } from './Tasks-data.ts';

async function take(task: Task, me: string): Promise<void> {
  // The version the page drew: taking a case someone else took meanwhile fails instead of overriding them.
  const current = await fhirGet<Task>(`Task/${encodeURIComponent(task.id ?? '')}`);
  const drawn = task.meta?.versionId;
  if (drawn !== undefined && current.meta?.versionId !== drawn && current.owner?.reference !== task.owner?.reference) {
    throw new Error('Someone else took the case meanwhile: the page now shows who.');
  }
  await fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(current.id ?? '')}`,
    { ...current, owner: { reference: me } },
    ifMatch(current),
  );
}

export function TakeCase({ serviceRequestId, coordination }: { serviceRequestId: string; coordination?: Task }) {
  const me = currentSession()?.fhirUser;
  const follow = useFollowHub(serviceRequestId);
  const nameOf = usePractitionerNames([coordination?.owner]);
  const move = useMutation({
    mutationFn: () => take(coordination as Task, me as string),
    onSettled: follow,
  });
  if (coordination?.id === undefined || !mayCoordinate() || me === undefined || !me.startsWith('Practitioner/')) {
    return null;
  }
  const owner = coordination.owner?.reference;
  return (
    <Group gap="sm" data-testid="case-holder">
      <Text size="sm" data-testid="case-holder-name">
        {owner === undefined
          ? 'No coordinator holds this case.'
          : owner === me
            ? 'You hold this case.'
            : `Held by ${nameOf(coordination.owner) ?? owner}.`}
      </Text>
      {owner === me ? null : (
        <Button size="xs" variant="default" loading={move.isPending} onClick={() => move.mutate()}>
          Take the case
        </Button>
      )}
      {move.error ? <ErrorAlert error={move.error} title="The case could not be taken" /> : null}
    </Group>
  );
}
