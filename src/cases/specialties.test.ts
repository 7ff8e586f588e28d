import {
  type CaseMaterials,
  findKeyword,
  inferSpecialtyNeeds,
  SPECIALTIES,
  type Specialty,
  words,
} from './specialties.ts';

const noMaterials: CaseMaterials = { imaging: [], pathology: [] };
const top = (questions: string[], materials = noMaterials) => inferSpecialtyNeeds(questions, materials)[0]?.specialty;

describe('the taxonomy', () => {
  test('every specialty has a display name, a NUCC-shaped code and keywords', () => {
    expect(Object.keys(SPECIALTIES)).toEqual([
      'oncology',
      'cardiology',
      'neurology',
      'neurosurgery',
      'orthopaedics',
      'dermatology',
      'gastroenterology',
      'urology',
      'pulmonology',
      'endocrinology',
      'rheumatology',
      'haematology',
      'radiology',
      'pathology',
    ]);
    for (const definition of Object.values(SPECIALTIES)) {
      expect(definition.display).not.toBe('');
      expect(definition.nuccCode).toMatch(/^[0-9]{3}[0-9A-Z]{6}X$/);
      expect(definition.keywords.length).toBeGreaterThan(3);
    }
  });

  test.each([
    ['Is chemotherapy still indicated for her stage III colon cancer after surgery?', 'oncology'],
    ['Should he have a second stent, or is the angina better treated with medication?', 'cardiology'],
    ['Are the seizures epilepsy, and is the current medication right?', 'neurology'],
    ['Is a craniotomy the right treatment for this meningioma?', 'neurosurgery'],
    ['Does the torn meniscus need arthroscopic repair of the knee?', 'orthopaedics'],
    ['Is this rash psoriasis or eczema?', 'dermatology'],
    ['Is the Crohn’s disease active, and should the colitis be treated with a biologic?', 'gastroenterology'],
    ['With a rising PSA, should the prostate be biopsied again?', 'urology'],
    ['Is the COPD or the asthma the cause of his shortness of breath?', 'pulmonology'],
    ['Should the thyroid nodule be removed, given her diabetes?', 'endocrinology'],
    ['Is this lupus or rheumatoid arthritis?', 'rheumatology'],
    ['What causes her anaemia and low platelet count?', 'haematology'],
    ['Could the radiologist have misread the scan?', 'radiology'],
    ['Please give a histology review of the slides: is the pathology report correct?', 'pathology'],
  ] as [string, Specialty][])('%s → %s', (question, specialty) => {
    expect(top([question])).toBe(specialty);
  });
});

