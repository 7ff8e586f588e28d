/**
 * The specialist's opinion (docs/case-workflow.md, "The opinion"): the letter written section by
 * section — what was reviewed, an answer to each of the physician's questions, the discussion, the
 * recommendation, references — saved as a draft while they type, and submitted for the coordinators'
 * review by moving the case to `report-review`; a report the coordinators returned shows their reason
 * and is submitted again the same way. Once approved, the released letter is shown instead.
 */
import { Alert, Button, Card, Group, Loader, Stack, Text, Textarea, Title } from '@mantine/core';
import type { DiagnosticReport, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { useMemo, useRef, useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { caseStateOf } from '../format.ts';
import { PdfFrame } from '../viewers/PdfFrame.tsx';
import { CONSULTATION_NOTE, LOINC } from './codes.ts';
import { caseKeys, useApproval, useCaseReports, useRecords, useStudies } from './case-data.ts';
import { draftProblems, readLetter } from './letter.ts';
import type { LetterContext, LetterDraft } from './letter.ts';
import { createDraft, loadDraft, loadIssued, updateDraft } from './opinion-store.ts';
import type { StoredDraft } from './opinion-store.ts';
import { QuestionsBack } from './QuestionsBack.tsx';
import { SubmitOpinion } from './SubmitOpinion.tsx';
import { useAutosave } from './use-autosave.ts';

/** Pause in typing after which the draft is saved. */
const AUTOSAVE_MS = 1500;
const WRITING_STATES = ['specialist-review', 'awaiting-information', 'report-review'];
const RELEASED_STATES = ['report-released', 'report-accessed'];
const ACCEPTED = ['accepted', 'in-progress', 'on-hold', 'completed'];

export interface OpinionPanelProps {
  caseId: string;
  request: ServiceRequest;
  coordination: Task | null | undefined;
  offer: Task | undefined;
  me: string;
  questions: string[];
}

function IssuedOpinion({ caseId }: { caseId: string }) {
  const issued = useQuery({ queryKey: [...caseKeys.all(caseId), 'issued'], queryFn: () => loadIssued(caseId) });
  if (issued.error) {
    return <ErrorAlert error={issued.error} title="The released opinion could not be read" />;
  }
  if (issued.isPending) {
    return <Loader size="sm" aria-label="Loading the released opinion" />;
  }
  const url = issued.data?.presentedForm?.[0]?.url;
  const binary = /(?:^|\/)(Binary\/[A-Za-z0-9\-.]{1,64})$/.exec(url ?? '')?.[1];
  return (
    <Stack>
      <Alert color="green" title="The opinion was approved and released">
        Changes now go through an amendment, which the coordinators approve as they did the opinion.
      </Alert>
      {binary === undefined ? null : <PdfFrame path={`/fhir/${binary}`} title="The consultation letter" />}
    </Stack>
  );
}

function statusText(status: string, savedAt: Date | undefined): string {
  switch (status) {
    case 'saving':
      return 'Saving…';
    case 'unsaved':
      return 'Changes not saved yet';
    case 'failed':
      return 'Not saved';
    default:
      return savedAt === undefined ? 'No changes' : `Saved at ${savedAt.toLocaleTimeString()}`;
  }
}

function SectionField({
  label,
  description,
  value,
  onChange,
  required = true,
}: {
  label: string;
  description?: string;
  value: string;
  onChange: (value: string) => void;
  required?: boolean;
}) {
  return (
    <Textarea
      label={label}
      description={description}
      withAsterisk={required}
      autosize
      minRows={3}
      maxRows={20}
      value={value}
      onChange={(event) => onChange(event.currentTarget.value)}
    />
  );
}

interface EditorProps extends OpinionPanelProps {
  stored: StoredDraft | null;
  materials: Reference[];
}

function OpinionEditor({ caseId, request, coordination, me, questions, stored, materials }: EditorProps) {
  const [draft, setDraft] = useState<LetterDraft>(() => readLetter(stored?.letter, stored?.report, questions.length));
  const storedRef = useRef<StoredDraft | null>(stored);
  const context: LetterContext = { caseId, subject: request.subject, author: me, materials };
  const contextRef = useRef(context);
  contextRef.current = context;
  const autosave = useAutosave<LetterDraft>(
    async (value) => {
      storedRef.current =
        storedRef.current === null
          ? await createDraft(value, contextRef.current)
          : await updateDraft(storedRef.current, value, contextRef.current);
    },
    draft,
    AUTOSAVE_MS,
  );
  const update = (change: Partial<LetterDraft>) => {
    const next = { ...draft, ...change };
    setDraft(next);
    autosave.change(next);
  };
  const problems = draftProblems(draft);
  const approval = useApproval(caseId, true);
  const state = caseStateOf(coordination ?? undefined);
  const returned = state === 'specialist-review' && approval.data?.status === 'rejected';
  return (
    <Stack>
      {returned ? (
        <Alert color="orange" title="The coordinators returned your report" role="alert" data-testid="returned-reason">
          {approval.data?.statusReason?.text ?? 'No reason was given.'} Correct the letter and submit it again.
        </Alert>
      ) : null}
      <Group justify="space-between" align="center">
        <Title order={3} size="h4">
          Consultation letter
        </Title>
        <Group gap="xs">
          <Text
            size="sm"
            c={autosave.status === 'failed' ? 'red' : 'dimmed'}
            aria-live="polite"
            data-testid="save-status"
            data-status={autosave.status}
          >
            {statusText(autosave.status, autosave.savedAt)}
          </Text>
          {autosave.status === 'failed' ? (
            <Button size="compact-sm" variant="default" onClick={() => void autosave.flush().catch(() => undefined)}>
              Try saving again
            </Button>
          ) : null}
        </Group>
      </Group>
      {autosave.error ? <ErrorAlert error={autosave.error} title="The draft could not be saved" /> : null}
      <Text size="sm" c="dimmed">
        Your draft is seen by you and the coordinators only. It is saved as you type.
      </Text>
      <SectionField
        label="What was reviewed"
        description="The records, imaging and reports you based the opinion on."
        value={draft.reviewed}
        onChange={(reviewed) => update({ reviewed })}
      />
      {questions.map((question, index) => (
        <Card key={index} withBorder padding="sm" data-testid="question-section">
          <Text size="sm" fw={600}>
            Question {index + 1}
          </Text>
          <Text size="sm" mb="xs" className="letter-section-question">
            {question}
          </Text>
          <SectionField
            label={`Answer to question ${index + 1}`}
            value={draft.answers[index] ?? ''}
            onChange={(answer) => update({ answers: draft.answers.map((old, i) => (i === index ? answer : old)) })}
          />
        </Card>
      ))}
      <SectionField label="Discussion" value={draft.discussion} onChange={(discussion) => update({ discussion })} />
      <SectionField
        label="Recommendation"
        value={draft.recommendation}
        onChange={(recommendation) => update({ recommendation })}
      />
      <SectionField
        label="References"
        required={false}
        value={draft.references}
        onChange={(references) => update({ references })}
      />
      <Textarea
        label="Conclusion"
        description="One or two lines: the report's conclusion, as the physician's record system lists it."
        autosize
        minRows={1}
        value={draft.conclusion}
        onChange={(event) => update({ conclusion: event.currentTarget.value })}
      />
      <QuestionsBack
        caseId={caseId}
        request={request}
        coordination={coordination ?? undefined}
        me={me}
        canAsk={state === 'specialist-review' || state === 'awaiting-information'}
      />
      <SubmitOpinion
        caseId={caseId}
        coordination={coordination ?? undefined}
        approval={approval.data ?? undefined}
        problems={problems}
        flush={autosave.flush}
      />
    </Stack>
  );
}

/** The opinion tab of a case: the editor for the specialist who accepted it, or the released letter. */
export function OpinionPanel(props: OpinionPanelProps) {
  const { caseId, coordination, offer, me } = props;
  const state = caseStateOf(coordination ?? undefined);
  const accepted = offer !== undefined && ACCEPTED.includes(offer.status);
  const draft = useQuery({
    queryKey: [...caseKeys.all(caseId), 'opinion-draft'],
    queryFn: () => loadDraft(caseId, me),
    enabled: accepted,
    // The editor holds the text from here on; a refetch must not reset what the person is typing.
    staleTime: Infinity,
  });
  const records = useRecords(caseId);
  const studies = useStudies(caseId);
  const reports = useCaseReports(caseId);
  const materials = useMemo(
    () => [
      ...(records.data ?? []).map((document) => ({ reference: `DocumentReference/${document.id ?? ''}` })),
      ...(studies.data ?? []).map((study) => ({ reference: `ImagingStudy/${study.id ?? ''}` })),
      ...(reports.data ?? [])
        .filter(
          (report: DiagnosticReport) =>
            !report.code.coding?.some((c) => c.system === LOINC && c.code === CONSULTATION_NOTE),
        )
        .map((report) => ({ reference: `DiagnosticReport/${report.id ?? ''}` })),
    ],
    [records.data, studies.data, reports.data],
  );
  if (RELEASED_STATES.includes(state ?? '')) {
    return <IssuedOpinion caseId={caseId} />;
  }
  if (!accepted) {
    return <Text c="dimmed">Accept the case to write the opinion.</Text>;
  }
  if (!WRITING_STATES.includes(state ?? '')) {
    return <Text c="dimmed">The case is not with the specialist now.</Text>;
  }
  if (draft.error) {
    return <ErrorAlert error={draft.error} title="Your draft could not be read" />;
  }
  if (draft.isPending || records.isPending || studies.isPending || reports.isPending) {
    return <Loader size="sm" aria-label="Loading your draft" />;
  }
  // Keyed by the case alone: the editor keeps its own text once open, whatever is fetched again.
  return <OpinionEditor key={caseId} {...props} stored={draft.data} materials={materials} />;
}
