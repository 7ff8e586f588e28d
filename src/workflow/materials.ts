/**
 * Materials arriving for a case (docs/case-workflow.md): medical records as
 * DocumentReferences, whose PDF page count is read and stored on them, and pathology material as
 * Specimens; imaging-match.ts brings the imaging studies.
 *
 * `syncCaseMaterials` derives a case's expect-material Tasks from every material the case has, not
 * from the one that just arrived, so material jobs may run in any order, together, or twice: a run
 * that finds nothing new writes nothing (HubRepository skips an update whose content is unchanged).
 * Every read-modify-write of a resource a person may edit too carries If-Match: a concurrent edit
 * fails the job, which retries on the fresh version.
 */
import { Operator, OperationOutcomeError, isGone, isNotFound } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type {
  Attachment,
  DocumentReference,
  Reference,
  Resource,
  ServiceRequest,
  Specimen,
  Task,
  TaskInput,
  TaskOutput,
} from '@medplum/fhirtypes';
import { PDFDocument } from 'pdf-lib';
import { selectSchedule } from '../cases/fees.ts';
import type { Queryable } from '../db/database.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import {
  CASE_ROLES,
  MATERIAL_COUNT_SYSTEM,
  MATERIAL_KINDS,
  MATERIAL_SYSTEM,
  findCaseResource,
  lockCase,
  putCaseResource,
  referencedId,
  taskCode,
} from './case-resources.ts';
import type { MaterialKind } from './case-resources.ts';
import type { WorkflowContext } from './context.ts';
import { expectMaterialTasks } from './expect-material.ts';
import { plannedMaterials, sitesFor } from './order-detail.ts';
import {
  QUOTE_EXTENSION,
  caseQuoteInputs,
  computeQuote,
  quoteExtension,
  withQuoteNote,
  writeChargeItems,
} from './quote.ts';

/** DocumentReference.extension: the pages of the document's PDF (R4 Attachment has no `pages`). */
export const PAGE_COUNT_EXTENSION = 'urn:hub:extension:page-count';
/** DocumentReference.meta.tag: why the hub could not count a document's pages (search `_tag`). */
export const MATERIAL_FLAG_SYSTEM = 'urn:hub:material-flag';
const LOINC = 'http://loinc.org';
/** The consultation letter's DocumentReference (shared/fhir-model.md) is the hub's output, not a record. */
const CONSULTATION_NOTE = '11488-4';
/** Documents the hub issues itself (the registration letter, register-patient.ts). */
const HUB_DOCUMENT_TYPE_SYSTEM = 'urn:hub:document-type';

export const DOCUMENT_FLAGS = {
  'not-pdf': 'Not a PDF: counted as one document of unknown length',
  'unreadable-pdf': 'A PDF whose pages could not be read',
  'too-large': 'Larger than the hub reads to count pages (PDF_PAGE_COUNT_MAX_BYTES, or BINARY_MAX_BYTES when lower)',
  'no-content': 'No content the hub holds (no attachment data, or a URL outside this hub)',
} as const;
export type DocumentFlag = keyof typeof DOCUMENT_FLAGS;

/**
 * The most bytes of a document the hub reads into memory to count its pages (64 MiB): pdf-lib parses
 * the whole file in memory, several times its size, so a larger document is flagged `too-large`
 * rather than risk the worker. Binaries themselves may be larger (BINARY_MAX_BYTES).
 */
export const PDF_PAGE_COUNT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Recomputes a case's quote in the caller's transaction (src/workflow/quote.ts): `no-case` when the
 * request or its coordination Task is gone (deleted since the caller read it), `not-quoted` for a
 * closed case or one without a Patient subject.
 */
export type QuoteRecomputer = (
  repo: HubRepository,
  serviceRequestId: string,
) => Promise<'quoted' | 'not-quoted' | 'no-case'>;

/**
 * The quote recomputation after materials arrived, as intake.ts computes it at submission: the
 * materials each expect-material Task records (else the planned ones), priced with the schedule in
 * effect when the case was submitted (the coordination Task's authoredOn); the ChargeItems updated
 * in place and the summary on the coordination Task.
 */
