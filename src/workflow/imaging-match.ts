/**
 * Matching a stored DICOM study to its case (docs/case-workflow.md), by, in order:
 * 1. its AccessionNumber equal to an identifier of an active ServiceRequest;
 * 2. a patient reference number (valid check digit) as its PatientID, AccessionNumber or one of
 *    its OtherPatientIDs, naming an active ServiceRequest;
 * 3. its PatientID equal to an identifier of a Patient with the same birth date, who has an active
 *    ServiceRequest.
 * The first rule that finds anything decides: one case is a match; none, or several, is a
 * `reconcile-imaging` Task for a coordinator, who resolves it by completing the Task with an
 * output referencing the ServiceRequest (or rejects it: not ours).
 *
 * A match lives in the DICOM index (dicom_study.matched_*), which the ImagingStudy builder reads,
 * so the study refresher's rewrites keep it. Applying one rewrites the ImagingStudy at once, under
 * the refresher's own per-study lock, in the transaction that records the match.
 */
import { Operator } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type { CodeableConcept, Patient, ServiceRequest, Task, TaskInput } from '@medplum/fhirtypes';
import { isValidReferenceNumber, REFERENCE_NUMBER_SYSTEM } from '../cases/reference-number.ts';
import type { Queryable } from '../db/database.ts';
import { DICOMWEB_ENDPOINT_ID } from '../dicom/ingest.ts';
import { writeImagingStudy } from '../dicom/study-refresher.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import { CASE_RESOURCE_SYSTEM, TASK_CODE_SYSTEM, referencedId } from './case-resources.ts';
import { readOptional, syncCaseMaterials } from './materials.ts';
import type { QuoteRecomputer } from './materials.ts';
import { actorOf } from '../auth/actor.ts';

/** Task.businessStatus of a reconcile-imaging Task: why the hub could not match the study. */
export const RECONCILE_STATUS_SYSTEM = 'urn:hub:reconcile-status';
/** Task.input.type of a reconcile-imaging Task's candidate cases. */
export const TASK_INPUT_SYSTEM = 'urn:hub:task-input';
export const RECONCILE_IMAGING = 'reconcile-imaging';

/** How a study was matched; `stored-into-case`: sent into a named case by STOW-RS (dicom/case-claim.ts). */
export type MatchMethod =
  'accession-number' | 'reference-number' | 'patient-identifier' | 'coordinator' | 'stored-into-case';

/** What the study says about whose it is, read from the DICOM index. */
export interface StudyEvidence {
  accessionNumber?: string;
  patientId?: string;
  otherPatientIds: string[];
  /** FHIR date (YYYY-MM-DD) from the DICOM PatientBirthDate. */
  birthDate?: string;
}

interface StudyMatchRow {
  study_instance_uid: string;
  imaging_study_id: string;
  patient_id: string | null;
  patient_birth_date: string | null;
  accession_number: string | null;
  matched_service_request_id: string | null;
}

const DICOM_OTHER_PATIENT_IDS = '00101000';
const DICOM_OTHER_PATIENT_IDS_SEQUENCE = '00101002';
const DICOM_PATIENT_ID = '00100020';

/**
 * Locks a stored study for matching, found by its ImagingStudy id: first the refresher's per-study
 * lock (so no refresh interleaves with the match), then the index row.
 */
