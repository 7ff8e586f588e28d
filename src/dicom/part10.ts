/**
 * Bounded DICOM Part 10 reader for untrusted input (PS3.10 §7, PS3.5 §7 and Annex A). It never
 * throws, allocates at most the parsed element tree (bounded by Part10Limits) plus, for the
 * Deflated syntax, the capped inflated dataset; values are zero-copy views of the input.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { BufferSource, FileSource, type ByteSource } from './byte-source.ts';
import {
  DEFAULT_PART10_LIMITS,
  DatasetReader,
  MalformedDicomError,
  type DicomDataset,
  type Part10Limits,
} from './dataset-reader.ts';
import { KNOWN_VRS, LONG_LENGTH_VRS, tagLabel } from './vr.ts';

export {
  DEFAULT_PART10_LIMITS,
  MAX_ELEMENTS,
  MAX_INFLATED_BYTES,
  MAX_RETAINED_BYTES,
  MAX_SEQUENCE_DEPTH,
  MAX_VALUE_LENGTH,
  MAX_WORK,
  SMALL_BULK_BYTES,
  type ByteRange,
  type DicomDataset,
  type DicomElement,
  type Part10Limits,
} from './dataset-reader.ts';

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';
export const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';

/** Largest File Meta Information group accepted; real ones are a few hundred bytes. */
export const MAX_META_LENGTH = 64 * 1024;
const PREAMBLE_LENGTH = 128;

export interface Part10Meta {
  readonly transferSyntaxUid: string;
  /** '' when the meta group lacks it (Part 10 requires it; see checkInstanceConsistency). */
  readonly mediaStorageSopClassUid: string;
  readonly mediaStorageSopInstanceUid: string;
  readonly implementationClassUid?: string;
  /** True when (0002,0010) was missing and the syntax was inferred from the first dataset element. */
  readonly transferSyntaxInferred?: boolean;
}

export interface Part10Success {
  readonly ok: true;
  readonly meta: Part10Meta;
  readonly dataset: DicomDataset;
  /** Offset of the first dataset byte in the file. */
  readonly datasetOffset: number;
  /**
   * For the Deflated syntax, the inflated dataset that element offsets refer to; otherwise element
   * offsets are file offsets.
   */
  readonly inflatedDataset?: Buffer;
}

export interface Part10Failure {
  readonly ok: false;
  /** Specific and human, naming offsets and tags but never values (no patient data). */
  readonly reason: string;
}

export type Part10Result = Part10Success | Part10Failure;

export interface Part10Options {
  readonly limits?: Partial<Part10Limits>;
}

/** Parses a Part 10 file held in a buffer; never throws. Element values are views of `file`. */
export function parsePart10(file: Buffer, options: Part10Options = {}): Part10Result {
  return refuseOnError(() =>
    parseOrThrow(
      {
        head: file,
        totalLength: file.length,
        source: () => new BufferSource(file),
        rest: (from) => file.subarray(from),
      },
      { ...DEFAULT_PART10_LIMITS, ...options.limits },
    ),
  );
}

/**
 * Parses a Part 10 file on disk through a 64 KiB window, without reading bulk values over 1 KiB
 * (pixel data, waveforms): they come back as offset/length. Never throws. Synchronous I/O: for
 * large files call it off the request path (a worker thread).
 */
export function parsePart10File(path: string, options: Part10Options = {}): Part10Result {
  const limits = { ...DEFAULT_PART10_LIMITS, ...options.limits };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { ok: false, reason: 'unreadable: the file cannot be opened' };
  }
  try {
    return refuseOnError(() => {
      const totalLength = fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(totalLength, HEAD_BYTES));
      readSync(fd, head, 0, head.length, 0);
      return parseOrThrow(
        {
          head,
          totalLength,
          source: () => new FileSource(fd, totalLength),
          rest: (from) => {
            if (totalLength - from > limits.maxInflatedBytes) {
              throw new MalformedDicomError(`limit: the deflated dataset is over ${limits.maxInflatedBytes} bytes`);
            }
            const rest = Buffer.alloc(totalLength - from);
            readSync(fd, rest, 0, rest.length, from);
            return rest;
          },
        },
        limits,
      );
    });
  } finally {
    closeSync(fd);
  }
}

/** The first bytes of a file: enough for the preamble and the largest meta group accepted. */
const HEAD_BYTES = PREAMBLE_LENGTH + 4 + 2 * MAX_META_LENGTH + 64;

interface Part10Input {
  /** The first bytes (the whole file when parsing a buffer). */
  readonly head: Buffer;
  readonly totalLength: number;
  source(): ByteSource;
  /** Bytes from an offset to the end, for the Deflated syntax. */
  rest(from: number): Buffer;
}

function refuseOnError(parse: () => Part10Result): Part10Result {
  try {
    return parse();
  } catch (error) {
    if (error instanceof MalformedDicomError) {
      return { ok: false, reason: error.message.replace(/^limit: /, 'limit exceeded: ') };
    }
    if (errorCode(error) === 'ERR_OUT_OF_RANGE') {
      return { ok: false, reason: 'truncated: a read ran past the end of the input' };
    }
    return { ok: false, reason: 'unreadable: the parser failed on this input' };
  }
}

