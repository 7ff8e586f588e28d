/**
 * The authorization matrix (issue 3, "Access rules") against a real hub with AUTH_REQUIRED=true.
 * Every person logs in through the real authorization-code flow (login page, PKCE, TOTP for staff)
 * with a token that carries `user/*.cruds`, so the scopes allow everything and what is refused is
 * refused by the access policy (src/auth/access-policy.ts).
 *
 * Two cases, A (referred by physician A as Practitioner) and B (referred by physician B through a
 * PractitionerRole), with a patient each, a specialist who owns a Task on case A only, and a
 * coordinator who wrote all of it. A `trap` Task of case A points at case B's ServiceRequest, so
 * that an _include from case A would reach into case B if the include were not filtered.
 */
import type { UserRole } from '../src/auth/users.ts';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { signInWithSystem } from './support/login-flow.ts';
import { fhirAs, fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

import { jest } from '@jest/globals';

jest.setTimeout(120_000);

const APP = 'matrix-app';
const REDIRECT = 'http://127.0.0.1:5173/callback';
const CASE = 'urn:hub:case-resource';
const LOINC = 'http://loinc.org';

type Person =
  | 'physicianA'
  | 'physicianB'
  | 'patientA'
  | 'patientB'
  | 'specialistA'
  | 'specialistB'
  | 'radiologistA'
  | 'pathologistB'
  | 'coordinator'
  | 'admin';
/** Every role of the policy, and a system client (SMART Backend Services), limited by its scopes only. */
type Who = Person | 'system';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  physicianA: { role: 'referring-physician', fhirUser: 'Practitioner/prac-a' },
  physicianB: { role: 'referring-physician', fhirUser: 'Practitioner/prac-b' },
  patientA: { role: 'patient', fhirUser: 'Patient/pat-a' },
  patientB: { role: 'patient', fhirUser: 'Patient/pat-b' },
  specialistA: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  // On the roster, in no case: nobody but a coordinator (or the hub) can make them a member.
  specialistB: { role: 'specialist', fhirUser: 'Practitioner/prac-s2' },
  // Reviewers assigned to one case each, by the pre-review Tasks below.
  radiologistA: { role: 'radiologist', fhirUser: 'Practitioner/prac-r' },
  pathologistB: { role: 'pathologist', fhirUser: 'Practitioner/prac-p' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  admin: { role: 'admin', fhirUser: 'Practitioner/prac-admin' },
};

const pdf = (text: string): string => Buffer.from(`%PDF-1.4 ${text}`).toString('base64');

function caseResources(c: 'a' | 'b'): Record<string, unknown>[] {
  const sr = `sr-${c}`;
  const patient = `Patient/pat-${c}`;
  return [
    { resourceType: 'Patient', id: `pat-${c}`, name: [{ family: `Case${c.toUpperCase()}` }] },
    {
      resourceType: 'ServiceRequest',
      id: sr,
      status: 'active',
      intent: 'order',
      subject: { reference: patient },
      requester: { reference: c === 'a' ? 'Practitioner/prac-a' : 'PractitionerRole/role-b' },
    },
    {
      resourceType: 'Task',
      id: `coord-${c}`,
      identifier: [{ system: CASE, value: `${sr}/coordination` }],
      status: 'completed',
      intent: 'order',
      code: { coding: [{ system: 'urn:hub:task-code', code: 'coordination' }] },
      businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-released' }] },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      focus: { reference: `ServiceRequest/${sr}` },
      for: { reference: patient },
    },
    {
      resourceType: 'ChargeItem',
      id: `charge-${c}`,
      identifier: [{ system: CASE, value: `${sr}/charge/imaging-review` }],
      status: 'billable',
      code: { coding: [{ system: 'urn:hub:fee-code', code: 'imaging-review' }] },
      subject: { reference: patient },
      supportingInformation: [{ reference: `ServiceRequest/${sr}` }],
    },
    { resourceType: 'Binary', id: `bin-${c}`, contentType: 'application/pdf', data: pdf(`records ${c}`) },
    {
      resourceType: 'DocumentReference',
      id: `doc-${c}`,
      status: 'current',
      subject: { reference: patient },
      context: { related: [{ reference: `ServiceRequest/${sr}` }] },
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/bin-${c}` } }],
    },
    {
      resourceType: 'ImagingStudy',
      id: `img-${c}`,
      status: 'available',
      subject: { reference: patient },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
    },
    // The consultation report, its letter and the letter's content.
    { resourceType: 'Binary', id: `binrep-${c}`, contentType: 'application/pdf', data: pdf(`report ${c}`) },
    {
      resourceType: 'DiagnosticReport',
      id: `rep-${c}`,
      status: 'final',
      code: { coding: [{ system: LOINC, code: '11488-4' }] },
      subject: { reference: patient },
      basedOn: [{ reference: `ServiceRequest/${sr}` }],
      presentedForm: [{ contentType: 'application/pdf', url: `Binary/binrep-${c}` }],
    },
    {
      resourceType: 'DocumentReference',
      id: `docrep-${c}`,
      status: 'current',
      type: { coding: [{ system: LOINC, code: '11488-4' }] },
      subject: { reference: patient },
      context: { related: [{ reference: `ServiceRequest/${sr}` }] },
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/binrep-${c}` } }],
    },
  ];
}

/** A reviewer's Task of a case, as the hub files it (its case identifier) and assigns it (owner). */
function reviewTask(id: string, caseIdentifier: string, code: string, owner: string): Record<string, unknown> {
  return {
    resourceType: 'Task',
    id,
    identifier: [{ system: CASE, value: caseIdentifier }],
    status: 'requested',
    intent: 'order',
    code: { coding: [{ system: 'urn:hub:task-code', code }] },
    owner: { reference: owner },
  };
}

const FIXTURES: Record<string, unknown>[] = [
  ...['prac-a', 'prac-b', 'prac-s', 'prac-s2', 'prac-r', 'prac-p', 'prac-c', 'prac-admin'].map((id) => ({
    resourceType: 'Practitioner',
    id,
  })),
  { resourceType: 'Organization', id: 'org-b', name: 'Clinic B' },
  {
    resourceType: 'PractitionerRole',
    id: 'role-b',
    practitioner: { reference: 'Practitioner/prac-b' },
    organization: { reference: 'Organization/org-b' },
  },
  ...caseResources('a'),
  ...caseResources('b'),
  // The specialist's Task on case A: linked to the case by its identifier only, as the job writes it.
  {
    ...reviewTask('spec-a', 'sr-a/specialist-opinion/prac-s', 'specialist-opinion', 'Practitioner/prac-s'),
    partOf: [{ reference: 'Task/coord-a' }],
  },
  // The pre-reviews, assigned (owner) by whoever loads the fixtures: a system client.
  {
    ...reviewTask('rad-a', 'sr-a/pre-review-radiology', 'pre-review-radiology', 'Practitioner/prac-r'),
    basedOn: [{ reference: 'ServiceRequest/sr-a' }],
  },
  {
    ...reviewTask('path-b', 'sr-b/pre-review-pathology', 'pre-review-pathology', 'Practitioner/prac-p'),
    basedOn: [{ reference: 'ServiceRequest/sr-b' }],
  },
  // Specialist A's opinion on case A, still a draft: the report, its letter and the letter's content.
  { resourceType: 'Binary', id: 'bindraft-a', contentType: 'application/pdf', data: pdf('draft a') },
  {
    resourceType: 'DiagnosticReport',
    id: 'draft-a',
    status: 'preliminary',
    code: { coding: [{ system: LOINC, code: '11488-4' }] },
    subject: { reference: 'Patient/pat-a' },
    basedOn: [{ reference: 'ServiceRequest/sr-a' }],
    resultsInterpreter: [{ reference: 'Practitioner/prac-s' }],
    presentedForm: [{ contentType: 'application/pdf', url: 'Binary/bindraft-a' }],
  },
  {
    resourceType: 'Composition',
    id: 'letter-a',
    status: 'preliminary',
    type: { coding: [{ system: LOINC, code: '11488-4' }] },
    subject: { reference: 'Patient/pat-a' },
    date: '2026-11-20',
    author: [{ reference: 'Practitioner/prac-s' }],
    title: 'Consultation',
    section: [{ title: 'What was reviewed', entry: [{ reference: 'ServiceRequest/sr-a' }] }],
  },
  // Case A's, pointing at case B's ServiceRequest (so it is case B's too: it refers to it).
  {
    resourceType: 'Task',
    id: 'trap-a',
    identifier: [{ system: CASE, value: 'sr-a/trap' }],
    status: 'requested',
    intent: 'order',
    focus: { reference: 'ServiceRequest/sr-b' },
  },
];

