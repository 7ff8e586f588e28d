/**
 * Frame lists, and splitting encapsulated pixel data into frames (PS3.5 §A.4) by each of its
 * rules: Basic Offset Table, Extended Offset Table, one fragment a frame, start markers.
 */
import { PixelDataError, checkFramesExist, describePixels, locateFrames, parseFrameList } from './frames.ts';
import type { RangeReader } from './frames.ts';
import { explicitElement, itemHeader, part10File, textElement } from '../../test/support/dicom/part10-fixtures.ts';
import { parsePart10 } from './part10.ts';
import type { ByteRange } from './part10.ts';

const us = (tag: number, value: number): Buffer => {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16LE(value);
  return explicitElement(tag, 'US', bytes);
};

/** A JPEG-Baseline-labelled file of 2×2 8-bit frames whose fragments are `fragments` (bytes as given). */
function encapsulated(frames: number, fragments: Buffer[], options: { offsets?: number[]; extended?: number[] } = {}) {
  const table = Buffer.alloc(4 * (options.offsets?.length ?? 0));
  options.offsets?.forEach((offset, index) => table.writeUInt32LE(offset, index * 4));
  const extended = options.extended
    ? [
        explicitElement(
          0x7fe00001,
          'OV',
          Buffer.concat(
            options.extended.map((offset) => {
              const b = Buffer.alloc(8);
              b.writeBigUInt64LE(BigInt(offset));
              return b;
            }),
          ),
        ),
      ]
    : [];
  const dataset = Buffer.concat([
    us(0x00280002, 1),
    textElement(0x00280004, 'CS', 'MONOCHROME2'),
    textElement(0x00280008, 'IS', String(frames)),
    us(0x00280010, 2),
    us(0x00280011, 2),
    us(0x00280100, 8),
    ...extended,
    explicitElement(0x7fe00010, 'OB', Buffer.alloc(0), { length: 0xffffffff }),
    itemHeader(0xfffee000, table.length),
    table,
    ...fragments.flatMap((fragment) => [itemHeader(0xfffee000, fragment.length), fragment]),
    itemHeader(0xfffee0dd, 0),
  ]);
  const file = part10File('1.2.840.10008.1.2.4.50', dataset);
  const parsed = parsePart10(file);
  if (!parsed.ok) {
    throw new Error(parsed.reason);
  }
  const read: RangeReader = async (range) => file.subarray(range.offset, range.offset + range.length);
  const framesOf = async (numbers: number[]): Promise<string[]> => {
    const located = await locateFrames(parsed.dataset, describePixels(parsed.dataset), numbers, read);
    return Promise.all(
      located.map(async (ranges: ByteRange[]) => Buffer.concat(await Promise.all(ranges.map(read))).toString('latin1')),
    );
  };
  return { framesOf, pixels: describePixels(parsed.dataset) };
}

const fragment = (text: string): Buffer => Buffer.from(text, 'latin1');
const SOI = '\xff\xd8';

describe('parseFrameList', () => {
  test('comma-separated 1-based numbers in the order given', () => {
    expect(parseFrameList('3,1, 2')).toEqual([3, 1, 2]);
  });

  test.each(['', '0', '1,', ',1', 'x', '1;2', '1,1', '-2', '2.0', '1e3', '9999999999'])('%j is a 400', (list) => {
    expect(() => parseFrameList(list)).toThrow(PixelDataError);
    try {
      parseFrameList(list);
    } catch (error) {
      expect((error as PixelDataError).status).toBe(400);
    }
  });

  test('a frame past the end is a 404', () => {
    const { pixels } = encapsulated(2, [fragment('aa'), fragment('bb')]);
    expect(() => checkFramesExist([1, 2], pixels)).not.toThrow();
    expect(() => checkFramesExist([3], pixels)).toThrow(expect.objectContaining({ status: 404 }));
  });
});

describe('locateFrames on encapsulated pixel data', () => {
  const two = [
    fragment(`${SOI}a1`),
    fragment('a2'),
    fragment(`${SOI}b1`),
    fragment('b2'),
    fragment(`${SOI}c1`),
    fragment('c2'),
  ];
  // Item headers are 8 bytes: a frame is 8 + 4 + 8 + 2 bytes.
  const frameStarts = [0, 22, 44];

  test('by the Basic Offset Table, two fragments a frame', async () => {
    const { framesOf } = encapsulated(3, two, { offsets: frameStarts });
    expect(await framesOf([3, 1, 2])).toEqual([`${SOI}c1c2`, `${SOI}a1a2`, `${SOI}b1b2`]);
  });

  test('by the Extended Offset Table, with an empty Basic Offset Table', async () => {
    const { framesOf } = encapsulated(3, two, { extended: frameStarts });
    expect(await framesOf([2])).toEqual([`${SOI}b1b2`]);
  });

  test("without a table, by the frames' start markers", async () => {
    const { framesOf } = encapsulated(3, two);
    expect(await framesOf([1, 2, 3])).toEqual([`${SOI}a1a2`, `${SOI}b1b2`, `${SOI}c1c2`]);
  });

  test('without a table, one fragment a frame when the counts match; one frame takes every fragment', async () => {
    expect(await encapsulated(2, [fragment('xx'), fragment('yy')]).framesOf([2])).toEqual(['yy']);
    expect(await encapsulated(1, [fragment('xx'), fragment('yy')]).framesOf([1])).toEqual(['xxyy']);
  });

  test('fragments that cannot be split into the declared frames are refused (422), not guessed', async () => {
    await expect(encapsulated(2, [fragment('xx'), fragment('yy'), fragment('zz')]).framesOf([1])).rejects.toMatchObject(
      { status: 422 },
    );
    await expect(encapsulated(2, two, { offsets: [0, 22, 44] }).framesOf([1])).rejects.toMatchObject({ status: 422 });
    await expect(encapsulated(3, two, { offsets: [0, 20, 44] }).framesOf([1])).rejects.toMatchObject({ status: 422 });
  });
});