function parseOrThrow(input: Part10Input, limits: Part10Limits): Part10Result {
  const { head, totalLength } = input;
  if (head.length < PREAMBLE_LENGTH + 4 || head.toString('latin1', PREAMBLE_LENGTH, PREAMBLE_LENGTH + 4) !== 'DICM') {
    throw new MalformedDicomError(
      'not a DICOM Part 10 file: no "DICM" prefix after the 128-byte preamble (PS3.10 §7.1)',
    );
  }
  const { values, next: datasetOffset } = readMetaGroup(head, PREAMBLE_LENGTH + 4, totalLength);
  if (datasetOffset >= totalLength) {
    throw new MalformedDicomError(`truncated at offset ${datasetOffset}: no dataset after the File Meta Information`);
  }
  let transferSyntaxUid = values.get(0x0010);
  let transferSyntaxInferred: boolean | undefined;
  if (transferSyntaxUid === undefined || transferSyntaxUid === '') {
    transferSyntaxUid = inferTransferSyntax(head, datasetOffset);
    transferSyntaxInferred = true;
  }
  if (!isValidUid(transferSyntaxUid)) {
    throw new MalformedDicomError('Transfer Syntax UID (0002,0010) is not a valid UID');
  }
  const implementationClassUid = values.get(0x0012);
  const meta: Part10Meta = {
    transferSyntaxUid,
    mediaStorageSopClassUid: values.get(0x0002) ?? '',
    mediaStorageSopInstanceUid: values.get(0x0003) ?? '',
    ...(implementationClassUid ? { implementationClassUid } : {}),
    ...(transferSyntaxInferred ? { transferSyntaxInferred } : {}),
  };

  if (transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN) {
    let inflated: Buffer;
    try {
      inflated = inflateRawSync(input.rest(datasetOffset), { maxOutputLength: limits.maxInflatedBytes });
    } catch (error) {
      if (error instanceof MalformedDicomError) {
        throw error;
      }
      if (errorCode(error) === 'ERR_BUFFER_TOO_LARGE') {
        throw new MalformedDicomError(
          `limit: the deflated dataset inflates to more than ${limits.maxInflatedBytes} bytes`,
        );
      }
      throw new MalformedDicomError(`the deflated dataset at offset ${datasetOffset} cannot be inflated`);
    }
    const dataset = new DatasetReader(new BufferSource(inflated), limits).readTopLevel(0, {
      explicitVr: true,
      bigEndian: false,
    });
    return { ok: true, meta, dataset, datasetOffset, inflatedDataset: inflated };
  }
  const encoding = {
    explicitVr: transferSyntaxUid !== IMPLICIT_VR_LITTLE_ENDIAN,
    bigEndian: transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN,
  };
  const dataset = new DatasetReader(input.source(), limits).readTopLevel(datasetOffset, encoding);
  return { ok: true, meta, dataset, datasetOffset };
}

/**
 * PS3.10 §7.1: group 0002 in Explicit VR Little Endian. Read while the next tag is in group 0002,
 * which also copes with writers that omit or miscount the group length.
 */
function readMetaGroup(
  file: Buffer,
  start: number,
  totalLength: number,
): { values: Map<number, string>; next: number } {
  const values = new Map<number, string>();
  let pos = start;
  let declaredEnd: number | undefined;
  while (file.length - pos >= 8 && file.readUInt16LE(pos) === 0x0002) {
    if (pos - start > MAX_META_LENGTH) {
      throw new MalformedDicomError(`File Meta Information longer than ${MAX_META_LENGTH} bytes`);
    }
    const element = file.readUInt16LE(pos + 2);
    const label = tagLabel(2, element);
    const vr = file.toString('latin1', pos + 4, pos + 6);
    if (!KNOWN_VRS.has(vr)) {
      throw new MalformedDicomError(`invalid VR in File Meta Information at offset ${pos} in ${label}`);
    }
    let length: number;
    let valueStart: number;
    if (LONG_LENGTH_VRS.has(vr)) {
      if (file.length - pos < 12) {
        throw new MalformedDicomError(`truncated at offset ${pos} in ${label}`);
      }
      length = file.readUInt32LE(pos + 8);
      valueStart = pos + 12;
    } else {
      length = file.readUInt16LE(pos + 6);
      valueStart = pos + 8;
    }
    if (length > MAX_META_LENGTH || length > file.length - valueStart) {
      throw new MalformedDicomError(
        `truncated at offset ${pos} in ${label}: value of ${length} bytes but ${file.length - valueStart} remain`,
      );
    }
    if (element === 0x0000 && vr === 'UL' && length === 4) {
      declaredEnd = valueStart + 4 + file.readUInt32LE(valueStart);
    }
    if (vr === 'UI' || vr === 'SH' || vr === 'AE') {
      values.set(
        element,
        file
          .toString('latin1', valueStart, valueStart + length)
          .replace(/[\0 ]+$/, '')
          .trim(),
      );
    }
    pos = valueStart + length;
  }
  if (pos === start) {
    throw new MalformedDicomError(`no File Meta Information group at offset ${start}`);
  }
  if (declaredEnd !== undefined && declaredEnd > totalLength) {
    throw new MalformedDicomError(
      `truncated at offset ${pos}: the File Meta Information group length runs past the end of the input`,
    );
  }
  return { values, next: pos };
}

/** pydicom and DCMTK both accept a missing (0002,0010); decide from the first element's VR bytes. */
function inferTransferSyntax(file: Buffer, datasetOffset: number): string {
  if (file.length - datasetOffset < 8) {
    return EXPLICIT_VR_LITTLE_ENDIAN;
  }
  const vr = file.toString('latin1', datasetOffset + 4, datasetOffset + 6);
  return KNOWN_VRS.has(vr) ? EXPLICIT_VR_LITTLE_ENDIAN : IMPLICIT_VR_LITTLE_ENDIAN;
}

/** Node errors carry a code; instanceof is unreliable across realms (vm contexts, jest). */
function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

/** PS3.5 §9.1: digits and dots, no empty or zero-led components (except "0"), at most 64 characters. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}
