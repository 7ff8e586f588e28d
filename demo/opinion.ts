/** The opinion, played by the specialist, the coordinator and the EHR, each with its own token. */
import type { Cast } from './cast.ts';
import type { DemoClient, Resource } from './client.ts';
import { stateOf, withTaskCode } from './client.ts';
import { show, step } from './print.ts';

/** The physician's questions (the referral's QuestionnaireResponse), which the letter answers one by one. */
export const QUESTIONS = [
  'Is the mass in the left lung malignant?',
  'Would you recommend surgery or chemotherapy for this cancer?',
  'Is a PET-CT needed before deciding?',
  'Does the enlarged mediastinal node need a biopsy?',
  'Is resection indicated, and if so, which approach would you choose?',
];

const LETTER_SECTION = 'urn:hub:letter-section';
const QUESTION_NUMBER = 'urn:hub:extension:question-number';
const LETTER_LINK = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
const LOINC_CONSULTATION = { coding: [{ system: 'http://loinc.org', code: '11488-4', display: 'Consultation note' }] };

function letterSection(code: string, text: string, questionNumber?: number): Resource {
  return {
    code: { coding: [{ system: LETTER_SECTION, code }] },
    ...(questionNumber ? { extension: [{ url: QUESTION_NUMBER, valueUnsignedInt: questionNumber }] } : {}),
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${text}</p></div>` },
  };
}

/** The opinion: the specialist's draft, a submission returned once, the approval, the PDF. */
export async function playOpinion(
  cast: Cast,
  ids: {
    coordinator: DemoClient;
    specialist: DemoClient;
    coordinationId: string;
    serviceRequestId: string;
    patientId: string;
    specialistId: string;
  },
): Promise<void> {
  const { coordinator, specialist, coordinationId, serviceRequestId, patientId, specialistId } = ids;
  const caseState = (wanted: string) =>
    coordinator.until(async () => {
      const task = await coordinator.fhir('GET', `Task/${coordinationId}`);
      return stateOf(task) === wanted ? task : undefined;
    }, `the case in ${wanted}`);

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
  show(`the EHR (a system client) may read it: HTTP ${ehrSees.status}; the physician and patient may not`);

  step('The specialist submits before writing the recommendation: refused, with the reason');
  await specialist.change(`Task/${coordinationId}`, (task) => ({
    ...task,
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-review' }] },
  }));
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
  await specialist.change(`Task/${coordinationId}`, (task) => ({
    ...task,
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-review' }] },
  }));
  await caseState('report-review');
  const approval = await coordinator.until(
    async () =>
      withTaskCode(await coordinator.search(`Task?part-of=Task/${coordinationId}`), 'approve').find(
        (task) => task.status === 'requested',
      ),
    'the approval Task',
  );
  show(`case report-review; Task/${approval.id} (approve) focus ${approval.focus?.reference}`);

  step('The coordinator returns it once, with a reason');
  await coordinator.change(`Task/${approval.id}`, (task) => ({
    ...task,
    status: 'rejected',
    statusReason: { text: 'Name the pre-review report in the summary.' },
  }));
  const returned = await caseState('specialist-review');
  show(`case ${stateOf(returned)}: ${returned.statusReason?.text}`);

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
  await specialist.change(`Task/${coordinationId}`, (task) => ({
    ...task,
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'report-review' }] },
  }));
  await caseState('report-review');
  await coordinator.until(
    async () => (await coordinator.fhir('GET', `Task/${approval.id}`)).status === 'requested',
    'the approval Task open again',
  );
  await coordinator.change(`Task/${approval.id}`, (task) => ({
    ...task,
    status: 'completed',
    statusReason: undefined,
  }));
  const released = await caseState('report-released');
  const outputs = (released.output ?? []).map((output: Resource) => output.valueReference?.reference);
  show(`case report-released; the coordination Task's output: ${outputs.join(', ')}`);

  step('The EHR finds the opinion from the Task it follows and fetches the PDF');
  const final = await cast.ehr.fhir('GET', String(outputs[0]));
  const pdf = await cast.ehr.request('GET', String(final.presentedForm?.[0]?.url), undefined, {
    accept: 'application/pdf',
  });
  show(
    `DiagnosticReport ${final.status}; ${final.presentedForm?.[0]?.url}: ${final.presentedForm?.[0]?.size} bytes of PDF (HTTP ${pdf.status})`,
  );
  const still = await coordinator.fhir('GET', `Task/${coordinationId}`);
  show(
    `the EHR's retrieval is not the physician's reading: the case stays ${stateOf(still)}; the patient is told once their physician has read it`,
  );
}
