/**
 * What the physician's and the patient's browser tests do through the API as the other parties: the
 * specialist asks a question and writes the opinion, the coordinator approves it (as in
 * test/opinion-e2e.test.ts), each with their own person's token, against a hub process.
 */
import { CASE_STATE, LOINC, draftReport, letterSection } from './opinion-case.ts';
import { fhirFetch } from './test-hub.ts';
import { until } from './until.ts';

export interface Parties {
  /** The hub's URL. */
  url: string;
  specialist: string;
  coordinator: string;
}

/** The opinion's texts the tests look for on the page. */
export const OPINION = {
  conclusion: 'Benign nodule; follow-up CT in twelve months.',
  answer1: 'The nodule is most likely benign.',
  answer2: 'Follow-up imaging only.',
  recommendation: 'A CT in twelve months.',
};

async function as(parties: Parties, who: 'specialist' | 'coordinator', path: string, method = 'GET', body?: unknown) {
  const response = await fhirFetch(`${parties.url}/fhir/${path}`, {
    method,
    body,
    headers: { authorization: `Bearer ${parties[who]}` },
  });
  if (response.status >= 300) {
    throw new Error(`${who} ${method} ${path}: ${response.status} ${JSON.stringify(response.body)}`);
  }
  return response.body;
}

/** The case's state, by the coordinator's reading of its coordination Task `coord-<sr>`. */
export async function caseState(parties: Parties, sr: string): Promise<string> {
  const task = await as(parties, 'coordinator', `Task/coord-${sr}`);
  return String(task.businessStatus.coding[0].code);
}

export async function inState(parties: Parties, sr: string, state: string, timeoutMs = 30_000): Promise<void> {
  await until(async () => (await caseState(parties, sr)) === state, `the case ${sr} in ${state}`, timeoutMs);
}

/** The specialist (Practitioner/prac-s) asks the physician (Practitioner/prac-phys) a question. */
export async function askPhysician(parties: Parties, sr: string, text: string): Promise<string> {
  const question = await as(parties, 'specialist', 'Communication', 'POST', {
    resourceType: 'Communication',
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${sr}` }],
    partOf: [{ reference: `Task/coord-${sr}` }],
    sender: { reference: 'Practitioner/prac-s' },
    recipient: [{ reference: 'Practitioner/prac-phys' }],
    payload: [{ contentString: text }],
  });
  await inState(parties, sr, 'awaiting-information');
  return String(question.id);
}

/** The specialist writes and submits the opinion, the coordinator approves it: the case is report-released. */
export async function releaseOpinion(parties: Parties, sr: string): Promise<{ reportId: string; letterId: string }> {
  const letter = await as(parties, 'specialist', 'Composition', 'POST', {
    resourceType: 'Composition',
    status: 'preliminary',
    type: { coding: [{ system: LOINC, code: '11488-4' }] },
    subject: { reference: `Patient/pat-${sr}` },
    date: new Date().toISOString().slice(0, 10),
    author: [{ reference: 'Practitioner/prac-s' }],
    title: 'Consultation',
    section: [
      { ...letterSection('reviewed', 'The CT and the biopsy report.'), entry: [{ reference: `ServiceRequest/${sr}` }] },
      letterSection('answer', OPINION.answer1, 1),
      letterSection('answer', OPINION.answer2, 2),
      letterSection('discussion', 'Nothing suggests malignancy.'),
      letterSection('recommendation', OPINION.recommendation),
    ],
  });
  const report = await as(
    parties,
    'specialist',
    'DiagnosticReport',
    'POST',
    draftReport(sr, String(letter.id), OPINION.conclusion),
  );
  const task = await as(parties, 'specialist', `Task/coord-${sr}`);
  await as(parties, 'specialist', `Task/coord-${sr}`, 'PUT', {
    ...task,
    meta: undefined,
    businessStatus: { coding: [{ system: CASE_STATE, code: 'report-review' }] },
  });
  const approval = await until(async () => {
    const found = await as(parties, 'coordinator', `Task?code=urn:hub:task-code|approve&based-on=ServiceRequest/${sr}`);
    const candidate = found.entry?.[0]?.resource;
    return candidate?.status === 'requested' ? candidate : undefined;
  }, 'the approval Task').catch(async (error: unknown) => {
    // Say why the hub refused the submission, if it did.
    const coordination = await as(parties, 'coordinator', `Task/coord-${sr}`);
    throw new Error(
      `${String(error)}; the case: ${JSON.stringify([coordination.businessStatus, coordination.statusReason])}`,
    );
  });
  await as(parties, 'coordinator', `Task/${String(approval.id)}`, 'PUT', {
    ...approval,
    meta: undefined,
    status: 'completed',
  });
  await inState(parties, sr, 'report-released');
  return { reportId: String(report.id), letterId: String(letter.id) };
}
