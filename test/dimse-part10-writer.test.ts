/** The File Meta Information we write must make a Part 10 file that dcmtk reads as the original. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../src/dicom/dimse/implementation.ts';
import { buildFileMetaInformation, writePart10File } from '../src/dicom/dimse/part10-writer.ts';
import { readPart10, runDcmtk } from './support/dicom/test-peer.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

describe('part10-writer', () => {
  let workDir: string;
  beforeAll(async () => (workDir = await mkdtemp(join(tmpdir(), 'part10-'))));
  afterAll(async () => rm(workDir, { recursive: true, force: true }));

  test('group length counts every following group 0002 byte and every value has even length', () => {
    const meta = buildFileMetaInformation({
      mediaStorageSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      mediaStorageSopInstanceUid: '1.2.345',
      transferSyntaxUid: '1.2.840.10008.1.2',
      sourceApplicationEntityTitle: 'CT1',
    });
    expect(meta.subarray(0, 8)).toEqual(Buffer.from([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 0x04, 0x00]));
    expect(meta.readUInt32LE(8)).toBe(meta.length - 12);
    expect(meta.length % 2).toBe(0);
  });

  test.each(['CT_small.dcm', 'MR_small_bigendian.dcm', 'SC_rgb_rle.dcm', 'image_dfl.dcm', 'JPEG2000.dcm'])(
    '%s rewrapped keeps its data set and reads in dcmtk',
    async (name) => {
      const original = await readPart10(join(TEST_FILES, name));
      const dataSetFile = join(workDir, `${name}.dataset`);
      const part10File = join(workDir, name);
      await writeFile(dataSetFile, original.dataSet);
      await writePart10File(dataSetFile, part10File, {
        mediaStorageSopClassUid: original.sopClassUid,
        mediaStorageSopInstanceUid: original.sopInstanceUid,
        transferSyntaxUid: original.transferSyntaxUid,
        sourceApplicationEntityTitle: 'MODALITY',
      });
      const written = await readPart10(part10File);
      expect(written).toEqual(original);
      expect((await readFile(part10File)).subarray(0, 128).equals(Buffer.alloc(128))).toBe(true);
      const dump = await runDcmtk('dcmdump', [
        '-Un',
        '+P',
        '0002,0001',
        '+P',
        '0002,0012',
        '+P',
        '0002,0013',
        '+P',
        '0002,0016',
        '+P',
        '0002,0010',
        part10File,
      ]);
      expect(dump.code).toBe(0);
      expect(dump.output).toContain('(0002,0001) OB 00\\01');
      expect(dump.output).toContain(`(0002,0012) UI [${IMPLEMENTATION_CLASS_UID}]`);
      expect(dump.output).toContain(`(0002,0013) SH [${IMPLEMENTATION_VERSION_NAME}]`);
      expect(dump.output).toContain('(0002,0016) AE [MODALITY]');
      expect(dump.output).toContain(`(0002,0010) UI [${original.transferSyntaxUid}]`);
    },
  );
});
