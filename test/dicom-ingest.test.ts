/**
 * The DICOM ingest path behind C-STORE, against a real hub (PostgreSQL, Redis) and real dcmtk
 * peers: echo; several transfer syntaxes in one association, indexed, stored byte for byte and
 * described by an ImagingStudy; refusals of malformed and inconsistent instances that leave their
 * neighbours stored; duplicates and conflicting duplicates; and a SIGKILL during a C-STORE stream
 * after which every acknowledged instance is still there.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { CommandField, Status, encodeRequest } from '../src/dicom/dimse/command-set.ts';
import { buildPart10Header } from '../src/dicom/dimse/part10-writer.ts';
import {
  APPLICATION_CONTEXT_NAME,
  PduType,
  encodeAssociateRq,
  encodePData,
  encodeReleaseRq,
} from '../src/dicom/dimse/pdu.ts';
import { DUPLICATE_SOP_INSTANCE } from '../src/dicom/dimse/store-handler.ts';
import {
  RawPeer,
  readPart10,
  runDcmtk,
  startDcmtk,
  storescuProfile,
  waitForListener,
} from './support/dicom/test-peer.ts';
import type { Part10File } from './support/dicom/test-peer.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { startHubProcess } from './support/hub-process.ts';
import { blobsInstalled, installedBlob } from './support/staged-blobs.ts';
import { createTestDatabase, fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { freePort } from './support/free-port.ts';
import { until } from './support/until.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';

interface InstanceRow {
  sop_instance_uid: string;
  study_instance_uid: string;
  series_instance_uid: string;
  transfer_syntax_uid: string;
  blob_key: string;
  size: string;
  sha256: string;
  dicom_json: string;
}

/** `count` copies of a pydicom file, each with fresh Study, Series and SOP Instance UIDs. */
async function freshCopies(source: string, count: number, dir: string, prefix = 'copy'): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths = Array.from({ length: count }, (_unused, index) =>
    join(dir, `${prefix}-${String(index).padStart(4, '0')}.dcm`),
  );
  for (const path of paths) {
    await copyFile(join(TEST_FILES, source), path);
  }
  const result = await runDcmtk('dcmodify', ['-nb', '-gst', '-gse', '-gin', ...paths], 60_000);
  expect(result.code).toBe(0);
  return paths;
}

/** Each Store Response storescu -v logged, in order ("Success", "Error: CannotUnderstand", …). */
function storeResponses(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => line.includes('Received Store Response'))
    .map((line) => line.replace(/^.*Received Store Response \((.*)\).*$/, '$1'));
}

