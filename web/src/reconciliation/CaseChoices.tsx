/**
 * The cases a study could be attached to: those the hub named as candidates, and any active case the
 * coordinator finds by reference number, accession number, patient name or birth date (the study's
 * own birth date is one click away, not a filter set in advance: a wrong one is often why the study
 * matched nothing). Attaching asks once more, naming both sides, since it puts the images in that
 * patient's case.
 */
import { Anchor, Badge, Button, Card, Group, Loader, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { stateColor, stateLabel } from '../case-states.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { formatName } from '../format.ts';
import { candidateCases, findCases } from './api.ts';
import type { CaseQuery, CaseSummary } from './api.ts';

export interface CaseChoicesProps {
  candidates: string[];
  /** The study's DICOM birth date (YYYY-MM-DD), offered as the first search. */
  birthDate: string | undefined;
  studyLabel: string;
  busy: boolean;
  onAttach: (choice: CaseSummary) => void;
}

function caseLabel(choice: CaseSummary): string {
  return choice.referenceNumber ?? `ServiceRequest/${choice.serviceRequest.id ?? ''}`;
}

function CaseOption({
  choice,
  studyLabel,
  busy,
  onAttach,
}: {
  choice: CaseSummary;
  studyLabel: string;
  busy: boolean;
  onAttach: (choice: CaseSummary) => void;
}) {
  const [confirming, setConfirming] = useState(false);
  const id = choice.serviceRequest.id ?? '';
  const patientName = formatName(choice.patient?.name) ?? 'no name on record';
  return (
    <Card withBorder padding="xs" data-case-option={id}>
      <Group justify="space-between" align="start" wrap="wrap">
        <Stack gap={0}>
          <Anchor component={Link} to={`/cases/${encodeURIComponent(id)}`} fw={600}>
            {caseLabel(choice)}
          </Anchor>
          <Text size="sm">
            {patientName}
            {choice.patient?.birthDate ? ` · born ${choice.patient.birthDate}` : ''}
          </Text>
          <Group gap="xs">
            {choice.state === undefined ? null : (
              <Badge color={stateColor(choice.state)} variant="light" size="sm">
                {stateLabel(choice.state)}
              </Badge>
            )}
            {choice.serviceRequest.status === 'active' ? null : (
              <Text size="xs" c="red.9">
                The request is {choice.serviceRequest.status}: only an active case can take a study.
              </Text>
            )}
          </Group>
        </Stack>
        {confirming ? null : (
          <Button size="compact-sm" onClick={() => setConfirming(true)} disabled={busy}>
            Attach to {caseLabel(choice)}
          </Button>
        )}
      </Group>
      {confirming ? (
        <Stack gap={4} mt="xs" role="group" aria-label={`Confirm attaching to ${caseLabel(choice)}`}>
          <Text size="sm">
            Attach the study of {studyLabel} to case {caseLabel(choice)} ({patientName})?
          </Text>
          <Group gap="xs">
            <Button size="compact-sm" color="blue" loading={busy} onClick={() => onAttach(choice)}>
              Confirm attaching
            </Button>
            <Button size="compact-sm" variant="default" onClick={() => setConfirming(false)} disabled={busy}>
              Cancel
            </Button>
          </Group>
        </Stack>
      ) : null}
    </Card>
  );
}

export function CaseChoices({ candidates, birthDate, studyLabel, busy, onAttach }: CaseChoicesProps) {
  const named = useQuery({
    queryKey: ['reconcile-candidates', candidates],
    queryFn: () => candidateCases(candidates),
    enabled: candidates.length > 0,
  });
  const [text, setText] = useState('');
  const [born, setBorn] = useState('');
  const search = useMutation({ mutationFn: (query: CaseQuery) => findCases(query) });
  const candidateIds = new Set(candidates);
  const found = (search.data ?? []).filter((choice) => !candidateIds.has(choice.serviceRequest.id ?? ''));
  return (
    <Stack gap="sm">
      <Title order={4} size="h5">
        Candidate cases
      </Title>
      {candidates.length === 0 ? <Text size="sm">The hub found no case for this study.</Text> : null}
      {named.error ? <ErrorAlert error={named.error} title="The candidate cases could not be read" /> : null}
      {named.isLoading ? <Loader size="sm" aria-label="Loading the candidate cases" /> : null}
      {(named.data ?? []).map((choice) => (
        <CaseOption
          key={choice.serviceRequest.id}
          choice={choice}
          studyLabel={studyLabel}
          busy={busy}
          onAttach={onAttach}
        />
      ))}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          search.mutate({ text, birthDate: born });
        }}
      >
        <Stack gap="xs">
          <Title order={4} size="h5">
            Find another case
          </Title>
          <Group align="end" gap="xs" wrap="wrap">
            <TextInput
              label="Reference number, accession number or patient name"
              value={text}
              onChange={(event) => setText(event.currentTarget.value)}
            />
            <TextInput
              type="date"
              label="Patient born on"
              value={born}
              onChange={(event) => setBorn(event.currentTarget.value)}
            />
            <Button type="submit" variant="default" loading={search.isPending}>
              Search cases
            </Button>
          </Group>
          {birthDate === undefined ? null : (
            <Group>
              <Button
                variant="subtle"
                size="compact-sm"
                onClick={() => {
                  setText('');
                  setBorn(birthDate);
                  search.mutate({ text: '', birthDate });
                }}
              >
                Cases of patients born {birthDate}, as the study says
              </Button>
            </Group>
          )}
        </Stack>
      </form>
      {search.error ? <ErrorAlert error={search.error} title="No search" /> : null}
      {search.data !== undefined && found.length === 0 ? (
        <Text size="sm" data-testid="case-search-empty">
          No other active case matches.
        </Text>
      ) : null}
      {found.map((choice) => (
        <CaseOption
          key={choice.serviceRequest.id}
          choice={choice}
          studyLabel={studyLabel}
          busy={busy}
          onAttach={onAttach}
        />
      ))}
    </Stack>
  );
}
