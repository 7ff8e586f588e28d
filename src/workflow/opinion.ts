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
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { actorOf } from '../auth/actor.ts';
import { AUTHOR_ROLES, CONSULTATION_NOTE, DRAFT_STATUSES, LOINC } from '../auth/case-links.ts';
import type { Actor, CaseFacts } from '../cases/case-state.ts';
import {
  LETTER_SECTION_SYSTEM,
  QUESTION_NUMBER_EXTENSION,
  letterProblems,
  opinionLetterBlocks,
} from '../cases/opinion-letter.ts';
import { formatReferenceNumber, isValidReferenceNumber } from '../cases/reference-number.ts';
import type { LetterSection } from '../cases/opinion-letter.ts';
import type { HubRepository } from '../fhir/repository.ts';
import { caseResourceIdentifier, referencedId, taskCode } from './case-resources.ts';
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
 * a version the staff or a system client wrote, the one it names as interpreter.
 */
export function authorOf(report: DiagnosticReport): string | undefined {
  const writer = actorOf(report.meta?.source);
  if (writer && AUTHOR_ROLES.has(writer.role)) {
    return writer.id;
  }
  return referencedId(report.resultsInterpreter?.[0], 'Practitioner');
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
  const letterId = referencedId(
    report.extension?.find((extension) => extension.url === OPINION_LETTER_EXTENSION)?.valueReference,
    'Composition',
  );
  const letter = letterId ? await readOptional<Composition>(repo, 'Composition', letterId) : undefined;
  const patientId = referencedId(coordination.for, 'Patient') ?? referencedId(request.subject, 'Patient');
  const patient = patientId ? await readOptional<Patient>(repo, 'Patient', patientId) : undefined;
  const referenceNumber = coordination.groupIdentifier?.value;
  const readableNumber =
    referenceNumber && isValidReferenceNumber(referenceNumber) ? formatReferenceNumber(referenceNumber) : undefined;
  const questions = questionTexts(await requestQuestionnaires(repo, request));
  const blocks = opinionLetterBlocks({
    serviceName: SERVICE_NAME,
    serviceUrl,
    date: now,
    physicianName: await practitionerName(repo, referencedId(request.requester, 'Practitioner')),
    patientName: patient?.name?.[0] ? formatHumanName(patient.name[0]) || undefined : undefined,
    referenceNumber: readableNumber,
    questions,
    sections: (letter?.section ?? []).map((section) => ({ ...letterSection(section), text: sectionText(section) })),
    specialistName: await practitionerName(repo, authorId),
    specialty: await specialtyOf(repo, authorId),
  });
  const title = 'Second-opinion consultation';
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
  const attachment = {
    contentType: 'application/pdf',
    url: `Binary/${binary.id}`,
    title,
    size: pdf.byteLength,
    creation: now.toISOString(),
  };
  const specialist = authorId ? { reference: `Practitioner/${authorId}` } : undefined;
  const approver = approverId ? { reference: `Practitioner/${approverId}` } : { display: 'Coordinator' };
  const { meta: reportMeta, ...reportRest } = report;
  const finalReport = await repo.updateResource<DiagnosticReport>(
    { ...reportRest, status: 'final', issued: now.toISOString(), presentedForm: [attachment] },
    { ifMatch: reportMeta?.versionId },
  );
  if (letter) {
    const { meta: letterMeta, ...letterRest } = letter;
    await repo.updateResource<Composition>(
      {
        ...letterRest,
        status: 'final',
        attester: [...(letterRest.attester ?? []), { mode: 'professional', time: now.toISOString(), party: approver }],
      },
      { ifMatch: letterMeta?.versionId },
    );
  }
  const document = await repo.createResource<DocumentReference>({
    resourceType: 'DocumentReference',
    identifier: [caseResourceIdentifier(request.id, OPINION_DOCUMENT_ROLE)],
    status: 'current',
    docStatus: 'final',
    type: { coding: [{ system: LOINC, code: CONSULTATION_NOTE, display: 'Consultation note' }] },
    category: [{ coding: [{ system: DOCUMENT_CATEGORY, code: 'clinical-note', display: 'Clinical Note' }] }],
    ...(patientId ? { subject: { reference: `Patient/${patientId}` } } : {}),
    date: now.toISOString(),
    ...(specialist ? { author: [specialist] } : {}),
    authenticator: approver,
    description: title,
    content: [{ attachment }],
    context: {
      related: [{ reference: `ServiceRequest/${request.id}` }, { reference: `DiagnosticReport/${report.id}` }],
    },
  });
  await repo.createResource<Provenance>({
    resourceType: 'Provenance',
    target: [
      { reference: `DiagnosticReport/${report.id}/_history/${finalReport.meta?.versionId ?? ''}` },
      { reference: `DocumentReference/${document.id}` },
      ...(letter ? [{ reference: `Composition/${letter.id}` }] : []),
    ],
    recorded: now.toISOString(),
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE' }] },
    agent: [
      ...(specialist
        ? [{ type: { coding: [{ system: PROVENANCE_PARTICIPANT, code: 'author' }] }, who: specialist }]
        : []),
      { type: { coding: [{ system: PROVENANCE_PARTICIPANT, code: 'verifier' }] }, who: approver },
    ],
  });
  return { report: finalReport, document };
}

// ---- questions back to the physician ----------------------------------------------------------------

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
  const all = await repo.searchResources<Communication>(
    parseSearchRequest<Communication>(
      `Communication?based-on=ServiceRequest/${serviceRequestId}&_sort=_lastUpdated&_count=500`,
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
  const all = await repo.searchResources<Communication>(
    parseSearchRequest<Communication>(
      `Communication?based-on=ServiceRequest/${serviceRequestId}&_sort=_lastUpdated&_count=500`,
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
