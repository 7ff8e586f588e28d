/**
 * The rendering pipeline's arithmetic: stored values (sign, Bits Stored, 1-bit), VOI functions
 * (PS3.3 §C.11.2.1.2), MONOCHROME1, query parameters, resampling, and the PNG encoder's output
 * read back with node:zlib.
 */
import { inflateSync } from 'node:zlib';
import type { PixelDescription } from './frames.ts';
import { encodePng } from './image-encode.ts';
import { fitWithin, parseRenderParameters, renderFrame, resize, storedValues } from './render.ts';

const mono = (overrides: Partial<PixelDescription>): PixelDescription => ({
  rows: 1,
  columns: 4,
  samplesPerPixel: 1,
  bitsAllocated: 16,
  bitsStored: 16,
  pixelRepresentation: 0,
  photometricInterpretation: 'MONOCHROME2',
  planarConfiguration: 0,
  numberOfFrames: 1,
  rescaleSlope: 1,
  rescaleIntercept: 0,
  voiLutFunction: 'LINEAR',
  ...overrides,
});

const words = (values: number[]): Buffer => {
  const buffer = Buffer.alloc(values.length * 2);
  values.forEach((value, index) => buffer.writeUInt16LE(value & 0xffff, index * 2));
  return buffer;
};

describe('storedValues', () => {
  test('12 of 16 bits stored, signed: high bits ignored, sign taken from bit 11', () => {
    const pixels = mono({ bitsStored: 12, pixelRepresentation: 1 });
    expect([...storedValues(words([0xf7ff, 0x0800, 0xffff, 0x0001]), pixels)]).toEqual([2047, -2048, -1, 1]);
  });

  test('1-bit frames are packed, least significant bit first', () => {
    const pixels = mono({ columns: 8, bitsAllocated: 1, bitsStored: 1 });
    expect([...storedValues(Buffer.from([0b00000101]), pixels)]).toEqual([1, 0, 1, 0, 0, 0, 0, 0]);
  });
});

describe('renderFrame', () => {
  test('linear window after the modality rescale, per PS3.3 C.11.2.1.2.1', () => {
    const pixels = mono({ rescaleSlope: 2, rescaleIntercept: -100, windowCenter: 0, windowWidth: 101 });
    // Modality values -100, -50, 0, 100; the window 0/101 ramps over (-50.5, 49.5].
    const image = renderFrame(words([0, 25, 50, 100]), pixels);
    expect([...image.data]).toEqual([
      0,
      Math.round(((-50 + 0.5) / 100 + 0.5) * 255),
      Math.round((0.5 / 100 + 0.5) * 255),
      255,
    ]);
  });

  test('linear-exact and sigmoid from the query; MONOCHROME1 inverts', () => {
    const pixels = mono({ photometricInterpretation: 'MONOCHROME1' });
    const exact = renderFrame(words([0, 50, 100, 200]), pixels, { center: 100, width: 200, function: 'LINEAR_EXACT' });
    expect([...exact.data]).toEqual([255, 255 - Math.round(0.25 * 255), 255 - Math.round(0.5 * 255), 0]);
    const sigmoid = renderFrame(words([100]), mono({ columns: 1 }), { center: 100, width: 50, function: 'SIGMOID' });
    expect([...sigmoid.data]).toEqual([Math.round(0.5 * 255)]);
  });

  test('no window: min to max', () => {
    expect([...renderFrame(words([10, 20, 30, 10]), mono({})).data]).toEqual([0, 128, 255, 0]);
  });

  test('PALETTE COLOR is refused with a 406', () => {
    expect(() => renderFrame(Buffer.alloc(8), mono({ photometricInterpretation: 'PALETTE COLOR' }))).toThrow(
      expect.objectContaining({ status: 406 }),
    );
  });
});

describe('parseRenderParameters', () => {
  test('window, viewport and quality', () => {
    expect(
      parseRenderParameters({ window: '40,400,sigmoid', viewport: '256,128', quality: '75', annotation: 'patient' }),
    ).toEqual({
      window: { center: 40, width: 400, function: 'SIGMOID' },
      viewport: { width: 256, height: 128 },
      quality: 75,
    });
    expect(parseRenderParameters({ window: '-600,1500' }).window).toEqual({
      center: -600,
      width: 1500,
      function: 'LINEAR',
    });
  });

  test.each([{ window: '1,0.5' }, { viewport: '10,99999' }, { quality: '7.5' }, { window: ['1,2', '3,4'] }])(
    '%j is a 400',
    (query) => {
      expect(() => parseRenderParameters(query)).toThrow(expect.objectContaining({ status: 400 }));
    },
  );
});

describe('resampling', () => {
  test('fitWithin keeps the aspect ratio', () => {
    expect(fitWithin(512, 256, { width: 128, height: 128 })).toEqual({ width: 128, height: 64 });
    expect(fitWithin(3, 3, { width: 128, height: 64 })).toEqual({ width: 64, height: 64 });
  });

  test('downscaling averages, upscaling repeats', () => {
    const image = { width: 4, height: 2, channels: 1 as const, data: Uint8Array.from([0, 10, 20, 30, 40, 50, 60, 70]) };
    expect([...resize(image, 2, 1).data]).toEqual([25, 45]);
    expect([...resize({ width: 1, height: 1, channels: 1, data: Uint8Array.from([9]) }, 2, 2).data]).toEqual([
      9, 9, 9, 9,
    ]);
  });
});

test('encodePng: IHDR and scanlines read back (Up filter)', () => {
  const png = encodePng({
    width: 2,
    height: 2,
    channels: 3,
    data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
  });
  expect(png.readUInt32BE(16)).toBe(2);
  expect(png[25]).toBe(2);
  const idatAt = png.indexOf('IDAT');
  const raw = inflateSync(png.subarray(idatAt + 4, idatAt + 4 + png.readUInt32BE(idatAt - 4)));
  expect([...raw]).toEqual([2, 1, 2, 3, 4, 5, 6, 2, 6, 6, 6, 6, 6, 6]);
});
