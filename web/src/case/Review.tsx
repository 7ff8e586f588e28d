/**
 * The opinion on the case page. In report review: the draft the specialist submitted (the
 * DiagnosticReport the `approve` Task names, its conclusion and its letter, section by section), and
 * for a coordinator the decision (Review-decision.tsx). Once released: the report as approved, with
 * its PDF. Drafts are the author's and the staff's alone (docs/access.md, "Drafts"): anyone else gets
 * the hub's not-found and reads that the opinion is not released yet. Reading the released report is
 * the physician's reading that releases it to the patient, as at the API.
 */
import { Alert, Badge, Card, Group, Loader, Stack, Text, Title } from '@mantine/core';
import type { Composition, DiagnosticReport, QuestionnaireResponse, ServiceRequest, Task } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { ApiError, fhirGet } from '../fhir.ts';
import { caseStateOf, formatDateTime, idOf } from '../format.ts';
import { PdfFrame } from '../viewers/PdfFrame.tsx';
import { ReviewDecision } from './Review-decision.tsx';
import { LetterText, questionsOf } from './Review-letter.tsx';
import {
  CASE_REASON_SYSTEM,
  caseKey,
  mayCoordinate,
  taskCodeOf,
  useCaseTasks,
  usePractitionerNames,
} from './Tasks-data.ts';

const LETTER_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
const TASK_OUTPUT_SYSTEM = 'urn:hub:task-output';
const OPINION_STATES = ['report-review', 'report-released', 'report-accessed'];

/** The report the section shows: the submitted draft in review, the released one after. */
function reportReference(state: string | undefined, coordination: Task | undefined, approval: Task | undefined) {
  if (state === 'report-review') {
    return idOf(approval?.focus?.reference, 'DiagnosticReport');
  }
  const output = coordination?.output?.find((entry) =>
    entry.type.coding?.some((coding) => coding.system === TASK_OUTPUT_SYSTEM && coding.code === 'opinion-report'),
  );
  return idOf(output?.valueReference?.reference, 'DiagnosticReport');
}

/** The hub's path of the report's PDF (its presentedForm names a Binary of the hub). */
function pdfPath(report: DiagnosticReport): string | undefined {
  const url = report.presentedForm?.find((form) => form.contentType === 'application/pdf')?.url;
  const binary = /(?:^|\/)Binary\/([A-Za-z0-9\-.]{1,64})$/.exec(url ?? '')?.[1];
  return binary ? `/fhir/Binary/${binary}` : undefined;
}

/** A refusal of a coordinator's decision the hub wrote on the coordination Task (a reassignment's is the Tasks section's). */
function refusalOf(coordination: Task | undefined): string | undefined {
  const refused = coordination?.statusReason?.coding?.some(
    (coding) => coding.system === CASE_REASON_SYSTEM && coding.code === 'move-refused',
  );
  const text = coordination?.statusReason?.text;
  return refused && text && !text.startsWith('The reassignment') ? text : undefined;
}

