/**
 * Frames of stored pixel data (PS3.5 §8.2, Annex A.4): the Image Pixel attributes a frame needs,
 * the frame list of a WADO-RS frames URL (PS3.18 §10.4.1.1.3), and where each frame's bytes lie
 * in the file, native or encapsulated, without reading the pixel data itself.
 */
import { getString } from './attributes.ts';
import type { ByteRange, DicomDataset } from './part10.ts';
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_BIG_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
} from './part10.ts';
import { PIXEL_DATA_TAG } from './vr.ts';

/** A request the frames or rendering code cannot satisfy; `status` is the HTTP status to answer with. */
export class PixelDataError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Native (uncompressed) syntaxes; their frames are raw samples. */
export const NATIVE_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set([
  IMPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_BIG_ENDIAN,
]);

export const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
export const RLE_LOSSLESS = '1.2.840.10008.1.2.5';

/** PS3.18 Table 8.7.3-5: the media type of each compressed syntax's frames. */
export const COMPRESSED_FRAME_MEDIA_TYPES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'image/jpeg',
  '1.2.840.10008.1.2.4.51': 'image/jpeg',
  '1.2.840.10008.1.2.4.57': 'image/jpeg',
  '1.2.840.10008.1.2.4.70': 'image/jpeg',
  '1.2.840.10008.1.2.4.80': 'image/jls',
  '1.2.840.10008.1.2.4.81': 'image/jls',
  '1.2.840.10008.1.2.4.90': 'image/jp2',
  '1.2.840.10008.1.2.4.91': 'image/jp2',
  '1.2.840.10008.1.2.4.92': 'image/jpx',
  '1.2.840.10008.1.2.4.93': 'image/jpx',
  '1.2.840.10008.1.2.5': 'image/dicom-rle',
};

/** The Image Pixel module attributes (PS3.3 §C.7.6.3) and the few rendering ones around it. */
export interface PixelDescription {
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  /** 0 unsigned, 1 two's complement. */
  readonly pixelRepresentation: number;
  readonly photometricInterpretation: string;
  /** 0 colour-by-pixel, 1 colour-by-plane. */
  readonly planarConfiguration: number;
  readonly numberOfFrames: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
  readonly windowCenter?: number;
  readonly windowWidth?: number;
  readonly voiLutFunction: string;
}

