/**
 * The opinion after its release (docs/case-workflow.md, "The opinion", steps 6 to 9), each party with
 * its own token: the EHR is told and fetches the PDF, which releases nothing; the physician reads the
 * report, which moves the case to report-accessed and has the patient e-mailed; the physician asks
 * about the report and the specialist answers (a clarification); the specialist writes an addendum,
 * which a coordinator approves (the report `appended`, a new PDF), and the EHR is told again.
 */
import type { DemoClient, Resource } from './client.ts';
import { stateOf, withTaskCode } from './client.ts';
import type { OpinionScene, ReleasedOpinion } from './opinion.ts';
import { LOINC_CONSULTATION, caseIn, letterSection } from './opinion.ts';
import { show, step, writer } from './print.ts';
import { TOPICS } from './receiver.ts';

/** A PDF Binary as `client` downloads it: its size; anything but a PDF stops the demo. */
async function fetchPdf(client: DemoClient, url: string): Promise<number> {
  const { status, contentType, bytes } = await client.download(url, 'application/pdf');
  if (status !== 200 || !contentType.startsWith('application/pdf') || bytes.subarray(0, 5).toString() !== '%PDF-') {
    throw new Error(`GET /fhir/${url} as a PDF: HTTP ${status} ${contentType}`);
  }
  return bytes.length;
}

/** The coordination Task's reason, when it says that a move was refused: the demo stops there. */
function refusal(task: Resource): string | undefined {
  const text: string | undefined = task.statusReason?.text;
  return text !== undefined && /was refused/.test(text) ? text : undefined;
}

