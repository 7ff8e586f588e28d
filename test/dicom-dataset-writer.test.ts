/** The data set writer, read back by our reader and by dcmtk's dcmdump. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getString } from '../src/dicom/attributes.ts';
import { BufferSource } from '../src/dicom/byte-source.ts';
import { DEFAULT_PART10_LIMITS, DatasetReader } from '../src/dicom/dataset-reader.ts';
import { writeDataset } from '../src/dicom/dataset-writer.ts';
import type { WritableElement } from '../src/dicom/dataset-writer.ts';
import { buildPart10Header } from '../src/dicom/dimse/part10-writer.ts';
import { runDcmtk } from './support/dicom/test-peer.ts';

const IDENTIFIER: WritableElement[] = [
  { tag: '00100010', vr: 'PN', value: 'Müller^Jürgen' },
  { tag: '00080005', vr: 'CS', value: 'ISO_IR 192' },
  { tag: '00080052', vr: 'CS', value: 'IMAGE' },
  { tag: '0020000D', vr: 'UI', value: '1.2.3' },
  { tag: '00080061', vr: 'CS', value: 'CT\\MR' },
  { tag: '00080020', vr: 'DA', value: '' },
  { tag: '00280010', vr: 'US', value: '512' },
  { tag: '00200013', vr: 'IS', value: '7' },
  { tag: '00081030', vr: 'LO' },
  { tag: '00081110', vr: 'SQ', value: [[{ tag: '00081150', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' }], []] },
];

function read(bytes: Buffer, explicitVr: boolean) {
  return new DatasetReader(new BufferSource(bytes), DEFAULT_PART10_LIMITS).readTopLevel(0, {
    explicitVr,
    bigEndian: false,
  });
}

describe('dataset-writer', () => {
  test.each([true, false])('round trip through our reader (explicit VR %s)', (explicitVr) => {
    const bytes = writeDataset(IDENTIFIER, { explicitVr, textEncoding: 'utf-8' });
    expect(bytes.length % 2).toBe(0);
    const dataset = read(bytes, explicitVr);
    expect([...dataset.elements.keys()]).toEqual([
      '00080005',
      '00080020',
      '00080052',
      '00080061',
      '00081030',
      '00081110',
      '00100010',
      '0020000D',
      '00200013',
      '00280010',
    ]);
    expect(getString(dataset, '00100010')).toBe('Müller^Jürgen');
    expect(getString(dataset, '0020000D')).toBe('1.2.3');
    expect(dataset.elements.get('0020000D')!.value).toEqual(Buffer.from('1.2.3\0'));
    expect(getString(dataset, '00080052')).toBe('IMAGE');
    expect(dataset.elements.get('00080052')!.value).toEqual(Buffer.from('IMAGE '));
    expect(getString(dataset, '00080061')).toBe('CT\\MR');
    expect(getString(dataset, '00080020')).toBe('');
    expect(getString(dataset, '00081030')).toBe('');
    expect(getString(dataset, '00280010')).toBe('512');
    expect(dataset.elements.get('00280010')!.value).toEqual(Buffer.from([0x00, 0x02]));
    expect(getString(dataset, '00200013')).toBe('7');
    const items = dataset.elements.get('00081110')!.items!;
    expect(items).toHaveLength(2);
    expect(getString(items[0]!, '00081150')).toBe('1.2.840.10008.5.1.4.1.1.2');
    expect(items[1]!.elements.size).toBe(0);
  });

  test('latin1 text encoding and refusals', () => {
    expect(writeDataset([{ tag: '00100010', vr: 'PN', value: 'Dürr' }], { explicitVr: true })).toEqual(
      Buffer.from([0x10, 0x00, 0x10, 0x00, 0x50, 0x4e, 0x04, 0x00, 0x44, 0xfc, 0x72, 0x72]),
    );
    expect(() => writeDataset([{ tag: '0010001', vr: 'PN' }], { explicitVr: true })).toThrow(/invalid tag/);
    expect(() =>
      writeDataset(
        [
          { tag: '00100010', vr: 'PN' },
          { tag: '00100010', vr: 'PN' },
        ],
        { explicitVr: true },
      ),
    ).toThrow(/duplicate/);
    expect(() => writeDataset([{ tag: '00280010', vr: 'US', value: 'many' }], { explicitVr: true })).toThrow(
      /not a number/,
    );
  });

  test('dcmdump reads what we write', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'dataset-writer-'));
    try {
      const file = join(workDir, 'identifier.dcm');
      const dataSet = writeDataset(IDENTIFIER, { explicitVr: true, textEncoding: 'utf-8' });
      const header = buildPart10Header({
        mediaStorageSopClassUid: '1.2.840.10008.5.1.4.1.2.2.1',
        mediaStorageSopInstanceUid: '1.2.3.4',
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        sourceApplicationEntityTitle: 'TEST',
      });
      await writeFile(file, Buffer.concat([header, dataSet]));
      const dump = await runDcmtk('dcmdump', ['-q', file]);
      expect(dump.code).toBe(0);
      expect(dump.output).toContain('(0010,0010) PN [Müller^Jürgen]');
      expect(dump.output).toContain('(0028,0010) US 512');
      expect(dump.output).toContain('(0008,0061) CS [CT\\MR]');
      expect(dump.output).toContain('(0008,1150) UI =CTImageStorage');
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  });
});
