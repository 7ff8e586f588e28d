/**
 * `npm run demo`: plays a whole second-opinion case against a RUNNING hub, through its FHIR API and
 * its DICOM listener, each party as itself: the patient checks eligibility and registers on the
 * service's registration website, the physician's EHR sends the referral Bundle and the records (both
 * SMART Backend Services clients, private_key_jwt), a CT and an MR study arrive by C-STORE, the
 * coordinator (a person signing in: authorization code + PKCE + TOTP) accepts the case and assigns the
 * pre-review, the radiologist completes it, the hub matches a specialist (from a small roster the
 * coordinator keeps on the hub) and that specialist signs in and accepts. Then the opinion to the end
 * (opinion.ts, after-release.ts): the EHR subscribes to the case with a receiver of its own on
 * 127.0.0.1, the specialist drafts and asks the physician a question, the physician (a person signing
 * in, not their EHR) answers, the submission is refused once, returned once and approved, the EHR is
 * told and fetches the PDF, the physician reads the report (which releases it to the patient), asks
 * about it and is answered, and the specialist's addendum is approved. Then a patient from New Mexico
 * is turned away before registration. Every result is polled from the API and printed.
 *
 * First register the parties in the hub's database (setup.ts), with the hub's DATA_DIR/DATABASE_URL;
 * the hub must allow notifications to this machine:
 *   npm run demo:setup        (embedded database: while the hub is stopped; PostgreSQL: any time)
 *   SUBSCRIPTION_ALLOWED_NETWORKS=127.0.0.1/32 npm start
 *   npm run demo -- [--url http://127.0.0.1:8080] [--dimse-host 127.0.0.1] [--dimse-port 11112]
 *                   [--called-ae HUB] [--calling-ae DEMO] [--timeout-seconds 180]
 *                   [--credentials DATA_DIR/demo/credentials.json]
 * or the same through HUB_URL, DIMSE_HOST, DIMSE_PORT, DIMSE_CALLED_AE, DIMSE_CALLING_AE, and DATA_DIR
 * (default ./data) for the credentials file. Works with AUTH_REQUIRED=true (the default) or false.
 * Needs dcmtk (storescu, dcmodify) and pydicom's test files (python3-pydicom). Exits 1 on any failure,
 * naming the step.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { discover } from './auth.ts';
import { Cast } from './cast.ts';
import { recordsPdf, sendStudies, studyFile } from './materials.ts';
import { byCaseIdentifier, parameter, stateOf, withTaskCode } from './client.ts';
import type { DemoClient, Resource } from './client.ts';
import { playAfterRelease } from './after-release.ts';
import { QUESTIONS, playOpinion } from './opinion.ts';
import { credentialsFile, readCredentials } from './parties.ts';
import { currentStep, show, step, writer } from './print.ts';
import { EhrReceiver } from './receiver.ts';
import {
  NPI_SYSTEM,
  REFERRING_PHYSICIAN,
  ensureRadiologist,
  ensureReferringPhysician,
  ensureRoster,
} from './roster.ts';

// eslint-disable-next-line no-restricted-properties -- a client of the hub, not the hub: its own settings
const env = process.env;
const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: env.HUB_URL ?? 'http://127.0.0.1:8080' },
    'dimse-host': { type: 'string', default: env.DIMSE_HOST ?? '127.0.0.1' },
    'dimse-port': { type: 'string', default: env.DIMSE_PORT ?? '11112' },
    'called-ae': { type: 'string', default: env.DIMSE_CALLED_AE ?? 'HUB' },
    'calling-ae': { type: 'string', default: env.DIMSE_CALLING_AE ?? 'DEMO' },
    'timeout-seconds': { type: 'string', default: '180' },
    credentials: { type: 'string', default: credentialsFile(path.resolve(env.DATA_DIR || 'data')) },
  },
});

const REFERENCE_SYSTEM = 'urn:hub:reference-number';
const ACSN = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] };
/** The physician's estimate of the records (a priced tier); the PDF that arrives has fewer pages. */
const ESTIMATED_RECORD_PAGES = 60;
const RECORD_PAGES = 4;

