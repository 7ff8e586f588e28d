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

function listNumbers(numbers: readonly number[]): string {
  const words = numbers.map(String);
  const last = words.pop();
  return words.length === 0 ? (last ?? '') : `${words.join(', ')} and ${last ?? ''}`;
}
