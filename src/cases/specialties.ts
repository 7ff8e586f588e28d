/**
 * The specialty a case calls for, from its questions and materials: a small keyword taxonomy mapped to
 * NUCC provider taxonomy codes, deliberately explainable rather than clever (matching.ts uses it).
 *
 * Keyword syntax: words are matched whole, lower case, accents ignored, with a plural `s`/`es` allowed;
 * `word*` matches words starting with `word`, `*word` words ending with it; a space separates words that
 * must follow each other.
 */

export interface SpecialtyDefinition {
  readonly display: string;
  /** NUCC Health Care Provider Taxonomy (http://nucc.org/provider-taxonomy); check against the release in use. */
  readonly nuccCode: string;
  readonly keywords: readonly string[];
}

// Clinical specialties come first: on equal evidence they win over radiology and pathology, whose
// materials get a pre-review anyway.
export const SPECIALTIES = {
  oncology: {
    display: 'Medical Oncology',
    nuccCode: '207RX0202X',
    keywords: [
      'cancer',
      'oncolog*',
      'tumour',
      'tumor',
      '*carcinoma',
      '*sarcoma',
      'malignan*',
      'metasta*',
      'neoplasm',
      'chemotherap*',
      'immunotherap*',
      'radiotherap*',
      'melanoma',
      'breast',
      'staging',
    ],
  },
  cardiology: {
    display: 'Cardiovascular Disease',
    nuccCode: '207RC0000X',
    keywords: [
      'heart',
      'cardi*',
      'echocardiogra*',
      'coronary',
      'arrhythmi*',
      'atrial',
      'ventricular',
      'valve',
      'valvular',
      'stent',
      'angina',
      'myocardial',
      'pacemaker',
      'aortic',
    ],
  },
  neurology: {
    display: 'Neurology',
    nuccCode: '2084N0400X',
    keywords: [
      'neurolog*',
      'seizure',
      'epilep*',
      'stroke',
      'multiple sclerosis',
      'migraine',
      'headache',
      'parkinson*',
      'dementia',
      'alzheimer*',
      'neuropath*',
      'tremor',
      'brain',
    ],
  },
  neurosurgery: {
    display: 'Neurological Surgery',
    nuccCode: '207T00000X',
    keywords: [
      'neurosurg*',
      'brain tumour',
      'brain tumor',
      'glioma',
      'glioblastoma',
      'meningioma',
      'craniotomy',
      'hydrocephalus',
      'aneurysm',
      'spinal cord',
      'laminectomy',
      'herniated disc',
      'spine',
      'brain',
    ],
  },
  orthopaedics: {
    display: 'Orthopaedic Surgery',
    nuccCode: '207X00000X',
    keywords: [
      'orthopa*',
      'fracture',
      'knee',
      'hip',
      'shoulder',
      'menisc*',
      'ligament',
      'acl',
      'tendon',
      'rotator cuff',
      'arthroplasty',
      'joint replacement',
      'osteoarthritis',
      'scoliosis',
      'spinal stenosis',
      'spine',
    ],
  },
  dermatology: {
    display: 'Dermatology',
    nuccCode: '207N00000X',
    keywords: [
      'dermatolog*',
      'skin',
      'rash',
      'mole',
      'psoriasis',
      'eczema',
      'dermatitis',
      'acne',
      'melanoma',
      'basal cell',
    ],
  },
  gastroenterology: {
    display: 'Gastroenterology',
    nuccCode: '207RG0100X',
    keywords: [
      'gastro*',
      'colon',
      'colitis',
      'crohn*',
      'bowel',
      'liver',
      'hepat*',
      'cirrhosis',
      'pancrea*',
      'oesophag*',
      'esophag*',
      'reflux',
      'heartburn',
      'colonoscop*',
      'endoscop*',
      'coeliac',
      'celiac',
      'stomach',
      'ibd',
    ],
  },
  urology: {
    display: 'Urology',
    nuccCode: '208800000X',
    keywords: ['urolog*', 'prostat*', 'bladder', 'kidney', 'psa', 'urinary', 'incontinence', 'testic*', 'erectile'],
  },
  pulmonology: {
    display: 'Pulmonary Disease',
    nuccCode: '207RP1001X',
    keywords: [
      'pulmon*',
      'lung',
      'copd',
      'asthma',
      'emphysema',
      'bronch*',
      'pneumon*',
      'pleural',
      'sarcoidosis',
      'sleep apnea',
      'sleep apnoea',
      'shortness of breath',
      'chest',
    ],
  },
  endocrinology: {
    display: 'Endocrinology, Diabetes & Metabolism',
    nuccCode: '207RE0101X',
    keywords: [
      'endocrin*',
      'thyroid',
      'parathyroid',
      'diabet*',
      'adrenal',
      'pituitar*',
      'insulin',
      'hormone',
      'cortisol',
      'cushing*',
      'osteoporosis',
    ],
  },
  rheumatology: {
    display: 'Rheumatology',
    nuccCode: '207RR0500X',
    keywords: [
      'rheumat*',
      'arthritis',
      'lupus',
      'vasculitis',
      'gout',
      'sjogren*',
      'scleroderma',
      'spondylitis',
      'myositis',
      'polymyalgia',
    ],
  },
  haematology: {
    display: 'Hematology',
    nuccCode: '207RH0000X',
    keywords: [
      'haematolog*',
      'hematolog*',
      'anaemia',
      'anemia',
      'leukaemia',
      'leukemia',
      'lymphoma',
      'myeloma',
      'platelet*',
      'thrombocytopenia',
      'clotting',
      'coagulation',
      'haemophilia',
      'hemophilia',
      'sickle cell',
      'thrombosis',
      'bone marrow',
      'myelodysplas*',
    ],
  },
  radiology: {
    display: 'Diagnostic Radiology',
    nuccCode: '2085R0202X',
    keywords: ['radiolog*', 'misread*', 'reinterpret*', 're-read', 'imaging findings', 'scan findings'],
  },
  pathology: {
    display: 'Anatomic Pathology & Clinical Pathology',
    nuccCode: '207ZP0102X',
    keywords: [
      'patholog*',
      'histopatholog*',
      'histolog*',
      'cytolog*',
      'slide',
      'immunohistochem*',
      'staining',
      'biopsy diagnosis',
    ],
  },
} as const satisfies Record<string, SpecialtyDefinition>;
export type Specialty = keyof typeof SPECIALTIES;
const SPECIALTY_ORDER = Object.keys(SPECIALTIES) as Specialty[];

