/**
 * Submitting the opinion for the coordinators' review: the draft saved first, then the case moved to
 * `report-review` (the coordination Task's businessStatus, with If-Match), which the hub's
 * progression job checks — the assigned specialist, their draft, every section and question — and
 * either opens the approval Task or moves the case back with the reasons in its statusReason. This
 * waits for that verdict and shows it.
 */
import { Alert, Button, List, Stack, Text } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { CASE_STATE_SYSTEM } from '../case-states.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest } from '../fhir.ts';
import { caseStateOf } from '../format.ts';
import { CASE_REASON_SYSTEM, codeIn, ifMatch } from './codes.ts';
import { caseKeys } from './case-data.ts';

/** How long to look for the hub's verdict before saying it is late. */
const VERDICT_WAIT_MS = 60_000;
const POLL_MS = 1000;

interface Pending {
  /** The coordination Task's version our move wrote: the hub's verdict comes after it. */
  movedVersion: number;
  /** The approval Task's version before: a submission accepted opens (or reopens) it. */
  approvalVersion: string | undefined;
  since: number;
}

export interface SubmitOpinionProps {
  caseId: string;
  coordination: Task | undefined;
  approval: Task | undefined;
  problems: string[];
  flush: () => Promise<void>;
}

export function SubmitOpinion({ caseId, coordination, approval, problems, flush }: SubmitOpinionProps) {
  const queryClient = useQueryClient();
  const [pending, setPending] = useState<Pending>();
  const [late, setLate] = useState(false);
  const state = caseStateOf(coordination);
  const submit = useMutation({
    mutationFn: async (): Promise<Pending> => {
      await flush();
      const current = await fhirGet<Task>(`Task/${encodeURIComponent(coordination?.id ?? '')}`);
      const moved = await fhirRequest<Task>(
        'PUT',
        `Task/${encodeURIComponent(current.id ?? '')}`,
        {
          ...current,
          meta: undefined,
          businessStatus: { coding: [{ system: CASE_STATE_SYSTEM, code: 'report-review' }] },
        },
        ifMatch(current),
      );
      return {
        movedVersion: Number(moved.meta?.versionId ?? 0),
        approvalVersion: approval?.meta?.versionId,
        since: Date.now(),
      };
    },
    onSuccess: (value) => {
      setLate(false);
      setPending(value);
    },
  });

  // While the hub checks the submission, look again every second.
  useEffect(() => {
    if (pending === undefined) {
      return undefined;
    }
    const timer = setInterval(() => {
      if (Date.now() - pending.since > VERDICT_WAIT_MS) {
        setLate(true);
        setPending(undefined);
        return;
      }
      void queryClient.invalidateQueries({ queryKey: caseKeys.coordination(caseId) });
      void queryClient.invalidateQueries({ queryKey: caseKeys.approval(caseId) });
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [pending, caseId, queryClient]);

  const version = Number(coordination?.meta?.versionId ?? 0);
  const refused = pending !== undefined && version > pending.movedVersion && state === 'specialist-review';
  const accepted =
    pending !== undefined &&
    state === 'report-review' &&
    approval?.status === 'requested' &&
    approval.meta?.versionId !== pending.approvalVersion;
  useEffect(() => {
    if (refused || accepted) {
      setPending(undefined);
    }
  }, [refused, accepted]);

  const refusal =
    state === 'specialist-review' && codeIn(coordination?.statusReason, CASE_REASON_SYSTEM) === 'move-refused'
      ? coordination?.statusReason?.text
      : undefined;

  if (state === 'report-review') {
    return (
      <Alert color="blue" title="Submitted for review" data-testid="submitted">
        The coordinators are reviewing your report. Until they approve it, changes you make here are saved to the draft
        they review.
      </Alert>
    );
  }
  const waiting = pending !== undefined;
  return (
    <Stack gap="xs">
      {refusal !== undefined && !waiting ? (
        <Alert color="red" title="The hub refused the submission" role="alert" data-testid="submission-refused">
          {refusal}
        </Alert>
      ) : null}
      {problems.length > 0 ? (
        <Stack gap={4}>
          <Text size="sm">Before you submit:</Text>
          <List size="sm" data-testid="letter-problems">
            {problems.map((problem) => (
              <List.Item key={problem}>{problem}</List.Item>
            ))}
          </List>
        </Stack>
      ) : null}
      {state === 'awaiting-information' ? (
        <Text size="sm">The case waits for the physician’s answer to your question; submit once it is back.</Text>
      ) : null}
      {submit.error ? <ErrorAlert error={submit.error} title="The submission was not recorded" /> : null}
      {late ? (
        <Text size="sm" c="orange">
          The hub has not checked the submission yet. This page shows its answer once it has; reload to look again.
        </Text>
      ) : null}
      <div>
        <Button
          onClick={() => submit.mutate()}
          loading={submit.isPending || waiting}
          disabled={problems.length > 0 || state !== 'specialist-review' || coordination === undefined}
        >
          Submit the opinion for review
        </Button>
      </div>
      {waiting ? (
        <Text size="sm" aria-live="polite">
          Submitted; the hub is checking the letter…
        </Text>
      ) : null}
    </Stack>
  );
}