export function caseQuoteRecomputer(context: Pick<WorkflowContext, 'feeSchedules' | 'now'>): QuoteRecomputer {
  return async (repo, serviceRequestId) => {
    // The caller read the case under its lock, but a FHIR DELETE does not take that lock.
    const request = await readOptional<ServiceRequest>(repo, 'ServiceRequest', serviceRequestId);
    const coordination =
      request && (await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination));
    if (!request || !coordination) {
      return 'no-case';
    }
    const patientId = referencedId(request.subject, 'Patient');
    if (CLOSED_CASE_STATUSES.has(coordination.status) || !patientId) {
      return 'not-quoted';
    }
    const inputs = await caseQuoteInputs(
      repo,
      request,
      coordination,
      await expectMaterialTasks(repo, serviceRequestId),
    );
    const submittedAt = coordination.authoredOn ? new Date(coordination.authoredOn) : context.now();
    const quote = computeQuote(inputs, selectSchedule(context.feeSchedules, submittedAt));
    await writeChargeItems(
      repo,
      { serviceRequestId, patient: { reference: `Patient/${patientId}` }, received: inputs.received },
      quote,
    );
    const { extension, note: _note, ...rest } = coordination;
    const note = withQuoteNote(coordination.note, quote);
    await repo.updateResource<Task>(
      {
        ...rest,
        extension: [
          ...(extension ?? []).filter((candidate) => candidate.url !== QUOTE_EXTENSION),
          quoteExtension(quote),
        ],
        ...(note.length > 0 ? { note } : {}),
      },
      { ifMatch: coordination.meta?.versionId },
    );
    return 'quoted';
  };
}

/** The case exists but its intake has not made its coordination Task yet: the job is tried again later. */
export class CaseNotReadyError extends Error {
  override name = 'CaseNotReadyError';
}

const CLOSED_CASE_STATUSES: ReadonlySet<Task['status']> = new Set([
  'rejected',
  'cancelled',
  'failed',
  'entered-in-error',
]);

/** A resource, or undefined when it does not exist or was deleted. */
export async function readOptional<T extends Resource>(
  repo: HubRepository,
  resourceType: T['resourceType'],
  id: string,
): Promise<WithId<T> | undefined> {
  try {
    return await repo.readResource<T>(resourceType, id);
  } catch (err) {
    if (err instanceof OperationOutcomeError && (isNotFound(err.outcome) || isGone(err.outcome))) {
      return undefined;
    }
    throw err;
  }
}

// ---- page counts -----------------------------------------------------------------------------

export type PageCount = { pages: number } | { flag: DocumentFlag };

/** The pages of a PDF; anything that is not a readable PDF is flagged instead. */
export async function countPdfPages(bytes: Uint8Array): Promise<PageCount> {
  // ISO 32000-1 §7.5.2: the header is the first line; readers accept it within the first 1024 bytes.
  if (!Buffer.from(bytes.subarray(0, 1024)).includes('%PDF-')) {
    return { flag: 'not-pdf' };
  }
  try {
    const pdf = await PDFDocument.load(bytes, { ignoreEncryption: true, updateMetadata: false });
    const pages = pdf.getPageCount();
    return pages > 0 ? { pages } : { flag: 'unreadable-pdf' };
  } catch {
    return { flag: 'unreadable-pdf' };
  }
}

const BINARY_URL = /^Binary\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/(\d{1,9}))?$/;

/** The bytes of an attachment the hub holds (inline data or one of our Binaries), bounded. */
async function attachmentBytes(
  tx: Queryable,
  repo: HubRepository,
  ctx: RepositoryContext,
  attachment: Attachment,
): Promise<Buffer | DocumentFlag> {
  const maxBytes = Math.min(ctx.binaryMaxBytes, PDF_PAGE_COUNT_MAX_BYTES);
  if (attachment.data !== undefined) {
    // base64: 4 characters per 3 bytes.
    if (Math.floor((attachment.data.length * 3) / 4) > maxBytes) {
      return 'too-large';
    }
    return Buffer.from(attachment.data, 'base64');
  }
  const url = attachment.url?.startsWith(`${repo.fhirBase}/`)
    ? attachment.url.slice(repo.fhirBase.length + 1)
    : attachment.url;
  const [, binaryId, versionText] = (url ? BINARY_URL.exec(url) : null) ?? [];
  if (binaryId === undefined) {
    return 'no-content';
  }
  let version = versionText ? Number(versionText) : undefined;
  if (version === undefined) {
    const current = await tx.query<{ version: number }>(
      `SELECT version FROM resource WHERE resource_type = 'Binary' AND id = $1 AND NOT deleted`,
      [binaryId],
    );
    version = current.rows[0]?.version;
  }
  const blob = version === undefined ? undefined : await repo.binaryContent(binaryId, version);
  if (!blob) {
    return 'no-content';
  }
  if (blob.size > maxBytes) {
    return 'too-large';
  }
  return ctx.blobs.read(blob.key);
}

