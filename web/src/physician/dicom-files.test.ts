/** The browser's side of a CD upload: which files are sent, in which batches, and the hub's answer per file (npm run test:unit). */
import { describe, expect, test } from '@jest/globals';
import {
  BATCH_FILES,
  batchesOf,
  failureReasonText,
  readMeta,
  readStoreResponse,
  selectInstances,
} from './dicom-files.ts';
import type { DicomFile } from './dicom-files.ts';

/** A Part 10 header: preamble, DICM, and group 0002 with the SOP Class and Instance UIDs (Explicit VR LE). */
function part10(sopClass: string, sopInstance: string, extra = 0): Uint8Array<ArrayBuffer> {
  const element = (tag: number, value: string): number[] => {
    const text = value.length % 2 === 1 ? `${value}\0` : value;
    return [
      0x02,
      0x00,
      tag,
      0x00,
      0x55,
      0x49,
      text.length & 0xff,
      text.length >> 8,
      ...[...text].map((c) => c.charCodeAt(0)),
    ];
  };
  return new Uint8Array([
    ...new Array<number>(128).fill(0),
    ...[...'DICM'].map((c) => c.charCodeAt(0)),
    ...element(0x02, sopClass),
    ...element(0x03, sopInstance),
    ...new Array<number>(extra).fill(7),
  ]);
}
const file = (bytes: Uint8Array<ArrayBuffer> | string, name: string) => new File([bytes], name);

describe('a CD in the browser', () => {
  test('the header gives the SOP Class and Instance UIDs; anything without DICM is not DICOM', () => {
    expect(readMeta(part10('1.2.840.10008.5.1.4.1.1.2', '1.2.3.4'))).toEqual({
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: '1.2.3.4',
    });
    expect(readMeta(new TextEncoder().encode('[autorun]'))).toBeUndefined();
    expect(readMeta(new Uint8Array(200))).toBeUndefined();
  });

  test('instances are sent; the DICOMDIR, other files and a second copy are left out with the reason', async () => {
    const selection = await selectInstances([
      file(part10('1.2.840.10008.5.1.4.1.1.2', '1.2.3.1'), 'IM000001'),
      file(part10('1.2.840.10008.1.3.10', '1.2.3.9'), 'DICOMDIR'),
      file('This disc holds images', 'README.TXT'),
      file(part10('1.2.840.10008.5.1.4.1.1.2', '1.2.3.1'), 'IM000002'),
      file(part10('1.2.840.10008.5.1.4.1.1.4', '1.2.3.2'), 'IM000003'),
    ]);
    expect(selection.instances.map((instance) => [instance.path, instance.sopInstanceUid])).toEqual([
      ['IM000001', '1.2.3.1'],
      ['IM000003', '1.2.3.2'],
    ]);
    expect(selection.skipped.map((skipped) => skipped.path)).toEqual(['DICOMDIR', 'IM000002', 'README.TXT']);
    expect(selection.skipped[0]?.reason).toContain('DICOMDIR');
    expect(selection.skipped[1]?.reason).toBe('The same instance as IM000001');
    expect(selection.skipped[2]?.reason).toContain('Not a DICOM file');
    expect(selection.bytes).toBe(selection.instances.reduce((sum, instance) => sum + instance.file.size, 0));
  });

  test(`batches of at most ${BATCH_FILES} files or 8 MB; a larger file goes alone`, () => {
    const instance = (size: number, n: number): DicomFile => ({
      file: { size } as File,
      path: `IM${n}`,
      sopInstanceUid: `1.2.${n}`,
    });
    const small = Array.from({ length: 23 }, (_unused, n) => instance(1000, n));
    expect(batchesOf(small).map((batch) => batch.length)).toEqual([10, 10, 3]);
    const mixed = [instance(3e6, 1), instance(3e6, 2), instance(3e6, 3), instance(20e6, 4), instance(1, 5)];
    expect(batchesOf(mixed).map((batch) => batch.map((entry) => entry.path))).toEqual([
      ['IM1', 'IM2'],
      ['IM3'],
      ['IM4'],
      ['IM5'],
    ]);
  });

  test('the Store Instances Response, read per SOP Instance UID with each failure in words', () => {
    const answer = {
      '00081198': {
        vr: 'SQ',
        Value: [
          { '00081155': { vr: 'UI', Value: ['1.2.3'] }, '00081197': { vr: 'US', Value: [0xc000] } },
          { '00081155': { vr: 'UI', Value: ['1.2.4'] }, '00081197': { vr: 'US', Value: [0x0124] } },
        ],
      },
      '00081199': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: ['1.2.5'] } }] },
    };
    const { stored, failed } = readStoreResponse(answer);
    expect([...stored]).toEqual(['1.2.5']);
    expect(failed.get('1.2.3')).toContain('could not read it as DICOM');
    expect(failed.get('1.2.4')).toContain('Not stored into this case');
    expect(failureReasonText(0xa700)).toContain('out of resources');
    expect(failureReasonText(0xb000)).toBe('Refused by the hub (failure reason B000)');
    expect(readStoreResponse('nonsense')).toEqual({ stored: new Set(), failed: new Map() });
  });
});
