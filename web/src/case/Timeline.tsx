/**
 * The case's timeline: every change to its resources, the opinion's approvals and, for the staff, the
 * requests the hub refused (and on request every read and search), in time order, each with who did
 * it in words (Timeline-events.ts). A person sees the versions the hub lets them read, nothing more.
 */
import { Badge, Checkbox, Group, Loader, Stack, Table, Text } from '@mantine/core';
import type { ServiceRequest, Task } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { formatDateTime } from '../format.ts';
import { loadTimeline } from './Timeline-events.ts';
import type { TimelineKind } from './Timeline-events.ts';
import { caseKey, mayCoordinate } from './Tasks-data.ts';

const KIND_WORDS: Record<TimelineKind, { label: string; color: string }> = {
  change: { label: 'change', color: 'blue' },
  approval: { label: 'approval', color: 'green' },
  refused: { label: 'refused', color: 'red' },
  access: { label: 'access', color: 'gray' },
};

export interface CaseTimelineProps {
  serviceRequest: ServiceRequest;
  coordination: Task | undefined;
}

export function CaseTimeline({ serviceRequest, coordination }: CaseTimelineProps) {
  const staff = mayCoordinate();
  const [withReads, setWithReads] = useState(false);
  const timeline = useQuery({
    queryKey: caseKey(serviceRequest.id ?? '', 'timeline', coordination?.id ?? '', String(withReads)),
    queryFn: () => loadTimeline({ serviceRequest, coordination, staff, withReads: staff && withReads }),
  });
  return (
    <Stack gap="sm">
      {staff ? (
        <Checkbox
          label="Also every read and search of the case (the audit trail)"
          checked={withReads}
          onChange={(event) => setWithReads(event.currentTarget.checked)}
        />
      ) : (
        <Text size="sm" c="dimmed">
          The changes you may see; the audit trail and the approvals’ records are the coordinators’.
        </Text>
      )}
      {timeline.error ? <ErrorAlert error={timeline.error} title="The timeline could not be read" /> : null}
      {timeline.isLoading ? <Loader size="sm" aria-label="Loading the timeline" /> : null}
      {timeline.data ? (
        timeline.data.length === 0 ? (
          <Text c="dimmed">Nothing recorded yet.</Text>
        ) : (
          <Table data-testid="case-timeline">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>What happened</Table.Th>
                <Table.Th>Who</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {timeline.data.map((event) => (
                <Table.Tr key={event.key} data-kind={event.kind}>
                  <Table.Td>{formatDateTime(event.at)}</Table.Td>
                  <Table.Td>
                    <Group gap={6} wrap="nowrap" align="flex-start">
                      {event.kind === 'change' ? null : (
                        <Badge size="xs" variant="light" color={KIND_WORDS[event.kind].color}>
                          {KIND_WORDS[event.kind].label}
                        </Badge>
                      )}
                      <Text size="sm">
                        <Text span fw={600} size="sm">
                          {event.subject}
                        </Text>
                        : {event.what}
                      </Text>
                    </Group>
                  </Table.Td>
                  <Table.Td data-testid="timeline-who">{event.who}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )
      ) : null}
    </Stack>
  );
}