async function lockStudy(tx: Queryable, imagingStudyId: string): Promise<StudyMatchRow | undefined> {
  const found = await tx.query<{ study_instance_uid: string }>(
    'SELECT study_instance_uid FROM dicom_study WHERE imaging_study_id = $1',
    [imagingStudyId],
  );
  const uid = found.rows[0]?.study_instance_uid;
  if (!uid) {
    return undefined;
  }
  await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('dicom-refresh:' || $1, 0))`, [uid]);
  const locked = await tx.query<StudyMatchRow>(
    `SELECT study_instance_uid, imaging_study_id, patient_id, patient_birth_date, accession_number, matched_service_request_id
     FROM dicom_study WHERE study_instance_uid = $1 FOR UPDATE`,
    [uid],
  );
  return locked.rows[0];
}

/** DICOM DA (YYYYMMDD) as a FHIR date, when it is one. */
function fhirDate(value: string | null): string | undefined {
  const match = value ? /^(\d{4})(\d{2})(\d{2})$/.exec(value.trim()) : null;
  return match ? `${match[1]}-${match[2]}-${match[3]}` : undefined;
}

const text = (value: string | null | undefined): string | undefined =>
  value && value.trim() !== '' ? value.trim() : undefined;

/** OtherPatientIDs (0010,1000) and the Patient IDs of OtherPatientIDsSequence (0010,1002), from one instance. */
export function otherPatientIdsOf(dicomJson: Record<string, { Value?: unknown[] }>): string[] {
  const ids: string[] = [];
  for (const value of dicomJson[DICOM_OTHER_PATIENT_IDS]?.Value ?? []) {
    if (typeof value === 'string') {
      ids.push(value);
    }
  }
  for (const item of dicomJson[DICOM_OTHER_PATIENT_IDS_SEQUENCE]?.Value ?? []) {
    const id = (item as Record<string, { Value?: unknown[] }>)[DICOM_PATIENT_ID]?.Value?.[0];
    if (typeof id === 'string') {
      ids.push(id);
    }
  }
  return [...new Set(ids.map((id) => id.trim()).filter((id) => id !== ''))];
}

async function studyEvidence(tx: Queryable, row: StudyMatchRow): Promise<StudyEvidence> {
  // OtherPatientIDs is not an indexed attribute; the study's first instance carries the patient module.
  const instance = await tx.query<{ dicom_json: string }>(
    'SELECT dicom_json FROM dicom_instance WHERE study_instance_uid = $1 ORDER BY created_at, sop_instance_uid LIMIT 1',
    [row.study_instance_uid],
  );
  const json = instance.rows[0]
    ? (JSON.parse(instance.rows[0].dicom_json) as Record<string, { Value?: unknown[] }>)
    : {};
  return {
    accessionNumber: text(row.accession_number),
    patientId: text(row.patient_id),
    otherPatientIds: otherPatientIdsOf(json),
    birthDate: fhirDate(row.patient_birth_date),
  };
}

/** R4 search §3.1.1.5 (escaping): a token value with `\`, `,`, `|` or `$` in it. */
const escapeToken = (value: string): string => value.replace(/[\\,|$]/g, (c) => `\\${c}`);

async function activeRequests(
  repo: HubRepository,
  code: 'identifier' | 'subject',
  values: readonly string[],
): Promise<string[]> {
  if (values.length === 0) {
    return [];
  }
  const found = await repo.searchResources<ServiceRequest>({
    resourceType: 'ServiceRequest',
    filters: [
      { code, operator: Operator.EQUALS, value: values.join(',') },
      { code: 'status', operator: Operator.EQUALS, value: 'active' },
    ],
    count: 20,
  });
  return [...new Set(found.map((request) => request.id))].sort();
}

/** The cases the study may belong to, by the first rule that finds any; undefined when none does. */
export async function findCandidateCases(
  repo: HubRepository,
  evidence: StudyEvidence,
): Promise<{ method: MatchMethod; serviceRequestIds: string[] } | undefined> {
  if (evidence.accessionNumber) {
    const ids = await activeRequests(repo, 'identifier', [escapeToken(evidence.accessionNumber)]);
    if (ids.length > 0) {
      return { method: 'accession-number', serviceRequestIds: ids };
    }
  }
  const referenceNumbers = [evidence.patientId, evidence.accessionNumber, ...evidence.otherPatientIds].filter(
    (value): value is string => value !== undefined && isValidReferenceNumber(value),
  );
  const byReference = await activeRequests(
    repo,
    'identifier',
    [...new Set(referenceNumbers)].map((value) => `${REFERENCE_NUMBER_SYSTEM}|${value}`),
  );
  if (byReference.length > 0) {
    return { method: 'reference-number', serviceRequestIds: byReference };
  }
  if (evidence.patientId && evidence.birthDate) {
    const patients = await repo.searchResources<Patient>({
      resourceType: 'Patient',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: escapeToken(evidence.patientId) }],
      count: 20,
    });
    const same = patients
      .filter((patient) => patient.birthDate === evidence.birthDate)
      .map((patient) => `Patient/${patient.id}`);
    const ids = await activeRequests(repo, 'subject', same);
    if (ids.length > 0) {
      return { method: 'patient-identifier', serviceRequestIds: ids };
    }
  }
  return undefined;
}

// ---- applying a match --------------------------------------------------------------------------

/** Why a match cannot be applied, in words for the coordinator (ids only). */
class MatchRefused extends Error {}

async function applyMatch(
  tx: Queryable,
  ctx: RepositoryContext,
  row: StudyMatchRow,
  serviceRequestId: string,
  method: MatchMethod,
  recomputeQuote: QuoteRecomputer,
  now: Date,
): Promise<void> {
  const repo = new HubRepository(ctx, tx);
  const request = await readOptional<ServiceRequest>(repo, 'ServiceRequest', serviceRequestId);
  if (!request) {
    throw new MatchRefused(`ServiceRequest/${serviceRequestId} does not exist`);
  }
  if (request.status !== 'active') {
    throw new MatchRefused(`ServiceRequest/${serviceRequestId} is ${request.status}, not active`);
  }
  const patientId = referencedId(request.subject, 'Patient');
  if (!patientId) {
    throw new MatchRefused(`ServiceRequest/${serviceRequestId} has no Patient subject`);
  }
  await tx.query(
    `UPDATE dicom_study SET matched_service_request_id = $2, matched_patient_id = $3, match_method = $4, matched_at = now()
     WHERE study_instance_uid = $1`,
    [row.study_instance_uid, serviceRequestId, patientId, method],
  );
  await writeImagingStudy(tx, { repository: ctx, endpointId: DICOMWEB_ENDPOINT_ID }, row.study_instance_uid);
  await syncCaseMaterials(tx, ctx, serviceRequestId, recomputeQuote, { now });
}

const reconcileIdentifier = (imagingStudyId: string): string => `${RECONCILE_IMAGING}/${imagingStudyId}`;

const reconcileStatus = (reason: 'unmatched' | 'ambiguous'): CodeableConcept => ({
  coding: [{ system: RECONCILE_STATUS_SYSTEM, code: reason }],
  text: reason === 'unmatched' ? 'The study matched no active case' : 'The study matched more than one active case',
});

const candidateInputs = (serviceRequestIds: readonly string[]): TaskInput[] =>
  serviceRequestIds.map((id) => ({
    type: { coding: [{ system: TASK_INPUT_SYSTEM, code: 'candidate' }] },
    valueReference: { reference: `ServiceRequest/${id}` },
  }));

async function findReconcileTask(repo: HubRepository, imagingStudyId: string): Promise<WithId<Task> | undefined> {
  const found = await repo.searchResources<Task>({
    resourceType: 'Task',
    filters: [
      {
        code: 'identifier',
        operator: Operator.EQUALS,
        value: `${CASE_RESOURCE_SYSTEM}|${reconcileIdentifier(imagingStudyId)}`,
      },
    ],
    count: 2,
  });
  return found[0];
}

/**
 * The ImagingStudy id of a coordinators' Task the hub wrote about a stored study: coded `code`, and
 * carrying the identifier only the hub writes for it, `identifierOf(<id of its focus>)` (a person
 * cannot write `urn:hub:case-resource` identifiers). Undefined for any other Task, a Task of a case
 * that someone gave the code among its codings included: the jobs leave those alone.
 */
export function hubStudyTaskFocus(
  task: Task,
  code: string,
  identifierOf: (imagingStudyId: string) => string,
): string | undefined {
  const coded = task.code?.coding?.some((coding) => coding.system === TASK_CODE_SYSTEM && coding.code === code);
  const imagingStudyId = referencedId(task.focus, 'ImagingStudy');
  if (coded !== true || imagingStudyId === undefined) {
    return undefined;
  }
  const identifier = identifierOf(imagingStudyId);
  const ours = task.identifier?.some((id) => id.system === CASE_RESOURCE_SYSTEM && id.value === identifier);
  return ours === true ? imagingStudyId : undefined;
}

/**
 * Writes the hub's coordinators' Task about a stored study (focused on its ImagingStudy, filed under
 * `identifier`), unless one with that identifier exists already.
 */
export async function createHubStudyTask(
  repo: HubRepository,
  task: { identifier: string; code: string; description: string; imagingStudyId: string; now: Date },
  fields: Partial<Task> = {},
): Promise<void> {
  await repo.conditionalCreate<Task>(
    {
      resourceType: 'Task',
      identifier: [{ system: CASE_RESOURCE_SYSTEM, value: task.identifier }],
      status: 'requested',
      intent: 'order',
      priority: 'routine',
      code: { coding: [{ system: TASK_CODE_SYSTEM, code: task.code }] },
      description: task.description,
      focus: { reference: `ImagingStudy/${task.imagingStudyId}` },
      authoredOn: task.now.toISOString(),
      ...fields,
    },
    {
      resourceType: 'Task',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: `${CASE_RESOURCE_SYSTEM}|${task.identifier}` }],
    },
  );
}

/** The hub's reconcile-imaging Task (hubStudyTaskFocus). */
function isReconcileTask(task: Task): boolean {
  return hubStudyTaskFocus(task, RECONCILE_IMAGING, reconcileIdentifier) !== undefined;
}

const OPEN: ReadonlySet<Task['status']> = new Set([
  'draft',
  'requested',
  'received',
  'accepted',
  'ready',
  'in-progress',
  'on-hold',
]);

/** Creates the study's reconcile-imaging Task, or brings an open one up to date with the latest evaluation. */
async function ensureReconcileTask(
  repo: HubRepository,
  imagingStudyId: string,
  reason: 'unmatched' | 'ambiguous',
  candidates: readonly string[],
  existing: WithId<Task> | undefined,
  now: Date,
): Promise<void> {
  const fields = {
    businessStatus: reconcileStatus(reason),
    ...(candidates.length > 0 ? { input: candidateInputs(candidates) } : {}),
  };
  if (existing) {
    const { input: _input, ...rest } = existing;
    await repo.updateResource<Task>({ ...rest, ...fields }, { ifMatch: existing.meta?.versionId });
    return;
  }
  await createHubStudyTask(
    repo,
    {
      identifier: reconcileIdentifier(imagingStudyId),
      code: RECONCILE_IMAGING,
      description: 'Match this imaging study to its case, or reject it',
      imagingStudyId,
      now,
    },
    fields,
  );
}

export type ImagingOutcome =
  | 'not-dicom'
  | 'already-matched'
  | 'matched'
  | 'unmatched'
  | 'ambiguous'
  /** A coordinator has the study's reconcile-imaging Task closed (rejected, failed, completed): theirs to act on. */
  | 'with-coordinator';

/**
 * An ImagingStudy was written: match its study to a case, or hand it to a coordinator. An already
 * matched study only has its case's Tasks and quote brought up to date. One transaction.
 */
export async function matchImagingStudy(
  tx: Queryable,
  ctx: RepositoryContext,
  imagingStudyId: string,
  recomputeQuote: QuoteRecomputer,
  now: Date,
): Promise<{ outcome: ImagingOutcome; method?: MatchMethod }> {
  const row = await lockStudy(tx, imagingStudyId);
  if (!row) {
    return { outcome: 'not-dicom' };
  }
  if (row.matched_service_request_id) {
    await syncCaseMaterials(tx, ctx, row.matched_service_request_id, recomputeQuote, { now });
    return { outcome: 'already-matched' };
  }
  const repo = new HubRepository(ctx, tx);
  const reconcile = await findReconcileTask(repo, imagingStudyId);
  if (reconcile && !OPEN.has(reconcile.status)) {
    return { outcome: 'with-coordinator' };
  }
  const found = await findCandidateCases(repo, await studyEvidence(tx, row));
  const [onlyCase] = found?.serviceRequestIds.length === 1 ? found.serviceRequestIds : [];
  if (found && onlyCase !== undefined) {
    try {
      await applyMatch(tx, ctx, row, onlyCase, found.method, recomputeQuote, now);
    } catch (err) {
      if (!(err instanceof MatchRefused)) {
        throw err;
      }
      // The one candidate cannot take the study (no Patient subject): a coordinator decides.
      await ensureReconcileTask(repo, imagingStudyId, 'unmatched', found.serviceRequestIds, reconcile, now);
      return { outcome: 'unmatched' };
    }
    if (reconcile) {
      await repo.updateResource<Task>(
        {
          ...reconcile,
          status: 'cancelled',
          statusReason: { text: `Matched automatically to ServiceRequest/${onlyCase}` },
        },
        { ifMatch: reconcile.meta?.versionId },
      );
    }
    return { outcome: 'matched', method: found.method };
  }
  const reason = found ? 'ambiguous' : 'unmatched';
  await ensureReconcileTask(repo, imagingStudyId, reason, found?.serviceRequestIds ?? [], reconcile, now);
  return { outcome: reason };
}

export type ResolutionOutcome =
  'not-reconcile' | 'gone' | 'open' | 'rejected' | 'closed' | 'matched' | 'already-matched' | 'failed';

/**
 * A Task was written: when it is a reconcile-imaging Task a coordinator completed with an output
 * referencing a ServiceRequest, apply that match; when the match cannot be applied, the Task
 * becomes `failed` with the reason. One transaction.
 */
export async function resolveReconciliation(
  tx: Queryable,
  ctx: RepositoryContext,
  taskId: string,
  recomputeQuote: QuoteRecomputer,
  now: Date,
): Promise<ResolutionOutcome> {
  const repo = new HubRepository(ctx, tx);
  const task = await readOptional<Task>(repo, 'Task', taskId);
  if (!task) {
    return 'gone';
  }
  if (!isReconcileTask(task)) {
    return 'not-reconcile';
  }
  if (task.status === 'rejected') {
    return 'rejected';
  }
  if (task.status !== 'completed') {
    return OPEN.has(task.status) ? 'open' : 'closed';
  }
  const fail = async (reason: string): Promise<ResolutionOutcome> => {
    await repo.updateResource<Task>(
      { ...task, status: 'failed', statusReason: { text: reason } },
      { ifMatch: task.meta?.versionId },
    );
    return 'failed';
  };
  // Only a coordinator's completion is applied (or the hub's, or one from the trusted network when
  // tokens are not required): a reconciliation moves a study, with its patient, into a case.
  const completer = actorOf(task.meta?.source);
  if (completer && completer.role !== 'coordinator' && completer.role !== 'admin') {
    return fail(`Only a coordinator may reconcile a study; a completion by a ${completer.role} is not applied`);
  }
  const requests = [
    ...new Set(
      (task.output ?? [])
        .map((item) => referencedId(item.valueReference, 'ServiceRequest'))
        .filter((id) => id !== undefined),
    ),
  ];
  const [serviceRequestId] = requests;
  if (requests.length !== 1 || serviceRequestId === undefined) {
    return fail(
      'A completed reconcile-imaging Task needs exactly one output referencing the ServiceRequest of the case',
    );
  }
  const imagingStudyId = referencedId(task.focus, 'ImagingStudy');
  const row = imagingStudyId ? await lockStudy(tx, imagingStudyId) : undefined;
  if (!imagingStudyId || !row) {
    return fail('The Task focus is not an ImagingStudy of a study stored by this hub');
  }
  if (row.matched_service_request_id === serviceRequestId) {
    await syncCaseMaterials(tx, ctx, serviceRequestId, recomputeQuote, { now });
    return 'already-matched';
  }
  if (row.matched_service_request_id) {
    return fail(`The study is already matched to ServiceRequest/${row.matched_service_request_id}`);
  }
  try {
    await applyMatch(tx, ctx, row, serviceRequestId, 'coordinator', recomputeQuote, now);
  } catch (err) {
    if (err instanceof MatchRefused) {
      return fail(err.message);
    }
    throw err;
  }
  return 'matched';
}

/** The ImagingStudy's current case, from the index (for tests and the coordinator's view). */
export async function matchOf(
  tx: Queryable,
  imagingStudyId: string,
): Promise<{ serviceRequestId: string; patientId: string; method: MatchMethod } | undefined> {
  const result = await tx.query<{
    matched_service_request_id: string | null;
    matched_patient_id: string;
    match_method: MatchMethod;
  }>(
    'SELECT matched_service_request_id, matched_patient_id, match_method FROM dicom_study WHERE imaging_study_id = $1',
    [imagingStudyId],
  );
  const row = result.rows[0];
  return row?.matched_service_request_id
    ? { serviceRequestId: row.matched_service_request_id, patientId: row.matched_patient_id, method: row.match_method }
    : undefined;
}
