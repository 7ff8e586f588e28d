/**
 * Whole-file reads (issue 11, item 4): a 500 MB Binary read four times at once, twice raw and twice
 * as FHIR JSON (its base64 in `data`), by a hub process whose peak resident memory (VmHWM) stays
 * under 400 MB, and every read gives back the same bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { createTestDatabase } from './support/test-hub.ts';

const SIZE = 500 * 1000 * 1000;
const BLOCK = randomBytes(1024 * 1024);

/** SIZE bytes, made of BLOCK with each block's number in its first bytes, streamed. */
function content(): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= SIZE) {
        controller.close();
        return;
      }
      const chunk = Buffer.from(BLOCK.subarray(0, Math.min(BLOCK.length, SIZE - sent)));
      chunk.writeUInt32BE(sent / BLOCK.length, 0);
      sent += chunk.length;
      controller.enqueue(new Uint8Array(chunk));
    },
  });
}

async function expectedHash(): Promise<string> {
  const hash = createHash('sha256');
  const reader = content().getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    hash.update(next.value);
  }
  return hash.digest('hex');
}

function peakRssBytes(pid: number): Promise<number> {
  return fs.readFile(`/proc/${pid}/status`, 'utf8').then((status) => {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return Number(kb) * 1024;
  });
}

/** How many bytes a body holds, read to its end. */
async function bodyLength(response: Response): Promise<number> {
  let length = 0;
  for await (const chunk of response.body as ReadableStream<Uint8Array>) {
    length += chunk.byteLength;
  }
  return length;
}

/** The SHA-256 of a raw read's body, read as it arrives. */
async function rawHash(response: Response): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of response.body as ReadableStream<Uint8Array>) {
    hash.update(chunk);
  }
  return hash.digest('hex');
}

/** The SHA-256 of the bytes a FHIR JSON read's `data` holds, decoded as the text arrives. */
async function jsonDataHash(response: Response): Promise<{ hash: string; resource: Record<string, unknown> }> {
  const hash = createHash('sha256');
  const decoder = new TextDecoder();
  let text = '';
  let head: string | undefined;
  for await (const chunk of response.body as ReadableStream<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    if (head === undefined) {
      const start = text.indexOf('"data":"');
      if (start < 0) {
        continue;
      }
      head = text.slice(0, start);
      text = text.slice(start + '"data":"'.length);
    }
    const whole = text.length - (text.length % 4);
    // The closing `"}` never falls in a whole group of four: base64 has no quote.
    const usable = text.slice(0, whole).includes('"') ? text.indexOf('"') - (text.indexOf('"') % 4) : whole;
    hash.update(Buffer.from(text.slice(0, usable), 'base64'));
    text = text.slice(usable);
  }
  const end = text.indexOf('"');
  hash.update(Buffer.from(text.slice(0, end), 'base64'));
  expect(text.slice(end)).toBe('"}');
  return { hash: hash.digest('hex'), resource: JSON.parse(`${head ?? ''}"data":""}`) as Record<string, unknown> };
}

describe('a 500 MB Binary read four times at once', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let hub: HubProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-large-reads-'));
    hub = await startHubProcess({ DATABASE_URL: database.url, DATA_DIR: dataDir, HUB_ROLES: 'api' }, 60_000);
  }, 90_000);
  afterAll(async () => {
    await hub?.stop();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('raw and FHIR JSON reads stream: the same bytes, and the hub stays under 400 MB', async () => {
    const stored = await fetch(`${hub.url}/fhir/Binary`, {
      method: 'POST',
      headers: { 'content-type': 'application/pdf' },
      body: content(),
      duplex: 'half',
    });
    expect(stored.status).toBe(201);
    const id = ((await stored.json()) as { id: string }).id;
    const expected = await expectedHash();

    const read = (accept: string) => fetch(`${hub.url}/fhir/Binary/${id}`, { headers: { accept } });
    const [raw1, raw2, json1, json2] = await Promise.all([
      read('application/pdf'),
      read('*/*'),
      read('application/fhir+json'),
      read('application/json'),
    ]);
    for (const response of [raw1, raw2, json1, json2]) {
      expect(response.status).toBe(200);
    }
    expect(json1.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(Number(json1.headers.get('content-length'))).toBeGreaterThan((SIZE * 4) / 3);
    // One raw and one JSON read are checked byte for byte; the other two are read to their end and
    // counted (hashing all four in the test's process would cost more than the reads).
    const [hash1, length2, decoded1, length4] = await Promise.all([
      rawHash(raw1),
      bodyLength(raw2),
      jsonDataHash(json1),
      bodyLength(json2),
    ]);
    expect([hash1, decoded1.hash]).toEqual([expected, expected]);
    expect(length2).toBe(SIZE);
    expect(length4).toBe(Number(json2.headers.get('content-length')));
    expect(decoded1.resource).toMatchObject({ resourceType: 'Binary', id, contentType: 'application/pdf' });

    const peak = await peakRssBytes(hub.child.pid as number);
    expect(peak).toBeLessThan(400 * 1024 * 1024);
  }, 240_000);

  test('a read that would put the content inline some other way is refused with 413, not held in memory', async () => {
    const ids = await fetch(`${hub.url}/fhir/Binary?_count=1`, { headers: { accept: 'application/fhir+json' } });
    const id = ((await ids.json()) as { entry: { resource: { id: string } }[] }).entry[0]?.resource.id;
    const response = await fetch(`${hub.url}/fhir/Binary/${id}?_elements=contentType`, {
      headers: { accept: 'application/fhir+json' },
    });
    expect(response.status).toBe(413);
    expect(JSON.stringify(await response.json())).toMatch(/read it raw/);
  });
});