function Opinion({ serviceRequest, coordination, approval, reportId }: OpinionProps & { reportId: string }) {
  const id = serviceRequest.id ?? '';
  const report = useQuery({
    queryKey: caseKey(id, 'report', reportId),
    queryFn: () => fhirGet<DiagnosticReport>(`DiagnosticReport/${encodeURIComponent(reportId)}`),
    retry: false,
  });
  const letterId = idOf(
    report.data?.extension?.find((extension) => extension.url === LETTER_EXTENSION)?.valueReference?.reference,
    'Composition',
  );
  const letter = useQuery({
    queryKey: caseKey(id, 'letter', letterId ?? ''),
    queryFn: () => fhirGet<Composition>(`Composition/${encodeURIComponent(letterId ?? '')}`),
    enabled: letterId !== undefined,
  });
  const questionnaire = serviceRequest.supportingInfo?.find((info) =>
    info.reference?.startsWith('QuestionnaireResponse/'),
  )?.reference;
  const questions = useQuery({
    queryKey: ['read', questionnaire],
    queryFn: () => fhirGet<QuestionnaireResponse>(questionnaire ?? ''),
    enabled: questionnaire !== undefined,
  });
  const nameOf = usePractitionerNames([approval?.requester, ...(report.data?.resultsInterpreter ?? [])]);
  if (report.error instanceof ApiError && [403, 404, 410].includes(report.error.status)) {
    return (
      <Text c="dimmed" data-testid="opinion-not-released">
        The opinion is not released yet: until a coordinator approves it, the draft is seen by its author and the
        coordinators only.
      </Text>
    );
  }
  if (report.error) {
    return <ErrorAlert error={report.error} title="The report could not be read" />;
  }
  if (report.isLoading || report.data === undefined) {
    return <Loader size="sm" aria-label="Loading the report" />;
  }
  const draft = report.data.status !== 'final' && report.data.status !== 'amended' && report.data.status !== 'appended';
  const pdf = pdfPath(report.data);
  const state = caseStateOf(coordination);
  const refusal = state === 'report-review' ? refusalOf(coordination) : undefined;
  return (
    <Stack gap="md" data-testid="opinion">
      <Group gap="sm">
        <Badge variant="light" color={draft ? 'yellow' : 'green'}>
          {draft ? `Draft (${report.data.status})` : `Released (${report.data.status})`}
        </Badge>
        {report.data.resultsInterpreter?.[0] ? (
          <Text size="sm">By {nameOf(report.data.resultsInterpreter[0])}</Text>
        ) : null}
        {draft && approval?.restriction?.period?.end ? (
          <Text size="sm" c="dimmed">
            Submitted by {nameOf(approval.requester) ?? 'the specialist'}; the review is due{' '}
            {formatDateTime(approval.restriction.period.end)}
          </Text>
        ) : null}
      </Group>
      {refusal ? (
        <Alert color="red" title="The hub refused the decision" data-testid="review-refusal">
          {refusal}
        </Alert>
      ) : null}
      {report.data.conclusion ? (
        <Stack gap={2}>
          <Text fw={600}>Conclusion</Text>
          <Text size="sm" data-testid="opinion-conclusion">
            {report.data.conclusion}
          </Text>
        </Stack>
      ) : null}
      {letter.error ? <ErrorAlert error={letter.error} title="The letter could not be read" /> : null}
      {letter.data ? <LetterText letter={letter.data} questions={questionsOf(questions.data)} /> : null}
      {pdf ? <PdfFrame path={pdf} title="The consultation letter" /> : null}
      {draft && state === 'report-review' && approval && mayCoordinate() ? (
        <ReviewDecision serviceRequestId={id} approval={approval} />
      ) : null}
    </Stack>
  );
}

interface OpinionProps {
  serviceRequest: ServiceRequest;
  coordination: Task | undefined;
  approval?: Task | undefined;
}

/** The opinion's section, while it is reviewed and once released; nothing before. */
export function OpinionReviewSection({ serviceRequest, coordination }: OpinionProps) {
  const state = caseStateOf(coordination);
  const tasks = useCaseTasks(serviceRequest.id ?? '', coordination?.id);
  if (!OPINION_STATES.includes(state ?? '')) {
    return null;
  }
  const approval = (tasks.data ?? []).filter((task) => taskCodeOf(task) === 'approve').at(-1);
  const reportId = reportReference(state, coordination, approval);
  return (
    <Card withBorder padding="md" data-testid="opinion-section">
      <Title order={3} size="h4" mb="xs">
        {state === 'report-review' ? 'The opinion under review' : 'The opinion'}
      </Title>
      {tasks.error ? <ErrorAlert error={tasks.error} title="The case’s Tasks could not be read" /> : null}
      {tasks.isLoading ? <Loader size="sm" /> : null}
      {reportId ? (
        <Opinion serviceRequest={serviceRequest} coordination={coordination} approval={approval} reportId={reportId} />
      ) : tasks.isSuccess ? (
        <Text c="dimmed">No report is named for this case yet.</Text>
      ) : null}
    </Card>
  );
}