// DICOM modality codes (PS3.3 C.7.3.1.1.1) that point at a specialty on their own.
const MODALITY_HINTS: Readonly<Record<string, { specialty: Specialty; label: string }>> = {
  PT: { specialty: 'oncology', label: 'PET imaging' },
  MG: { specialty: 'oncology', label: 'mammography' },
  XA: { specialty: 'cardiology', label: 'angiography' },
};

const QUESTION_WEIGHT = 2;
const MATERIAL_WEIGHT = 1;

// --- Keyword matching ----------------------------------------------------------------------------------

const plain = (text: string) =>
  text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[’`]/g, "'");

/** The words of a text as keywords see them: `"Crohn’s"` → `crohn`. */
export function words(text: string): string[] {
  return (plain(text).match(/[a-z0-9]+(?:['-][a-z0-9]+)*/g) ?? []).map((word) => word.replace(/'s$/, ''));
}

/** Whether one part of a keyword matches `word`; no word (past the end of the text) matches nothing. */
function partMatches(part: string, word: string | undefined): boolean {
  if (word === undefined) {
    return false;
  }
  const core = part.replace(/^\*|\*$/g, '');
  if (part.startsWith('*') && part.endsWith('*') && part.length > 1) {
    return word.includes(core);
  }
  if (part.endsWith('*')) {
    return word.startsWith(core);
  }
  if (part.startsWith('*')) {
    return word.endsWith(core) || word.endsWith(`${core}s`);
  }
  return word === core || word === `${core}s` || word === `${core}es`;
}

/** The words of `text` (from `words`) that `keyword` matches, or undefined. */
export function findKeyword(keyword: string, text: readonly string[]): string | undefined {
  const parts = plain(keyword).trim().split(/\s+/);
  for (let start = 0; start + parts.length <= text.length; start++) {
    if (parts.every((part, offset) => partMatches(part, text[start + offset]))) {
      return text.slice(start, start + parts.length).join(' ');
    }
  }
  return undefined;
}

// --- The specialty needed ------------------------------------------------------------------------------

export interface CaseMaterials {
  readonly imaging: readonly { readonly modality: string; readonly bodySite?: string }[];
  readonly pathology: readonly { readonly bodySite?: string }[];
}

export interface SpecialtyNeed {
  readonly specialty: Specialty;
  readonly display: string;
  readonly nuccCode: string;
  readonly score: number;
  /** The matched words, each with where it was found: `"sarcoma" (questions)`. */
  readonly evidence: readonly string[];
}

/** The specialties the questions and materials call for, strongest first (ties in table order). */
export function inferSpecialtyNeeds(questions: readonly string[], materials: CaseMaterials): SpecialtyNeed[] {
  const sources: { label: string; weight: number; text: string[] }[] = [
    ...questions.map((question) => ({ label: 'questions', weight: QUESTION_WEIGHT, text: words(question) })),
    ...materials.imaging.map((study) => ({
      label: 'imaging body site',
      weight: MATERIAL_WEIGHT,
      text: words(study.bodySite ?? ''),
    })),
    ...materials.pathology.map((specimen) => ({
      label: 'biopsy site',
      weight: MATERIAL_WEIGHT,
      text: words(specimen.bodySite ?? ''),
    })),
  ];
  // A keyword counts once per kind of source, however often it recurs: repetition is not evidence.
  const found = new Map<Specialty, { score: number; evidence: string[]; counted: Set<string> }>();
  const add = (specialty: Specialty, weight: number, key: string, evidence: string) => {
    const entry = found.get(specialty) ?? { score: 0, evidence: [], counted: new Set<string>() };
    if (entry.counted.has(key)) {
      return;
    }
    entry.counted.add(key);
    found.set(specialty, { ...entry, score: entry.score + weight, evidence: [...entry.evidence, evidence] });
  };
  for (const specialty of SPECIALTY_ORDER) {
    for (const source of sources) {
      for (const keyword of SPECIALTIES[specialty].keywords) {
        const match = findKeyword(keyword, source.text);
        if (match) {
          add(specialty, source.weight, `${source.label}:${keyword}`, `"${match}" (${source.label})`);
        }
      }
    }
  }
  for (const study of materials.imaging) {
    const hint = MODALITY_HINTS[study.modality.trim().toUpperCase()];
    if (hint) {
      add(hint.specialty, MATERIAL_WEIGHT, `modality:${hint.label}`, `"${hint.label}" (imaging modality)`);
    }
  }
  const needs: SpecialtyNeed[] = [];
  for (const specialty of SPECIALTY_ORDER) {
    const match = found.get(specialty);
    if (match) {
      const { display, nuccCode } = SPECIALTIES[specialty];
      needs.push({ specialty, display, nuccCode, score: match.score, evidence: match.evidence });
    }
  }
  return needs.sort((a, b) => b.score - a.score);
}
