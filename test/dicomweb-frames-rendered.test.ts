/**
 * WADO-RS frames, rendered and thumbnail against a real hub, instances stored by STOW-RS from
 * pydicom's test files. pydicom 2.3 + numpy (test/dicomweb-frames-rendered.oracle.py) is the
 * oracle: its fragment splitting for stored frames, its pixel_array for native samples. Rendered
 * PNGs are decoded here and compared with a VOI window computed here.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32, inflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { stow as stowFiles } from './support/stow.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

interface OracleFixture {
  path: string;
  sop: string;
  study: string;
  series: string;
  transferSyntax: string;
  frames: number;
  rows: number;
  columns: number;
  stored?: string[];
  native?: string[];
  values?: number[];
}

interface PlanEntry {
  name: string;
  source: string;
  newUids?: boolean;
  study?: string;
  set?: Record<string, unknown>;
  values?: boolean;
}

const PLAN: PlanEntry[] = [
  { name: 'ct', source: 'CT_small.dcm', values: true },
  { name: 'mr', source: 'MR_small.dcm', values: true },
  { name: 'mr-be', source: 'MR_small_bigendian.dcm', newUids: true },
  {
    name: 'mr-mono1',
    source: 'MR_small_implicit.dcm',
    newUids: true,
    set: { PhotometricInterpretation: 'MONOCHROME1' },
    values: true,
  },
  { name: 'mr-rle', source: 'MR_small_RLE.dcm', newUids: true, values: true },
  { name: 'mr-jls', source: 'MR_small_jpeg_ls_lossless.dcm', newUids: true },
  { name: 'mr-j2k', source: 'MR_small_jp2klossless.dcm', newUids: true },
  { name: 'dose', source: 'rtdose.dcm', newUids: true },
  { name: 'dose-be', source: 'rtdose_expb.dcm', newUids: true },
  { name: 'dose-rle', source: 'rtdose_rle.dcm', newUids: true },
  { name: 'deflated', source: 'image_dfl.dcm', values: true },
  { name: 'rgb-be', source: 'ExplVR_BigEnd.dcm', values: true },
  { name: 'rgb-odd', source: 'SC_rgb_small_odd.dcm', values: true },
  { name: 'rgb-rle-2', source: 'SC_rgb_rle_2frame.dcm' },
  { name: 'ybr-422', source: 'SC_ybr_full_422_uncompressed.dcm', values: true },
  { name: 'jpeg-rgb', source: 'SC_rgb_dcmtk_+eb+cr.dcm', values: true },
  { name: 'jpeg-ybr', source: 'SC_rgb_jpeg_dcmtk.dcm', values: true },
  { name: 'jpeg-422', source: 'SC_rgb_dcmtk_+eb+cy+np.dcm' },
  { name: 'j2k', source: 'JPEG2000.dcm' },
  { name: 'j2k-only', source: 'MR_small_jp2klossless.dcm', newUids: true },
  { name: 'large', source: 'large' },
];

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

/** A PNG decoded by the book (ISO/IEC 15948): chunk CRCs, zlib, the five scanline filters. */
function decodePng(png: Buffer): { width: number; height: number; channels: number; data: Buffer } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    expect(png.readUInt32BE(at + 8 + length)).toBe(crc32(png.subarray(at + 4, at + 8 + length)));
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect(data[8]).toBe(8);
      channels = ({ 0: 1, 2: 3 } as Record<number, number>)[data[9]!]!;
      expect(data[12]).toBe(0);
    }
    if (type === 'IDAT') {
      idat.push(data);
    }
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x]!;
      const left = x >= channels ? out[y * stride + x - channels]! : 0;
      const up = y > 0 ? out[(y - 1) * stride + x]! : 0;
      const upLeft = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels]! : 0;
      const paeth = (): number => {
        const p = left + up - upLeft;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
        return pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      };
      const predictor = [0, left, up, (left + up) >> 1, paeth()][filter]!;
      out[y * stride + x] = (value + predictor) & 0xff;
    }
  }
  return { width, height, channels, data: out };
}