/** Reads the page count of a document: its first PDF attachment, else its first attachment. */
export async function readDocumentPages(
  tx: Queryable,
  repo: HubRepository,
  ctx: RepositoryContext,
  document: DocumentReference,
): Promise<PageCount> {
  const attachments = document.content.map((content) => content.attachment);
  const ordered = [
    ...attachments.filter((a) => a.contentType?.split(';')[0]?.trim() === 'application/pdf'),
    ...attachments,
  ];
  const first = ordered[0];
  if (!first) {
    return { flag: 'no-content' };
  }
  const bytes = await attachmentBytes(tx, repo, ctx, first);
  return typeof bytes === 'string' ? { flag: bytes } : countPdfPages(bytes);
}

/** The document with its page count (or its flag) in place of any earlier one. */
export function withPageCount(document: DocumentReference, count: PageCount): DocumentReference {
  const extension = (document.extension ?? []).filter((ext) => ext.url !== PAGE_COUNT_EXTENSION);
  const tag = (document.meta?.tag ?? []).filter((coding) => coding.system !== MATERIAL_FLAG_SYSTEM);
  if ('pages' in count) {
    extension.push({ url: PAGE_COUNT_EXTENSION, valueInteger: count.pages });
  } else {
    tag.push({ system: MATERIAL_FLAG_SYSTEM, code: count.flag, display: DOCUMENT_FLAGS[count.flag] });
  }
  const { extension: _extension, meta, ...rest } = document;
  const { tag: _tag, ...otherMeta } = meta ?? {};
  const nextMeta = tag.length > 0 ? { ...otherMeta, tag } : otherMeta;
  return {
    ...rest,
    ...(Object.keys(nextMeta).length > 0 ? { meta: nextMeta } : {}),
    ...(extension.length > 0 ? { extension } : {}),
  };
}

/** The stored page count of a document, when it was read. */
export function pageCountOf(document: DocumentReference): number | undefined {
  return document.extension?.find((ext) => ext.url === PAGE_COUNT_EXTENSION)?.valueInteger;
}

function isHubDocument(document: DocumentReference): boolean {
  return (document.type?.coding ?? []).some(
    (coding) =>
      coding.system === HUB_DOCUMENT_TYPE_SYSTEM || (coding.system === LOINC && coding.code === CONSULTATION_NOTE),
  );
}

// ---- which case ------------------------------------------------------------------------------

/**
 * The cases a document belongs to: those its `context.related` names, or else the one active
 * request of its subject (none, or several, leaves it to a coordinator).
 */
async function casesOfDocument(
  repo: HubRepository,
  document: DocumentReference,
): Promise<{ ids: string[]; bySubject: boolean }> {
  const related = (document.context?.related ?? [])
    .map((ref) => referencedId(ref, 'ServiceRequest'))
    .filter((id) => id !== undefined);
  if (related.length > 0) {
    return { ids: [...new Set(related)].sort(), bySubject: false };
  }
  const patientId = referencedId(document.subject, 'Patient');
  if (!patientId) {
    return { ids: [], bySubject: false };
  }
  const active = await repo.searchResources<ServiceRequest>({
    resourceType: 'ServiceRequest',
    filters: [
      { code: 'subject', operator: Operator.EQUALS, value: `Patient/${patientId}` },
      { code: 'status', operator: Operator.EQUALS, value: 'active' },
    ],
    count: 2,
  });
  const [only] = active;
  return { ids: active.length === 1 && only !== undefined ? [only.id] : [], bySubject: true };
}

// ---- the case's expect-material Tasks ----------------------------------------------------------

export type SyncOutcome = 'synced' | 'no-case' | 'not-active' | 'case-closed';

interface ArrivedMaterial {
  kind: MaterialKind;
  reference: string;
}

