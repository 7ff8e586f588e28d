/**
 * WADO-RS bulk data over a varied corpus (pydicom's test files, and files made here by dcmtk's
 * dcmcjpeg, dcmcjpls, dcmcrle and img2dcm): every BulkDataURI the metadata advertises answers 200
 * with `transfer-syntax=*` and the bytes as stored. pydicom 2.3 (test/dicomweb-bulkdata.oracle.py)
 * is the oracle: native values as little-endian bytes, encapsulated pixel data split into frames
 * by its own fragment splitting.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runDcmtk } from './support/dicom/test-peer.ts';
import { stow } from './support/stow.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const ANY_SYNTAX = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

interface OracleFixture {
  path: string;
  sop: string;
  study: string;
  series: string;
  transferSyntax: string;
  bulk: Record<string, { value?: string; frames?: string[]; fragments?: string }>;
  native?: string;
}

/** pydicom's files, by name, and the ones made here from them (`make`). */
const PYDICOM_SOURCES = [
  'CT_small.dcm',
  'MR_small.dcm',
  'MR_small_bigendian.dcm',
  'MR_small_implicit.dcm',
  'MR_small_RLE.dcm',
  'MR_small_jpeg_ls_lossless.dcm',
  'MR_small_jp2klossless.dcm',
  'JPEG2000.dcm',
  'JPEG-lossy.dcm',
  'JPGExtended.dcm',
  'JPEG2000-embedded-sequence-delimiter.dcm',
  'GDCMJ2K_TextGBR.dcm',
  'SC_rgb_jpeg_dcmtk.dcm',
  'SC_rgb_dcmtk_+eb+cy+np.dcm',
  'SC_rgb_dcmtk_+eb+cr.dcm',
  'SC_rgb_small_odd_jpeg.dcm',
  'SC_jpeg_no_color_transform.dcm',
  'SC_rgb_rle_2frame.dcm',
  'SC_rgb_rle_32bit_2frame.dcm',
  'rtdose.dcm',
  'rtdose_expb.dcm',
  'rtdose_rle.dcm',
  'image_dfl.dcm',
  'ExplVR_BigEnd.dcm',
  'waveform_ecg.dcm',
  'liver_1frame.dcm',
];

interface Made {
  name: string;
  /** The dcmtk commands that make `<name>.dcm` in the work directory ($T: pydicom's files, $W: the work directory). */
  steps: string[][];
  /** Instead of steps: a copy of this file ($T, $W as in steps) by pydicom, with an icon or attributes set. */
  copyOf?: string;
  icon?: boolean;
  set?: Record<string, unknown>;
  /** The oracle decodes its one frame too. */
  native?: boolean;
}

const MADE: Made[] = [
  { name: 'ct-jpeg-lossless', steps: [['dcmcjpeg', '$T/CT_small.dcm', '$W/ct-jpeg-lossless.dcm']] },
  {
    name: 'rgb-jpeg-baseline',
    steps: [['dcmcjpeg', '+eb', '+cr', '$T/SC_rgb_small_odd.dcm', '$W/rgb-jpeg-baseline.dcm']],
  },
  { name: 'ct-jpeg-ls', steps: [['dcmcjpls', '$T/CT_small.dcm', '$W/ct-jpeg-ls.dcm']] },
  { name: 'ct-rle', steps: [['dcmcrle', '$T/CT_small.dcm', '$W/ct-rle.dcm']] },
  {
    // Two frames of 1 KiB fragments each, with a Basic Offset Table, and without one.
    name: 'rgb-2frame-fragments',
    steps: [
      ['dcmdrle', '$T/SC_rgb_rle_2frame.dcm', '$W/rgb-2frame.dcm'],
      ['dcmcjpeg', '+fs', '1', '$W/rgb-2frame.dcm', '$W/rgb-2frame-fragments.dcm'],
    ],
  },
  {
    name: 'rgb-2frame-no-offsets',
    steps: [['dcmcjpeg', '+fs', '1', '-ot', '$W/rgb-2frame.dcm', '$W/rgb-2frame-no-offsets.dcm']],
  },
  {
    name: 'ct-img2dcm',
    steps: [
      ['dcmj2pnm', '+oj', '+Wm', '$T/CT_small.dcm', '$W/ct.jpg'],
      ['img2dcm', '$W/ct.jpg', '$W/ct-img2dcm.dcm'],
    ],
    native: true,
  },
  // A JPEG with its first frame again as an icon: encapsulated pixel data inside a sequence.
  { name: 'jpeg-with-icon', steps: [], copyOf: '$T/SC_rgb_jpeg_dcmtk.dcm', icon: true },
  // Number of Frames says 3, the fragments make 2: the frames cannot be told apart.
  { name: 'frames-disagree', steps: [], copyOf: '$W/rgb-2frame-no-offsets.dcm', set: { NumberOfFrames: 3 } },
];
const FRAMES_DISAGREE = 'frames-disagree';

