/**
 * What every card of the reconciliation inbox shows the same way: the study's title, why it is here
 * (a badge) and since when, and the reason the hub gave when it could not apply the last decision.
 */
import { Alert, Card, Group, Stack, Text, Title } from '@mantine/core';
import type { ReactNode } from 'react';
import { formatDateTime } from '../format.ts';
import type { InboxItem } from './api.ts';

export function InboxCardFrame({
  item,
  label,
  ariaLabel,
  badge,
  since,
  children,
}: {
  item: InboxItem;
  /** The study's patient, as its DICOM names them. */
  label: string;
  ariaLabel: string;
  badge: ReactNode;
  /** The words before the Task's date ("Arrived", "First refused"). */
  since: string;
  children: ReactNode;
}) {
  return (
    <Card
      withBorder
      padding="md"
      component="article"
      aria-label={ariaLabel}
      data-task={item.task.id}
      data-study={item.studyInstanceUid}
    >
      <Stack gap="sm">
        <Group justify="space-between" align="start" wrap="wrap">
          <Title order={3} size="h4">
            Study of {label}
          </Title>
          <Group gap="xs">
            {badge}
            <Text size="sm" c="dimmed">
              {since} {formatDateTime(item.task.authoredOn)}
            </Text>
          </Group>
        </Group>
        {item.task.status === 'failed' ? (
          <Alert color="red" title="The last resolution could not be applied" data-testid="resolution-failed">
            {item.task.statusReason?.text ?? 'The hub gave no reason.'}
          </Alert>
        ) : null}
        {children}
      </Stack>
    </Card>
  );
}
