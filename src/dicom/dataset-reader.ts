/**
 * The bounded element reader behind parsePart10: Implicit/Explicit VR, little/big endian, nested
 * sequences and encapsulated pixel data (PS3.5 §7, Annex A.4). Every read is bounds-checked, every
 * loop spends from a work budget, recursion is capped by the depth limit, and values are views of
 * the input buffer (or bounded copies when reading a file).
 */
import {
  BULK_TAGS,
  BULK_VRS,
  ITEM_DELIMITATION_TAG,
  ITEM_TAG,
  KNOWN_VRS,
  LONG_LENGTH_VRS,
  PIXEL_DATA_TAG,
  SEQUENCE_DELIMITATION_TAG,
  UNDEFINED_LENGTH,
  US_OR_SS_TAGS,
  implicitVr,
  tagKeyOf,
  tagLabel,
} from './vr.ts';
import type { ByteSource } from './byte-source.ts';
import { MalformedDicomError } from './errors.ts';

/** Hard limits of the reader. Any input that needs more is refused as malformed. */
export interface Part10Limits {
  /** Deepest sequence nesting accepted (a top-level sequence is depth 1). */
  readonly maxDepth: number;
  /** Largest value of a non-bulk element (text and numbers); bulk VRs (OB/OW/OF/OD/OL/OV/UN) and pixel data are exempt. */
  readonly maxValueLength: number;
  /** Most elements, items and pixel-data fragments in one file, all levels together. */
  readonly maxElements: number;
  /** Most header reads (elements, items, delimiters, fragments) before giving up. */
  readonly maxWork: number;
  /** Largest inflated dataset of the Deflated transfer syntax. */
  readonly maxInflatedBytes: number;
  /** Reading from a file: most bytes of values copied into memory (bulk values over 1 KiB are never read). */
  readonly maxRetainedBytes: number;
}

/**
 * Defaults: 16 levels is far beyond any IOD (SR trees rarely pass 8); 64 KiB covers every text VR
 * but UT/UC/UR in practice; 50,000 elements (an enhanced multi-frame header of ~1,500 frames) keep
 * the parsed tree under ~20 MB of heap (16 MB measured at the limit, ~50 ms to parse); 200,000
 * header reads bound the delimiters a file can add; 256 MiB caps a deflate bomb; 32 MiB of copied
 * values bounds a file read from disk.
 */
export const DEFAULT_PART10_LIMITS: Part10Limits = {
  maxDepth: 16,
  maxValueLength: 64 * 1024,
  maxElements: 50_000,
  maxWork: 200_000,
  maxInflatedBytes: 256 * 1024 * 1024,
  maxRetainedBytes: 32 * 1024 * 1024,
};
export const MAX_SEQUENCE_DEPTH = DEFAULT_PART10_LIMITS.maxDepth;
export const MAX_VALUE_LENGTH = DEFAULT_PART10_LIMITS.maxValueLength;
export const MAX_ELEMENTS = DEFAULT_PART10_LIMITS.maxElements;
export const MAX_WORK = DEFAULT_PART10_LIMITS.maxWork;
export const MAX_INFLATED_BYTES = DEFAULT_PART10_LIMITS.maxInflatedBytes;
export const MAX_RETAINED_BYTES = DEFAULT_PART10_LIMITS.maxRetainedBytes;
/** Reading from a file, bulk values up to this size are still read, so that DICOM JSON can inline them. */
export const SMALL_BULK_BYTES = 1024;

export interface ByteRange {
  /** Offset in the buffer the dataset was read from (the file, or the inflated dataset). */
  readonly offset: number;
  readonly length: number;
}

export interface DicomElement {
  /** 'GGGGEEEE', upper-case hex. */
  readonly tag: string;
  readonly vr: string;
  /** Offset of the value in the source buffer. */
  readonly offset: number;
  /** Value length in bytes; for undefined-length sequences and encapsulated pixel data, up to the delimiter. */
  readonly length: number;
  /**
   * The value: a zero-copy view when parsing a buffer, a copy when reading a file. Absent for
   * sequences, encapsulated pixel data, and (reading a file) bulk values over SMALL_BULK_BYTES.
   */
  readonly value?: Buffer;
  /** Items of a sequence. */
  readonly items?: readonly DicomDataset[];
  /** Encapsulated pixel data: the Basic Offset Table item, then the fragments (PS3.5 §A.4). */
  readonly basicOffsetTable?: ByteRange;
  readonly fragments?: readonly ByteRange[];
}

