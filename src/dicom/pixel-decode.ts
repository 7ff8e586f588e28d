/**
 * Stored frames turned into native little-endian samples (the uncompressed form of PS3.18
 * §8.7.3.3.1), where that can be done exactly: big-endian words swapped, RLE Lossless decoded
 * (PS3.5 Annex G), and JPEG Baseline 8-bit decoded with jpeg-js. Everything else is refused.
 */
import jpeg from 'jpeg-js';
import { JPEG_BASELINE, NATIVE_TRANSFER_SYNTAXES, PixelDataError, RLE_LOSSLESS, nativeFrameLength } from './frames.ts';
import { EXPLICIT_VR_BIG_ENDIAN } from './part10.ts';
import type { PixelDescription } from './frames.ts';

/** Most pixels (rows × columns) of a frame the server decodes or renders in memory. */
export const MAX_DECODED_PIXELS = 25_000_000;

/** Whether frames of this syntax can be turned into native little-endian samples. */
export function canDecodeToNative(transferSyntaxUid: string, pixels: PixelDescription): string | undefined {
  if (NATIVE_TRANSFER_SYNTAXES.has(transferSyntaxUid)) {
    return undefined;
  }
  if (transferSyntaxUid === RLE_LOSSLESS) {
    return pixels.bitsAllocated % 8 === 0 ? undefined : 'RLE with sub-byte samples is not decoded';
  }
  if (transferSyntaxUid === JPEG_BASELINE) {
    if (pixels.bitsAllocated !== 8) {
      return 'JPEG Baseline is decoded for 8-bit samples only';
    }
    if (pixels.photometricInterpretation.startsWith('YBR') && pixels.photometricInterpretation !== 'YBR_FULL') {
      return `decoding ${pixels.photometricInterpretation} JPEG would change the Photometric Interpretation the metadata declares`;
    }
    return undefined;
  }
  return `the server has no decoder for transfer syntax ${transferSyntaxUid}`;
}

/**
 * The frame as native little-endian samples, in the layout the metadata declares. `stored` is the
 * frame as stored (native bytes, or the concatenated fragments of an encapsulated frame); for
 * big-endian data `wordSize` is the byte size of the Pixel Data VR's numbers.
 */
export function decodeToNative(
  stored: Buffer,
  transferSyntaxUid: string,
  pixels: PixelDescription,
  wordSize = 2,
): Buffer {
  const refusal = canDecodeToNative(transferSyntaxUid, pixels);
  if (refusal) {
    throw new PixelDataError(406, `the frame cannot be returned uncompressed: ${refusal}`);
  }
  checkDecodedSize(pixels);
  if (transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN) {
    return swapToLittleEndian(stored, pixels, wordSize);
  }
  if (NATIVE_TRANSFER_SYNTAXES.has(transferSyntaxUid)) {
    return stored;
  }
  if (transferSyntaxUid === RLE_LOSSLESS) {
    return decodeRle(stored, pixels);
  }
  return decodeJpegBaseline(stored, pixels);
}

export function checkDecodedSize(pixels: PixelDescription): void {
  if (pixels.rows * pixels.columns > MAX_DECODED_PIXELS) {
    throw new PixelDataError(
      413,
      `the frame has ${pixels.rows * pixels.columns} pixels, over this server's limit of ${MAX_DECODED_PIXELS} for decoding and rendering`,
    );
  }
}

/** PS3.5 §7.3: big-endian numbers of the Pixel Data value; 8-bit samples stored as OW come as swapped byte pairs. */
export function swapToLittleEndian(stored: Buffer, pixels: PixelDescription, wordSize: number): Buffer {
  const size = pixels.bitsAllocated > 8 ? pixels.bitsAllocated / 8 : wordSize;
  if (size === 1) {
    return stored;
  }
  const swapped = Buffer.from(stored);
  if (swapped.length % size !== 0) {
    throw new PixelDataError(406, 'the big-endian frame does not hold whole words and cannot be byte-swapped');
  }
  if (size === 2) {
    swapped.swap16();
  } else if (size === 4) {
    swapped.swap32();
  } else {
    swapped.swap64();
  }
  return swapped;
}