interface CaseArrivals {
  references: ArrivedMaterial[];
  /** Pages of the records whose PDF was read. */
  recordPages: number;
  /** Body sites of the specimens that have no parent (the biopsies), one entry per biopsy. */
  biopsies: (string | undefined)[];
}

/** Every material of the case the hub knows of (`also`: one a search by the case cannot find). */
async function arrivedMaterials(
  tx: Queryable,
  repo: HubRepository,
  request: WithId<ServiceRequest>,
  also: ArrivedMaterial | undefined,
): Promise<CaseArrivals> {
  const caseReference = `ServiceRequest/${request.id}`;
  const documents = (
    await repo.searchResources<DocumentReference>({
      resourceType: 'DocumentReference',
      filters: [{ code: 'related', operator: Operator.EQUALS, value: caseReference }],
      count: 1000,
    })
  ).filter((document) => document.status === 'current' && !isHubDocument(document));
  const studies = await tx.query<{ imaging_study_id: string }>(
    // A study stored into the case is matched before its first instance is in (dicom/case-claim.ts): not yet a material.
    'SELECT imaging_study_id FROM dicom_study WHERE matched_service_request_id = $1 AND imaging_study_id IS NOT NULL AND number_of_instances > 0 ORDER BY imaging_study_id',
    [request.id],
  );
  // R4 has no Specimen search parameter on `request`: the patient's specimens, filtered.
  const patientId = referencedId(request.subject, 'Patient');
  const specimens = (
    patientId
      ? await repo.searchResources<Specimen>({
          resourceType: 'Specimen',
          filters: [{ code: 'subject', operator: Operator.EQUALS, value: `Patient/${patientId}` }],
          count: 1000,
        })
      : []
  ).filter((specimen) => specimen.id !== referencedId({ reference: also?.reference }, 'Specimen'));
  if (also?.kind === 'pathology') {
    const extra = await readOptional<Specimen>(repo, 'Specimen', also.reference.slice('Specimen/'.length));
    if (extra) {
      specimens.push(extra);
    }
  }
  const caseSpecimens = specimens.filter(
    (specimen) =>
      specimen.status !== 'entered-in-error' &&
      (specimen.request ?? []).some((ref) => referencedId(ref, 'ServiceRequest') === request.id),
  );
  return {
    references: [
      ...documents.map((document) => ({ kind: 'records' as const, reference: `DocumentReference/${document.id}` })),
      ...studies.rows.map((row) => ({ kind: 'imaging' as const, reference: `ImagingStudy/${row.imaging_study_id}` })),
      ...caseSpecimens.map((specimen) => ({ kind: 'pathology' as const, reference: `Specimen/${specimen.id}` })),
    ].sort((a, b) => a.reference.localeCompare(b.reference)),
    recordPages: documents.reduce((sum, document) => sum + (pageCountOf(document) ?? 0), 0),
    biopsies: biopsiesOf(caseSpecimens),
  };
}

/**
 * One entry per biopsy the specimens come from (the chain biopsy → block → slide via `parent`):
 * the body site of a biopsy the hub holds, undefined for one known only as a missing parent.
 */
function biopsiesOf(specimens: readonly WithId<Specimen>[]): (string | undefined)[] {
  const byReference = new Map(specimens.map((specimen) => [`Specimen/${specimen.id}`, specimen]));
  const roots = new Map<string, string | undefined>();
  for (const specimen of specimens) {
    let current = specimen;
    const seen = new Set<string>();
    // Up the chain while the parent is held here and not seen before (a cycle stops the walk).
    for (;;) {
      const reference = current.parent?.[0]?.reference;
      const parent = reference && !seen.has(reference) ? byReference.get(reference) : undefined;
      if (!reference || !parent) {
        break;
      }
      seen.add(reference);
      current = parent;
    }
    const missingParent = current.parent?.[0]?.reference;
    const site = current.collection?.bodySite;
    roots.set(
      missingParent ?? `Specimen/${current.id}`,
      missingParent ? undefined : (site?.text ?? site?.coding?.[0]?.display ?? site?.coding?.[0]?.code),
    );
  }
  return [...roots.values()];
}

