/**
 * The reconciliation inbox over the hub's public APIs (docs/case-workflow.md, "ImagingStudy"): a
 * study that matched no case, or several, waits in a `reconcile-imaging` Task (its focus the
 * ImagingStudy, its inputs the candidate cases). A coordinator attaches it by completing the Task
 * with the case's ServiceRequest as its output, or turns it away by rejecting the Task; the hub's
 * worker applies the match, and fails the Task with the reason when it cannot. The study's DICOM
 * identity comes from QIDO-RS; the cases from FHIR searches. Only coordinators and admins may see or
 * write these Tasks and unmatched studies: the hub refuses anyone else.
 *
 * The same inbox holds `confirm-imaging-claim` Tasks (workflow/imaging-claims.ts): a study a person
 * stored into a case refused an imaging system's instances, whose patient differs. The coordinator
 * confirms the case's claim by completing the Task (the sender's instances, sent again, join the
 * study), or keeps refusing them by rejecting it.
 */
import type { Bundle, ImagingStudy, Patient, ServiceRequest, Task } from '@medplum/fhirtypes';
import { ApiError, apiErrorOf, fhirGet, fhirRequest, hubFetch, searchEntries } from '../fhir.ts';
import { idOf } from '../format.ts';
import { studyIdentity } from './dicom.ts';
import type { DicomJsonDataset, StudyIdentity } from './dicom.ts';

const TASK_CODE = 'urn:hub:task-code';
const RECONCILE_STATUS = 'urn:hub:reconcile-status';
const TASK_INPUT = 'urn:hub:task-input';
const REFERENCE_NUMBER = 'urn:hub:reference-number';
const DICOM_UID = 'urn:dicom:uid';
const CASE_RESOURCE = 'urn:hub:case-resource';
/** Waiting for a coordinator: new, or a resolution the hub could not apply. */
const OPEN_STATUSES = 'requested,received,accepted,ready,in-progress,on-hold,failed';

export interface InboxItem {
  task: Task;
  /** `match`: a study to attach to a case; `claim`: a case's claim that refused a sender's instances. */
  kind: 'match' | 'claim';
  /** For a claim: the ServiceRequest id of the case that claimed the study. */
  claimedFor: string | undefined;
  reason: 'unmatched' | 'ambiguous' | undefined;
  /** The ServiceRequest ids the hub found the study might belong to. */
  candidates: string[];
  study: ImagingStudy | undefined;
  studyInstanceUid: string | undefined;
}

export interface InboxPage {
  items: InboxItem[];
  next: string | undefined;
}

export interface CaseSummary {
  serviceRequest: ServiceRequest;
  patient: Patient | undefined;
  referenceNumber: string | undefined;
  /** The coordination Task's state (urn:hub:case-state). */
  state: string | undefined;
}

export function firstInboxPage(count: number): string {
  return `Task?${new URLSearchParams({
    code: `${TASK_CODE}|reconcile-imaging,${TASK_CODE}|confirm-imaging-claim`,
    status: OPEN_STATUSES,
    _include: 'Task:focus',
    _sort: 'authored-on',
    _count: String(count),
  }).toString()}`;
}

function uidOf(study: ImagingStudy | undefined): string | undefined {
  const value = study?.identifier?.find((identifier) => identifier.system === DICOM_UID)?.value;
  return value?.replace(/^urn:oid:/, '');
}

/**
 * Whether the Task is one the hub wrote for this inbox: its identifier, which only the hub writes,
 * names the study it focuses on (`reconcile-imaging/<id>`, or `…/claim` for a claim). A Task of a
 * case that someone gave one of these codes is left out: acting on it would change that case's Task.
 */
function isHubTask(task: Task): boolean {
  const study = idOf(task.focus?.reference, 'ImagingStudy');
  if (study === undefined) {
    return false;
  }
  const expected = [`reconcile-imaging/${study}`, `reconcile-imaging/${study}/claim`];
  return (task.identifier ?? []).some(
    (identifier) => identifier.system === CASE_RESOURCE && expected.includes(identifier.value ?? ''),
  );
}

export async function inboxPage(url: string): Promise<InboxPage> {
  const bundle = await fhirGet<Bundle>(url);
  const studies = new Map(searchEntries<ImagingStudy>(bundle, 'ImagingStudy').map((study) => [study.id, study]));
  const items = (bundle.entry ?? [])
    .filter((entry) => entry.search?.mode !== 'include' && entry.resource?.resourceType === 'Task')
    .map((entry) => entry.resource as Task)
    .filter(isHubTask)
    .map((task): InboxItem => {
      const study = studies.get(idOf(task.focus?.reference, 'ImagingStudy'));
      const reason = task.businessStatus?.coding?.find((coding) => coding.system === RECONCILE_STATUS)?.code;
      const claim = task.code?.coding?.some(
        (coding) => coding.system === TASK_CODE && coding.code === 'confirm-imaging-claim',
      );
      return {
        task,
        kind: claim === true ? 'claim' : 'match',
        claimedFor: claim === true ? idOf(study?.basedOn?.[0]?.reference, 'ServiceRequest') : undefined,
        reason: reason === 'unmatched' || reason === 'ambiguous' ? reason : undefined,
        candidates: (task.input ?? [])
          .filter((input) => input.type?.coding?.some((c) => c.system === TASK_INPUT && c.code === 'candidate'))
          .map((input) => idOf(input.valueReference?.reference, 'ServiceRequest'))
          .filter((id): id is string => id !== undefined),
        study,
        studyInstanceUid: uidOf(study),
      };
    });
  return { items, next: bundle.link?.find((link) => link.relation === 'next')?.url };
}

