/** A Task's due date with the business days left (or overdue, in red). */
import { Text } from '@mantine/core';
import { dueClock, formatDate } from '../format.ts';

const days = (count: number): string => `${count} business day${count === 1 ? '' : 's'}`;

export function DueDate({ due }: { due: string | undefined }) {
  if (due === undefined) {
    return <Text c="dimmed">No due date</Text>;
  }
  const clock = dueClock(due);
  return (
    <Text
      component="span"
      c={clock.overdue ? 'red' : undefined}
      fw={clock.overdue ? 700 : undefined}
      data-overdue={clock.overdue}
      data-testid="due-date"
    >
      Due {formatDate(due)} ·{' '}
      {clock.overdue ? `overdue by ${days(clock.businessDays)}` : `${days(clock.businessDays)} left`}
    </Text>
  );
}