const countType = (code: string): TaskOutput['type'] => ({ coding: [{ system: MATERIAL_COUNT_SYSTEM, code }] });
const countCode = (entry: TaskInput | TaskOutput): string | undefined =>
  entry.type.coding?.find((coding) => coding.system === MATERIAL_COUNT_SYSTEM)?.code;

/** The counts each kind's arrivals state; planned counts of other codes are carried over unchanged. */
const DERIVED_COUNTS: Readonly<Record<MaterialKind, readonly string[]>> = {
  records: ['record-pages'],
  imaging: ['imaging-sites', 'imaging-site'],
  pathology: ['biopsy-sites', 'biopsy-site'],
};

/**
 * The output of a kind's Task (expect-material.ts): a `material` entry referencing each arrival,
 * the counts the arrivals state, and the planned counts the hub cannot read off the material
 * (blocks, slides, stains, the record-collection service) as planned.
 */
function materialOutputs(kind: MaterialKind, task: Task, arrivals: CaseArrivals): TaskOutput[] {
  const output: TaskOutput[] = arrivals.references
    .filter((item) => item.kind === kind)
    .map((item) => ({ type: countType('material'), valueReference: { reference: item.reference } }));
  if (kind === 'records') {
    output.push({ type: countType('record-pages'), valueInteger: arrivals.recordPages });
  }
  if (kind === 'imaging') {
    output.push({ type: countType('imaging-sites'), valueInteger: output.length });
  }
  if (kind === 'pathology') {
    const named = arrivals.biopsies.filter((site) => site !== undefined);
    output.push({ type: countType('biopsy-sites'), valueInteger: arrivals.biopsies.length });
    for (const site of named) {
      output.push({ type: countType('biopsy-site'), valueString: site });
    }
  }
  for (const input of task.input ?? []) {
    const code = countCode(input);
    if (code && code !== 'material' && !DERIVED_COUNTS[kind].includes(code)) {
      output.push({ ...input });
    }
  }
  return output;
}

/** How many of a kind must arrive before its Task is complete: imaging counts planned sites, the rest one. */
function expectedArrivals(request: ServiceRequest, kind: MaterialKind): number {
  if (kind !== 'imaging') {
    return 1;
  }
  const plan = plannedMaterials(request).kinds.find((planned) => planned.kind === 'imaging');
  return Math.max(1, plan ? sitesFor('imaging', plan.imagingSites, plan.imagingSiteNames).length : 1);
}

function unplannedTask(
  request: WithId<ServiceRequest>,
  coordination: WithId<Task>,
  kind: MaterialKind,
  now: Date,
): Task {
  return {
    resourceType: 'Task',
    ...(coordination.groupIdentifier ? { groupIdentifier: coordination.groupIdentifier } : {}),
    basedOn: [{ reference: `ServiceRequest/${request.id}` }],
    partOf: [{ reference: `Task/${coordination.id}` }],
    status: 'requested',
    intent: 'order',
    code: taskCode('expect-material'),
    description: `${kind} the request did not plan, which arrived`,
    focus: { reference: `ServiceRequest/${request.id}` },
    ...(request.subject ? { for: request.subject } : {}),
    authoredOn: now.toISOString(),
    input: [{ type: countType('material'), valueCoding: { system: MATERIAL_SYSTEM, code: kind } }],
  };
}

const ACTIVE_TASK_STATUSES: ReadonlySet<Task['status']> = new Set([
  'draft',
  'requested',
  'received',
  'accepted',
  'ready',
  'in-progress',
  'on-hold',
]);

/**
 * The Task with the arrivals as its output: `in-progress` while fewer have arrived than expected
 * (which also keeps the intake's plan sync from rewriting it), `completed` once enough have.
 */
function tickedTask(task: WithId<Task>, output: TaskOutput[], arrivedCount: number, expected: number, now: Date): Task {
  const { output: _output, ...rest } = task;
  let status = task.status;
  if (ACTIVE_TASK_STATUSES.has(task.status)) {
    status = arrivedCount >= expected ? 'completed' : 'in-progress';
  }
  const statusChanged = status !== task.status;
  return {
    ...rest,
    status,
    ...(output.length > 0 ? { output } : {}),
    ...(statusChanged ? { lastModified: now.toISOString() } : {}),
    ...(statusChanged && status === 'completed'
      ? { executionPeriod: { ...task.executionPeriod, end: now.toISOString() } }
      : {}),
  };
}

