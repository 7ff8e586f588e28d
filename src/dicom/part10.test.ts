import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { checkInstanceConsistency, getString, readIndexedAttributes } from './attributes.ts';
import { toDicomJson } from './dicom-json.ts';
import {
  PYDICOM_TEST_FILES,
  classifiedFiles,
  explicitElement,
  itemHeader,
  part10File,
  pydicomJson,
  readWithPydicom,
  seededRandom,
  textElement,
  undefinedLengthSequence,
} from '../../test/support/dicom/part10-fixtures.ts';
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_BIG_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  MAX_SEQUENCE_DEPTH,
  MAX_VALUE_LENGTH,
  SMALL_BULK_BYTES,
  parsePart10,
  parsePart10File,
  type Part10Result,
} from './part10.ts';

const files = classifiedFiles();
const validFiles = files.filter((file) => file.valid);
const malformedFiles = files.filter((file) => !file.valid);
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const HEAP_GROWTH_LIMIT = 64 * 1024 * 1024;

/** Parses and asserts the bounds every input must respect: no throw, < 1 s, bounded heap growth. */
function boundedParse(bytes: Buffer): Part10Result {
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const result = parsePart10(bytes);
  expect(performance.now() - started).toBeLessThan(1000);
  expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(HEAP_GROWTH_LIMIT);
  return result;
}

function expectRefused(result: Part10Result, reason?: RegExp): string {
  if (result.ok) {
    throw new Error('expected the input to be refused');
  }
  expect(result.reason.length).toBeGreaterThan(10);
  if (reason) {
    expect(result.reason).toMatch(reason);
  }
  return result.reason;
}

function parsed(bytes: Buffer) {
  const result = parsePart10(bytes);
  if (!result.ok) {
    throw new Error(`expected a parse, got: ${result.reason}`);
  }
  return result;
}

