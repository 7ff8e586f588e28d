/**
 * A coordinator's choice of who does a review Task, from the roster of its kind (docs/case-workflow.md,
 * "Coordinators' moves"): the Task is written back with the new `owner` (and, to offer a case its
 * specialist declined to someone else, `requested` again), If-Match its version. For a pre-review the
 * owner is the assignment; for the specialist's Task the hub's job then checks the choice (an eligible,
 * available specialist) and makes the new offer, or writes the owner back and says why.
 */
import { Button, Group, NativeSelect, Stack, Text } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirRequest } from '../fhir.ts';
import { PRACTITIONER_ROLE_SYSTEM, ROSTER_ROLE, taskCodeOf, useFollowHub, useRoster } from './Tasks-data.ts';
import type { ReviewTaskCode } from './Tasks-data.ts';

const ROLE_WORDS = { radiologist: 'Radiologist', pathologist: 'Pathologist', specialist: 'Specialist' } as const;

export interface AssignFormProps {
  serviceRequestId: string;
  task: Task;
  /** What the Task is, for the form's labels ("the radiology pre-review"). */
  label: string;
  /** Offer a Task its owner declined to someone else: it is `requested` again. */
  reopen: boolean;
  onDone: () => void;
}

export function AssignForm({ serviceRequestId, task, label, reopen, onDone }: AssignFormProps) {
  const code = taskCodeOf(task) as ReviewTaskCode;
  const role = ROSTER_ROLE[code];
  const roster = useRoster(role, true);
  const follow = useFollowHub(serviceRequestId);
  const current = task.owner?.reference;
  const choices = (roster.data ?? []).filter((member) => member.practitioner !== current);
  const [chosen, setChosen] = useState('');
  const verb = current === undefined ? 'Assign' : reopen ? 'Offer' : 'Reassign';
  const write = useMutation({
    mutationFn: async (owner: string) => {
      const { meta, ...rest } = task;
      const next: Task = {
        ...rest,
        owner: { reference: owner },
        ...(reopen ? { status: 'requested', statusReason: undefined } : {}),
      };
      return fhirRequest<Task>('PUT', `Task/${encodeURIComponent(task.id ?? '')}`, next, {
        'if-match': `W/"${meta?.versionId ?? ''}"`,
      });
    },
    onSuccess: () => {
      follow();
      onDone();
    },
  });
  if (roster.error) {
    return <ErrorAlert error={roster.error} title="The roster could not be read" />;
  }
  const selectId = `assign-${task.id ?? ''}`;
  return (
    <Stack gap="xs" data-testid="assign-form">
      {roster.isSuccess && choices.length === 0 ? (
        <Text size="sm" c="dimmed">
          Nobody else is on the {role}s’ roster (a PractitionerRole coded {PRACTITIONER_ROLE_SYSTEM}|{role}).
        </Text>
      ) : (
        <NativeSelect
          id={selectId}
          label={`${ROLE_WORDS[role]} for ${label}`}
          value={chosen}
          onChange={(event) => setChosen(event.currentTarget.value)}
          disabled={roster.isLoading}
          data={[
            { value: '', label: roster.isLoading ? 'Loading the roster…' : `Choose a ${role}` },
            ...choices.map((member) => ({
              value: member.practitioner,
              label: member.specialties ? `${member.name} (${member.specialties})` : member.name,
            })),
          ]}
        />
      )}
      {write.error ? <ErrorAlert error={write.error} title={`The ${role} could not be set`} /> : null}
      <Group gap="xs">
        <Button size="xs" disabled={chosen === ''} loading={write.isPending} onClick={() => write.mutate(chosen)}>
          {verb}
        </Button>
        <Button size="xs" variant="default" onClick={onDone}>
          Cancel
        </Button>
      </Group>
    </Stack>
  );
}
