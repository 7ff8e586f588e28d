/**
 * The specialist's opinion on its way to review (issue 14; docs/case-workflow.md, "The opinion"):
 * the draft consultation report (a DiagnosticReport, LOINC 11488-4, based on the request), its letter
 * (a Composition the report names with the R5 `DiagnosticReport.composition` cross-version extension),
 * what keeps the letter from being submitted, and the `approve` Task a submission opens for the
 * coordinators.
 */
import { formatHumanName, parseSearchRequest } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type {
  Attachment,
  Binary,
  Communication,
  Composition,
  CompositionSection,
  DiagnosticReport,
  DocumentReference,
  Patient,
  Practitioner,
  PractitionerRole,
  Provenance,
  Reference,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { actorOf } from '../auth/actor.ts';
import { AUTHOR_ROLES, CONSULTATION_NOTE, DRAFT_STATUSES, LOINC } from '../auth/case-links.ts';
import type { Actor, CaseFacts } from '../cases/case-state.ts';
import {
  ADDENDUM_SECTION,
  AMENDMENT_NOTE_SECTION,
  LETTER_SECTION_SYSTEM,
  QUESTION_NUMBER_EXTENSION,
  amendmentProblems,
  letterProblems,
  opinionLetterBlocks,
} from '../cases/opinion-letter.ts';
import { formatReferenceNumber, isValidReferenceNumber } from '../cases/reference-number.ts';
import type { AmendmentKind, LetterSection } from '../cases/opinion-letter.ts';
import type { HubRepository } from '../fhir/repository.ts';
import { caseResourceIdentifier, referencedId, searchAll, taskCode } from './case-resources.ts';
import { readOptional } from './materials.ts';
import { renderOpinionPdf } from './opinion-pdf.ts';
import { questionTexts, requestQuestionnaires } from './quote.ts';

/** R4 has no DiagnosticReport.composition; R5 does, and this extension carries it into R4. */
export const OPINION_LETTER_EXTENSION =
  'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';

/** The `<role>` of the case's approval Task in its `urn:hub:case-resource` identifier. */
export const APPROVE_ROLE = 'approve';

/**
 * The Practitioner who wrote a draft: the reviewer the hub recorded as the version's writer, or for
 * a version the staff or a system client wrote, the one it names as interpreter (a report) or
 * author (a letter).
 */
export function authorOf(draft: DiagnosticReport | Composition): string | undefined {
  const writer = actorOf(draft.meta?.source);
  if (writer && AUTHOR_ROLES.has(writer.role)) {
    return writer.id;
  }
  const named = draft.resourceType === 'DiagnosticReport' ? draft.resultsInterpreter?.[0] : draft.author[0];
  return referencedId(named, 'Practitioner');
}

/** The case's draft consultation reports, newest first. */
async function draftReports(repo: HubRepository, serviceRequestId: string): Promise<WithId<DiagnosticReport>[]> {
  const reports = await repo.searchResources<DiagnosticReport>(
    parseSearchRequest<DiagnosticReport>(
      `DiagnosticReport?based-on=ServiceRequest/${serviceRequestId}&code=${encodeURIComponent(`${LOINC}|${CONSULTATION_NOTE}`)}` +
        `&status=${(DRAFT_STATUSES.DiagnosticReport ?? []).join(',')}&_sort=-_lastUpdated&_count=50`,
    ),
  );
  return reports;
}

function hasText(section: CompositionSection): boolean {
  const text = (section.text?.div ?? '').replace(/<[^>]*>/g, ' ').replace(/&[a-z]+;|&#\d+;/gi, ' ');
  return text.trim().length > 0;
}

function letterSection(section: CompositionSection): LetterSection {
  const number = section.extension?.find((extension) => extension.url === QUESTION_NUMBER_EXTENSION);
  return {
    kind: section.code?.coding?.find((coding) => coding.system === LETTER_SECTION_SYSTEM)?.code,
    questionNumber: number?.valueUnsignedInt ?? number?.valuePositiveInt ?? number?.valueInteger,
    hasText: hasText(section),
  };
}

export interface OpinionFacts extends Pick<CaseFacts, 'reportAuthorId' | 'letterProblems'> {
  /** The draft the facts are about. */
  report?: WithId<DiagnosticReport>;
}

/**
 * The facts of a submission by `mover`: their draft report (else the newest draft of the case) and
 * its author, and what keeps its letter from being submitted (undefined when it names no letter).
 */
export async function opinionFacts(repo: HubRepository, request: ServiceRequest, mover: Actor): Promise<OpinionFacts> {
  const requestId = request.id;
  if (requestId === undefined) {
    return {};
  }
  const drafts = await draftReports(repo, requestId);
  const report = drafts.find((draft) => authorOf(draft) === mover.id) ?? drafts[0];
  if (!report) {
    return {};
  }
  const author = authorOf(report);
  const letterReference = report.extension?.find((extension) => extension.url === OPINION_LETTER_EXTENSION);
  const letterId = referencedId(letterReference?.valueReference, 'Composition');
  const letter = letterId ? await readOptional<Composition>(repo, 'Composition', letterId) : undefined;
  const questions = questionTexts(await requestQuestionnaires(repo, request));
  return {
    report,
    ...(author ? { reportAuthorId: author } : {}),
    ...(letter ? { letterProblems: letterProblems((letter.section ?? []).map(letterSection), questions.length) } : {}),
  };
}

/** The approval Task a submission opens (or opens again, after the report was returned). */
export function approveTask(options: {
  request: ServiceRequest & { id: string };
  coordination: Task & { id: string };
  report: WithId<DiagnosticReport>;
  authorId: string | undefined;
  now: Date;
  /** When the coordinators should have reviewed it (the report-review SLA). */
  dueAt: Date;
}): Task {
  const { request, coordination, report, authorId, now, dueAt } = options;
  return {
    resourceType: 'Task',
    identifier: [caseResourceIdentifier(request.id, APPROVE_ROLE)],
    ...(coordination.groupIdentifier ? { groupIdentifier: coordination.groupIdentifier } : {}),
    basedOn: [{ reference: `ServiceRequest/${request.id}` }],
    partOf: [{ reference: `Task/${coordination.id}` }],
    status: 'requested',
    intent: 'order',
    code: taskCode('approve'),
    description: 'Review the consultation report: approve it, or return it to the specialist with a reason',
    focus: { reference: `DiagnosticReport/${report.id}` },
    ...(coordination.for ? { for: coordination.for } : {}),
    ...(authorId ? { requester: { reference: `Practitioner/${authorId}` } } : {}),
    restriction: { period: { end: dueAt.toISOString() } },
    authoredOn: now.toISOString(),
    lastModified: now.toISOString(),
  };
}

// ---- approval -----------------------------------------------------------------------------------------

/** The letterhead's name (the service the physician engaged). */
const SERVICE_NAME = 'Second Opinion Service';
const PROVENANCE_PARTICIPANT = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
const DOCUMENT_CATEGORY = 'http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category';
/** The `<role>` of the letter's DocumentReference in its `urn:hub:case-resource` identifier. */
export const OPINION_DOCUMENT_ROLE = 'opinion-letter';

/** The character of a numeric character reference; a replacement character for an invalid one. */
function codePoint(code: number): string {
  return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : '\ufffd';
}

/** A section's narrative as plain paragraphs (blank lines between them). */
export function sectionText(section: CompositionSection): string {
  return (section.text?.div ?? '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|h\d|tr)>/gi, '\n\n')
    .replace(/<\/t[dh]>/gi, ' ')
    .replace(/<[^>]*>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&#(\d{1,7});/g, (_entity, code: string) => codePoint(Number(code)))
    .replace(/&#x([0-9a-f]{1,6});/gi, (_entity, code: string) => codePoint(Number.parseInt(code, 16)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
}

async function practitionerName(repo: HubRepository, id: string | undefined): Promise<string | undefined> {
  const practitioner = id ? await readOptional<Practitioner>(repo, 'Practitioner', id) : undefined;
  const name = practitioner?.name?.[0];
  return name ? formatHumanName(name) || undefined : undefined;
}

async function specialtyOf(repo: HubRepository, practitionerId: string | undefined): Promise<string | undefined> {
  if (!practitionerId) {
    return undefined;
  }
  const roles = await repo.searchResources<PractitionerRole>(
    parseSearchRequest<PractitionerRole>(`PractitionerRole?practitioner=Practitioner/${practitionerId}&_count=10`),
  );
  const specialty = roles.flatMap((role) => role.specialty ?? [])[0];
  return specialty?.text ?? specialty?.coding?.[0]?.display;
}

export interface ApprovedOpinion {
  report: WithId<DiagnosticReport>;
  document: WithId<DocumentReference>;
}

/** What a letter's PDF says besides its sections: a correction's note, the addenda. */
interface LetterRevision {
  correction?: { replacesDate: Date; note: string };
  addenda?: { date: Date; text: string }[];
}

/**
 * The letter rendered as a PDF (opinion-pdf.ts) and stored as a Binary, in the caller's transaction;
 * returns the attachment that names it.
 */
async function storeLetterPdf(options: {
  repo: HubRepository;
  request: ServiceRequest & { id: string };
  coordination: Task;
  authorId: string | undefined;
  sections: readonly CompositionSection[];
  /** The day the letter is dated: its approval (or its correction's). */
  date: Date;
  revision: LetterRevision;
  title: string;
  serviceUrl: string;
  now: Date;
}): Promise<Attachment> {
  const { repo, request, coordination, authorId, revision, title, now } = options;
  const patientId = referencedId(coordination.for, 'Patient') ?? referencedId(request.subject, 'Patient');
  const patient = patientId ? await readOptional<Patient>(repo, 'Patient', patientId) : undefined;
  const referenceNumber = coordination.groupIdentifier?.value;
  const readableNumber =
    referenceNumber && isValidReferenceNumber(referenceNumber) ? formatReferenceNumber(referenceNumber) : undefined;
  const questions = questionTexts(await requestQuestionnaires(repo, request));
  const blocks = opinionLetterBlocks({
    serviceName: SERVICE_NAME,
    serviceUrl: options.serviceUrl,
    date: options.date,
    physicianName: await practitionerName(repo, referencedId(request.requester, 'Practitioner')),
    patientName: patient?.name?.[0] ? formatHumanName(patient.name[0]) || undefined : undefined,
    referenceNumber: readableNumber,
    questions,
    sections: options.sections.map((section) => ({ ...letterSection(section), text: sectionText(section) })),
    specialistName: await practitionerName(repo, authorId),
    specialty: await specialtyOf(repo, authorId),
    ...(revision.correction ? { correction: revision.correction } : {}),
    ...(revision.addenda ? { addenda: revision.addenda } : {}),
  });
  const pdf = await renderOpinionPdf(blocks, {
    title,
    issuedAt: now,
    footer: `${SERVICE_NAME}${readableNumber ? ` · reference number ${readableNumber}` : ''}`,
  });
  const binary = await repo.createResource<Binary>({
    resourceType: 'Binary',
    contentType: 'application/pdf',
    data: Buffer.from(pdf).toString('base64'),
  });
  return {
    contentType: 'application/pdf',
    url: `Binary/${binary.id}`,
    title,
    size: pdf.byteLength,
    creation: now.toISOString(),
  };
}

/** The letter's DocumentReference (11488-4, clinical-note, current) for the PDF of an approval. */
function letterDocument(options: {
  request: ServiceRequest & { id: string };
  role: string;
  patientId: string | undefined;
  reportId: string;
  specialist: Reference<Practitioner> | undefined;
  approver: Reference<Practitioner>;
  attachment: Attachment;
  now: Date;
  amended?: { replaces: string };
}): DocumentReference {
  const { request, patientId, specialist, approver, attachment, now, amended } = options;
  return {
    resourceType: 'DocumentReference',
    identifier: [caseResourceIdentifier(request.id, options.role)],
    status: 'current',
    docStatus: amended ? 'amended' : 'final',
    ...(amended
      ? { relatesTo: [{ code: 'replaces', target: { reference: `DocumentReference/${amended.replaces}` } }] }
      : {}),
    type: { coding: [{ system: LOINC, code: CONSULTATION_NOTE, display: 'Consultation note' }] },
    category: [{ coding: [{ system: DOCUMENT_CATEGORY, code: 'clinical-note', display: 'Clinical Note' }] }],
    ...(patientId ? { subject: { reference: `Patient/${patientId}` } } : {}),
    date: now.toISOString(),
    ...(specialist ? { author: [specialist] } : {}),
    authenticator: approver,
    description: attachment.title ?? 'Second-opinion consultation',
    content: [{ attachment }],
    context: {
      related: [{ reference: `ServiceRequest/${request.id}` }, { reference: `DiagnosticReport/${options.reportId}` }],
    },
  };
}

/** Provenance of an approval: the specialist as author, the approver as verifier. */
function approvalProvenance(options: {
  targets: Reference[];
  revised?: Reference[];
  specialist: Reference<Practitioner> | undefined;
  approver: Reference<Practitioner>;
  now: Date;
}): Provenance {
  return {
    resourceType: 'Provenance',
    target: options.targets,
    recorded: options.now.toISOString(),
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE' }] },
    agent: [
      ...(options.specialist
        ? [{ type: { coding: [{ system: PROVENANCE_PARTICIPANT, code: 'author' }] }, who: options.specialist }]
        : []),
      { type: { coding: [{ system: PROVENANCE_PARTICIPANT, code: 'verifier' }] }, who: options.approver },
    ],
    ...(options.revised && options.revised.length > 0
      ? { entity: options.revised.map((what) => ({ role: 'revision' as const, what })) }
      : {}),
  };
}

/** The letter Composition a report names (R5 DiagnosticReport.composition). */
export function letterIdOf(report: DiagnosticReport): string | undefined {
  return referencedId(
    report.extension?.find((extension) => extension.url === OPINION_LETTER_EXTENSION)?.valueReference,
    'Composition',
  );
}

/**
 * Approval (issue 14, step 3): the letter rendered as a PDF and stored as a Binary; the report final
 * with the PDF as its presentedForm; the letter final, attested by the approver; a DocumentReference
 * (11488-4, clinical-note, current) for the same Binary; a Provenance naming the specialist as
 * author and the approver as verifier. All in the caller's transaction.
 */
export async function approveOpinion(options: {
  repo: HubRepository;
  request: ServiceRequest & { id: string };
  coordination: Task;
  report: WithId<DiagnosticReport>;
  approverId: string | undefined;
  serviceUrl: string;
  now: Date;
}): Promise<ApprovedOpinion> {
  const { repo, request, coordination, report, approverId, serviceUrl, now } = options;
  const authorId = authorOf(report);
  const letterId = letterIdOf(report);
  const letter = letterId ? await readOptional<Composition>(repo, 'Composition', letterId) : undefined;
  const patientId = referencedId(coordination.for, 'Patient') ?? referencedId(request.subject, 'Patient');
  const attachment = await storeLetterPdf({
    repo,
    request,
    coordination,
    authorId,
    sections: letter?.section ?? [],
    date: now,
    revision: {},
    title: 'Second-opinion consultation',
    serviceUrl,
    now,
  });
  const specialist: Reference<Practitioner> | undefined = authorId
    ? { reference: `Practitioner/${authorId}` }
    : undefined;
  const approver: Reference<Practitioner> = approverId
    ? { reference: `Practitioner/${approverId}` }
    : { display: 'Coordinator' };
  const { meta: reportMeta, ...reportRest } = report;
  const finalReport = await repo.updateResource<DiagnosticReport>(
    { ...reportRest, status: 'final', issued: now.toISOString(), presentedForm: [attachment] },
    { ifMatch: reportMeta?.versionId },
  );
  if (letter) {
    await attest(repo, letter, approver, now);
  }
  const document = await repo.createResource<DocumentReference>(
    letterDocument({
      request,
      role: OPINION_DOCUMENT_ROLE,
      patientId,
      reportId: report.id,
      specialist,
      approver,
      attachment,
      now,
    }),
  );
  await repo.createResource<Provenance>(
    approvalProvenance({
      targets: [
        { reference: `DiagnosticReport/${report.id}/_history/${finalReport.meta?.versionId ?? ''}` },
        { reference: `DocumentReference/${document.id}` },
        ...(letter ? [{ reference: `Composition/${letter.id}` }] : []),
      ],
      specialist,
      approver,
      now,
    }),
  );
  return { report: finalReport, document };
}

/** The letter final, with the approver as its professional attester. */
async function attest(
  repo: HubRepository,
  letter: WithId<Composition>,
  approver: Reference<Practitioner>,
  now: Date,
): Promise<void> {
  const { meta, ...rest } = letter;
  await repo.updateResource<Composition>(
    {
      ...rest,
      status: 'final',
      attester: [...(rest.attester ?? []), { mode: 'professional', time: now.toISOString(), party: approver }],
    },
    { ifMatch: meta?.versionId },
  );
}

// ---- after release: amendments ------------------------------------------------------------------------

/** Composition.relatesTo codes of an amendment, and what each makes of it. */
const AMENDMENT_RELATION: Readonly<Record<string, AmendmentKind>> = { replaces: 'correction', appends: 'addendum' };
/** What the report's status becomes when an amendment of each kind is approved. */
const AMENDED_REPORT_STATUS: Readonly<Record<AmendmentKind, DiagnosticReport['status']>> = {
  correction: 'amended',
  addendum: 'appended',
};
/** A correction may restate the report's conclusion (DiagnosticReport.conclusion) in this extension. */
export const AMENDED_CONCLUSION_EXTENSION = 'urn:hub:extension:amended-conclusion';

/** The relation of a Composition to the letter it amends, if it names one (a correction or an addendum). */
export function amendmentRelation(composition: Composition): { kind: AmendmentKind; target: string | undefined }[] {
  return (composition.relatesTo ?? []).flatMap((relation) => {
    const kind = AMENDMENT_RELATION[relation.code];
    return kind ? [{ kind, target: referencedId(relation.targetReference, 'Composition') }] : [];
  });
}

/** When a letter was approved: the time of its last professional attestation, else its date. */
function approvedAt(letter: Composition): Date {
  const attested = (letter.attester ?? []).filter((attester) => attester.mode === 'professional' && attester.time);
  return new Date(attested.at(-1)?.time ?? letter.date);
}

const isDraftLetter = (composition: Composition): boolean =>
  (DRAFT_STATUSES.Composition ?? []).includes(composition.status);

export interface AmendmentFacts {
  amendment?: WithId<Composition>;
  kind?: AmendmentKind;
  /** The draft's author (authorOf). */
  authorId?: string;
  /** The released letter it amends. */
  letter?: WithId<Composition>;
  /** Why it cannot be submitted or approved, in words for the specialist and the coordinators (ids only). */
  problems: string[];
}

/**
 * An amendment of the released report (`report`) named by the approval Task's focus: a draft
 * Composition (11488-4) of this case alone, by the report's author, that `replaces` (a correction)
 * or `appends` (an addendum) the letter the report names, and is complete for its kind.
 */
export async function amendmentFacts(options: {
  repo: HubRepository;
  request: ServiceRequest & { id: string };
  report: WithId<DiagnosticReport>;
  compositionId: string;
  /** The cases the hub records the Composition in (case_resource). */
  casesOfAmendment: readonly string[];
}): Promise<AmendmentFacts> {
  const { repo, request, report, compositionId, casesOfAmendment } = options;
  const amendment = await readOptional<Composition>(repo, 'Composition', compositionId);
  const isLetter = amendment?.type.coding?.some(
    (coding) => coding.system === LOINC && coding.code === CONSULTATION_NOTE,
  );
  if (!amendment || !isLetter || casesOfAmendment.length !== 1 || casesOfAmendment[0] !== request.id) {
    return {
      problems: [
        `Composition/${compositionId} is not a consultation letter (LOINC ${CONSULTATION_NOTE}) of this case alone.`,
      ],
    };
  }
  const authorId = authorOf(amendment);
  const letterId = letterIdOf(report);
  const letter = letterId ? await readOptional<Composition>(repo, 'Composition', letterId) : undefined;
  const relations = amendmentRelation(amendment);
  const relation = relations.length === 1 ? relations[0] : undefined;
  const base = { amendment, ...(authorId ? { authorId } : {}), ...(letter ? { letter } : {}) };
  const problems: string[] = [];
  if (!isDraftLetter(amendment)) {
    problems.push(`Composition/${amendment.id} is not a draft (preliminary); only a draft is an amendment to approve.`);
  }
  if (!relation) {
    problems.push(
      `The amendment must say what it amends, once: relatesTo replaces (a correction) or appends (an addendum) ` +
        `the released letter, Composition/${letterId ?? '?'}.`,
    );
  } else if (!letter || relation.target !== letter.id || isDraftLetter(letter)) {
    problems.push(
      `The amendment names Composition/${relation.target ?? '?'}, which is not the released letter ` +
        `(Composition/${letterId ?? '?'}).`,
    );
  }
  const reportAuthor = authorOf(report);
  if (!authorId || authorId !== reportAuthor) {
    problems.push('Only the specialist who wrote the released report amends it; this draft is not theirs.');
  }
  if (relation) {
    const questions = questionTexts(await requestQuestionnaires(repo, request));
    const content = amendmentProblems(relation.kind, (amendment.section ?? []).map(letterSection), questions.length);
    problems.push(...content.map((problem) => `The ${relation.kind} is not complete: ${problem}`));
  }
  return { ...base, ...(relation ? { kind: relation.kind } : {}), problems };
}

/** The approval Task opened again for an amendment the report's author submitted. */
export function amendmentApprovalTask(options: {
  approval: WithId<Task>;
  amendment: WithId<Composition>;
  kind: AmendmentKind;
  authorId: string | undefined;
  now: Date;
  dueAt: Date;
}): Task {
  const { approval, amendment, kind, authorId, now, dueAt } = options;
  const { meta: _meta, statusReason: _reason, output: _output, ...rest } = approval;
  return {
    ...rest,
    status: 'requested',
    description:
      `Review the ${kind} of the released consultation report: approve it, or return it to the specialist ` +
      'with a reason',
    focus: { reference: `Composition/${amendment.id}` },
    ...(authorId ? { requester: { reference: `Practitioner/${authorId}` } } : {}),
    restriction: { period: { end: dueAt.toISOString() } },
    authoredOn: now.toISOString(),
    lastModified: now.toISOString(),
  };
}

/** The section of a correction that says what was changed and why, as text. */
function correctionNote(letter: Composition): string {
  return (letter.section ?? [])
    .filter((section) => letterSection(section).kind === AMENDMENT_NOTE_SECTION)
    .map(sectionText)
    .join('\n\n');
}

/** The letter as the PDF shows it: its sections, its own correction's note and the date of what it replaced. */
async function letterRevision(repo: HubRepository, letter: Composition): Promise<LetterRevision> {
  const replaced = amendmentRelation(letter).find((relation) => relation.kind === 'correction')?.target;
  const earlier = replaced ? await readOptional<Composition>(repo, 'Composition', replaced) : undefined;
  return earlier ? { correction: { replacesDate: approvedAt(earlier), note: correctionNote(letter) } } : {};
}

/** The addenda already approved for a letter, oldest first. */
async function approvedAddenda(repo: HubRepository, letterId: string): Promise<{ date: Date; text: string }[]> {
  const found = await repo.searchResources<Composition>(
    parseSearchRequest<Composition>(`Composition?related-ref=Composition/${letterId}&status=final&_count=1000`),
  );
  return found
    .filter((composition) =>
      amendmentRelation(composition).some((relation) => relation.kind === 'addendum' && relation.target === letterId),
    )
    .map((composition) => ({ date: approvedAt(composition), text: addendumText(composition) }))
    .sort((a, b) => a.date.getTime() - b.date.getTime());
}

function addendumText(composition: Composition): string {
  return (composition.section ?? [])
    .filter((section) => letterSection(section).kind === ADDENDUM_SECTION)
    .map(sectionText)
    .join('\n\n');
}

/**
 * An approved amendment (docs/case-workflow.md, "Amendments"), in the caller's transaction: the
 * letter rendered again as a new PDF (a correction: the new letter, marked as amended with the day
 * and what it replaces; an addendum: the released letter with every approved addendum after it) in a
 * new Binary; the report `amended` or `appended` with that PDF as its presentedForm (a correction's
 * letter becomes the report's letter); the amendment final, attested by the approver; a new
 * DocumentReference that `replaces` the previous one, which is `superseded`; a Provenance with the
 * specialist as author, the approver as verifier and what was revised. Earlier versions and the
 * earlier Binary are left as they were.
 */
export async function amendOpinion(options: {
  repo: HubRepository;
  request: ServiceRequest & { id: string };
  coordination: Task;
  report: WithId<DiagnosticReport>;
  letter: WithId<Composition>;
  amendment: WithId<Composition>;
  kind: AmendmentKind;
  previousDocumentId: string | undefined;
  approverId: string | undefined;
  serviceUrl: string;
  now: Date;
}): Promise<ApprovedOpinion> {
  const { repo, request, coordination, report, letter, amendment, kind, previousDocumentId, approverId, now } = options;
  const authorId = authorOf(report);
  const patientId = referencedId(coordination.for, 'Patient') ?? referencedId(request.subject, 'Patient');
  const attachment =
    kind === 'correction'
      ? await storeLetterPdf({
          repo,
          request,
          coordination,
          authorId,
          sections: (amendment.section ?? []).filter(
            (section) => letterSection(section).kind !== AMENDMENT_NOTE_SECTION,
          ),
          date: now,
          revision: { correction: { replacesDate: approvedAt(letter), note: correctionNote(amendment) } },
          title: 'Second-opinion consultation (amended)',
          serviceUrl: options.serviceUrl,
          now,
        })
      : await storeLetterPdf({
          repo,
          request,
          coordination,
          authorId,
          sections: (letter.section ?? []).filter((section) => letterSection(section).kind !== AMENDMENT_NOTE_SECTION),
          date: approvedAt(letter),
          revision: {
            ...(await letterRevision(repo, letter)),
            addenda: [...(await approvedAddenda(repo, letter.id)), { date: now, text: addendumText(amendment) }],
          },
          title: 'Second-opinion consultation (with addendum)',
          serviceUrl: options.serviceUrl,
          now,
        });
  const specialist: Reference<Practitioner> | undefined = authorId
    ? { reference: `Practitioner/${authorId}` }
    : undefined;
  const approver: Reference<Practitioner> = approverId
    ? { reference: `Practitioner/${approverId}` }
    : { display: 'Coordinator' };
  const conclusion = amendment.extension?.find(
    (extension) => extension.url === AMENDED_CONCLUSION_EXTENSION,
  )?.valueString;
  const { meta: reportMeta, ...reportRest } = report;
  const amendedReport = await repo.updateResource<DiagnosticReport>(
    {
      ...reportRest,
      status: AMENDED_REPORT_STATUS[kind],
      issued: now.toISOString(),
      presentedForm: [attachment],
      ...(kind === 'correction' && conclusion?.trim() ? { conclusion } : {}),
      ...(kind === 'correction'
        ? {
            extension: [
              ...(reportRest.extension ?? []).filter((extension) => extension.url !== OPINION_LETTER_EXTENSION),
              { url: OPINION_LETTER_EXTENSION, valueReference: { reference: `Composition/${amendment.id}` } },
            ],
          }
        : {}),
    },
    { ifMatch: reportMeta?.versionId },
  );
  await attest(repo, amendment, approver, now);
  const previous = previousDocumentId
    ? await readOptional<DocumentReference>(repo, 'DocumentReference', previousDocumentId)
    : undefined;
  if (previous && previous.status !== 'superseded') {
    const { meta, ...rest } = previous;
    await repo.updateResource<DocumentReference>({ ...rest, status: 'superseded' }, { ifMatch: meta?.versionId });
  }
  const document = await repo.createResource<DocumentReference>(
    letterDocument({
      request,
      role: `${OPINION_DOCUMENT_ROLE}/${amendment.id}`,
      patientId,
      reportId: report.id,
      specialist,
      approver,
      attachment,
      now,
      ...(previous ? { amended: { replaces: previous.id } } : {}),
    }),
  );
  await repo.createResource<Provenance>(
    approvalProvenance({
      targets: [
        { reference: `DiagnosticReport/${report.id}/_history/${amendedReport.meta?.versionId ?? ''}` },
        { reference: `DocumentReference/${document.id}` },
        { reference: `Composition/${amendment.id}` },
      ],
      revised: [
        { reference: `DiagnosticReport/${report.id}/_history/${reportMeta?.versionId ?? ''}` },
        { reference: `Composition/${letter.id}` },
        ...(previous ? [{ reference: `DocumentReference/${previous.id}` }] : []),
      ],
      specialist,
      approver,
      now,
    }),
  );
  return { report: amendedReport, document };
}

// ---- questions back to the physician ----------------------------------------------------------------

/** Communications of a case are read in pages of this many, every page (a case may have any number). */
const COMMUNICATION_PAGE = 500;

/** The extension on the specialist's Task that holds when their clock stopped (a question is open). */
export const PAUSED_AT_EXTENSION = 'urn:hub:extension:paused-at';

export interface InformationRequests {
  /** The specialist's questions that no answer refers to yet, oldest first. */
  open: WithId<Communication>[];
  /** The answers (Communications `inResponseTo` a question), newest first. */
  answers: WithId<Communication>[];
}

/**
 * The case's questions back to the physician (issue 14, step 2): a Communication based on the
 * ServiceRequest and part of its coordination Task, written by `specialistId` (the writer the hub
 * recorded, whatever the sender says) and not itself an answer; answers are Communications in
 * response to one, written by a physician of the case, their EHR or the staff.
 */
export async function informationRequests(
  repo: HubRepository,
  serviceRequestId: string,
  coordinationId: string,
  specialistId: string | undefined,
): Promise<InformationRequests> {
  const all = await searchAll<Communication>(
    repo,
    parseSearchRequest<Communication>(
      `Communication?based-on=ServiceRequest/${serviceRequestId}&_sort=_lastUpdated&_count=${COMMUNICATION_PAGE}`,
    ),
  );
  // An answer counts when the physician, their EHR or the staff wrote it (or the hub); a patient's or
  // another reviewer's reply to the specialist's question does not resume the case.
  const answers = all.filter((communication) => {
    const writer = actorOf(communication.meta?.source);
    return (
      (communication.inResponseTo ?? []).length > 0 &&
      (!writer || ['referring-physician', 'ehr', 'coordinator', 'admin'].includes(writer.role))
    );
  });
  const answered = new Set(
    answers.flatMap((answer) =>
      (answer.inResponseTo ?? []).flatMap((reference) => {
        const id = referencedId(reference, 'Communication');
        return id ? [id] : [];
      }),
    ),
  );
  const questions = all.filter((communication) => {
    const writer = actorOf(communication.meta?.source);
    return (
      (communication.inResponseTo ?? []).length === 0 &&
      writer?.role === 'specialist' &&
      writer.id === specialistId &&
      (communication.partOf ?? []).some((reference) => referencedId(reference, 'Task') === coordinationId)
    );
  });
  return {
    open: questions.filter((question) => !answered.has(question.id)),
    answers: [...answers].reverse(),
  };
}

// ---- after release: clarifications ------------------------------------------------------------------

export interface Clarifications {
  /** The physician's questions about the released report (Communications `about` it, no `inResponseTo`). */
  questions: WithId<Communication>[];
  /** The specialist's answers (Communications `inResponseTo` one of those questions). */
  answers: WithId<Communication>[];
}

/**
 * Clarification questions about the released report (issue 14, step 5): free, they reach the
 * specialist, and the answers stay with the case. A question is a Communication based on the
 * ServiceRequest and `about` the report, written by a referring physician of the case or their EHR
 * (the writer the hub recorded); an answer is the report's author's Communication in response to one.
 */
export async function clarifications(
  repo: HubRepository,
  serviceRequestId: string,
  reportId: string,
  authorId: string | undefined,
): Promise<Clarifications> {
  const all = await searchAll<Communication>(
    repo,
    parseSearchRequest<Communication>(
      `Communication?based-on=ServiceRequest/${serviceRequestId}&_sort=_lastUpdated&_count=${COMMUNICATION_PAGE}`,
    ),
  );
  const aboutReport = (communication: Communication): boolean =>
    (communication.about ?? []).some((reference) => referencedId(reference, 'DiagnosticReport') === reportId);
  const questions = all.filter((communication) => {
    const writer = actorOf(communication.meta?.source);
    return (
      aboutReport(communication) &&
      (communication.inResponseTo ?? []).length === 0 &&
      (writer?.role === 'referring-physician' || writer?.role === 'ehr')
    );
  });
  const asked = new Set(questions.map((question) => question.id));
  const answers = all.filter((communication) => {
    const writer = actorOf(communication.meta?.source);
    return (
      writer?.role === 'specialist' &&
      writer.id === authorId &&
      (communication.inResponseTo ?? []).some((reference) => asked.has(referencedId(reference, 'Communication') ?? ''))
    );
  });
  return { questions, answers };
}