describe('pydicom test files', () => {
  it('classification sees both kinds', () => {
    expect(validFiles.length).toBeGreaterThan(140);
    expect(malformedFiles.map((file) => file.name)).toEqual(
      expect.arrayContaining(['MR_truncated.dcm', 'rtplan_truncated.dcm', 'no_meta.dcm']),
    );
  });

  const oracle = readWithPydicom(validFiles.map((file) => file.path));

  it.each(validFiles.map((file) => [file.name, file.path]))(
    "valid %s parses and its indexed attributes equal pydicom's",
    (_name, path) => {
      const result = boundedParse(readFileSync(path));
      if (!result.ok) {
        throw new Error(result.reason);
      }
      const expected = oracle.get(path);
      if (!expected) {
        throw new Error(`pydicom gave nothing for ${path}`);
      }
      expect(result.meta.transferSyntaxUid).toBe(expected.transferSyntaxUid || result.meta.transferSyntaxUid);
      expect(result.meta.mediaStorageSopInstanceUid).toBe(expected.mediaStorageSopInstanceUid);
      expect(result.meta.mediaStorageSopClassUid).toBe(expected.mediaStorageSopClassUid);
      expect(readIndexedAttributes(result.dataset)).toEqual(expected.attributes);

      const attrs = expected.attributes;
      const consistent =
        ['SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'].every((keyword) => attrs[keyword]) &&
        attrs.SOPInstanceUID === expected.mediaStorageSopInstanceUid &&
        attrs.SOPClassUID === expected.mediaStorageSopClassUid;
      expect(checkInstanceConsistency(result.meta, result.dataset).ok).toBe(consistent);
    },
  );

  it.each(malformedFiles.map((file) => [file.name, file.path]))(
    'malformed %s is refused with a reason',
    (_name, path) => {
      expectRefused(boundedParse(readFileSync(path)));
    },
  );

  it('names the truncation point', () => {
    expectRefused(
      parsePart10(readFileSync(join(PYDICOM_TEST_FILES, 'MR_truncated.dcm'))),
      /^truncated at offset \d+ in \(7fe0,0010\)/,
    );
    expectRefused(
      parsePart10(readFileSync(join(PYDICOM_TEST_FILES, 'SC_rgb_jpeg.dcm'))),
      /not encoded as its transfer syntax declares/,
    );
  });

  it('reads every transfer syntax family, with pixel data as ranges, not copies', () => {
    const rle = parsed(readFileSync(join(PYDICOM_TEST_FILES, 'SC_rgb_rle_2frame.dcm')));
    const pixels = rle.dataset.elements.get('7FE00010');
    expect(pixels?.fragments).toHaveLength(2);
    expect(pixels?.value).toBeUndefined();
    const deflated = parsed(readFileSync(join(PYDICOM_TEST_FILES, 'image_dfl.dcm')));
    expect(deflated.meta.transferSyntaxUid).toBe(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
    expect(deflated.inflatedDataset?.length).toBeGreaterThan(512 * 512);
    const bigEndian = parsed(readFileSync(join(PYDICOM_TEST_FILES, 'MR_small_bigendian.dcm')));
    expect(bigEndian.meta.transferSyntaxUid).toBe(EXPLICIT_VR_BIG_ENDIAN);
    expect(getString(bigEndian.dataset, '00280010')).toBe('64');
    const file = readFileSync(join(PYDICOM_TEST_FILES, 'MR_small.dcm'));
    const native = parsed(file).dataset.elements.get('7FE00010');
    expect(native?.value?.buffer).toBe(file.buffer);
    expect(native?.length).toBe(8192);
  });
});

describe('reading from a file', () => {
  const bulkUri = {
    bulkDataUri: (tag: string, path: readonly (string | number)[]) => [...path, tag].join('/'),
    inlineThreshold: SMALL_BULK_BYTES,
  };

  it.each(files.map((file) => [file.name, file.path]))(
    '%s reads the same from disk as from a buffer',
    (_name, path) => {
      const fromBuffer = parsePart10(readFileSync(path));
      const fromFile = parsePart10File(path);
      if (!fromBuffer.ok || !fromFile.ok) {
        expect(fromFile).toEqual(fromBuffer);
        return;
      }
      expect(fromFile.meta).toEqual(fromBuffer.meta);
      expect(readIndexedAttributes(fromFile.dataset)).toEqual(readIndexedAttributes(fromBuffer.dataset));
      expect(toDicomJson(fromFile.dataset, bulkUri)).toEqual(toDicomJson(fromBuffer.dataset, bulkUri));
    },
  );

  it('never reads a large pixel data value, and refuses a missing file', () => {
    const directory = mkdtempSync(join(tmpdir(), 'part10-'));
    try {
      const pixelBytes = 512 * 1024 * 1024;
      const header = part10File(
        EXPLICIT_VR_LITTLE_ENDIAN,
        Buffer.concat([
          textElement(0x00100020, 'LO', 'ID42'),
          explicitElement(0x7fe00010, 'OW', Buffer.alloc(0), { length: pixelBytes }),
        ]),
      );
      const path = join(directory, 'large.dcm');
      writeFileSync(path, header);
      truncateSync(path, header.length + pixelBytes); // sparse: nothing of it is ever in memory
      const heapBefore = process.memoryUsage().heapUsed;
      const result = parsePart10File(path);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(HEAP_GROWTH_LIMIT);
      if (!result.ok) {
        throw new Error(result.reason);
      }
      expect(result.dataset.elements.get('7FE00010')).toEqual({
        tag: '7FE00010',
        vr: 'OW',
        offset: header.length,
        length: pixelBytes,
      });
      expect(getString(result.dataset, '00100020')).toBe('ID42');
      truncateSync(path, header.length + pixelBytes - 1);
      expectRefused(parsePart10File(path), /^truncated at offset \d+ in \(7fe0,0010\)/);
    } finally {
      rmSync(directory, { recursive: true });
    }
    expectRefused(parsePart10File('/nonexistent/file.dcm'), /cannot be opened/);
  });
});

describe('hostile inputs', () => {
  const sr = readFileSync(join(PYDICOM_TEST_FILES, 'test-SR.dcm'));
  const mr = readFileSync(join(PYDICOM_TEST_FILES, 'MR_small.dcm'));

  /** Offsets where a top-level element ends: a file cut there is a shorter valid file. */
  function topLevelBoundaries(file: Buffer): Set<number> {
    const result = parsed(file);
    const ends = new Set<number>();
    for (const element of result.dataset.elements.values()) {
      ends.add(
        element.offset +
          element.length +
          (element.fragments || (element.items && file.readUInt32LE(element.offset - 4) === 0xffffffff) ? 8 : 0),
      );
    }
    return ends;
  }

  it.each([
    ['test-SR.dcm', sr],
    ['MR_small.dcm', mr],
  ])('refuses %s truncated at 200 random positions', (_name, file) => {
    const boundaries = topLevelBoundaries(file);
    const random = seededRandom(4);
    const patientName = parsed(file).dataset.elements.get('00100010')?.value?.toString('latin1').trim() ?? 'x';
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      const cut = Math.floor(random() * file.length);
      const result = boundedParse(file.subarray(0, cut));
      if (boundaries.has(cut)) {
        continue;
      }
      const reason = expectRefused(result);
      expect(reason).not.toContain(patientName);
      refused++;
    }
    expect(refused).toBeGreaterThan(150);
  });

  it('survives 3,000 random byte flips (seeded) in every encoding without throwing or stalling', () => {
    const sources = [
      'test-SR.dcm',
      'MR_small.dcm',
      'rtplan.dcm',
      'MR_small_bigendian.dcm',
      'SC_rgb_rle_2frame.dcm',
      'image_dfl.dcm',
      'UN_sequence.dcm',
    ].map((name) => readFileSync(join(PYDICOM_TEST_FILES, name)));
    const random = seededRandom(20261128);
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const source = sources[i % sources.length] as Buffer;
      const mutant = Buffer.from(source);
      const flips = 1 + Math.floor(random() * 8);
      // Mostly past the preamble, sometimes in it (where flips must not matter) or in "DICM".
      for (let f = 0; f < flips; f++) {
        mutant[Math.floor(random() * mutant.length)] = Math.floor(random() * 256);
      }
      const result = boundedParse(mutant);
      if (result.ok) {
        accepted++;
      } else {
        expect(result.reason).toMatch(/\S/);
      }
    }
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(3000);
  });

  it('refuses a 1 GB declared element length', () => {
    const gigabyte = 1024 * 1024 * 1024;
    const claim = part10File(
      EXPLICIT_VR_LITTLE_ENDIAN,
      explicitElement(0x00091010, 'OB', Buffer.alloc(16), { length: gigabyte }),
    );
    expectRefused(
      boundedParse(claim),
      /^truncated at offset \d+ in \(0009,1010\): value of 1073741824 bytes but 16 remain/,
    );
    const text = part10File(
      EXPLICIT_VR_LITTLE_ENDIAN,
      explicitElement(0x00081030, 'UT', Buffer.alloc(16), { length: gigabyte }),
    );
    expectRefused(boundedParse(text), /truncated/);
  });

  it('refuses a non-bulk value over the length limit, but not bulk data of that size', () => {
    const long = part10File(
      EXPLICIT_VR_LITTLE_ENDIAN,
      explicitElement(0x0040a160, 'UT', Buffer.alloc(MAX_VALUE_LENGTH + 2, 0x41)),
    );
    expectRefused(boundedParse(long), /over the 65536-byte limit for VR UT/);
    const bulk = part10File(
      EXPLICIT_VR_LITTLE_ENDIAN,
      explicitElement(0x7fe00010, 'OW', Buffer.alloc(MAX_VALUE_LENGTH * 4)),
    );
    expect(parsePart10(bulk).ok).toBe(true);
  });

  /** Sequences of one undefined-length item each, nested depth levels, built in linear time. */
  function nested(depth: number, implicit = false): Buffer {
    const sequenceHeader = implicit
      ? Buffer.from([0x40, 0x00, 0x30, 0xa7, 0xff, 0xff, 0xff, 0xff])
      : explicitElement(0x0040a730, 'SQ', Buffer.alloc(0), { length: 0xffffffff });
    const open = Buffer.concat([sequenceHeader, itemHeader(0xfffee000, 0xffffffff)]);
    const close = Buffer.concat([itemHeader(0xfffee00d, 0), itemHeader(0xfffee0dd, 0)]);
    const innermost = implicit ? Buffer.alloc(0) : textElement(0x00100020, 'LO', 'X');
    return Buffer.concat([...Array<Buffer>(depth).fill(open), innermost, ...Array<Buffer>(depth).fill(close)]);
  }

  it('accepts nesting up to the depth limit and refuses deeper bombs', () => {
    expect(parsePart10(part10File(EXPLICIT_VR_LITTLE_ENDIAN, nested(MAX_SEQUENCE_DEPTH))).ok).toBe(true);
    expectRefused(
      boundedParse(part10File(EXPLICIT_VR_LITTLE_ENDIAN, nested(MAX_SEQUENCE_DEPTH + 1))),
      /nested deeper than 16/,
    );
    expectRefused(boundedParse(part10File(EXPLICIT_VR_LITTLE_ENDIAN, nested(20_000))), /nested deeper than 16/);
    expectRefused(boundedParse(part10File(IMPLICIT_VR_LITTLE_ENDIAN, nested(20_000, true))), /nested deeper than 16/);
  });

  it('refuses claims of 2^31 items and floods of items or fragments', () => {
    const claim = Buffer.concat([
      explicitElement(0x0040a730, 'SQ', Buffer.alloc(0), { length: 0xffffffff }),
      itemHeader(0xfffee000, 2 ** 31),
      Buffer.alloc(64),
    ]);
    expectRefused(boundedParse(part10File(EXPLICIT_VR_LITTLE_ENDIAN, claim)), /item of 2147483648 bytes/);
    const sequenceClaim = explicitElement(0x0040a730, 'SQ', Buffer.alloc(8), { length: 2 ** 31 });
    expectRefused(boundedParse(part10File(EXPLICIT_VR_LITTLE_ENDIAN, sequenceClaim)), /truncated/);
    const emptyItems = Buffer.concat(Array.from({ length: 60_000 }, () => itemHeader(0xfffee000, 0)));
    const itemFlood = Buffer.concat([
      explicitElement(0x0040a730, 'SQ', emptyItems),
      textElement(0x00100020, 'LO', 'X'),
    ]);
    expectRefused(boundedParse(part10File(EXPLICIT_VR_LITTLE_ENDIAN, itemFlood)), /limit exceeded: more than 50000/);
    const fragmentFlood = Buffer.concat([
      explicitElement(0x7fe00010, 'OB', Buffer.alloc(0), { length: 0xffffffff }),
      emptyItems,
      itemHeader(0xfffee0dd, 0),
    ]);
    expectRefused(boundedParse(part10File(JPEG_BASELINE, fragmentFlood)), /limit exceeded/);
    const delimiterFlood = Buffer.concat([
      explicitElement(0x7fe00010, 'OB', Buffer.alloc(0), { length: 0xffffffff }),
      ...Array.from({ length: 250_000 }, () => itemHeader(0xfffee000, 0)),
    ]);
    expectRefused(boundedParse(part10File(JPEG_BASELINE, delimiterFlood)), /limit exceeded/);
  });

  it('caps a deflate bomb', () => {
    const bomb = part10File(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, deflateRawSync(Buffer.alloc(8 * 1024 * 1024)));
    const result = parsePart10(bomb, { limits: { maxInflatedBytes: 1024 * 1024 } });
    expectRefused(result, /inflates to more than 1048576 bytes/);
    expectRefused(
      parsePart10(part10File(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, Buffer.from('not deflate at all'))),
      /cannot be inflated|truncated|invalid/,
    );
  });

  it('refuses non-DICOM input and never throws on tiny inputs', () => {
    for (let length = 0; length < 200; length += 7) {
      expectRefused(boundedParse(Buffer.alloc(length)));
    }
    expectRefused(parsePart10(Buffer.concat([Buffer.alloc(128), Buffer.from('DICM')])), /no File Meta Information/);
  });
});

