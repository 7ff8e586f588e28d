/**
 * What a consultation letter must hold before its specialist may submit it for review (issue 14;
 * the sample consultation of shared/reference/second-opinion-service-page.txt): a summary of what was
 * reviewed, one answer to each of the referring physician's questions, the discussion and the
 * recommendation; references are optional. The letter is a Composition (LOINC 11488-4) whose
 * sections are coded in `urn:hub:letter-section`; an answer section says which question it answers
 * by its number (1 for the physician's first question) in `urn:hub:extension:question-number`.
 */

export const LETTER_SECTION_SYSTEM = 'urn:hub:letter-section';
export const QUESTION_NUMBER_EXTENSION = 'urn:hub:extension:question-number';

export const LETTER_SECTIONS = ['reviewed', 'answer', 'discussion', 'recommendation', 'references'] as const;
export type LetterSectionKind = (typeof LETTER_SECTIONS)[number];

/** The sections every letter has once, in this order of mention. */
const REQUIRED_ONCE: readonly LetterSectionKind[] = ['reviewed', 'discussion', 'recommendation'];

const SECTION_NAMES: Readonly<Record<LetterSectionKind, string>> = {
  reviewed: 'the summary of what was reviewed',
  answer: 'an answer',
  discussion: 'the discussion',
  recommendation: 'the recommendation',
  references: 'the references',
};

/** A section as the letter states it: its code, the question it answers, and whether it says anything. */
export interface LetterSection {
  /** The code in LETTER_SECTION_SYSTEM; undefined when the section has none. */
  readonly kind: string | undefined;
  readonly questionNumber: number | undefined;
  readonly hasText: boolean;
}

/**
 * What keeps a letter from being submitted, in words for the specialist; empty when it is complete.
 * Questions are named by their number only (their text is the physician's and may be clinical).
 */
export function letterProblems(sections: readonly LetterSection[], questionCount: number): string[] {
  const problems: string[] = [];
  const known = (kind: string | undefined): kind is LetterSectionKind =>
    kind !== undefined && (LETTER_SECTIONS as readonly string[]).includes(kind);
  const uncoded = sections.filter((section) => !known(section.kind)).length;
  if (uncoded > 0) {
    problems.push(
      `${uncoded} section${uncoded > 1 ? 's have' : ' has'} no code of ${LETTER_SECTION_SYSTEM} (${LETTER_SECTIONS.join(', ')}).`,
    );
  }
  for (const kind of REQUIRED_ONCE) {
    const found = sections.filter((section) => section.kind === kind);
    if (found.length === 0) {
      problems.push(`The letter has no section for ${SECTION_NAMES[kind]}.`);
    } else if (found.length > 1) {
      problems.push(`The letter has ${found.length} sections for ${SECTION_NAMES[kind]}; write one.`);
    } else if (!found.some((section) => section.hasText)) {
      problems.push(`The section for ${SECTION_NAMES[kind]} is empty.`);
    }
  }
  const answers = sections.filter((section) => section.kind === 'answer');
  const unnumbered = answers.filter(
    (section) =>
      section.questionNumber === undefined ||
      !Number.isInteger(section.questionNumber) ||
      section.questionNumber < 1 ||
      section.questionNumber > questionCount,
  ).length;
  if (unnumbered > 0) {
    problems.push(
      `${unnumbered} answer section${unnumbered > 1 ? 's name' : ' names'} no question of the request ` +
        `(${QUESTION_NUMBER_EXTENSION}, from 1 to ${questionCount}).`,
    );
  }
  const unanswered: number[] = [];
  for (let number = 1; number <= questionCount; number++) {
    const mine = answers.filter((section) => section.questionNumber === number);
    if (mine.length > 1) {
      problems.push(`Question ${number} has ${mine.length} answer sections; write one.`);
    }
    if (!mine.some((section) => section.hasText)) {
      unanswered.push(number);
    }
  }
  if (unanswered.length > 0) {
    problems.push(
      `${unanswered.length === 1 ? 'Question' : 'Questions'} ${listNumbers(unanswered)} of ${questionCount} ` +
        `${unanswered.length === 1 ? 'has' : 'have'} no answer.`,
    );
  }
  return problems;
}

