/**
 * The released opinion on the page: the letter's sections in the order the PDF has them (what was
 * reviewed, each question with its answer, the discussion, the recommendation, the references; an
 * amended report's note of what changed; the addenda), the report's conclusion, who wrote it, and the
 * signed PDF itself. Shared by the physician's and the patient's pages; whether it may be read at
 * all is the hub's answer (opinion-data.ts).
 */
import { Alert, Badge, Card, Group, List, Loader, Stack, Text, Title } from '@mantine/core';
import type { CompositionSection } from '@medplum/fhirtypes';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { ApiError } from '../fhir.ts';
import { formatDateTime, formatName } from '../format.ts';
import { PdfFrame } from '../viewers/PdfFrame.tsx';
import { narrativeParagraphs } from './narrative.ts';
import { questionNumberOf, sectionCode, useOpinion } from './opinion-data.ts';

const HEADINGS: Record<string, string> = {
  reviewed: 'What was reviewed',
  discussion: 'Discussion',
  recommendation: 'Recommendation',
  references: 'References',
  amendment: 'What this amended report changed, and why',
};
const ORDER = ['amendment', 'reviewed', 'answer', 'discussion', 'recommendation', 'references'];

function Paragraphs({ section }: { section: CompositionSection }) {
  const paragraphs = narrativeParagraphs(section.text?.div);
  return paragraphs.length === 0 ? (
    <Text c="dimmed">(empty)</Text>
  ) : (
    <Stack gap={4}>
      {paragraphs.map((paragraph, index) => (
        <Text key={index}>{paragraph}</Text>
      ))}
    </Stack>
  );
}

function Section({ heading, section }: { heading: string; section: CompositionSection }) {
  return (
    <Stack gap={4} data-testid="opinion-section">
      <Title order={4} size="h5">
        {heading}
      </Title>
      <Paragraphs section={section} />
    </Stack>
  );
}

export interface OpinionLetterProps {
  reportId: string;
  /** The physician's questions in order (question 1 first), to set each answer beside its question. */
  questions: readonly string[];
  /** What to say when the hub does not give the report (a patient before the physician's reading). */
  notYet?: string;
}

export function OpinionLetter({ reportId, questions, notYet }: OpinionLetterProps) {
  const { report, letter, addenda, author, pdfPath } = useOpinion(reportId);
  if (report.error instanceof ApiError && report.error.status === 404 && notYet !== undefined) {
    return <Text data-testid="opinion-not-yet">{notYet}</Text>;
  }
  if (report.error) {
    return <ErrorAlert error={report.error} title="The opinion could not be read" />;
  }
  if (report.isPending) {
    return <Loader role="status" aria-label="Loading the opinion" />;
  }
  const sections = [...(letter.data?.section ?? [])].sort(
    (a, b) =>
      ORDER.indexOf(sectionCode(a) ?? '') - ORDER.indexOf(sectionCode(b) ?? '') ||
      (questionNumberOf(a) ?? 0) - (questionNumberOf(b) ?? 0),
  );
  const status = report.data.status;
  return (
    <Stack data-testid="opinion-letter">
      <Group gap="xs">
        <Text size="sm" c="dimmed">
          {author ? `By ${formatName(author.name) ?? 'the specialist'}` : 'By the specialist'}, issued{' '}
          {formatDateTime(report.data.issued ?? report.data.meta?.lastUpdated)}
        </Text>
        {status === 'amended' || status === 'corrected' ? (
          <Badge color="orange" variant="light">
            Amended
          </Badge>
        ) : null}
        {status === 'appended' ? (
          <Badge color="orange" variant="light">
            With addenda
          </Badge>
        ) : null}
      </Group>
      {report.data.conclusion ? (
        <Alert color="blue" title="In short" data-testid="opinion-conclusion">
          {report.data.conclusion}
        </Alert>
      ) : null}
      {letter.error ? <ErrorAlert error={letter.error} title="The letter could not be read" /> : null}
      {letter.isLoading ? <Loader size="sm" role="status" aria-label="Loading the letter" /> : null}
      {sections.map((section, index) => {
        const code = sectionCode(section) ?? '';
        if (code === 'answer') {
          const number = questionNumberOf(section);
          const question = number === undefined ? undefined : questions[number - 1];
          return (
            <Section
              key={index}
              heading={`Question ${number ?? '?'}${question ? `: ${question}` : ''}`}
              section={section}
            />
          );
        }
        return <Section key={index} heading={HEADINGS[code] ?? section.title ?? 'Section'} section={section} />;
      })}
      {addenda.map((addendum) => (
        <Card key={addendum.id} withBorder padding="sm" data-testid="opinion-addendum">
          <Title order={4} size="h5">
            Addendum of {formatDateTime(addendum.date)}
          </Title>
          <List listStyleType="none">
            {(addendum.section ?? []).map((section, index) => (
              <List.Item key={index}>
                <Paragraphs section={section} />
              </List.Item>
            ))}
          </List>
        </Card>
      ))}
      {pdfPath ? (
        <PdfFrame path={pdfPath} title="the signed opinion" />
      ) : (
        <Text c="dimmed">The signed PDF is not available.</Text>
      )}
    </Stack>
  );
}
