/**
 * The opinion up to its release, each party with its own token: the EHR subscribes to the case, the
 * specialist drafts the report and its letter and asks the physician a question, the physician signs
 * in and answers, the specialist submits (refused once for a missing section), a coordinator returns
 * it once with a reason and then approves it. What follows the release: after-release.ts.
 */
import type { Cast } from './cast.ts';
import type { DemoClient, Resource } from './client.ts';
import { stateOf, withTaskCode } from './client.ts';
import { show, step, writer } from './print.ts';
import type { EhrReceiver } from './receiver.ts';

/** The physician's questions (the referral's QuestionnaireResponse), which the letter answers one by one. */
export const QUESTIONS = [
  'Is the mass in the left lung malignant?',
  'Would you recommend surgery or chemotherapy for this cancer?',
  'Is a PET-CT needed before deciding?',
  'Does the enlarged mediastinal node need a biopsy?',
  'Is resection indicated, and if so, which approach would you choose?',
];

export const LETTER_SECTION = 'urn:hub:letter-section';
const QUESTION_NUMBER = 'urn:hub:extension:question-number';
export const LETTER_LINK = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
export const LOINC_CONSULTATION = {
  coding: [{ system: 'http://loinc.org', code: '11488-4', display: 'Consultation note' }],
};

export function letterSection(code: string, text: string, questionNumber?: number): Resource {
  return {
    code: { coding: [{ system: LETTER_SECTION, code }] },
    ...(questionNumber ? { extension: [{ url: QUESTION_NUMBER, valueUnsignedInt: questionNumber }] } : {}),
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${text}</p></div>` },
  };
}

/** Who plays the opinion, and the case they play it on. */
export interface OpinionScene {
  cast: Cast;
  coordinator: DemoClient;
  specialist: DemoClient;
  receiver: EhrReceiver;
  coordinationId: string;
  serviceRequestId: string;
  patientId: string;
  specialistId: string;
  physicianId: string;
}

/** The case's released opinion. */
export interface ReleasedOpinion {
  reportId: string;
  letterId: string;
  approvalId: string;
}

/** The coordination Task once the case is in `wanted` (read by the coordinator). */
export const caseIn = (scene: OpinionScene, wanted: string): Promise<Resource> =>
  scene.coordinator.until(async () => {
    const task = await scene.coordinator.fhir('GET', `Task/${scene.coordinationId}`);
    return stateOf(task) === wanted ? task : undefined;
  }, `the case in ${wanted}`);

/** The specialist moves the case to report-review (the coordination Task's businessStatus). */
const submit = (scene: OpinionScene): Promise<Resource> =>
  scene.specialist.change(`Task/${scene.coordinationId}`, (task) => ({
    ...task,
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-review' }] },
  }));

/** The opinion from the EHR's subscriptions to the approval. */
export async function playOpinion(scene: OpinionScene): Promise<ReleasedOpinion> {
  const { cast, coordinator, specialist, receiver, coordinationId, serviceRequestId } = scene;
  const { patientId, specialistId, physicianId } = scene;

  step('The EHR subscribes to the case: its states, questions for the physician, the opinion’s release');
  const endpoint = await receiver.start();
  show(`the EHR's receiver listens at ${endpoint}`);
  const subscriptions = await receiver.follow(serviceRequestId);
  for (const [topic, id] of subscriptions) {
    show(`Subscription/${id}: ${topic}, ServiceRequest?_id=${serviceRequestId}, rest-hook, id-only: active`);
  }

  step('The specialist drafts the opinion: the report and its letter (only they and the staff see drafts)');
  const answers = [
    'The mass is most likely a primary adenocarcinoma; the biopsy should confirm it.',
    'Surgery first: the tumour is resectable and the patient fit for it; chemotherapy after, depending on the nodes.',
    'Yes: a PET-CT should stage the mediastinum before any decision.',
    'Only if the PET-CT shows it active; then by EBUS-guided needle aspiration.',
    'Resection is indicated; a lobectomy by video-assisted thoracoscopic surgery.',
  ];
  const sections = [
    {
      ...letterSection('reviewed', 'The CT and MR studies, the medical records and the radiology pre-review.'),
      // The case the letter belongs to (a letter names its ServiceRequest, or it belongs to no case).
      entry: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    },
    ...QUESTIONS.map((_question, index) => letterSection('answer', answers[index] ?? '', index + 1)),
    letterSection('discussion', 'The lesion has grown by 2 mm in a year; its solid part is below 5 mm.'),
  ];
  const letter = await specialist.fhir('POST', 'Composition', {
    resourceType: 'Composition',
    status: 'preliminary',
    type: LOINC_CONSULTATION,
    subject: { reference: `Patient/${patientId}` },
    date: new Date().toISOString(),
    author: [{ reference: `Practitioner/${specialistId}` }],
    title: 'Second-opinion consultation',
    section: sections,
  });
  const report = await specialist.fhir('POST', 'DiagnosticReport', {
    resourceType: 'DiagnosticReport',
    status: 'preliminary',
    code: LOINC_CONSULTATION,
    subject: { reference: `Patient/${patientId}` },
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    resultsInterpreter: [{ reference: `Practitioner/${specialistId}` }],
    extension: [{ url: LETTER_LINK, valueReference: { reference: `Composition/${letter.id}` } }],
    conclusion: 'Adenocarcinoma in situ is most likely; resection or a short-interval CT.',
  });
  show(`DiagnosticReport/${report.id} and Composition/${letter.id}, preliminary`);
  const ehrSees = await cast.ehr.request('GET', `DiagnosticReport/${report.id}`);
  const physician = await cast.physician();
  const physicianSees = await physician.request('GET', `DiagnosticReport/${report.id}`);
  show(
    `the EHR (a system client) may read it: HTTP ${ehrSees.status}; the physician may not: HTTP ${physicianSees.status}`,
  );
  if (physicianSees.status !== 404) {
    throw new Error(`the physician read the draft report: HTTP ${physicianSees.status}`);
  }

  step('The specialist asks the physician a question: the case waits for the answer');
  const question = await specialist.fhir('POST', 'Communication', {
    resourceType: 'Communication',
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    partOf: [{ reference: `Task/${coordinationId}` }],
    recipient: [{ reference: `Practitioner/${physicianId}` }],
    sent: new Date().toISOString(),
    payload: [{ contentString: 'Was the patient ever a smoker, and for how many pack-years?' }],
  });
  show(`Communication/${question.id} to Practitioner/${physicianId}, written by ${writer(question)}`);
  const waiting = await caseIn(scene, 'awaiting-information');
  const paused = await coordinator.until(async () => {
    const [offer] = withTaskCode(await coordinator.search(`Task?part-of=Task/${coordinationId}`), 'specialist-opinion');
    return offer?.status === 'on-hold' ? offer : undefined;
  }, 'the specialist’s Task on hold');
  show(
    `case ${stateOf(waiting)}; the specialist's Task/${paused.id} ${paused.status} (its clock stopped); the physician is e-mailed (link only)`,
  );
  await receiver.told('information-requested', 'the question');
  await receiver.told('case-state-changed', 'the case waits for information');

  step('The physician reads the question and answers it');
  const asked = await physician.fhir('GET', `Communication/${question.id}`);
  show(`the question: "${asked.payload?.[0]?.contentString}"`);
  const answer = await physician.fhir('POST', 'Communication', {
    resourceType: 'Communication',
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    inResponseTo: [{ reference: `Communication/${question.id}` }],
    recipient: [{ reference: `Practitioner/${specialistId}` }],
    sent: new Date().toISOString(),
    payload: [{ contentString: 'A former smoker: 30 pack-years, stopped 12 years ago.' }],
  });
  show(`Communication/${answer.id} in response, written by ${writer(answer)}`);
  const resumed = await caseIn(scene, 'specialist-review');
  const running = await coordinator.until(async () => {
    const [offer] = withTaskCode(await coordinator.search(`Task?part-of=Task/${coordinationId}`), 'specialist-opinion');
    return offer?.status === 'in-progress' ? offer : undefined;
  }, 'the specialist’s Task running again');
  show(`case ${stateOf(resumed)}; Task/${running.id} ${running.status}, due ${running.restriction?.period?.end}`);
  await receiver.told('case-state-changed', 'the case back with the specialist');

  step('The specialist submits before writing the recommendation: refused, with the reason');
  await submit(scene);
  const refused = await coordinator.until(async () => {
    const task = await coordinator.fhir('GET', `Task/${coordinationId}`);
    return stateOf(task) === 'specialist-review' && /not complete/.test(task.statusReason?.text ?? '')
      ? task
      : undefined;
  }, 'the refused submission');
  show(`case ${stateOf(refused)}: ${refused.statusReason.text}`);

  step('The recommendation written, submitted again: the coordinators get an approval Task');
  await specialist.change(`Composition/${letter.id}`, (composition) => ({
    ...composition,
    section: [
      ...composition.section,
      letterSection('recommendation', 'Discuss resection at the thoracic tumour board.'),
    ],
  }));
  await submit(scene);
  await caseIn(scene, 'report-review');
  const approval = await coordinator.until(
    async () =>
      withTaskCode(await coordinator.search(`Task?part-of=Task/${coordinationId}`), 'approve').find(
        (task) => task.status === 'requested',
      ),
    'the approval Task',
  );
  show(`case report-review; Task/${approval.id} (approve) focus ${approval.focus?.reference}`);
  await receiver.told('case-state-changed', 'the report in review');

  step('The coordinator returns it once, with a reason');
  await coordinator.change(`Task/${approval.id}`, (task) => ({
    ...task,
    status: 'rejected',
    statusReason: { text: 'Name the pre-review report in the summary.' },
  }));
  const returned = await caseIn(scene, 'specialist-review');
  show(`case ${stateOf(returned)}: ${returned.statusReason?.text}`);
  await receiver.told('case-state-changed', 'the report returned');

  step('Corrected and submitted again; the coordinator approves');
  await specialist.change(`Composition/${letter.id}`, (composition) => ({
    ...composition,
    section: composition.section.map((section: Resource) =>
      section.code?.coding?.[0]?.code === 'reviewed'
        ? {
            ...section,
            ...letterSection(
              'reviewed',
              'The CT and MR studies, the medical records and the radiology pre-review report.',
            ),
          }
        : section,
    ),
  }));
  await submit(scene);
  await caseIn(scene, 'report-review');
  await receiver.told('case-state-changed', 'the report in review again');
  await coordinator.until(
    async () => (await coordinator.fhir('GET', `Task/${approval.id}`)).status === 'requested',
    'the approval Task open again',
  );
  await coordinator.change(`Task/${approval.id}`, (task) => ({
    ...task,
    status: 'completed',
    statusReason: undefined,
  }));
  const released = await caseIn(scene, 'report-released');
  const outputs = (released.output ?? []).map((output: Resource) => output.valueReference?.reference);
  show(
    `case report-released; the coordination Task's output: ${outputs.join(', ')}; the physician is e-mailed (link only)`,
  );
  await receiver.told('case-state-changed', 'the release');
  return { reportId: String(report.id), letterId: String(letter.id), approvalId: String(approval.id) };
}