// ---- the matrix -------------------------------------------------------------------------------

const TYPES = [
  'Patient',
  'ServiceRequest',
  'Task',
  'DocumentReference',
  'Binary',
  'ImagingStudy',
  'ChargeItem',
  'DiagnosticReport',
  'Composition',
] as const;
type FixtureType = (typeof TYPES)[number];

/**
 * What a search `GET /<type>` returns (ids), and so which reads answer 200 (the rest of the fixture
 * ids of the type answer 404). Case A: pat-a, sr-a, coord-a, spec-a, trap-a, doc-a, docrep-a, bin-a,
 * binrep-a, img-a, charge-a, rep-a; case B likewise. The patients' reports are not released yet.
 * Case A also has specialist A's opinion in draft (draft-a, letter-a, bindraft-a): theirs and the
 * staff's only.
 */
const SEES: Record<Who, Record<FixtureType, string[]>> = {
  admin: {} as Record<FixtureType, string[]>,
  system: {} as Record<FixtureType, string[]>,
  radiologistA: {} as Record<FixtureType, string[]>,
  pathologistB: {} as Record<FixtureType, string[]>,
  physicianA: {
    Patient: ['pat-a'],
    ServiceRequest: ['sr-a'],
    Task: ['coord-a', 'rad-a', 'spec-a', 'trap-a'],
    DocumentReference: ['doc-a', 'docrep-a'],
    Binary: ['bin-a', 'binrep-a'],
    ImagingStudy: ['img-a'],
    ChargeItem: ['charge-a'],
    DiagnosticReport: ['rep-a'],
    Composition: [],
  },
  physicianB: {
    Patient: ['pat-b'],
    ServiceRequest: ['sr-b'],
    Task: ['coord-b', 'path-b', 'trap-a'],
    DocumentReference: ['doc-b', 'docrep-b'],
    Binary: ['bin-b', 'binrep-b'],
    ImagingStudy: ['img-b'],
    ChargeItem: ['charge-b'],
    DiagnosticReport: ['rep-b'],
    Composition: [],
  },
  patientA: {
    Patient: ['pat-a'],
    ServiceRequest: ['sr-a'],
    Task: ['coord-a', 'rad-a', 'spec-a', 'trap-a'],
    DocumentReference: ['doc-a'],
    Binary: ['bin-a'],
    ImagingStudy: ['img-a'],
    ChargeItem: ['charge-a'],
    DiagnosticReport: [],
    Composition: [],
  },
  patientB: {
    Patient: ['pat-b'],
    ServiceRequest: ['sr-b'],
    Task: ['coord-b', 'path-b', 'trap-a'],
    DocumentReference: ['doc-b'],
    Binary: ['bin-b'],
    ImagingStudy: ['img-b'],
    ChargeItem: ['charge-b'],
    DiagnosticReport: [],
    Composition: [],
  },
  specialistA: {
    Patient: ['pat-a'],
    ServiceRequest: ['sr-a'],
    Task: ['coord-a', 'rad-a', 'spec-a', 'trap-a'],
    DocumentReference: ['doc-a', 'docrep-a'],
    // Their own draft, with its content.
    Binary: ['bin-a', 'binrep-a', 'bindraft-a'],
    ImagingStudy: ['img-a'],
    ChargeItem: ['charge-a'],
    DiagnosticReport: ['rep-a', 'draft-a'],
    Composition: ['letter-a'],
  },
  specialistB: {
    Patient: [],
    ServiceRequest: [],
    Task: [],
    DocumentReference: [],
    Binary: [],
    ImagingStudy: [],
    ChargeItem: [],
    DiagnosticReport: [],
    Composition: [],
  },
  coordinator: {
    Patient: ['pat-a', 'pat-b'],
    ServiceRequest: ['sr-a', 'sr-b'],
    Task: ['coord-a', 'coord-b', 'path-b', 'rad-a', 'spec-a', 'trap-a'],
    DocumentReference: ['doc-a', 'doc-b', 'docrep-a', 'docrep-b'],
    Binary: ['bin-a', 'bin-b', 'binrep-a', 'binrep-b', 'bindraft-a'],
    ImagingStudy: ['img-a', 'img-b'],
    ChargeItem: ['charge-a', 'charge-b'],
    DiagnosticReport: ['rep-a', 'rep-b', 'draft-a'],
    Composition: ['letter-a'],
  },
};
SEES.admin = SEES.coordinator;
SEES.system = SEES.coordinator;
// A reviewer assigned to a case sees what its other members see, but another reviewer's draft.
SEES.radiologistA = SEES.physicianA;
SEES.pathologistB = SEES.physicianB;

const fixtureIds = (type: string): string[] =>
  FIXTURES.filter((r) => r.resourceType === type).map((r) => r.id as string);

const newDocument = (sr: string): Record<string, unknown> => ({
  resourceType: 'DocumentReference',
  status: 'current',
  context: { related: [{ reference: `ServiceRequest/${sr}` }] },
  content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/bin-a' } }],
});
const newRequest = (requester: string, subject: string): Record<string, unknown> => ({
  resourceType: 'ServiceRequest',
  status: 'draft',
  intent: 'order',
  subject: { reference: subject },
  requester: { reference: requester },
});

const opinion = (status: string): Record<string, unknown> => ({
  resourceType: 'DiagnosticReport',
  status,
  code: { coding: [{ system: LOINC, code: '11488-4' }] },
  subject: { reference: 'Patient/pat-a' },
  basedOn: [{ reference: 'ServiceRequest/sr-a' }],
});
const letter = (status: string): Record<string, unknown> => ({
  resourceType: 'Composition',
  status,
  type: { coding: [{ system: LOINC, code: '11488-4' }] },
  subject: { reference: 'Patient/pat-a' },
  date: '2026-11-20',
  author: [{ reference: 'Practitioner/prac-s' }],
  title: 'Consultation',
  section: [{ title: 'What was reviewed', entry: [{ reference: 'ServiceRequest/sr-a' }] }],
});