interface Part {
  headers: Map<string, string>;
  body: Buffer;
}

function splitMultipart(body: Buffer, contentType: string): Part[] {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)![1]!;
  const parts: Part[] = [];
  let position = body.indexOf(`--${boundary}\r\n`);
  while (position !== -1) {
    const headerStart = position + boundary.length + 4;
    const headerEnd = body.indexOf('\r\n\r\n', headerStart);
    const headers = new Map(
      body
        .toString('latin1', headerStart, headerEnd)
        .split('\r\n')
        .map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
        }),
    );
    const next = body.indexOf(`\r\n--${boundary}`, headerEnd + 4);
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    position = body.indexOf(`--${boundary}\r\n`, next + 2);
  }
  expect(body.toString('latin1', body.length - boundary.length - 6)).toBe(`--${boundary}--\r\n`);
  return parts;
}

type JsonDataset = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

/** Every BulkDataURI of a DICOM JSON dataset, sequence items included. */
function bulkDataUris(dataset: JsonDataset): string[] {
  return Object.values(dataset).flatMap((attribute) => {
    if (attribute.BulkDataURI !== undefined) {
      return [attribute.BulkDataURI];
    }
    if (attribute.vr === 'SQ') {
      return (attribute.Value ?? []).flatMap((item) => bulkDataUris(item as JsonDataset));
    }
    return [];
  });
}