function integer(dataset: DicomDataset, tag: string): number | undefined {
  const text = getString(dataset, tag)?.split('\\')[0]?.trim();
  if (text === undefined || text === '') {
    return undefined;
  }
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

function required(dataset: DicomDataset, tag: string, name: string): number {
  const value = integer(dataset, tag);
  if (value === undefined || !Number.isInteger(value) || value < 0) {
    throw new PixelDataError(
      406,
      `the instance has no usable ${name} (${tag.slice(0, 4)},${tag.slice(4)}); its pixel data cannot be interpreted`,
    );
  }
  return value;
}

const noPixelData = (): PixelDataError =>
  new PixelDataError(406, 'the instance has no Pixel Data (7FE0,0010); it has no frames to retrieve or render');

/** Reads the Image Pixel attributes; a 406 when the instance has no pixel data or they are missing. */
export function describePixels(dataset: DicomDataset): PixelDescription {
  if (!dataset.elements.has(PIXEL_DATA_TAG)) {
    throw noPixelData();
  }
  const rows = required(dataset, '00280010', 'Rows');
  const columns = required(dataset, '00280011', 'Columns');
  const bitsAllocated = required(dataset, '00280100', 'Bits Allocated');
  const samplesPerPixel = integer(dataset, '00280002') ?? 1;
  const frames = integer(dataset, '00280008') ?? 1;
  if (rows === 0 || columns === 0 || ![1, 8, 16, 32].includes(bitsAllocated) || ![1, 3].includes(samplesPerPixel)) {
    throw new PixelDataError(
      406,
      'the instance has an Image Pixel module this server does not handle (rows, columns, bits allocated or samples per pixel)',
    );
  }
  if (!Number.isInteger(frames) || frames < 1) {
    throw new PixelDataError(406, 'the instance has an invalid Number of Frames (0028,0008)');
  }
  const windowCenter = integer(dataset, '00281050');
  const windowWidth = integer(dataset, '00281051');
  return {
    rows,
    columns,
    samplesPerPixel,
    bitsAllocated,
    bitsStored: integer(dataset, '00280101') ?? bitsAllocated,
    pixelRepresentation: integer(dataset, '00280103') ?? 0,
    photometricInterpretation: (getString(dataset, '00280004') ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2'))
      .trim()
      .toUpperCase(),
    planarConfiguration: integer(dataset, '00280006') ?? 0,
    numberOfFrames: frames,
    rescaleSlope: integer(dataset, '00281053') ?? 1,
    rescaleIntercept: integer(dataset, '00281052') ?? 0,
    ...(windowCenter !== undefined && windowWidth !== undefined && windowWidth > 0
      ? { windowCenter, windowWidth }
      : {}),
    voiLutFunction: (getString(dataset, '00281056') ?? 'LINEAR').trim().toUpperCase(),
  };
}

/** Bytes of one native frame; 1-bit frames are packed (PS3.5 §8.1.1), YBR_FULL_422 has two samples a pixel (PS3.3 §C.7.6.3.1.2). */
export function nativeFrameLength(pixels: PixelDescription): number {
  const samples = pixels.photometricInterpretation === 'YBR_FULL_422' ? 2 : pixels.samplesPerPixel;
  return Math.ceil((pixels.rows * pixels.columns * samples * pixels.bitsAllocated) / 8);
}

/** Most frame numbers in one request; a list this long is a mistake or an attack. */
export const MAX_FRAME_LIST = 10_000;

/**
 * PS3.18 §10.4.1.1.3: one or more comma-separated, 1-based frame numbers, no duplicates.
 * Throws a 400 for a list that is not one.
 */
export function parseFrameList(text: string): number[] {
  const items = text.split(',');
  if (items.length > MAX_FRAME_LIST) {
    throw new PixelDataError(400, `a frame list may name at most ${MAX_FRAME_LIST} frames`);
  }
  const frames: number[] = [];
  for (const item of items) {
    const trimmed = item.trim();
    if (!/^[0-9]{1,9}$/.test(trimmed) || Number(trimmed) === 0) {
      throw new PixelDataError(
        400,
        'the frame list must be comma-separated frame numbers starting at 1, e.g. frames/1,3',
      );
    }
    frames.push(Number(trimmed));
  }
  if (new Set(frames).size !== frames.length) {
    throw new PixelDataError(400, 'the frame list names a frame twice');
  }
  return frames;
}

/** 404 when a frame number is past the instance's Number of Frames. */
export function checkFramesExist(frames: readonly number[], pixels: PixelDescription): void {
  const missing = frames.find((frame) => frame > pixels.numberOfFrames);
  if (missing !== undefined) {
    throw new PixelDataError(
      404,
      `frame ${missing} does not exist: the instance has ${pixels.numberOfFrames} frame${pixels.numberOfFrames === 1 ? '' : 's'}`,
    );
  }
}

/** Reads bytes of the stored dataset (the file, or the inflated dataset of the Deflated syntax). */
export type RangeReader = (range: ByteRange) => Promise<Buffer>;

/**
 * Where each frame of the instance lies: one range for a native frame, the fragments of an
 * encapsulated one. Frame numbers are 1-based and must exist.
 */
export async function locateFrames(
  dataset: DicomDataset,
  pixels: PixelDescription,
  frames: readonly number[],
  read: RangeReader,
): Promise<ByteRange[][]> {
  const pixelData = dataset.elements.get(PIXEL_DATA_TAG);
  if (!pixelData) {
    throw noPixelData();
  }
  if (!pixelData.fragments) {
    const frameLength = nativeFrameLength(pixels);
    if (pixels.numberOfFrames > 1 && pixels.bitsAllocated === 1 && (pixels.rows * pixels.columns) % 8 !== 0) {
      throw new PixelDataError(
        406,
        'the frames of this 1-bit multi-frame image do not start on byte boundaries; retrieve the instance instead',
      );
    }
    if (frameLength * pixels.numberOfFrames > pixelData.length) {
      throw new PixelDataError(
        422,
        'the stored Pixel Data is shorter than its Rows, Columns, Bits Allocated and Number of Frames declare',
      );
    }
    return frames.map((frame) => [{ offset: pixelData.offset + (frame - 1) * frameLength, length: frameLength }]);
  }
  const groups = await groupFragments(
    dataset,
    pixels.numberOfFrames,
    pixelData.basicOffsetTable,
    pixelData.fragments,
    read,
  );
  return frames.map((frame) => {
    const group = groups[frame - 1];
    if (!group) {
      throw new PixelDataError(404, `frame ${frame} does not exist: the instance has ${groups.length} frames`);
    }
    return group;
  });
}

/** PS3.5 §A.4: the fragments of each frame, from the offset tables, the counts, or the frame markers. */
async function groupFragments(
  dataset: DicomDataset,
  frameCount: number,
  basicOffsetTable: ByteRange | undefined,
  fragments: readonly ByteRange[],
  read: RangeReader,
): Promise<ByteRange[][]> {
  const [firstFragment] = fragments;
  if (firstFragment === undefined) {
    throw new PixelDataError(422, 'the encapsulated Pixel Data has no fragments');
  }
  if (frameCount === 1) {
    return [[...fragments]];
  }
  const offsets = await frameOffsets(dataset, basicOffsetTable, read);
  if (offsets) {
    if (offsets.length !== frameCount) {
      throw new PixelDataError(
        422,
        `the offset table lists ${offsets.length} frames but Number of Frames is ${frameCount}`,
      );
    }
    // Offsets count from the first byte of the first fragment's item tag, and each names a fragment's start.
    const first = firstFragment.offset - 8;
    const starts = new Set(fragments.map((fragment) => fragment.offset - 8 - first));
    if (offsets.some((offset) => !starts.has(offset))) {
      throw new PixelDataError(422, 'the offset table points between fragments');
    }
    const groups: ByteRange[][] = offsets.map(() => []);
    let frame = -1;
    for (const fragment of fragments) {
      const position = fragment.offset - 8 - first;
      for (let next = offsets[frame + 1]; next !== undefined && next <= position; next = offsets[frame + 1]) {
        frame++;
      }
      // Before the first offset (frame -1) there is no group.
      const group = groups[frame];
      if (group === undefined) {
        throw new PixelDataError(422, 'the offset table does not start at the first fragment');
      }
      group.push(fragment);
    }
    if (groups.some((group) => group.length === 0)) {
      throw new PixelDataError(422, 'the offset table is not in ascending order');
    }
    return groups;
  }
  if (fragments.length === frameCount) {
    return fragments.map((fragment) => [fragment]);
  }
  // No table and more fragments than frames: a fragment that opens with a codestream's start marker opens a frame.
  const groups: ByteRange[][] = [];
  for (const fragment of fragments) {
    const head = await read({ offset: fragment.offset, length: Math.min(4, fragment.length) });
    const jpegStart = head[0] === 0xff && head[1] === 0xd8;
    const j2kStart = head[0] === 0xff && head[1] === 0x4f && head[2] === 0xff && head[3] === 0x51;
    const current = groups.at(-1);
    if (jpegStart || j2kStart || current === undefined) {
      groups.push([fragment]);
    } else {
      current.push(fragment);
    }
  }
  if (groups.length !== frameCount) {
    throw new PixelDataError(
      422,
      `the encapsulated Pixel Data has ${fragments.length} fragments, no offset table, and cannot be split into ${frameCount} frames`,
    );
  }
  return groups;
}

/** The Extended Offset Table (7FE0,0001) when present, else a non-empty Basic Offset Table, else undefined. */
async function frameOffsets(
  dataset: DicomDataset,
  basicOffsetTable: ByteRange | undefined,
  read: RangeReader,
): Promise<number[] | undefined> {
  const extended = dataset.elements.get('7FE00001');
  if (extended && extended.length > 0 && extended.length % 8 === 0) {
    const bytes = extended.value ?? (await read({ offset: extended.offset, length: extended.length }));
    const offsets: number[] = [];
    for (let at = 0; at < bytes.length; at += 8) {
      offsets.push(Number(dataset.bigEndian ? bytes.readBigUInt64BE(at) : bytes.readBigUInt64LE(at)));
    }
    return offsets;
  }
  if (basicOffsetTable && basicOffsetTable.length >= 4 && basicOffsetTable.length % 4 === 0) {
    const bytes = await read(basicOffsetTable);
    const offsets: number[] = [];
    for (let at = 0; at < bytes.length; at += 4) {
      offsets.push(bytes.readUInt32LE(at));
    }
    return offsets;
  }
  return undefined;
}
