/** A column header that sorts the worklist on the server: a button, its state in aria-sort. */
import { Table, UnstyledButton } from '@mantine/core';
import type { FilterChange, SortKey, WorklistFilters } from './search.ts';
import { FIRST_DESCENDING } from './search.ts';

export function SortHeader({
  label,
  sortKey,
  filters,
  onChange,
}: {
  label: string;
  sortKey: SortKey;
  filters: WorklistFilters;
  onChange: (change: FilterChange) => void;
}) {
  const active = filters.sort === sortKey;
  const descending = active ? filters.descending : FIRST_DESCENDING[sortKey];
  return (
    <Table.Th aria-sort={active ? (descending ? 'descending' : 'ascending') : undefined}>
      <UnstyledButton
        fw={700}
        fz="sm"
        onClick={() =>
          onChange((latest) => ({
            sort: sortKey,
            descending: latest.sort === sortKey ? !latest.descending : FIRST_DESCENDING[sortKey],
          }))
        }
      >
        {label}
        <span aria-hidden="true">{active ? (descending ? ' ▼' : ' ▲') : ' ↕'}</span>
      </UnstyledButton>
    </Table.Th>
  );
}