describe('WADO-RS bulk data over a varied corpus', () => {
  let th: TestHub;
  let workDir: string;
  let fixtures: Record<string, OracleFixture>;

  const instanceUrl = (name: string): string => {
    const f = fixtures[name]!;
    return `${th.baseUrl}/dicomweb/studies/${f.study}/series/${f.series}/instances/${f.sop}`;
  };
  const get = async (target: string, accept?: string): Promise<{ status: number; type: string; body: Buffer }> => {
    const response = await fetch(target, { headers: accept === undefined ? {} : { accept } });
    return {
      status: response.status,
      type: response.headers.get('content-type') ?? '',
      body: Buffer.from(await response.arrayBuffer()),
    };
  };
  const b64 = (text: string): Buffer => Buffer.from(text, 'base64');
  const expand = (arg: string): string => arg.replace('$T', TEST_FILES).replace('$W', workDir);

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dicomweb-bulkdata-'));
    th = await startTestHub();
    for (const made of MADE) {
      for (const [command, ...args] of made.steps) {
        const result = await runDcmtk(command!, args.map(expand));
        expect({ command, code: result.code, output: result.output }).toEqual({ command, code: 0, output: '' });
      }
    }
    const plan = [
      ...PYDICOM_SOURCES.map((source) => ({ name: source.replace(/\.dcm$/, ''), source: join(TEST_FILES, source) })),
      ...MADE.map((made) => ({
        name: made.name,
        source: made.copyOf === undefined ? join(workDir, `${made.name}.dcm`) : expand(made.copyOf),
        icon: made.icon,
        set: made.set,
        native: made.native,
      })),
    ];
    const oracle = await promisify(execFile)(
      '/usr/bin/python3',
      [join(import.meta.dirname, 'dicomweb-bulkdata.oracle.py'), JSON.stringify(plan), workDir],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    fixtures = JSON.parse(oracle.stdout) as Record<string, OracleFixture>;
    const files = await Promise.all(Object.values(fixtures).map((fixture) => readFile(fixture.path)));
    const response = await stow(th.baseUrl, files);
    const failed =
      response.status === 200 ? undefined : ((await response.json()) as Record<string, unknown>)['00081198'];
    expect({ status: response.status, failed }).toEqual({ status: 200, failed: undefined });
  }, 120_000);

  afterAll(async () => {
    await th?.stop();
    if (workDir) {
      await rm(workDir, { recursive: true, force: true });
    }
  });

  test('every BulkDataURI in the metadata answers 200 with transfer-syntax=* and the bytes as stored', async () => {
    const problems: string[] = [];
    let encapsulated = 0;
    let native = 0;
    let unknownToPydicom = 0;
    for (const [name, fixture] of Object.entries(fixtures)) {
      const metadata = await get(`${instanceUrl(name)}/metadata`, 'application/dicom+json');
      expect(metadata.status).toBe(200);
      const [dataset] = JSON.parse(metadata.body.toString()) as JsonDataset[];
      const uris = bulkDataUris(dataset!);
      const advertised = uris.map((uri) => uri.slice(`${instanceUrl(name)}/bulkdata/`.length));
      // Every binary value pydicom sees has a BulkDataURI. In Implicit VR files the hub may also
      // advertise an attribute its dictionary lacks (its VR is then UN): it must answer too.
      expect({ name, missing: Object.keys(fixture.bulk).filter((path) => !advertised.includes(path)) }).toEqual({
        name,
        missing: [],
      });
      for (const [index, uri] of uris.entries()) {
        const path = advertised[index]!;
        const response = await get(uri, ANY_SYNTAX);
        if (response.status !== 200) {
          problems.push(`${name} ${path}: ${response.status} ${response.body.toString()}`);
          continue;
        }
        expect(response.type).toMatch(/^multipart\/related;.*type="?application\/octet-stream/);
        const parts = splitMultipart(response.body, response.type);
        const expected = fixture.bulk[path];
        if (expected === undefined) {
          unknownToPydicom++;
          if (parts.length !== 1 || parts[0]!.body.length === 0) {
            problems.push(`${name} ${path}: ${parts.length} parts for a value unknown to pydicom as binary`);
          }
        } else if (expected.frames) {
          encapsulated++;
          // Where the frames cannot be told apart, the fragments go out joined, as stored.
          const frames = name === FRAMES_DISAGREE ? [expected.fragments!] : expected.frames;
          const sameFrames =
            parts.length === frames.length && parts.every((part, frame) => part.body.equals(b64(frames[frame]!)));
          const types = new Set(parts.map((part) => part.headers.get('content-type')));
          if (
            !sameFrames ||
            types.size !== 1 ||
            !types.has(`application/octet-stream; transfer-syntax=${fixture.transferSyntax}`)
          ) {
            problems.push(`${name} ${path}: ${parts.length} parts (${[...types].join(', ')}), not the stored frames`);
          }
        } else {
          native++;
          if (parts.length !== 1 || !parts[0]!.body.equals(b64(expected.value!))) {
            problems.push(`${name} ${path}: not the stored value`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    // The corpus holds both kinds: at least one encapsulated Pixel Data per compressed file.
    const compressed = Object.values(fixtures).filter((fixture) =>
      Object.values(fixture.bulk).some((bulk) => bulk.frames),
    ).length;
    expect(compressed).toBeGreaterThanOrEqual(20);
    expect(encapsulated).toBeGreaterThanOrEqual(compressed + 1);
    expect(native).toBeGreaterThanOrEqual(10);
    expect(unknownToPydicom).toBeLessThan(native);
  });

  test('compressed pixel data: the stored frames as asked; uncompressed where the hub can decode; 406 with the reason else', async () => {
    const pixelData = (name: string): string => `${instanceUrl(name)}/bulkdata/7FE00010`;
    const octets = (syntax?: string): string =>
      `multipart/related; type="application/octet-stream"${syntax === undefined ? '' : `; transfer-syntax=${syntax}`}`;
    const lossless = fixtures['ct-jpeg-lossless']!;
    const storedFrame = b64(lossless.bulk['7FE00010']!.frames![0]!);
    const partsOf = async (target: string, accept?: string): Promise<Part[]> => {
      const response = await get(target, accept);
      expect({
        accept,
        status: response.status,
        body: response.status === 200 ? '' : response.body.toString(),
      }).toEqual({ accept, status: 200, body: '' });
      return splitMultipart(response.body, response.type);
    };

    // The stored syntax by name, or any media type of its family, or no Accept: the stored frame.
    for (const [accept, type] of [
      [octets(lossless.transferSyntax), 'application/octet-stream'],
      ['multipart/related; type="image/jpeg"', 'image/jpeg'],
      [undefined, 'image/jpeg'],
      ['*/*', 'image/jpeg'],
    ] as const) {
      const [part, ...rest] = await partsOf(pixelData('ct-jpeg-lossless'), accept);
      expect(rest).toHaveLength(0);
      expect(part!.headers.get('content-type')).toBe(`${type}; transfer-syntax=${lossless.transferSyntax}`);
      expect(part!.headers.get('content-location')).toBe(`${instanceUrl('ct-jpeg-lossless')}/frames/1`);
      expect(part!.body.equals(storedFrame)).toBe(true);
    }

    // Uncompressed (named, or octets without a syntax, whose default it is) or another syntax: 406 with the reason.
    const ybr = await get(pixelData('SC_rgb_dcmtk_+eb+cy+np'), octets(EXPLICIT_LE));
    expect({ status: ybr.status, body: ybr.body.toString() }).toEqual({
      status: 406,
      body: expect.stringContaining('YBR_FULL_422'),
    });
    for (const accept of [octets(), octets(EXPLICIT_LE), octets('1.2.840.10008.1.2.4.50')]) {
      const response = await get(pixelData('ct-jpeg-lossless'), accept);
      expect({ accept, status: response.status, type: response.type }).toEqual({
        accept,
        status: 406,
        type: expect.stringMatching(/^application\/json/),
      });
      expect((JSON.parse(response.body.toString()) as { error: string }).error).toContain(lossless.transferSyntax);
    }

    // 8-bit JPEG Baseline and RLE are decoded when uncompressed is asked for, as the frames resource does.
    for (const name of ['SC_rgb_dcmtk_+eb+cr', 'ct-rle', 'SC_rgb_rle_2frame']) {
      const parts = await partsOf(pixelData(name), octets(EXPLICIT_LE));
      const frames = await partsOf(
        `${instanceUrl(name)}/frames/${parts.map((_part, index) => index + 1).join(',')}`,
        octets(EXPLICIT_LE),
      );
      expect({ name, count: parts.length }).toEqual({ name, count: fixtures[name]!.bulk['7FE00010']!.frames!.length });
      for (const [index, part] of parts.entries()) {
        expect(part.headers.get('content-type')).toBe(`application/octet-stream; transfer-syntax=${EXPLICIT_LE}`);
        expect(part.body.equals(frames[index]!.body)).toBe(true);
        expect(part.body.equals(b64(fixtures[name]!.bulk['7FE00010']!.frames![index]!))).toBe(false);
      }
    }

    // A greyscale JPEG Baseline (img2dcm's) decodes to one sample per pixel, as pydicom decodes it
    // (two JPEG decoders: within 2 levels of grey).
    const [grey] = await partsOf(pixelData('ct-img2dcm'), octets(EXPLICIT_LE));
    const pydicomGrey = b64(fixtures['ct-img2dcm']!.native!);
    expect({ length: grey!.body.length }).toEqual({ length: pydicomGrey.length });
    expect(
      grey!.body.reduce((max, sample, at) => Math.max(max, Math.abs(sample - pydicomGrey[at]!)), 0),
    ).toBeLessThanOrEqual(2);
    expect((await get(`${instanceUrl('ct-img2dcm')}/rendered`, 'image/png')).status).toBe(200);

    // A multi-frame image: a part per frame, each at its frame's URL.
    const multi = await partsOf(pixelData('rgb-2frame-fragments'), ANY_SYNTAX);
    expect(multi.map((part) => part.headers.get('content-location'))).toEqual([
      `${instanceUrl('rgb-2frame-fragments')}/frames/1`,
      `${instanceUrl('rgb-2frame-fragments')}/frames/2`,
    ]);

    // Frames that cannot be told apart: the fragments as stored in one part, never decoded.
    const disagree = fixtures[FRAMES_DISAGREE]!;
    expect((await get(`${instanceUrl(FRAMES_DISAGREE)}/frames/1`, ANY_SYNTAX)).status).toBe(422);
    const [joined, ...none] = await partsOf(pixelData(FRAMES_DISAGREE), ANY_SYNTAX);
    expect(none).toHaveLength(0);
    expect(joined!.headers.get('content-location')).toBe(pixelData(FRAMES_DISAGREE));
    expect(joined!.body.equals(b64(disagree.bulk['7FE00010']!.fragments!))).toBe(true);
    const undecodable = await get(pixelData(FRAMES_DISAGREE), octets(EXPLICIT_LE));
    expect(undecodable.status).toBe(406);
    expect(undecodable.body.toString()).toContain('cannot be split into 3 frames');

    // An icon's encapsulated pixel data in a sequence item: its one frame, at the bulk data URL.
    const iconUrl = `${instanceUrl('jpeg-with-icon')}/bulkdata/00880200/0/7FE00010`;
    const [icon] = await partsOf(iconUrl, ANY_SYNTAX);
    expect(icon!.headers.get('content-location')).toBe(iconUrl);
    expect(icon!.body.equals(b64(fixtures['jpeg-with-icon']!.bulk['00880200/0/7FE00010']!.frames![0]!))).toBe(true);
  });

  test('a native value answers whatever syntax is named; other media types are 406; missing elements 404', async () => {
    const ct = fixtures.CT_small!;
    for (const accept of [ANY_SYNTAX, 'multipart/related; type="application/octet-stream"', undefined]) {
      const response = await get(`${instanceUrl('CT_small')}/bulkdata/7FE00010`, accept);
      expect({ accept, status: response.status }).toEqual({ accept, status: 200 });
      const [part] = splitMultipart(response.body, response.type);
      expect(part!.headers.get('content-type')).toBe('application/octet-stream');
      expect(part!.body.equals(b64(ct.bulk['7FE00010']!.value!))).toBe(true);
    }
    expect((await get(`${instanceUrl('CT_small')}/bulkdata/7FE00010`, 'application/dicom+json')).status).toBe(406);
    expect((await get(`${instanceUrl('CT_small')}/bulkdata/00100010`, ANY_SYNTAX)).status).toBe(404);
    expect((await get(`${instanceUrl('jpeg-with-icon')}/bulkdata/00880200/1/7FE00010`, ANY_SYNTAX)).status).toBe(404);
  });
});
