import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  MultipartError,
  formatMultipartRelatedContentType,
  parseMediaType,
  parseMultipartRelatedContentType,
  readMultipart,
  writeMultipartRelated,
  type MultipartLimits,
  type MultipartReadResult,
  type OutgoingPart,
  type ReceivedPart,
} from './multipart.ts';

const BOUNDARY = 'BOUNDARY';

/** mulberry32: a small seeded generator so failures can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seeded bytes: SHA-256 in counter mode, keyed from the generator (fast for megabytes). */
function randomBuffer(random: () => number, length: number): Buffer {
  const key = String(random());
  const blocks: Buffer[] = [];
  for (let counter = 0; counter * 32 < length; counter++) {
    blocks.push(createHash('sha256').update(`${key}:${counter}`).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

async function* chunks(body: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < body.length;) {
    const size = Math.max(1, sizes());
    yield body.subarray(pos, pos + size);
    pos += size;
  }
}

async function* splitAt(body: Buffer, points: number[]): AsyncGenerator<Buffer> {
  let start = 0;
  for (const point of [...points, body.length]) {
    yield body.subarray(start, point);
    start = point;
  }
}

async function bufferOf(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) {
    parts.push(Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

interface Collected {
  parts: { headers: ReadonlyMap<string, string>; part: Omit<ReceivedPart, 'body'>; body: Buffer }[];
  result: MultipartReadResult;
}

async function collect(
  source: AsyncIterable<Buffer> | Readable,
  limits: Partial<MultipartLimits> = {},
  boundary = BOUNDARY,
): Promise<Collected> {
  const parts: Collected['parts'] = [];
  const result = await readMultipart(source, { boundary, limits }, async (part) => {
    const { body, ...rest } = part;
    parts.push({ headers: part.headers, part: rest, body: await bufferOf(body) });
  });
  return { parts, result };
}

function wire(lines: string): Buffer {
  return Buffer.from(lines, 'latin1');
}

async function rejection(promise: Promise<unknown>): Promise<MultipartError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(MultipartError);
    return error as MultipartError;
  }
  throw new Error('expected a rejection');
}

describe('parseMultipartRelatedContentType', () => {
  test('reads the DICOMweb form with quoted and unquoted values', () => {
    expect(
      parseMultipartRelatedContentType('multipart/related; type="application/dicom"; boundary=MESSAGEBOUNDARY'),
    ).toMatchObject({
      boundary: 'MESSAGEBOUNDARY',
      type: 'application/dicom',
    });
    const parsed = parseMultipartRelatedContentType(
      'Multipart/Related ;TYPE=Application/DICOM;  Boundary="a b:c=d?"; start="<root@x>"; start-info="x"; transfer-syntax=1.2.840.10008.1.2.1;',
    );
    expect(parsed).toMatchObject({
      boundary: 'a b:c=d?',
      type: 'application/dicom',
      start: '<root@x>',
      startInfo: 'x',
      transferSyntax: '1.2.840.10008.1.2.1',
    });
    expect(parseMultipartRelatedContentType('multipart/related; boundary=b; start="<q\\"uo\\\\te>"').start).toBe(
      '<q"uo\\te>',
    );
    expect(parseMultipartRelatedContentType(`multipart/related; boundary=${'b'.repeat(70)}`).boundary).toHaveLength(70);
  });

  test.each([
    [undefined, 415, 'unsupported-media-type'],
    ['', 415, 'unsupported-media-type'],
    ['application/dicom', 415, 'unsupported-media-type'],
    ['multipart/mixed; boundary=abc', 415, 'unsupported-media-type'],
    ['not a media type', 415, 'unsupported-media-type'],
    ['multipart/related; type="application/dicom"', 400, 'invalid-boundary'],
    [`multipart/related; boundary=${'b'.repeat(71)}`, 400, 'invalid-boundary'],
    ['multipart/related; boundary="a@b"', 400, 'invalid-boundary'],
    ['multipart/related; boundary="ends with space "', 400, 'invalid-boundary'],
    ['multipart/related; boundary=""', 400, 'invalid-boundary'],
    ['multipart/related; boundary="unterminated', 400, 'invalid-content-type'],
    ['multipart/related; boundary=a; boundary=b', 400, 'invalid-content-type'],
    ['multipart/related; boundary', 400, 'invalid-content-type'],
  ])('refuses %p with %p', (header, status, code) => {
    let error: unknown;
    try {
      parseMultipartRelatedContentType(header);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(MultipartError);
    expect(error).toMatchObject({ status, code });
  });

  test('parseMediaType reads a part type with parameters', () => {
    const media = parseMediaType('Application/DICOM; transfer-syntax=1.2.840.10008.1.2.4.50');
    expect(media.essence).toBe('application/dicom');
    expect(media.parameters.get('transfer-syntax')).toBe('1.2.840.10008.1.2.4.50');
  });
});

describe('writeMultipartRelated', () => {
  test('writes the PS3.18 form and a Content-Type for the response', async () => {
    const written = writeMultipartRelated(
      [{ body: Buffer.from('abc'), contentType: 'application/dicom', contentLocation: '/x' }],
      {
        type: 'application/dicom',
        boundary: 'B',
      },
    );
    expect(written.contentType).toBe('multipart/related; type="application/dicom"; boundary=B');
    expect((await bufferOf(written.body)).toString('latin1')).toBe(
      '--B\r\nContent-Type: application/dicom\r\nContent-Length: 3\r\nContent-Location: /x\r\n\r\nabc\r\n--B--\r\n',
    );
    expect(
      parseMultipartRelatedContentType(writeMultipartRelated([], { type: 'application/dicom' }).contentType).boundary,
    ).toMatch(/^dicomweb-[0-9a-f]{48}$/);
    expect(formatMultipartRelatedContentType('a b', 'application/dicom+json')).toBe(
      'multipart/related; type="application/dicom+json"; boundary="a b"',
    );
  });

  test('draws another boundary when a buffered part contains it', () => {
    const draws = [Buffer.alloc(24, 1), Buffer.alloc(24, 2)];
    const first = `dicomweb-${draws[0]!.toString('hex')}`;
    const written = writeMultipartRelated([{ body: Buffer.from(`x\r\n--${first}\r\n`) }], {
      type: 'application/dicom',
      randomBytes: () => draws.shift()!,
    });
    expect(written.boundary).toBe(`dicomweb-${Buffer.alloc(24, 2).toString('hex')}`);
  });

  test('fails the stream when a part contains a given boundary, and refuses header injection', async () => {
    const parts = (async function* (): AsyncGenerator<OutgoingPart> {
      yield { body: Buffer.from('x--B') };
    })();
    await expect(
      bufferOf(writeMultipartRelated(parts, { type: 'application/dicom', boundary: 'B' }).body),
    ).rejects.toMatchObject({ code: 'boundary-in-part' });
    const injected = writeMultipartRelated([{ body: Buffer.from(''), contentLocation: '/x\r\nX-Evil: 1' }], {
      type: 'a/b',
      boundary: 'B',
    });
    await expect(bufferOf(injected.body)).rejects.toThrow(TypeError);
    expect(() => writeMultipartRelated([], { type: 'a/b', boundary: 'bad@' })).toThrow(MultipartError);
  });

  test('a response destroyed midway closes the streams of the parts not yet sent', async () => {
    const sent = Readable.from([Buffer.alloc(100_000)]);
    const unsent = Readable.from([Buffer.alloc(10)]);
    const written = writeMultipartRelated([{ body: sent }, { body: unsent }], { type: 'application/dicom' });
    for await (const chunk of written.body) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(unsent.destroyed).toBe(true);
  });

  test('an empty list of parts reads back as no parts', async () => {
    const written = writeMultipartRelated([], { type: 'application/dicom' });
    const { parts, result } = await collect(written.body, {}, written.boundary);
    expect(parts).toEqual([]);
    expect(result).toEqual({ partCount: 0, failures: [] });
  });
});

describe('readMultipart round trips', () => {
  test('random parts, random chunk sizes, Buffer and streamed parts', async () => {
    const random = seeded(4);
    for (let round = 0; round < 40; round++) {
      const count = 1 + Math.floor(random() * 6);
      const bodies = Array.from({ length: count }, () =>
        randomBuffer(random, Math.floor(random() * (round < 30 ? 3000 : 200_000))),
      );
      const parts: OutgoingPart[] = bodies.map((body, index) => ({
        body: index % 2 === 0 ? body : Readable.from(chunks(body, () => 1 + Math.floor(random() * 9000))),
        contentType: 'application/dicom',
        contentLocation: `/studies/1/instances/${index}`,
        contentId: `<part${index}@hub>`,
      }));
      const written = writeMultipartRelated(parts, { type: 'application/dicom' });
      const wireBody = await bufferOf(written.body);
      // Byte-by-byte chunks only on the small rounds: a million one-byte reads prove nothing more.
      const maxChunk = round < 30 ? [1, 7, 100, 4096, 70_000][round % 5]! : [100, 4096, 70_000][round % 3]!;
      const { parts: read, result } = await collect(
        chunks(wireBody, () => 1 + Math.floor(random() * maxChunk)),
        {},
        written.boundary,
      );
      expect(result).toEqual({ partCount: count, failures: [] });
      expect(read.map((part) => part.body.equals(bodies[part.part.index]!))).toEqual(bodies.map(() => true));
      for (const [index, part] of read.entries()) {
        expect(part.part).toMatchObject({
          contentType: 'application/dicom',
          contentLocation: `/studies/1/instances/${index}`,
          contentId: `<part${index}@hub>`,
        });
        expect(part.part.contentLength).toBe(index % 2 === 0 ? bodies[index]!.length : undefined);
      }
    }
  });

  const trickyBodies = [
    Buffer.from(`\r\n--${BOUNDARY.slice(0, -1)}`),
    Buffer.from(`abc\r\n`),
    Buffer.from(`\r`),
    Buffer.from(''),
    Buffer.from(`x--${BOUNDARY}--\r\n-\r\n--${BOUNDARY.slice(0, 4)}\n--${BOUNDARY.slice(0, 6)}`),
    Buffer.from(`\r\n\r\n--\r\n`),
  ];
  const tricky = Buffer.concat([
    wire(
      'preamble line\r\n--BOUNDARYish is not a delimiter when not at a line start? it is at one here: no\r\nmore preamble',
    ),
    ...trickyBodies.flatMap((body, index) => [
      wire(
        `\r\n--${BOUNDARY}${index === 2 ? ' \t ' : ''}\r\nContent-Type: application/octet-stream\r\nContent-ID: <${index}>\r\n\r\n`,
      ),
      body,
    ]),
    wire(`\r\n--${BOUNDARY}--  \r\nepilogue\r\n--${BOUNDARY}\r\nX: y\r\n\r\nignored\r\n--${BOUNDARY}--\r\n`),
  ]);

  test('every split point of a body with boundary-like bytes, preamble, padding and epilogue', async () => {
    // The preamble holds "\r\n--BOUNDARYish", which is a delimiter followed by other characters.
    const body = Buffer.from(tricky.toString('latin1').replace('--BOUNDARYish', '--BOUNDAR-ish'), 'latin1');
    const expectParts = (read: Collected): void => {
      expect(read.result).toEqual({ partCount: trickyBodies.length, failures: [] });
      expect(read.parts.map((part) => part.body.toString('latin1'))).toEqual(
        trickyBodies.map((part) => part.toString('latin1')),
      );
      expect(read.parts.map((part) => part.part.contentId)).toEqual(trickyBodies.map((_, index) => `<${index}>`));
    };
    for (let split = 0; split <= body.length; split++) {
      expectParts(await collect(splitAt(body, [split])));
    }
    for (let split = 0; split + 7 <= body.length; split += 3) {
      expectParts(await collect(splitAt(body, [split, split + 2, split + 7])));
    }
    expectParts(await collect(chunks(body, () => 1)));
  });

  test('a delimiter followed by other characters is malformed', async () => {
    expect(await rejection(collect(splitAt(tricky, [])))).toMatchObject({ code: 'malformed-delimiter', status: 400 });
  });

  test('tolerates bare LF line ends and a body without a preamble', async () => {
    const body = wire(
      `--${BOUNDARY}\nContent-Type: text/plain\n\nline one\nline two\n--${BOUNDARY}\n\nsecond\n--${BOUNDARY}--`,
    );
    const { parts } = await collect(chunks(body, () => 3));
    expect(parts.map((part) => [part.part.contentType, part.body.toString()])).toEqual([
      ['text/plain', 'line one\nline two'],
      [undefined, 'second'],
    ]);
  });

  test('folded and repeated part headers', async () => {
    const body = wire(
      `--${BOUNDARY}\r\nContent-Type: application/dicom;\r\n transfer-syntax=1.2.840.10008.1.2.1\r\nX-A: 1\r\nx-a: 2\r\n\r\nz\r\n--${BOUNDARY}--`,
    );
    const { parts } = await collect(splitAt(body, []));
    expect(parts[0]!.part.contentType).toBe('application/dicom; transfer-syntax=1.2.840.10008.1.2.1');
    expect(parts[0]!.headers.get('x-a')).toBe('1, 2');
  });
});

describe('readMultipart errors', () => {
  const three = (sizes: number[], options: { streamed?: boolean } = {}): Promise<Buffer> => {
    const parts: OutgoingPart[] = sizes.map((size, index) => ({
      body:
        options.streamed === true ? Readable.from([Buffer.alloc(size, index + 65)]) : Buffer.alloc(size, index + 65),
      contentType: 'application/dicom',
    }));
    return bufferOf(writeMultipartRelated(parts, { type: 'application/dicom', boundary: BOUNDARY }).body);
  };

  test('a truncated upload is refused wherever it is cut', async () => {
    const body = await three([100, 100]);
    for (const cut of [0, 5, 20, 60, 150, body.length - 5, body.length - 3]) {
      expect(await rejection(collect(splitAt(body.subarray(0, cut), [])))).toMatchObject({
        code: 'truncated',
        status: 400,
      });
    }
    expect(await rejection(collect(splitAt(wire('no delimiter at all'), []))).then((error) => error.message)).toMatch(
      /no delimiter/,
    );
  });

  test('the consumer of a truncated part sees the error', async () => {
    const body = await three([100_000]);
    let consumerError: unknown;
    await expect(
      readMultipart(splitAt(body.subarray(0, 50_000), []), { boundary: BOUNDARY }, async (part) => {
        try {
          await bufferOf(part.body);
        } catch (error) {
          consumerError = error;
          throw error;
        }
      }),
    ).rejects.toMatchObject({ code: 'truncated' });
    expect(consumerError).toMatchObject({ code: 'truncated' });
  });

  test('header block too big, too many parts', async () => {
    const big = wire(`--${BOUNDARY}\r\nX-Long: ${'v'.repeat(300)}\r\n\r\nbody\r\n--${BOUNDARY}--`);
    expect(
      await rejection(
        collect(
          chunks(big, () => 10),
          { maxHeaderBytes: 200 },
        ),
      ),
    ).toMatchObject({ code: 'header-too-large' });
    expect(
      (
        await collect(
          chunks(big, () => 10),
          { maxHeaderBytes: 400 },
        )
      ).parts,
    ).toHaveLength(1);
    const seen: number[] = [];
    await expect(
      readMultipart(
        splitAt(await three([1, 2, 3]), []),
        { boundary: BOUNDARY, limits: { maxParts: 2 } },
        async (part) => {
          seen.push((await bufferOf(part.body)).length);
        },
      ),
    ).rejects.toMatchObject({ code: 'too-many-parts', status: 413 });
    expect(seen).toEqual([1, 2]);
  });

  test('a part too large fails alone, declared or streamed', async () => {
    for (const streamed of [false, true]) {
      const handled: number[] = [];
      const { parts, result } = await collect(
        chunks(await three([500, 1500, 500], { streamed }), () => 100),
        { maxPartBytes: 1000 },
      );
      handled.push(...parts.map((part) => part.body.length));
      expect(result.partCount).toBe(3);
      expect(result.failures).toEqual([
        expect.objectContaining({ index: 1, error: expect.objectContaining({ code: 'part-too-large', status: 413 }) }),
      ]);
      // With a Content-Length the handler never sees the part; streamed, it sees the error instead of the end.
      expect(handled).toEqual([500, 500]);
    }
  });

  test('a Content-Length that disagrees or does not parse fails that part alone', async () => {
    const body = wire(
      `--${BOUNDARY}\r\nContent-Length: 5\r\n\r\nabcd\r\n--${BOUNDARY}\r\nContent-Length: x\r\n\r\nabcd\r\n--${BOUNDARY}\r\nno colon\r\n\r\nq\r\n--${BOUNDARY}\r\nContent-Length: 2\r\n\r\nok\r\n--${BOUNDARY}--`,
    );
    const { parts, result } = await collect(splitAt(body, []));
    expect(parts.map((part) => part.body.toString())).toEqual(['ok']);
    expect(result.failures.map((failure) => [failure.index, (failure.error as MultipartError).code])).toEqual([
      [0, 'part-length-mismatch'],
      [1, 'malformed-part-header'],
      [2, 'malformed-part-header'],
    ]);
  });

  test('a failing consumer does not hang the reader nor fail its neighbours', async () => {
    const body = await three([200_000, 300_000, 1000, 200_000]);
    const stored: number[] = [];
    const result = await readMultipart(
      chunks(body, () => 16_384),
      { boundary: BOUNDARY },
      async (part) => {
        if (part.index === 0) {
          throw new Error('refused before reading');
        }
        if (part.index === 1) {
          for await (const chunk of part.body) {
            if ((chunk as Buffer).length > 0) {
              throw new Error('refused after reading');
            }
          }
        }
        if (part.index === 2) {
          part.body.destroy();
          return;
        }
        stored.push((await bufferOf(part.body)).length);
      },
    );
    expect(stored).toEqual([200_000]);
    expect(result.failures.map((failure) => [failure.index, (failure.error as Error).message])).toEqual([
      [0, 'refused before reading'],
      [1, 'refused after reading'],
    ]);
    // A handler that returns without reading is done with the part: the rest is skipped, no failure.
    const skipped = await readMultipart(
      chunks(body, () => 16_384),
      { boundary: BOUNDARY },
      () => undefined,
    );
    expect(skipped).toEqual({ partCount: 4, failures: [] });
    await expect(
      readMultipart(
        chunks(body, () => 16_384),
        { boundary: BOUNDARY, onPartFailure: 'abort' },
        async (part) => {
          if (part.index === 1) {
            throw new Error('stop here');
          }
          await bufferOf(part.body);
        },
      ),
    ).rejects.toThrow('stop here');
  });
});

describe('readMultipart streaming', () => {
  test('512 MB through a hashing sink with bounded memory', async () => {
    const partSize = 64 * 1024 * 1024;
    const partCount = 8;
    const block = randomBuffer(seeded(7), 65_536);
    const sourceHashes: string[] = [];
    let produced = 0;
    function lazyPart(index: number): Readable {
      const hash = createHash('sha256');
      return Readable.from(
        (async function* () {
          for (let offset = 0; offset < partSize; offset += block.length) {
            const chunk = Buffer.from(block);
            chunk.writeUInt32BE(offset ^ index, 0);
            hash.update(chunk);
            produced += chunk.length;
            yield chunk;
          }
          sourceHashes[index] = hash.digest('hex');
        })(),
        { objectMode: false },
      );
    }
    const written = writeMultipartRelated(
      (function* () {
        for (let index = 0; index < partCount; index++) {
          yield { body: lazyPart(index), contentType: 'application/dicom' };
        }
      })(),
      { type: 'application/dicom' },
    );

    // Sampled from the sink: the pipeline runs on microtasks, so a timer would never fire during it.
    const heapBefore = process.memoryUsage().heapUsed;
    let peakHeapGrowth = 0;
    let maxInFlight = 0;
    let consumed = 0;
    const sinkHashes: string[] = [];
    const result = await readMultipart(written.body, { boundary: written.boundary }, async (part) => {
      const hash = createHash('sha256');
      let bytes = 0;
      await pipeline(
        part.body,
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            bytes += chunk.length;
            consumed += chunk.length;
            maxInFlight = Math.max(maxInFlight, produced - consumed);
            if (consumed % (4 * 1024 * 1024) < chunk.length) {
              peakHeapGrowth = Math.max(peakHeapGrowth, process.memoryUsage().heapUsed - heapBefore);
            }
            done();
          },
        }),
      );
      expect(bytes).toBe(partSize);
      sinkHashes[part.index] = hash.digest('hex');
    });
    expect(result).toEqual({ partCount, failures: [] });
    expect(sinkHashes).toEqual(sourceHashes);
    expect(sinkHashes).toHaveLength(partCount);
    expect(consumed).toBe(partSize * partCount);
    expect(peakHeapGrowth).toBeLessThan(64 * 1024 * 1024);
    // Buffers live outside the JS heap; what bounds them is how far the source runs ahead of the sink.
    expect(maxInFlight).toBeLessThan(1024 * 1024);
  });

  test('pulls from the source only as fast as a slow consumer reads', async () => {
    const total = 4 * 1024 * 1024;
    const body = await bufferOf(
      writeMultipartRelated([{ body: Buffer.alloc(total, 1) }], { type: 'application/dicom', boundary: BOUNDARY }).body,
    );
    let pulled = 0;
    let consumed = 0;
    let maxAhead = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let pos = 0; pos < body.length; pos += 16_384) {
        const chunk = body.subarray(pos, pos + 16_384);
        pulled += chunk.length;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        yield chunk;
      }
    }
    await readMultipart(source(), { boundary: BOUNDARY }, async (part) => {
      await pipeline(
        part.body,
        new Writable({
          highWaterMark: 16_384,
          write(chunk: Buffer, _encoding, done) {
            consumed += chunk.length;
            // Time, not an event: the consumer is slow on purpose, one macrotask per chunk.
            setTimeout(done, 0);
          },
        }),
      );
    });
    expect(consumed).toBe(total);
    // Body buffer (64 KiB) + sink buffer (16 KiB) + the chunk in hand + the delimiter window.
    expect(maxAhead).toBeLessThan(160 * 1024);
  });

  test('a body POSTed by fetch with a streamed request body', async () => {
    const random = seeded(11);
    const bodies = [randomBuffer(random, 3_000_000), randomBuffer(random, 10), randomBuffer(random, 700_000)];
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      void (async () => {
        try {
          const { boundary } = parseMultipartRelatedContentType(request.headers['content-type']);
          const hashes: string[] = [];
          const result = await readMultipart(request, { boundary, limits: { maxParts: 3 } }, async (part) => {
            hashes[part.index] = createHash('sha256')
              .update(await bufferOf(part.body))
              .digest('hex');
          });
          response
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ partCount: result.partCount, hashes }));
        } catch (error) {
          response.writeHead(error instanceof MultipartError ? error.status : 500).end(String(error));
        }
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicomweb/studies`;
      const written = writeMultipartRelated(
        bodies.map((body) => ({ body: Readable.from([body]), contentType: 'application/dicom' })),
        { type: 'application/dicom' },
      );
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': written.contentType },
        body: Readable.toWeb(written.body) as ReadableStream<Uint8Array>,
        duplex: 'half',
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        partCount: 3,
        hashes: bodies.map((body) => createHash('sha256').update(body).digest('hex')),
      });
      const refused = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: 'x' });
      expect(refused.status).toBe(415);
      // The reader stops mid-body; the route can still answer before the rest of the upload is read.
      const tooMany = writeMultipartRelated(
        [...bodies, ...bodies].map((body) => ({ body: Readable.from([body]) })),
        { type: 'application/dicom' },
      );
      const refusedParts = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': tooMany.contentType },
        body: Readable.toWeb(tooMany.body) as ReadableStream<Uint8Array>,
        duplex: 'half',
      });
      expect(refusedParts.status).toBe(413);
      expect(await refusedParts.text()).toMatch(/more than 3 parts/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
