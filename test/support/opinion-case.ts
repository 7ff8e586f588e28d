/**
 * What the opinion suites share: a case in specialist review (its patient, the physician's two
 * questions, the request, the coordination Task and the specialist's accepted offer), the people the
 * letter names, the draft letter and report and their sections as a specialist writes them, and the
 * hub's code systems they use.
 */
import { dueDate } from '../../src/cases/business-calendar.ts';

export const LOINC = 'http://loinc.org';
export const CASE = 'urn:hub:case-resource';
export const TASK_CODE = 'urn:hub:task-code';
export const CASE_STATE = 'urn:hub:case-state';
export const SECTION = 'urn:hub:letter-section';
export const QUESTION_NUMBER = 'urn:hub:extension:question-number';
export const LETTER_LINK = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
/**
 * The specialist's due date in the fixtures: 17:00 New York ten business days after the suite loads,
 * as the hub sets it for an offer accepted now. Never a fixed date: the hub's reminder and escalation
 * jobs run against the real clock, and a due date gone by fires them in the middle of a suite.
 */
export const OPINION_DUE = dueDate(new Date()).toISOString();

/** What differs between the suites' cases in specialist review. */
export interface CaseInReview {
  /** The Patient's fields besides its type and id (its name, its e-mail). */
  patient: Record<string, unknown>;
  /** The physician's questions, in order. */
  questions: string[];
  /** When the specialist's opinion is due. */
  due: string;
  /** The case's reference number on its coordination Task, if it has one. */
  referenceNumber?: string;
}

/**
 * A case in specialist review: the physician `Practitioner/prac-phys` asked `questions`, and the offer
 * to `Practitioner/prac-s` is accepted. Load it with a system client's transaction of PUTs.
 */
export function caseInReviewFixtures(sr: string, c: CaseInReview): Record<string, unknown>[] {
  return [
    { resourceType: 'Patient', id: `pat-${sr}`, ...c.patient },
    {
      resourceType: 'QuestionnaireResponse',
      id: `qr-${sr}`,
      status: 'completed',
      subject: { reference: `Patient/pat-${sr}` },
      item: [{ linkId: 'question', answer: c.questions.map((question) => ({ valueString: question })) }],
    },
    {
      resourceType: 'ServiceRequest',
      id: sr,
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/pat-${sr}` },
      requester: { reference: 'Practitioner/prac-phys' },
      supportingInfo: [{ reference: `QuestionnaireResponse/qr-${sr}` }],
    },
    {
      resourceType: 'Task',
      id: `coord-${sr}`,
      identifier: [{ system: CASE, value: `${sr}/coordination` }],
      status: 'in-progress',
      intent: 'order',
      code: { coding: [{ system: TASK_CODE, code: 'coordination' }] },
      businessStatus: { coding: [{ system: CASE_STATE, code: 'specialist-review' }] },
      ...(c.referenceNumber
        ? { groupIdentifier: { system: 'urn:hub:reference-number', value: c.referenceNumber } }
        : {}),
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      focus: { reference: `ServiceRequest/${sr}` },
      for: { reference: `Patient/pat-${sr}` },
    },
    {
      resourceType: 'Task',
      id: `offer-${sr}`,
      identifier: [{ system: CASE, value: `${sr}/specialist-opinion/prac-s` }],
      status: 'accepted',
      intent: 'order',
      code: { coding: [{ system: TASK_CODE, code: 'specialist-opinion' }] },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      partOf: [{ reference: `Task/coord-${sr}` }],
      owner: { reference: 'Practitioner/prac-s' },
      restriction: { period: { end: c.due } },
    },
  ];
}

/**
 * A case in specialist review: two questions asked, the offer to `Practitioner/prac-s` accepted, the
 * physician `Practitioner/prac-phys`. Load them with a system client's transaction of PUTs.
 */
export function opinionCaseFixtures(sr: string, referenceNumber: string): Record<string, unknown>[] {
  return caseInReviewFixtures(sr, {
    patient: {
      name: [{ given: ['Olivia'], family: 'Quintero' }],
      telecom: [{ system: 'email', value: `patient-${sr}@example.org` }],
    },
    questions: ['Is the nodule malignant?', 'Which treatment do you advise?'],
    due: OPINION_DUE,
    referenceNumber,
  });
}

/**
 * The people the letters name and are sent to: the specialist Dr. Amelia Abernathy (`prac-s`, in
 * Medical Oncology), another specialist (`prac-s2`), a coordinator (`prac-c`) and the physician
 * Dr. Paul Physick (`prac-phys`).
 */
export const OPINION_STAFF: Record<string, unknown>[] = [
  {
    resourceType: 'Practitioner',
    id: 'prac-s',
    name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }],
    telecom: [{ system: 'email', value: 'amelia.abernathy@specialists.example.org' }],
  },
  { resourceType: 'Practitioner', id: 'prac-s2', name: [{ given: ['Ben'], family: 'Brightwater' }] },
  { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
  {
    resourceType: 'Practitioner',
    id: 'prac-phys',
    name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }],
    telecom: [{ system: 'email', value: 'paul.physick@clinic.example.org' }],
  },
  {
    resourceType: 'PractitionerRole',
    id: 'role-s',
    practitioner: { reference: 'Practitioner/prac-s' },
    specialty: [{ text: 'Medical Oncology' }],
  },
];

/** The specialist's draft letter for case `sr`, dated 1 December 2026, with these sections. */
export const draftLetter = (sr: string, section: unknown[]): Record<string, unknown> => ({
  resourceType: 'Composition',
  status: 'preliminary',
  type: { coding: [{ system: LOINC, code: '11488-4' }] },
  subject: { reference: `Patient/pat-${sr}` },
  date: '2026-12-01',
  author: [{ reference: 'Practitioner/prac-s' }],
  title: 'Consultation',
  section,
});

/** The specialist's draft report for case `sr`: the letter `Composition/<letterId>` and its conclusion. */
export const draftReport = (sr: string, letterId: string, conclusion: string): Record<string, unknown> => ({
  resourceType: 'DiagnosticReport',
  status: 'preliminary',
  code: { coding: [{ system: LOINC, code: '11488-4' }] },
  subject: { reference: `Patient/pat-${sr}` },
  basedOn: [{ reference: `ServiceRequest/${sr}` }],
  resultsInterpreter: [{ reference: 'Practitioner/prac-s' }],
  extension: [{ url: LETTER_LINK, valueReference: { reference: `Composition/${letterId}` } }],
  conclusion,
});

/** A coordinator's case-access Task that makes `Practitioner/prac-s2` a reviewer of case `sr`. */
export const otherSpecialistAccess = (sr: string): Record<string, unknown> => ({
  resourceType: 'Task',
  status: 'requested',
  intent: 'order',
  code: { coding: [{ system: TASK_CODE, code: 'case-access' }] },
  basedOn: [{ reference: `ServiceRequest/${sr}` }],
  owner: { reference: 'Practitioner/prac-s2' },
  input: [{ type: { coding: [{ system: 'urn:hub:case-access-role', code: 'role' }] }, valueCode: 'reviewer' }],
});

/** A letter section coded `code` whose narrative is `text` (an answer names its question's number). */
export const letterSection = (code: string, text: string, questionNumber?: number): Record<string, unknown> => ({
  title: code,
  code: { coding: [{ system: SECTION, code }] },
  ...(questionNumber ? { extension: [{ url: QUESTION_NUMBER, valueUnsignedInt: questionNumber }] } : {}),
  text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${text}</p></div>` },
});