async function demo(): Promise<void> {
  const base = args.url.replace(/\/+$/, '');
  const timeoutMs = Number(args['timeout-seconds']) * 1000;
  const dimsePort = Number(args['dimse-port']);
  if (!Number.isInteger(dimsePort) || dimsePort < 1 || dimsePort > 65535) {
    throw new Error(`--dimse-port must be a TCP port, not "${args['dimse-port']}"`);
  }
  const credentials = await readCredentials(args.credentials);
  const runTag = randomBytes(3).toString('hex').toUpperCase();
  console.log(
    `Second-opinion hub demo against ${base} (DICOM ${args['dimse-host']}:${dimsePort}, AE ${args['called-ae']}), run ${runTag}`,
  );

  step('The parties authenticate');
  const endpoints = await discover(base);
  show(`SMART configuration: token endpoint ${endpoints.tokenUrl}, authorization endpoint ${endpoints.authorizeUrl}`);
  const cast = new Cast(base, timeoutMs, endpoints, credentials);
  const receiver = new EhrReceiver(cast.ehr);
  try {
    await cast.connectSystems();
    await playCase(cast, receiver, { dimsePort, runTag });
  } catch (err) {
    // The failure is what the demo reports; a sign-out failing after it would only hide it.
    await cast.signOut().catch(() => undefined);
    throw err;
  } finally {
    await receiver.stop();
  }
  await cast.signOut();
}

