/**
 * The synthetic clinical data of the FHIR benchmark: deterministic for a seed, shaped like the
 * hub's real traffic (patients with vital signs and labs, second-opinion referrals with their task
 * and consultation note).
 *
 * The practitioners take the patients in turn as their referring physician (patient p's referrals are
 * requested by practitioner p mod P), so each is the requester of 1/P of the referrals, all the
 * referrals of their patients: 200 referrals of 100 patients from 10,000 resources up (one
 * practitioner per 1,000 resources, one patient per 10). `--person-compare` signs in as one of them.
 */
import { randomUUID } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  DocumentReference,
  Observation,
  Patient,
  Practitioner,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';

/**
 * Bumped whenever the generated data changes shape, so an old bench database is rebuilt.
 * 2: Tasks are `basedOn` their referral too; one DocumentReference (consultation note) per referral; a
 * patient's referrals come from one practitioner (1: referral n from practitioner n mod P).
 */
export const DATASET_VERSION = 2;

export const LOINC = 'http://loinc.org';
export const MRN_SYSTEM = 'https://hub.example/fhir/sid/mrn';
export const REQUISITION_SYSTEM = 'https://hub.example/fhir/sid/requisition';
export const TASK_ID_SYSTEM = 'https://hub.example/fhir/sid/task';
export const DOCUMENT_ID_SYSTEM = 'https://hub.example/fhir/sid/document';
/** LOINC Consult note: the specialist's opinion, which the referring physician reads. */
export const CONSULT_NOTE = '11488-4';
const OPINION_SYSTEM = 'https://hub.example/fhir/CodeSystem/opinion-specialty';
const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const UCUM = 'http://unitsofmeasure.org';

export interface ObservationKind {
  code: string;
  display: string;
  category: 'vital-signs' | 'laboratory';
  unit: string;
  low: number;
  high: number;
}

export const OBSERVATION_KINDS: readonly ObservationKind[] = [
  { code: '8867-4', display: 'Heart rate', category: 'vital-signs', unit: '/min', low: 48, high: 120 },
  { code: '8480-6', display: 'Systolic blood pressure', category: 'vital-signs', unit: 'mm[Hg]', low: 95, high: 175 },
  { code: '8462-4', display: 'Diastolic blood pressure', category: 'vital-signs', unit: 'mm[Hg]', low: 55, high: 105 },
  { code: '8310-5', display: 'Body temperature', category: 'vital-signs', unit: 'Cel', low: 35.8, high: 39.5 },
  { code: '29463-7', display: 'Body weight', category: 'vital-signs', unit: 'kg', low: 45, high: 130 },
  { code: '8302-2', display: 'Body height', category: 'vital-signs', unit: 'cm', low: 150, high: 200 },
  { code: '9279-1', display: 'Respiratory rate', category: 'vital-signs', unit: '/min', low: 10, high: 28 },
  {
    code: '59408-5',
    display: 'Oxygen saturation by pulse oximetry',
    category: 'vital-signs',
    unit: '%',
    low: 88,
    high: 100,
  },
  {
    code: '2339-0',
    display: 'Glucose [Mass/volume] in Blood',
    category: 'laboratory',
    unit: 'mg/dL',
    low: 65,
    high: 240,
  },
  {
    code: '2093-3',
    display: 'Cholesterol [Mass/volume] in Serum or Plasma',
    category: 'laboratory',
    unit: 'mg/dL',
    low: 120,
    high: 300,
  },
  {
    code: '718-7',
    display: 'Hemoglobin [Mass/volume] in Blood',
    category: 'laboratory',
    unit: 'g/dL',
    low: 9,
    high: 18,
  },
  {
    code: '4548-4',
    display: 'Hemoglobin A1c/Hemoglobin.total in Blood',
    category: 'laboratory',
    unit: '%',
    low: 4.5,
    high: 11,
  },
];

const SPECIALTIES = ['radiology', 'oncology', 'cardiology', 'neurology', 'orthopedics', 'pathology'];
/** Task states of the second-opinion workflow, weighted toward the open ones. */
export const TASK_STATUSES = [
  'requested',
  'received',
  'accepted',
  'in-progress',
  'in-progress',
  'completed',
  'completed',
  'cancelled',
] as const;
const FAMILY_NAMES = [
  'Schmidt',
  'Rossi',
  'García',
  'Novak',
  'Dubois',
  'Jansen',
  'Kowalski',
  'Silva',
  'Nielsen',
  'Papadopoulos',
];
const GIVEN_NAMES = [
  'Anna',
  'Luca',
  'María',
  'Jan',
  'Chloé',
  'Sven',
  'Zofia',
  'João',
  'Ingrid',
  'Eleni',
  'Omar',
  'Mei',
];

