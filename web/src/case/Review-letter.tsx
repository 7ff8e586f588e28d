/**
 * The opinion's letter (a Composition, LOINC 11488-4) as its reader meets it: the summary of what was
 * reviewed, each of the physician's questions with its answer, the discussion, the recommendation,
 * the references (docs/case-workflow.md, "The opinion"). A section's narrative is XHTML written by
 * the specialist; it is shown as text, paragraph by paragraph, never put into the page as markup.
 */
import { Stack, Text, Title } from '@mantine/core';
import type {
  Composition,
  CompositionSection,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
} from '@medplum/fhirtypes';

const LETTER_SECTION_SYSTEM = 'urn:hub:letter-section';
const QUESTION_NUMBER_EXTENSION = 'urn:hub:extension:question-number';
/** The QuestionnaireResponse item whose answers are the physician's questions (src/workflow/quote.ts). */
const QUESTION_LINK_ID = 'question';
const HEADINGS: Record<string, string> = {
  reviewed: 'What was reviewed',
  discussion: 'Discussion',
  recommendation: 'Recommendation',
  references: 'References',
  amendment: 'What the amendment changes',
  addendum: 'Addendum',
};
const BLOCKS = 'p, li, h1, h2, h3, h4, h5, h6, pre, blockquote, td, th';

/** The physician's questions in order, as the hub counts them (every answer of the `question` items). */
export function questionsOf(response: QuestionnaireResponse | undefined): string[] {
  const found: string[] = [];
  const visit = (items: readonly QuestionnaireResponseItem[] | undefined): void => {
    for (const item of items ?? []) {
      if (item.linkId === QUESTION_LINK_ID) {
        found.push(...(item.answer ?? []).flatMap((answer) => answer.valueString ?? []));
      }
      visit(item.item);
      (item.answer ?? []).forEach((answer) => visit(answer.item));
    }
  };
  visit(response?.item);
  return found;
}

/** A narrative's paragraphs as plain text (the innermost block elements, else the whole text). */
export function narrativeParagraphs(div: string | undefined): string[] {
  if (!div) {
    return [];
  }
  const body = new DOMParser().parseFromString(div, 'text/html').body;
  const blocks = [...body.querySelectorAll(BLOCKS)].filter((element) => element.querySelector(BLOCKS) === null);
  const texts = (blocks.length > 0 ? blocks : [body]).map((element) =>
    (element.textContent ?? '').replace(/\s+/g, ' ').trim(),
  );
  return texts.filter((text) => text !== '');
}

function sectionCode(section: CompositionSection): string | undefined {
  return section.code?.coding?.find((coding) => coding.system === LETTER_SECTION_SYSTEM)?.code;
}

function heading(section: CompositionSection, questions: readonly string[]): string {
  const code = sectionCode(section);
  if (code === 'answer') {
    const number = section.extension?.find(
      (extension) => extension.url === QUESTION_NUMBER_EXTENSION,
    )?.valueUnsignedInt;
    const question = number === undefined ? undefined : questions[number - 1];
    return number === undefined ? 'Answer' : `Question ${number}${question ? `: ${question}` : ''}`;
  }
  return (code && HEADINGS[code]) ?? section.title ?? 'Section';
}

export function LetterText({ letter, questions }: { letter: Composition; questions: readonly string[] }) {
  return (
    <Stack gap="sm" data-testid="opinion-letter">
      {letter.title ? (
        <Title order={4} size="h5">
          {letter.title}
        </Title>
      ) : null}
      {(letter.section ?? []).map((section, index) => (
        <Stack gap={4} key={index}>
          <Text fw={600}>{heading(section, questions)}</Text>
          {narrativeParagraphs(section.text?.div).map((paragraph, line) => (
            <Text key={line} size="sm">
              {paragraph}
            </Text>
          ))}
        </Stack>
      ))}
    </Stack>
  );
}
