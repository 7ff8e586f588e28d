/**
 * Counting the referring physician's questions as the service bills them: up to four are included
 * and a multi-part question counts as several.
 *
 * Parts are detected by three conservative signals, each easy to explain to the physician:
 * 1. An enumeration: markers of one style, "(a) (b)", "a) b)", "(1) (2)", "1) 2)", "1. 2." or
 *    "(i) (ii)", counted only as a run in order from the first label (a, 1 or i), so "stage 1." or
 *    "figure (b)" alone count nothing. "a. b." counts only at the start of lines.
 * 2. Question marks ending a sentence: "?" straight after a word, a digit, a closing bracket or quote.
 *    Clinical shorthand "? lymphoma" and "(?metastasis)" is not a question, and "??" is one.
 * 3. A further question joined inside a sentence: "and" or "if so," / "if not," followed by a
 *    question word (what, which, when, where, who, why, how) or an auxiliary verb inverted with a
 *    pronoun subject ("is it", "should she", "do we", "is there"): "Is chemotherapy indicated, and if
 *    so, which regimen?" is two. "or" never counts: "is it benign or is it malignant?" asks one thing,
 *    and "and/or" joins nouns. A sentence that merely starts with "And …" or "If so, …" is already
 *    counted by its own "?".
 *
 * An item's parts are the larger of the enumeration and the prose count (question marks, at least 1,
 * plus joined questions): numbered parts usually each end in their own "?", so adding the two would
 * count twice. Text with no question in it ("Please review the enclosed MRI.") still makes one part:
 * the physician asked for something. Empty items count nothing. A coordinator can set the count when
 * the rules get it wrong; the detected count is kept next to it.
 */

export interface QuestionPartCount {
  /** Position of the item in the physician's list, from 0. */
  index: number;
  parts: number;
  /** Why the item counts as that many, in words for the physician and the coordinator. */
  reasons: string[];
}

export interface QuestionCountOverride {
  count: number;
  /** The coordinator who set it (a Practitioner reference or user id). */
  setBy: string;
  reason: string;
}

export interface QuestionCount {
  questions: QuestionPartCount[];
  /** The sum of detected parts. */
  detectedCount: number;
  /** The count billed: the override's when there is one, else the detected count. */
  count: number;
  override?: QuestionCountOverride;
}

const QUESTION_WORDS = ['what', 'which', 'when', 'where', 'who', 'whom', 'whose', 'why', 'how'];
const AUXILIARIES = [
  'is',
  'are',
  'was',
  'were',
  'should',
  'would',
  'could',
  'can',
  'will',
  'shall',
  'may',
  'might',
  'must',
  'do',
  'does',
  'did',
  'has',
  'have',
  'had',
];
const PRONOUN_SUBJECTS = ['i', 'we', 'you', 'he', 'she', 'it', 'they', 'there'];

const IF_SO = String.raw`if\s+(?:so|not)\s*,?\s*`;
const FURTHER_QUESTION = new RegExp(
  String.raw`(?:\band\s*,?\s+(?:${IF_SO})?|\b${IF_SO})` +
    String.raw`(?:${QUESTION_WORDS.join('|')}|(?:${AUXILIARIES.join('|')})\s+(?:${PRONOUN_SUBJECTS.join('|')}))\b`,
  'gi',
);

// "?" ending a question: after a letter, digit, closing bracket or quote; before a space, the end, a
// closing bracket or quote, or a capital letter (a missing space).
const QUESTION_MARK = /(?<=[\p{L}\p{N})\]"'’”])\?+(?=\s|$|["'’”)\]]|\p{Lu})/gu;

// A marker stands at the start, or after whitespace or a colon/semicolon/comma, and is followed by
// whitespace. Parenthesised labels may be letters, numbers or roman numerals; "x)" and "x." only
// letters or numbers, and a letter with a period only at the start of a line ("a. Is …").
const ENUMERATION_MARKER =
  /(?:^|(?<=[\s:;,]))(?:\((\d{1,2}|[a-z]|[ivx]{1,4})\)|(\d{1,2}|[a-z])\)|(\d{1,2})\.|(?<=^|\n[ \t]*)([a-z])\.)(?=\s)/gi;
const MARKER_STYLES = ['(x)', 'x)', 'x.', 'x.'];

const ROMAN_NUMERALS = ['i', 'ii', 'iii', 'iv', 'v', 'vi', 'vii', 'viii', 'ix', 'x', 'xi', 'xii'];

/** Ordinal of a label in each labelling scheme (1 for "1", "a" and "i"). */
const LABEL_SCHEMES: ((label: string) => number | undefined)[] = [
  (label) => (/^\d+$/.test(label) ? Number(label) : undefined),
  (label) => (/^[a-z]$/.test(label) ? label.charCodeAt(0) - 96 : undefined),
  (label) => {
    const position = ROMAN_NUMERALS.indexOf(label);
    return position < 0 ? undefined : position + 1;
  },
];

