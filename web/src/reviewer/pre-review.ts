/**
 * A radiologist's or pathologist's pre-review report as the hub expects it (docs/case-workflow.md,
 * "Pre-review Task"; docs/access.md, "Reviewers' reports"): a `final` DiagnosticReport of the case,
 * the one final report a reviewer may write, which the pre-review Task they own names as its output
 * when completed. Pure: the form's values in, the transaction out.
 */
import type { Bundle, DiagnosticReport, ServiceRequest, Task } from '@medplum/fhirtypes';
import { LOINC } from './codes.ts';
import { textToDiv } from './letter.ts';

export type PreReviewKind = 'radiology' | 'pathology';
export const ADEQUACY_SYSTEM = 'urn:hub:pre-review-adequacy';
export const ADEQUACY = [
  { code: 'adequate', display: 'Adequate for the specialist’s review' },
  { code: 'limited', display: 'Adequate with limitations' },
  { code: 'inadequate', display: 'Not adequate: more material is needed' },
] as const;
export type Adequacy = (typeof ADEQUACY)[number]['code'];
/** Task input and output type of a pre-review report (the hub's urn:hub:task-input). */
const TASK_INPUT_SYSTEM = 'urn:hub:task-input';

const KIND = {
  radiology: {
    category: { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' },
    code: { system: LOINC, code: '18748-4', display: 'Diagnostic imaging study' },
    text: 'Radiology pre-review',
  },
  pathology: {
    category: { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'PAT', display: 'Pathology' },
    code: { system: LOINC, code: '11526-1', display: 'Pathology study' },
    text: 'Pathology pre-review',
  },
} as const;

export const preReviewKindOf = (taskCode: string | undefined): PreReviewKind | undefined =>
  taskCode === 'pre-review-radiology' ? 'radiology' : taskCode === 'pre-review-pathology' ? 'pathology' : undefined;

export const preReviewTitle = (kind: PreReviewKind): string => KIND[kind].text;

export interface PreReviewValues {
  adequacy: Adequacy;
  findings: string;
  impression: string;
  /** The ImagingStudies (radiology) or Specimens (pathology) reviewed, as `Type/id`. */
  materials: string[];
}

export function preReviewProblems(values: PreReviewValues): string[] {
  return [
    ...(values.findings.trim() === '' ? ['Write the findings.'] : []),
    ...(values.impression.trim() === '' ? ['Write the impression.'] : []),
  ];
}

export function preReviewReport(
  kind: PreReviewKind,
  values: PreReviewValues,
  request: ServiceRequest,
  author: string,
  now: Date,
): DiagnosticReport {
  const adequacy = ADEQUACY.find((option) => option.code === values.adequacy) ?? ADEQUACY[0];
  const materials = values.materials.length > 0 ? values.materials.map((reference) => ({ reference })) : undefined;
  return {
    resourceType: 'DiagnosticReport',
    status: 'final',
    category: [{ coding: [KIND[kind].category] }],
    code: { coding: [KIND[kind].code], text: KIND[kind].text },
    ...(request.subject ? { subject: request.subject } : {}),
    basedOn: [{ reference: `ServiceRequest/${request.id ?? ''}` }],
    effectiveDateTime: now.toISOString(),
    issued: now.toISOString(),
    performer: [{ reference: author }],
    resultsInterpreter: [{ reference: author }],
    ...(kind === 'radiology' && materials ? { imagingStudy: materials } : {}),
    ...(kind === 'pathology' && materials ? { specimen: materials } : {}),
    // The findings are the narrative: what the reviewer wrote beyond the coded adequacy and the conclusion.
    text: { status: 'additional', div: textToDiv(values.findings) },
    conclusion: values.impression.trim(),
    conclusionCode: [{ coding: [{ system: ADEQUACY_SYSTEM, code: adequacy.code, display: adequacy.display }] }],
  };
}

/** The report and the Task completed with it as one transaction: both are written, or neither. */
export function completionBundle(report: DiagnosticReport, task: Task, now: Date): Bundle {
  const reportUuid = 'urn:uuid:0b8f6d0e-6f0c-4a8e-9a3e-5c7d2f1e4b01';
  const completed: Task = {
    ...task,
    meta: undefined,
    status: 'completed',
    lastModified: now.toISOString(),
    output: [
      ...(task.output ?? []),
      {
        type: { coding: [{ system: TASK_INPUT_SYSTEM, code: 'pre-review-report' }], text: 'Pre-review report' },
        valueReference: { reference: reportUuid },
      },
    ],
  };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: reportUuid, resource: report, request: { method: 'POST', url: 'DiagnosticReport' } },
      {
        resource: completed,
        request: {
          method: 'PUT',
          url: `Task/${task.id ?? ''}`,
          ...(task.meta?.versionId ? { ifMatch: `W/"${task.meta.versionId}"` } : {}),
        },
      },
    ],
  };
}