/** PS3.5 Annex G: a header of 16 little-endian offsets, then one PackBits segment per byte plane. */
export function decodeRle(stored: Buffer, pixels: PixelDescription): Buffer {
  if (stored.length < 64) {
    throw new PixelDataError(422, 'the RLE frame is shorter than its header');
  }
  const bytesPerSample = pixels.bitsAllocated / 8;
  const segmentCount = stored.readUInt32LE(0);
  const expected = bytesPerSample * pixels.samplesPerPixel;
  if (segmentCount !== expected) {
    throw new PixelDataError(422, `the RLE frame has ${segmentCount} segments where ${expected} were expected`);
  }
  const pixelCount = pixels.rows * pixels.columns;
  const output = Buffer.alloc(nativeFrameLength(pixels));
  for (let segment = 0; segment < segmentCount; segment++) {
    const start = stored.readUInt32LE(4 + segment * 4);
    const end = segment + 1 < segmentCount ? stored.readUInt32LE(8 + segment * 4) : stored.length;
    if (start < 64 || end > stored.length || end < start) {
      throw new PixelDataError(422, 'the RLE header has a segment offset outside the frame');
    }
    const plane = unpackBits(stored.subarray(start, end), pixelCount);
    const planeBytes = new DataView(plane.buffer, plane.byteOffset, plane.byteLength);
    const sample = Math.floor(segment / bytesPerSample);
    // Segments run from the most significant byte; little-endian output puts it last.
    const byteInSample = bytesPerSample - 1 - (segment % bytesPerSample);
    // Colour-by-plane output keeps each sample's plane together; colour-by-pixel interleaves the samples.
    const planar = pixels.planarConfiguration === 1 && pixels.samplesPerPixel > 1;
    const stride = planar ? bytesPerSample : pixels.samplesPerPixel * bytesPerSample;
    let index = (planar ? sample * pixelCount : sample) * bytesPerSample + byteInSample;
    for (let pixel = 0; pixel < pixelCount; pixel++) {
      output[index] = planeBytes.getUint8(pixel);
      index += stride;
    }
  }
  return output;
}

/** PS3.5 §G.3.1: PackBits, stopping once `length` bytes are out (segments may be padded). */
function unpackBits(segment: Buffer, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let written = 0;
  let at = 0;
  while (written < length && at < segment.length) {
    const header = segment.readUInt8(at++);
    if (header < 128) {
      const count = Math.min(header + 1, length - written, segment.length - at);
      out.set(segment.subarray(at, at + count), written);
      written += count;
      at += header + 1;
    } else if (header > 128) {
      const count = Math.min(257 - header, length - written);
      out.fill(segment[at++] ?? 0, written, written + count);
      written += count;
    }
  }
  if (written < length) {
    throw new PixelDataError(422, 'an RLE segment ends before its plane is complete');
  }
  return out;
}

/**
 * JPEG Baseline via jpeg-js, components as stored (no YCbCr-to-RGB conversion unless an Adobe
 * marker asks for it): YBR_FULL frames stay YBR_FULL, as the metadata declares (PS3.5 §8.2.1).
 */
export function decodeJpegBaseline(stored: Buffer, pixels: PixelDescription): Buffer {
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(stored, {
      useTArray: true,
      formatAsRGBA: false,
      colorTransform: false,
      maxResolutionInMP: MAX_DECODED_PIXELS / 1_000_000,
      maxMemoryUsageInMB: 1024,
    });
  } catch {
    throw new PixelDataError(422, 'the JPEG Baseline frame cannot be decoded');
  }
  const channels = decoded.data.length / (decoded.width * decoded.height);
  const mismatch = new PixelDataError(
    422,
    'the JPEG frame does not match the Rows, Columns and Samples per Pixel of the metadata',
  );
  if (decoded.width !== pixels.columns || decoded.height !== pixels.rows) {
    throw mismatch;
  }
  if (pixels.samplesPerPixel === 1 && channels === 3) {
    // jpeg-js hands a one-component (greyscale) JPEG back as RGB with each sample repeated.
    const grey = greyFromRepeatedRgb(decoded.data);
    if (!grey) {
      throw mismatch;
    }
    return grey;
  }
  if (channels !== pixels.samplesPerPixel) {
    throw mismatch;
  }
  return Buffer.from(decoded.data.buffer, decoded.data.byteOffset, decoded.data.byteLength);
}

/** The one sample of each pixel whose three are equal; undefined when one is not (a colour image). */
function greyFromRepeatedRgb(rgb: Uint8Array): Buffer | undefined {
  const grey = Buffer.alloc(rgb.length / 3);
  for (let pixel = 0, at = 0; pixel < grey.length; pixel++, at += 3) {
    const sample = rgb[at] ?? 0;
    if (rgb[at + 1] !== sample || rgb[at + 2] !== sample) {
      return undefined;
    }
    grey[pixel] = sample;
  }
  return grey;
}
