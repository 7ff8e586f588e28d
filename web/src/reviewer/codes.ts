/**
 * The hub's codes the reviewers' screens read and write (docs/case-workflow.md, "Hub code systems").
 * They are the server's constants, repeated here because the app may import only types from src/.
 */
import type { CodeableConcept, Reference, Task } from '@medplum/fhirtypes';

export const TASK_CODE_SYSTEM = 'urn:hub:task-code';
export const CASE_REASON_SYSTEM = 'urn:hub:case-reason';
export const LOINC = 'http://loinc.org';
/** LOINC 11488-4 Consultation note: the opinion's report and letter. */
export const CONSULTATION_NOTE = '11488-4';
export const LETTER_SECTION_SYSTEM = 'urn:hub:letter-section';
export const QUESTION_NUMBER_EXTENSION = 'urn:hub:extension:question-number';
/** R4 has no DiagnosticReport.composition; the hub names the letter with R5's cross-version extension. */
export const LETTER_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
/** The QuestionnaireResponse item whose answers are the physician's questions (src/workflow/quote.ts). */
export const QUESTION_LINK_ID = 'question';

export type ReviewTaskCode = 'specialist-opinion' | 'pre-review-radiology' | 'pre-review-pathology';
export const REVIEW_TASK_CODES: readonly ReviewTaskCode[] = [
  'specialist-opinion',
  'pre-review-radiology',
  'pre-review-pathology',
];

/** A Task that still asks something of its owner. */
export const OPEN_TASK_STATUSES: readonly Task['status'][] = [
  'requested',
  'received',
  'accepted',
  'ready',
  'in-progress',
  'on-hold',
];

export function taskCodeOf(task: Task | undefined): string | undefined {
  return task?.code?.coding?.find((coding) => coding.system === TASK_CODE_SYSTEM)?.code;
}

export function codeIn(concept: CodeableConcept | undefined, system: string): string | undefined {
  return concept?.coding?.find((coding) => coding.system === system)?.code;
}

export function taskLabel(code: string | undefined): string {
  switch (code) {
    case 'specialist-opinion':
      return 'Second opinion';
    case 'pre-review-radiology':
      return 'Radiology pre-review';
    case 'pre-review-pathology':
      return 'Pathology pre-review';
    default:
      return code ?? 'Task';
  }
}

/** The ServiceRequest id a Task of a case is based on (or focused on). */
export function caseIdOf(task: Task): string | undefined {
  const references: (Reference | undefined)[] = [...(task.basedOn ?? []), task.focus];
  for (const reference of references) {
    const match = /^ServiceRequest\/([A-Za-z0-9\-.]{1,64})$/.exec(reference?.reference ?? '');
    if (match?.[1] !== undefined) {
      return match[1];
    }
  }
  return undefined;
}

/** `If-Match` for a resource read from the hub, so a concurrent change is refused (412), not overwritten. */
export function ifMatch(resource: { meta?: { versionId?: string } }): Record<string, string> {
  const version = resource.meta?.versionId;
  return version === undefined ? {} : { 'if-match': `W/"${version}"` };
}