async function playCase(
  cast: Cast,
  receiver: EhrReceiver,
  { dimsePort, runTag }: { dimsePort: number; runTag: string },
): Promise<void> {
  const coordinator = await cast.person('coordinator', 'the coordinator');

  step('The specialists’ roster, the radiologist and the referring physician, kept on the hub by the coordinator');
  const roster = await ensureRoster(coordinator);
  for (const member of roster) {
    show(`${member.name}: ${member.summary} → Practitioner/${member.id}`);
  }
  const radiologistId = await ensureRadiologist(coordinator);
  show(`the radiologist → Practitioner/${radiologistId}`);
  const referrerId = await ensureReferringPhysician(coordinator);
  show(
    `the referring physician (NPI ${REFERRING_PHYSICIAN.npi}), who signs in to read the opinion → Practitioner/${referrerId}`,
  );

  step('$check-eligibility for a patient living in Massachusetts (the registration website)');
  const massachusetts = await cast.website.fhir(
    'GET',
    '$check-eligibility?country=US&state=MA&plannedReview=radiology',
  );
  show(
    `outcome ${parameter(massachusetts, 'outcome')?.valueCode}: ${parameter(massachusetts, 'message')?.valueString}`,
  );

  step('Patient/$register: the patient registers and gets a reference number and a letter');
  const birthDate = '1961-04-23';
  const registration = await cast.website.fhir('POST', 'Patient/$register', {
    resourceType: 'Parameters',
    parameter: [
      { name: 'requestId', valueString: `demo-${randomUUID()}` },
      {
        name: 'patient',
        resource: {
          resourceType: 'Patient',
          name: [{ family: 'Demoperson', given: ['Harriet'] }],
          birthDate,
          telecom: [{ system: 'email', value: 'harriet.demoperson@patient.example.org' }],
          address: [
            { use: 'home', line: ['12 Elm Street'], city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' },
          ],
        },
      },
    ],
  });
  const referenceNumber: string = parameter(registration, 'referenceNumber').valueIdentifier.value;
  const patientId: string = parameter(registration, 'patient').resource.id;
  show(
    `reference number ${parameter(registration, 'referenceNumberDisplay')?.valueString ?? referenceNumber} → Patient/${patientId}`,
  );
  show(`letter for the physician: ${parameter(registration, 'letterPdf')?.valueReference?.reference ?? '(none)'}`);

  step('The EHR sends the referral as one transaction Bundle');
  const accessionNumber = `DEMO${runTag}${randomBytes(2).toString('hex').toUpperCase()}`;
  const bundle = referralBundle(referenceNumber, accessionNumber);
  const result = await cast.ehr.fhir('POST', '', bundle);
  const locations: string[] = result.entry.map(
    (entry: { response: { location: string } }) => entry.response.location.split('/_history')[0],
  );
  for (const location of locations) {
    show(`created ${location}`);
  }
  const idAt = (index: number, what: string): string => {
    const id = locations[index]?.split('/')[1];
    if (!id) {
      throw new Error(`the transaction response has no location for the ${what} (entry ${index})`);
    }
    return id;
  };
  const serviceRequestId = idAt(2, 'ServiceRequest');
  const physicianId = idAt(0, 'referring Practitioner');
  if (physicianId !== referrerId) {
    throw new Error(
      `the referral's conditional create of the Practitioner (NPI ${REFERRING_PHYSICIAN.npi}) gave Practitioner/${physicianId}, not the physician's Practitioner/${referrerId}`,
    );
  }
  show(
    `the referral's Practitioner (created only if none has the NPI) is the physician's: Practitioner/${physicianId}`,
  );
  show(`ServiceRequest written by ${writer(await cast.ehr.fhir('GET', `ServiceRequest/${serviceRequestId}`))}`);

  step('Intake: eligibility, the quote and the expected materials (the coordinator’s worklist)');
  const submitted = await coordinator.until(async () => {
    const task = await byCaseIdentifier(coordinator, 'Task', `${serviceRequestId}/coordination`);
    return stateOf(task) === 'submitted' ? task : undefined;
  }, 'the case to be submitted');
  show(`coordination Task/${submitted.id}: ${stateOf(submitted)} (${submitted.status})`);
  await printQuote(coordinator, serviceRequestId, submitted);
  const expected = await coordinator.search(`Task?part-of=Task/${submitted.id}`);
  for (const task of withTaskCode(expected, 'expect-material')) {
    show(`expecting ${task.input?.[0]?.valueCoding?.code}: Task/${task.id} (${task.status})`);
  }

  step('The coordinator accepts the case (businessStatus awaiting-materials)');
  const move = await coordinator.change(`Task/${submitted.id}`, (task) => ({
    ...task,
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'awaiting-materials' }] },
  }));
  show(`written by ${writer(move)}`);
  const accepted = await coordinator.until(async () => {
    const task = await coordinator.fhir('GET', `Task/${submitted.id}`);
    return stateOf(task) === 'awaiting-materials' && task.status === 'accepted' ? task : undefined;
  }, 'the acceptance to be applied');
  show(`coordination Task: ${stateOf(accepted)} (${accepted.status})`);

  step(`The records arrive from the EHR: a ${RECORD_PAGES}-page PDF as Binary + DocumentReference`);
  const pdf = await recordsPdf(RECORD_PAGES);
  const binary = await cast.ehr.fhir('POST', 'Binary', {
    resourceType: 'Binary',
    contentType: 'application/pdf',
    data: Buffer.from(pdf).toString('base64'),
  });
  const document = await cast.ehr.fhir('POST', 'DocumentReference', {
    resourceType: 'DocumentReference',
    status: 'current',
    type: { text: 'Discharge summary' },
    subject: { reference: `Patient/${patientId}` },
    content: [
      { attachment: { contentType: 'application/pdf', url: `Binary/${binary.id}`, title: 'Discharge summary' } },
    ],
    context: { related: [{ reference: `ServiceRequest/${serviceRequestId}` }] },
  });
  show(`Binary/${binary.id} (${pdf.length} bytes), DocumentReference/${document.id}`);
  const counted = await cast.ehr.until(async () => {
    const current = await cast.ehr.fhir('GET', `DocumentReference/${document.id}`);
    return current.extension?.find((extension: { url: string }) => extension.url === 'urn:hub:extension:page-count');
  }, 'the page count');
  show(`page count read from the PDF: ${counted.valueInteger}`);
  await expectMaterial(coordinator, serviceRequestId, 'records');

  step('A CT and an MR study arrive by DICOM C-STORE (storescu)');
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'hub-demo-'));
  try {
    // The CT carries the request's accession number; the MR the reference number as PatientID.
    const ct = await studyFile(workDir, 'CT_small.dcm', {
      accessionNumber,
      patientId: `MRN${runTag}`,
      birthDate: birthDate.replaceAll('-', ''),
    });
    const mr = await studyFile(workDir, 'MR_small.dcm', {
      accessionNumber: `OTHER${runTag}`,
      patientId: referenceNumber,
      birthDate: birthDate.replaceAll('-', ''),
    });
    await sendStudies(
      { host: args['dimse-host'], port: dimsePort, calledAe: args['called-ae'], callingAe: args['calling-ae'] },
      [ct.path, mr.path],
    );
    for (const [label, study] of [
      ['CT (by accession number)', ct],
      ['MR (by reference number as PatientID)', mr],
    ] as const) {
      const imagingStudy = await coordinator.until(async () => {
        const [found] = await coordinator.search(
          `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${study.studyInstanceUid}`)}`,
        );
        return found?.basedOn?.[0]?.reference === `ServiceRequest/${serviceRequestId}` ? found : undefined;
      }, `the ${label} to be matched to the case`);
      show(`${label}: ImagingStudy/${imagingStudy.id} matched to ServiceRequest/${serviceRequestId}`);
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  await expectMaterial(coordinator, serviceRequestId, 'imaging');
  await printQuote(coordinator, serviceRequestId, await coordinator.fhir('GET', `Task/${submitted.id}`));

  step('Materials complete: the radiology pre-review');
  const preReview = await coordinator.until(
    async () => withTaskCode(await coordinator.search(`Task?part-of=Task/${submitted.id}`), 'pre-review-radiology')[0],
    'the pre-review Task',
  );
  show(
    `pre-review Task/${preReview.id} (${preReview.status}); case ${stateOf(await coordinator.fhir('GET', `Task/${submitted.id}`))}`,
  );
  await coordinator.change(`Task/${preReview.id}`, (task) => ({
    ...task,
    owner: { reference: `Practitioner/${radiologistId}` },
  }));
  show(`the coordinator assigns it to Practitioner/${radiologistId}`);
  const radiologist = await cast.person('radiologist', 'the radiologist');
  const report = await radiologist.fhir('POST', 'DiagnosticReport', {
    resourceType: 'DiagnosticReport',
    status: 'final',
    code: { text: 'Radiology pre-review' },
    subject: { reference: `Patient/${patientId}` },
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    performer: [{ reference: `Practitioner/${radiologistId}` }],
    conclusion: 'Images adequate for specialist review.',
  });
  await radiologist.change(`Task/${preReview.id}`, (task) => ({ ...task, status: 'in-progress' }));
  const completed = await radiologist.change(`Task/${preReview.id}`, (task) => ({
    ...task,
    status: 'completed',
    output: [{ type: { text: 'report' }, valueReference: { reference: `DiagnosticReport/${report.id}` } }],
  }));
  show(
    `completed by Practitioner/${radiologistId} with DiagnosticReport/${report.id}; written by ${writer(completed)}`,
  );

  step('Matching: the specialist’s Task and its due date');
  const offer = await coordinator.until(
    async () => withTaskCode(await coordinator.search(`Task?part-of=Task/${submitted.id}`), 'specialist-opinion')[0],
    'the specialist’s Task',
  );
  const specialistMember = roster.find((member) => `Practitioner/${member.id}` === offer.owner?.reference);
  show(
    `Task/${offer.id} offered to ${specialistMember?.name ?? offer.owner?.reference}, due ${offer.restriction?.period?.end} (10 business days, US Eastern)`,
  );
  show(
    `the offer's note, which every member of the case reads: ${(offer.note ?? []).map((note: { text: string }) => note.text).join(' ')}`,
  );
  // Why, naming the other specialists: a Provenance of the offer, the coordinators' reading only.
  const ranking = await coordinator.search(`Provenance?target=Task/${offer.id}&_sort=-recorded`);
  console.log('   ranking explanation (a Provenance only coordinators read):');
  for (const line of String(ranking[0]?.reason?.[0]?.text ?? '').split('\n')) {
    show(`  ${line}`);
  }

  step('The specialist accepts');
  const specialist = await cast.person(
    cast.specialistKey(offer.owner?.reference),
    `the specialist (${offer.owner?.reference})`,
  );
  const acceptance = await specialist.change(`Task/${offer.id}`, (task) => ({ ...task, status: 'accepted' }));
  show(`written by ${writer(acceptance)}`);
  const inReview = await coordinator.until(async () => {
    const task = await coordinator.fhir('GET', `Task/${submitted.id}`);
    return stateOf(task) === 'specialist-review' ? task : undefined;
  }, 'specialist review');
  show(
    `case ${stateOf(inReview)} (${inReview.status}); status e-mails went to Practitioner/${physicianId} and Patient/${patientId} (links only)`,
  );

  const scene = {
    cast,
    coordinator,
    specialist,
    receiver,
    coordinationId: String(submitted.id),
    serviceRequestId,
    patientId,
    specialistId: String(offer.owner?.reference).replace('Practitioner/', ''),
    physicianId,
  };
  await playAfterRelease(scene, await playOpinion(scene));

  step('A second patient, living in New Mexico (the registration website)');
  const newMexico = await cast.website.fhir('GET', '$check-eligibility?country=US&state=NM');
  show(
    `$check-eligibility: ${parameter(newMexico, 'outcome')?.valueCode}: ${parameter(newMexico, 'message')?.valueString}`,
  );
  if (parameter(newMexico, 'outcome')?.valueCode !== 'ineligible') {
    throw new Error('New Mexico should be ineligible under the default policy');
  }
  const refused = await cast.website.request('POST', 'Patient/$register', {
    resourceType: 'Parameters',
    parameter: [
      {
        name: 'patient',
        resource: {
          resourceType: 'Patient',
          name: [{ family: 'Demoperson', given: ['Mateo'] }],
          birthDate: '1958-09-02',
          telecom: [{ system: 'email', value: 'mateo.demoperson@patient.example.org' }],
          address: [{ use: 'home', city: 'Santa Fe', state: 'NM', postalCode: '87501', country: 'US' }],
        },
      },
    ],
  });
  const issues: Resource[] = refused.body?.issue ?? [];
  const byPolicy = issues.some(
    (issue) =>
      issue.code === 'business-rule' &&
      issue.details?.coding?.some((coding: Resource) => coding.system === 'urn:hub:eligibility-reason'),
  );
  if (refused.status < 400 || !byPolicy) {
    throw new Error(
      `Patient/$register should refuse a New Mexico resident by the jurisdiction policy; got HTTP ${refused.status} ${JSON.stringify(issues)}`,
    );
  }
  show(
    `Patient/$register: HTTP ${refused.status}, not registered: ${issues.map((issue) => issue.details?.text).join(' ')}`,
  );

  console.log(
    `\nDemo finished: ServiceRequest/${serviceRequestId}'s opinion was released, read by its physician and so released to the patient, clarified and amended; the New Mexico applicant was declined before registration.`,
  );
}

function referralBundle(referenceNumber: string, accessionNumber: string): Resource {
  const patient = `Patient?identifier=${REFERENCE_SYSTEM}|${referenceNumber}`;
  const reference = { system: REFERENCE_SYSTEM, value: referenceNumber };
  const physician = 'urn:uuid:9d1e3a52-1c7e-4d0b-8a55-5e6f00000001';
  const questions = 'urn:uuid:9d1e3a52-1c7e-4d0b-8a55-5e6f00000002';
  const material = (code: string, url: string, value: number) => ({
    coding: [{ system: 'urn:hub:material', code }],
    extension: [{ url, valueInteger: value }],
  });
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: physician,
        resource: {
          resourceType: 'Practitioner',
          identifier: [{ system: NPI_SYSTEM, value: REFERRING_PHYSICIAN.npi }],
          name: [{ prefix: ['Dr.'], family: 'Okonkwo', given: ['Adaeze'] }],
          telecom: [{ system: 'email', value: REFERRING_PHYSICIAN.email }],
        },
        request: {
          method: 'POST',
          url: 'Practitioner',
          ifNoneExist: `identifier=${NPI_SYSTEM}|${REFERRING_PHYSICIAN.npi}`,
        },
      },
      {
        fullUrl: questions,
        resource: {
          resourceType: 'QuestionnaireResponse',
          status: 'completed',
          subject: { reference: patient },
          author: { reference: physician },
          item: [
            {
              linkId: 'question',
              text: 'Your questions for the specialist',
              answer: QUESTIONS.map((valueString) => ({ valueString })),
            },
          ],
        },
        request: { method: 'POST', url: 'QuestionnaireResponse' },
      },
      {
        fullUrl: 'urn:uuid:9d1e3a52-1c7e-4d0b-8a55-5e6f00000003',
        resource: {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          priority: 'routine',
          category: [
            {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/v2-0336', code: 'S', display: 'Second Opinion' },
              ],
            },
          ],
          code: { text: 'Second opinion' },
          identifier: [reference, { type: ACSN, system: 'urn:example:ris', value: accessionNumber }],
          requisition: reference,
          subject: { reference: patient },
          requester: { reference: physician },
          supportingInfo: [{ reference: questions }],
          orderDetail: [
            material('imaging', 'urn:hub:extension:imaging-sites', 2),
            material('records', 'urn:hub:extension:record-pages', ESTIMATED_RECORD_PAGES),
          ],
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
    ],
  };
}

