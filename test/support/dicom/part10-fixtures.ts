/**
 * Test fixtures for the Part 10 reader: pydicom's test files with their classification, pydicom's
 * own reading of them (the oracle), and builders for hand-made and hostile files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDEXED_ATTRIBUTES } from '../../../src/dicom/attributes.ts';

export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const PYTHON = '/usr/bin/python3';
const CLASSIFICATION = new URL('./testdata/pydicom-testfiles-classified.txt', import.meta.url);

/**
 * Files pydicom and dcmdump both read that we refuse by design: the last directory record's item
 * length (248) runs past the end of the file (224 bytes remain); both tools silently read short.
 */
export const REFUSED_BY_DESIGN: ReadonlySet<string> = new Set(['dicomdirtests/DICOMDIR-nooffset']);

export interface ClassifiedFile {
  readonly name: string;
  readonly path: string;
  /** Part 10, read by pydicom and dumped by dcmdump without error. */
  readonly valid: boolean;
}

/**
 * The reference classification: valid = p10=1, pydicom ok and dcmdump rc 0; malformed = no Part 10
 * header (p10=0) or dcmdump fails (truncated values, a dataset not in its declared syntax).
 */
export function classifiedFiles(): ClassifiedFile[] {
  if (!existsSync(PYDICOM_TEST_FILES)) {
    throw new Error(`pydicom's test files are missing at ${PYDICOM_TEST_FILES}: apt-get install python3-pydicom`);
  }
  return readFileSync(CLASSIFICATION, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const name = line.split(/\s+/)[0] ?? '';
      const valid =
        / p10=1 /.test(line) && / py=ok /.test(line) && / dump_rc=0 /.test(line) && !REFUSED_BY_DESIGN.has(name);
      return { name, path: join(PYDICOM_TEST_FILES, name), valid };
    });
}

export interface PydicomReading {
  readonly transferSyntaxUid: string;
  readonly mediaStorageSopInstanceUid: string;
  readonly mediaStorageSopClassUid: string;
  readonly attributes: Record<string, string>;
}

const READ_SCRIPT = `
import sys, json, warnings
warnings.simplefilter('ignore')
import pydicom
from pydicom.multival import MultiValue
def text(v):
    if v is None: return ''
    if isinstance(v, (list, MultiValue)): return '\\\\'.join(text(x) for x in v)
    if isinstance(v, bytes): return v.decode('latin1').rstrip('\\x00 ')
    return str(v)
keywords = json.loads(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    ds = pydicom.dcmread(path)
    meta = ds.file_meta
    out[path] = {
        'transferSyntaxUid': text(meta.get('TransferSyntaxUID', '')),
        'mediaStorageSopInstanceUid': text(meta.get('MediaStorageSOPInstanceUID', '')),
        'mediaStorageSopClassUid': text(meta.get('MediaStorageSOPClassUID', '')),
        'attributes': {kw: text(ds[kw].value) for kw in keywords if kw in ds},
    }
print(json.dumps(out))
`;

function runPython(script: string, args: string[]): string {
  if (!existsSync(PYTHON)) {
    throw new Error(`${PYTHON} is missing: apt-get install python3-pydicom`);
  }
  const run = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.status !== 0) {
    throw new Error(`pydicom failed (is python3-pydicom installed?): ${run.stderr}`);
  }
  return run.stdout;
}

/** pydicom's reading of the indexed attributes and meta UIDs of each file, in one python run. */
export function readWithPydicom(paths: string[]): Map<string, PydicomReading> {
  const keywords = Object.keys(INDEXED_ATTRIBUTES);
  const parsed = JSON.parse(runPython(READ_SCRIPT, [JSON.stringify(keywords), ...paths])) as Record<
    string,
    PydicomReading
  >;
  return new Map(Object.entries(parsed));
}

const JSON_SCRIPT = `
import sys, json, warnings
warnings.simplefilter('ignore')
import pydicom
print(json.dumps({p: pydicom.dcmread(p).to_json_dict(bulk_data_threshold=1 << 30) for p in sys.argv[1:]}))
`;

/** pydicom's DICOM JSON of each file. */
export function pydicomJson(paths: string[]): Record<string, unknown> {
  return JSON.parse(runPython(JSON_SCRIPT, paths)) as Record<string, unknown>;
}

// ---- builders (Explicit VR unless said otherwise) ----

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** An Explicit VR element; `length` overrides the declared length (for lies). */
export function explicitElement(
  tag: number,
  vr: string,
  value: Buffer,
  options: { bigEndian?: boolean; length?: number } = {},
): Buffer {
  const big = options.bigEndian ?? false;
  const length = options.length ?? value.length;
  const header = Buffer.alloc(LONG.has(vr) ? 12 : 8);
  if (big) {
    header.writeUInt16BE(tag >>> 16, 0);
    header.writeUInt16BE(tag & 0xffff, 2);
  } else {
    header.writeUInt16LE(tag >>> 16, 0);
    header.writeUInt16LE(tag & 0xffff, 2);
  }
  header.write(vr, 4, 'latin1');
  if (LONG.has(vr)) {
    if (big) {
      header.writeUInt32BE(length >>> 0, 8);
    } else {
      header.writeUInt32LE(length >>> 0, 8);
    }
  } else if (big) {
    header.writeUInt16BE(length, 6);
  } else {
    header.writeUInt16LE(length, 6);
  }
  return Buffer.concat([header, value]);
}

/** A text element padded to even length (PS3.5 §7.1.1). */
export function textElement(tag: number, vr: string, text: string, encoding: BufferEncoding = 'latin1'): Buffer {
  let value = Buffer.from(text, encoding);
  if (value.length % 2 === 1) {
    value = Buffer.concat([value, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
  }
  return explicitElement(tag, vr, value);
}

/** An item or delimiter header (FFFE,xxxx) in little endian. */
export function itemHeader(tag: number, length: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(0xfffe, 0);
  header.writeUInt16LE(tag & 0xffff, 2);
  header.writeUInt32LE(length >>> 0, 4);
  return header;
}

/** An undefined-length sequence of undefined-length items. */
export function undefinedLengthSequence(tag: number, items: Buffer[]): Buffer {
  const parts = items.flatMap((item) => [itemHeader(0xfffee000, 0xffffffff), item, itemHeader(0xfffee00d, 0)]);
  return Buffer.concat([
    explicitElement(tag, 'SQ', Buffer.alloc(0), { length: 0xffffffff }),
    ...parts,
    itemHeader(0xfffee0dd, 0),
  ]);
}

/** A Part 10 file: preamble, DICM, meta group (with its group length), dataset. */
export function part10File(
  transferSyntaxUid: string,
  dataset: Buffer,
  uids = { sopClass: '1.2.840.10008.5.1.4.1.1.7', sopInstance: '1.2.3.4.5' },
): Buffer {
  const metaBody = Buffer.concat([
    explicitElement(0x00020001, 'OB', Buffer.from([0, 1])),
    textElement(0x00020002, 'UI', uids.sopClass),
    textElement(0x00020003, 'UI', uids.sopInstance),
    textElement(0x00020010, 'UI', transferSyntaxUid),
    textElement(0x00020012, 'UI', '1.2.3.999'),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(metaBody.length);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM'),
    explicitElement(0x00020000, 'UL', groupLength),
    metaBody,
    dataset,
  ]);
}

/** Mulberry32: a small seeded PRNG so that fuzz cases are reproducible. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
