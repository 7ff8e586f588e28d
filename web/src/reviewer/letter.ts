/**
 * The consultation letter as the specialist writes it and as the hub stores it (docs/case-workflow.md,
 * "The opinion"): a Composition (LOINC 11488-4, `preliminary` while a draft) whose sections are coded
 * in urn:hub:letter-section — `reviewed` (its entries name the request and the materials), one
 * `answer` per physician question (its number in urn:hub:extension:question-number), `discussion`,
 * `recommendation`, `references` — each section's text its narrative; and the draft DiagnosticReport
 * naming the letter. Pure: plain text in, FHIR out, and back.
 */
import type { Composition, CompositionSection, DiagnosticReport, Reference, ServiceRequest } from '@medplum/fhirtypes';
import {
  CONSULTATION_NOTE,
  LETTER_EXTENSION,
  LETTER_SECTION_SYSTEM,
  LOINC,
  QUESTION_NUMBER_EXTENSION,
} from './codes.ts';

export interface LetterDraft {
  reviewed: string;
  /** The answer to each question, by its index (question 1 is answers[0]). */
  answers: string[];
  discussion: string;
  recommendation: string;
  references: string;
  /** The report's conclusion (DiagnosticReport.conclusion), a line for the physician's EHR. */
  conclusion: string;
}

export const CONSULTATION_TYPE = {
  coding: [{ system: LOINC, code: CONSULTATION_NOTE, display: 'Consultation note' }],
};

const XHTML = 'http://www.w3.org/1999/xhtml';
const MANAGED = new Set(['reviewed', 'answer', 'discussion', 'recommendation', 'references']);

export const emptyDraft = (questionCount: number): LetterDraft => ({
  reviewed: '',
  answers: Array.from({ length: questionCount }, () => ''),
  discussion: '',
  recommendation: '',
  references: '',
  conclusion: '',
});

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Plain text as a narrative div: a paragraph per blank-line-separated block, line breaks kept. */
export function textToDiv(text: string): string {
  const paragraphs = text
    .replace(/\r\n?/g, '\n')
    .split(/\n\s*\n/)
    .map((paragraph) => paragraph.trim())
    .filter((paragraph) => paragraph !== '')
    .map((paragraph) => `<p>${paragraph.split('\n').map(escapeXml).join('<br/>')}</p>`);
  return `<div xmlns="${XHTML}">${paragraphs.join('')}</div>`;
}

function codePoint(code: number): string {
  return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : '\ufffd';
}

