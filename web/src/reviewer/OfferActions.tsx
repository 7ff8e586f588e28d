/**
 * Accepting or declining a case offered to the specialist, as the hub's workflow expects
 * (docs/case-workflow.md, "specialist-opinion Task"): the Task set `accepted` (the case goes to
 * specialist review), or `rejected` with the reason in its statusReason (the next candidate is
 * offered it). The Task is written back whole with If-Match, so a change made meanwhile (the offer
 * withdrawn) is refused rather than overwritten.
 */
import { Button, Group, Modal, Stack, Text, Textarea } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest } from '../fhir.ts';
import { ifMatch } from './codes.ts';
import './reviewer.css';

async function answerOffer(taskId: string, answer: { status: 'accepted' } | { status: 'rejected'; reason: string }) {
  const current = await fhirGet<Task>(`Task/${encodeURIComponent(taskId)}`);
  const updated: Task = {
    ...current,
    status: answer.status,
    lastModified: new Date().toISOString(),
    ...(answer.status === 'rejected' ? { statusReason: { text: answer.reason } } : {}),
  };
  delete updated.meta;
  return fhirRequest<Task>('PUT', `Task/${encodeURIComponent(taskId)}`, updated, ifMatch(current));
}

export function OfferActions({ task, caseLabel }: { task: Task; caseLabel: string }) {
  const queryClient = useQueryClient();
  const [declining, setDeclining] = useState(false);
  const [reason, setReason] = useState('');
  const [reasonMissing, setReasonMissing] = useState(false);
  const answer = useMutation({
    mutationFn: (value: { status: 'accepted' } | { status: 'rejected'; reason: string }) =>
      answerOffer(task.id ?? '', value),
    onSuccess: async () => {
      setDeclining(false);
      await queryClient.invalidateQueries({ queryKey: ['my-tasks'] });
      await queryClient.invalidateQueries({ queryKey: ['reviewer-case'] });
    },
  });
  return (
    <Stack gap="xs">
      <Group gap="xs">
        <Button
          size="xs"
          onClick={() => answer.mutate({ status: 'accepted' })}
          loading={answer.isPending && !declining}
        >
          Accept case {caseLabel}
        </Button>
        <Button size="xs" variant="default" onClick={() => setDeclining(true)} disabled={answer.isPending}>
          Decline case {caseLabel}
        </Button>
      </Group>
      {answer.error && !declining ? <ErrorAlert error={answer.error} title="The answer was not recorded" /> : null}
      <Modal
        opened={declining}
        onClose={() => setDeclining(false)}
        title={`Decline case ${caseLabel}`}
        // Locking the page's scroll writes a <style> element, which the CSP refuses.
        lockScroll={false}
        closeButtonProps={{ 'aria-label': 'Close' }}
      >
        <form
          className="reviewer-form"
          onSubmit={(event) => {
            event.preventDefault();
            if (reason.trim() === '') {
              setReasonMissing(true);
              return;
            }
            answer.mutate({ status: 'rejected', reason: reason.trim() });
          }}
        >
          <Stack>
            <Text size="sm">The coordinators read your reason; the case is offered to the next specialist.</Text>
            <Textarea
              label="Reason for declining"
              withAsterisk
              autosize
              minRows={3}
              value={reason}
              error={reasonMissing ? 'Say why you decline the case.' : undefined}
              onChange={(event) => {
                setReason(event.currentTarget.value);
                setReasonMissing(false);
              }}
            />
            {answer.error ? <ErrorAlert error={answer.error} title="The answer was not recorded" /> : null}
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setDeclining(false)}>
                Cancel
              </Button>
              <Button type="submit" color="red.9" loading={answer.isPending}>
                Decline the case
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </Stack>
  );
}
