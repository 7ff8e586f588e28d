/**
 * A coordinator's correction of the question count the quote bills (docs/case-workflow.md,
 * "Coordinators' moves"): the coordination Task's `urn:hub:extension:question-count-override` with
 * the count and the reason, written with If-Match on the version read just before. The hub names the
 * writer as `setBy` itself, refuses anyone who is not a coordinator (403, shown in its words) and
 * re-quotes the case; removing the override returns to the detected count.
 */
import { Button, Group, NumberInput, Stack, Textarea } from '@mantine/core';
import type { Extension, Task } from '@medplum/fhirtypes';
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import type { FormEvent } from 'react';
import { currentSession } from '../auth.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest } from '../fhir.ts';
import { OVERRIDE_EXTENSION, ifMatch, useRefreshCase } from './Quote-data.ts';

/** The override as written; `setBy` is what the app knows of the person, which the hub replaces with its own record. */
function overrideExtension(count: number, reason: string): Extension {
  const fhirUser = currentSession()?.fhirUser;
  return {
    url: OVERRIDE_EXTENSION,
    extension: [
      { url: 'count', valueUnsignedInt: count },
      { url: 'reason', valueString: reason },
      fhirUser
        ? { url: 'setBy', valueReference: { reference: fhirUser } }
        : { url: 'setBy', valueString: 'coordinator' },
    ],
  };
}

/** Writes the coordination Task again with the override set (or, without one, removed). */
async function writeOverride(taskId: string, override: Extension | undefined): Promise<void> {
  const task = await fhirGet<Task>(`Task/${encodeURIComponent(taskId)}`);
  const { extension, ...rest } = task;
  const kept = (extension ?? []).filter((candidate) => candidate.url !== OVERRIDE_EXTENSION);
  const next = override ? [...kept, override] : kept;
  await fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(taskId)}`,
    {
      ...rest,
      ...(next.length > 0 ? { extension: next } : {}),
    },
    ifMatch(task),
  );
}

export function QuestionCountCorrection({
  serviceRequestId,
  taskId,
  billed,
  overridden,
}: {
  serviceRequestId: string;
  taskId: string;
  billed: number | undefined;
  overridden: boolean;
}) {
  const refresh = useRefreshCase(serviceRequestId);
  const [open, setOpen] = useState(false);
  const [count, setCount] = useState<number | string>(billed ?? '');
  const [reason, setReason] = useState('');
  const move = useMutation({
    mutationFn: (override: Extension | undefined) => writeOverride(taskId, override),
    onSuccess: async () => {
      setOpen(false);
      setReason('');
      await refresh();
    },
  });
  const parsed = typeof count === 'number' ? count : Number.NaN;
  const valid = Number.isInteger(parsed) && parsed >= 0 && reason.trim() !== '';
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (valid) {
      move.mutate(overrideExtension(parsed, reason.trim()));
    }
  };
  return (
    <Stack gap="xs">
      {move.error ? <ErrorAlert error={move.error} title="The hub refused the correction" /> : null}
      {open ? (
        <form onSubmit={submit} aria-label="Correct the question count">
          <Stack gap="xs" maw={480}>
            <NumberInput
              label="Questions to bill"
              min={0}
              step={1}
              allowDecimal={false}
              allowNegative={false}
              value={count}
              onChange={setCount}
              required
            />
            <Textarea
              label="Reason for the correction"
              description="Kept with the quote, for the physician and the billing team."
              value={reason}
              onChange={(event) => setReason(event.currentTarget.value)}
              autosize
              minRows={2}
              required
            />
            <Group gap="sm">
              <Button type="submit" disabled={!valid} loading={move.isPending}>
                Save the correction
              </Button>
              <Button variant="default" onClick={() => setOpen(false)} disabled={move.isPending}>
                Cancel
              </Button>
            </Group>
          </Stack>
        </form>
      ) : (
        <Group gap="sm">
          <Button variant="light" onClick={() => setOpen(true)}>
            Correct the question count
          </Button>
          {overridden ? (
            <Button variant="subtle" loading={move.isPending} onClick={() => move.mutate(undefined)}>
              Return to the detected count
            </Button>
          ) : null}
        </Group>
      )}
    </Stack>
  );
}