/** The longest run of markers of one style labelled 1, 2, 3 … (or a, b, c …; i, ii, iii …) in text order. */
function enumeratedParts(text: string): string[] {
  const markers = [...text.matchAll(ENUMERATION_MARKER)].map((match) => {
    // Each alternative of the pattern captures its label in a group of its own, one per style.
    const [marker, ...labels] = match;
    const group = labels.findIndex((label) => label !== undefined);
    const label = labels[group];
    const style = MARKER_STYLES[group];
    if (label === undefined || style === undefined) {
      throw new Error('an enumeration marker matched without a label');
    }
    return { label: label.toLowerCase(), style, marker };
  });
  let longest: string[] = [];
  for (const style of new Set(MARKER_STYLES)) {
    for (const ordinal of LABEL_SCHEMES) {
      const run: string[] = [];
      for (const { label, marker } of markers.filter((candidate) => candidate.style === style)) {
        if (ordinal(label) === run.length + 1) {
          run.push(marker);
        }
      }
      if (run.length > longest.length) {
        longest = run;
      }
    }
  }
  return longest.length >= 2 ? longest : [];
}

/**
 * Questions asked in prose: one per sentence ending in "?", plus one per further question joined
 * inside such a sentence. Text with no "?" at all is one request plus its joined questions.
 */
function askedQuestions(text: string): { questionMarks: number; joined: string[] } {
  // "(?metastasis)" and "and/or" are shorthand, not questions.
  const prose = text.replace(/\(\s*\?[^()]*\)/g, ' ').replace(/\band\s*\/\s*or\b/gi, ' ');
  const sentences: string[] = [];
  let from = 0;
  for (const mark of prose.matchAll(QUESTION_MARK)) {
    const to = mark.index + mark[0].length;
    sentences.push(prose.slice(from, to));
    from = to;
  }
  const questionMarks = sentences.length;
  sentences.push(prose.slice(from));
  const joined: string[] = [];
  for (const sentence of sentences) {
    for (const joint of sentence.matchAll(FURTHER_QUESTION)) {
      // A sentence that merely starts with "And how …?" or "If so, which …?" is already counted by its "?".
      if (/[\p{L}\p{N}]/u.test(sentence.slice(0, joint.index))) {
        joined.push(joint[0].replace(/\s+/g, ' ').trim());
      }
    }
  }
  return { questionMarks, joined };
}

/** The parts of one question item, with the reasons. */
export function countQuestionParts(given: string, index = 0): QuestionPartCount {
  // Runs of whitespace become one space (one line break if they hold one) before any pattern runs:
  // FURTHER_QUESTION's `\s*,?\s+` would otherwise backtrack quadratically on a long run.
  const text = given.replace(/\s+/g, (run) => (run.includes('\n') ? '\n' : ' '));
  if (text.trim() === '') {
    return { index, parts: 0, reasons: ['empty: not counted'] };
  }
  const enumeration = enumeratedParts(text);
  const { questionMarks, joined } = askedQuestions(text);
  const asked = Math.max(1, questionMarks) + joined.length;

  const reasons: string[] = [];
  if (enumeration.length > 0) {
    reasons.push(`${enumeration.length} enumerated parts (${enumeration.join(' ')})`);
  }
  if (questionMarks > 1) {
    reasons.push(`${questionMarks} question marks`);
  }
  for (const joint of joined) {
    reasons.push(`a further question joined by “${joint} …”`);
  }
  if (enumeration.length > 0 && asked > 1 && asked !== enumeration.length) {
    reasons.push(
      asked > enumeration.length
        ? `counted by the ${asked} questions asked, more than the enumerated parts`
        : `counted by the enumerated parts, more than the ${asked} questions asked`,
    );
  }
  if (reasons.length === 0) {
    reasons.push('a single question');
  }
  return { index, parts: Math.max(enumeration.length, asked), reasons };
}

/**
 * Counts a list of questions as the physician entered them (one item each, as in the
 * QuestionnaireResponse), applying a coordinator's override when there is one.
 */
export function countQuestions(items: readonly string[], override?: QuestionCountOverride): QuestionCount {
  const questions = items.map((text, index) => countQuestionParts(text, index));
  const detectedCount = questions.reduce((sum, question) => sum + question.parts, 0);
  if (!override) {
    return { questions, detectedCount, count: detectedCount };
  }
  if (!Number.isInteger(override.count) || override.count < 0) {
    throw new RangeError(`A question count is a whole number, 0 or more, not ${override.count}`);
  }
  if (override.reason.trim() === '') {
    throw new RangeError('A coordinator overriding the question count must give a reason');
  }
  if (override.setBy.trim() === '') {
    throw new RangeError('A question count override must say who set it');
  }
  return { questions, detectedCount, count: override.count, override };
}