/** The `n`-th item of `items`, counting round and round. */
function cyclic<T>(items: readonly T[], n: number): T {
  const item = items[n % items.length];
  if (item === undefined) {
    throw new RangeError('cyclic() over an empty list');
  }
  return item;
}

/** A small seeded generator (mulberry32): the same seed gives the same data set. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(lowInclusive: number, highExclusive: number): number {
    return lowInclusive + Math.floor(this.next() * (highExclusive - lowInclusive));
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) {
      throw new RangeError('pick() from an empty list');
    }
    return item;
  }
}

/** How many resources of each type a data set of `total` resources holds (they add up to `total`). */
export interface DatasetShape {
  total: number;
  practitioners: number;
  patients: number;
  /** Each patient has this many referrals, each referral one Task and one DocumentReference. */
  referralsPerPatient: number;
  serviceRequests: number;
  tasks: number;
  documentReferences: number;
  observations: number;
}

export function datasetShape(total: number): DatasetShape {
  const practitioners = Math.max(5, Math.round(total / 1000));
  const patients = Math.max(1, Math.floor(total / 10));
  const referralsPerPatient = 2;
  const serviceRequests = patients * referralsPerPatient;
  const tasks = serviceRequests;
  const documentReferences = serviceRequests;
  const observations = total - practitioners - patients - serviceRequests - tasks - documentReferences;
  if (observations < patients) {
    throw new Error(`A data set of ${total} resources is too small (at least 100)`);
  }
  return {
    total,
    practitioners,
    patients,
    referralsPerPatient,
    serviceRequests,
    tasks,
    documentReferences,
    observations,
  };
}

/** Task `identifier` value and `status` of the n-th task: derivable, so searches need no lookup. */
export function taskIdentity(n: number): { value: string; status: (typeof TASK_STATUSES)[number] } {
  return { value: `TSK-${String(n).padStart(7, '0')}`, status: cyclic(TASK_STATUSES, n) };
}

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const isoInstant = (ms: number): string => new Date(ms).toISOString();
const DAY_MS = 86_400_000;
const EPOCH_2024 = Date.UTC(2024, 0, 1);

export function makePractitioner(n: number, random: Random): Practitioner {
  return {
    resourceType: 'Practitioner',
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: String(1_000_000_000 + n) }],
    active: true,
    name: [{ family: random.pick(FAMILY_NAMES), given: [random.pick(GIVEN_NAMES)], prefix: ['Dr.'] }],
    qualification: [{ code: { coding: [{ system: OPINION_SYSTEM, code: SPECIALTIES[n % SPECIALTIES.length] }] } }],
  };
}

export function makePatient(n: number, random: Random): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: MRN_SYSTEM, value: `MRN-${String(n).padStart(8, '0')}` }],
    active: true,
    name: [{ use: 'official', family: random.pick(FAMILY_NAMES), given: [random.pick(GIVEN_NAMES)] }],
    gender: random.pick(['female', 'male', 'other', 'unknown'] as const),
    birthDate: isoDate(Date.UTC(1935, 0, 1) + random.int(0, 80 * 365) * DAY_MS),
    telecom: [{ system: 'email', value: `patient${n}@example.org`, use: 'home' }],
    address: [{ city: random.pick(['Berlin', 'Milano', 'Madrid', 'Praha', 'Lyon', 'Utrecht']), country: 'EU' }],
  };
}

export function makeObservation(
  patientReference: string,
  random: Random,
  kind = random.pick(OBSERVATION_KINDS),
  when?: number,
): Observation {
  const value = kind.low + random.next() * (kind.high - kind.low);
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: kind.category }] }],
    code: { coding: [{ system: LOINC, code: kind.code, display: kind.display }], text: kind.display },
    subject: { reference: patientReference },
    effectiveDateTime: isoInstant(when ?? EPOCH_2024 + random.int(0, 700 * 24) * 3_600_000),
    valueQuantity: { value: Math.round(value * 10) / 10, unit: kind.unit, system: UCUM, code: kind.unit },
  };
}

export function makeServiceRequest(
  n: number,
  patientReference: string,
  requesterReference: string,
  random: Random,
): ServiceRequest {
  const specialty = random.pick(SPECIALTIES);
  return {
    resourceType: 'ServiceRequest',
    identifier: [{ system: REQUISITION_SYSTEM, value: `REQ-${String(n).padStart(7, '0')}` }],
    status: random.next() < 0.7 ? 'active' : 'completed',
    intent: 'order',
    category: [{ coding: [{ system: OPINION_SYSTEM, code: specialty }] }],
    code: {
      coding: [{ system: OPINION_SYSTEM, code: `${specialty}-second-opinion` }],
      text: `Second opinion (${specialty})`,
    },
    subject: { reference: patientReference },
    requester: { reference: requesterReference },
    authoredOn: isoInstant(EPOCH_2024 + random.int(0, 700) * DAY_MS),
  };
}

