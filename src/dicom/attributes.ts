/**
 * Reading values out of a parsed dataset: Specific Character Set decoding (PS3.5 §6.1), the
 * attributes the hub indexes, and the consistency checks an instance must pass to be stored.
 */
import type { DicomDataset, DicomElement, Part10Meta } from './part10.ts';
import { isValidUid } from './part10.ts';
import { CHARSET_VRS, NUMBER_VR_SIZES, SINGLE_VALUE_STRING_VRS, implicitVr } from './vr.ts';

/** The attributes the hub indexes, by keyword. */
export const INDEXED_ATTRIBUTES = {
  SpecificCharacterSet: '00080005',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ReferringPhysicianName: '00080090',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  BodyPartExamined: '00180015',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  StudyID: '00200010',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  SamplesPerPixel: '00280002',
  PhotometricInterpretation: '00280004',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  BitsAllocated: '00280100',
  BitsStored: '00280101',
  PixelRepresentation: '00280103',
} as const;

export type IndexedAttribute = keyof typeof INDEXED_ATTRIBUTES;

/**
 * PS3.3 §C.12.1.1.2 defined terms to WHATWG encoding labels. Only single-byte and UTF-8 sets;
 * ISO 2022 code extensions (multi-valued terms with escapes) decode with their first set.
 */
const CHARSET_ENCODINGS: Readonly<Record<string, string>> = {
  '': 'ascii',
  'ISO_IR 6': 'ascii',
  'ISO 2022 IR 6': 'ascii',
  'ISO_IR 100': 'latin1',
  'ISO 2022 IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2',
  'ISO 2022 IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO 2022 IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO 2022 IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO 2022 IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO 2022 IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO 2022 IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO 2022 IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO 2022 IR 148': 'iso-8859-9',
  'ISO_IR 166': 'tis-620',
  'ISO 2022 IR 166': 'tis-620',
  'ISO_IR 13': 'shift_jis',
  'ISO 2022 IR 13': 'shift_jis',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
};

/** The encoding label for a dataset's (0008,0005), or the parent's when the dataset has none. */
export function characterSetOf(dataset: DicomDataset, inherited = 'ascii'): string {
  const element = dataset.elements.get(INDEXED_ATTRIBUTES.SpecificCharacterSet);
  if (!element?.value) {
    return inherited;
  }
  const terms = element.value
    .toString('latin1')
    .split('\\')
    .map((term) => term.trim());
  const first = terms.find((term) => term !== '') ?? '';
  return CHARSET_ENCODINGS[first] ?? inherited;
}

