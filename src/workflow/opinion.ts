/**
 * The specialist's opinion on its way to review (issue 14; docs/case-workflow.md, "The opinion"):
 * the draft consultation report (a DiagnosticReport, LOINC 11488-4, based on the request), its letter
 * (a Composition the report names with the R5 `DiagnosticReport.composition` cross-version extension),
 * what keeps the letter from being submitted, and the `approve` Task a submission opens for the
 * coordinators.
 */
import { parseSearchRequest } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type { Composition, CompositionSection, DiagnosticReport, ServiceRequest, Task } from '@medplum/fhirtypes';
import { actorOf } from '../auth/actor.ts';
import { CONSULTATION_NOTE, LOINC } from '../auth/case-links.ts';
import type { Actor, CaseFacts } from '../cases/case-state.ts';
import { LETTER_SECTION_SYSTEM, QUESTION_NUMBER_EXTENSION, letterProblems } from '../cases/opinion-letter.ts';
import type { LetterSection } from '../cases/opinion-letter.ts';
import type { HubRepository } from '../fhir/repository.ts';
import { caseResourceIdentifier, referencedId, taskCode } from './case-resources.ts';
import { readOptional } from './materials.ts';
import { questionTexts, requestQuestionnaires } from './quote.ts';

/** R4 has no DiagnosticReport.composition; R5 does, and this extension carries it into R4. */
export const OPINION_LETTER_EXTENSION =
  'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';

/** The `<role>` of the case's approval Task in its `urn:hub:case-resource` identifier. */
export const APPROVE_ROLE = 'approve';

const DRAFT_STATUSES = ['registered', 'partial', 'preliminary'];

/**
 * The Practitioner who wrote a draft: the reviewer the hub recorded as the version's writer, or for
 * a version the staff or a system client wrote, the one it names as interpreter.
 */
function authorOf(report: DiagnosticReport): string | undefined {
  const writer = actorOf(report.meta?.source);
  if (writer && ['specialist', 'radiologist', 'pathologist'].includes(writer.role)) {
    return writer.id;
  }
  return referencedId(report.resultsInterpreter?.[0], 'Practitioner');
}

/** The case's draft consultation reports, newest first. */
async function draftReports(repo: HubRepository, serviceRequestId: string): Promise<WithId<DiagnosticReport>[]> {
  const reports = await repo.searchResources<DiagnosticReport>(
    parseSearchRequest<DiagnosticReport>(
      `DiagnosticReport?based-on=ServiceRequest/${serviceRequestId}&code=${encodeURIComponent(`${LOINC}|${CONSULTATION_NOTE}`)}` +
        `&status=${DRAFT_STATUSES.join(',')}&_sort=-_lastUpdated&_count=50`,
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
}): Task {
  const { request, coordination, report, authorId, now } = options;
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
    authoredOn: now.toISOString(),
    lastModified: now.toISOString(),
  };
}