/** Writes: who, what, the request, the expected status, the body. */
const WRITES: [Who, string, string, string, number, () => unknown][] = [
  [
    'physicianA',
    'creates a DocumentReference for their case',
    'POST',
    'DocumentReference',
    201,
    () => newDocument('sr-a'),
  ],
  [
    'physicianA',
    'creates a DocumentReference for the other case',
    'POST',
    'DocumentReference',
    403,
    () => newDocument('sr-b'),
  ],
  [
    'physicianA',
    'creates a DocumentReference for no case',
    'POST',
    'DocumentReference',
    403,
    () => ({ ...newDocument('x'), context: undefined }),
  ],
  [
    'physicianA',
    'creates a ServiceRequest they request',
    'POST',
    'ServiceRequest',
    201,
    () => newRequest('Practitioner/prac-a', 'Patient/pat-a'),
  ],
  [
    'physicianA',
    'creates a ServiceRequest in the other physician’s name',
    'POST',
    'ServiceRequest',
    403,
    () => newRequest('Practitioner/prac-b', 'Patient/pat-a'),
  ],
  [
    'physicianB',
    'creates a ServiceRequest through their PractitionerRole',
    'POST',
    'ServiceRequest',
    201,
    () => newRequest('PractitionerRole/role-b', 'Patient/pat-b'),
  ],
  [
    'physicianA',
    'registers a new Patient (no case yet)',
    'POST',
    'Patient',
    201,
    () => ({ resourceType: 'Patient', name: [{ family: 'New' }] }),
  ],
  [
    'physicianA',
    'updates the other case’s ServiceRequest (by id)',
    'PUT',
    'ServiceRequest/sr-b',
    404,
    () => ({ ...FIXTURES.find((r) => r.id === 'sr-b'), status: 'revoked' }),
  ],
  [
    'physicianA',
    'updates their case’s Task',
    'PUT',
    'Task/coord-a',
    200,
    () => ({ ...FIXTURES.find((r) => r.id === 'coord-a'), note: [{ text: 'seen' }] }),
  ],
  [
    'physicianA',
    'moves their Task into the other case',
    'PUT',
    'Task/coord-a',
    403,
    () => ({ ...FIXTURES.find((r) => r.id === 'coord-b'), id: 'coord-a', identifier: undefined }),
  ],
  ['physicianA', 'deletes a ChargeItem', 'DELETE', 'ChargeItem/charge-a', 403, () => undefined],
  [
    'physicianA',
    'patches the other case’s Task',
    'PATCH',
    'Task/coord-b',
    404,
    () => [{ op: 'replace', path: '/status', value: 'cancelled' }],
  ],
  [
    'physicianA',
    'patches an ImagingStudy (no update right on the type)',
    'PATCH',
    'ImagingStudy/img-b',
    403,
    () => [{ op: 'replace', path: '/status', value: 'cancelled' }],
  ],
  ['patientA', 'creates a DocumentReference', 'POST', 'DocumentReference', 403, () => newDocument('sr-a')],
  [
    'patientA',
    'creates a ServiceRequest',
    'POST',
    'ServiceRequest',
    403,
    () => newRequest('Practitioner/prac-a', 'Patient/pat-a'),
  ],
  [
    'patientA',
    'writes a Communication on their case',
    'POST',
    'Communication',
    201,
    () => ({ resourceType: 'Communication', status: 'completed', basedOn: [{ reference: 'ServiceRequest/sr-a' }] }),
  ],
  [
    'specialistA',
    'accepts their Task',
    'PUT',
    'Task/spec-a',
    200,
    () => ({ ...FIXTURES.find((r) => r.id === 'spec-a'), status: 'accepted' }),
  ],
  [
    'specialistA',
    'creates a ServiceRequest',
    'POST',
    'ServiceRequest',
    403,
    () => newRequest('Practitioner/prac-s', 'Patient/pat-a'),
  ],
  [
    'specialistA',
    'updates the other case’s Task',
    'PUT',
    'Task/coord-b',
    404,
    () => ({ ...FIXTURES.find((r) => r.id === 'coord-b'), note: [{ text: 'x' }] }),
  ],
  [
    'coordinator',
    'adds a specialist to the roster at a fixed id (their account is linked to it)',
    'PUT',
    'Practitioner/prac-new',
    201,
    () => ({ resourceType: 'Practitioner', id: 'prac-new' }),
  ],
  [
    'coordinator',
    'updates the other case’s ServiceRequest',
    'PUT',
    'ServiceRequest/sr-b',
    200,
    () => ({ ...FIXTURES.find((r) => r.id === 'sr-b'), note: [{ text: 'checked' }] }),
  ],
  [
    'specialistA',
    'writes their opinion on their case as a draft',
    'POST',
    'DiagnosticReport',
    201,
    () => opinion('preliminary'),
  ],
  [
    'specialistA',
    'writes their opinion as final, skipping its approval',
    'POST',
    'DiagnosticReport',
    403,
    () => opinion('final'),
  ],
  [
    'specialistA',
    'files a consultation letter (LOINC 11488-4) as a DocumentReference',
    'POST',
    'DocumentReference',
    403,
    () => ({ ...newDocument('sr-a'), type: { coding: [{ system: LOINC, code: '11488-4' }] } }),
  ],
  [
    'specialistA',
    'writes the letter of their opinion as a draft',
    'POST',
    'Composition',
    201,
    () => letter('preliminary'),
  ],
  ['specialistA', 'writes the letter as final', 'POST', 'Composition', 403, () => letter('final')],
  ['physicianA', 'writes a consultation letter on their case', 'POST', 'Composition', 403, () => letter('preliminary')],
  [
    'radiologistA',
    'rewrites the specialist’s draft on their case',
    'PUT',
    'DiagnosticReport/draft-a',
    404,
    () => ({ ...FIXTURES.find((r) => r.id === 'draft-a'), conclusion: 'not mine to write' }),
  ],
];

/**
 * Writes that would widen the writer's reach through a link they write themselves (issue 12): each
 * is refused, names the element, and stores nothing. Who, what, request, path, body, the expected
 * status and the element the OperationOutcome names (undefined for a 405).
 */