describe('attributes and consistency', () => {
  const uids = { sopClass: '1.2.840.10008.5.1.4.1.1.7', sopInstance: '1.2.3.4.5' };
  const required = [
    textElement(0x00080016, 'UI', uids.sopClass),
    textElement(0x00080018, 'UI', uids.sopInstance),
    textElement(0x0020000d, 'UI', '1.2.3.4'),
    textElement(0x0020000e, 'UI', '1.2.3.4.1'),
  ];

  it('decodes ISO_IR 192, ISO_IR 100 and the default repertoire', () => {
    const utf8 = parsed(
      part10File(
        EXPLICIT_VR_LITTLE_ENDIAN,
        Buffer.concat([
          textElement(0x00080005, 'CS', 'ISO_IR 192'),
          textElement(0x00100010, 'PN', 'Müller^José', 'utf8'),
        ]),
      ),
    );
    expect(getString(utf8.dataset, '00100010')).toBe('Müller^José');
    const latin1 = parsed(
      part10File(
        EXPLICIT_VR_LITTLE_ENDIAN,
        Buffer.concat([
          textElement(0x00080005, 'CS', 'ISO_IR 100'),
          textElement(0x00100010, 'PN', 'Müller^José', 'latin1'),
        ]),
      ),
    );
    expect(getString(latin1.dataset, '00100010')).toBe('Müller^José');
    const ascii = parsed(part10File(EXPLICIT_VR_LITTLE_ENDIAN, textElement(0x00100020, 'LO', ' ID42 ')));
    expect(getString(ascii.dataset, '00100020')).toBe('ID42');
    expect(getString(ascii.dataset, '00100010')).toBeUndefined();
  });

  it('reads binary numbers, AT, and attributes relayed as UN, in both byte orders', () => {
    const rows = Buffer.from([0x00, 0x02]);
    const little = parsed(
      part10File(
        EXPLICIT_VR_LITTLE_ENDIAN,
        Buffer.concat([
          explicitElement(0x00280009, 'AT', Buffer.from([0x18, 0x00, 0x63, 0x10])),
          explicitElement(0x00280010, 'UN', rows),
          explicitElement(0x00280011, 'US', Buffer.from([0x00, 0x01, 0x03, 0x00])),
        ]),
      ),
    );
    expect(readIndexedAttributes(little.dataset)).toEqual({ Rows: '512', Columns: '256\\3' });
    expect(getString(little.dataset, '00280009')).toBe('00181063');
    const big = parsed(
      part10File(
        EXPLICIT_VR_BIG_ENDIAN,
        explicitElement(0x00280010, 'US', Buffer.from([0x02, 0x00]), { bigEndian: true }),
      ),
    );
    expect(getString(big.dataset, '00280010')).toBe('512');
  });

  it('accepts a consistent instance and names what is wrong otherwise', () => {
    const good = parsed(part10File(EXPLICIT_VR_LITTLE_ENDIAN, Buffer.concat(required), uids));
    expect(checkInstanceConsistency(good.meta, good.dataset)).toEqual({ ok: true });
    const other = parsed(
      part10File(EXPLICIT_VR_LITTLE_ENDIAN, Buffer.concat(required), { ...uids, sopInstance: '1.2.3.4.6' }),
    );
    expect(checkInstanceConsistency(other.meta, other.dataset)).toEqual({
      ok: false,
      reason: expect.stringMatching(/differs from SOPInstanceUID/),
    });
    const badUid = parsed(
      part10File(
        EXPLICIT_VR_LITTLE_ENDIAN,
        Buffer.concat([...required.slice(0, 2), textElement(0x0020000d, 'UI', '1.02.3'), required[3] as Buffer]),
        uids,
      ),
    );
    expect(checkInstanceConsistency(badUid.meta, badUid.dataset)).toEqual({
      ok: false,
      reason: 'StudyInstanceUID is not a valid UID',
    });
    const missing = parsed(part10File(EXPLICIT_VR_LITTLE_ENDIAN, Buffer.concat(required.slice(0, 3)), uids));
    expect(checkInstanceConsistency(missing.meta, missing.dataset)).toEqual({
      ok: false,
      reason: 'SeriesInstanceUID is missing or empty',
    });
  });
});

