/**
 * What the opinion suites share: a case in specialist review (its patient, the physician's two
 * questions, the request, the coordination Task and the specialist's accepted offer), the letter's
 * sections as a specialist writes them, and the hub's code systems they use.
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

/**
 * A case in specialist review: two questions asked, the offer to `Practitioner/prac-s` accepted, the
 * physician `Practitioner/prac-phys`. Load them with a system client's transaction of PUTs.
 */
export function opinionCaseFixtures(sr: string, referenceNumber: string): Record<string, unknown>[] {
  return [
    {
      resourceType: 'Patient',
      id: `pat-${sr}`,
      name: [{ given: ['Olivia'], family: 'Quintero' }],
      telecom: [{ system: 'email', value: `patient-${sr}@example.org` }],
    },
    {
      resourceType: 'QuestionnaireResponse',
      id: `qr-${sr}`,
      status: 'completed',
      subject: { reference: `Patient/pat-${sr}` },
      item: [
        {
          linkId: 'question',
          answer: [{ valueString: 'Is the nodule malignant?' }, { valueString: 'Which treatment do you advise?' }],
        },
      ],
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
      groupIdentifier: { system: 'urn:hub:reference-number', value: referenceNumber },
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
      restriction: { period: { end: OPINION_DUE } },
    },
  ];
}

/** A letter section coded `code` whose narrative is `text` (an answer names its question's number). */
export const letterSection = (code: string, text: string, questionNumber?: number): Record<string, unknown> => ({
  title: code,
  code: { coding: [{ system: SECTION, code }] },
  ...(questionNumber ? { extension: [{ url: QUESTION_NUMBER, valueUnsignedInt: questionNumber }] } : {}),
  text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${text}</p></div>` },
});
