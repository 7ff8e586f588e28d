/**
 * The SCP against real dcmtk peers: echoscu (accepted, wrong called AE, calling AE not allowed) and
 * storescu sending every valid pydicom test file over one association, each in its own transfer
 * syntax, with some instances refused by `onStore` in a second run.
 */
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/logger.ts';
import { Status } from '../src/dicom/dimse/command-set.ts';
import { writePart10File } from '../src/dicom/dimse/part10-writer.ts';
import {
  fileStoreHandler,
  readPart10,
  runDcmtk,
  startDcmtk,
  storescuProfile,
  waitForListener,
} from './support/dicom/test-peer.ts';
import type { FileStoreRequest } from './support/dicom/test-peer.ts';
import { startDimseServer } from '../src/dicom/dimse/server.ts';
import type { DimseServer, StoreRequest, StoreResult } from '../src/dicom/dimse/server.ts';
import { freePort } from './support/free-port.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const CLASSIFICATION = fileURLToPath(
  new URL('./support/dicom/testdata/pydicom-testfiles-classified.txt', import.meta.url),
);

/**
 * Valid = Part 10 (p10=1) and read without error by dcmdump (dump_rc=0). storescu can send only those
 * whose data set has a SOP Class and Instance UID encoded as UI: that leaves out the DICOMDIRs, a few
 * fragments without a SOP class, and rtdose_rle.dcm (its UIDs are encoded as UN).
 */
async function validTestFiles(): Promise<TestFile[]> {
  const lines = (await readFile(CLASSIFICATION, 'utf8')).split('\n');
  const valid = lines
    .filter((line) => / p10=1 /.test(line) && / dump_rc=0 /.test(line))
    .map((line) => join(TEST_FILES, line.split(/\s+/)[0]!))
    .filter((path) => existsSync(path));
  const dump = await runDcmtk('dcmdump', ['+F', '-q', '-Un', '+P', '0008,0016', '+P', '0008,0018', ...valid]);
  const sendable = new Map<string, { sopClassUid: string; sopInstanceUid: string }>();
  for (const section of dump.output.split('# dcmdump').slice(1)) {
    const name = /^ \(\d+\/\d+\): (.*)$/m.exec(section)?.[1];
    const sopClassUid = /\(0008,0016\) UI \[([^\]]+)\]/.exec(section)?.[1];
    const sopInstanceUid = /\(0008,0018\) UI \[([^\]]+)\]/.exec(section)?.[1];
    if (name && sopClassUid && sopInstanceUid) {
      sendable.set(name, { sopClassUid, sopInstanceUid });
    }
  }
  const files: TestFile[] = [];
  for (const path of valid) {
    const uids = sendable.get(path);
    if (uids) {
      files.push({ ...(await readPart10(path)), path, ...uids });
    }
  }
  return files;
}

/** A pydicom test file with the SOP UIDs of its data set (which storescu sends; badVR.dcm's meta disagrees). */
interface TestFile {
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  dataSet: Buffer;
}

