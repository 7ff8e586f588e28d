import { countQuestionParts, countQuestions } from './questions.ts';

const parts = (text: string): number => countQuestionParts(text).parts;

describe('one part', () => {
  test.each([
    'Do you agree with the recommendation for total hysterectomy with bilateral salpingo-oophorectomy?',
    'Is this lesion more consistent with a leiomyoma or a leiomyosarcoma?',
    'Is it benign or is it malignant?',
    'Would radiation and/or chemotherapy be appropriate after resection?',
    'Please review the enclosed MRI and comment on the likely diagnosis.',
    'Please review the pathology. Is the margin adequate?',
    'Is the 1.5 cm nodule in the right upper lobe suspicious for malignancy?',
    'Stage 1. Is adjuvant therapy indicated?',
    'Is the patient, a 51-year-old with ? lymphoma on CT, a candidate for surgery?',
    'Is surgery needed (?metastatic disease on PET)',
    'Should she stop tamoxifen and have the surgery first?',
    'Does the pattern in figure (b) suggest recurrence?',
    'Is there evidence of T2 disease??',
    'What is the most appropriate next step in management?',
    'And what do you recommend?',
    'If so, which regimen would you recommend?',
  ])('%j', (question) => {
    expect(parts(question)).toBe(1);
    expect(countQuestionParts(question).reasons).toEqual(['a single question']);
  });
});

describe('multi-part questions', () => {
  test.each([
    ['Is surgery indicated? What margins should be obtained?', 2, ['2 question marks']],
    ['What is the diagnosis and what is the prognosis?', 2, ['a further question joined by “and what …”']],
    [
      'Is adjuvant chemotherapy indicated, and if so, which regimen?',
      2,
      ['a further question joined by “and if so, which …”'],
    ],
    ['Is adjuvant chemotherapy indicated; if so, for how long?', 1, ['a single question']],
    [
      'Is adjuvant chemotherapy indicated; if so, how long should it be given?',
      2,
      ['a further question joined by “if so, how …”'],
    ],
    [
      'Is the mass resectable and should she receive neoadjuvant therapy first?',
      2,
      ['a further question joined by “and should she …”'],
    ],
    [
      'Is the mass resectable, and is there a role for radiation?',
      2,
      ['a further question joined by “and is there …”'],
    ],
    [
      'Please comment on the margins and what further treatment is needed.',
      2,
      ['a further question joined by “and what …”'],
    ],
    ['Is surgery the best option?If not, what are the alternatives?', 2, ['2 question marks']],
    [
      'Regarding the thyroid nodule: (a) is it malignant? (b) should it be resected? (c) is radioactive iodine needed afterwards?',
      3,
      ['3 enumerated parts ((a) (b) (c))', '3 question marks'],
    ],
    [
      '1) Do you agree with the diagnosis? 2) Is a PET scan needed?',
      2,
      ['2 enumerated parts (1) 2))', '2 question marks'],
    ],
    [
      'Please address: 1. the diagnosis 2. the staging 3. the treatment options 4. the prognosis',
      4,
      ['4 enumerated parts (1. 2. 3. 4.)'],
    ],
    [
      'Please address: (i) the diagnosis, (ii) the staging, (iii) the treatment options.',
      3,
      ['3 enumerated parts ((i) (ii) (iii))'],
    ],
    ['Please comment on\na. the diagnosis\nb. the staging\nc. treatment', 3, ['3 enumerated parts (a. b. c.)']],
    [
      '(1) Is this a sarcoma and what grade is it? (2) Is further imaging needed?',
      3,
      [
        '2 enumerated parts ((1) (2))',
        '2 question marks',
        'a further question joined by “and what …”',
        'counted by the 3 questions asked, more than the enumerated parts',
      ],
    ],
    [
      'Should we treat (a) the primary and (b) the liver lesion, and is there a role for surgery?',
      2,
      ['2 enumerated parts ((a) (b))', 'a further question joined by “and is there …”'],
    ],
    [
      'Please review: (a) the CT (b) the MRI (c) the biopsy. Is surgery indicated?',
      3,
      ['3 enumerated parts ((a) (b) (c))'],
    ],
  ])('%j → %i', (question, expected, reasons) => {
    const counted = countQuestionParts(question);
    expect(counted.parts).toBe(expected);
    expect(counted.reasons).toEqual(reasons);
  });

  test('more enumerated parts than questions asked: the enumeration counts', () => {
    expect(
      countQuestionParts('(a) Is it malignant? (b) the staging (c) the treatment. What is the prognosis?'),
    ).toEqual({
      index: 0,
      parts: 3,
      reasons: [
        '3 enumerated parts ((a) (b) (c))',
        '2 question marks',
        'counted by the enumerated parts, more than the 2 questions asked',
      ],
    });
  });

  test('an enumeration must start at the first label and keep one style', () => {
    expect(parts('See (b) and (c) on the slides. Is this invasive?')).toBe(1);
    expect(parts('1) Is it malignant? Stage 2. disease was suspected')).toBe(1);
    expect(parts('(a) Is it malignant (c) or benign?')).toBe(1);
  });
});

describe('countQuestions', () => {
  const physicianQuestions = [
    'Do you agree with the diagnosis of uterine leiomyosarcoma?',
    'Is total hysterectomy with bilateral salpingo-oophorectomy indicated, and if so, should it be done without morcellation?',
    'Is there a role for adjuvant chemotherapy? What regimen would you recommend?',
    '  ',
    'Please comment on the prognosis.',
  ];

  test('sums the parts; empty items count nothing', () => {
    const counted = countQuestions(physicianQuestions);
    expect(counted.questions.map((question) => question.parts)).toEqual([1, 2, 2, 0, 1]);
    expect(counted.questions.map((question) => question.index)).toEqual([0, 1, 2, 3, 4]);
    expect(counted.questions[3]!.reasons).toEqual(['empty: not counted']);
    expect(counted).toMatchObject({ detectedCount: 6, count: 6 });
    expect(counted.override).toBeUndefined();
  });

  test('no questions', () => {
    expect(countQuestions([])).toEqual({ questions: [], detectedCount: 0, count: 0 });
  });

  test('a coordinator’s override sets the count and keeps the detected one', () => {
    const override = {
      count: 4,
      setBy: 'Practitioner/coordinator-7',
      reason: 'Item 2 asks one thing: surgery and how to do it.',
    };
    const counted = countQuestions(physicianQuestions, override);
    expect(counted).toMatchObject({ detectedCount: 6, count: 4, override });
    expect(countQuestions(physicianQuestions, { ...override, count: 0 }).count).toBe(0);
  });

  test('refuses an override without a whole count, a reason or an author', () => {
    const override = { count: 4, setBy: 'Practitioner/coordinator-7', reason: 'one question' };
    expect(() => countQuestions(physicianQuestions, { ...override, count: -1 })).toThrow(/whole number/);
    expect(() => countQuestions(physicianQuestions, { ...override, count: 2.5 })).toThrow(/whole number/);
    expect(() => countQuestions(physicianQuestions, { ...override, reason: ' ' })).toThrow(/reason/);
    expect(() => countQuestions(physicianQuestions, { ...override, setBy: '' })).toThrow(/who set it/);
  });
});