/**
 * Brings the case's expect-material Tasks up to date with every material the case has, creating
 * the Task of a kind the request did not plan when such material arrives anyway, then recomputes
 * the quote. Runs in the caller's transaction, under the case lock.
 */
export async function syncCaseMaterials(
  tx: Queryable,
  ctx: RepositoryContext,
  serviceRequestId: string,
  recomputeQuote: QuoteRecomputer,
  options: { also?: ArrivedMaterial; now: Date },
): Promise<SyncOutcome> {
  const repo = new HubRepository(ctx, tx);
  await lockCase(tx, serviceRequestId);
  const request = await readOptional<ServiceRequest>(repo, 'ServiceRequest', serviceRequestId);
  if (!request) {
    return 'no-case';
  }
  if (request.status !== 'active') {
    return 'not-active';
  }
  const coordination = await findCaseResource<Task>(repo, 'Task', request.id, CASE_ROLES.coordination);
  if (!coordination) {
    throw new CaseNotReadyError(`ServiceRequest/${request.id} has no coordination Task yet`);
  }
  if (CLOSED_CASE_STATUSES.has(coordination.status)) {
    return 'case-closed';
  }
  const arrivals = await arrivedMaterials(tx, repo, request, options.also);
  const { now } = options;
  const tasks = await expectMaterialTasks(repo, request.id);
  for (const kind of MATERIAL_KINDS) {
    const arrivedCount = arrivals.references.filter((item) => item.kind === kind).length;
    let task = tasks.get(kind);
    if (arrivedCount === 0 && !task?.output) {
      continue;
    }
    task ??= await putCaseResource(
      repo,
      request.id,
      CASE_ROLES.expectMaterial(kind),
      unplannedTask(request, coordination, kind, now),
    );
    const ticked = tickedTask(
      task,
      materialOutputs(kind, task, arrivals),
      arrivedCount,
      expectedArrivals(request, kind),
      now,
    );
    await repo.updateResource(ticked, { ifMatch: task.meta?.versionId });
  }
  if ((await recomputeQuote(repo, request.id)) === 'no-case') {
    return 'no-case';
  }
  return 'synced';
}

// ---- the jobs' steps ---------------------------------------------------------------------------

export type DocumentOutcome = 'gone' | 'not-a-record' | 'no-case' | SyncOutcome;

/**
 * A DocumentReference was written: read its pages (or flag it), tie it to its case (context.related,
 * added when the case was found by its subject), tick the case's records. One transaction.
 */
export async function recordDocument(
  tx: Queryable,
  ctx: RepositoryContext,
  documentId: string,
  recomputeQuote: QuoteRecomputer,
  now: Date,
): Promise<DocumentOutcome> {
  const repo = new HubRepository(ctx, tx);
  const document = await readOptional<DocumentReference>(repo, 'DocumentReference', documentId);
  if (!document) {
    return 'gone';
  }
  if (isHubDocument(document)) {
    return 'not-a-record';
  }
  const cases = await casesOfDocument(repo, document);
  if (cases.ids.length === 0) {
    return 'no-case';
  }
  for (const id of cases.ids) {
    await lockCase(tx, id);
  }
  let next: DocumentReference = document;
  if (document.status === 'current') {
    next = withPageCount(next, await readDocumentPages(tx, repo, ctx, document));
  }
  if (cases.bySubject) {
    const related: Reference[] = cases.ids.map((id) => ({ reference: `ServiceRequest/${id}` }));
    next = { ...next, context: { ...next.context, related: [...(next.context?.related ?? []), ...related] } };
  }
  await repo.updateResource(next, { ifMatch: document.meta?.versionId });
  let outcome: SyncOutcome = 'no-case';
  for (const id of cases.ids) {
    outcome = await syncCaseMaterials(tx, ctx, id, recomputeQuote, { now });
  }
  return outcome;
}

export type SpecimenOutcome = 'gone' | 'no-case' | SyncOutcome;

