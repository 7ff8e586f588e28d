/**
 * Security finding F6, from the attacker's side: a referring physician may store a patient's CD into
 * one of their cases (STOW-RS `?case=`), and the study is the case's from its first instance. Knowing
 * (or guessing) another patient's StudyInstanceUID, they claim it with a fake instance, and wait for
 * the imaging system to send the real study over C-STORE or STOW-RS: its instances must be refused,
 * and never readable by the physician (QIDO-RS, WADO-RS, the ImagingStudy). The same patient's
 * instances still join the study. And storing into their case must not tell them which UIDs the hub
 * holds elsewhere: every such refusal is the same answer.
 */
import { jest } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditEventsSince, clientToken } from './support/client-token.ts';
import { dicomInstance, newUid } from './support/dicom/patient-cd.ts';
import type { InstanceSpec } from './support/dicom/patient-cd.ts';
import { readPart10, runDcmtk, storescuProfile } from './support/dicom/test-peer.ts';
import { runHubCli } from './support/hub-cli.ts';
import { signInPeople } from './support/login-flow.ts';
import { stow as stowFiles } from './support/stow.ts';
import { WITH_WORKERS, fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

jest.setTimeout(120_000);

type Who = 'attacker' | 'physicianB' | 'coordinator';
const PEOPLE: Record<Who, { role: any; fhirUser: string }> = {
  attacker: { role: 'referring-physician', fhirUser: 'Practitioner/prac-a' },
  physicianB: { role: 'referring-physician', fhirUser: 'Practitioner/prac-b' },
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
};
const FAILED = '00081198';
const REFERENCED = '00081199';
const SOP_INSTANCE = '00081155';
const NOT_AUTHORIZED = 0x0124;
const PACS_AE = 'PACS';

const serviceRequest = (id: string, requester: string, patient: string) => ({
  resourceType: 'ServiceRequest',
  id,
  status: 'active',
  intent: 'order',
  code: { text: 'Second opinion' },
  subject: { reference: `Patient/${patient}` },
  requester: { reference: `Practitioner/${requester}` },
});
const FIXTURES = [
  ...['prac-a', 'prac-b', 'prac-c'].map((id) => ({ resourceType: 'Practitioner', id })),
  { resourceType: 'Patient', id: 'pat-a' },
  { resourceType: 'Patient', id: 'pat-b' },
  serviceRequest('sr-a', 'prac-a', 'pat-a'),
  serviceRequest('sr-b', 'prac-b', 'pat-b'),
];

/** Whose an instance says it is: Patient ID, its issuer, birth date. */
interface Identity {
  patientId: string;
  issuerOfPatientId?: string;
  birthDate: string;
}
/** The real patient of the study the attacker is after (the imaging system's identifiers). */
const VICTIM: Identity = { patientId: 'RAD-004711', issuerOfPatientId: 'GENERAL-HOSPITAL', birthDate: '19480212' };
/** What the attacker's fake instance says. */
const FAKE: Identity = { patientId: 'CD-0001', birthDate: '19900101' };

const instance = (
  who: Identity,
  studyUid: string,
  seriesUid = newUid(),
  sopUid = newUid(),
  instanceNumber = 1,
): InstanceSpec => ({
  studyUid,
  seriesUid,
  sopUid,
  modality: 'CT',
  patientId: who.patientId,
  ...(who.issuerOfPatientId === undefined ? {} : { issuerOfPatientId: who.issuerOfPatientId }),
  patientName: 'Some^Patient',
  birthDate: who.birthDate,
  seriesNumber: 1,
  instanceNumber,
});

describe('STOW-RS into a case: no takeover of another patient’s study, no oracle', () => {
  let th: TestHub;
  let workDir: string;
  let system: string;
  const tokens = {} as Record<Who, string>;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'stow-takeover-'));
    th = await startTestHub({
      // On PostgreSQL whatever HUB_TEST_DB says: an operator's `hub dicom import` runs beside this hub.
      db: 'postgres',
      // With the workers: a coordinator's decision on a refused claim is applied by the case-materials job.
      env: { ...WITH_WORKERS, AUTH_REQUIRED: 'true', DIMSE_AE_TITLE: 'HUB', DIMSE_ALLOWED_CALLING_AE_TITLES: PACS_AE },
    });
    system = await clientToken(th, 'takeover-imaging-system', 'system/*.cruds');
    const loaded = await putTransaction(th.fhir, system, FIXTURES);
    expect(loaded.status).toBe(200);
    Object.assign(
      tokens,
      await signInPeople(th, PEOPLE, {
        clientId: 'takeover-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
  });

  afterAll(async () => {
    await th?.stop();
    if (workDir) {
      await rm(workDir, { recursive: true, force: true });
    }
  });

  async function stow(token: string, query: string, specs: InstanceSpec[]) {
    const response = await stowFiles(
      th.baseUrl,
      specs.map((spec) => dicomInstance(spec)),
      { authorization: `Bearer ${token}` },
      query,
    );
    const text = await response.text();
    return {
      status: response.status,
      contentType: response.headers.get('content-type'),
      body: text === '' ? undefined : JSON.parse(text),
    };
  }
  /** Whether the study's claim is provisional, as the hub's index says (the job applies a decision in the background). */
  const claimProvisional = async (studyUid: string): Promise<boolean | undefined> =>
    (
      await th.hub.db.query<{ claim_provisional: boolean }>(
        'SELECT claim_provisional FROM dicom_study WHERE study_instance_uid = $1',
        [studyUid],
      )
    ).rows[0]?.claim_provisional;
  const failureReasons = (body: any): number[] =>
    (body?.[FAILED]?.Value ?? []).map((item: any) => item['00081197'].Value[0] as number);

  /** The imaging system sends these instances over one C-STORE association; each Store Response in order. */
  let sent = 0;
  async function cstore(specs: InstanceSpec[]): Promise<string[]> {
    const files: string[] = [];
    for (const spec of specs) {
      const file = join(workDir, `pacs-${++sent}.dcm`);
      await writeFile(file, dicomInstance(spec));
      files.push(file);
    }
    const profile = join(workDir, `pacs-${sent}.cfg`);
    await writeFile(profile, storescuProfile(await Promise.all(files.map((file) => readPart10(file))), 'Pacs'));
    const result = await runDcmtk(
      'storescu',
      [
        '-v',
        '-nh',
        '-xf',
        profile,
        'Pacs',
        '-aet',
        PACS_AE,
        '-aec',
        'HUB',
        '127.0.0.1',
        String(th.hub.dimsePort),
        ...files,
      ],
      30_000,
    );
    return result.output
      .split('\n')
      .filter((line) => line.includes('Received Store Response'))
      .map((line) => (line.includes('(Success)') ? 'Success' : 'Failure'));
  }

  const dicomweb = (who: Who, path: string, accept = 'application/dicom+json') =>
    fetch(`${th.baseUrl}/dicomweb${path}`, { headers: { authorization: `Bearer ${tokens[who]}`, accept } });
  /** The SOP Instance UIDs of the study the person can find with QIDO-RS. */
  const instancesSeen = async (who: Who, studyUid: string): Promise<string[]> => {
    const response = await dicomweb(who, `/studies/${studyUid}/instances`);
    expect(response.status).toBe(200);
    const text = await response.text();
    return (text === '' ? [] : (JSON.parse(text) as any[])).map((item) => item['00080018'].Value[0] as string).sort();
  };
  const studiesSeen = async (who: Who): Promise<string[]> => {
    const response = await dicomweb(who, '/studies');
    expect(response.status).toBe(200);
    return ((await response.json()) as any[]).map((study) => study['0020000D'].Value[0] as string);
  };
  /** The case's ImagingStudy of this study, as the person reads it, once it shows `instances` instances. */
  const imagingStudy = (who: Who, serviceRequest: string, studyUid: string, instances: number) =>
    until(async () => {
      const found = await fhirFetch(`${th.fhir}/ImagingStudy?based-on=ServiceRequest/${serviceRequest}`, {
        headers: { authorization: `Bearer ${tokens[who]}` },
      });
      const study = (found.body.entry ?? [])
        .map((entry: any) => entry.resource)
        .find((resource: any) => resource.identifier?.some((id: any) => id.value === `urn:oid:${studyUid}`));
      return study?.numberOfInstances === instances ? study : undefined;
    }, `the ImagingStudy with ${instances} instances`);

  /** Physician B stores a patient's CD of a new study into their case: the case's claim is provisional. */
  async function claimedByPhysicianB(cd: Identity) {
    const studyUid = newUid();
    expect((await stow(tokens.physicianB, '?case=sr-b', [instance(cd, studyUid)])).status).toBe(200);
    return { studyUid, study: await imagingStudy('physicianB', 'sr-b', studyUid, 1) };
  }
  /** The search for the coordinators' claim Task of a study. */
  const claimTaskSearch = (imagingStudyId: string): string =>
    `${th.fhir}/Task?code=urn:hub:task-code|confirm-imaging-claim&focus=ImagingStudy/${imagingStudyId}`;
  /** A coordinator decides on the claim Task as last read: completed confirms, rejected keeps refusing. */
  const decideClaim = (task: any, status: 'completed' | 'rejected', reason?: string) =>
    fhirFetch(`${th.fhir}/Task/${task.id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokens.coordinator}`, 'if-match': `W/"${task.meta.versionId}"` },
      body: { ...task, status, ...(reason === undefined ? {} : { statusReason: { text: reason } }) },
    });

  test('a physician’s claim of another patient’s study: the imaging system’s real study is refused and never theirs to read', async () => {
    const victimStudy = newUid();
    const fake = instance(FAKE, victimStudy);
    expect((await stow(tokens.attacker, '?case=sr-a', [fake])).status).toBe(200);
    await imagingStudy('attacker', 'sr-a', victimStudy, 1);
    const since = new Date(Date.now() - 1000).toISOString();

    // The PACS sends the real study over C-STORE: each instance refused on its own, the association goes on.
    const series = newUid();
    const real = [
      instance(VICTIM, victimStudy, series, newUid(), 1),
      instance(VICTIM, victimStudy, series, newUid(), 2),
    ];
    const unrelated = instance(VICTIM, newUid());
    expect(await cstore([...real, unrelated])).toEqual(['Failure', 'Failure', 'Success']);
    // A system client's STOW-RS of the study, naming no case: refused too, as not authorized.
    const viaStow = instance(VICTIM, victimStudy, series, newUid(), 3);
    const stowed = await stow(system, '', [viaStow]);
    expect([stowed.status, failureReasons(stowed.body)]).toEqual([409, [NOT_AUTHORIZED]]);

    // The physician finds only their own instance: by QIDO-RS, WADO-RS and the case's ImagingStudy.
    expect(await instancesSeen('attacker', victimStudy)).toEqual([fake.sopUid]);
    for (const refused of [...real, viaStow]) {
      const path = `/studies/${victimStudy}/series/${series}/instances/${refused.sopUid}`;
      expect((await dicomweb('attacker', path, 'multipart/related; type="application/dicom"')).status).toBe(404);
      expect((await dicomweb('attacker', `${path}/metadata`)).status).toBe(404);
    }
    const metadata = await dicomweb('attacker', `/studies/${victimStudy}/metadata`);
    expect(((await metadata.json()) as any[]).map((item) => item['00080018'].Value[0])).toEqual([fake.sopUid]);
    const study = await imagingStudy('attacker', 'sr-a', victimStudy, 1);
    expect(study.series.map((item: any) => item.uid)).toEqual([fake.seriesUid]);
    // Nor did anyone else get them: the hub holds none of the refused instances.
    for (const refused of [...real, viaStow]) {
      const rows = await th.hub.db.query('SELECT 1 FROM dicom_instance WHERE sop_instance_uid = $1', [refused.sopUid]);
      expect(rows.rows).toHaveLength(0);
    }

    // The refusal is audited: the PACS's association, as one that did not store everything.
    const events = await until(async () => {
      const found = (await auditEventsSince(th, system, since)).filter(
        (event) =>
          event.type?.code === '110104' &&
          event.agent?.some((agent: any) => agent.requestor && agent.altId === `AETITLES=${PACS_AE}`),
      );
      return found.length > 0 ? found : undefined;
    }, 'the C-STORE association’s AuditEvent');
    expect(events.map((event) => event.outcome)).toEqual(['4']);
    expect(JSON.stringify(events)).not.toContain(VICTIM.patientId);
  });

  test('the same patient’s instances join the claimed study; another issuer or birth date does not', async () => {
    const cd: Identity = { patientId: 'MRN-5521', issuerOfPatientId: 'CITY-CLINIC', birthDate: '19610304' };
    const studyUid = newUid();
    const uploaded = instance(cd, studyUid);
    expect((await stow(tokens.attacker, '?case=sr-a', [uploaded])).status).toBe(200);

    const series = newUid();
    const same = instance(cd, studyUid, series, newUid(), 1);
    const otherIssuer = instance({ ...cd, issuerOfPatientId: 'OTHER-CLINIC' }, studyUid, series, newUid(), 2);
    const noIssuer = instance({ patientId: cd.patientId, birthDate: cd.birthDate }, studyUid, series, newUid(), 3);
    const otherBirthDate = instance({ ...cd, birthDate: '19610305' }, studyUid, series, newUid(), 4);
    expect(await cstore([otherIssuer, noIssuer, otherBirthDate, same])).toEqual([
      'Failure',
      'Failure',
      'Failure',
      'Success',
    ]);
    expect(await instancesSeen('attacker', studyUid)).toEqual([uploaded.sopUid, same.sopUid].sort());

    // The case's own STOW-RS stores as before, whatever its instances say.
    const more = instance(FAKE, studyUid);
    expect((await stow(tokens.attacker, '?case=sr-a', [more])).status).toBe(200);
    expect(await instancesSeen('attacker', studyUid)).toEqual([uploaded.sopUid, same.sopUid, more.sopUid].sort());
    await imagingStudy('attacker', 'sr-a', studyUid, 3);
  });

  test('a coordinator’s claim is provisional too; a system client’s is firm', async () => {
    const byCoordinator = newUid();
    expect((await stow(tokens.coordinator, '?case=sr-b', [instance(FAKE, byCoordinator)])).status).toBe(200);
    const bySystem = newUid();
    expect((await stow(system, '?case=sr-b', [instance(FAKE, bySystem)])).status).toBe(200);

    const coordinatorReal = instance(VICTIM, byCoordinator);
    const systemReal = instance(VICTIM, bySystem);
    expect(await cstore([coordinatorReal, systemReal])).toEqual(['Failure', 'Success']);
    expect(await instancesSeen('physicianB', byCoordinator)).not.toContain(coordinatorReal.sopUid);
    expect(await instancesSeen('physicianB', bySystem)).toContain(systemReal.sopUid);
  });

  test('a refusal by a person’s claim reaches the coordinators, who alone confirm it; the refused instances then join', async () => {
    // Physician B stores the patient's CD into their case: the CD's identifiers, not the hospital's.
    const cd: Identity = { patientId: 'CD-4242', birthDate: '19600303' };
    const hospital: Identity = { patientId: 'RAD-4242', issuerOfPatientId: 'GENERAL-HOSPITAL', birthDate: '19600303' };
    const { studyUid, study } = await claimedByPhysicianB(cd);
    // The hospital's PACS sends the same study under its own identifiers: refused, over both services.
    const fromPacs = [instance(hospital, studyUid), instance(hospital, studyUid)];
    expect(await cstore([fromPacs[0]!])).toEqual(['Failure']);
    expect(failureReasons((await stow(system, '', [fromPacs[1]!])).body)).toEqual([NOT_AUTHORIZED]);

    // The coordinators get one Task for the study, which names no case.
    const as = (who: Who) => ({ authorization: `Bearer ${tokens[who]}` });
    const search = claimTaskSearch(study.id);
    const task = await until(async () => {
      const found = await fhirFetch(search, { headers: as('coordinator') });
      return found.body.entry?.length === 1 ? found.body.entry[0].resource : undefined;
    }, 'the coordinators’ Task');
    expect([task.status, task.basedOn, task.for]).toEqual(['requested', undefined, undefined]);

    // The physician whose claim it is can neither find the Task nor complete it.
    expect((await fhirFetch(search, { headers: as('physicianB') })).body.entry ?? []).toEqual([]);
    expect((await fhirFetch(`${th.fhir}/Task/${task.id}`, { headers: as('physicianB') })).status).toBe(404);
    const byPhysician = await fhirFetch(`${th.fhir}/Task/${task.id}`, {
      method: 'PUT',
      headers: as('physicianB'),
      body: { ...task, status: 'completed' },
    });
    expect([403, 404]).toContain(byPhysician.status);
    // Nor write one of their own: a completed Task of that code, focused on their study.
    const forgedTask = {
      resourceType: 'Task',
      status: 'completed',
      intent: 'order',
      code: task.code,
      focus: task.focus,
      basedOn: [{ reference: 'ServiceRequest/sr-b' }],
    };
    const forged = await fhirFetch(`${th.fhir}/Task`, { method: 'POST', headers: as('physicianB'), body: forgedTask });
    expect(forged.status).toBe(403);
    // A system client may write Tasks. One that has the code alone is not the hub's Task, and the job
    // leaves it alone; one with the hub's identifier too is decided by a system client, not a
    // coordinator: the job fails it. Neither confirms the claim.
    const post = (body: object) =>
      fhirFetch(`${th.fhir}/Task`, { method: 'POST', headers: { authorization: `Bearer ${system}` }, body });
    const codeOnly = await post(forgedTask);
    expect(codeOnly.status).toBe(201);
    const { basedOn: _basedOn, ...unlinked } = forgedTask;
    const withIdentifier = await post({ ...unlinked, identifier: task.identifier });
    expect(withIdentifier.status).toBe(201);
    const failed = await until(async () => {
      const read = await fhirFetch(`${th.fhir}/Task/${withIdentifier.body.id}`, { headers: as('coordinator') });
      return read.body.status === 'failed' ? read.body : undefined;
    }, 'the system client’s decision refused');
    expect(failed.statusReason.text).toMatch(/Only a coordinator may decide on a claim/);
    expect((await fhirFetch(`${th.fhir}/Task/${codeOnly.body.id}`, { headers: as('coordinator') })).body.status).toBe(
      'completed',
    );
    expect(failureReasons((await stow(system, '', [fromPacs[1]!])).body)).toEqual([NOT_AUTHORIZED]);

    // A coordinator confirms the claim: the PACS's instances, sent again, join the case's study.
    const confirmed = await decideClaim(task, 'completed');
    expect(confirmed.status).toBe(200);
    await until(async () => (await claimProvisional(studyUid)) === false, 'the claim confirmed');
    expect((await stow(system, '', [fromPacs[1]!])).status).toBe(200);
    expect(await cstore([fromPacs[0]!])).toEqual(['Success']);
    await imagingStudy('physicianB', 'sr-b', studyUid, 3);
    // Rejected after all (a coordinator who thinks again): the sender's new instances are refused again.
    const current = (await fhirFetch(`${th.fhir}/Task/${task.id}`, { headers: as('coordinator') })).body;
    const withdrawn = await decideClaim(current, 'rejected', 'Another patient after all');
    expect(withdrawn.status).toBe(200);
    await until(async () => (await claimProvisional(studyUid)) === true, 'the confirmation withdrawn');
    expect(failureReasons((await stow(system, '', [instance(hospital, studyUid)])).body)).toEqual([NOT_AUTHORIZED]);

    // The refusals after the first wrote no second Task: the only others are the system client's.
    const ids = ((await fhirFetch(search, { headers: as('coordinator') })).body.entry ?? []).map(
      (entry: any) => entry.resource.id,
    );
    expect(ids.sort()).toEqual([task.id, codeOnly.body.id, withIdentifier.body.id].sort());
  });

  test('a coordinator who rejects the Task keeps the instances refused; later refusals do not reopen it', async () => {
    const { studyUid, study } = await claimedByPhysicianB(FAKE);
    const fromPacs = instance(VICTIM, studyUid);
    expect(failureReasons((await stow(system, '', [fromPacs])).body)).toEqual([NOT_AUTHORIZED]);
    const coordinator = { authorization: `Bearer ${tokens.coordinator}` };
    const search = claimTaskSearch(study.id);
    const task = await until(
      async () => (await fhirFetch(search, { headers: coordinator })).body.entry?.[0]?.resource,
      'the coordinators’ Task',
    );
    const rejected = await decideClaim(task, 'rejected', 'Not this patient');
    expect(rejected.status).toBe(200);
    expect(failureReasons((await stow(system, '', [fromPacs])).body)).toEqual([NOT_AUTHORIZED]);
    expect(await cstore([fromPacs])).toEqual(['Failure']);
    const after = (await fhirFetch(search, { headers: coordinator })).body.entry ?? [];
    expect(after.map((entry: any) => entry.resource.status)).toEqual(['rejected']);
  });

  test('an operator’s CD import refused by a person’s claim gives the coordinators the same Task', async () => {
    // Physician B's upload of the patient's CD claims the study; the hospital's own CD of it, imported
    // by an operator with `hub dicom import`, says another patient.
    const cd: Identity = { patientId: 'CD-5150', birthDate: '19550505' };
    const hospital: Identity = { patientId: 'RAD-5150', issuerOfPatientId: 'GENERAL-HOSPITAL', birthDate: '19550505' };
    const { studyUid, study } = await claimedByPhysicianB(cd);
    const media = join(workDir, 'hospital-cd');
    await mkdir(media);
    const series = newUid();
    const imported = [1, 2].map((n) => instance(hospital, studyUid, series, newUid(), n));
    await Promise.all(imported.map((spec, i) => writeFile(join(media, `IM${i}`), dicomInstance(spec))));
    const env = { DATABASE_URL: th.databaseUrl as string, DATA_DIR: th.config.dataDir, BASE_URL: th.baseUrl };

    const first = await runHubCli(['dicom', 'import', media], env);
    expect(first.code).toBe(3);
    expect(first.stdout).toMatch(/refused: +2/);
    expect(first.stdout).toMatch(/1 study held for a case of another patient refused files: a coordinator can confirm/);
    // The Task is written before the command ends: there is one, for the coordinators only.
    const search = claimTaskSearch(study.id);
    const coordinator = { authorization: `Bearer ${tokens.coordinator}` };
    const tasks = (await fhirFetch(search, { headers: coordinator })).body.entry ?? [];
    expect(tasks.map((entry: any) => [entry.resource.status, entry.resource.basedOn])).toEqual([
      ['requested', undefined],
    ]);
    expect(
      (await fhirFetch(search, { headers: { authorization: `Bearer ${tokens.physicianB}` } })).body.entry ?? [],
    ).toEqual([]);
    // Imported again before a decision: still refused, and no second Task.
    const again = await runHubCli(['dicom', 'import', media, '--json'], env);
    expect(again.code).toBe(3);
    expect(JSON.parse(again.stdout).refusedByClaim).toEqual([studyUid]);
    expect(((await fhirFetch(search, { headers: coordinator })).body.entry ?? []).length).toBe(1);

    // The coordinator confirms the claim; the import, run again, stores the hospital's instances into the study.
    const task = tasks[0].resource;
    const confirmed = await decideClaim(task, 'completed');
    expect(confirmed.status).toBe(200);
    await until(async () => (await claimProvisional(studyUid)) === false, 'the claim confirmed');
    const last = await runHubCli(['dicom', 'import', media], env);
    expect([last.code, last.stdout]).toEqual([0, expect.stringMatching(/stored: +2 instances/)]);
    expect(last.stdout).not.toMatch(/held for a case of another patient/);
    await imagingStudy('physicianB', 'sr-b', studyUid, 3);
  });

  test('storing into a case tells a person only “not stored”, whatever holds the instance elsewhere', async () => {
    // What the hub holds outside the attacker's case: physician B's upload, a study waiting for a
    // coordinator (it matches no case), and a system client's study stored into B's case.
    const theirs = instance(FAKE, newUid());
    expect((await stow(tokens.physicianB, '?case=sr-b', [theirs])).status).toBe(200);
    const waiting = instance(VICTIM, newUid());
    expect((await stow(system, '', [waiting])).status).toBe(200);
    const systems = instance(VICTIM, newUid());
    expect((await stow(system, '?case=sr-b', [systems])).status).toBe(200);

    const probes: [string, InstanceSpec][] = [
      ['another case’s study', instance(FAKE, theirs.studyUid)],
      ['a study waiting for a coordinator', instance(FAKE, waiting.studyUid)],
      ['a system client’s study of another case', instance(FAKE, systems.studyUid)],
      ['another case’s series', instance(FAKE, newUid(), theirs.seriesUid)],
      ['another case’s SOP Instance UID, other bytes', instance(FAKE, newUid(), newUid(), theirs.sopUid)],
      ['a study waiting for a coordinator: its series', instance(FAKE, newUid(), waiting.seriesUid)],
      ['a study waiting for a coordinator: its SOP Instance UID', instance(FAKE, newUid(), newUid(), waiting.sopUid)],
    ];
    const answers: unknown[] = [];
    for (const [cause, probe] of probes) {
      const answer = await stow(tokens.attacker, '?case=sr-a', [probe]);
      // The failed SOP's own UID is all that differs: it is the one the request sent.
      expect(answer.body[FAILED].Value[0][SOP_INSTANCE].Value).toEqual([probe.sopUid]);
      answer.body[FAILED].Value[0][SOP_INSTANCE].Value = ['sent'];
      answers.push({ cause, ...answer });
    }
    const contentType = (answers[0] as { contentType: string }).contentType;
    expect(contentType).toMatch(/^application\/dicom\+json/);
    const expected = {
      status: 409,
      contentType,
      body: {
        '00081190': { vr: 'UR' },
        [FAILED]: {
          vr: 'SQ',
          Value: [
            {
              '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
              [SOP_INSTANCE]: { vr: 'UI', Value: ['sent'] },
              '00081197': { vr: 'US', Value: [NOT_AUTHORIZED] },
            },
          ],
        },
      },
    };
    expect(answers).toEqual(probes.map(([cause]) => ({ cause, ...expected })));
    // Nothing of the probes is left at the hub for the attacker.
    const seen = await studiesSeen('attacker');
    for (const [, probe] of probes) {
      expect(seen).not.toContain(probe.studyUid);
    }

    // Within their own case the particular reasons stay: an instance UID of their own study, with other bytes.
    const own = instance(FAKE, newUid());
    expect((await stow(tokens.attacker, '?case=sr-a', [own])).status).toBe(200);
    const again = await stow(tokens.attacker, '?case=sr-a', [{ ...own, instanceNumber: 2 }]);
    expect([again.status, failureReasons(again.body)]).toEqual([409, [0x0111]]);
    expect(again.body[REFERENCED]).toBeUndefined();
  });
});
