/**
 * A case as a specialist, radiologist or pathologist works on it, at /dashboard/cases/<id> (the
 * e-mails' links): the offer to answer (accept or decline) or their due date, then the case in tabs —
 * the summary and questions, the records, the imaging, and their own work: the opinion (the
 * specialist who accepted) or the pre-review report (its radiologist or pathologist). Nothing here is
 * a coordinator's: no moves, no assignments, no approval. A case that is not theirs reads as not
 * found, as at the API.
 */
import { Alert, Badge, Card, Group, Loader, Stack, Tabs, Text, Title } from '@mantine/core';
import type { Task } from '@medplum/fhirtypes';
import { Link, useParams, useSearchParams } from 'react-router';
import type { Session } from '../auth.ts';
import { stateColor, stateLabel } from '../case-states.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { ApiError } from '../fhir.ts';
import { caseStateOf } from '../format.ts';
import { taskCodeOf, taskLabel } from './codes.ts';
import { useCoordination, useMyCaseTasks, useQuestions, useServiceRequest } from './case-data.ts';
import { CaseSummary } from './CaseSummary.tsx';
import { DueDate } from './DueDate.tsx';
import { ImagingViewer } from './ImagingViewer.tsx';
import { statusLabel } from './MyTasks.tsx';
import { OfferActions } from './OfferActions.tsx';
import { OpinionPanel } from './OpinionEditor.tsx';
import { preReviewKindOf, preReviewTitle } from './pre-review.ts';
import { PreReviewForm } from './PreReviewForm.tsx';
import { Records } from './Records.tsx';
import { practitionerOf } from './roles.ts';
import './reviewer.css';

const WITHDRAWN = ['rejected', 'cancelled', 'failed', 'entered-in-error'];

function NotFound() {
  return (
    <Alert color="gray" title="Case not found" role="alert" data-testid="case-not-found">
      There is no such case, or it is not one of yours. <Link to="/">Back to your tasks</Link>
    </Alert>
  );
}

/** The person's current Task of a kind: the open one, else the newest. */
function current(tasks: Task[] | undefined, matches: (code: string | undefined) => boolean): Task | undefined {
  const mine = (tasks ?? []).filter((task) => matches(taskCodeOf(task)));
  return mine.find((task) => !WITHDRAWN.includes(task.status)) ?? mine[0];
}

export function ReviewerCase({ session }: { session: Session }) {
  const { id = '' } = useParams();
  const me = practitionerOf(session);
  const [searchParams, setSearchParams] = useSearchParams();
  const request = useServiceRequest(id);
  const coordination = useCoordination(id, { enabled: request.isSuccess });
  const myTasks = useMyCaseTasks(id, me, request.isSuccess);
  const questions = useQuestions(request.data);

  if (request.error instanceof ApiError && [404, 410].includes(request.error.status)) {
    return <NotFound />;
  }
  if (request.error) {
    return <ErrorAlert error={request.error} title="The case could not be read" />;
  }
  if (request.isPending) {
    return <Loader aria-label="Loading the case" />;
  }
  const offer = current(myTasks.data, (code) => code === 'specialist-opinion');
  const preReview = current(myTasks.data, (code) => preReviewKindOf(code) !== undefined);
  const preReviewKind = preReviewKindOf(taskCodeOf(preReview));
  const task = coordination.data ?? undefined;
  const state = caseStateOf(task);
  const tabs = [
    { value: 'case', label: 'Case' },
    { value: 'records', label: 'Records' },
    { value: 'imaging', label: 'Imaging' },
    ...(offer !== undefined && !WITHDRAWN.includes(offer.status) ? [{ value: 'opinion', label: 'Opinion' }] : []),
    ...(preReview !== undefined && preReviewKind !== undefined
      ? [{ value: 'pre-review', label: `${preReviewTitle(preReviewKind)} report` }]
      : []),
  ];
  const asked = searchParams.get('tab') ?? '';
  const tab = tabs.some((candidate) => candidate.value === asked) ? asked : 'case';
  const label = task?.groupIdentifier?.value ?? request.data.id ?? id;
  const mine = offer ?? preReview;
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Case {label}</Title>
        {coordination.isLoading ? (
          <Loader size="sm" />
        ) : (
          <Badge size="lg" color={stateColor(state)} variant="light" data-testid="case-state">
            {state === undefined ? 'No coordination yet' : stateLabel(state)}
          </Badge>
        )}
      </Group>
      {coordination.error ? <ErrorAlert error={coordination.error} title="The case's state could not be read" /> : null}
      {myTasks.error ? <ErrorAlert error={myTasks.error} title="Your tasks of this case could not be read" /> : null}
      {offer?.status === 'requested' ? (
        <Card withBorder padding="md" data-testid="offer">
          <Stack gap="xs">
            <Text fw={600}>This case is offered to you for a second opinion.</Text>
            <DueDate due={offer.restriction?.period?.end} />
            <OfferActions task={offer} caseLabel={label} />
          </Stack>
        </Card>
      ) : mine !== undefined ? (
        <Group gap="md" data-testid="my-task">
          <Text size="sm">
            {taskLabel(taskCodeOf(mine))}: {statusLabel(mine)}
          </Text>
          {WITHDRAWN.includes(mine.status) || mine.status === 'completed' ? null : (
            <DueDate due={mine.restriction?.period?.end} />
          )}
        </Group>
      ) : null}
      <Tabs
        value={tab}
        onChange={(value) =>
          setSearchParams(value === 'case' || value === null ? {} : { tab: value }, { replace: true })
        }
        keepMounted={false}
      >
        <Tabs.List>
          {tabs.map((candidate) => (
            <Tabs.Tab key={candidate.value} value={candidate.value}>
              {candidate.label}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        <Tabs.Panel value="case" pt="md">
          <CaseSummary caseId={id} request={request.data} questions={questions} />
        </Tabs.Panel>
        <Tabs.Panel value="records" pt="md">
          <Records caseId={id} />
        </Tabs.Panel>
        <Tabs.Panel value="imaging" pt="md">
          <ImagingViewer caseId={id} />
        </Tabs.Panel>
        <Tabs.Panel value="opinion" pt="md">
          {me === undefined ? null : questions.error ? (
            <ErrorAlert error={questions.error} title="The questions could not be read" />
          ) : questions.data === undefined ? (
            <Loader size="sm" aria-label="Loading the questions" />
          ) : (
            <OpinionPanel
              caseId={id}
              request={request.data}
              coordination={task}
              offer={offer}
              me={me}
              questions={questions.data}
            />
          )}
        </Tabs.Panel>
        <Tabs.Panel value="pre-review" pt="md">
          {preReview !== undefined && preReviewKind !== undefined && me !== undefined ? (
            <PreReviewForm caseId={id} request={request.data} task={preReview} kind={preReviewKind} me={me} />
          ) : null}
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