/** A Specimen was written: tick pathology on each case its `request` names. One transaction. */
export async function recordSpecimen(
  tx: Queryable,
  ctx: RepositoryContext,
  specimenId: string,
  recomputeQuote: QuoteRecomputer,
  now: Date,
): Promise<SpecimenOutcome> {
  const repo = new HubRepository(ctx, tx);
  const specimen = await readOptional<Specimen>(repo, 'Specimen', specimenId);
  if (!specimen) {
    return 'gone';
  }
  const cases = [
    ...new Set(
      (specimen.request ?? []).map((ref) => referencedId(ref, 'ServiceRequest')).filter((id) => id !== undefined),
    ),
  ].sort();
  if (cases.length === 0 || specimen.status === 'entered-in-error') {
    return 'no-case';
  }
  for (const id of cases) {
    await lockCase(tx, id);
  }
  let outcome: SyncOutcome = 'no-case';
  for (const id of cases) {
    outcome = await syncCaseMaterials(tx, ctx, id, recomputeQuote, {
      also: { kind: 'pathology', reference: `Specimen/${specimen.id}` },
      now,
    });
  }
  return outcome;
}

/**
 * Materials that arrived before the case's intake (the request still a draft, or intake not yet
 * run), taken up at the end of intake so nothing waits for a retry: records of the patient tied to
 * no case yet, or tied to this one but not counted, get their pages read and their link; then the
 * case's expect-material Tasks and quote are brought up to date with every material it has.
 * Runs in the intake's transaction, under the case lock.
 */
export async function takeUpEarlyMaterials(
  tx: Queryable,
  ctx: RepositoryContext,
  request: WithId<ServiceRequest>,
  recomputeQuote: QuoteRecomputer,
  now: Date,
): Promise<SyncOutcome> {
  const repo = new HubRepository(ctx, tx);
  const patientId = referencedId(request.subject, 'Patient');
  const bySubject = patientId
    ? await repo.searchResources<DocumentReference>({
        resourceType: 'DocumentReference',
        filters: [{ code: 'subject', operator: Operator.EQUALS, value: `Patient/${patientId}` }],
        count: 1000,
      })
    : [];
  const byCase = await repo.searchResources<DocumentReference>({
    resourceType: 'DocumentReference',
    filters: [{ code: 'related', operator: Operator.EQUALS, value: `ServiceRequest/${request.id}` }],
    count: 1000,
  });
  const waiting = new Map<string, DocumentReference>();
  for (const document of [...bySubject, ...byCase]) {
    if (document.status !== 'current' || isHubDocument(document)) {
      continue;
    }
    const related = document.context?.related ?? [];
    const counted =
      pageCountOf(document) !== undefined ||
      (document.meta?.tag ?? []).some((coding) => coding.system === MATERIAL_FLAG_SYSTEM);
    const ours = related.some((reference) => referencedId(reference, 'ServiceRequest') === request.id);
    if (related.length === 0 || (ours && !counted)) {
      waiting.set(document.id, document);
    }
  }
  for (const id of [...waiting.keys()].sort()) {
    await recordDocument(tx, ctx, id, recomputeQuote, now);
  }
  return syncCaseMaterials(tx, ctx, request.id, recomputeQuote, { now });
}

export type RequoteOutcome = 'no-case' | 'not-active' | 'not-submitted' | 'case-closed' | 're-quoted';

/**
 * Recomputes a case's quote because what it prices changed outside the materials: the physician's
 * questions (a new QuestionnaireResponse version) or a coordinator's question-count override. A
 * case still in intake has no quote yet (intake makes it). One transaction, under the case lock.
 */
export async function requoteCase(
  tx: Queryable,
  ctx: RepositoryContext,
  serviceRequestId: string,
  recomputeQuote: QuoteRecomputer,
): Promise<RequoteOutcome> {
  await lockCase(tx, serviceRequestId);
  const repo = new HubRepository(ctx, tx);
  const request = await readOptional<ServiceRequest>(repo, 'ServiceRequest', serviceRequestId);
  if (!request) {
    return 'no-case';
  }
  if (request.status !== 'active') {
    return 'not-active';
  }
  const coordination = await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination);
  if (!coordination) {
    return 'no-case';
  }
  if (CLOSED_CASE_STATUSES.has(coordination.status)) {
    return 'case-closed';
  }
  if (coordination.status === 'draft') {
    return 'not-submitted';
  }
  if ((await recomputeQuote(repo, serviceRequestId)) === 'no-case') {
    return 'no-case';
  }
  return 're-quoted';
}