const reference = (to: string) => ({ reference: to });
const WIDENING_WRITES: [Who, string, string, string, () => unknown, number, string | undefined][] = [
  [
    'physicianA',
    'refers the other case’s Patient',
    'POST',
    'ServiceRequest',
    () => newRequest('Practitioner/prac-a', 'Patient/pat-b'),
    403,
    'ServiceRequest.subject',
  ],
  [
    'physicianA',
    'refers a Patient that does not exist (same answer as hidden)',
    'POST',
    'ServiceRequest',
    () => newRequest('Practitioner/prac-a', 'Patient/nobody'),
    403,
    'ServiceRequest.subject',
  ],
  [
    'physicianA',
    'attaches the other case’s Binary to their own case',
    'POST',
    'DocumentReference',
    () => ({
      ...newDocument('sr-a'),
      content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/bin-b' } }],
    }),
    403,
    'DocumentReference.content[0].attachment.url',
  ],
  [
    'physicianA',
    'attaches it by its absolute URL',
    'POST',
    'DocumentReference',
    () => ({
      ...newDocument('sr-a'),
      content: [{ attachment: { contentType: 'application/pdf', url: `${BASE_PLACEHOLDER}/fhir/Binary/bin-b` } }],
    }),
    403,
    'DocumentReference.content[0].attachment.url',
  ],
  [
    'physicianA',
    'relates a document to their case and the other',
    'POST',
    'DocumentReference',
    () => ({
      ...newDocument('sr-a'),
      context: { related: [reference('ServiceRequest/sr-a'), reference('ServiceRequest/sr-b')] },
    }),
    403,
    'DocumentReference.context.related[1]',
  ],
  [
    'physicianA',
    'sends a specimen for both cases',
    'POST',
    'Specimen',
    () => ({ resourceType: 'Specimen', request: [reference('ServiceRequest/sr-a'), reference('ServiceRequest/sr-b')] }),
    403,
    'Specimen.request[1]',
  ],
  [
    'physicianA',
    'writes a message on both cases',
    'POST',
    'Communication',
    () => ({
      resourceType: 'Communication',
      status: 'completed',
      basedOn: [reference('ServiceRequest/sr-a'), reference('ServiceRequest/sr-b')],
    }),
    403,
    'Communication.basedOn[1]',
  ],
  [
    'physicianA',
    'tags their Task with the hub’s case identifier of the other case',
    'PUT',
    'Task/coord-a',
    () => ({
      ...FIXTURES.find((r) => r.id === 'coord-a'),
      identifier: [
        { system: CASE, value: 'sr-a/coordination' },
        { system: CASE, value: 'sr-b/x' },
      ],
    }),
    403,
    'Task.identifier[1]',
  ],
  [
    'physicianA',
    'creates a ServiceRequest with the id the reconciliation Tasks are filed under',
    'PUT',
    'ServiceRequest/reconcile-imaging',
    () => ({ ...newRequest('Practitioner/prac-a', 'Patient/pat-a'), id: 'reconcile-imaging' }),
    405,
    undefined,
  ],
  [
    'physicianA',
    'creates a Patient with an id of their choosing',
    'PUT',
    'Patient/chosen-by-physician',
    () => ({ resourceType: 'Patient', id: 'chosen-by-physician' }),
    405,
    undefined,
  ],
  [
    'physicianA',
    'uploads a raw Binary under an id of their choosing (no update right on Binary)',
    'PUT',
    'Binary/chosen-binary',
    () => 'raw bytes',
    403,
    undefined,
  ],
  [
    'system',
    'creates a ServiceRequest at the id the reconciliation Tasks are filed under (no one may)',
    'PUT',
    'ServiceRequest/reconcile-imaging',
    () => ({ ...newRequest('Practitioner/prac-a', 'Patient/pat-a'), id: 'reconcile-imaging' }),
    405,
    undefined,
  ],
  [
    'physicianA',
    'adds themselves to the other case’s clinic',
    'POST',
    'PractitionerRole',
    () => ({
      resourceType: 'PractitionerRole',
      practitioner: reference('Practitioner/prac-a'),
      organization: reference('Organization/org-b'),
    }),
    403,
    undefined,
  ],
  [
    'coordinator',
    'creates case data at an id of their choosing',
    'PUT',
    'ServiceRequest/chosen-by-coordinator',
    () => ({ ...newRequest('Practitioner/prac-a', 'Patient/pat-a'), id: 'chosen-by-coordinator' }),
    405,
    undefined,
  ],
  [
    'specialistA',
    'bases their Task on the other case',
    'PUT',
    'Task/spec-a',
    () => ({ ...FIXTURES.find((r) => r.id === 'spec-a'), basedOn: [reference('ServiceRequest/sr-b')] }),
    403,
    'Task.basedOn[0]',
  ],
  [
    'specialistA',
    'focuses their Task on the other case’s Patient',
    'PUT',
    'Task/spec-a',
    () => ({ ...FIXTURES.find((r) => r.id === 'spec-a'), for: reference('Patient/pat-b') }),
    403,
    'Task.for',
  ],
  [
    'specialistA',
    'claims the other case by the hub’s identifier',
    'PUT',
    'Task/spec-a',
    () => ({
      ...FIXTURES.find((r) => r.id === 'spec-a'),
      identifier: [{ system: CASE, value: 'sr-b/specialist-opinion/prac-s' }],
    }),
    403,
    'Task.identifier[0]',
  ],
  [
    'specialistA',
    'writes a report on their case citing the other case’s study',
    'POST',
    'DiagnosticReport',
    () => ({
      resourceType: 'DiagnosticReport',
      status: 'preliminary',
      code: { text: 'opinion' },
      basedOn: [reference('ServiceRequest/sr-a')],
      imagingStudy: [reference('ImagingStudy/img-b')],
    }),
    403,
    'DiagnosticReport.imagingStudy[0]',
  ],
  [
    'radiologistA',
    'attaches the other case’s Binary to a report on their case',
    'POST',
    'DiagnosticReport',
    () => ({
      resourceType: 'DiagnosticReport',
      status: 'preliminary',
      code: { text: 'pre-review' },
      basedOn: [reference('ServiceRequest/sr-a')],
      presentedForm: [{ contentType: 'application/pdf', url: 'Binary/bin-b' }],
    }),
    403,
    'DiagnosticReport.presentedForm[0].url',
  ],
  [
    'pathologistB',
    'bases their pre-review on the other case',
    'PUT',
    'Task/path-b',
    () => ({ ...FIXTURES.find((r) => r.id === 'path-b'), basedOn: [reference('ServiceRequest/sr-a')] }),
    403,
    'Task.basedOn[0]',
  ],
  [
    'pathologistB',
    'names the other case’s specimen in their report',
    'POST',
    'DiagnosticReport',
    () => ({
      resourceType: 'DiagnosticReport',
      status: 'preliminary',
      code: { text: 'pathology' },
      basedOn: [reference('ServiceRequest/sr-b')],
      imagingStudy: [reference('ImagingStudy/img-a')],
    }),
    403,
    'DiagnosticReport.imagingStudy[0]',
  ],
  [
    'patientA',
    'writes a message on the other case',
    'POST',
    'Communication',
    () => ({
      resourceType: 'Communication',
      status: 'completed',
      basedOn: [reference('ServiceRequest/sr-a')],
      about: [reference('ServiceRequest/sr-b')],
    }),
    403,
    'Communication.about[0]',
  ],
];
const BASE_PLACEHOLDER = '{base}';