function decodeText(bytes: Buffer, encoding: string): string {
  if (encoding === 'ascii' || encoding === 'latin1') {
    return bytes.toString('latin1');
  }
  if (encoding === 'utf-8') {
    return bytes.toString('utf8');
  }
  try {
    return new TextDecoder(encoding).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** The string values of a text element, split on backslashes, padding removed (PS3.5 §6.2). */
export function elementStrings(element: DicomElement, encoding = 'ascii'): string[] {
  if (!element.value || element.value.length === 0) {
    return [];
  }
  const text = CHARSET_VRS.has(element.vr) ? decodeText(element.value, encoding) : element.value.toString('latin1');
  const values = SINGLE_VALUE_STRING_VRS.has(element.vr) ? [text] : text.split('\\');
  return values.map((value) => trimValue(value, element.vr));
}

function trimValue(value: string, vr: string): string {
  if (vr === 'UI') {
    return value.replace(/[\0 ]+$/, '');
  }
  if (vr === 'LT' || vr === 'ST' || vr === 'UT') {
    return value.replace(/[\0 ]+$/, '');
  }
  return value.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

/** Binary numbers of a US/SS/UL/SL/FL/FD/SV/UV element; a trailing partial value is ignored. */
export function elementNumbers(element: DicomElement, bigEndian: boolean): (number | bigint)[] {
  const size = NUMBER_VR_SIZES[element.vr];
  const bytes = element.value;
  if (!size || !bytes) {
    return [];
  }
  const count = Math.min(Math.floor(bytes.length / size), 65536);
  const values: (number | bigint)[] = [];
  for (let i = 0; i < count; i++) {
    values.push(readNumber(bytes, i * size, element.vr, bigEndian));
  }
  return values;
}

function readNumber(bytes: Buffer, at: number, vr: string, bigEndian: boolean): number | bigint {
  switch (vr) {
    case 'US':
      return bigEndian ? bytes.readUInt16BE(at) : bytes.readUInt16LE(at);
    case 'SS':
      return bigEndian ? bytes.readInt16BE(at) : bytes.readInt16LE(at);
    case 'UL':
      return bigEndian ? bytes.readUInt32BE(at) : bytes.readUInt32LE(at);
    case 'SL':
      return bigEndian ? bytes.readInt32BE(at) : bytes.readInt32LE(at);
    case 'FL':
      return bigEndian ? bytes.readFloatBE(at) : bytes.readFloatLE(at);
    case 'FD':
      return bigEndian ? bytes.readDoubleBE(at) : bytes.readDoubleLE(at);
    case 'SV':
      return bigEndian ? bytes.readBigInt64BE(at) : bytes.readBigInt64LE(at);
    case 'UV':
      return bigEndian ? bytes.readBigUInt64BE(at) : bytes.readBigUInt64LE(at);
    default: {
      // AT: a tag as two 16-bit numbers, group first (PS3.5 §6.2).
      const group = bigEndian ? bytes.readUInt16BE(at) : bytes.readUInt16LE(at);
      const element = bigEndian ? bytes.readUInt16BE(at + 2) : bytes.readUInt16LE(at + 2);
      return ((group << 16) | element) >>> 0;
    }
  }
}

/**
 * The value of a top-level attribute as one string (multiple values joined by "\"), decoded with
 * the dataset's character set; undefined when absent, '' when present but empty.
 */
export function getString(dataset: DicomDataset, tag: string): string | undefined {
  const stored = dataset.elements.get(tag);
  if (!stored) {
    return undefined;
  }
  if (stored.items || stored.fragments) {
    return undefined;
  }
  // An attribute that arrived as UN (Implicit VR, or relayed by a node without its dictionary) is read with its own VR.
  const element = stored.vr === 'UN' ? { ...stored, vr: implicitVr(tag) } : stored;
  if (element.vr === 'AT') {
    return elementNumbers(element, dataset.bigEndian)
      .map((value) => value.toString(16).padStart(8, '0').toUpperCase())
      .join('\\');
  }
  if (NUMBER_VR_SIZES[element.vr] !== undefined) {
    return elementNumbers(element, dataset.bigEndian).map(String).join('\\');
  }
  if (element.vr === 'UN' && element.value && element.value.length > 1024) {
    return undefined;
  }
  return elementStrings(element, characterSetOf(dataset)).join('\\');
}

/** All indexed attributes present in the dataset, as strings. */
export function readIndexedAttributes(dataset: DicomDataset): Partial<Record<IndexedAttribute, string>> {
  const result: Partial<Record<IndexedAttribute, string>> = {};
  for (const [keyword, tag] of Object.entries(INDEXED_ATTRIBUTES) as [IndexedAttribute, string][]) {
    const value = getString(dataset, tag);
    if (value !== undefined) {
      result[keyword] = value;
    }
  }
  return result;
}

export type ConsistencyResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * What a storable composite instance must satisfy beyond parsing: SOP Class/Instance, Study and
 * Series Instance UIDs present and valid (PS3.5 §9.1), and meta UIDs equal to the dataset's
 * (PS3.10 §7.1). Reasons name attributes, never their values.
 */
export function checkInstanceConsistency(meta: Part10Meta, dataset: DicomDataset): ConsistencyResult {
  const required: IndexedAttribute[] = ['SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'];
  for (const keyword of required) {
    const value = getString(dataset, INDEXED_ATTRIBUTES[keyword]);
    if (value === undefined || value === '') {
      return { ok: false, reason: `${keyword} is missing or empty` };
    }
    if (!isValidUid(value)) {
      return { ok: false, reason: `${keyword} is not a valid UID` };
    }
  }
  if (meta.mediaStorageSopInstanceUid !== getString(dataset, INDEXED_ATTRIBUTES.SOPInstanceUID)) {
    return { ok: false, reason: 'Media Storage SOP Instance UID (0002,0003) differs from SOPInstanceUID (0008,0018)' };
  }
  if (meta.mediaStorageSopClassUid !== getString(dataset, INDEXED_ATTRIBUTES.SOPClassUID)) {
    return { ok: false, reason: 'Media Storage SOP Class UID (0002,0002) differs from SOPClassUID (0008,0016)' };
  }
  return { ok: true };
}