async function printQuote(client: DemoClient, serviceRequestId: string, coordination: Resource): Promise<void> {
  const lines = (await client.search(`ChargeItem?subject=${coordination.for?.reference ?? ''}`)).filter((item) =>
    (item.identifier ?? []).some((identifier: { value?: string }) =>
      identifier.value?.startsWith(`${serviceRequestId}/charge/`),
    ),
  );
  console.log('   quote:');
  for (const item of lines.sort((a, b) =>
    String(a.code?.coding?.[0]?.code).localeCompare(String(b.code?.coding?.[0]?.code)),
  )) {
    const price = item.priceOverride ? `$${item.priceOverride.value.toFixed(2)}` : '(manual)';
    show(
      `  ${String(item.code?.coding?.[0]?.display ?? item.code?.text).padEnd(60)} × ${String(item.quantity?.value ?? 1).padStart(2)}  ${price.padStart(10)}  ${item.status}`,
    );
  }
  const quote = (coordination.extension ?? []).find(
    (extension: { url: string }) => extension.url === 'urn:hub:extension:quote',
  );
  const total = quote?.extension?.find((part: { url: string }) => part.url === 'total')?.valueMoney;
  const manual = quote?.extension?.find((part: { url: string }) => part.url === 'manualQuote')?.valueString;
  show(manual ? `  manual quote needed: ${manual}` : `  total $${total?.value?.toFixed(2)} ${total?.currency ?? ''}`);
}

async function expectMaterial(client: DemoClient, serviceRequestId: string, kind: string): Promise<void> {
  const task = await client.until(async () => {
    const current = await byCaseIdentifier(client, 'Task', `${serviceRequestId}/expect-material/${kind}`);
    return current?.status === 'completed' ? current : undefined;
  }, `the ${kind} to be complete`);
  show(
    `expected ${kind}: Task/${task.id} completed with ${(task.output ?? []).filter((output: { valueReference?: unknown }) => output.valueReference).length} item(s)`,
  );
}

demo().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`\nDemo failed at ${currentStep()}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