describe('DICOM ingest over C-STORE', () => {
  let th: TestHub;
  let workDir: string;
  let blobs: FileBlobStore;

  const instanceRow = async (sopInstanceUid: string): Promise<InstanceRow | undefined> =>
    (await th.hub.db.query<InstanceRow>('SELECT * FROM dicom_instance WHERE sop_instance_uid = $1', [sopInstanceUid]))
      .rows[0];

  const imagingStudy = async (studyInstanceUid: string) => {
    const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${studyInstanceUid}`);
    const response = await fhirFetch(`${th.fhir}/ImagingStudy?identifier=${identifier}`);
    expect(response.status).toBe(200);
    return response.body.entry?.map((entry: { resource: unknown }) => entry.resource) ?? [];
  };

  const storescu = async (files: readonly string[], profileName: string) => {
    const parts = await Promise.all(files.map((file) => readPart10(file)));
    const profile = join(workDir, `${profileName}.cfg`);
    await writeFile(profile, storescuProfile(parts, 'Ingest'));
    return runDcmtk(
      'storescu',
      [
        '-v',
        '-nh',
        '-xf',
        profile,
        'Ingest',
        '-aet',
        'STORESCU',
        '-aec',
        'HUB',
        '127.0.0.1',
        String(th.hub.dimsePort),
        ...files,
      ],
      30_000,
    );
  };

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dicom-ingest-'));
    th = await startTestHub({
      env: { DIMSE_PORT: '0', DIMSE_AE_TITLE: 'HUB', DIMSE_ALLOWED_CALLING_AE_TITLES: 'STORESCU,ECHOSCU,RAW,REF' },
    });
    blobs = new FileBlobStore(join(th.config.dataDir, 'blobs'));
  });

  afterAll(async () => {
    await th?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  test('echoscu is answered; a calling AE title outside the allow-list is rejected', async () => {
    expect(th.hub.dimsePort).toBeGreaterThan(0);
    expect(
      await runDcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', 'HUB', '127.0.0.1', String(th.hub.dimsePort)]),
    ).toEqual({ code: 0, output: '' });
    const intruder = await runDcmtk('echoscu', [
      '-aet',
      'INTRUDER',
      '-aec',
      'HUB',
      '127.0.0.1',
      String(th.hub.dimsePort),
    ]);
    expect(intruder.output).toMatch(/Calling AE Title Not Recognized/i);
  });

  test('storescu stores several transfer syntaxes in one association: index, blobs byte for byte, ImagingStudy', async () => {
    const names = [
      'CT_small.dcm',
      'MR_small.dcm',
      'JPEG2000.dcm',
      'SC_rgb_jpeg_dcmtk.dcm',
      'image_dfl.dcm',
      'ExplVR_BigEnd.dcm',
      'waveform_ecg.dcm',
    ];
    const files = names.map((name) => join(TEST_FILES, name));
    const originals = await Promise.all(files.map((file) => readPart10(file)));

    // storescu re-encodes some data sets as it sends them; dcmtk's receiver in bit-preserving mode
    // records the bytes that went over the wire.
    const referenceDir = join(workDir, 'reference');
    await mkdir(referenceDir);
    const referencePort = await freePort();
    const reference = startDcmtk('storescp', [
      '+B',
      '+xa',
      '+uf',
      '-od',
      referenceDir,
      '-aet',
      'REF',
      String(referencePort),
    ]);
    try {
      await waitForListener(referencePort);
      const profile = join(workDir, 'reference.cfg');
      await writeFile(profile, storescuProfile(originals, 'Ingest'));
      const run = await runDcmtk('storescu', [
        '-xf',
        profile,
        'Ingest',
        '-aet',
        'STORESCU',
        '-aec',
        'REF',
        '127.0.0.1',
        String(referencePort),
        ...files,
      ]);
      expect(run.code).toBe(0);
    } finally {
      await reference.stop();
    }
    const sent = new Map<string, Part10File>();
    for (const name of await readdir(referenceDir)) {
      const part = await readPart10(join(referenceDir, name));
      sent.set(part.sopInstanceUid, part);
    }

    const result = await storescu(files, 'several');
    expect(storeResponses(result.output)).toEqual(names.map(() => 'Success'));
    expect(result.output.match(/Requesting Association/g)).toHaveLength(1);

    for (const original of originals) {
      const row = await instanceRow(original.sopInstanceUid);
      expect({ uid: original.sopInstanceUid, ts: row?.transfer_syntax_uid }).toEqual({
        uid: original.sopInstanceUid,
        ts: original.transferSyntaxUid,
      });
      const stored = await installedBlob(th.hub.db, blobs, row!.blob_key);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(row!.sha256);
      expect(Number(row!.size)).toBe(stored.length);
      const wire = sent.get(original.sopInstanceUid)!;
      const expected = Buffer.concat([
        buildPart10Header({
          mediaStorageSopClassUid: original.sopClassUid,
          mediaStorageSopInstanceUid: original.sopInstanceUid,
          transferSyntaxUid: original.transferSyntaxUid,
          sourceApplicationEntityTitle: 'STORESCU',
        }),
        wire.dataSet,
      ]);
      expect(stored.equals(expected)).toBe(true);
      // The header as DICOM JSON, pixel data by reference.
      const json = JSON.parse(row!.dicom_json);
      expect(json['00080018']).toEqual({ vr: 'UI', Value: [original.sopInstanceUid] });
      if (json['7FE00010']) {
        expect(json['7FE00010'].BulkDataURI).toBe('bulkdata/7FE00010');
      }
    }

    const ct = (await instanceRow(originals[0]!.sopInstanceUid))!;
    const studies = await imagingStudy(ct.study_instance_uid);
    expect(studies).toHaveLength(1);
    const study = studies[0];
    expect(study).toMatchObject({
      status: 'available',
      identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${ct.study_instance_uid}` }],
      modality: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' }],
      numberOfSeries: 1,
      numberOfInstances: 1,
      subject: { type: 'Patient', identifier: { value: expect.any(String) } },
      series: [
        {
          uid: ct.series_instance_uid,
          modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' },
          numberOfInstances: 1,
          instance: [{ uid: ct.sop_instance_uid, sopClass: { system: 'urn:ietf:rfc:3986', code: `urn:oid:${CT}` } }],
        },
      ],
    });
    expect(study.subject.display).toBeUndefined();
    expect(study.endpoint).toHaveLength(1);
    const endpoint = await fhirFetch(`${th.fhir}/${study.endpoint[0].reference}`);
    expect(endpoint.body).toMatchObject({
      resourceType: 'Endpoint',
      connectionType: { code: 'dicom-wado-rs' },
      address: `${th.baseUrl}/dicomweb`,
    });
    const nm = await imagingStudy((await instanceRow(originals[2]!.sopInstanceUid))!.study_instance_uid);
    expect(nm[0].series[0].bodySite).toEqual({ code: 'WHOLE BODY', display: 'WHOLE BODY' });

    const studyRow = (
      await th.hub.db.query<{ number_of_series: number; number_of_instances: number; modalities: string[] }>(
        'SELECT number_of_series, number_of_instances, modalities FROM dicom_study WHERE study_instance_uid = $1',
        [ct.study_instance_uid],
      )
    ).rows[0];
    expect(studyRow).toEqual({ number_of_series: 1, number_of_instances: 1, modalities: ['CT'] });
    // Each study's ImagingStudy write recorded its outbox event in the same transaction.
    const events = await th.hub.db.query<{ name: string }>("SELECT name FROM outbox WHERE name LIKE 'ImagingStudy.%'");
    expect(events.rows.length).toBeGreaterThanOrEqual(names.length);
    expect(await readdir(join(th.config.dataDir, 'blobs', 'tmp'))).toEqual([]);
  }, 60_000);

  test('a study built from several instances and series has the right counts', async () => {
    const dir = join(workDir, 'multi');
    const paths = await freshCopies('CT_small.dcm', 3, dir, 'multi');
    // One study, two series: copies 0 and 1 share a series, copy 2 has its own.
    const study = '1.2.826.0.1.3680043.8.498.1001';
    // No Patient ID: the subject reference says why it is empty (ImagingStudy.subject is 1..1).
    await runDcmtk('dcmodify', [
      '-nb',
      '-m',
      `(0020,000D)=${study}`,
      '-ea',
      '(0010,0020)',
      '-i',
      '(0018,0015)=CHEST',
      ...paths,
    ]);
    await runDcmtk('dcmodify', ['-nb', '-m', '(0020,000E)=1.2.826.0.1.3680043.8.498.1001.1', paths[0]!, paths[1]!]);
    await runDcmtk('dcmodify', [
      '-nb',
      '-m',
      '(0020,000E)=1.2.826.0.1.3680043.8.498.1001.2',
      '-m',
      '(0020,0011)=7',
      paths[2]!,
    ]);
    const result = await storescu(paths, 'multi');
    expect(storeResponses(result.output)).toEqual(['Success', 'Success', 'Success']);
    const [resource] = await imagingStudy(study);
    // One ImagingStudy version for the association's burst, not one per instance.
    expect(resource).toMatchObject({ numberOfSeries: 2, numberOfInstances: 3, meta: { versionId: '1' } });
    expect(resource.subject).toEqual({
      type: 'Patient',
      extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }],
    });
    expect(resource.series[0].bodySite).toEqual({
      system: 'http://snomed.info/sct',
      code: '51185008',
      display: 'Thorax',
    });
    // A series already stored under this study cannot join another one.
    const [stray] = await freshCopies('CT_small.dcm', 1, dir, 'stray');
    await runDcmtk('dcmodify', ['-nb', '-m', '(0020,000E)=1.2.826.0.1.3680043.8.498.1001.1', stray!]);
    const strayResult = await storescu([stray!], 'stray');
    expect(storeResponses(strayResult.output)).toEqual(['Error: CannotUnderstand']);
    expect(await instanceRow((await readPart10(stray!)).sopInstanceUid)).toBeUndefined();
    expect(
      resource.series.map((series: { uid: string; numberOfInstances: number; instance: unknown[] }) => [
        series.uid,
        series.numberOfInstances,
        series.instance.length,
      ]),
    ).toEqual([
      ['1.2.826.0.1.3680043.8.498.1001.1', 2, 2],
      ['1.2.826.0.1.3680043.8.498.1001.2', 1, 1],
    ]);
  }, 30_000);

  test('malformed and inconsistent instances are refused alone; their neighbours in the association are stored', async () => {
    const dir = join(workDir, 'refusals');
    const [good1, good2, noStudy] = await freshCopies('CT_small.dcm', 3, dir, 'refusal');
    await runDcmtk('dcmodify', ['-nb', '-ea', '(0020,000D)', noStudy!]);
    const ct1 = await readPart10(good1!);
    const ct2 = await readPart10(good2!);
    const truncated = await readPart10(join(TEST_FILES, 'MR_truncated.dcm'));
    const missingStudy = await readPart10(noStudy!);

    const peer = await RawPeer.connect(th.hub.dimsePort);
    try {
      await peer.send(
        encodeAssociateRq({
          calledAeTitle: 'HUB',
          callingAeTitle: 'RAW',
          applicationContextName: APPLICATION_CONTEXT_NAME,
          presentationContexts: [
            { id: 1, abstractSyntaxUid: CT, transferSyntaxUids: [EXPLICIT_LE] },
            { id: 3, abstractSyntaxUid: MR, transferSyntaxUids: [EXPLICIT_LE] },
          ],
          userInformation: { maxPduLength: 0, implementationClassUid: '1.2.3.4', implementationVersionName: 'RAWPEER' },
        }),
      );
      expect((await peer.nextPdu())?.type).toBe(PduType.associateAc);
      const store = async (
        contextId: number,
        messageId: number,
        sopClassUid: string,
        sopInstanceUid: string,
        dataSet: Buffer,
      ) => {
        const command = encodeRequest({
          commandField: CommandField.cStoreRq,
          messageId,
          affectedSopClassUid: sopClassUid,
          affectedSopInstanceUid: sopInstanceUid,
          priority: 0,
          hasDataSet: true,
        });
        await peer.send(
          Buffer.concat([
            ...encodePData(contextId, true, command, 16384),
            ...encodePData(contextId, false, dataSet, 16384),
          ]),
        );
        return (await peer.nextCommand(10_000)).command;
      };
      expect(await store(1, 1, CT, ct1.sopInstanceUid, ct1.dataSet)).toMatchObject({ status: Status.success });
      const refusedTruncated = await store(3, 2, MR, '1.2.826.0.1.3680043.8.498.2002', truncated.dataSet);
      expect(refusedTruncated).toMatchObject({
        status: Status.cannotUnderstand,
        errorComment: expect.stringMatching(/truncated|past the end/i),
      });
      // The command names one SOP Instance UID, the data set another: refused, not stored under either.
      const mismatch = await store(1, 3, CT, '1.2.826.0.1.3680043.8.498.2003', ct2.dataSet);
      expect(mismatch).toMatchObject({
        status: Status.cannotUnderstand,
        errorComment: expect.stringMatching(/SOP Instance UID/),
      });
      expect(await store(1, 4, CT, missingStudy.sopInstanceUid, missingStudy.dataSet)).toMatchObject({
        status: Status.cannotUnderstand,
        errorComment: 'StudyInstanceUID is missing or empty',
      });
      expect(await store(1, 5, CT, ct2.sopInstanceUid, ct2.dataSet)).toMatchObject({ status: Status.success });
      await peer.send(encodeReleaseRq());
      expect((await peer.nextPdu())?.type).toBe(PduType.releaseRp);
    } finally {
      peer.destroy();
    }
    expect(await instanceRow(ct1.sopInstanceUid)).toBeDefined();
    expect(await instanceRow(ct2.sopInstanceUid)).toBeDefined();
    expect(await instanceRow('1.2.826.0.1.3680043.8.498.2003')).toBeUndefined();
    expect(await instanceRow(missingStudy.sopInstanceUid)).toBeUndefined();
  }, 30_000);

  test('the same instance again is an idempotent success; other bytes under a stored SOP Instance UID are refused', async () => {
    const mrSmall = await readPart10(join(TEST_FILES, 'MR_small.dcm'));
    const before = await instanceRow(mrSmall.sopInstanceUid);
    const studyBefore = (await imagingStudy(before?.study_instance_uid ?? ''))[0];
    expect(studyBefore?.meta.versionId).toBe('1');
    // MR_small_jpeg_ls_lossless.dcm is MR_small.dcm compressed: same SOP Instance UID, other bytes.
    const result = await storescu(
      [
        join(TEST_FILES, 'MR_small.dcm'),
        join(TEST_FILES, 'MR_small_jpeg_ls_lossless.dcm'),
        join(TEST_FILES, 'MR_small.dcm'),
      ],
      'duplicates',
    );
    const responses = storeResponses(result.output);
    expect(responses[0]).toBe('Success');
    expect(responses[1]).toMatch(/0x111|Duplicate/i);
    expect(responses[2]).toBe('Success');
    // The first instance stays, unchanged; the ImagingStudy gets no new version.
    expect(await instanceRow(mrSmall.sopInstanceUid)).toEqual(before);
    const studyAfter = (await imagingStudy(before!.study_instance_uid))[0];
    expect(studyAfter).toEqual(studyBefore);
    expect(DUPLICATE_SOP_INSTANCE).toBe(0x0111);
  }, 30_000);
});

