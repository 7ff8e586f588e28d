/**
 * A coordinator's decision on a submitted report, through the case's `approve` Task
 * (docs/case-workflow.md, "The opinion"): `completed` approves it (the hub renders the PDF and releases
 * it to the physician), `rejected` with the reason in `statusReason.text` returns it to the specialist.
 * The hub checks the decision itself (staff only, not the report's author, the letter still complete)
 * and says why on the coordination Task when it refuses; the section shows that.
 */
import { Button, Group, Stack, Text, Textarea } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirRequest } from '../fhir.ts';
import { useFollowHub } from './Tasks-data.ts';

type Decision = { status: 'completed' } | { status: 'rejected'; reason: string };

export function ReviewDecision({ serviceRequestId, approval }: { serviceRequestId: string; approval: Task }) {
  const follow = useFollowHub(serviceRequestId);
  const [reason, setReason] = useState('');
  const [confirming, setConfirming] = useState(false);
  const decide = useMutation({
    mutationFn: async (decision: Decision) => {
      const { meta, statusReason: _reason, ...rest } = approval;
      const next: Task = {
        ...rest,
        status: decision.status,
        ...(decision.status === 'rejected' ? { statusReason: { text: decision.reason } } : {}),
      };
      return fhirRequest<Task>('PUT', `Task/${encodeURIComponent(approval.id ?? '')}`, next, {
        'if-match': `W/"${meta?.versionId ?? ''}"`,
      });
    },
    onSuccess: () => {
      setConfirming(false);
      setReason('');
      follow();
    },
  });
  return (
    <Stack gap="sm" data-testid="review-decision">
      {decide.error ? <ErrorAlert error={decide.error} title="The decision could not be written" /> : null}
      {confirming ? (
        <Stack gap="xs">
          <Text size="sm">
            Approving renders the letter as a PDF, makes the report final and releases it to the referring physician,
            who is e-mailed.
          </Text>
          <Group gap="xs">
            <Button loading={decide.isPending} onClick={() => decide.mutate({ status: 'completed' })}>
              Yes, approve and release
            </Button>
            <Button variant="default" onClick={() => setConfirming(false)}>
              Not yet
            </Button>
          </Group>
        </Stack>
      ) : (
        <Group>
          <Button color="teal.9" onClick={() => setConfirming(true)}>
            Approve the report
          </Button>
        </Group>
      )}
      <Textarea
        label="Why the report goes back to the specialist"
        description="The specialist reads this on their Task."
        value={reason}
        onChange={(event) => setReason(event.currentTarget.value)}
        minRows={2}
      />
      <Group>
        <Button
          variant="outline"
          color="red.9"
          disabled={reason.trim() === ''}
          loading={decide.isPending}
          onClick={() => decide.mutate({ status: 'rejected', reason: reason.trim() })}
        >
          Return to the specialist
        </Button>
      </Group>
    </Stack>
  );
}