export function makeTask(
  n: number,
  serviceRequestReference: string,
  patientReference: string,
  ownerReference: string,
): Task {
  const { value, status } = taskIdentity(n);
  return {
    resourceType: 'Task',
    identifier: [{ system: TASK_ID_SYSTEM, value }],
    status,
    intent: 'order',
    priority: n % 10 === 0 ? 'urgent' : 'routine',
    code: { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill' }] },
    basedOn: [{ reference: serviceRequestReference }],
    focus: { reference: serviceRequestReference },
    for: { reference: patientReference },
    owner: { reference: ownerReference },
    authoredOn: isoInstant(EPOCH_2024 + (n % 700) * DAY_MS),
  };
}

/**
 * The consultation note of referral n: the specialist's (the Task owner's) opinion, a PDF, tied to
 * its case by `context.related`. Its content is not stored (no Binary): the benchmark reads and
 * searches the DocumentReference only. A consult note is the hub's output, not one of the case's
 * materials, so the materials job leaves it alone.
 */
export function makeConsultNote(
  n: number,
  serviceRequestReference: string,
  patientReference: string,
  authorReference: string,
): DocumentReference {
  const date = isoInstant(EPOCH_2024 + (n % 700) * DAY_MS + 36_000_000);
  return {
    resourceType: 'DocumentReference',
    identifier: [{ system: DOCUMENT_ID_SYSTEM, value: `DOC-${String(n).padStart(7, '0')}` }],
    status: 'current',
    docStatus: 'final',
    type: { coding: [{ system: LOINC, code: CONSULT_NOTE, display: 'Consult note' }] },
    subject: { reference: patientReference },
    date,
    author: [{ reference: authorReference }],
    description: 'Second opinion',
    content: [
      { attachment: { contentType: 'application/pdf', language: 'en', title: 'Second opinion', creation: date } },
    ],
    context: { related: [{ reference: serviceRequestReference }] },
  };
}

function entry(resource: BundleEntry['resource']): BundleEntry & { fullUrl: string } {
  return {
    fullUrl: `urn:uuid:${randomUUID()}`,
    resource,
    request: { method: 'POST', url: resource?.resourceType ?? '' },
  };
}

/**
 * The transaction bundle that loads patients [firstPatient, firstPatient + count): each patient with
 * its observations, its referrals and one Task and one consultation note per referral, linked by
 * urn:uuid references.
 */
export function patientGroupBundle(
  shape: DatasetShape,
  firstPatient: number,
  count: number,
  practitionerReferences: readonly string[],
  random: Random,
): Bundle {
  const entries: BundleEntry[] = [];
  for (let p = firstPatient; p < firstPatient + count; p++) {
    const patient = entry(makePatient(p, random));
    entries.push(patient);
    // Observations are spread evenly: patient p gets those with index ≡ p (mod patients).
    const observationCount =
      Math.floor(shape.observations / shape.patients) + (p < shape.observations % shape.patients ? 1 : 0);
    for (let o = 0; o < observationCount; o++) {
      entries.push(entry(makeObservation(patient.fullUrl, random)));
    }
    for (let r = 0; r < shape.referralsPerPatient; r++) {
      const n = p * shape.referralsPerPatient + r;
      const requester = cyclic(practitionerReferences, p);
      const owner = cyclic(practitionerReferences, n * 7 + 3);
      const serviceRequest = entry(makeServiceRequest(n, patient.fullUrl, requester, random));
      entries.push(
        serviceRequest,
        entry(makeTask(n, serviceRequest.fullUrl, patient.fullUrl, owner)),
        entry(makeConsultNote(n, serviceRequest.fullUrl, patient.fullUrl, owner)),
      );
    }
  }
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

/** A second-opinion submission: one patient, its referral and Task, and `size - 3` observations. */
export function submissionBundle(size: number, ownerReference: string, random: Random, n: number): Bundle {
  const patient = entry(makePatient(10_000_000 + n, random));
  const serviceRequest = entry(makeServiceRequest(10_000_000 + n, patient.fullUrl, ownerReference, random));
  const task = entry(makeTask(10_000_000 + n, serviceRequest.fullUrl, patient.fullUrl, ownerReference));
  const observations = Array.from({ length: size - 3 }, () => entry(makeObservation(patient.fullUrl, random)));
  return { resourceType: 'Bundle', type: 'transaction', entry: [patient, serviceRequest, task, ...observations] };
}

export function practitionerBundle(count: number, random: Random): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: count }, (_, n) => entry(makePractitioner(n, random))),
  };
}