export interface DicomDataset {
  readonly elements: ReadonlyMap<string, DicomElement>;
  /** True for the retired Explicit VR Big Endian syntax: binary numbers are big-endian. */
  readonly bigEndian: boolean;
}

export { MalformedDicomError };

interface Encoding {
  readonly explicitVr: boolean;
  readonly bigEndian: boolean;
}
/** '(gggg,eeee)' from a tag key. */
function labelOf(tag: string): string {
  return `(${tag.slice(0, 4)},${tag.slice(4)})`.toLowerCase();
}

const IMPLICIT_LE: Encoding = { explicitVr: false, bigEndian: false };

/** Reads the dataset of one Part 10 file, with its nested items; one reader per file (it carries the budgets). */
export class DatasetReader {
  private readonly source: ByteSource;
  private readonly limits: Part10Limits;
  private work = 0;
  private elementCount = 0;
  private retainedBytes = 0;

  constructor(source: ByteSource, limits: Part10Limits) {
    this.source = source;
    this.limits = limits;
  }

  readTopLevel(start: number, encoding: Encoding): DicomDataset {
    const { dataset, next } = this.readDataset(start, this.source.length, encoding, 0, false);
    if (next !== this.source.length) {
      throw new MalformedDicomError(`unexpected delimiter at offset ${next}`);
    }
    return dataset;
  }

  /**
   * Reads elements from pos until end, or, for an undefined-length item, until its Item
   * Delimitation; returns the offset after the last byte consumed.
   */
  private readDataset(
    pos: number,
    end: number,
    encoding: Encoding,
    depth: number,
    untilItemDelimiter: boolean,
  ): { dataset: DicomDataset; next: number } {
    const elements = new Map<string, DicomElement>();
    while (pos < end) {
      this.spend();
      if (end - pos < 8) {
        throw new MalformedDicomError(`truncated at offset ${pos}: ${end - pos} bytes cannot hold an element header`);
      }
      const group = this.u16(pos, encoding.bigEndian);
      const elementNumber = this.u16(pos + 2, encoding.bigEndian);
      const tagNumber = ((group << 16) | elementNumber) >>> 0;
      if (tagNumber === ITEM_DELIMITATION_TAG) {
        if (!untilItemDelimiter) {
          throw new MalformedDicomError(`unexpected item delimiter at offset ${pos}`);
        }
        return { dataset: { elements, bigEndian: encoding.bigEndian }, next: pos + 8 };
      }
      if (group === 0xfffe) {
        throw new MalformedDicomError(
          `unexpected ${tagLabel(group, elementNumber)} at offset ${pos} outside a sequence`,
        );
      }
      const tag = tagKeyOf(group, elementNumber);
      let vr: string;
      let length: number;
      let valueStart: number;
      if (encoding.explicitVr) {
        const c0 = this.source.byte(pos + 4);
        const c1 = this.source.byte(pos + 5);
        vr = String.fromCharCode(c0, c1);
        if (!KNOWN_VRS.has(vr)) {
          throw new MalformedDicomError(
            `invalid VR at offset ${pos} in ${labelOf(tag)} (the dataset is not encoded as its transfer syntax declares)`,
          );
        }
        if (LONG_LENGTH_VRS.has(vr)) {
          if (end - pos < 12) {
            throw new MalformedDicomError(`truncated at offset ${pos} in ${labelOf(tag)}: header incomplete`);
          }
          length = this.u32(pos + 8, encoding.bigEndian);
          valueStart = pos + 12;
        } else {
          length = this.u16(pos + 6, encoding.bigEndian);
          valueStart = pos + 8;
        }
      } else {
        vr = implicitVr(tag);
        // PS3.6 "US or SS": signed when this dataset's Pixel Representation (read before it) is 1.
        const pixelRepresentation = elements.get('00280103')?.value;
        if (
          vr === 'US' &&
          US_OR_SS_TAGS.has(tag) &&
          pixelRepresentation?.length === 2 &&
          pixelRepresentation.readUInt16LE(0) === 1
        ) {
          vr = 'SS';
        }
        length = this.u32(pos + 4, encoding.bigEndian);
        valueStart = pos + 8;
      }
      if (elements.has(tag)) {
        throw new MalformedDicomError(`duplicate element ${labelOf(tag)} at offset ${pos}`);
      }
      this.count();
      const { element, next } = this.readValue(tag, vr, pos, valueStart, length, end, encoding, depth);
      elements.set(tag, element);
      pos = next;
    }
    if (untilItemDelimiter) {
      throw new MalformedDicomError(`truncated at offset ${pos}: item without its delimiter`);
    }
    return { dataset: { elements, bigEndian: encoding.bigEndian }, next: pos };
  }