describe('DICOM ingest survives SIGKILL during a C-STORE stream', () => {
  test('every instance storescu saw acknowledged is indexed after a restart, with its blob intact', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'dicom-crash-'));
    const dataDir = join(workDir, 'data');
    const database = await createTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    try {
      const files = await freshCopies('CT_small.dcm', 150, join(workDir, 'corpus'));
      const parts = await Promise.all(files.map((file) => readPart10(file)));
      await writeFile(join(workDir, 'crash.cfg'), storescuProfile(parts, 'Ingest'));
      const dimsePort = await freePort();
      const env = { DATA_DIR: dataDir, DATABASE_URL: database.url, DIMSE_PORT: String(dimsePort), LOG_LEVEL: 'info' };
      const hub = await startHubProcess(env);

      // storescu -v logs "Received Store Response (Success)" for each acknowledged instance, in order.
      const storescu = spawn(
        'env',
        [
          'TCP_NODELAY=1',
          'storescu',
          '-v',
          '-xf',
          join(workDir, 'crash.cfg'),
          'Ingest',
          '-aet',
          'STORESCU',
          '-aec',
          'HUB',
          '127.0.0.1',
          String(dimsePort),
          ...files,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      let killed = false;
      const onOutput = (chunk: Buffer): void => {
        output += chunk.toString();
        if (!killed && storeResponses(output).length >= 40) {
          killed = true;
          hub.child.kill('SIGKILL');
        }
      };
      storescu.stdout.on('data', onOutput);
      storescu.stderr.on('data', onOutput);
      await new Promise<void>((resolve) => storescu.on('close', () => resolve()));
      expect(killed).toBe(true);
      expect(await hub.exited).toMatchObject({ signal: 'SIGKILL' });
      const responses = storeResponses(output);
      expect(responses.every((response) => response === 'Success')).toBe(true);
      // The kill came mid-stream: storescu did not get through the whole corpus.
      expect(responses.length).toBeLessThan(files.length);
      const acknowledged = parts.slice(0, responses.length);

      const restarted = await startHubProcess(env);
      try {
        await client.connect();
        // The restarted hub installs what the killed one had staged and not installed yet.
        await blobsInstalled(client);
        const store = new FileBlobStore(join(dataDir, 'blobs'));
        for (const part of acknowledged) {
          const row = (
            await client.query<InstanceRow>('SELECT * FROM dicom_instance WHERE sop_instance_uid = $1', [
              part.sopInstanceUid,
            ])
          ).rows[0];
          expect(row).toBeDefined();
          const bytes = await store.read(row!.blob_key);
          expect(createHash('sha256').update(bytes).digest('hex')).toBe(row!.sha256);
          expect(bytes.subarray(bytes.length - part.dataSet.length).equals(part.dataSet)).toBe(true);
        }
        // Each study's ImagingStudy catches up with its index rows, whether or not the killed hub had refreshed it.
        const studies = await client.query<{ study_instance_uid: string; number_of_instances: number }>(
          'SELECT study_instance_uid, number_of_instances FROM dicom_study',
        );
        for (const study of studies.rows) {
          const url = `${restarted.url}/fhir/ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${study.study_instance_uid}`)}`;
          await until(
            async () => {
              const resources = await fhirFetch(url);
              const entries = resources.body.entry as { resource: { numberOfInstances: number } }[] | undefined;
              return entries?.[0]?.resource.numberOfInstances === study.number_of_instances;
            },
            `the ImagingStudy of ${study.study_instance_uid} to count ${study.number_of_instances} instances`,
            10_000,
            100,
          );
        }
        expect((await client.query('SELECT 1 FROM dicom_study_refresh')).rows).toEqual([]);
        // Nothing half-written: every indexed instance has its blob.
        const all = await client.query<{ blob_key: string }>('SELECT blob_key FROM dicom_instance');
        expect(all.rows.length).toBeGreaterThanOrEqual(acknowledged.length);
        for (const row of all.rows) {
          expect((await store.size(row.blob_key)) > 0).toBe(true);
        }
        // And the restarted hub takes new instances.
        const after = await runDcmtk('storescu', [
          '-xf',
          join(workDir, 'crash.cfg'),
          'Ingest',
          '-aet',
          'STORESCU',
          '-aec',
          'HUB',
          '127.0.0.1',
          String(dimsePort),
          files[files.length - 1]!,
        ]);
        expect(after.code).toBe(0);
      } finally {
        await restarted.stop();
      }
    } finally {
      await client.end().catch(() => undefined);
      await database.drop();
      await rm(workDir, { recursive: true, force: true });
    }
  }, 120_000);
});