describe('DICOM JSON', () => {
  function u16(...values: number[]): Buffer {
    const buffer = Buffer.alloc(values.length * 2);
    values.forEach((value, i) => buffer.writeUInt16LE(value, i * 2));
    return buffer;
  }

  it('renders a hand-built dataset per PS3.18 F.2', () => {
    const fl = Buffer.alloc(4);
    fl.writeFloatLE(1.5);
    const fd = Buffer.alloc(8);
    fd.writeDoubleLE(-2.25);
    const ul = Buffer.alloc(4);
    ul.writeUInt32LE(70000);
    const ss = Buffer.alloc(2);
    ss.writeInt16LE(-3);
    const dataset = Buffer.concat([
      textElement(0x00080005, 'CS', 'ISO_IR 192'),
      textElement(0x00080008, 'CS', 'ORIGINAL\\\\AXIAL'),
      textElement(0x00080050, 'SH', ''),
      undefinedLengthSequence(0x00081115, [
        Buffer.concat([textElement(0x00081150, 'UI', '1.2.3'), explicitElement(0x00091001, 'OB', Buffer.alloc(4000))]),
      ]),
      textElement(0x00100010, 'PN', 'Yamada^Tarou=山田^太郎=やまだ^たろう', 'utf8'),
      textElement(0x00181063, 'DS', '1.5\\-2e3\\0x10'),
      explicitElement(0x00189219, 'SS', ss),
      textElement(0x00200013, 'IS', '7'),
      explicitElement(0x00280009, 'AT', u16(0x0018, 0x1063)),
      explicitElement(0x00280010, 'US', u16(512, 3)),
      explicitElement(0x00282000, 'OB', Buffer.from([1, 2, 3, 4])),
      explicitElement(0x00400008, 'UL', ul),
      explicitElement(0x00460044, 'FL', fl),
      explicitElement(0x00460046, 'FD', fd),
      explicitElement(0x7fe00010, 'OW', Buffer.alloc(2048)),
    ]);
    const result = parsed(part10File(EXPLICIT_VR_LITTLE_ENDIAN, dataset));
    const json = toDicomJson(result.dataset, {
      bulkDataUri: (tag, path) => `bulk/${[...path, tag].join('/')}`,
      inlineThreshold: 16,
    });
    expect(json).toEqual({
      '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
      '00080008': { vr: 'CS', Value: ['ORIGINAL', null, 'AXIAL'] },
      '00080050': { vr: 'SH' },
      '00081115': {
        vr: 'SQ',
        Value: [
          {
            '00081150': { vr: 'UI', Value: ['1.2.3'] },
            '00091001': { vr: 'OB', BulkDataURI: 'bulk/00081115/0/00091001' },
          },
        ],
      },
      '00100010': {
        vr: 'PN',
        Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }],
      },
      '00181063': { vr: 'DS', Value: [1.5, -2000, '0x10'] },
      '00189219': { vr: 'SS', Value: [-3] },
      '00200013': { vr: 'IS', Value: [7] },
      '00280009': { vr: 'AT', Value: ['00181063'] },
      '00280010': { vr: 'US', Value: [512, 3] },
      '00282000': { vr: 'OB', InlineBinary: 'AQIDBA==' },
      '00400008': { vr: 'UL', Value: [70000] },
      '00460044': { vr: 'FL', Value: [1.5] },
      '00460046': { vr: 'FD', Value: [-2.25] },
      '7FE00010': { vr: 'OW', BulkDataURI: 'bulk/7FE00010' },
    });
  });

  /**
   * Drops BulkDataURI/InlineBinary, which differ by design between implementations, and pydicom's
   * empty Value arrays of empty sequences (we omit Value when there is none, PS3.18 §F.2.5).
   */
  function withoutBinary(value: unknown): unknown {
    if (Array.isArray(value)) {
      return value.map(withoutBinary);
    }
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value)
          .filter(
            ([key, inner]) =>
              key !== 'BulkDataURI' &&
              key !== 'InlineBinary' &&
              !(key === 'Value' && Array.isArray(inner) && inner.length === 0),
          )
          .map(([key, inner]) => [key, withoutBinary(inner)]),
      );
    }
    return value;
  }

  const jsonFiles = ['CT_small.dcm', 'MR_small.dcm', 'test-SR.dcm', 'rtdose_expb_1frame.dcm'];
  const expectedJson = pydicomJson(jsonFiles.map((name) => join(PYDICOM_TEST_FILES, name)));

  /** Drops the attributes our Implicit VR dictionary does not know (UN), from both sides. */
  function knownOnly(ours: unknown, theirs: unknown): [unknown, unknown] {
    if (Array.isArray(ours) && Array.isArray(theirs)) {
      const pairs = ours.map((item, i) => knownOnly(item, theirs[i]));
      return [pairs.map(([a]) => a), pairs.map(([, b]) => b)];
    }
    if (!ours || typeof ours !== 'object' || !theirs || typeof theirs !== 'object') {
      return [ours, theirs];
    }
    const left: Record<string, unknown> = {};
    const right: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(ours)) {
      if ((value as { vr?: string } | null)?.vr === 'UN') {
        continue;
      }
      [left[key], right[key]] = knownOnly(value, (theirs as Record<string, unknown>)[key]);
    }
    for (const key of Object.keys(theirs)) {
      if (!(key in left) && (ours as Record<string, { vr?: string }>)[key]?.vr !== 'UN') {
        right[key] = (theirs as Record<string, unknown>)[key];
      }
    }
    return [left, right];
  }

  const implicitFiles = ['MR_small_implicit.dcm', 'rtplan.dcm', 'rtdose.dcm', 'SC_rgb_jpeg_dcmd.dcm'];
  const expectedImplicitJson = pydicomJson(implicitFiles.map((name) => join(PYDICOM_TEST_FILES, name)));

  it.each(implicitFiles)(
    'matches pydicom to_json for Implicit VR %s on the attributes our dictionary knows',
    (name) => {
      const path = join(PYDICOM_TEST_FILES, name);
      const ours = withoutBinary(toDicomJson(parsed(readFileSync(path)).dataset, { bulkDataUri: () => 'x' }));
      const [left, right] = knownOnly(ours, withoutBinary(expectedImplicitJson[path]));
      expect(left).toEqual(right);
      expect(Object.keys(left as object).length).toBeGreaterThan(3);
    },
  );

  it.each(jsonFiles)('matches pydicom to_json for %s', (name) => {
    const path = join(PYDICOM_TEST_FILES, name);
    const ours = toDicomJson(parsed(readFileSync(path)).dataset, { bulkDataUri: () => 'x' });
    expect(withoutBinary(ours)).toEqual(withoutBinary(expectedJson[path]));
  });
});
