/**
 * Why the matching proposed a specialist (or found nobody): the hub keeps it in a Provenance of the
 * offer or of the coordination Task, which only coordinators and admins may read, because it names
 * other specialists and why they were passed over. The newest one is shown, line by line.
 */
import { Loader, Stack, Text } from '@mantine/core';
import type { Bundle, Provenance } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, searchEntries } from '../fhir.ts';

const MATCHING_ACTIVITY = { system: 'urn:hub:provenance-activity', code: 'specialist-matching' };

export function RankingExplanation({ target, title }: { target: string; title: string }) {
  const explanation = useQuery({
    queryKey: ['ranking', target],
    queryFn: async () => {
      // R4 has no search parameter on Provenance.activity: the newest of the target's, then the matching's.
      const bundle = await fhirGet<Bundle>(`Provenance?target=${encodeURIComponent(target)}&_sort=-recorded&_count=20`);
      const matching = searchEntries<Provenance>(bundle, 'Provenance').find((provenance) =>
        provenance.activity?.coding?.some(
          (coding) => coding.system === MATCHING_ACTIVITY.system && coding.code === MATCHING_ACTIVITY.code,
        ),
      );
      return matching?.reason?.[0]?.text ?? null;
    },
  });
  if (explanation.error) {
    return <ErrorAlert error={explanation.error} title="The ranking could not be read" />;
  }
  if (explanation.isPending) {
    return <Loader size="sm" aria-label="Loading the ranking" />;
  }
  if (explanation.data === null) {
    return null;
  }
  return (
    <details data-testid="ranking-explanation">
      <summary>
        <Text span fw={600}>
          {title}
        </Text>
      </summary>
      <Stack gap={2} mt="xs">
        {explanation.data.split('\n').map((line, index) => (
          <Text key={index} size="sm">
            {line}
          </Text>
        ))}
      </Stack>
    </details>
  );
}
