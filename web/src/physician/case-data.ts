/**
 * What the physician's and the patient's case pages read from the hub, each a FHIR search or read
 * with the person's token. None of them touches the opinion itself (its report, letter,
 * DocumentReference or PDF): reading that is what releases it to the patient (docs/access.md,
 * "Release"), so only the physician's explicit "read" does (opinion-data.ts). The records search
 * leaves the letter's DocumentReference out on the server for the same reason.
 */
import type {
  Bundle,
  Communication,
  DocumentReference,
  ImagingStudy,
  QuestionnaireResponse,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import { fhirGet, searchEntries } from '../fhir.ts';
import { caseStateOf, idOf } from '../format.ts';

export const TASK_CODE = 'urn:hub:task-code';
export const LOINC = 'http://loinc.org';
/** LOINC 11488-4 Consultation note: the opinion's report, letter and DocumentReference. */
export const CONSULTATION_NOTE = '11488-4';

/** How often a page looks again while it waits for the hub to act on what the person did. */
export const WATCH_MS = 2_000;

const q = encodeURIComponent;

export function useServiceRequest(id: string) {
  return useQuery({
    queryKey: ['read', `ServiceRequest/${id}`],
    queryFn: () => fhirGet<ServiceRequest>(`ServiceRequest/${q(id)}`),
  });
}

/** The case's coordination Task (its state), looked at again every `watchMs` while set. */
export function useCoordination(id: string, enabled: boolean, watchMs?: number) {
  const query = useQuery({
    queryKey: ['coordination', id],
    queryFn: () => fhirGet<Bundle>(`Task?code=${q(`${TASK_CODE}|coordination`)}&focus=${q(`ServiceRequest/${id}`)}`),
    enabled,
    refetchInterval: watchMs ?? false,
  });
  const task = query.data ? searchEntries<Task>(query.data, 'Task')[0] : undefined;
  return { ...query, task, state: caseStateOf(task) };
}

/** The ids of the released opinion's report and letter DocumentReference, from the coordination Task's output. */
export function opinionOutputs(task: Task | undefined): { reportId?: string; letterDocumentId?: string } {
  const output = (code: string, type: string): string | undefined =>
    (task?.output ?? [])
      .filter((entry) =>
        entry.type.coding?.some((coding) => coding.system === 'urn:hub:task-output' && coding.code === code),
      )
      .map((entry) => idOf(entry.valueReference?.reference, type))
      .find((id) => id !== undefined);
  return {
    reportId: output('opinion-report', 'DiagnosticReport'),
    letterDocumentId: output('opinion-letter', 'DocumentReference'),
  };
}

export function useCommunications(id: string, enabled = true) {
  const query = useQuery({
    queryKey: ['communications', id],
    queryFn: () => fhirGet<Bundle>(`Communication?based-on=${q(`ServiceRequest/${id}`)}&_sort=_lastUpdated&_count=200`),
    enabled,
  });
  return { ...query, communications: query.data ? searchEntries<Communication>(query.data, 'Communication') : [] };
}

export function useExpectedMaterials(id: string, refetchMs: number | false) {
  const query = useQuery({
    queryKey: ['expected-materials', id],
    queryFn: () =>
      fhirGet<Bundle>(`Task?code=${q(`${TASK_CODE}|expect-material`)}&based-on=${q(`ServiceRequest/${id}`)}`),
    refetchInterval: refetchMs,
  });
  return { ...query, tasks: query.data ? searchEntries<Task>(query.data, 'Task') : [] };
}

/** The case's records, without the opinion's own DocumentReference (filtered by the hub, see above). */
export function useRecords(id: string, refetchMs: number | false) {
  const query = useQuery({
    queryKey: ['records', id],
    queryFn: () =>
      fhirGet<Bundle>(
        `DocumentReference?related=${q(`ServiceRequest/${id}`)}&type:not=${q(`${LOINC}|${CONSULTATION_NOTE}`)}&_sort=-_lastUpdated&_count=100`,
      ),
    refetchInterval: refetchMs,
  });
  return { ...query, documents: query.data ? searchEntries<DocumentReference>(query.data, 'DocumentReference') : [] };
}

export function useStudies(id: string, refetchMs: number | false) {
  const query = useQuery({
    queryKey: ['studies', id],
    queryFn: () =>
      fhirGet<Bundle>(
        `ImagingStudy?based-on=${q(`ServiceRequest/${id}`)}&_count=100&_elements=identifier,description,started,modality,numberOfSeries,numberOfInstances`,
      ),
    refetchInterval: refetchMs,
  });
  return { ...query, studies: query.data ? searchEntries<ImagingStudy>(query.data, 'ImagingStudy') : [] };
}

/** The physician's questions, in order: every answer of the QuestionnaireResponse the request names. */
export function useQuestions(request: ServiceRequest | undefined) {
  const reference = request?.supportingInfo?.find((info) =>
    info.reference?.startsWith('QuestionnaireResponse/'),
  )?.reference;
  const query = useQuery({
    queryKey: ['read', reference],
    queryFn: () => fhirGet<QuestionnaireResponse>(reference as string),
    enabled: reference !== undefined && /^QuestionnaireResponse\/[A-Za-z0-9\-.]{1,64}$/.test(reference),
  });
  const questions = (query.data?.item ?? []).flatMap(function answers(item): string[] {
    return [
      ...(item.answer ?? []).flatMap((answer) => (answer.valueString === undefined ? [] : [answer.valueString])),
      ...(item.item ?? []).flatMap(answers),
    ];
  });
  return { ...query, questions };
}

/** The text of a message: its string payloads, one paragraph each. */
export function messageText(communication: Communication): string[] {
  return (communication.payload ?? []).flatMap((payload) =>
    payload.contentString === undefined ? [] : [payload.contentString],
  );
}
