import { amendmentProblems, letterProblems, opinionLetterBlocks } from './opinion-letter.ts';
import type { LetterSection } from './opinion-letter.ts';

const section = (kind: string | undefined, questionNumber?: number, hasText = true): LetterSection => ({
  kind,
  questionNumber,
  hasText,
});

const COMPLETE: LetterSection[] = [
  section('reviewed'),
  section('answer', 1),
  section('answer', 2),
  section('discussion'),
  section('recommendation'),
];

describe('letterProblems', () => {
  test('a letter with its three sections and an answer to each question is complete; references are optional', () => {
    expect(letterProblems(COMPLETE, 2)).toEqual([]);
    expect(letterProblems([...COMPLETE, section('references')], 2)).toEqual([]);
  });

  test('every question needs an answer that says something', () => {
    expect(letterProblems(COMPLETE, 3)).toEqual(['Question 3 of 3 has no answer.']);
    expect(letterProblems([...COMPLETE.filter((s) => s.kind !== 'answer'), section('answer', 2, false)], 3)).toEqual([
      'Questions 1, 2 and 3 of 3 have no answer.',
    ]);
  });

  test('an answer names a question of the request, once', () => {
    expect(letterProblems([...COMPLETE, section('answer', 3)], 2)).toEqual([
      '1 answer section names no question of the request (urn:hub:extension:question-number, from 1 to 2).',
    ]);
    expect(letterProblems([...COMPLETE, section('answer', undefined)], 2)).toHaveLength(1);
    expect(letterProblems([...COMPLETE, section('answer', 2)], 2)).toEqual([
      'Question 2 has 2 answer sections; write one.',
    ]);
  });

  test('the summary, discussion and recommendation are each there once, and not empty', () => {
    expect(
      letterProblems(
        COMPLETE.filter((s) => s.kind !== 'discussion'),
        2,
      ),
    ).toEqual(['The letter has no section for the discussion.']);
    expect(letterProblems([...COMPLETE, section('reviewed')], 2)).toEqual([
      'The letter has 2 sections for the summary of what was reviewed; write one.',
    ]);
    expect(
      letterProblems(
        [...COMPLETE.filter((s) => s.kind !== 'recommendation'), section('recommendation', undefined, false)],
        2,
      ),
    ).toEqual(['The section for the recommendation is empty.']);
  });

  test('sections without a letter-section code are reported', () => {
    expect(letterProblems([...COMPLETE, section(undefined), section('appendix')], 2)).toEqual([
      '2 sections have no code of urn:hub:letter-section (reviewed, answer, discussion, recommendation, references).',
    ]);
  });

  test('a request without questions needs no answers', () => {
    expect(
      letterProblems(
        COMPLETE.filter((s) => s.kind !== 'answer'),
        0,
      ),
    ).toEqual([]);
  });
});

describe('amendmentProblems', () => {
  test('a correction is a whole letter that says what was changed and why, once', () => {
    expect(amendmentProblems('correction', [...COMPLETE, section('amendment')], 2)).toEqual([]);
    expect(amendmentProblems('correction', COMPLETE, 2)).toEqual([
      'The correction does not say what was changed and why (a section coded amendment).',
    ]);
    expect(amendmentProblems('correction', [...COMPLETE, section('amendment', undefined, false)], 2)).toEqual([
      'The section saying what was changed and why (amendment) is empty.',
    ]);
    expect(amendmentProblems('correction', [...COMPLETE, section('amendment'), section('amendment')], 2)).toEqual([
      'The correction has 2 sections coded amendment; write one.',
    ]);
    expect(
      amendmentProblems('correction', [...COMPLETE.filter((s) => s.kind !== 'answer'), section('amendment')], 2),
    ).toEqual(['Questions 1 and 2 of 2 have no answer.']);
  });

  test('an addendum adds sections coded addendum, and only those', () => {
    expect(amendmentProblems('addendum', [section('addendum')], 2)).toEqual([]);
    expect(amendmentProblems('addendum', [], 2)).toEqual(['The addendum has no section coded addendum.']);
    expect(amendmentProblems('addendum', [section('addendum', undefined, false)], 2)).toEqual([
      'The addendum is empty.',
    ]);
    expect(amendmentProblems('addendum', [section('addendum'), section('discussion')], 2)).toEqual([
      'An addendum holds only sections coded addendum; it has 1 other section. To change what the letter says, ' +
        'write a correction (relatesTo replaces).',
    ]);
  });
});

