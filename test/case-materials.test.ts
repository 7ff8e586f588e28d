/**
 * Materials arriving for a case, from the senders' side, against a real hub (PostgreSQL, Redis,
 * workers): cases are registered and referred through the FHIR API and go through the real intake;
 * imaging studies arrive over DIMSE C-STORE from dcmtk's storescu (pydicom's test files with the
 * matching attributes set by dcmodify); records as a Binary and a DocumentReference (a real PDF
 * made with pdf-lib); pathology as a Specimen. The test waits for the outbox, the
 * `fhir-resource-events` router and the `case-materials` worker, and reads the results over FHIR.
 * Finally every job is run again directly, twice, and must change nothing.
 */
import type { Patient } from '@medplum/fhirtypes';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PDFDocument } from 'pdf-lib';
import { readPart10, runDcmtk, storescuProfile } from './support/dicom/test-peer.ts';
import { HubRepository } from '../src/fhir/repository.ts';
import { runCaseMaterialStep } from '../src/workflow/jobs/case-materials.ts';
import type { WorkflowContext } from '../src/workflow/context.ts';
import { fhirFetch, startTestHub, WITH_WORKERS } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';
import {
  orderDetail,
  registerPatient as registerPatientAt,
  workflowContextOf,
  workflowSettled,
} from './support/case-fixtures.ts';
import type { Planned } from './support/case-fixtures.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const REFERENCE = 'urn:hub:reference-number';
const CASE_RESOURCE = 'urn:hub:case-resource';
const MATERIAL_COUNT = 'urn:hub:material-count';
const NPI = 'http://hl7.org/fhir/sid/us-npi';
const ACSN = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] };

/** The EHR's referral: the physician (conditional create), the questions and the request. */
function referralBundle(referenceNumber: string, planned: Planned, accessionNumber?: string) {
  const patient = `Patient?identifier=${REFERENCE}|${referenceNumber}`;
  const reference = { system: REFERENCE, value: referenceNumber };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:6a0d3c1e-6f1b-4a4e-9d10-0c8f2b7e5a01',
        resource: {
          resourceType: 'Practitioner',
          identifier: [{ system: NPI, value: '1234567893' }],
          name: [{ family: 'Okonkwo', given: ['Adaeze'] }],
        },
        request: { method: 'POST', url: 'Practitioner', ifNoneExist: `identifier=${NPI}|1234567893` },
      },
      {
        fullUrl: 'urn:uuid:6a0d3c1e-6f1b-4a4e-9d10-0c8f2b7e5a02',
        resource: {
          resourceType: 'QuestionnaireResponse',
          status: 'completed',
          subject: { reference: patient },
          item: [{ linkId: 'question', answer: [{ valueString: 'Is the lesion in the left lower lobe malignant?' }] }],
        },
        request: { method: 'POST', url: 'QuestionnaireResponse' },
      },
      {
        fullUrl: 'urn:uuid:6a0d3c1e-6f1b-4a4e-9d10-0c8f2b7e5a03',
        resource: {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0336', code: 'S' }] }],
          // R4 prr-1: orderDetail only with a code.
          code: { text: 'Second opinion' },
          identifier: [
            reference,
            ...(accessionNumber ? [{ type: ACSN, system: 'urn:example:ris', value: accessionNumber }] : []),
          ],
          requisition: reference,
          subject: { reference: patient },
          requester: { reference: 'urn:uuid:6a0d3c1e-6f1b-4a4e-9d10-0c8f2b7e5a01' },
          supportingInfo: [{ reference: 'urn:uuid:6a0d3c1e-6f1b-4a4e-9d10-0c8f2b7e5a02' }],
          orderDetail: orderDetail(planned),
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
    ],
  };
}

/** How long to wait for the workflow (it runs in the background, slowly on a loaded machine). */
const WAIT_MS = 90_000;