describe('DIMSE SCP with dcmtk peers', () => {
  let workDir: string;
  let tempDir: string;
  let outDir: string;
  let server: DimseServer;
  let stored: FileStoreRequest[] = [];
  let refuse: (request: StoreRequest, index: number) => StoreResult | undefined = () => undefined;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dimse-dcmtk-'));
    tempDir = join(workDir, 'incoming');
    outDir = join(workDir, 'stored');
    await mkdir(tempDir);
    await mkdir(outDir);
    server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      allowedCallingAeTitles: ['ECHOSCU', 'STORESCU'],
      logger: createLogger(process.env.DIMSE_TEST_LOG ?? 'silent'),
      maxPduLength: 65536,
      store: fileStoreHandler(tempDir, async (request) => {
        const index = stored.length;
        stored.push(request);
        const refusal = refuse(request, index);
        if (refusal) {
          return refusal;
        }
        await writePart10File(request.datasetFile, join(outDir, `${index}.dcm`), {
          mediaStorageSopClassUid: request.sopClassUid,
          mediaStorageSopInstanceUid: request.sopInstanceUid,
          transferSyntaxUid: request.transferSyntaxUid,
          sourceApplicationEntityTitle: request.callingAeTitle,
        });
        return { status: Status.success };
      }),
    });
  });

  afterAll(async () => {
    await server.close();
    await rm(workDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    stored = [];
    refuse = () => undefined;
    await rm(outDir, { recursive: true, force: true });
    await mkdir(outDir);
  });

  test('echoscu gets a C-ECHO response', async () => {
    const result = await runDcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', 'HUB', '127.0.0.1', String(server.port)]);
    expect(result).toEqual({ code: 0, output: '' });
  });

  test('echoscu is rejected for a wrong called AE title', async () => {
    const result = await runDcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', 'NOTHUB', '127.0.0.1', String(server.port)]);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Rejected Permanent/i);
    expect(result.output).toMatch(/Called AE Title Not Recognized/i);
  });

  test('echoscu is rejected for a calling AE title outside the allow-list', async () => {
    const result = await runDcmtk('echoscu', ['-aet', 'INTRUDER', '-aec', 'HUB', '127.0.0.1', String(server.port)]);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Calling AE Title Not Recognized/i);
  });

  test('storescu stores every valid pydicom test file over one association, byte for byte as sent', async () => {
    const originals = await validTestFiles();
    const files = originals.map((file) => file.path);
    expect(files.length).toBeGreaterThan(100);
    const profile = join(workDir, 'all.cfg');
    await writeFile(profile, storescuProfile(originals, 'Hub'));
    const storescuArgs = (aeTitle: string, port: number) => [
      '-xf',
      profile,
      'Hub',
      '-aet',
      'STORESCU',
      '-aec',
      aeTitle,
      '127.0.0.1',
      String(port),
      ...files,
    ];

    // storescu re-encodes what it sends (explicit sequence lengths, recalculated group lengths, no
    // trailing padding, OB for encapsulated pixel data, deflate redone), so the reference for "the
    // bytes sent" is dcmtk's own receiver in bit-preserving mode, fed the same run.
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
      const referenceRun = await runDcmtk('storescu', storescuArgs('REF', referencePort), 25_000);
      expect(referenceRun.output.split('\n').filter((line) => line.startsWith('E:'))).toEqual([]);
    } finally {
      await reference.stop();
    }
    const referenceFiles = (await readdir(referenceDir)).sort(
      (a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()),
    );
    expect(referenceFiles).toHaveLength(files.length);

    const result = await runDcmtk('storescu', storescuArgs('HUB', server.port), 25_000);
    expect(result.output.split('\n').filter((line) => line.startsWith('E:'))).toEqual([]);
    expect(result.code).toBe(0);
    expect(stored).toHaveLength(files.length);
    const differing: string[] = [];
    let identicalToFile = 0;
    for (const [index, original] of originals.entries()) {
      const request = stored[index]!;
      expect({
        file: files[index],
        sopInstanceUid: request.sopInstanceUid,
        transferSyntaxUid: request.transferSyntaxUid,
      }).toEqual({
        file: files[index],
        sopInstanceUid: original.sopInstanceUid,
        transferSyntaxUid: original.transferSyntaxUid,
      });
      const received = await readPart10(join(outDir, `${index}.dcm`));
      expect({ file: files[index], ts: received.transferSyntaxUid, sopClass: received.sopClassUid }).toEqual({
        file: files[index],
        ts: original.transferSyntaxUid,
        sopClass: original.sopClassUid,
      });
      const sent = await readPart10(join(referenceDir, referenceFiles[index]!));
      if (!received.dataSet.equals(sent.dataSet)) {
        differing.push(files[index]!);
      }
      if (received.dataSet.equals(original.dataSet)) {
        identicalToFile++;
      }
    }
    expect(differing).toEqual([]);
    // Most files go through storescu unchanged: then the stored data set is the file's own.
    expect(identicalToFile).toBeGreaterThan(files.length / 2);
    expect(await readdir(tempDir)).toEqual([]);
  }, 55_000);

  test('instances refused by onStore fail alone; the rest of the association is stored', async () => {
    const originals = (await validTestFiles()).slice(0, 24);
    const files = originals.map((file) => file.path);
    const profile = join(workDir, 'some.cfg');
    await writeFile(profile, storescuProfile(originals, 'Hub'));
    const refusals = [
      { status: Status.outOfResources, comment: 'disk full' },
      { status: Status.dataSetDoesNotMatchSopClass, comment: 'data set does not match SOP class' },
      { status: Status.cannotUnderstand, comment: 'cannot parse' },
      { status: Status.processingFailure, comment: 'index write failed' },
    ];
    refuse = (_request, index) => (index % 6 === 1 ? refusals[(index - 1) / 6] : undefined);
    const result = await runDcmtk(
      'storescu',
      [
        '-v',
        '-nh',
        '-xf',
        profile,
        'Hub',
        '-aet',
        'STORESCU',
        '-aec',
        'HUB',
        '127.0.0.1',
        String(server.port),
        ...files,
      ],
      25_000,
    );
    expect(stored).toHaveLength(files.length);
    const refusedIndexes = [1, 7, 13, 19];
    for (const [index] of originals.entries()) {
      expect(existsSync(join(outDir, `${index}.dcm`))).toBe(!refusedIndexes.includes(index));
    }
    // storescu -v logs each response in order; one association carried all of them.
    const responses = result.output.split('\n').filter((line) => line.includes('Received Store Response'));
    expect(responses.map((line) => line.replace(/^.*Received Store Response \((.*)\)$/, '$1'))).toEqual(
      originals.map(
        (_file, index) =>
          ({
            1: 'Refused: OutOfResources',
            7: 'Error: DataSetDoesNotMatchSOPClass',
            13: 'Error: CannotUnderstand',
            19: 'Unknown Status: 0x110',
          })[index] ?? 'Success',
      ),
    );
    expect(result.output.match(/Requesting Association/g)).toHaveLength(1);
    expect(result.output).not.toMatch(/Abort/i);
    expect(await readdir(tempDir)).toEqual([]);
  }, 30_000);
});
