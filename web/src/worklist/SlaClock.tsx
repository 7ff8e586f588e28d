/**
 * The case's SLA clock: the deadline the hub keeps on its coordination Task (`restriction.period.end`),
 * with the business days left, or overdue in red; stopped while the physician is asked (the due date
 * moves by the days the question was open).
 */
import { Text } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { caseStateOf, dueClock, formatDate } from '../format.ts';

const days = (count: number): string => `${count} business day${count === 1 ? '' : 's'}`;

export function SlaClock({ task, now }: { task: Task; now: Date }) {
  const due = task.restriction?.period?.end;
  if (due === undefined) {
    return (
      <Text c="dimmed" size="sm" data-testid="sla-clock">
        —
      </Text>
    );
  }
  if (caseStateOf(task) === 'awaiting-information') {
    return (
      <Text size="sm" data-testid="sla-clock" data-paused="true">
        {formatDate(due)} · paused while the physician is asked
      </Text>
    );
  }
  const clock = dueClock(due, now);
  return (
    <Text
      size="sm"
      c={clock.overdue ? 'red.9' : undefined}
      fw={clock.overdue ? 700 : undefined}
      data-testid="sla-clock"
      data-overdue={clock.overdue}
    >
      {formatDate(due)} ·{' '}
      {clock.overdue ? `overdue by ${days(clock.businessDays)}` : `${days(clock.businessDays)} left`}
    </Text>
  );
}