  private readValue(
    tag: string,
    vr: string,
    headerPos: number,
    valueStart: number,
    length: number,
    end: number,
    encoding: Encoding,
    depth: number,
  ): { element: DicomElement; next: number } {
    if (length === UNDEFINED_LENGTH) {
      if (tag === PIXEL_DATA_TAG && vr !== 'SQ' && vr !== 'UN') {
        return this.readEncapsulated(tag, vr, valueStart, end, encoding);
      }
      if (vr === 'SQ' || vr === 'UN' || !encoding.explicitVr) {
        // PS3.5 §6.2.2: an undefined-length UN holds a sequence encoded in Implicit VR Little Endian.
        const itemEncoding = vr === 'UN' && encoding.explicitVr ? IMPLICIT_LE : encoding;
        const { items, next, contentEnd } = this.readItems(tag, valueStart, end, true, itemEncoding, depth + 1);
        return { element: { tag, vr: 'SQ', offset: valueStart, length: contentEnd - valueStart, items }, next };
      }
      throw new MalformedDicomError(`undefined length on VR ${vr} at offset ${headerPos} in ${labelOf(tag)}`);
    }
    if (length > end - valueStart) {
      throw new MalformedDicomError(
        `truncated at offset ${headerPos} in ${labelOf(tag)}: value of ${length} bytes but ${Math.max(0, end - valueStart)} remain`,
      );
    }
    const valueEnd = valueStart + length;
    if (vr === 'SQ') {
      const { items } = this.readItems(tag, valueStart, valueEnd, false, encoding, depth + 1);
      return { element: { tag, vr, offset: valueStart, length, items }, next: valueEnd };
    }
    if (!encoding.explicitVr && vr === 'UN' && length >= 8 && !BULK_TAGS.has(tag) && this.startsWithItem(valueStart)) {
      // Implicit VR private sequences of defined length look like UN to a dictionary that lacks them.
      const attempt = this.tryReadItems(tag, valueStart, valueEnd, encoding, depth + 1);
      if (attempt) {
        return { element: { tag, vr: 'SQ', offset: valueStart, length, items: attempt }, next: valueEnd };
      }
    }
    if (length > this.limits.maxValueLength && !BULK_VRS.has(vr) && !BULK_TAGS.has(tag)) {
      throw new MalformedDicomError(
        `value of ${labelOf(tag)} at offset ${headerPos} is ${length} bytes, over the ${this.limits.maxValueLength}-byte limit for VR ${vr}`,
      );
    }
    const bulk = BULK_VRS.has(vr) || BULK_TAGS.has(tag);
    if (!this.source.zeroCopy && bulk && length > SMALL_BULK_BYTES) {
      return { element: { tag, vr, offset: valueStart, length }, next: valueEnd };
    }
    return { element: { tag, vr, offset: valueStart, length, value: this.retain(valueStart, length) }, next: valueEnd };
  }

  private startsWithItem(pos: number): boolean {
    return this.u16(pos, false) === 0xfffe && this.u16(pos + 2, false) === 0xe000;
  }

  private tryReadItems(
    tag: string,
    start: number,
    end: number,
    encoding: Encoding,
    depth: number,
  ): DicomDataset[] | undefined {
    const savedCount = this.elementCount;
    try {
      return this.readItems(tag, start, end, false, encoding, depth).items;
    } catch (error) {
      if (!(error instanceof MalformedDicomError) || error.message.startsWith('limit')) {
        throw error;
      }
      this.elementCount = savedCount;
      return undefined;
    }
  }

