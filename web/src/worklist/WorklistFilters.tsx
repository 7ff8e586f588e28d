/** The worklist's filters: state, deadline, specialty sought and "mine"; each change is a new search. */
import { Checkbox, Group, NativeSelect } from '@mantine/core';
import { CASE_STATES, stateLabel } from '../case-states.ts';
import type { DeadlineFilter, FilterChange, WorklistFilters as Filters } from './search.ts';
import { DEADLINE_FILTERS } from './search.ts';
import { SPECIALTIES } from './specialties.ts';

const DEADLINE_LABELS: Record<DeadlineFilter, string> = { overdue: 'Overdue', week: 'Due this week' };

export function WorklistFilters({
  filters,
  mineLabel,
  onChange,
}: {
  filters: Filters;
  /** What "mine" means for this person; no checkbox where it means nothing more than every case. */
  mineLabel: string | undefined;
  onChange: (change: FilterChange) => void;
}) {
  return (
    <Group align="end" gap="sm" wrap="wrap">
      <NativeSelect
        label="State"
        value={filters.state}
        onChange={(event) => onChange({ state: event.currentTarget.value })}
        data={[
          { value: '', label: 'All states' },
          ...CASE_STATES.map((code) => ({ value: code, label: stateLabel(code) })),
        ]}
      />
      <NativeSelect
        label="Deadline"
        value={filters.deadline}
        onChange={(event) =>
          onChange({
            deadline: DEADLINE_FILTERS.find((value) => value === event.currentTarget.value) ?? '',
          })
        }
        data={[
          { value: '', label: 'Any' },
          ...DEADLINE_FILTERS.map((value) => ({ value, label: DEADLINE_LABELS[value] })),
        ]}
      />
      <NativeSelect
        label="Specialty sought"
        value={filters.specialty}
        onChange={(event) => onChange({ specialty: event.currentTarget.value })}
        data={[
          { value: '', label: 'Any specialty' },
          ...SPECIALTIES.map((specialty) => ({ value: specialty.code, label: specialty.label })),
        ]}
      />
      {mineLabel === undefined ? null : (
        <Checkbox
          label={mineLabel}
          checked={filters.mine}
          onChange={(event) => onChange({ mine: event.currentTarget.checked })}
          mb={8}
        />
      )}
    </Group>
  );
}
