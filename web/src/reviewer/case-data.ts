/**
 * What the reviewers' screens read of a case, each with the signed-in person's token: the request,
 * its coordination Task (the state), the person's own Tasks of it, the physician's questions and the
 * approval Task of a submitted opinion. The hub answers only what the person may see.
 */
import type {
  Bundle,
  DiagnosticReport,
  DocumentReference,
  ImagingStudy,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { fhirGet, searchEntries } from '../fhir.ts';
import { QUESTION_LINK_ID, TASK_CODE_SYSTEM, taskCodeOf } from './codes.ts';

const enc = encodeURIComponent;

export const caseKeys = {
  all: (id: string) => ['reviewer-case', id] as const,
  request: (id: string) => ['reviewer-case', id, 'request'] as const,
  coordination: (id: string) => ['reviewer-case', id, 'coordination'] as const,
  myTasks: (id: string) => ['reviewer-case', id, 'my-tasks'] as const,
  approval: (id: string) => ['reviewer-case', id, 'approval'] as const,
};

export function useServiceRequest(id: string) {
  return useQuery({
    queryKey: caseKeys.request(id),
    queryFn: () => fhirGet<ServiceRequest>(`ServiceRequest/${enc(id)}`),
  });
}

export function useCoordination(id: string, options: { enabled: boolean; refetchInterval?: number | false }) {
  return useQuery({
    queryKey: caseKeys.coordination(id),
    queryFn: async () =>
      searchEntries<Task>(
        await fhirGet<Bundle>(
          `Task?code=${enc(`${TASK_CODE_SYSTEM}|coordination`)}&focus=${enc(`ServiceRequest/${id}`)}`,
        ),
        'Task',
      )[0] ?? null,
    enabled: options.enabled,
    refetchInterval: options.refetchInterval,
  });
}

/** The person's own Tasks of the case (the offer, a pre-review), newest first. */
export function useMyCaseTasks(id: string, practitioner: string | undefined, enabled: boolean) {
  return useQuery({
    queryKey: caseKeys.myTasks(id),
    queryFn: async () =>
      searchEntries<Task>(
        await fhirGet<Bundle>(
          `Task?based-on=${enc(`ServiceRequest/${id}`)}&owner=${enc(practitioner ?? '')}&_sort=-_lastUpdated&_count=50`,
        ),
        'Task',
      ),
    enabled: enabled && practitioner !== undefined,
  });
}

/** The case's approval Task, once a submission opened it (its statusReason says why a report came back). */
export function useApproval(id: string, enabled: boolean) {
  return useQuery({
    queryKey: caseKeys.approval(id),
    queryFn: async () =>
      searchEntries<Task>(
        await fhirGet<Bundle>(
          `Task?code=${enc(`${TASK_CODE_SYSTEM}|approve`)}&based-on=${enc(`ServiceRequest/${id}`)}`,
        ),
        'Task',
      ).find((task) => taskCodeOf(task) === 'approve') ?? null,
    enabled,
  });
}

function collectQuestions(items: readonly QuestionnaireResponseItem[] | undefined, into: string[]): void {
  for (const item of items ?? []) {
    if (item.linkId === QUESTION_LINK_ID) {
      for (const answer of item.answer ?? []) {
        if (typeof answer.valueString === 'string') {
          into.push(answer.valueString);
        }
      }
    }
    collectQuestions(item.item, into);
    for (const answer of item.answer ?? []) {
      collectQuestions(answer.item, into);
    }
  }
}

/**
 * The physician's questions in the hub's order and numbering (src/workflow/quote.ts questionTexts):
 * every QuestionnaireResponse the request lists, the answers of its `question` items. The letter's
 * answer sections name them by this number.
 */
export function useQuestions(request: ServiceRequest | undefined) {
  const references = (request?.supportingInfo ?? [])
    .map((info) => info.reference)
    .filter((reference): reference is string => /^QuestionnaireResponse\/[A-Za-z0-9\-.]{1,64}$/.test(reference ?? ''));
  return useQuery({
    queryKey: ['reviewer-questions', ...references],
    queryFn: async () => {
      const questions: string[] = [];
      for (const reference of references) {
        collectQuestions((await fhirGet<QuestionnaireResponse>(reference)).item, questions);
      }
      return questions;
    },
    enabled: request !== undefined,
  });
}

/** The case's records: DocumentReferences related to the request. */
export function useRecords(id: string) {
  return useQuery({
    queryKey: [...caseKeys.all(id), 'records'],
    queryFn: async () =>
      searchEntries<DocumentReference>(
        await fhirGet<Bundle>(
          `DocumentReference?related=${enc(`ServiceRequest/${id}`)}&_sort=-_lastUpdated&_count=100`,
        ),
        'DocumentReference',
      ),
  });
}

/** The case's imaging: the ImagingStudies matched to the request. */
export function useStudies(id: string) {
  return useQuery({
    queryKey: [...caseKeys.all(id), 'imaging'],
    queryFn: async () =>
      searchEntries<ImagingStudy>(
        await fhirGet<Bundle>(`ImagingStudy?basedon=${enc(`ServiceRequest/${id}`)}&_count=50`),
        'ImagingStudy',
      ),
  });
}

/** The case's reports the person may read (pre-reviews, outside reports, their own drafts), newest first. */
export function useCaseReports(id: string) {
  return useQuery({
    queryKey: [...caseKeys.all(id), 'reports'],
    queryFn: async () =>
      searchEntries<DiagnosticReport>(
        await fhirGet<Bundle>(
          `DiagnosticReport?based-on=${enc(`ServiceRequest/${id}`)}&_sort=-_lastUpdated&_count=100`,
        ),
        'DiagnosticReport',
      ),
  });
}