describe('access matrix: each role × resource type × interaction', () => {
  let testHub: TestHub;
  let db: Database;
  const tokens = {} as Record<Who, string>;
  const as = fhirAs(() => testHub, tokens);
  const keysOf = (bundle: any): string[] =>
    (bundle.entry ?? [])
      .filter((e: any) => e.resource)
      .map((e: any) => `${e.resource.resourceType}/${e.resource.id}`)
      .sort();

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    db = await openDatabase({ databaseUrl: testHub.databaseUrl, poolSize: 2 });
    Object.assign(
      tokens,
      await signInWithSystem(testHub, PEOPLE, { clientId: APP, redirectUri: REDIRECT }, 'fixture-loader'),
    );
    // Fixed ids: loaded by a system client (people cannot choose ids, so update-as-create is the EHR's).
    const loaded = await putTransaction(testHub.fhir, tokens.system, FIXTURES);
    expect(loaded.status).toBe(200);
  });
  afterAll(async () => {
    await db?.close();
    await testHub?.stop();
  });

  const WHO = Object.keys(SEES) as Who[];

  describe.each(WHO)('%s', (who) => {
    test.each(TYPES)('search %s returns only their cases’ resources, with a matching _total', async (type) => {
      const found = await as(who, `${type}?_count=100&_total=accurate`);
      expect(found.status).toBe(200);
      const ids = keysOf(found.body)
        .map((key) => key.split('/')[1])
        .filter((id): id is string => id !== undefined && fixtureIds(type).includes(id));
      expect(ids).toEqual([...SEES[who][type]].sort());
      expect(found.body.total).toBe((found.body.entry ?? []).length);
    });

    test.each(TYPES)('read %s: 200 for theirs, 404 for every other (none 403)', async (type) => {
      for (const id of fixtureIds(type)) {
        const read = await as(who, `${type}/${id}`);
        expect([`${type}/${id}`, read.status]).toEqual([`${type}/${id}`, SEES[who][type].includes(id) ? 200 : 404]);
      }
    });
  });

  test('anonymous requests are refused (AUTH_REQUIRED=true)', async () => {
    expect((await fhirFetch(`${testHub.fhir}/Patient/pat-a`)).status).toBe(401);
  });

  test.each(WRITES)('%s %s: %s %s → %i', async (who, _what, method, path, status, body) => {
    const answer = await as(who, path, {
      method,
      body: body(),
      headers: method === 'PATCH' ? { 'content-type': 'application/json-patch+json' } : {},
    });
    expect(answer.status).toBe(status);
  });

  test.each(WIDENING_WRITES)(
    '%s %s: %s %s is refused, nothing stored',
    async (who, _what, method, path, body, status, element) => {
      const type = path.split('/')[0]!;
      const count = async (): Promise<number> =>
        (await as('coordinator', `${type}?_summary=count`)).body.total as number;
      const events = async (): Promise<number> =>
        Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM outbox')).rows[0]!.n);
      const before = await count();
      const queuedBefore = await events();
      const payload = JSON.stringify(body() ?? null).replaceAll(BASE_PLACEHOLDER, testHub.baseUrl);
      const answer = await as(who, path, {
        method,
        body: type === 'Binary' ? String(body()) : payload,
        headers: type === 'Binary' ? { 'content-type': 'application/octet-stream' } : {},
      });
      expect(answer.status).toBe(status);
      expect(answer.body.resourceType).toBe('OperationOutcome');
      if (element) {
        expect(answer.body.issue[0].expression).toEqual([element]);
      }
      expect(await count()).toBe(before);
      expect(await events()).toBe(queuedBefore);
      if (method === 'PUT' && status === 405) {
        expect((await as('coordinator', path)).status).toBe(404);
      }
    },
  );

  test('another server’s URL names nothing here: a document that points at elsewhere’s ServiceRequest/sr-b and Binary/bin-b joins no case of B and opens no Binary', async () => {
    const written = await as('physicianA', 'DocumentReference', {
      method: 'POST',
      body: {
        ...newDocument('sr-a'),
        context: {
          related: [reference('ServiceRequest/sr-a'), reference('https://elsewhere.example/fhir/ServiceRequest/sr-b')],
        },
        content: [
          { attachment: { contentType: 'application/pdf', url: 'https://elsewhere.example/fhir/Binary/bin-b' } },
        ],
      },
    });
    expect(written.status).toBe(201);
    expect((await as('physicianA', 'Binary/bin-b')).status).toBe(404);
    expect((await as('physicianB', `DocumentReference/${written.body.id}`)).status).toBe(404);
    expect((await as('physicianA', `DocumentReference/${written.body.id}`)).status).toBe(200);
    expect((await as('coordinator', `DocumentReference/${written.body.id}`, { method: 'DELETE' })).status).toBe(200);
  });

  test('a person may reference what they created before it belongs to a case: a new Patient, then their referral of it', async () => {
    const patient = await as('physicianA', 'Patient', {
      method: 'POST',
      body: { resourceType: 'Patient', name: [{ family: 'Newcomer' }] },
    });
    expect(patient.status).toBe(201);
    const referral = await as('physicianA', 'ServiceRequest', {
      method: 'POST',
      body: newRequest('Practitioner/prac-a', `Patient/${patient.body.id}`),
    });
    expect(referral.status).toBe(201);
    // Another physician cannot refer the same Patient: it is not theirs to name.
    const other = await as('physicianB', 'ServiceRequest', {
      method: 'POST',
      body: newRequest('PractitionerRole/role-b', `Patient/${patient.body.id}`),
    });
    expect(other.status).toBe(403);
    // A raw upload is theirs to attach too.
    const upload = await fetch(`${testHub.fhir}/Binary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.physicianA}`, 'content-type': 'application/pdf' },
      body: '%PDF-1.4 new',
    });
    expect(upload.status).toBe(201);
    const binaryId = ((await upload.json()) as { id: string }).id;
    const document = await as('physicianA', 'DocumentReference', {
      method: 'POST',
      body: {
        ...newDocument(referral.body.id),
        content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${binaryId}` } }],
      },
    });
    expect(document.status).toBe(201);
    expect(
      (
        await fetch(`${testHub.fhir}/Binary/${binaryId}`, {
          headers: { authorization: `Bearer ${tokens.physicianB}`, accept: 'application/pdf' },
        })
      ).status,
    ).toBe(404);
  });

  test('a deleted resource cannot be brought back by a person (PUT on its id): 405, and it stays deleted', async () => {
    const created = await as('physicianA', 'Communication', {
      method: 'POST',
      body: { resourceType: 'Communication', status: 'completed', basedOn: [reference('ServiceRequest/sr-a')] },
    });
    expect(created.status).toBe(201);
    expect((await as('coordinator', `Communication/${created.body.id}`, { method: 'DELETE' })).status).toBe(200);
    for (const who of ['physicianA', 'physicianB', 'patientA'] as const) {
      const revived = await as(who, `Communication/${created.body.id}`, {
        method: 'PUT',
        body: {
          ...created.body,
          meta: undefined,
          basedOn: [reference(who === 'physicianB' ? 'ServiceRequest/sr-b' : 'ServiceRequest/sr-a')],
        },
      });
      expect([who, revived.status]).toEqual([who, 405]);
    }
    expect((await as('coordinator', `Communication/${created.body.id}`)).status).toBe(410);
  });

  test('in a transaction, one widening entry refuses the whole Bundle; in a batch, only that entry', async () => {
    const countRequests = async (): Promise<number> =>
      (await as('coordinator', 'ServiceRequest?_summary=count')).body.total as number;
    const before = await countRequests();
    const entries = [
      {
        resource: newRequest('Practitioner/prac-a', 'Patient/pat-a'),
        request: { method: 'POST', url: 'ServiceRequest' },
      },
      {
        resource: newRequest('Practitioner/prac-a', 'Patient/pat-b'),
        request: { method: 'POST', url: 'ServiceRequest' },
      },
    ];
    const transaction = await as('physicianA', '', {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'transaction', entry: entries },
    });
    expect(transaction.status).toBe(403);
    expect(await countRequests()).toBe(before);
    const batch = await as('physicianA', '', {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'batch', entry: entries },
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((entry: any) => entry.response.status.split(' ')[0])).toEqual(['201', '403']);
    expect(await countRequests()).toBe(before + 1);
  });

  test('membership is the hub’s record: an owner set by a physician or a reviewer gives no access; a coordinator’s assignment does, and its removal takes it back', async () => {
    const seesCaseA = async (): Promise<number[]> =>
      Promise.all(
        ['ServiceRequest/sr-a', 'Patient/pat-a', 'DocumentReference/doc-a', 'Binary/bin-a'].map(
          async (path) => (await as('specialistB', path)).status,
        ),
      );
    const ownedBy = (practitioner: string) => ({ owner: reference(practitioner) });
    // The physician hands their case's Task to the second specialist: refused, the case record is the
    // hub's and the coordinators' (coordinator-moves.ts).
    const handed = await as('physicianA', 'Task/coord-a');
    expect(
      (
        await as('physicianA', 'Task/coord-a', {
          method: 'PUT',
          body: { ...handed.body, ...ownedBy('Practitioner/prac-s2') },
        })
      ).status,
    ).toBe(403);
    // The specialist of case A passes their own Task on.
    const own = await as('specialistA', 'Task/spec-a');
    expect(
      (
        await as('specialistA', 'Task/spec-a', {
          method: 'PUT',
          body: { ...own.body, ...ownedBy('Practitioner/prac-s2') },
        })
      ).status,
    ).toBe(200);
    expect(await seesCaseA()).toEqual([404, 404, 404, 404]);
    expect((await as('specialistB', 'Task?_count=100')).body.entry ?? []).toEqual([]);

    // A coordinator's assignment makes them a reviewer of case A; unassigning ends it.
    const assigned = await as('coordinator', 'Task', {
      method: 'POST',
      body: {
        resourceType: 'Task',
        status: 'requested',
        intent: 'order',
        basedOn: [reference('ServiceRequest/sr-a')],
        ...ownedBy('Practitioner/prac-s2'),
      },
    });
    expect(assigned.status).toBe(201);
    expect(await seesCaseA()).toEqual([200, 200, 200, 200]);
    expect((await as('specialistB', 'ServiceRequest/sr-b')).status).toBe(404);
    const { owner: _owner, ...unassigned } = (await as('coordinator', `Task/${assigned.body.id}`)).body;
    expect((await as('coordinator', `Task/${assigned.body.id}`, { method: 'PUT', body: unassigned })).status).toBe(200);
    expect(await seesCaseA()).toEqual([404, 404, 404, 404]);

    // Put back what the matrix's other tests read.
    for (const [path, body] of [
      ['Task/coord-a', handed.body],
      ['Task/spec-a', own.body],
    ] as const) {
      const current = (await as('coordinator', path)).body;
      expect((await as('coordinator', path, { method: 'PUT', body: { ...body, meta: current.meta } })).status).toBe(
        200,
      );
    }
  });

  test('a coordinator adds a physician to a case by hand (a case-access Task) and takes them off by cancelling it; a physician’s own such Task does nothing', async () => {
    const accessTask = (owner: string, role: string) => ({
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      code: { coding: [{ system: 'urn:hub:task-code', code: 'case-access' }] },
      basedOn: [reference('ServiceRequest/sr-a')],
      owner: reference(owner),
      input: [{ type: { coding: [{ system: 'urn:hub:case-access-role', code: 'role' }] }, valueCode: role }],
    });
    const seesCaseA = async (): Promise<number[]> =>
      Promise.all(
        ['ServiceRequest/sr-a', 'Patient/pat-a', 'DocumentReference/doc-a'].map(
          async (path) => (await as('physicianB', path)).status,
        ),
      );
    expect(await seesCaseA()).toEqual([404, 404, 404]);
    // Physician A turns their own case's Task into such a grant for physician B: refused (the case
    // record is the coordinators'), and not the hub's act either way.
    const coord = (await as('physicianA', 'Task/coord-a')).body;
    const grant = accessTask('Practitioner/prac-b', 'referring-physician');
    expect(
      (
        await as('physicianA', 'Task/coord-a', {
          method: 'PUT',
          body: { ...coord, code: grant.code, owner: grant.owner, input: grant.input },
        })
      ).status,
    ).toBe(403);
    expect(await seesCaseA()).toEqual([404, 404, 404]);
    const restored = (await as('coordinator', 'Task/coord-a')).body;
    expect(
      (await as('coordinator', 'Task/coord-a', { method: 'PUT', body: { ...coord, meta: restored.meta } })).status,
    ).toBe(200);

    const added = await as('coordinator', 'Task', { method: 'POST', body: grant });
    expect(added.status).toBe(201);
    expect(await seesCaseA()).toEqual([200, 200, 200]);
    // Through physician B's PractitionerRole as well as their Practitioner, and as the role their policy reads only.
    expect((await as('specialistB', 'ServiceRequest/sr-a')).status).toBe(404);
    expect(
      (
        await as('coordinator', `Task/${added.body.id}`, {
          method: 'PUT',
          body: { ...added.body, meta: undefined, status: 'cancelled' },
        })
      ).status,
    ).toBe(200);
    expect(await seesCaseA()).toEqual([404, 404, 404]);
    expect((await as('coordinator', `Task/${added.body.id}`, { method: 'DELETE' })).status).toBe(200);
  });

  test('a case referred through a clinic’s PractitionerRole is that clinic’s: a physician the staff put in the clinic sees it, and no longer once taken out', async () => {
    const seesCaseB = async (): Promise<number[]> =>
      Promise.all(
        ['ServiceRequest/sr-b', 'Patient/pat-b', 'DocumentReference/doc-b'].map(
          async (path) => (await as('physicianA', path)).status,
        ),
      );
    expect(await seesCaseB()).toEqual([404, 404, 404]);
    const joined = await as('coordinator', 'PractitionerRole', {
      method: 'POST',
      body: {
        resourceType: 'PractitionerRole',
        practitioner: reference('Practitioner/prac-a'),
        organization: reference('Organization/org-b'),
      },
    });
    expect(joined.status).toBe(201);
    expect(await seesCaseB()).toEqual([200, 200, 200]);
    // Only as a referring physician: the clinic's cases are not a reviewer's.
    expect((await as('specialistA', 'ServiceRequest/sr-b')).status).toBe(404);
    expect((await as('coordinator', `PractitionerRole/${joined.body.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await seesCaseB()).toEqual([404, 404, 404]);
  });

  test('chains and _has test only what the person may see: results and _total say nothing of hidden resources', async () => {
    const matches = async (who: Who, query: string): Promise<[string[], number]> => {
      const found = await as(who, `${query}&_total=accurate`);
      expect(found.status).toBe(200);
      return [keysOf(found.body), found.body.total as number];
    };
    // trap-a is physician A's, and its focus is case B's ServiceRequest: a chain into it must not match.
    expect(await matches('physicianA', 'Task?_id=trap-a&focus:ServiceRequest.status=active')).toEqual([[], 0]);
    expect(await matches('physicianA', 'Task?_id=trap-a&focus:ServiceRequest.subject=Patient/pat-b')).toEqual([[], 0]);
    // Through a chain into their own case it still works.
    expect(await matches('physicianA', 'Task?_id=coord-a&focus:ServiceRequest.status=active')).toEqual([
      ['Task/coord-a'],
      1,
    ]);
    // The patient's report is not released: _has on it does not tell that it exists or what it says.
    expect(await matches('patientA', 'Patient?_has:DiagnosticReport:subject:code=http://loinc.org|11488-4')).toEqual([
      [],
      0,
    ]);
    expect(await matches('physicianA', 'Patient?_has:DiagnosticReport:subject:code=http://loinc.org|11488-4')).toEqual([
      ['Patient/pat-a'],
      1,
    ]);
    // _has through another case's resource: physician B's trap view of case A.
    expect(await matches('physicianB', 'ServiceRequest?_has:Task:focus:_id=trap-a')).toEqual([
      ['ServiceRequest/sr-b'],
      1,
    ]);
    expect(await matches('physicianA', 'ServiceRequest?_has:Task:focus:_id=coord-b')).toEqual([[], 0]);
  });

  test('a refused write leaves nothing behind: case B’s ServiceRequest and ImagingStudy unchanged', async () => {
    expect((await as('coordinator', 'ImagingStudy/img-b')).body.status).toBe('available');
    const task = await as('coordinator', 'Task/coord-a');
    expect(task.body.identifier).toEqual([{ system: CASE, value: 'sr-a/coordination' }]);
  });

  test('raw Binary download: the content for theirs, 404 for the other case’s', async () => {
    const own = await fetch(`${testHub.fhir}/Binary/bin-a`, {
      headers: { authorization: `Bearer ${tokens.physicianA}`, accept: 'application/pdf' },
    });
    expect(own.status).toBe(200);
    expect(Buffer.from(await own.arrayBuffer()).toString()).toBe('%PDF-1.4 records a');
    const other = await fetch(`${testHub.fhir}/Binary/bin-b`, {
      headers: { authorization: `Bearer ${tokens.physicianA}`, accept: 'application/pdf' },
    });
    expect(other.status).toBe(404);
    const version = await fetch(`${testHub.fhir}/Binary/bin-b/_history/1`, {
      headers: { authorization: `Bearer ${tokens.physicianA}`, accept: 'application/pdf' },
    });
    expect(version.status).toBe(404);
  });

  test('the other case by search parameter: omitted (by _id, subject, based-on)', async () => {
    for (const path of [
      'ServiceRequest?_id=sr-b',
      'DocumentReference?subject=Patient/pat-b',
      'Task?based-on=ServiceRequest/sr-b',
      'ChargeItem?identifier=urn:hub:case-resource|sr-b/charge/imaging-review',
    ]) {
      const found = await as('physicianA', `${path}&_total=accurate`);
      expect([path, found.status, found.body.total, found.body.entry]).toEqual([path, 200, 0, undefined]);
    }
  });

  test('system search (_type), POST _search and paging: filtered the same way, _total counts only theirs', async () => {
    const system = await as('physicianA', '?_type=ServiceRequest,Patient&_id=sr-a,sr-b,pat-a,pat-b');
    expect(keysOf(system.body)).toEqual(['Patient/pat-a', 'ServiceRequest/sr-a']);
    const posted = await as('physicianA', 'ServiceRequest/_search', {
      method: 'POST',
      body: '_id=sr-a,sr-b',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(keysOf(posted.body)).toEqual(['ServiceRequest/sr-a']);
    const all = keysOf((await as('physicianA', 'Task?_count=100')).body);
    const seen: string[] = [];
    let page = await as('physicianA', 'Task?_count=1&_total=accurate');
    expect(page.body.total).toBe(all.length);
    for (;;) {
      seen.push(...keysOf(page.body));
      const next = (page.body.link ?? []).find((link: any) => link.relation === 'next');
      if (!next) {
        break;
      }
      page = await fhirFetch(next.url, { headers: { authorization: `Bearer ${tokens.physicianA}` } });
    }
    expect(seen.sort()).toEqual(all);
  });

  test('the other case by _include and _revinclude: omitted', async () => {
    const included = await as('physicianA', 'Task?_id=trap-a&_include=Task:focus');
    expect(keysOf(included.body)).toEqual(['Task/trap-a']);
    const asB = await as('physicianB', 'Task?_id=trap-a&_include=Task:focus');
    expect(keysOf(asB.body)).toEqual(['ServiceRequest/sr-b', 'Task/trap-a']);
    const revincluded = await as('physicianA', 'PractitionerRole?_id=role-b&_revinclude=ServiceRequest:requester');
    expect(keysOf(revincluded.body)).toEqual(['PractitionerRole/role-b']);
    const patients = await as(
      'physicianA',
      'Patient?_id=pat-a,pat-b&_revinclude=DocumentReference:subject&_revinclude=ChargeItem:subject',
    );
    expect(keysOf(patients.body)).toEqual([
      'ChargeItem/charge-a',
      'DocumentReference/doc-a',
      'DocumentReference/docrep-a',
      'Patient/pat-a',
    ]);
  });

  test('the other case through a batch: each entry filtered; through a transaction: refused whole', async () => {
    const batch = await as('physicianA', '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: 'ServiceRequest/sr-a' } },
          { request: { method: 'GET', url: 'ServiceRequest/sr-b' } },
          { request: { method: 'GET', url: 'DocumentReference?subject=Patient/pat-b' } },
          { request: { method: 'GET', url: 'Binary/bin-b' } },
        ],
      },
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((e: any) => e.response.status)).toEqual(['200', '404', '200', '404']);
    expect(batch.body.entry[2].resource.entry).toBeUndefined();

    const transaction = await as('physicianA', '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:0b0b0b0b-0000-4000-8000-000000000001',
            resource: newDocument('sr-a'),
            request: { method: 'POST', url: 'DocumentReference' },
          },
          {
            resource: { ...FIXTURES.find((r) => r.id === 'sr-b'), status: 'revoked' },
            request: { method: 'PUT', url: 'ServiceRequest/sr-b' },
          },
        ],
      },
    });
    expect(transaction.status).toBe(404);
    expect((await as('coordinator', 'ServiceRequest/sr-b')).body.status).toBe('active');

    // Their own referral in one transaction: a new Patient and a ServiceRequest for it.
    const referral = await as('physicianA', '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:0b0b0b0b-0000-4000-8000-000000000002',
            resource: { resourceType: 'Patient', name: [{ family: 'Referred' }] },
            request: { method: 'POST', url: 'Patient' },
          },
          {
            resource: newRequest('Practitioner/prac-a', 'urn:uuid:0b0b0b0b-0000-4000-8000-000000000002'),
            request: { method: 'POST', url: 'ServiceRequest' },
          },
        ],
      },
    });
    expect(referral.status).toBe(200);
    const patientId = referral.body.entry[0].resource.id as string;
    expect((await as('physicianA', `Patient/${patientId}`)).status).toBe(200);
    expect((await as('physicianB', `Patient/${patientId}`)).status).toBe(404);
  });

  test('history and vread are authorised per version: a resource moved into their case does not show its earlier case’s versions', async () => {
    const made = await as('coordinator', 'Task', {
      method: 'POST',
      body: {
        resourceType: 'Task',
        status: 'requested',
        intent: 'order',
        basedOn: [reference('ServiceRequest/sr-b')],
        note: [{ text: 'about case B' }],
      },
    });
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    const moved = await as('coordinator', `Task/${id}`, {
      method: 'PUT',
      body: {
        ...made.body,
        meta: undefined,
        basedOn: [reference('ServiceRequest/sr-a')],
        note: [{ text: 'now case A' }],
      },
    });
    expect(moved.status).toBe(200);
    expect((await as('physicianA', `Task/${id}`)).status).toBe(200);
    expect((await as('physicianA', `Task/${id}/_history/2`)).status).toBe(200);
    expect((await as('physicianA', `Task/${id}/_history/1`)).status).toBe(404);
    const versions = (bundle: any): string[] =>
      (bundle.entry ?? []).filter((e: any) => e.resource?.id === id).map((e: any) => e.resource.meta.versionId);
    const instance = await as('physicianA', `Task/${id}/_history`);
    expect({ versions: versions(instance.body), total: instance.body.total }).toEqual({ versions: ['2'], total: 1 });
    expect(versions((await as('physicianA', 'Task/_history?_count=1000')).body)).toEqual(['2']);
    expect(versions((await as('physicianA', '_history?_count=1000')).body)).toEqual(['2']);
    expect(JSON.stringify((await as('physicianA', '_history?_count=1000')).body)).not.toContain('about case B');
    // Case B's physician sees neither version now: the Task is no longer in their case.
    expect((await as('physicianB', `Task/${id}/_history/1`)).status).toBe(404);
    expect((await as('coordinator', `Task/${id}/_history`)).body.total).toBe(2);
    expect((await as('coordinator', `Task/${id}`, { method: 'DELETE' })).status).toBe(200);
  });

  test('the other case through history: instance 404, type and system history omit it', async () => {
    expect((await as('physicianA', 'ServiceRequest/sr-b/_history')).status).toBe(404);
    expect((await as('physicianA', 'ServiceRequest/sr-b/_history/1')).status).toBe(404);
    expect((await as('physicianA', 'ServiceRequest/sr-a/_history')).status).toBe(200);
    const typeHistory = await as('physicianA', 'ServiceRequest/_history?_count=1000');
    const typeKeys = keysOf(typeHistory.body);
    expect(typeKeys).toContain('ServiceRequest/sr-a');
    expect(typeKeys).not.toContain('ServiceRequest/sr-b');
    const systemHistory = await as('physicianA', '_history?_count=1000');
    const systemKeys = new Set(keysOf(systemHistory.body));
    expect(systemKeys.has('Task/coord-a')).toBe(true);
    for (const hidden of [
      'ServiceRequest/sr-b',
      'Patient/pat-b',
      'Task/coord-b',
      'DocumentReference/doc-b',
      'Binary/bin-b',
      'ImagingStudy/img-b',
      'ChargeItem/charge-b',
    ]) {
      expect(systemKeys.has(hidden)).toBe(false);
    }
    // The coordinator's history has both cases.
    const everything = new Set(keysOf((await as('coordinator', '_history?_count=1000')).body));
    expect(everything.has('ServiceRequest/sr-b')).toBe(true);
  });

  test('a type the role has no right to: search 403, read 404', async () => {
    expect((await as('patientA', 'PractitionerRole')).status).toBe(403);
    expect((await as('patientA', 'PractitionerRole/role-b')).status).toBe(404);
  });

  test('a draft opinion stays its author’s through every read path: includes, _has, chains, history, raw Binary', async () => {
    for (const who of ['physicianA', 'radiologistA', 'patientA'] as const) {
      const included = await as(who, 'ServiceRequest?_id=sr-a&_revinclude=DiagnosticReport:based-on');
      expect([who, keysOf(included.body).filter((key) => key.startsWith('DiagnosticReport/'))]).toEqual([
        who,
        who === 'patientA' ? [] : ['DiagnosticReport/rep-a'],
      ]);
      const has = await as(who, 'ServiceRequest?_has:DiagnosticReport:based-on:status=preliminary');
      expect([who, keysOf(has.body)]).toEqual([who, []]);
      const chained = await as(who, 'DiagnosticReport?based-on:ServiceRequest._id=sr-a&status=preliminary');
      expect([who, keysOf(chained.body)]).toEqual([who, []]);
      const letters = await as(who, 'Composition?entry=ServiceRequest/sr-a');
      expect([who, letters.status, keysOf(letters.body)]).toEqual([who, 200, []]);
      for (const path of [
        'DiagnosticReport/draft-a/_history',
        'DiagnosticReport/draft-a/_history/1',
        'Composition/letter-a',
      ]) {
        expect([who, path, (await as(who, path)).status]).toEqual([who, path, 404]);
      }
      const history = await as(who, 'DiagnosticReport/_history');
      expect([who, keysOf(history.body).filter((key) => key === 'DiagnosticReport/draft-a')]).toEqual([who, []]);
      const raw = await fhirFetch(`${testHub.fhir}/Binary/bindraft-a`, {
        headers: { authorization: `Bearer ${tokens[who]}`, accept: 'application/pdf' },
      });
      expect([who, raw.status]).toEqual([who, 404]);
    }
    const own = await as('specialistA', 'ServiceRequest?_id=sr-a&_revinclude=DiagnosticReport:based-on');
    expect(keysOf(own.body)).toEqual(expect.arrayContaining(['DiagnosticReport/draft-a']));
    expect((await as('specialistA', 'DiagnosticReport/draft-a/_history/1')).status).toBe(200);
    expect((await as('specialistA', 'Binary/bindraft-a')).status).toBe(200);
  });

  test('an approved opinion is the physician’s to read, without the drafts in its history', async () => {
    const draft = await as('specialistA', 'DiagnosticReport', {
      method: 'POST',
      body: { ...opinion('preliminary'), conclusion: 'first thoughts' },
    });
    expect(draft.status).toBe(201);
    const path = `DiagnosticReport/${draft.body.id}`;
    expect((await as('physicianA', path)).status).toBe(404);
    const approved = await as('coordinator', path, {
      method: 'PUT',
      body: { ...draft.body, meta: undefined, status: 'final', conclusion: 'the opinion' },
    });
    expect(approved.status).toBe(200);
    expect((await as('physicianA', path)).status).toBe(200);
    const history = await as('physicianA', `${path}/_history`);
    expect(history.body.entry.map((entry: any) => entry.resource.status)).toEqual(['final']);
    expect((await as('physicianA', `${path}/_history/1`)).status).toBe(404);
    // Still not the patient's: the case is not released to them until the physician has read it.
    expect((await as('patientA', path)).status).toBe(404);
  });

  test('the patient sees the consultation report only once the physician has opened it (report-accessed)', async () => {
    for (const path of ['DiagnosticReport/rep-a', 'DocumentReference/docrep-a', 'Binary/binrep-a']) {
      expect([path, (await as('patientA', path)).status]).toEqual([path, 404]);
    }
    // The physician writing the state themselves releases nothing (the progression job checks such a
    // move first; the hub moves the case when the physician has read the report).
    const coordination = (await as('coordinator', 'Task/coord-a')).body;
    const accessed = {
      ...coordination,
      meta: undefined,
      businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-accessed' }] },
    };
    expect((await as('physicianA', 'Task/coord-a', { method: 'PUT', body: accessed })).status).toBe(200);
    expect((await as('patientA', 'DiagnosticReport/rep-a')).status).toBe(404);
    // A coordinator records that the physician had it (by phone): released.
    const current = (await as('coordinator', 'Task/coord-a')).body;
    const moved = await as('coordinator', 'Task/coord-a', {
      method: 'PUT',
      body: { ...current, ...accessed, statusReason: { text: 'Read to the physician by phone.' } },
    });
    expect(moved.status).toBe(200);
    for (const path of ['DiagnosticReport/rep-a', 'DocumentReference/docrep-a', 'Binary/binrep-a']) {
      expect([path, (await as('patientA', path)).status]).toEqual([path, 200]);
    }
    const reports = await as('patientA', 'DiagnosticReport');
    // The final reports of case A (the fixture's, and the one approved above); never a draft.
    expect(keysOf(reports.body)).toContain('DiagnosticReport/rep-a');
    expect(reports.body.entry.map((entry: any) => entry.resource.status)).toEqual(
      reports.body.entry.map(() => 'final'),
    );
    // Case B's report is still closed to its patient, and case A's to patient B.
    expect((await as('patientB', 'DiagnosticReport/rep-b')).status).toBe(404);
    expect((await as('patientB', 'DiagnosticReport/rep-a')).status).toBe(404);
  });
});