  /** Items of a sequence, up to end (defined length) or its Sequence Delimitation (undefined length). */
  private readItems(
    tag: string,
    pos: number,
    end: number,
    undefinedLength: boolean,
    encoding: Encoding,
    depth: number,
  ): { items: DicomDataset[]; next: number; contentEnd: number } {
    if (depth > this.limits.maxDepth) {
      throw new MalformedDicomError(
        `limit: sequences nested deeper than ${this.limits.maxDepth} levels at offset ${pos} in ${labelOf(tag)}`,
      );
    }
    const items: DicomDataset[] = [];
    while (pos < end) {
      this.spend();
      if (end - pos < 8) {
        throw new MalformedDicomError(`truncated at offset ${pos} in sequence ${labelOf(tag)}`);
      }
      const tagNumber = ((this.u16(pos, encoding.bigEndian) << 16) | this.u16(pos + 2, encoding.bigEndian)) >>> 0;
      const itemLength = this.u32(pos + 4, encoding.bigEndian);
      if (tagNumber === SEQUENCE_DELIMITATION_TAG && undefinedLength) {
        return { items, next: pos + 8, contentEnd: pos };
      }
      if (tagNumber !== ITEM_TAG) {
        throw new MalformedDicomError(`expected an item at offset ${pos} in sequence ${labelOf(tag)}`);
      }
      this.count();
      const itemStart = pos + 8;
      if (itemLength === UNDEFINED_LENGTH) {
        const { dataset, next } = this.readDataset(itemStart, end, encoding, depth, true);
        items.push(dataset);
        pos = next;
      } else {
        if (itemLength > end - itemStart) {
          throw new MalformedDicomError(
            `truncated at offset ${pos} in ${labelOf(tag)}: item of ${itemLength} bytes but ${end - itemStart} remain`,
          );
        }
        const { dataset } = this.readDataset(itemStart, itemStart + itemLength, encoding, depth, false);
        items.push(dataset);
        pos = itemStart + itemLength;
      }
    }
    if (undefinedLength) {
      throw new MalformedDicomError(`truncated at offset ${pos}: sequence ${labelOf(tag)} without its delimiter`);
    }
    return { items, next: pos, contentEnd: pos };
  }

  /** PS3.5 §A.4: Basic Offset Table item, fragment items, Sequence Delimitation. */
  private readEncapsulated(
    tag: string,
    vr: string,
    start: number,
    end: number,
    encoding: Encoding,
  ): { element: DicomElement; next: number } {
    let pos = start;
    let basicOffsetTable: ByteRange | undefined;
    const fragments: ByteRange[] = [];
    while (pos < end) {
      this.spend();
      if (end - pos < 8) {
        break;
      }
      const tagNumber = ((this.u16(pos, encoding.bigEndian) << 16) | this.u16(pos + 2, encoding.bigEndian)) >>> 0;
      const itemLength = this.u32(pos + 4, encoding.bigEndian);
      if (tagNumber === SEQUENCE_DELIMITATION_TAG) {
        const element: DicomElement = { tag, vr, offset: start, length: pos - start, basicOffsetTable, fragments };
        return { element, next: pos + 8 };
      }
      if (tagNumber !== ITEM_TAG) {
        throw new MalformedDicomError(`expected a pixel data item at offset ${pos} in ${labelOf(tag)}`);
      }
      if (itemLength === UNDEFINED_LENGTH) {
        throw new MalformedDicomError(`pixel data item of undefined length at offset ${pos}`);
      }
      if (itemLength > end - pos - 8) {
        throw new MalformedDicomError(
          `truncated at offset ${pos} in ${labelOf(tag)}: fragment of ${itemLength} bytes but ${end - pos - 8} remain`,
        );
      }
      this.count();
      const range = { offset: pos + 8, length: itemLength };
      if (basicOffsetTable === undefined) {
        basicOffsetTable = range;
      } else {
        fragments.push(range);
      }
      pos += 8 + itemLength;
    }
    throw new MalformedDicomError(
      `truncated at offset ${pos}: encapsulated pixel data ${labelOf(tag)} without its delimiter`,
    );
  }

  private retain(pos: number, length: number): Buffer {
    if (!this.source.zeroCopy) {
      this.retainedBytes += length;
      if (this.retainedBytes > this.limits.maxRetainedBytes) {
        throw new MalformedDicomError(`limit: more than ${this.limits.maxRetainedBytes} bytes of values`);
      }
    }
    return this.source.bytes(pos, length);
  }

  private spend(): void {
    if (++this.work > this.limits.maxWork) {
      throw new MalformedDicomError(`limit: more than ${this.limits.maxWork} header reads`);
    }
  }

  private count(): void {
    if (++this.elementCount > this.limits.maxElements) {
      throw new MalformedDicomError(`limit: more than ${this.limits.maxElements} elements, items and fragments`);
    }
  }

  private u16(pos: number, bigEndian: boolean): number {
    return this.source.u16(pos, bigEndian);
  }

  private u32(pos: number, bigEndian: boolean): number {
    return this.source.u32(pos, bigEndian);
  }
}