// ---- amendments after release -----------------------------------------------------------------------

/**
 * An amendment of a released letter: a correction replaces the whole letter (Composition.relatesTo
 * `replaces`) and says what was changed and why in one section coded `amendment`; an addendum adds
 * sections coded `addendum` to the letter, which stays as it was (`appends`).
 */
export type AmendmentKind = 'correction' | 'addendum';
/** The section of a correction that says what was changed and why. */
export const AMENDMENT_NOTE_SECTION = 'amendment';
/** The sections of an addendum. */
export const ADDENDUM_SECTION = 'addendum';

/** What keeps an amendment from being submitted or approved, in words for the specialist; empty when complete. */
export function amendmentProblems(
  kind: AmendmentKind,
  sections: readonly LetterSection[],
  questionCount: number,
): string[] {
  if (kind === 'addendum') {
    const added = sections.filter((section) => section.kind === ADDENDUM_SECTION);
    const others = sections.length - added.length;
    const problems: string[] = [];
    if (others > 0) {
      problems.push(
        `An addendum holds only sections coded ${ADDENDUM_SECTION}; it has ${others} other ` +
          `section${others > 1 ? 's' : ''}. To change what the letter says, write a correction (relatesTo replaces).`,
      );
    }
    if (added.length === 0) {
      problems.push(`The addendum has no section coded ${ADDENDUM_SECTION}.`);
    } else if (!added.some((section) => section.hasText)) {
      problems.push('The addendum is empty.');
    }
    return problems;
  }
  const notes = sections.filter((section) => section.kind === AMENDMENT_NOTE_SECTION);
  const problems = letterProblems(
    sections.filter((section) => section.kind !== AMENDMENT_NOTE_SECTION),
    questionCount,
  );
  if (notes.length === 0) {
    problems.push(`The correction does not say what was changed and why (a section coded ${AMENDMENT_NOTE_SECTION}).`);
  } else if (notes.length > 1) {
    problems.push(`The correction has ${notes.length} sections coded ${AMENDMENT_NOTE_SECTION}; write one.`);
  } else if (!notes.some((section) => section.hasText)) {
    problems.push(`The section saying what was changed and why (${AMENDMENT_NOTE_SECTION}) is empty.`);
  }
  return problems;
}

function listNumbers(numbers: readonly number[]): string {
  const words = numbers.map(String);
  const last = words.pop();
  return words.length === 0 ? (last ?? '') : `${words.join(', ')} and ${last ?? ''}`;
}

// ---- the letter as the physician reads it ----------------------------------------------------------

export type OpinionBlockStyle = 'letterhead' | 'meta' | 'title' | 'heading' | 'question' | 'paragraph' | 'signature';

export interface OpinionBlock {
  readonly style: OpinionBlockStyle;
  readonly text: string;
}

/** A section of the approved letter: its code, the question it answers, and its plain text. */
export interface OpinionSectionText {
  readonly kind: string | undefined;
  readonly questionNumber: number | undefined;
  /** Paragraphs, separated by blank lines. */
  readonly text: string;
}

export interface OpinionLetterInput {
  /** The service's name and address, for the letterhead. */
  readonly serviceName: string;
  readonly serviceUrl: string;
  /** The day of the approval. */
  readonly date: Date;
  readonly physicianName: string | undefined;
  readonly patientName: string | undefined;
  /** Formatted for reading (reference-number.ts formatReferenceNumber). */
  readonly referenceNumber: string | undefined;
  /** The physician's questions, in order. */
  readonly questions: readonly string[];
  readonly sections: readonly OpinionSectionText[];
  readonly specialistName: string | undefined;
  readonly specialty: string | undefined;
  /**
   * The letter corrects an earlier one: the date of the report it replaces, and what was changed and
   * why (`date` is then the day of the correction).
   */
  readonly correction?: { readonly replacesDate: Date; readonly note: string };
  /** Addenda to the letter, oldest first: the day each was approved and its text. */
  readonly addenda?: readonly { readonly date: Date; readonly text: string }[];
}

