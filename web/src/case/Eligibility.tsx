/**
 * The case's eligibility: the jurisdiction screening the hub's intake did of the patient's residence,
 * as the coordination Task records it (`urn:hub:extension:eligibility`: outcome, the reviews allowed,
 * the policy version, and each reason with the policy entry behind it). A screening recorded before
 * the hub kept its reasons shows those of the Task's statusReason, which a declined or unscreened
 * case carries.
 */
import { Badge, Card, Group, List, Loader, Stack, Text, Title } from '@mantine/core';
import type { Extension, Task } from '@medplum/fhirtypes';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { extensionOf, partOf, useCoordinationTask } from './Quote-data.ts';

const ELIGIBILITY_EXTENSION = 'urn:hub:extension:eligibility';
const REASON_SYSTEM = 'urn:hub:eligibility-reason';

const OUTCOMES: Record<string, { label: string; color: string }> = {
  eligible: { label: 'Eligible', color: 'green' },
  'eligible-with-restrictions': { label: 'Eligible with restrictions', color: 'orange' },
  ineligible: { label: 'Not eligible', color: 'red' },
  unscreened: { label: 'Not screened: a coordinator must check the residence', color: 'orange' },
};

interface Reason {
  code?: string;
  message: string;
  detail?: string;
  jurisdiction?: string;
  source?: string;
}

function reasonsOf(eligibility: Extension, task: Task): Reason[] {
  const recorded = (eligibility.extension ?? [])
    .filter((part) => part.url === 'reason')
    .map((reason) => ({
      code: partOf(reason, 'code')?.valueCoding?.code,
      message: partOf(reason, 'message')?.valueString ?? partOf(reason, 'code')?.valueCoding?.code ?? '',
      detail: partOf(reason, 'detail')?.valueString,
      jurisdiction: partOf(reason, 'jurisdiction')?.valueString,
      source: partOf(reason, 'source')?.valueString,
    }));
  if (recorded.length > 0) {
    return recorded;
  }
  const codes = (task.statusReason?.coding ?? []).filter((coding) => coding.system === REASON_SYSTEM);
  return codes.length > 0 || task.statusReason?.text
    ? [{ code: codes.map((coding) => coding.code).join(', '), message: task.statusReason?.text ?? '' }]
    : [];
}

function Reviews({ eligibility }: { eligibility: Extension }) {
  const allowed = (kind: 'radiology' | 'pathology') => partOf(eligibility, kind)?.valueBoolean;
  const word = (value: boolean | undefined) =>
    value === undefined ? 'not recorded' : value ? 'allowed' : 'not allowed';
  return (
    <Text size="sm" data-testid="eligibility-reviews">
      Radiology review {word(allowed('radiology'))}; pathology review {word(allowed('pathology'))}.
    </Text>
  );
}

function Screening({ task }: { task: Task }) {
  const eligibility = extensionOf(task, ELIGIBILITY_EXTENSION);
  if (eligibility === undefined) {
    return (
      <Text c="dimmed" data-testid="eligibility-outcome">
        Not screened yet: the hub screens the patient’s residence when the case is submitted.
      </Text>
    );
  }
  const outcome = partOf(eligibility, 'outcome')?.valueCode ?? 'unknown';
  const shown = OUTCOMES[outcome] ?? { label: outcome, color: 'gray' };
  const reasons = reasonsOf(eligibility, task);
  const policy = partOf(eligibility, 'policyVersion')?.valueString;
  return (
    <Stack gap="xs">
      <Group gap="sm">
        <Badge color={shown.color} variant="light" size="lg" data-testid="eligibility-outcome">
          {shown.label}
        </Badge>
        {policy ? (
          <Text size="sm" c="dimmed">
            Jurisdiction policy {policy}
          </Text>
        ) : null}
      </Group>
      <Reviews eligibility={eligibility} />
      {reasons.length > 0 ? (
        <List data-testid="eligibility-reasons" spacing="xs">
          {reasons.map((reason, index) => (
            <List.Item key={index}>
              <Text size="sm" fw={600} span>
                {reason.message}
              </Text>
              {reason.detail ? <Text size="sm">{reason.detail}</Text> : null}
              <Text size="xs" c="dimmed">
                {[reason.code, reason.jurisdiction ? `policy entry ${reason.jurisdiction}` : undefined, reason.source]
                  .filter((part) => part)
                  .join(' · ')}
              </Text>
            </List.Item>
          ))}
        </List>
      ) : outcome === 'eligible' ? (
        <Text size="sm" data-testid="eligibility-reasons">
          No restriction applies to the patient’s residence.
        </Text>
      ) : (
        <Text size="sm" c="dimmed" data-testid="eligibility-reasons">
          The reasons were not recorded with this screening.
        </Text>
      )}
    </Stack>
  );
}

export function Eligibility({ serviceRequestId }: { serviceRequestId: string }) {
  const coordination = useCoordinationTask(serviceRequestId);
  return (
    <Card withBorder padding="md" data-testid="case-eligibility">
      <Title order={3} size="h4" mb="xs">
        Eligibility
      </Title>
      {coordination.error ? (
        <ErrorAlert error={coordination.error} title="The screening could not be read" />
      ) : coordination.isPending ? (
        <Loader size="sm" role="status" aria-label="Loading the eligibility" />
      ) : coordination.data ? (
        <Screening task={coordination.data} />
      ) : (
        <Text c="dimmed">No coordination Task yet: the case has not been through intake.</Text>
      )}
    </Card>
  );
}