/** PS3.3 §C.11.2.1.2.1, written out here independently of the hub's code. */
function linearWindow(value: number, center: number, width: number): number {
  if (value <= center - 0.5 - (width - 1) / 2) {
    return 0;
  }
  if (value > center - 0.5 + (width - 1) / 2) {
    return 255;
  }
  return Math.round(((value - (center - 0.5)) / (width - 1) + 0.5) * 255);
}

function maxDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let max = 0;
  for (let i = 0; i < actual.length; i++) {
    max = Math.max(max, Math.abs(actual[i]! - expected[i]!));
  }
  return max;
}

function meanDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let sum = 0;
  for (let i = 0; i < actual.length; i++) {
    sum += Math.abs(actual[i]! - expected[i]!);
  }
  return sum / actual.length;
}

describe('WADO-RS frames, rendered and thumbnail', () => {
  let th: TestHub;
  let workDir: string;
  let fixtures: Record<string, OracleFixture>;

  const url = (name: string, suffix = ''): string => {
    const f = fixtures[name]!;
    return `${th.baseUrl}/dicomweb/studies/${f.study}/series/${f.series}/instances/${f.sop}${suffix}`;
  };
  const get = async (target: string, accept?: string): Promise<{ status: number; type: string; body: Buffer }> => {
    const response = await fetch(target, { headers: accept === undefined ? {} : { accept } });
    return {
      status: response.status,
      type: response.headers.get('content-type') ?? '',
      body: Buffer.from(await response.arrayBuffer()),
    };
  };
  const frames = async (name: string, list: string, accept?: string): Promise<{ type: string; parts: Part[] }> => {
    const response = await get(url(name, `/frames/${list}`), accept);
    expect({ status: response.status, body: response.status === 200 ? '' : response.body.toString() }).toEqual({
      status: 200,
      body: '',
    });
    expect(response.type).toMatch(/^multipart\/related/);
    return { type: response.type, parts: splitMultipart(response.body, response.type) };
  };
  const refusal = async (target: string, accept?: string): Promise<{ status: number; error: string }> => {
    const response = await get(target, accept);
    expect(response.type).toMatch(/^application\/json/);
    return { status: response.status, error: (JSON.parse(response.body.toString()) as { error: string }).error };
  };
  const png = async (target: string): Promise<ReturnType<typeof decodePng>> => {
    const response = await get(target, 'image/png');
    expect({ status: response.status, body: response.status === 200 ? '' : response.body.toString() }).toEqual({
      status: 200,
      body: '',
    });
    expect(response.type).toBe('image/png');
    return decodePng(response.body);
  };
  const b64 = (text: string): Buffer => Buffer.from(text, 'base64');

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dicomweb-frames-'));
    th = await startTestHub();
    const oracle = await promisify(execFile)(
      '/usr/bin/python3',
      [join(import.meta.dirname, 'dicomweb-frames-rendered.oracle.py'), JSON.stringify(PLAN), TEST_FILES, workDir],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    fixtures = JSON.parse(oracle.stdout) as Record<string, OracleFixture>;
    const files = await Promise.all(PLAN.map((entry) => readFile(fixtures[entry.name]!.path)));
    const response = await stowFiles(th.baseUrl, files);
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

  describe('frames', () => {
    test('native frames come back as little-endian octets equal to pydicom pixel_array, whatever the stored byte order', async () => {
      for (const name of ['ct', 'mr-be', 'mr-mono1', 'deflated', 'rgb-be', 'rgb-odd']) {
        const { type, parts } = await frames(name, '1');
        expect(type).toMatch(/type="?application\/octet-stream"?/);
        expect(parts).toHaveLength(1);
        expect(parts[0]!.headers.get('content-type')).toBe(`application/octet-stream; transfer-syntax=${EXPLICIT_LE}`);
        expect(parts[0]!.headers.get('content-location')).toBe(url(name, '/frames/1'));
        expect({ name, equal: parts[0]!.body.equals(b64(fixtures[name]!.native![0]!)) }).toEqual({ name, equal: true });
      }
    });

    test('multi-frame native frames (implicit and big endian) in the order asked, comma or %2C', async () => {
      for (const [name, list] of [
        ['dose', '3,1,15'],
        ['dose-be', '15%2C2'],
      ] as const) {
        const numbers = decodeURIComponent(list).split(',').map(Number);
        const { parts } = await frames(
          name,
          list,
          'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
        );
        expect(parts.map((part) => part.headers.get('content-location'))).toEqual(
          numbers.map((n) => url(name, `/frames/${n}`)),
        );
        numbers.forEach((n, index) =>
          expect(parts[index]!.body.equals(b64(fixtures[name]!.native![n - 1]!))).toBe(true),
        );
      }
    });

    test('compressed frames in their stored encoding, byte for byte as pydicom splits the fragments', async () => {
      const cases: [string, string, string][] = [
        ['dose-rle', '1,7,15', 'image/dicom-rle'],
        ['rgb-rle-2', '2,1', 'image/dicom-rle'],
        ['mr-jls', '1', 'image/jls'],
        ['j2k', '1', 'image/jp2'],
        ['jpeg-rgb', '1', 'image/jpeg'],
      ];
      for (const [name, list, mediaType] of cases) {
        const fixture = fixtures[name]!;
        for (const accept of [
          undefined,
          '*/*',
          `multipart/related; type="${mediaType}"`,
          `multipart/related; type="${mediaType}"; transfer-syntax=*`,
          `multipart/related; type="${mediaType}"; transfer-syntax=${fixture.transferSyntax}`,
        ]) {
          const { type, parts } = await frames(name, list, accept);
          expect(type).toContain(mediaType);
          const numbers = list.split(',').map(Number);
          expect(parts).toHaveLength(numbers.length);
          numbers.forEach((n, index) => {
            expect(parts[index]!.headers.get('content-type')).toBe(
              `${mediaType}; transfer-syntax=${fixture.transferSyntax}`,
            );
            expect({ name, n, equal: parts[index]!.body.equals(b64(fixture.stored![n - 1]!)) }).toEqual({
              name,
              n,
              equal: true,
            });
          });
        }
      }
    });

    test('application/octet-stream with transfer-syntax=* (as OHIF asks) gives the stored bytes labelled with their syntax', async () => {
      const { type, parts } = await frames(
        'jpeg-rgb',
        '1',
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
      );
      expect(type).toMatch(/type="?application\/octet-stream"?/);
      expect(parts[0]!.headers.get('content-type')).toBe(
        'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50',
      );
      expect(parts[0]!.body.equals(b64(fixtures['jpeg-rgb']!.stored![0]!))).toBe(true);
    });

    test('RLE frames asked uncompressed are decoded exactly (pydicom pixel_array)', async () => {
      for (const [name, list] of [
        ['dose-rle', '2,15'],
        ['rgb-rle-2', '1,2'],
        ['mr-rle', '1'],
      ] as const) {
        const { parts } = await frames(name, list, 'multipart/related; type="application/octet-stream"');
        list
          .split(',')
          .map(Number)
          .forEach((n, index) => {
            expect(parts[index]!.headers.get('content-type')).toBe(
              `application/octet-stream; transfer-syntax=${EXPLICIT_LE}`,
            );
            expect({ name, n, equal: parts[index]!.body.equals(b64(fixtures[name]!.native![n - 1]!)) }).toEqual({
              name,
              n,
              equal: true,
            });
          });
      }
    });

    test('JPEG Baseline frames asked uncompressed are decoded (jpeg-js), close to pydicom/Pillow', async () => {
      for (const name of ['jpeg-rgb', 'jpeg-ybr']) {
        const { parts } = await frames(
          name,
          '1',
          'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
        );
        const expected = b64(fixtures[name]!.native![0]!);
        expect(parts[0]!.body.length).toBe(expected.length);
        // Two IDCT implementations: equal to within rounding.
        expect(meanDifference(parts[0]!.body, expected)).toBeLessThan(1.5);
      }
    });

    test('uncompressed asked of frames the hub cannot decode is a 406 that says so', async () => {
      for (const name of ['mr-j2k', 'mr-jls', 'jpeg-422']) {
        const answer = await refusal(
          url(name, '/frames/1'),
          'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
        );
        expect(answer.status).toBe(406);
        expect(answer.error).toMatch(/stored compressed .* cannot be returned uncompressed/);
      }
    });

    test('Accept ranges that match nothing are a 406 naming what is available', async () => {
      const cases: [string, string][] = [
        ['ct', 'multipart/related; type="image/jpeg"'],
        ['ct', 'application/json'],
        ['ct', 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50'],
        ['j2k', 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90'],
        ['j2k', 'multipart/related; type="image/jpeg"'],
      ];
      for (const [name, accept] of cases) {
        const answer = await refusal(url(name, '/frames/1'), accept);
        expect({ accept, status: answer.status }).toEqual({ accept, status: 406 });
        expect(answer.error).toMatch(/available as multipart\/related/);
      }
      // Ranges are tried in order; q=0 rules one out.
      const { parts } = await frames(
        'j2k',
        '1',
        'multipart/related; type="image/jp2"; q=0, multipart/related; type="image/jpeg", */*',
      );
      expect(parts[0]!.headers.get('content-type')).toContain('image/jp2');
    });

    test('bad frame lists are 400, frames past the end 404, unknown instances 404', async () => {
      for (const list of ['0', 'a', '1,,2', '1,1', '-1', '1.5', '%20']) {
        const answer = await refusal(url('dose', `/frames/${list}`));
        expect({ list, status: answer.status }).toEqual({ list, status: 400 });
      }
      const past = await refusal(url('dose', '/frames/1,16'));
      expect(past).toEqual({ status: 404, error: 'frame 16 does not exist: the instance has 15 frames' });
      expect((await refusal(url('ct', '/frames/2'))).status).toBe(404);
      const unknown = await refusal(`${th.baseUrl}/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/frames/1`);
      expect(unknown).toEqual({ status: 404, error: 'no such instance' });
    });
  });

  describe('rendered', () => {
    test('MONOCHROME2 16-bit signed with its stored window (MR) renders to the VOI LUT of PS3.3 C.11.2.1.2', async () => {
      const image = await png(url('mr', '/rendered'));
      expect([image.width, image.height, image.channels]).toEqual([64, 64, 1]);
      const expected = fixtures.mr!.values!.map((value) => linearWindow(value, 600, 1600));
      expect(maxDifference(image.data, expected)).toBeLessThanOrEqual(1);
    });

    test('the window query parameter overrides the stored one; MONOCHROME1 is inverted', async () => {
      const windowed = await png(url('mr', '/rendered?window=300,400,linear'));
      expect(
        maxDifference(
          windowed.data,
          fixtures.mr!.values!.map((value) => linearWindow(value, 300, 400)),
        ),
      ).toBeLessThanOrEqual(1);
      const inverted = await png(url('mr-mono1', '/rendered'));
      expect(
        maxDifference(
          inverted.data,
          fixtures['mr-mono1']!.values!.map((value) => 255 - linearWindow(value, 600, 1600)),
        ),
      ).toBeLessThanOrEqual(1);
    });

    test('without a window, the modality values (Rescale Slope/Intercept) are stretched from min to max', async () => {
      const image = await png(url('ct', '/frames/1/rendered'));
      // pixel_array holds stored values; the slope is 1, so min/max stretching is independent of the intercept.
      const values = fixtures.ct!.values!;
      const [min, max] = [Math.min(...values), Math.max(...values)];
      expect(
        maxDifference(
          image.data,
          values.map((value) => Math.round(((value - min) / (max - min)) * 255)),
        ),
      ).toBeLessThanOrEqual(1);
      // The deflated 8-bit image renders too.
      const deflated = await png(url('deflated', '/rendered'));
      expect([deflated.width, deflated.height]).toEqual([512, 512]);
    });

    test('RLE-compressed grayscale renders like its uncompressed original', async () => {
      const rle = await png(url('mr-rle', '/rendered'));
      const native = await png(url('mr', '/rendered'));
      expect(rle.data.equals(native.data)).toBe(true);
    });

    test('RGB (planar configuration 0 and 1, big endian) renders exactly; YBR_FULL_422 and JPEG Baseline closely', async () => {
      for (const name of ['rgb-odd', 'rgb-be']) {
        const image = await png(url(name, '/rendered'));
        expect([image.width, image.height, image.channels]).toEqual([fixtures[name]!.columns, fixtures[name]!.rows, 3]);
        expect(maxDifference(image.data, fixtures[name]!.values!)).toBe(0);
      }
      const toRgb = (ybr: number[]): number[] => {
        const rgb: number[] = [];
        for (let i = 0; i < ybr.length; i += 3) {
          const [y, cb, cr] = [ybr[i]!, ybr[i + 1]! - 128, ybr[i + 2]! - 128];
          rgb.push(y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb);
        }
        return rgb.map((value) => Math.max(0, Math.min(255, Math.round(value))));
      };
      const ybr = await png(url('ybr-422', '/rendered'));
      expect(maxDifference(ybr.data, toRgb(fixtures['ybr-422']!.values!))).toBeLessThanOrEqual(1);
      const jpegYbr = await png(url('jpeg-ybr', '/rendered'));
      expect(meanDifference(jpegYbr.data, toRgb(fixtures['jpeg-ybr']!.values!))).toBeLessThan(2);
      const jpegRgb = await png(url('jpeg-rgb', '/rendered'));
      expect(meanDifference(jpegRgb.data, fixtures['jpeg-rgb']!.values!)).toBeLessThan(2);
      const subsampled = await png(url('jpeg-422', '/rendered'));
      expect(meanDifference(subsampled.data, jpegRgb.data)).toBeLessThan(8);
    });

    test('JPEG is the default; quality changes the encoding; viewport scales keeping the aspect ratio', async () => {
      for (const accept of [undefined, '*/*', 'image/*', 'image/jpeg']) {
        const response = await get(url('mr', '/rendered'), accept);
        expect({ accept, status: response.status, type: response.type }).toEqual({
          accept,
          status: 200,
          type: 'image/jpeg',
        });
        const decoded = jpeg.decode(response.body, { useTArray: true });
        expect([decoded.width, decoded.height]).toEqual([64, 64]);
      }
      const low = await get(url('ct', '/rendered?quality=5'));
      const high = await get(url('ct', '/rendered?quality=100'));
      expect(low.body.length).toBeLessThan(high.body.length);
      const scaled = await png(url('rgb-be', '/rendered?viewport=40,40'));
      expect([scaled.width, scaled.height]).toEqual([40, 30]);
      const decoded = jpeg.decode((await get(url('rgb-be', '/rendered?viewport=160,120'))).body, { useTArray: true });
      expect([decoded.width, decoded.height]).toEqual([160, 120]);
    });

    test('the accept query parameter takes priority over the Accept header (PS3.18)', async () => {
      for (const [target, header, type] of [
        [url('mr', '/rendered?accept=image/png'), 'image/jpeg', 'image/png'],
        [url('mr', '/thumbnail?accept=image%2Fpng&viewport=32,32'), '*/*', 'image/png'],
        [url('mr', '/frames/1/rendered?accept=image/jpeg'), 'image/png', 'image/jpeg'],
        [url('mr', '/rendered?accept=image/png&accept=image/jpeg'), undefined, 'image/png'],
        [url('mr', '/metadata?accept=application/dicom%2Bjson'), 'text/html', 'application/dicom+json; charset=utf-8'],
      ] as const) {
        const response = await get(target, header);
        expect({ target, status: response.status, type: response.type }).toEqual({ target, status: 200, type });
      }
      const frame = await get(
        url('ct', `/frames/1?accept=${encodeURIComponent('multipart/related; type="application/octet-stream"')}`),
        'image/jpeg',
      );
      expect([frame.status, frame.type]).toEqual([200, expect.stringMatching(/^multipart\/related/)]);
      // A parameter that names nothing on offer is a 406, whatever the header would have allowed.
      expect((await get(url('mr', '/rendered?accept=image/gif'), 'image/jpeg')).status).toBe(406);
    });

    test('encodings and images the hub cannot render are a 406, not a 500', async () => {
      for (const name of ['mr-j2k', 'mr-jls', 'j2k']) {
        const answer = await refusal(url(name, '/rendered'));
        expect({ name, status: answer.status }).toEqual({ name, status: 406 });
        expect(answer.error).toMatch(
          /cannot be rendered: the server has no decoder for transfer syntax 1\.2\.840\.10008\.1\.2\.4\.\d+/,
        );
      }
      expect((await refusal(url('dose', '/rendered'), 'application/dicom')).status).toBe(406);
    });

    test('bad query parameters and frame numbers are 400, missing frames 404, huge frames 413', async () => {
      for (const query of [
        'window=abc',
        'window=40',
        'window=40,0',
        'window=40,400,cubic',
        'viewport=0,10',
        'viewport=10',
        'viewport=1,2,3,4,5,6',
        'quality=0',
        'quality=101',
        'quality=high',
        'window=1,2&window=3,4',
      ]) {
        const answer = await refusal(url('mr', `/rendered?${query}`));
        expect({ query, status: answer.status }).toEqual({ query, status: 400 });
      }
      expect((await refusal(url('dose', '/frames/1,2/rendered'))).status).toBe(400);
      expect((await refusal(url('dose', '/frames/16/rendered'))).status).toBe(404);
      const dose = await png(url('dose', '/frames/15/rendered'));
      expect([dose.width, dose.height]).toEqual([10, 10]);
      const huge = await refusal(url('large', '/rendered'));
      expect(huge.status).toBe(413);
      expect(huge.error).toMatch(/25010001 pixels, over this server's limit/);
      // Its stored frame is streamed from the file, not rendered, so it has no such limit.
      const { parts } = await frames('large', '1');
      expect(parts[0]!.body.length).toBe(5001 * 5001);
    });
  });

  describe('thumbnail', () => {
    test('instance and frame thumbnails fit 128 px by default, or the viewport', async () => {
      const instance = await png(url('rgb-be', '/thumbnail'));
      expect([instance.width, instance.height]).toEqual([128, 96]);
      const frame = await png(url('dose', '/frames/3/thumbnail?viewport=64,32'));
      expect([frame.width, frame.height]).toEqual([32, 32]);
      const large = await get(url('deflated', '/thumbnail'));
      expect(large.status).toBe(200);
      expect(large.type).toBe('image/jpeg');
      const decoded = jpeg.decode(large.body, { useTArray: true });
      expect([decoded.width, decoded.height]).toEqual([128, 128]);
    });

    test('a downscaled thumbnail averages the source pixels (box filter)', async () => {
      const full = await png(url('deflated', '/rendered'));
      const thumb = await png(url('deflated', '/thumbnail?viewport=128,128'));
      // Each thumbnail pixel is the mean of a 4x4 block of the full rendering.
      const expected: number[] = [];
      for (let y = 0; y < 128; y++) {
        for (let x = 0; x < 128; x++) {
          let sum = 0;
          for (let dy = 0; dy < 4; dy++) {
            for (let dx = 0; dx < 4; dx++) {
              sum += full.data[(y * 4 + dy) * 512 + x * 4 + dx]!;
            }
          }
          expected.push(Math.round(sum / 16));
        }
      }
      expect(maxDifference(thumb.data, expected)).toBeLessThanOrEqual(1);
    });

    test('study and series thumbnails use a renderable instance; a series of nothing renderable is a 406', async () => {
      const mr = fixtures.mr!;
      const study = await png(`${th.baseUrl}/dicomweb/studies/${mr.study}/thumbnail?viewport=64,64`);
      expect([study.width, study.height]).toEqual([64, 64]);
      const series = await png(
        `${th.baseUrl}/dicomweb/studies/${mr.study}/series/${mr.series}/thumbnail?viewport=64,64`,
      );
      expect(series.data.equals((await png(url('mr', '/thumbnail?viewport=64,64'))).data)).toBe(true);
      const j2k = fixtures['j2k-only']!;
      const refused = await refusal(`${th.baseUrl}/dicomweb/studies/${j2k.study}/series/${j2k.series}/thumbnail`);
      expect(refused.status).toBe(406);
      expect((await refusal(`${th.baseUrl}/dicomweb/studies/1.2.3/thumbnail`)).status).toBe(404);
    });
  });
});