/** The DICOM identity of each study, by Study Instance UID, in one QIDO-RS request. */
export async function studyIdentities(uids: readonly string[]): Promise<Map<string, StudyIdentity>> {
  if (uids.length === 0) {
    return new Map();
  }
  const query = new URLSearchParams({ StudyInstanceUID: uids.join(','), limit: String(uids.length) });
  const response = await hubFetch(`/dicomweb/studies?${query.toString()}`, {
    headers: { accept: 'application/dicom+json' },
  });
  if (!response.ok) {
    throw await apiErrorOf(response);
  }
  const datasets = (await response.json()) as DicomJsonDataset[];
  const found = new Map<string, StudyIdentity>();
  for (const dataset of datasets) {
    const identity = studyIdentity(dataset);
    if (identity !== undefined) {
      found.set(identity.studyInstanceUid, identity);
    }
  }
  return found;
}

function caseSummaries(bundle: Bundle): CaseSummary[] {
  const patients = new Map(searchEntries<Patient>(bundle, 'Patient').map((patient) => [patient.id, patient]));
  const coordination = new Map<string, Task>();
  for (const task of searchEntries<Task>(bundle, 'Task')) {
    const isCoordination = task.code?.coding?.some((c) => c.system === TASK_CODE && c.code === 'coordination');
    const caseId = idOf(task.focus?.reference, 'ServiceRequest');
    if (isCoordination && caseId !== undefined) {
      coordination.set(caseId, task);
    }
  }
  return (bundle.entry ?? [])
    .filter((entry) => entry.search?.mode !== 'include' && entry.resource?.resourceType === 'ServiceRequest')
    .map((entry) => entry.resource as ServiceRequest)
    .map((serviceRequest) => {
      const task = coordination.get(serviceRequest.id ?? '');
      return {
        serviceRequest,
        patient: patients.get(idOf(serviceRequest.subject?.reference, 'Patient')),
        referenceNumber:
          serviceRequest.identifier?.find((identifier) => identifier.system === REFERENCE_NUMBER)?.value ??
          task?.groupIdentifier?.value,
        state: task?.businessStatus?.coding?.find((c) => c.system === 'urn:hub:case-state')?.code,
      };
    });
}

const CASE_INCLUDES = { _include: 'ServiceRequest:subject', _revinclude: 'Task:focus' };

/** The candidate cases the hub named, with their patients and states. */
export async function candidateCases(ids: readonly string[]): Promise<CaseSummary[]> {
  if (ids.length === 0) {
    return [];
  }
  const query = new URLSearchParams({ _id: ids.join(','), ...CASE_INCLUDES, _count: String(ids.length) });
  return caseSummaries(await fhirGet<Bundle>(`ServiceRequest?${query.toString()}`));
}

export interface CaseQuery {
  /** A reference number, an accession number or another identifier of the request; or the patient's name. */
  text: string;
  /** YYYY-MM-DD: the patient's birth date. */
  birthDate: string;
}

/** Active cases (only those can take a study) by identifier or patient name, and birth date. */
export async function findCases(search: CaseQuery): Promise<CaseSummary[]> {
  const query = new URLSearchParams({ status: 'active', ...CASE_INCLUDES, _count: '10' });
  const text = search.text.trim();
  if (text !== '') {
    // An identifier has no spaces and a digit in it; anything else is taken for a name.
    query.set(/^\S*\d\S*$/.test(text) ? 'identifier' : 'subject:Patient.name', text);
  }
  if (search.birthDate !== '') {
    query.set('subject:Patient.birthdate', search.birthDate);
  }
  if (text === '' && search.birthDate === '') {
    throw new ApiError(400, 'Give a reference number, an accession number, a name or a birth date to search by.');
  }
  return caseSummaries(await fhirGet<Bundle>(`ServiceRequest?${query.toString()}`));
}

/** The Task as the coordinator leaves it: no earlier failure's reason or output. */
function resolvedTask(task: Task, change: Partial<Task>): Task {
  const { meta: _meta, statusReason: _reason, output: _output, ...rest } = task;
  return { ...rest, ...change };
}

function ifMatch(task: Task): Record<string, string> {
  const version = task.meta?.versionId;
  return version === undefined ? {} : { 'if-match': `W/"${version}"` };
}

/** Attaches the study to the case: the Task completed with the ServiceRequest as its one output. */
export function attachStudy(task: Task, serviceRequestId: string): Promise<Task> {
  return fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(task.id ?? '')}`,
    resolvedTask(task, {
      status: 'completed',
      output: [{ type: { text: 'case' }, valueReference: { reference: `ServiceRequest/${serviceRequestId}` } }],
    }),
    ifMatch(task),
  );
}

/** Confirms the case's claim of the study: the claim Task completed; the hub makes the claim firm. */
export function confirmClaim(task: Task): Promise<Task> {
  return fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(task.id ?? '')}`,
    resolvedTask(task, { status: 'completed' }),
    ifMatch(task),
  );
}

/** Turns the study away (or, for a claim, keeps refusing the sender's instances): the Task rejected, with the coordinator's reason. */
export function rejectStudy(task: Task, reason: string): Promise<Task> {
  return fhirRequest<Task>(
    'PUT',
    `Task/${encodeURIComponent(task.id ?? '')}`,
    resolvedTask(task, { status: 'rejected', statusReason: { text: reason } }),
    ifMatch(task),
  );
}