/** A narrative div as plain text, paragraphs separated by blank lines (as the hub reads it). */
export function divToText(div: string | undefined): string {
  return (div ?? '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|h\d|tr)>/gi, '\n\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&#(\d{1,7});/g, (_entity, code: string) => codePoint(Number(code)))
    .replace(/&#x([0-9a-f]{1,6});/gi, (_entity, code: string) => codePoint(Number.parseInt(code, 16)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const kindOf = (section: CompositionSection): string | undefined =>
  section.code?.coding?.find((coding) => coding.system === LETTER_SECTION_SYSTEM)?.code;

const questionOf = (section: CompositionSection): number | undefined => {
  const extension = section.extension?.find((candidate) => candidate.url === QUESTION_NUMBER_EXTENSION);
  return extension?.valueUnsignedInt ?? extension?.valuePositiveInt ?? extension?.valueInteger;
};

/** The draft a stored letter holds, for `questionCount` questions. */
export function readLetter(
  letter: Composition | undefined,
  report: DiagnosticReport | undefined,
  questionCount: number,
): LetterDraft {
  const draft = emptyDraft(questionCount);
  for (const section of letter?.section ?? []) {
    const text = divToText(section.text?.div);
    const kind = kindOf(section);
    if (kind === 'answer') {
      const number = questionOf(section);
      if (number !== undefined && number >= 1 && number <= questionCount) {
        draft.answers[number - 1] = text;
      }
    } else if (kind === 'reviewed' || kind === 'discussion' || kind === 'recommendation' || kind === 'references') {
      draft[kind] = text;
    }
  }
  draft.conclusion = report?.conclusion ?? '';
  return draft;
}

const SECTION_TITLES = {
  reviewed: 'What was reviewed',
  discussion: 'Discussion',
  recommendation: 'Recommendation',
  references: 'References',
} as const;

function section(code: string, title: string, text: string, questionNumber?: number): CompositionSection {
  return {
    title,
    code: { coding: [{ system: LETTER_SECTION_SYSTEM, code }] },
    ...(questionNumber === undefined
      ? {}
      : { extension: [{ url: QUESTION_NUMBER_EXTENSION, valueUnsignedInt: questionNumber }] }),
    text: { status: 'generated', div: textToDiv(text) },
  };
}

export interface LetterContext {
  caseId: string;
  subject: ServiceRequest['subject'];
  author: string;
  /** What the summary lists as reviewed: the request first, then the materials. */
  materials: Reference[];
}

/**
 * The letter for `draft`, on top of `previous` (its id, and any section this editor does not write,
 * are kept). A section with no text yet is left out: FHIR wants a section to say something, and the
 * hub names what is missing when the specialist submits.
 */
export function buildLetter(draft: LetterDraft, context: LetterContext, previous?: Composition): Composition {
  const entries = [{ reference: `ServiceRequest/${context.caseId}` }, ...context.materials].filter(
    (reference, index, all) => all.findIndex((other) => other.reference === reference.reference) === index,
  );
  const has = (text: string) => text.trim() !== '';
  const sections: CompositionSection[] = [
    // The summary always names the case: that entry is what makes the letter the case's.
    {
      ...(has(draft.reviewed)
        ? section('reviewed', SECTION_TITLES.reviewed, draft.reviewed)
        : { title: SECTION_TITLES.reviewed, code: { coding: [{ system: LETTER_SECTION_SYSTEM, code: 'reviewed' }] } }),
      entry: entries,
    },
    ...draft.answers.flatMap((answer, index) =>
      has(answer) ? [section('answer', `Question ${index + 1}`, answer, index + 1)] : [],
    ),
    ...(['discussion', 'recommendation', 'references'] as const).flatMap((kind) =>
      has(draft[kind]) ? [section(kind, SECTION_TITLES[kind], draft[kind])] : [],
    ),
    ...(previous?.section ?? []).filter((kept) => !MANAGED.has(kindOf(kept) ?? '')),
  ];
  return {
    ...(previous ?? {}),
    resourceType: 'Composition',
    status: 'preliminary',
    type: CONSULTATION_TYPE,
    ...(context.subject ? { subject: context.subject } : {}),
    date: new Date().toISOString(),
    author: [{ reference: context.author }],
    title: 'Second-opinion consultation',
    section: sections,
    meta: undefined,
  };
}

/** The draft report naming `letter` (a reference, or a transaction's urn:uuid). */
export function buildReport(
  draft: LetterDraft,
  context: LetterContext,
  letter: string,
  previous?: DiagnosticReport,
): DiagnosticReport {
  const conclusion = draft.conclusion.trim();
  const report: DiagnosticReport = {
    ...(previous ?? {}),
    resourceType: 'DiagnosticReport',
    status: 'preliminary',
    code: CONSULTATION_TYPE,
    ...(context.subject ? { subject: context.subject } : {}),
    basedOn: [{ reference: `ServiceRequest/${context.caseId}` }],
    resultsInterpreter: [{ reference: context.author }],
    extension: [
      ...(previous?.extension ?? []).filter((extension) => extension.url !== LETTER_EXTENSION),
      { url: LETTER_EXTENSION, valueReference: { reference: letter } },
    ],
    meta: undefined,
  };
  if (conclusion === '') {
    delete report.conclusion;
  } else {
    report.conclusion = conclusion;
  }
  return report;
}

/**
 * What keeps the letter from being submitted, in the hub's terms (src/cases/opinion-letter.ts
 * letterProblems): the summary, an answer to every question, the discussion and the recommendation.
 * The hub checks again when the case is submitted; this only spares a refused round.
 */
export function draftProblems(draft: LetterDraft): string[] {
  const problems: string[] = [];
  if (draft.reviewed.trim() === '') {
    problems.push('Write the summary of what was reviewed.');
  }
  draft.answers.forEach((answer, index) => {
    if (answer.trim() === '') {
      problems.push(`Answer question ${index + 1}.`);
    }
  });
  if (draft.discussion.trim() === '') {
    problems.push('Write the discussion.');
  }
  if (draft.recommendation.trim() === '') {
    problems.push('Write the recommendation.');
  }
  return problems;
}