/** A day as the letter prints it ("December 3, 2026"). */
export function letterDate(date: Date): string {
  return date.toLocaleDateString('en-US', { year: 'numeric', month: 'long', day: 'numeric', timeZone: 'UTC' });
}

const HEADINGS: Readonly<Record<Exclude<LetterSectionKind, 'answer'>, string>> = {
  reviewed: 'What was reviewed',
  discussion: 'Discussion',
  recommendation: 'Recommendation',
  references: 'References',
};

function paragraphs(text: string): OpinionBlock[] {
  return text
    .split(/\n\s*\n/)
    .map((paragraph) => paragraph.replace(/\s+/g, ' ').trim())
    .filter((paragraph) => paragraph !== '')
    .map((paragraph) => ({ style: 'paragraph', text: paragraph }));
}

/**
 * The approved letter in reading order, as the sample consultation has it: the letterhead, the date,
 * whom it is for and about, what was reviewed, each of the physician's questions with its answer,
 * the discussion, the recommendation, the references, and the specialist who signs it.
 */
export function opinionLetterBlocks(input: OpinionLetterInput): OpinionBlock[] {
  const blocks: OpinionBlock[] = [
    { style: 'letterhead', text: input.serviceName },
    { style: 'meta', text: input.serviceUrl },
    { style: 'meta', text: letterDate(input.date) },
  ];
  if (input.physicianName) {
    blocks.push({ style: 'meta', text: `To: ${input.physicianName}` });
  }
  const about = [input.patientName, input.referenceNumber ? `reference number ${input.referenceNumber}` : undefined]
    .filter((part): part is string => part !== undefined)
    .join(', ');
  if (about) {
    blocks.push({ style: 'meta', text: `Patient: ${about}` });
  }
  blocks.push({ style: 'title', text: 'Second-opinion consultation' });
  // A reader must tell at once that this is not the letter as first issued.
  if (input.correction) {
    blocks.push(
      { style: 'heading', text: 'Amended report' },
      {
        style: 'paragraph',
        text:
          `This report was amended on ${letterDate(input.date)}. It replaces the report of ` +
          `${letterDate(input.correction.replacesDate)}.`,
      },
      ...paragraphs(input.correction.note),
    );
  }
  for (const addendum of input.addenda ?? []) {
    blocks.push({ style: 'meta', text: `Addendum of ${letterDate(addendum.date)} at the end of this report.` });
  }
  const of = (kind: LetterSectionKind) => input.sections.filter((section) => section.kind === kind);
  for (const section of of('reviewed')) {
    blocks.push({ style: 'heading', text: HEADINGS.reviewed }, ...paragraphs(section.text));
  }
  input.questions.forEach((question, index) => {
    blocks.push({ style: 'heading', text: `Question ${index + 1}` }, { style: 'question', text: question });
    for (const answer of of('answer').filter((section) => section.questionNumber === index + 1)) {
      blocks.push(...paragraphs(answer.text));
    }
  });
  for (const kind of ['discussion', 'recommendation', 'references'] as const) {
    for (const section of of(kind)) {
      blocks.push({ style: 'heading', text: HEADINGS[kind] }, ...paragraphs(section.text));
    }
  }
  if (input.specialistName) {
    blocks.push({ style: 'signature', text: input.specialistName });
  }
  if (input.specialty) {
    blocks.push({ style: 'meta', text: input.specialty });
  }
  for (const addendum of input.addenda ?? []) {
    blocks.push({ style: 'heading', text: `Addendum of ${letterDate(addendum.date)}` }, ...paragraphs(addendum.text));
    if (input.specialistName) {
      blocks.push({ style: 'signature', text: input.specialistName });
    }
  }
  return blocks;
}