const dicomUid = (): string => `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`)}`;
const token = (): string => randomBytes(5).toString('hex').toUpperCase();

interface StudyAttributes {
  accessionNumber: string;
  patientId: string;
  birthDate?: string;
  otherPatientIds?: string;
}

interface Case {
  patientId: string;
  referenceNumber: string;
  serviceRequestId: string;
}

describe('materials arriving for a case', () => {
  let th: TestHub;
  let sql: pg.Client;
  let ctx: WorkflowContext;
  let workDir: string;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'case-materials-'));
    th = await startTestHub({
      db: 'postgres',
      env: { ...WITH_WORKERS, DIMSE_AE_TITLE: 'HUB', DIMSE_ALLOWED_CALLING_AE_TITLES: 'STORESCU' },
    });
    sql = new pg.Client({ connectionString: th.databaseUrl });
    await sql.connect();
    ctx = workflowContextOf(th);
  }, 60_000);

  afterAll(async () => {
    await sql?.end();
    await th?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  const read = async (reference: string): Promise<any> => {
    const response = await fhirFetch(`${th.fhir}/${reference}`);
    expect(response.status).toBe(200);
    return response.body;
  };
  const search = async (query: string): Promise<any[]> => {
    const response = await fhirFetch(`${th.fhir}/${query}${query.includes('?') ? '&' : '?'}_count=1000`);
    expect(response.status).toBe(200);
    return (response.body.entry ?? []).map((entry: { resource: unknown }) => entry.resource);
  };
  const byIdentifier = async (type: string, value: string): Promise<any | undefined> =>
    (await search(`${type}?identifier=${encodeURIComponent(`${CASE_RESOURCE}|${value}`)}`))[0];
  const expectTask = (c: Case, kind: string) => byIdentifier('Task', `${c.serviceRequestId}/expect-material/${kind}`);
  const charge = (c: Case, code: string) => byIdentifier('ChargeItem', `${c.serviceRequestId}/charge/${code}`);

  async function registerPatient(
    extra: Pick<Patient, 'identifier'> = {},
  ): Promise<{ id: string; referenceNumber: string }> {
    return registerPatientAt(th.fhir, {
      ...extra,
      name: [{ family: 'Quillfeather', given: ['Ottoline'] }],
      birthDate: '1961-04-23',
      telecom: [{ system: 'email', value: 'ottoline@example.org' }],
      address: [
        { use: 'home', line: ['12 Elm Street'], city: 'Boston', state: 'MA', postalCode: '02115', country: 'US' },
      ],
    });
  }

  /** A registered patient's referral, through the real intake until the case is submitted. */
  async function openCase(
    patient: { id: string; referenceNumber: string },
    planned: Planned,
    accessionNumber?: string,
  ): Promise<Case> {
    const response = await fhirFetch(th.fhir, {
      method: 'POST',
      body: referralBundle(patient.referenceNumber, planned, accessionNumber),
    });
    expect({ status: response.status, issue: response.body.issue }).toEqual({ status: 200, issue: undefined });
    const serviceRequestId = response.body.entry[2].response.location.split('/')[1];
    await until(
      async () =>
        (await byIdentifier('Task', `${serviceRequestId}/coordination`))?.businessStatus?.coding?.[0]?.code ===
        'submitted',
      'the case to be submitted',
      WAIT_MS,
    );
    return { patientId: patient.id, referenceNumber: patient.referenceNumber, serviceRequestId };
  }

  /** A CT instance of a new (or the given) study, with the attributes the matching reads. */
  async function ctInstance(
    attributes: StudyAttributes,
    studyInstanceUid = dicomUid(),
  ): Promise<{ path: string; studyInstanceUid: string }> {
    const path = join(workDir, `${token()}.dcm`);
    await copyFile(join(TEST_FILES, 'CT_small.dcm'), path);
    const set = [
      ['0020,000D', studyInstanceUid],
      ['0008,0050', attributes.accessionNumber],
      ['0010,0020', attributes.patientId],
      ['0010,0030', attributes.birthDate ?? '19000101'],
      ...(attributes.otherPatientIds ? [['0010,1000', attributes.otherPatientIds]] : []),
    ];
    const result = await runDcmtk(
      'dcmodify',
      ['-nb', '-gse', '-gin', ...set.flatMap(([tag, value]) => ['-i', `(${tag})=${value}`]), path],
      60_000,
    );
    expect(result).toMatchObject({ code: 0 });
    return { path, studyInstanceUid };
  }

  async function storescu(paths: readonly string[]): Promise<void> {
    const parts = await Promise.all(paths.map((path) => readPart10(path)));
    const profile = join(workDir, `${token()}.cfg`);
    await writeFile(profile, storescuProfile(parts, 'Materials'));
    const run = await runDcmtk(
      'storescu',
      ['-xf', profile, 'Materials', '-aet', 'STORESCU', '-aec', 'HUB', '127.0.0.1', String(th.hub.dimsePort), ...paths],
      60_000,
    );
    expect(run).toMatchObject({ code: 0 });
  }

  /** Sends a new one-instance study and returns its ImagingStudy id. */
  async function sendStudy(
    attributes: StudyAttributes,
  ): Promise<{ imagingStudyId: string; studyInstanceUid: string; path: string }> {
    const instance = await ctInstance(attributes);
    await storescu([instance.path]);
    const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${instance.studyInstanceUid}`);
    const [study] = await search(`ImagingStudy?identifier=${identifier}`);
    expect(study).toBeDefined();
    return { imagingStudyId: study.id, studyInstanceUid: instance.studyInstanceUid, path: instance.path };
  }

  const matchedTo = (imagingStudyId: string, c: Case) =>
    until(
      async () => {
        const study = await read(`ImagingStudy/${imagingStudyId}`);
        return study.basedOn?.[0]?.reference === `ServiceRequest/${c.serviceRequestId}` ? study : undefined;
      },
      `ImagingStudy/${imagingStudyId} to be matched`,
      WAIT_MS,
    );

  const reconcileTask = (imagingStudyId: string) =>
    until(
      () => byIdentifier('Task', `reconcile-imaging/${imagingStudyId}`),
      `the reconcile-imaging Task of ImagingStudy/${imagingStudyId}`,
      WAIT_MS,
    );

  const outputReferences = (task: any): string[] =>
    (task.output ?? [])
      .map((output: any) => output.valueReference?.reference)
      .filter(Boolean)
      .sort();
  const outputCount = (task: any, code: string): number | undefined =>
    task.output?.find(
      (output: any) => output.type.coding?.[0]?.system === MATERIAL_COUNT && output.type.coding[0].code === code,
    )?.valueInteger;

  // Filled by the tests, re-run at the end.
  const jobs: { resourceType: string; id: string }[] = [];
  let caseA: Case;
  let caseB: Case;
  let caseD: Case;

  test('a CT study whose AccessionNumber is the request’s accession identifier is matched, and stays matched when the study grows', async () => {
    const accessionNumber = `ACC${token()}`;
    caseA = await openCase(
      await registerPatient(),
      { imagingSites: 1, recordPages: 120, biopsySites: 1 },
      accessionNumber,
    );
    expect((await charge(caseA, 'imaging-review')).status).toBe('planned');

    const sent = await sendStudy({ accessionNumber, patientId: `PID${token()}` });
    jobs.push({ resourceType: 'ImagingStudy', id: sent.imagingStudyId });
    const study = await matchedTo(sent.imagingStudyId, caseA);
    expect(study.subject).toEqual({ reference: `Patient/${caseA.patientId}` });
    expect(study.basedOn).toEqual([{ reference: `ServiceRequest/${caseA.serviceRequestId}` }]);

    const imaging = await until(
      async () => {
        const task = await expectTask(caseA, 'imaging');
        return task?.status === 'completed' ? task : undefined;
      },
      'the imaging expect-material Task to complete',
      WAIT_MS,
    );
    expect(outputReferences(imaging)).toEqual([`ImagingStudy/${sent.imagingStudyId}`]);
    expect(outputCount(imaging, 'imaging-sites')).toBe(1);
    await until(
      async () => (await charge(caseA, 'imaging-review'))?.status === 'billable',
      'the imaging line to become billable',
      WAIT_MS,
    );

    // A second instance of the same study: the refresher rewrites the ImagingStudy from the index.
    const copy = join(workDir, `${token()}.dcm`);
    await copyFile(sent.path, copy);
    expect(await runDcmtk('dcmodify', ['-nb', '-gin', copy], 60_000)).toMatchObject({ code: 0 });
    await storescu([copy]);
    const grown = await until(
      async () => {
        const current = await read(`ImagingStudy/${sent.imagingStudyId}`);
        return current.numberOfInstances === 2 ? current : undefined;
      },
      'the ImagingStudy to show the second instance',
      WAIT_MS,
    );
    expect(grown.subject).toEqual({ reference: `Patient/${caseA.patientId}` });
    expect(grown.basedOn).toEqual([{ reference: `ServiceRequest/${caseA.serviceRequestId}` }]);
  }, 180_000);

  test('studies with the reference number as PatientID or among OtherPatientIDs are matched; imaging completes when every planned site is in', async () => {
    caseB = await openCase(await registerPatient(), { imagingSites: 2 });
    const first = await sendStudy({ accessionNumber: `X${token()}`, patientId: caseB.referenceNumber });
    jobs.push({ resourceType: 'ImagingStudy', id: first.imagingStudyId });
    await matchedTo(first.imagingStudyId, caseB);
    const partial = await until(
      async () => {
        const task = await expectTask(caseB, 'imaging');
        return task?.status === 'in-progress' ? task : undefined;
      },
      'the imaging Task to be in progress',
      WAIT_MS,
    );
    expect(outputReferences(partial)).toEqual([`ImagingStudy/${first.imagingStudyId}`]);

    const second = await sendStudy({
      accessionNumber: `X${token()}`,
      patientId: `PID${token()}`,
      otherPatientIds: `MRN${token()}\\${caseB.referenceNumber}`,
    });
    jobs.push({ resourceType: 'ImagingStudy', id: second.imagingStudyId });
    await matchedTo(second.imagingStudyId, caseB);
    const complete = await until(
      async () => {
        const task = await expectTask(caseB, 'imaging');
        return task?.status === 'completed' ? task : undefined;
      },
      'the imaging Task to complete',
      WAIT_MS,
    );
    expect(outputReferences(complete)).toEqual(
      [`ImagingStudy/${first.imagingStudyId}`, `ImagingStudy/${second.imagingStudyId}`].sort(),
    );
    expect(outputCount(complete, 'imaging-sites')).toBe(2);
    const rows = await sql.query(
      'SELECT imaging_study_id, match_method FROM dicom_study WHERE matched_service_request_id = $1 ORDER BY imaging_study_id',
      [caseB.serviceRequestId],
    );
    expect(rows.rows.map((row) => row.match_method)).toEqual(['reference-number', 'reference-number']);
  }, 180_000);

  test('a study matching no case becomes a reconciliation Task; a coordinator completing it with the request applies the match', async () => {
    const mrn = `MRN${token()}`;
    caseD = await openCase(await registerPatient({ identifier: [{ system: 'urn:example:mrn', value: mrn }] }), {
      imagingSites: 2,
    });
    // The hospital's own patient id and the same birth date: matched.
    const known = await sendStudy({ accessionNumber: `X${token()}`, patientId: mrn, birthDate: '19610423' });
    jobs.push({ resourceType: 'ImagingStudy', id: known.imagingStudyId });
    await matchedTo(known.imagingStudyId, caseD);
    expect(
      (await sql.query('SELECT match_method FROM dicom_study WHERE imaging_study_id = $1', [known.imagingStudyId]))
        .rows[0].match_method,
    ).toBe('patient-identifier');

    // The same patient id with another birth date matches nothing.
    const stranger = await sendStudy({ accessionNumber: `X${token()}`, patientId: mrn, birthDate: '19700101' });
    jobs.push({ resourceType: 'ImagingStudy', id: stranger.imagingStudyId });
    const task = await reconcileTask(stranger.imagingStudyId);
    expect(task).toMatchObject({
      status: 'requested',
      intent: 'order',
      code: { coding: [{ system: 'urn:hub:task-code', code: 'reconcile-imaging' }] },
      businessStatus: { coding: [{ system: 'urn:hub:reconcile-status', code: 'unmatched' }] },
      focus: { reference: `ImagingStudy/${stranger.imagingStudyId}` },
    });
    const unmatched = await read(`ImagingStudy/${stranger.imagingStudyId}`);
    expect(unmatched.basedOn).toBeUndefined();
    expect(unmatched.subject).toEqual({ type: 'Patient', identifier: { value: mrn } });

    const { meta: _meta, ...fields } = task;
    const resolved = await fhirFetch(`${th.fhir}/Task/${task.id}`, {
      method: 'PUT',
      body: {
        ...fields,
        status: 'completed',
        output: [{ type: { text: 'case' }, valueReference: { reference: `ServiceRequest/${caseD.serviceRequestId}` } }],
      },
    });
    expect(resolved.status).toBe(200);
    jobs.push({ resourceType: 'Task', id: task.id });
    const study = await matchedTo(stranger.imagingStudyId, caseD);
    expect(study.subject).toEqual({ reference: `Patient/${caseD.patientId}` });
    expect(
      (await sql.query('SELECT match_method FROM dicom_study WHERE imaging_study_id = $1', [stranger.imagingStudyId]))
        .rows[0].match_method,
    ).toBe('coordinator');
    const imaging = await until(
      async () => {
        const current = await expectTask(caseD, 'imaging');
        return current?.status === 'completed' ? current : undefined;
      },
      'case D’s imaging Task to complete',
      WAIT_MS,
    );
    expect(outputReferences(imaging)).toEqual(
      [`ImagingStudy/${known.imagingStudyId}`, `ImagingStudy/${stranger.imagingStudyId}`].sort(),
    );
    expect((await read(`Task/${task.id}`)).status).toBe('completed');
  }, 180_000);

  test('a study matching two cases is ambiguous; a resolution naming no valid case fails the Task, a valid one applies', async () => {
    const patient = await registerPatient();
    const first = await openCase(patient, { imagingSites: 1 });
    const second = await openCase(patient, { imagingSites: 1 });
    const sent = await sendStudy({ accessionNumber: `X${token()}`, patientId: patient.referenceNumber });
    jobs.push({ resourceType: 'ImagingStudy', id: sent.imagingStudyId });
    const task = await reconcileTask(sent.imagingStudyId);
    expect(task.businessStatus.coding[0].code).toBe('ambiguous');
    expect(task.input.map((input: any) => input.valueReference.reference).sort()).toEqual(
      [`ServiceRequest/${first.serviceRequestId}`, `ServiceRequest/${second.serviceRequestId}`].sort(),
    );

    const complete = async (serviceRequestId: string) => {
      const { meta: _meta, statusReason: _reason, ...fields } = await read(`Task/${task.id}`);
      const response = await fhirFetch(`${th.fhir}/Task/${task.id}`, {
        method: 'PUT',
        body: {
          ...fields,
          status: 'completed',
          output: [{ type: { text: 'case' }, valueReference: { reference: `ServiceRequest/${serviceRequestId}` } }],
        },
      });
      expect(response.status).toBe(200);
    };
    // A referring physician of one candidate case sees the Task (its input names their case) and
    // completes it with their case: the hub stamps them as the writer, and the worker refuses it.
    const asPhysician = new HubRepository({ ...ctx.repository, actor: 'urn:hub:actor:referring-physician:someone' });
    const { meta: _seen, ...open } = await read(`Task/${task.id}`);
    await asPhysician.updateResource({
      ...open,
      status: 'completed',
      output: [{ type: { text: 'case' }, valueReference: { reference: `ServiceRequest/${first.serviceRequestId}` } }],
    });
    const refused = await until(
      async () => {
        const current = await read(`Task/${task.id}`);
        return current.status === 'failed' ? current : undefined;
      },
      'the physician’s completion to be refused',
      WAIT_MS,
    );
    expect(refused.statusReason.text).toBe(
      'Only a coordinator may reconcile a study; a completion by a referring-physician is not applied',
    );
    expect((await read(`ImagingStudy/${sent.imagingStudyId}`)).basedOn).toBeUndefined();
    expect(
      (
        await sql.query('SELECT matched_service_request_id FROM dicom_study WHERE imaging_study_id = $1', [
          sent.imagingStudyId,
        ])
      ).rows[0].matched_service_request_id,
    ).toBeNull();

    await complete('no-such-request');
    const failed = await until(
      async () => {
        const current = await read(`Task/${task.id}`);
        return current.status === 'failed' ? current : undefined;
      },
      'the Task to fail',
      WAIT_MS,
    );
    expect(failed.statusReason.text).toBe('ServiceRequest/no-such-request does not exist');
    expect((await read(`ImagingStudy/${sent.imagingStudyId}`)).basedOn).toBeUndefined();

    await complete(second.serviceRequestId);
    await matchedTo(sent.imagingStudyId, second);
    jobs.push({ resourceType: 'Task', id: task.id });
  }, 180_000);

  test('a 3-page PDF is counted, ticks the records and re-quotes; a document that is not a PDF is flagged', async () => {
    const quoted = await charge(caseA, 'record-pages');
    expect(quoted).toMatchObject({ status: 'planned', priceOverride: { value: 75, currency: 'USD' } });

    const pdf = await PDFDocument.create();
    for (let page = 0; page < 3; page++) {
      pdf.addPage([612, 792]).drawText(`Discharge summary, page ${page + 1}`);
    }
    const binary = await fhirFetch(`${th.fhir}/Binary`, {
      method: 'POST',
      body: {
        resourceType: 'Binary',
        contentType: 'application/pdf',
        data: Buffer.from(await pdf.save()).toString('base64'),
      },
    });
    expect(binary.status).toBe(201);
    const document = await fhirFetch(`${th.fhir}/DocumentReference`, {
      method: 'POST',
      body: {
        resourceType: 'DocumentReference',
        status: 'current',
        subject: { reference: `Patient/${caseA.patientId}` },
        content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${binary.body.id}` } }],
        context: { related: [{ reference: `ServiceRequest/${caseA.serviceRequestId}` }] },
      },
    });
    expect(document.status).toBe(201);
    jobs.push({ resourceType: 'DocumentReference', id: document.body.id });
    const counted = await until(
      async () => {
        const current = await read(`DocumentReference/${document.body.id}`);
        return current.extension ? current : undefined;
      },
      'the page count',
      WAIT_MS,
    );
    expect(counted.extension).toEqual([{ url: 'urn:hub:extension:page-count', valueInteger: 3 }]);
    expect(counted.meta.tag).toBeUndefined();

    const records = await until(
      async () => {
        const task = await expectTask(caseA, 'records');
        return task?.status === 'completed' ? task : undefined;
      },
      'the records Task to complete',
      WAIT_MS,
    );
    expect(outputReferences(records)).toEqual([`DocumentReference/${document.body.id}`]);
    expect(outputCount(records, 'record-pages')).toBe(3);
    // 3 pages are within the 50 the opinion includes: the $75 line for the estimated 120 is withdrawn.
    await until(
      async () => (await charge(caseA, 'record-pages'))?.status === 'entered-in-error',
      'the record-pages line to be withdrawn',
      WAIT_MS,
    );
    const coordination = await byIdentifier('Task', `${caseA.serviceRequestId}/coordination`);
    const quote = coordination.extension.find(
      (extension: { url: string }) => extension.url === 'urn:hub:extension:quote',
    );
    expect(quote.extension.find((part: { url: string }) => part.url === 'total').valueMoney.value).toBeGreaterThan(0);

    // A text file found by the patient (no context.related): tied to the one active case, flagged.
    const text = await fhirFetch(`${th.fhir}/Binary`, {
      method: 'POST',
      body: {
        resourceType: 'Binary',
        contentType: 'text/plain',
        data: Buffer.from('Referral notes').toString('base64'),
      },
    });
    const notPdf = await fhirFetch(`${th.fhir}/DocumentReference`, {
      method: 'POST',
      body: {
        resourceType: 'DocumentReference',
        status: 'current',
        subject: { reference: `Patient/${caseA.patientId}` },
        content: [{ attachment: { contentType: 'text/plain', url: `Binary/${text.body.id}` } }],
      },
    });
    expect(notPdf.status).toBe(201);
    jobs.push({ resourceType: 'DocumentReference', id: notPdf.body.id });
    const flagged = await until(
      async () => {
        const current = await read(`DocumentReference/${notPdf.body.id}`);
        return current.meta.tag ? current : undefined;
      },
      'the flag',
      WAIT_MS,
    );
    expect(flagged.meta.tag).toEqual([
      { system: 'urn:hub:material-flag', code: 'not-pdf', display: expect.any(String) },
    ]);
    expect(flagged.extension).toBeUndefined();
    expect(flagged.context.related).toEqual([{ reference: `ServiceRequest/${caseA.serviceRequestId}` }]);
    const listed = await until(
      async () => {
        const task = await expectTask(caseA, 'records');
        return outputReferences(task).length === 2 ? task : undefined;
      },
      'the second document among the records',
      WAIT_MS,
    );
    expect(outputCount(listed, 'record-pages')).toBe(3);
    expect(
      (await search(`DocumentReference?_tag=${encodeURIComponent('urn:hub:material-flag|not-pdf')}`)).map((d) => d.id),
    ).toEqual([notPdf.body.id]);

    // A broken PDF is flagged, and the job does not fail.
    const broken = await fhirFetch(`${th.fhir}/DocumentReference`, {
      method: 'POST',
      body: {
        resourceType: 'DocumentReference',
        status: 'current',
        context: { related: [{ reference: `ServiceRequest/${caseA.serviceRequestId}` }] },
        content: [
          {
            attachment: {
              contentType: 'application/pdf',
              data: Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R').toString('base64'),
            },
          },
        ],
      },
    });
    expect(broken.status).toBe(201);
    jobs.push({ resourceType: 'DocumentReference', id: broken.body.id });
    const unreadable = await until(
      async () => {
        const current = await read(`DocumentReference/${broken.body.id}`);
        return current.meta.tag ? current : undefined;
      },
      'the broken PDF to be flagged',
      WAIT_MS,
    );
    expect(unreadable.meta.tag).toEqual([
      { system: 'urn:hub:material-flag', code: 'unreadable-pdf', display: expect.any(String) },
    ]);
    await until(
      async () => outputReferences(await expectTask(caseA, 'records')).length === 3,
      'the third document among the records',
      WAIT_MS,
    );
  }, 180_000);

  test('a Specimen with the request ticks pathology and makes the biopsy line billable', async () => {
    expect((await charge(caseA, 'biopsy-review')).status).toBe('planned');
    const specimen = await fhirFetch(`${th.fhir}/Specimen`, {
      method: 'POST',
      body: {
        resourceType: 'Specimen',
        status: 'available',
        subject: { reference: `Patient/${caseA.patientId}` },
        request: [{ reference: `ServiceRequest/${caseA.serviceRequestId}` }],
        collection: { bodySite: { text: 'left lower lobe' } },
      },
    });
    expect(specimen.status).toBe(201);
    jobs.push({ resourceType: 'Specimen', id: specimen.body.id });
    const pathology = await until(
      async () => {
        const task = await expectTask(caseA, 'pathology');
        return task?.status === 'completed' ? task : undefined;
      },
      'the pathology Task to complete',
      WAIT_MS,
    );
    expect(outputReferences(pathology)).toEqual([`Specimen/${specimen.body.id}`]);
    expect(outputCount(pathology, 'biopsy-sites')).toBe(1);
    await until(
      async () => (await charge(caseA, 'biopsy-review'))?.status === 'billable',
      'the biopsy line to become billable',
      WAIT_MS,
    );
  }, 180_000);

  test('every job run again, twice, changes nothing', async () => {
    expect(jobs.length).toBeGreaterThanOrEqual(10);
    const snapshot = async () => ({
      versions: (await sql.query('SELECT resource_type, id, version FROM resource ORDER BY resource_type, id')).rows,
      matches: (
        await sql.query(
          'SELECT study_instance_uid, matched_service_request_id, matched_patient_id, match_method, matched_at FROM dicom_study ORDER BY 1',
        )
      ).rows,
      outbox: (await sql.query('SELECT count(*)::int AS n FROM outbox')).rows[0].n,
    });
    // Let the workers finish what the tests set off.
    await workflowSettled(th, WAIT_MS);
    const before = await snapshot();
    for (let run = 0; run < 2; run++) {
      for (const job of jobs) {
        await runCaseMaterialStep(th.hub.db, ctx, job);
      }
    }
    expect(await snapshot()).toEqual(before);
  }, 180_000);
});