describe('inferSpecialtyNeeds', () => {
  test('the service page’s example case (uterine sarcoma) calls for oncology, with the words as evidence', () => {
    const needs = inferSpecialtyNeeds(
      [
        'Is the biopsy diagnosis of uterine leiomyosarcoma correct?',
        'Do you agree with surgery followed by chemotherapy for this tumour?',
      ],
      { imaging: [{ modality: 'MR', bodySite: 'Pelvis' }], pathology: [{ bodySite: 'Uterus' }] },
    );
    expect(needs).toEqual([
      {
        specialty: 'oncology',
        display: 'Medical Oncology',
        nuccCode: '207RX0202X',
        score: 6,
        evidence: ['"leiomyosarcoma" (questions)', '"tumour" (questions)', '"chemotherapy" (questions)'],
      },
      {
        specialty: 'pathology',
        display: 'Anatomic Pathology & Clinical Pathology',
        nuccCode: '207ZP0102X',
        score: 2,
        evidence: ['"biopsy diagnosis" (questions)'],
      },
    ]);
  });

  test('materials count half as much as questions; a modality can point to a specialty', () => {
    const needs = inferSpecialtyNeeds(['What do you recommend?'], {
      imaging: [
        { modality: 'MR', bodySite: 'Left knee' },
        { modality: 'CR', bodySite: 'Knee' },
        { modality: 'pt', bodySite: 'Whole body' },
      ],
      pathology: [{ bodySite: 'Skin of back' }],
    });
    expect(needs).toEqual([
      expect.objectContaining({ specialty: 'oncology', score: 1, evidence: ['"PET imaging" (imaging modality)'] }),
      expect.objectContaining({ specialty: 'orthopaedics', score: 1, evidence: ['"knee" (imaging body site)'] }),
      expect.objectContaining({ specialty: 'dermatology', score: 1, evidence: ['"skin" (biopsy site)'] }),
    ]);
    const asked = inferSpecialtyNeeds(['Does the knee need surgery?'], {
      imaging: [{ modality: 'MR', bodySite: 'Knee' }],
      pathology: [],
    });
    expect(asked).toEqual([expect.objectContaining({ specialty: 'orthopaedics', score: 3 })]);
  });

  test('a word repeated across questions counts once', () => {
    const needs = inferSpecialtyNeeds(
      ['Is it cancer?', 'What kind of cancer?', 'Cancers of this kind: how treated?'],
      noMaterials,
    );
    expect(needs).toEqual([
      expect.objectContaining({ specialty: 'oncology', score: 2, evidence: ['"cancer" (questions)'] }),
    ]);
  });

  test('strongest first; on equal evidence clinical specialties come before radiology and pathology', () => {
    expect(inferSpecialtyNeeds(['Was the knee misread?'], noMaterials).map((need) => need.specialty)).toEqual([
      'orthopaedics',
      'radiology',
    ]);
    expect(
      inferSpecialtyNeeds(['Heart or lung: which explains it, and is the lung nodule cancer?'], noMaterials).map(
        (need) => [need.specialty, need.score],
      ),
    ).toEqual([
      ['oncology', 2],
      ['cardiology', 2],
      ['pulmonology', 2],
    ]);
  });

  test('nothing recognised, nothing needed', () => {
    expect(inferSpecialtyNeeds(['Please advise on next steps.'], noMaterials)).toEqual([]);
    expect(inferSpecialtyNeeds([], noMaterials)).toEqual([]);
  });
});

describe('keyword matching', () => {
  const match = (keyword: string, text: string) => findKeyword(keyword, words(text));

  test('whole words, with plurals', () => {
    expect(match('heart', 'Her heart is enlarged')).toBe('heart');
    expect(match('heart', 'Severe heartburn')).toBeUndefined();
    expect(match('tumour', 'Two tumours')).toBe('tumours');
    expect(match('mass', 'Several masses')).toBe('masses');
  });

  test('prefixes and suffixes', () => {
    expect(match('oncolog*', 'Seen by the oncologist')).toBe('oncologist');
    expect(match('*sarcoma', 'A leiomyosarcoma')).toBe('leiomyosarcoma');
    expect(match('*sarcoma', 'Two osteosarcomas')).toBe('osteosarcomas');
    expect(match('*sarcoma', 'sarcomatoid features')).toBeUndefined();
  });

  test('phrases must be consecutive and stay within one text', () => {
    expect(match('multiple sclerosis', 'Is it Multiple  Sclerosis?')).toBe('multiple sclerosis');
    expect(match('multiple sclerosis', 'multiple lesions; no sclerosis')).toBeUndefined();
    expect(
      inferSpecialtyNeeds(['Is the pain from her heart', 'failure of the stent?'], noMaterials)[0]?.evidence,
    ).toEqual(['"heart" (questions)', '"stent" (questions)']);
  });

  test('case, accents, possessives and typographic apostrophes are ignored', () => {
    expect(words("Sjögren’s SYNDROME, Crohn's")).toEqual(['sjogren', 'syndrome', 'crohn']);
    expect(match('sjogren*', 'Sjögren’s syndrome')).toBe('sjogren');
    expect(match('x-ray', 'An X-ray of the chest')).toBe('x-ray');
  });
});
