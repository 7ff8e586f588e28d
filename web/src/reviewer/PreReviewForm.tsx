/**
 * The pre-review report form of the radiologist or pathologist the pre-review Task is assigned to:
 * whether the material is adequate for the specialist, the findings, the impression, and what was
 * reviewed. Submitted, the report is written `final` and the Task completed with it in one
 * transaction; the hub then moves the case on to matching once every pre-review is done.
 */
import { Alert, Button, Checkbox, Loader, Radio, Stack, Text, Textarea } from '@mantine/core';
import type { Bundle, DiagnosticReport, ServiceRequest, Specimen, Task } from '@medplum/fhirtypes';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, fhirRequest, searchEntries } from '../fhir.ts';
import { caseKeys, useStudies } from './case-data.ts';
import { ADEQUACY, completionBundle, preReviewProblems, preReviewReport, preReviewTitle } from './pre-review.ts';
import type { Adequacy, PreReviewKind } from './pre-review.ts';
import { ReportCard } from './Reports.tsx';

interface Material {
  reference: string;
  label: string;
}

function useMaterials(caseId: string, kind: PreReviewKind) {
  const studies = useStudies(caseId);
  const specimens = useQuery({
    queryKey: [...caseKeys.all(caseId), 'specimens'],
    queryFn: async () =>
      searchEntries<Specimen>(
        await fhirGet<Bundle>(`Specimen?request=${encodeURIComponent(`ServiceRequest/${caseId}`)}&_count=100`),
        'Specimen',
      ),
    enabled: kind === 'pathology',
  });
  if (kind === 'radiology') {
    return {
      isPending: studies.isPending,
      error: studies.error,
      materials: (studies.data ?? []).map((study, index): Material => ({
        reference: `ImagingStudy/${study.id ?? ''}`,
        label: `${study.description ?? `Study ${index + 1}`} (${(study.modality ?? []).map((m) => m.code).join(', ')}, ${study.numberOfInstances ?? 0} image${study.numberOfInstances === 1 ? '' : 's'})`,
      })),
    };
  }
  return {
    isPending: specimens.isPending,
    error: specimens.error,
    materials: (specimens.data ?? []).map((specimen, index): Material => ({
      reference: `Specimen/${specimen.id ?? ''}`,
      label:
        specimen.type?.text ??
        specimen.collection?.bodySite?.text ??
        specimen.accessionIdentifier?.value ??
        `Specimen ${index + 1}`,
    })),
  };
}

function CompletedReport({ task }: { task: Task }) {
  const reference = task.output
    ?.map((output) => output.valueReference?.reference)
    .find((value): value is string => /^DiagnosticReport\/[A-Za-z0-9\-.]{1,64}$/.test(value ?? ''));
  const report = useQuery({
    queryKey: ['read', reference],
    queryFn: () => fhirGet<DiagnosticReport>(reference ?? ''),
    enabled: reference !== undefined,
  });
  return (
    <Stack>
      <Alert color="green" title="Your pre-review is done" data-testid="pre-review-done">
        The report below went to the case with your name.
      </Alert>
      {report.error ? <ErrorAlert error={report.error} title="The report could not be read" /> : null}
      {report.data ? <ReportCard report={report.data} /> : null}
    </Stack>
  );
}

export interface PreReviewFormProps {
  caseId: string;
  request: ServiceRequest;
  task: Task;
  kind: PreReviewKind;
  me: string;
}

export function PreReviewForm({ caseId, request, task, kind, me }: PreReviewFormProps) {
  const queryClient = useQueryClient();
  const { materials, isPending, error } = useMaterials(caseId, kind);
  const [adequacy, setAdequacy] = useState<Adequacy>('adequate');
  const [findings, setFindings] = useState('');
  const [impression, setImpression] = useState('');
  const [excluded, setExcluded] = useState<Set<string>>(new Set());
  const [tried, setTried] = useState(false);
  const values = {
    adequacy,
    findings,
    impression,
    materials: materials.filter((material) => !excluded.has(material.reference)).map((material) => material.reference),
  };
  const problems = preReviewProblems(values);
  const submit = useMutation({
    mutationFn: async () => {
      const current = await fhirGet<Task>(`Task/${encodeURIComponent(task.id ?? '')}`);
      const now = new Date();
      await fhirRequest<Bundle>(
        'POST',
        '',
        completionBundle(preReviewReport(kind, values, request, me, now), current, now),
      );
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: caseKeys.all(caseId) });
      await queryClient.invalidateQueries({ queryKey: ['my-tasks'] });
    },
  });
  if (task.status === 'completed') {
    return <CompletedReport task={task} />;
  }
  if (['cancelled', 'rejected', 'failed', 'entered-in-error'].includes(task.status)) {
    return <Text c="dimmed">This pre-review is no longer asked of you.</Text>;
  }
  return (
    <form
      className="reviewer-form"
      onSubmit={(event) => {
        event.preventDefault();
        setTried(true);
        if (problems.length === 0) {
          submit.mutate();
        }
      }}
    >
      <Stack>
        <Text size="sm" c="dimmed">
          Your {preReviewTitle(kind).toLowerCase()} goes to the specialist who writes the opinion, and with the opinion
          to the referring physician. It is final once submitted.
        </Text>
        <Radio.Group
          label="Is the material adequate for the specialist’s review?"
          value={adequacy}
          onChange={setAdequacy}
          withAsterisk
        >
          <Stack gap={4} mt={4}>
            {ADEQUACY.map((option) => (
              <Radio key={option.code} value={option.code} label={option.display} />
            ))}
          </Stack>
        </Radio.Group>
        <Textarea
          label="Findings"
          withAsterisk
          autosize
          minRows={4}
          value={findings}
          error={tried && findings.trim() === '' ? 'Write the findings.' : undefined}
          onChange={(event) => setFindings(event.currentTarget.value)}
        />
        <Textarea
          label="Impression"
          description="The conclusion the specialist and the physician read first."
          withAsterisk
          autosize
          minRows={2}
          value={impression}
          error={tried && impression.trim() === '' ? 'Write the impression.' : undefined}
          onChange={(event) => setImpression(event.currentTarget.value)}
        />
        <Checkbox.Group
          label={kind === 'radiology' ? 'Studies reviewed' : 'Specimens reviewed'}
          value={values.materials}
          onChange={(chosen) =>
            setExcluded(
              new Set(
                materials.map((material) => material.reference).filter((reference) => !chosen.includes(reference)),
              ),
            )
          }
        >
          <Stack gap={4} mt={4}>
            {isPending ? <Loader size="xs" aria-label="Loading the material" /> : null}
            {error ? <ErrorAlert error={error} title="The material could not be read" /> : null}
            {!isPending && materials.length === 0 ? (
              <Text size="sm" c="dimmed">
                None has arrived for this case.
              </Text>
            ) : null}
            {materials.map((material) => (
              <Checkbox key={material.reference} value={material.reference} label={material.label} />
            ))}
          </Stack>
        </Checkbox.Group>
        {submit.error ? <ErrorAlert error={submit.error} title="The report was not submitted" /> : null}
        <div>
          <Button type="submit" loading={submit.isPending}>
            Submit the {preReviewTitle(kind).toLowerCase()} report
          </Button>
        </div>
      </Stack>
    </form>
  );
}