export async function playAfterRelease(scene: OpinionScene, released: ReleasedOpinion): Promise<void> {
  const { cast, coordinator, specialist, receiver, coordinationId, serviceRequestId } = scene;
  const { patientId, specialistId, physicianId } = scene;
  const { reportId, letterId, approvalId } = released;
  const physician = await cast.physician();

  step('The EHR is told of the release, finds the report from the notification and fetches the PDF');
  const releasedEvent = await receiver.told('opinion-released', 'the release of the opinion');
  if (releasedEvent.focus !== `DiagnosticReport/${reportId}`) {
    throw new Error(
      `the opinion-released event names ${releasedEvent.focus ?? 'no focus'}, not DiagnosticReport/${reportId}`,
    );
  }
  const final = await cast.ehr.fhir('GET', releasedEvent.focus);
  const firstPdf = String(final.presentedForm?.[0]?.url);
  show(`${releasedEvent.focus}: ${final.status}; ${firstPdf}: ${await fetchPdf(cast.ehr, firstPdf)} bytes of PDF`);
  const still = await coordinator.fhir('GET', `Task/${coordinationId}`);
  show(
    `the EHR's retrieval is not the physician's reading: the case stays ${stateOf(still)}; the patient is told once their physician has read it`,
  );

  step('The physician reads the report: the case is report-accessed and the patient is e-mailed');
  const read = await physician.fhir('GET', `DiagnosticReport/${reportId}`);
  show(`DiagnosticReport/${reportId} (${read.status}) read by the physician: "${read.conclusion}"`);
  show(`${firstPdf}: ${await fetchPdf(physician, firstPdf)} bytes of PDF, downloaded by the physician`);
  const accessed = await caseIn(scene, 'report-accessed');
  show(`case ${stateOf(accessed)}: the report is released to Patient/${patientId}, who is e-mailed once (link only)`);
  await receiver.told('case-state-changed', 'the physician’s reading');

  step('A clarification: the physician asks about the report, the specialist answers');
  const clarification = await physician.fhir('POST', 'Communication', {
    resourceType: 'Communication',
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    about: [{ reference: `DiagnosticReport/${reportId}` }],
    recipient: [{ reference: `Practitioner/${specialistId}` }],
    sent: new Date().toISOString(),
    payload: [{ contentString: 'Should the PET-CT come before or after the tumour board?' }],
  });
  show(
    `Communication/${clarification.id} about DiagnosticReport/${reportId}, written by ${writer(clarification)}; the specialist is e-mailed (link only)`,
  );
  const asked = await specialist.until(
    async () =>
      (await specialist.search(`Communication?based-on=ServiceRequest/${serviceRequestId}`)).find(
        (message) => message.id === clarification.id,
      ),
    'the clarification in the specialist’s view of the case',
  );
  show(`the specialist reads it: "${asked.payload?.[0]?.contentString}"`);
  const reply = await specialist.fhir('POST', 'Communication', {
    resourceType: 'Communication',
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    inResponseTo: [{ reference: `Communication/${clarification.id}` }],
    recipient: [{ reference: `Practitioner/${physicianId}` }],
    sent: new Date().toISOString(),
    payload: [{ contentString: 'Before: the board decides on the PET-CT’s staging.' }],
  });
  const answered = await physician.fhir('GET', `Communication/${reply.id}`);
  show(
    `Communication/${reply.id} in response, written by ${writer(reply)}; the physician is e-mailed and reads it: "${answered.payload?.[0]?.contentString}"`,
  );

  step('An amendment: the specialist writes an addendum and submits it through the approval Task');
  const addendum = await specialist.fhir('POST', 'Composition', {
    resourceType: 'Composition',
    status: 'preliminary',
    type: LOINC_CONSULTATION,
    subject: { reference: `Patient/${patientId}` },
    date: new Date().toISOString(),
    author: [{ reference: `Practitioner/${specialistId}` }],
    title: 'Addendum to the second-opinion consultation',
    relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${letterId}` } }],
    section: [
      {
        ...letterSection('addendum', 'The PET-CT should come before the tumour board, which decides on its staging.'),
        // The case the addendum belongs to, as for the letter.
        entry: [{ reference: `ServiceRequest/${serviceRequestId}` }],
      },
    ],
  });
  const hidden = await physician.request('GET', `Composition/${addendum.id}`);
  show(
    `Composition/${addendum.id} (appends Composition/${letterId}), a draft: the physician gets HTTP ${hidden.status}`,
  );
  await specialist.change(`Task/${approvalId}`, (task) => ({
    ...task,
    status: 'requested',
    focus: { reference: `Composition/${addendum.id}` },
    statusReason: undefined,
  }));
  const review = await coordinator.until(async () => {
    const task = await coordinator.fhir('GET', `Task/${approvalId}`);
    if (task.status === 'requested' && /addendum/.test(task.description ?? '')) {
      return task;
    }
    const reason = refusal(await coordinator.fhir('GET', `Task/${coordinationId}`));
    if (reason) {
      throw new Error(reason);
    }
    return undefined;
  }, 'the addendum’s review Task');
  show(
    `Task/${review.id} (approve) ${review.status}, focus ${review.focus?.reference}: "${review.description}", due ${review.restriction?.period?.end}`,
  );

  step('The coordinator approves the addendum: the report appended, a new PDF, the EHR told again');
  await coordinator.change(`Task/${approvalId}`, (task) => ({ ...task, status: 'completed', statusReason: undefined }));
  const appended = await coordinator.until(async () => {
    const current = await coordinator.fhir('GET', `DiagnosticReport/${reportId}`);
    if (current.status === 'appended') {
      return current;
    }
    const reason = refusal(await coordinator.fhir('GET', `Task/${coordinationId}`));
    if (reason) {
      throw new Error(reason);
    }
    return undefined;
  }, 'the report appended');
  const coordination = await coordinator.fhir('GET', `Task/${coordinationId}`);
  const letterDocument = (coordination.output ?? []).find((output: Resource) =>
    output.type?.coding?.some((coding: Resource) => coding.code === 'opinion-letter'),
  )?.valueReference?.reference;
  show(
    `DiagnosticReport/${reportId} ${appended.status}, issued ${appended.issued}; the letter is now ${letterDocument} (the earlier one superseded); case ${stateOf(coordination)}`,
  );
  show(
    'the physician is e-mailed that the report was amended, and the patient, whose report it is now, that it was updated',
  );
  const amendedEvent = await receiver.told('opinion-released', 'the addendum');
  const current = await cast.ehr.fhir('GET', String(amendedEvent.focus));
  const newPdf = String(current.presentedForm?.[0]?.url);
  if (newPdf === firstPdf) {
    throw new Error(`the appended report still presents ${firstPdf}`);
  }
  show(
    `${amendedEvent.focus}: ${current.status}; ${newPdf}: ${await fetchPdf(cast.ehr, newPdf)} bytes of PDF, fetched by the EHR`,
  );
  const tasks = withTaskCode(await coordinator.search(`Task?part-of=Task/${coordinationId}`), 'approve');
  show(
    `the approval Task${tasks.length === 1 ? '' : 's'}: ${tasks.map((task) => `Task/${task.id} ${task.status}`).join(', ')}`,
  );

  step('What the EHR was told, and its subscriptions ended');
  receiver.print();
  for (const topic of TOPICS) {
    const numbers = receiver
      .events(topic)
      .map((event) => event.eventNumber ?? 0)
      .sort((a, b) => a - b);
    show(`${topic}: ${numbers.length} event(s), numbered ${numbers.join(', ')}`);
  }
  await receiver.unsubscribe();
  show('the EHR deleted its subscriptions');
}
