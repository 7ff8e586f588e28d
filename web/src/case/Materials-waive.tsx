/**
 * A coordinator waives a material the case still waits for (docs/case-workflow.md, "Coordinators'
 * moves"): its expect-material Task `cancelled` with the reason in statusReason, written with If-Match
 * on the version read just before. The hub refuses anyone who is not a coordinator (403, shown in its
 * words), re-quotes the case (the material is no longer priced, unless some arrived anyway) and
 * counts the case's materials complete once nothing else is awaited.
 */
import { Button, Group, Stack, Textarea } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import type { FormEvent } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest } from '../fhir.ts';
import { KIND_LABELS } from './Materials-data.ts';
import type { MaterialKind } from './Materials-data.ts';
import { ifMatch, useRefreshCase } from './Quote-data.ts';

async function waive(taskId: string, reason: string): Promise<void> {
  const task = await fhirGet<Task>(`Task/${encodeURIComponent(taskId)}`);
  await fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(taskId)}`,
    { ...task, status: 'cancelled', statusReason: { text: reason }, lastModified: new Date().toISOString() },
    ifMatch(task),
  );
}

export function WaiveMaterial({
  serviceRequestId,
  taskId,
  kind,
  onWaived,
}: {
  serviceRequestId: string;
  taskId: string;
  kind: MaterialKind;
  /** Called once the hub took the waiver, so the section can wait for the re-quote. */
  onWaived: () => void;
}) {
  const refresh = useRefreshCase(serviceRequestId);
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const label = KIND_LABELS[kind].toLowerCase();
  const move = useMutation({
    mutationFn: () => waive(taskId, reason.trim()),
    onSuccess: async () => {
      setOpen(false);
      onWaived();
      await refresh();
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (reason.trim() !== '') {
      move.mutate();
    }
  };
  return (
    <Stack gap="xs">
      {move.error ? <ErrorAlert error={move.error} title="The hub refused the waiver" /> : null}
      {open ? (
        <form onSubmit={submit} aria-label={`Waive the ${label}`}>
          <Stack gap="xs" maw={480}>
            <Textarea
              label={`Why is the ${label} waived?`}
              description="Kept on the case; the material is no longer awaited or charged, unless some arrives anyway."
              value={reason}
              onChange={(event) => setReason(event.currentTarget.value)}
              autosize
              minRows={2}
              required
            />
            <Group gap="sm">
              <Button type="submit" color="red.9" disabled={reason.trim() === ''} loading={move.isPending}>
                Waive the {label}
              </Button>
              <Button variant="default" onClick={() => setOpen(false)} disabled={move.isPending}>
                Cancel
              </Button>
            </Group>
          </Stack>
        </form>
      ) : (
        <Group>
          <Button variant="light" color="red" size="compact-sm" onClick={() => setOpen(true)}>
            Waive the {label}…
          </Button>
        </Group>
      )}
    </Stack>
  );
}
