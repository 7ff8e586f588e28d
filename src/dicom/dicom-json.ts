/** DICOM JSON Model (PS3.18 §F.2) of a parsed dataset. */
import { characterSetOf, elementNumbers, elementStrings } from './attributes.ts';
import type { DicomDataset, DicomElement } from './part10.ts';
import { BULK_TAGS, BULK_VRS, NUMBER_VR_SIZES } from './vr.ts';

export type DicomJsonValue =
  string | number | null | { Alphabetic?: string; Ideographic?: string; Phonetic?: string } | DicomJsonDataset;

export interface DicomJsonAttribute {
  vr: string;
  Value?: DicomJsonValue[];
  BulkDataURI?: string;
  InlineBinary?: string;
}

export type DicomJsonDataset = { [tag: string]: DicomJsonAttribute };

/** Where a bulk element sits: the sequence tags and item indices that lead to it. */
export type BulkDataPath = readonly (string | number)[];

export interface DicomJsonOptions {
  /** URI for a binary value (PS3.18 §F.2.6); without it, binaries over the threshold get neither URI nor value. */
  readonly bulkDataUri?: (tag: string, path: BulkDataPath) => string;
  /** Binary values of at most this many bytes go inline as base64 (§F.2.7). Default 0. */
  readonly inlineThreshold?: number;
}

const NUMERIC_STRING_VRS = new Set(['IS', 'DS']);

/** The whole dataset, sequences included, as a DICOM JSON object. */
export function toDicomJson(dataset: DicomDataset, options: DicomJsonOptions = {}): DicomJsonDataset {
  return datasetToJson(dataset, options, [], 'ascii');
}

function datasetToJson(
  dataset: DicomDataset,
  options: DicomJsonOptions,
  path: BulkDataPath,
  inheritedCharset: string,
): DicomJsonDataset {
  const charset = characterSetOf(dataset, inheritedCharset);
  const result: DicomJsonDataset = {};
  const tags = [...dataset.elements.keys()].sort();
  for (const tag of tags) {
    const element = dataset.elements.get(tag);
    // PS3.18 §F.2: group lengths are not part of the model.
    if (!element || tag.endsWith('0000')) {
      continue;
    }
    result[tag] = elementToJson(element, dataset.bigEndian, options, path, charset);
  }
  return result;
}

function elementToJson(
  element: DicomElement,
  bigEndian: boolean,
  options: DicomJsonOptions,
  path: BulkDataPath,
  charset: string,
): DicomJsonAttribute {
  const { tag, vr } = element;
  if (element.items) {
    const items = element.items.map((item, index) => datasetToJson(item, options, [...path, tag, index], charset));
    return items.length > 0 ? { vr, Value: items } : { vr };
  }
  if (element.fragments || BULK_VRS.has(vr) || BULK_TAGS.has(tag)) {
    const threshold = options.inlineThreshold ?? 0;
    if (element.value && element.value.length <= threshold) {
      return element.value.length > 0 ? { vr, InlineBinary: element.value.toString('base64') } : { vr };
    }
    if (element.length === 0) {
      return { vr };
    }
    return options.bulkDataUri ? { vr, BulkDataURI: options.bulkDataUri(tag, path) } : { vr };
  }
  if (vr === 'AT') {
    const tags = elementNumbers(element, bigEndian).map((value) => value.toString(16).padStart(8, '0').toUpperCase());
    return tags.length > 0 ? { vr, Value: tags } : { vr };
  }
  if (NUMBER_VR_SIZES[vr] !== undefined) {
    const numbers = elementNumbers(element, bigEndian).map(jsonNumber);
    return numbers.length > 0 ? { vr, Value: numbers } : { vr };
  }
  const strings = elementStrings(element, charset);
  if (strings.length === 0 || strings.every((value) => value === '')) {
    return { vr };
  }
  if (vr === 'PN') {
    return { vr, Value: strings.map(personName) };
  }
  if (NUMERIC_STRING_VRS.has(vr)) {
    return { vr, Value: strings.map(numericString) };
  }
  return { vr, Value: strings.map((value) => (value === '' ? null : value)) };
}

function jsonNumber(value: number | bigint): number | string | null {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  return Number.isFinite(value) ? value : null;
}

/** IS/DS as JSON numbers (§F.2.3); a value that is not a number stays a string rather than being lost. */
function numericString(value: string): number | string | null {
  const trimmed = value.trim();
  if (trimmed === '') {
    return null;
  }
  // PS3.5 §6.2 DS/IS grammar; Number() alone would also take "0x10" or "Infinity".
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) {
    return trimmed;
  }
  const number = Number(trimmed);
  return Number.isFinite(number) ? number : trimmed;
}

/** §F.2.2: component groups separated by "=" become Alphabetic, Ideographic, Phonetic. */
function personName(value: string): DicomJsonValue {
  if (value === '') {
    return null;
  }
  const [alphabetic, ideographic, phonetic] = value.split('=');
  const name: { Alphabetic?: string; Ideographic?: string; Phonetic?: string } = {};
  if (alphabetic) {
    name.Alphabetic = alphabetic;
  }
  if (ideographic) {
    name.Ideographic = ideographic;
  }
  if (phonetic) {
    name.Phonetic = phonetic;
  }
  return name;
}
