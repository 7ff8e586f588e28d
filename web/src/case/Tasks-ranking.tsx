/**
 * Why the matching proposed a specialist (or found nobody), and why a coordinator's reassignment was
 * refused: the hub keeps both in Provenances of the offer or of the coordination Task, which only
 * coordinators, admins and system clients with Provenance scopes may read, because they name other
 * specialists and why they were passed over. The newest one of each is shown, line by line.
 */
import { Loader, Stack, Text } from '@mantine/core';
import type { Bundle, Provenance } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, searchEntries } from '../fhir.ts';

const MATCHING_ACTIVITY = { system: 'urn:hub:provenance-activity', code: 'specialist-matching' };
/** The reason code of a refused reassignment's Provenance (the ranking's has none). */
const REFUSED = { system: 'urn:hub:case-reason', code: 'move-refused' };

const isRefusal = (provenance: Provenance) =>
  provenance.reason?.some((reason) =>
    reason.coding?.some((coding) => coding.system === REFUSED.system && coding.code === REFUSED.code),
  ) === true;

/** The text of the newest matching Provenance of `target` that is (or is not) a refused reassignment's. */
async function matchingExplanation(target: string, refusal: boolean): Promise<string | null> {
  // R4 has no search parameter on Provenance.activity: the newest of the target's, then the matching's.
  const bundle = await fhirGet<Bundle>(`Provenance?target=${encodeURIComponent(target)}&_sort=-recorded&_count=20`);
  const matching = searchEntries<Provenance>(bundle, 'Provenance').find(
    (provenance) =>
      isRefusal(provenance) === refusal &&
      provenance.activity?.coding?.some(
        (coding) => coding.system === MATCHING_ACTIVITY.system && coding.code === MATCHING_ACTIVITY.code,
      ),
  );
  return matching?.reason?.[0]?.text ?? null;
}

/**
 * Why the hub refused the latest reassignment of the offer `target`, for a coordinator (undefined
 * `target`: not read); `version` is the coordination Task's, so that a new refusal is read again.
 */
export function useRefusalExplanation(target: string | undefined, version: string | undefined) {
  return useQuery({
    queryKey: ['reassignment-refusal', target, version],
    queryFn: () => matchingExplanation(target ?? '', true),
    enabled: target !== undefined,
  });
}

export function RankingExplanation({ target, title }: { target: string; title: string }) {
  const explanation = useQuery({
    queryKey: ['ranking', target],
    queryFn: () => matchingExplanation(target, false),
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