describe('opinionLetterBlocks', () => {
  const input = {
    serviceName: 'Second Opinion Service',
    serviceUrl: 'https://hub.example.org',
    date: new Date('2026-12-06T23:30:00Z'),
    physicianName: 'Dr. Paul Physick',
    patientName: 'Olivia Quintero',
    referenceNumber: '442-442-4421',
    questions: ['Is it malignant?', 'What next?'],
    sections: [
      { kind: 'recommendation', questionNumber: undefined, text: 'A CT in a year.' },
      { kind: 'answer', questionNumber: 2, text: 'Watch and wait.' },
      { kind: 'reviewed', questionNumber: undefined, text: 'The CT.\n\nThe biopsy.' },
      { kind: 'answer', questionNumber: 1, text: 'No.' },
      { kind: 'discussion', questionNumber: undefined, text: 'A  hamartoma,\nclearly.' },
    ],
    specialistName: 'Dr. Amelia Abernathy',
    specialty: 'Medical Oncology',
  };

  test('the letter in reading order: letterhead, date (UTC), parties, summary, each question with its answer, discussion, recommendation, signature', () => {
    expect(opinionLetterBlocks(input).map((block) => `${block.style}: ${block.text}`)).toEqual([
      'letterhead: Second Opinion Service',
      'meta: https://hub.example.org',
      'meta: December 6, 2026',
      'meta: To: Dr. Paul Physick',
      'meta: Patient: Olivia Quintero, reference number 442-442-4421',
      'title: Second-opinion consultation',
      'heading: What was reviewed',
      'paragraph: The CT.',
      'paragraph: The biopsy.',
      'heading: Question 1',
      'question: Is it malignant?',
      'paragraph: No.',
      'heading: Question 2',
      'question: What next?',
      'paragraph: Watch and wait.',
      'heading: Discussion',
      'paragraph: A hamartoma, clearly.',
      'heading: Recommendation',
      'paragraph: A CT in a year.',
      'signature: Dr. Amelia Abernathy',
      'meta: Medical Oncology',
    ]);
  });

  test('what is not known is left out rather than printed empty', () => {
    const blocks = opinionLetterBlocks({
      ...input,
      physicianName: undefined,
      patientName: undefined,
      referenceNumber: undefined,
      specialty: undefined,
    });
    expect(blocks.filter((block) => /^(To|Patient):/.test(block.text))).toEqual([]);
    expect(blocks.at(-1)).toEqual({ style: 'signature', text: 'Dr. Amelia Abernathy' });
  });

  test('a correction says on its first page when it was amended, what it replaces, and why', () => {
    const blocks = opinionLetterBlocks({
      ...input,
      date: new Date('2026-12-09T15:00:00Z'),
      correction: { replacesDate: new Date('2026-12-06T23:30:00Z'), note: 'Question 2 answered again.' },
    }).map((block) => `${block.style}: ${block.text}`);
    expect(blocks.slice(2, 9)).toEqual([
      'meta: December 9, 2026',
      'meta: To: Dr. Paul Physick',
      'meta: Patient: Olivia Quintero, reference number 442-442-4421',
      'title: Second-opinion consultation',
      'heading: Amended report',
      'paragraph: This report was amended on December 9, 2026. It replaces the report of December 6, 2026.',
      'paragraph: Question 2 answered again.',
    ]);
  });

  test('addenda are announced under the title and follow the signed letter, each signed', () => {
    const blocks = opinionLetterBlocks({
      ...input,
      addenda: [
        { date: new Date('2026-12-08T15:00:00Z'), text: 'The PET-CT is negative.' },
        { date: new Date('2026-12-10T15:00:00Z'), text: 'The markers are normal.' },
      ],
    }).map((block) => `${block.style}: ${block.text}`);
    expect(blocks.slice(5, 8)).toEqual([
      'title: Second-opinion consultation',
      'meta: Addendum of December 8, 2026 at the end of this report.',
      'meta: Addendum of December 10, 2026 at the end of this report.',
    ]);
    expect(blocks.slice(-8)).toEqual([
      'signature: Dr. Amelia Abernathy',
      'meta: Medical Oncology',
      'heading: Addendum of December 8, 2026',
      'paragraph: The PET-CT is negative.',
      'signature: Dr. Amelia Abernathy',
      'heading: Addendum of December 10, 2026',
      'paragraph: The markers are normal.',
      'signature: Dr. Amelia Abernathy',
    ]);
  });
});
