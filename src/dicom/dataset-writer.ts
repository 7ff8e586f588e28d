/**
 * A small DICOM data set writer (PS3.5 §7) for the data sets the hub builds itself, such as C-FIND
 * identifiers: Implicit or Explicit VR Little Endian, defined lengths throughout, elements in
 * ascending tag order. Text values are padded to even length (PS3.5 §6.2: UI with NUL, other
 * strings with a space); binary number VRs are written from their decimal string form.
 */
import { LONG_LENGTH_VRS, NUMBER_VR_SIZES } from './vr.ts';

export interface WritableElement {
  /** 'GGGGEEEE', upper-case hex. */
  readonly tag: string;
  readonly vr: string;
  /**
   * Absent or '' for a zero-length value; a string (values joined by "\") for text and numbers;
   * raw bytes for binary VRs; items for SQ.
   */
  readonly value?: string | Buffer | readonly (readonly WritableElement[])[] | undefined;
}

export interface WriteOptions {
  readonly explicitVr: boolean;
  /** How text VRs are encoded: 'utf-8' with Specific Character Set ISO_IR 192, else 'latin1' (covers ASCII). */
  readonly textEncoding?: 'utf-8' | 'latin1';
}

/** Text VRs whose bytes follow the Specific Character Set (PS3.5 §6.1.2.3). */
const CHARSET_TEXT_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'UT', 'PN', 'UC']);
const ITEM_TAG = [0xfffe, 0xe000] as const;

export function writeDataset(elements: readonly WritableElement[], options: WriteOptions): Buffer {
  const sorted = [...elements].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  const parts: Buffer[] = [];
  let previous = '';
  for (const element of sorted) {
    if (!/^[0-9A-F]{8}$/.test(element.tag)) {
      throw new RangeError(`invalid tag key "${element.tag}"`);
    }
    if (element.tag === previous) {
      throw new RangeError(`duplicate element ${element.tag}`);
    }
    previous = element.tag;
    parts.push(writeElement(element, options));
  }
  return Buffer.concat(parts);
}

function writeElement(element: WritableElement, options: WriteOptions): Buffer {
  const value = encodeValue(element, options);
  const group = parseInt(element.tag.slice(0, 4), 16);
  const number = parseInt(element.tag.slice(4), 16);
  if (!options.explicitVr) {
    const header = Buffer.alloc(8);
    header.writeUInt16LE(group, 0);
    header.writeUInt16LE(number, 2);
    header.writeUInt32LE(value.length, 4);
    return Buffer.concat([header, value]);
  }
  if (element.vr.length !== 2) {
    throw new RangeError(`invalid VR "${element.vr}" for ${element.tag}`);
  }
  if (LONG_LENGTH_VRS.has(element.vr)) {
    const header = Buffer.alloc(12);
    header.writeUInt16LE(group, 0);
    header.writeUInt16LE(number, 2);
    header.write(element.vr, 4, 'latin1');
    header.writeUInt32LE(value.length, 8);
    return Buffer.concat([header, value]);
  }
  if (value.length > 0xffff) {
    throw new RangeError(`value of ${element.tag} is too long for VR ${element.vr}`);
  }
  const header = Buffer.alloc(8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(number, 2);
  header.write(element.vr, 4, 'latin1');
  header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

function encodeValue(element: WritableElement, options: WriteOptions): Buffer {
  const { value, vr } = element;
  if (value === undefined || value === '') {
    return Buffer.alloc(0);
  }
  if (Buffer.isBuffer(value)) {
    return value.length % 2 === 0 ? value : Buffer.concat([value, Buffer.alloc(1)]);
  }
  if (typeof value !== 'string') {
    if (vr !== 'SQ') {
      throw new RangeError(`items given for ${element.tag} of VR ${vr}`);
    }
    return Buffer.concat(
      value.map((item) => {
        const body = writeDataset(item, options);
        const header = Buffer.alloc(8);
        header.writeUInt16LE(ITEM_TAG[0], 0);
        header.writeUInt16LE(ITEM_TAG[1], 2);
        header.writeUInt32LE(body.length, 4);
        return Buffer.concat([header, body]);
      }),
    );
  }
  const size = NUMBER_VR_SIZES[vr];
  if (size !== undefined && vr !== 'AT') {
    return encodeNumbers(element.tag, vr, size, value);
  }
  const bytes = Buffer.from(value, CHARSET_TEXT_VRS.has(vr) && options.textEncoding === 'utf-8' ? 'utf8' : 'latin1');
  if (bytes.length % 2 === 0) {
    return bytes;
  }
  return Buffer.concat([bytes, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
}

function encodeNumbers(tag: string, vr: string, size: number, text: string): Buffer {
  const values = text.split('\\');
  const bytes = Buffer.alloc(values.length * size);
  values.forEach((raw, index) => {
    const at = index * size;
    const number = Number(raw.trim());
    if (raw.trim() === '' || Number.isNaN(number)) {
      throw new RangeError(`value of ${tag} is not a number`);
    }
    switch (vr) {
      case 'US':
        bytes.writeUInt16LE(number, at);
        break;
      case 'SS':
        bytes.writeInt16LE(number, at);
        break;
      case 'UL':
        bytes.writeUInt32LE(number, at);
        break;
      case 'SL':
        bytes.writeInt32LE(number, at);
        break;
      case 'FL':
        bytes.writeFloatLE(number, at);
        break;
      case 'FD':
        bytes.writeDoubleLE(number, at);
        break;
      case 'SV':
        bytes.writeBigInt64LE(BigInt(raw.trim()), at);
        break;
      default:
        bytes.writeBigUInt64LE(BigInt(raw.trim()), at);
    }
  });
  return bytes;
}
