/**
 * STOW-RS against a real hub: a batch of pydicom files stored byte for byte and indexed with their
 * ImagingStudy; bad parts failing alone; a study UID mismatch; media type and framing refusals;
 * idempotent repeats; no spooled file left behind.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { writeMultipartRelated } from '../src/dicom/multipart.ts';
import type { OutgoingPart } from '../src/dicom/multipart.ts';
import { readPart10, runDcmtk } from './support/dicom/test-peer.ts';
import { FailureReason } from '../src/routes/dicomweb/stow.ts';
import { DEFAULT_MEMORY_BYTES, FileBlobStore } from '../src/storage/blob-store.ts';
import { installedBlob } from './support/staged-blobs.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const BATCH = [
  'CT_small.dcm',
  'MR_small.dcm',
  'JPEG2000.dcm',
  'SC_rgb_jpeg_dcmtk.dcm',
  'image_dfl.dcm',
  'ExplVR_BigEnd.dcm',
  'waveform_ecg.dcm',
  'liver_1frame.dcm',
];

type DicomJson = Record<string, { vr: string; Value?: any[] }>;

interface StowAnswer {
  status: number;
  headers: Headers;
  body: DicomJson | string;
}

async function body(parts: OutgoingPart[]): Promise<{ contentType: string; bytes: Buffer }> {
  const multipart = writeMultipartRelated(parts, { type: 'application/dicom' });
  const chunks: Buffer[] = [];
  for await (const chunk of multipart.body) {
    chunks.push(chunk as Buffer);
  }
  return { contentType: multipart.contentType, bytes: Buffer.concat(chunks) };
}

const dicomPart = (bytes: Buffer): OutgoingPart => ({ body: bytes, contentType: 'application/dicom' });
const testFile = (name: string): Promise<Buffer> => readFile(join(TEST_FILES, name));
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const uidsOf = (sequence: { Value?: any[] } | undefined, tag: string): string[] =>
  (sequence?.Value ?? []).map((item) => item[tag]?.Value?.[0]);

describe('STOW-RS', () => {
  let th: TestHub;
  let blobs: FileBlobStore;

  const stow = async (path: string, contentType: string, bytes: Buffer): Promise<StowAnswer> => {
    const response = await fetch(`${th.baseUrl}/dicomweb${path}`, {
      method: 'POST',
      headers: { 'content-type': contentType, accept: 'application/dicom+json' },
      body: new Uint8Array(bytes),
    });
    const text = await response.text();
    const isJson = (response.headers.get('content-type') ?? '').startsWith('application/dicom+json');
    return {
      status: response.status,
      headers: response.headers,
      body: isJson ? (JSON.parse(text) as DicomJson) : text,
    };
  };

  const stowParts = async (path: string, parts: OutgoingPart[]): Promise<StowAnswer> => {
    const { contentType, bytes } = await body(parts);
    return stow(path, contentType, bytes);
  };

  const instanceRow = async (sopInstanceUid: string) =>
    (
      await th.hub.db.query<{ blob_key: string; study_instance_uid: string; sha256: string }>(
        'SELECT blob_key, study_instance_uid, sha256 FROM dicom_instance WHERE sop_instance_uid = $1',
        [sopInstanceUid],
      )
    ).rows[0];

  /** The blob store's temp files: parts spilled while they arrive, blobs being written. */
  const spooled = async (): Promise<string[]> => readdir(join(th.config.dataDir, 'blobs', 'tmp')).catch(() => []);
  /**
   * No temp file is left. Staged instances are installed as files after the answer (the installer
   * writes a temp file, then renames it), so a temp file may be there for a moment: it must go.
   */
  const spoolEmptied = () =>
    until(async () => (await spooled()).length === 0, 'the blob store’s temp files to be gone', 5_000, 20);

  beforeAll(async () => {
    th = await startTestHub();
    blobs = new FileBlobStore(join(th.config.dataDir, 'blobs'));
  });

  afterAll(async () => {
    await th?.stop();
  });

  test('a batch of valid instances: 200, RetrieveURLs, index rows, byte-exact blobs, ImagingStudy', async () => {
    const files = await Promise.all(BATCH.map(testFile));
    const answer = await stowParts('/studies', files.map(dicomPart));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    const response = answer.body as DicomJson;
    expect(response['00081198']).toBeUndefined();
    const referenced = response['00081199']?.Value ?? [];
    expect(referenced).toHaveLength(BATCH.length);
    // Several studies in one request: the top-level RetrieveURL (Type 2) is present and empty.
    expect(response['00081190']).toEqual({ vr: 'UR' });

    for (const [index, item] of referenced.entries()) {
      const sopInstanceUid = item['00081155'].Value[0] as string;
      expect(item['00081150'].Value[0]).toMatch(/^1\.2\.840\.10008\.5\.1\.4\.1\.1\./);
      const row = await instanceRow(sopInstanceUid);
      expect(row).toBeDefined();
      const url = item['00081190'].Value[0] as string;
      expect(url).toMatch(
        new RegExp(
          `^${th.baseUrl}/dicomweb/studies/${row!.study_instance_uid}/series/[0-9.]+/instances/${sopInstanceUid}$`,
        ),
      );
      const stored = await installedBlob(th.hub.db, blobs, row!.blob_key);
      expect({ file: BATCH[index], sha256: sha256(stored) }).toEqual({
        file: BATCH[index],
        sha256: sha256(files[index]!),
      });
      expect(row!.sha256).toBe(sha256(files[index]!));

      // The ImagingStudy follows once the study has been quiet for a moment (the refresher), not with the answer.
      const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${row!.study_instance_uid}`);
      await until(
        async () => {
          const studies = await fhirFetch(`${th.fhir}/ImagingStudy?identifier=${identifier}`);
          expect(studies.status).toBe(200);
          const entries = (studies.body.entry ?? []) as { resource: { series: { instance: { uid: string }[] }[] } }[];
          expect(entries.length).toBeLessThanOrEqual(1);
          return entries.some((entry) =>
            entry.resource.series.some((series) => series.instance.some((i) => i.uid === sopInstanceUid)),
          );
        },
        `the ImagingStudy to list ${sopInstanceUid}`,
        5_000,
        50,
      );
    }
    await spoolEmptied();
  }, 20_000);

  test('a mixed batch: 202, the truncated file and the non-DICOM part fail alone, the others are stored', async () => {
    const good = await Promise.all(['test-SR.dcm', 'JPGExtended.dcm'].map(testFile));
    const truncated = await testFile('MR_truncated.dcm');
    const answer = await stowParts('/studies', [
      dicomPart(good[0]!),
      dicomPart(truncated),
      dicomPart(Buffer.from('this is not a DICOM file\n'.repeat(20))),
      dicomPart(good[1]!),
    ]);
    expect(answer.status).toBe(202);
    const response = answer.body as DicomJson;
    const failed = response['00081198']?.Value ?? [];
    expect(failed).toHaveLength(2);
    expect(failed.map((item) => item['00081197'])).toEqual([
      { vr: 'US', Value: [FailureReason.cannotUnderstand] },
      { vr: 'US', Value: [FailureReason.cannotUnderstand] },
    ]);
    // The truncated file's meta group is readable, so its UIDs are reported; the text part has none.
    expect(failed[0]['00081155'].Value?.[0]).toMatch(/^[0-9.]+$/);
    expect(failed[1]['00081155']).toEqual({ vr: 'UI' });
    const stored = uidsOf(response['00081199'], '00081155');
    expect(stored).toHaveLength(2);
    for (const uid of stored) {
      expect(await instanceRow(uid)).toBeDefined();
    }
    // MR_truncated.dcm shares its SOP Instance UID with MR_small.dcm, stored above, which stays as it was.
    expect((await instanceRow(failed[0]['00081155'].Value[0]))?.sha256).not.toBe(sha256(truncated));
    await spoolEmptied();
  }, 20_000);

  test('POST /studies/{uid} with an instance of another study: 409, nothing stored', async () => {
    const file = await testFile('reportsi.dcm');
    const answer = await stowParts('/studies/1.2.826.0.1.3680043.8.498.999', [dicomPart(file)]);
    expect(answer.status).toBe(409);
    const response = answer.body as DicomJson;
    expect(response['00081190']).toEqual({
      vr: 'UR',
      Value: [`${th.baseUrl}/dicomweb/studies/1.2.826.0.1.3680043.8.498.999`],
    });
    const failed = response['00081198']?.Value ?? [];
    expect(failed).toHaveLength(1);
    expect(failed[0]['00081197']).toEqual({ vr: 'US', Value: [FailureReason.studyMismatch] });
    expect(await instanceRow(failed[0]['00081155'].Value[0])).toBeUndefined();
    expect(response['00081199']).toBeUndefined();
  });

  test('POST /studies/{uid} with an instance of that study: 200 with the study RetrieveURL', async () => {
    const file = await testFile('reportsi.dcm');
    const first = await stowParts('/studies', [dicomPart(file)]);
    const studyUrl = ((first.body as DicomJson)['00081190']!.Value ?? [])[0] as string;
    const study = studyUrl.split('/').pop()!;
    const [sopInstanceUid] = uidsOf((first.body as DicomJson)['00081199'], '00081155');
    const answer = await stowParts(`/studies/${study}`, [dicomPart(file)]);
    expect(answer.status).toBe(200);
    expect((answer.body as DicomJson)['00081190']).toEqual({ vr: 'UR', Value: [studyUrl] });
    expect(uidsOf((answer.body as DicomJson)['00081199'], '00081155')).toEqual([sopInstanceUid]);
  });

  test('the same instance twice, in one request and again later: 200 each time, stored once', async () => {
    const file = await testFile('CT_small.dcm');
    for (const parts of [[dicomPart(file), dicomPart(file)], [dicomPart(file)]]) {
      const answer = await stowParts('/studies', parts);
      expect(answer.status).toBe(200);
      expect(uidsOf((answer.body as DicomJson)['00081199'], '00081155')).toEqual(
        parts.map(() => '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322'),
      );
    }
    const count = await th.hub.db.query<{ count: string }>(
      'SELECT count(*) FROM dicom_instance WHERE sop_instance_uid = $1',
      ['1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322'],
    );
    expect(Number(count.rows[0]!.count)).toBe(1);
  });

  test('the same SOP Instance UID with other bytes: 409 with 0x0111, the first instance stays', async () => {
    const original = await testFile('MR_small.dcm');
    const altered = Buffer.from(original);
    altered[altered.length - 1] = altered[altered.length - 1]! ^ 0xff;
    const answer = await stowParts('/studies', [dicomPart(altered)]);
    expect(answer.status).toBe(409);
    expect(((answer.body as DicomJson)['00081198']!.Value ?? [])[0]['00081197']).toEqual({
      vr: 'US',
      Value: [FailureReason.duplicateSopInstance],
    });
    const row = await instanceRow('1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457');
    expect(row!.sha256).toBe(sha256(original));
  });

  test('many instances in one request are stored together, each with its own outcome', async () => {
    // Sixteen parts ingested at once: their index rows go to PostgreSQL in shared statements
    // (ingest.ts), which must still give each instance its own answer and the studies the right counts.
    const dir = await mkdtemp(join(tmpdir(), 'stow-many-'));
    try {
      const paths = Array.from({ length: 13 }, (_unused, i) => join(dir, `copy-${i}.dcm`));
      for (const path of paths) {
        await copyFile(join(TEST_FILES, 'CT_small.dcm'), path);
      }
      expect((await runDcmtk('dcmodify', ['-nb', '-gst', '-gse', '-gin', ...paths], 60_000)).code).toBe(0);
      // The last copy claims the first copy's series under a study of its own: refused.
      const sharedSeries = `1.2.826.0.1.3680043.8.498.7777.${Date.now()}`;
      expect(
        (await runDcmtk('dcmodify', ['-nb', '-m', `(0020,000E)=${sharedSeries}`, paths[0]!, paths[12]!])).code,
      ).toBe(0);
      const files = await Promise.all(paths.map((path) => readFile(path)));
      const uids = await Promise.all(paths.map(async (path) => (await readPart10(path)).sopInstanceUid));
      // The second copy's UID again with other bytes (a conflict), and the third's again unchanged (a duplicate).
      const altered = Buffer.from(files[1]!);
      altered[altered.length - 1] = altered[altered.length - 1]! ^ 0xff;
      // The first copy goes alone first, so the last one's series is already another study's.
      expect((await stowParts('/studies', [dicomPart(files[0]!)])).status).toBe(200);
      const parts = [
        ...files.map(dicomPart),
        dicomPart(altered),
        dicomPart(files[2]!),
        dicomPart(Buffer.from('not DICOM at all')),
      ];
      const answer = await stowParts('/studies', parts);
      expect(answer.status).toBe(202);
      const json = answer.body as DicomJson;
      expect(uidsOf(json['00081199'], '00081155').sort()).toEqual([...uids.slice(0, 12), uids[2]].sort());
      const failed = (json['00081198']?.Value ?? []) as DicomJson[];
      expect(
        failed
          .map((item) => item['00081155']?.Value?.[0])
          .filter((uid) => uid !== undefined)
          .sort(),
      ).toEqual([uids[1], uids[12]].sort());
      expect(failed).toHaveLength(3);
      expect(failed.find((item) => item['00081155']?.Value?.[0] === uids[1])!['00081197']).toEqual({
        vr: 'US',
        Value: [FailureReason.duplicateSopInstance],
      });
      const rows = await th.hub.db.query<{ sop_instance_uid: string; sha256: string; number_of_instances: number }>(
        `SELECT i.sop_instance_uid, i.sha256, s.number_of_instances FROM dicom_instance i
           JOIN dicom_study s USING (study_instance_uid) WHERE i.sop_instance_uid = ANY($1::text[])`,
        [uids],
      );
      expect(rows.rows.map((row) => row.sop_instance_uid).sort()).toEqual(uids.slice(0, 12).sort());
      expect(rows.rows.every((row) => row.number_of_instances === 1)).toBe(true);
      expect(rows.rows.find((row) => row.sop_instance_uid === uids[1])!.sha256).toBe(sha256(files[1]!));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('media types: 415 for another Content-Type or a type other than application/dicom; a part of another type fails alone', async () => {
    const file = await testFile('CT_small.dcm');
    expect((await stow('/studies', 'application/dicom', file)).status).toBe(415);
    const { bytes } = await body([dicomPart(file)]);
    const boundary = bytes.toString('latin1', 2, bytes.indexOf('\r\n'));
    expect(
      (await stow('/studies', `multipart/related; type="application/dicom+xml"; boundary=${boundary}`, bytes)).status,
    ).toBe(415);
    expect((await stow('/studies', `multipart/mixed; boundary=${boundary}`, bytes)).status).toBe(415);
    const mixed = await stowParts('/studies', [
      dicomPart(file),
      { body: Buffer.from('{}'), contentType: 'application/json' },
    ]);
    expect(mixed.status).toBe(202);
    expect(((mixed.body as DicomJson)['00081198']!.Value ?? [])[0]['00081197']).toEqual({
      vr: 'US',
      Value: [FailureReason.cannotUnderstand],
    });
  });

  test('malformed requests: 400 for a missing close delimiter, no parts, a bad boundary or study UID', async () => {
    const file = await testFile('MR_small.dcm');
    const { contentType, bytes } = await body([dicomPart(file)]);
    const unclosed = bytes.subarray(0, bytes.lastIndexOf('\r\n--'));
    const truncated = await stow('/studies', contentType, unclosed);
    expect(truncated.status).toBe(400);
    expect(truncated.body).toMatch(/close delimiter/);

    const boundary = 'b0undary';
    expect(
      (
        await stow(
          '/studies',
          `multipart/related; type=application/dicom; boundary=${boundary}`,
          Buffer.from(`--${boundary}--\r\n`),
        )
      ).status,
    ).toBe(400);
    expect((await stow('/studies', 'multipart/related; type=application/dicom', bytes)).status).toBe(400);
    expect((await stow('/studies/not-a-uid', contentType, bytes)).status).toBe(400);
    await spoolEmptied();
  });

  test('a body cut off after a complete part: the part before is stored and listed, with the 400', async () => {
    const [first, second] = await Promise.all(['CT_small.dcm', 'MR_small.dcm'].map(testFile));
    const { contentType, bytes } = await body([dicomPart(first!), dicomPart(second!)]);
    const cut = bytes.subarray(0, bytes.lastIndexOf('\r\n--') - 100);
    const answer = await stow('/studies', contentType, cut);
    expect(answer.status).toBe(400);
    expect(answer.headers.get('warning')).toMatch(/close delimiter/);
    const stored = uidsOf((answer.body as DicomJson)['00081199'], '00081155');
    expect(stored).toHaveLength(1);
    expect(await instanceRow(stored[0]!)).toBeDefined();
    await spoolEmptied();
  });

  test('a client that goes away mid-part leaves no spooled file, and the hub goes on', async () => {
    // Past the blob writer's in-memory limit, so the part spills to a temp file while it arrives.
    const large = Buffer.concat([await testFile('MR_small.dcm'), Buffer.alloc(4 * DEFAULT_MEMORY_BYTES)]);
    const { contentType, bytes } = await body([dicomPart(large)]);
    await new Promise<void>((resolve, reject) => {
      const upload = request(`${th.baseUrl}/dicomweb/studies`, {
        method: 'POST',
        headers: { 'content-type': contentType },
      });
      upload.on('error', () => resolve());
      upload.write(bytes.subarray(0, bytes.length / 2), () => {
        until(async () => (await spooled()).length > 0, 'the part to spill to a temp file', 2_000, 20)
          .then(async () => {
            expect((await spooled()).length).toBe(1);
            upload.destroy();
            resolve();
          })
          .catch(reject);
      });
    });
    await until(async () => (await spooled()).length === 0, 'the spooled file to be removed', 1_000, 20);
    const again = await stowParts('/studies', [dicomPart(await testFile('MR_small.dcm'))]);
    expect(again.status).toBe(200);
  });

  test('a large body refused from its headers is answered without being read to its end', async () => {
    const large = Buffer.alloc(64 * 1024 * 1024, 0x41);
    const started = Date.now();
    const answer = await stow('/studies', 'application/octet-stream', large);
    expect(answer.status).toBe(415);
    expect(answer.headers.get('connection')).toBe('close');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
