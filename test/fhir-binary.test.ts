/**
 * Binary (R4 binary.html): raw content in and out with its own media type, the FHIR JSON form with
 * base64 `data`, versions, conditional reads, and the size limit (BINARY_MAX_BYTES).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

/** A small document that starts and ends like a PDF, with a fixed body. */
const PDF = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n' +
    '2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n' +
    'trailer << /Root 1 0 R >>\n%%EOF\n',
  'latin1',
);

interface RawResponse {
  status: number;
  headers: Headers;
  bytes: Buffer;
}

async function rawFetch(
  url: string,
  init: { method?: string; body?: Buffer | ReadableStream<Uint8Array>; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: init.headers,
    body: init.body,
    ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}),
  });
  return { status: response.status, headers: response.headers, bytes: Buffer.from(await response.arrayBuffer()) };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function json(response: RawResponse): any {
  return JSON.parse(response.bytes.toString('utf8'));
}

/** Streams `bytes` in 16 KB chunks, so fetch sends them chunked, without a Content-Length. */
function chunked(bytes: Buffer): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(new Uint8Array(bytes.subarray(offset, offset + 16_384)));
      offset += 16_384;
    },
  });
}

async function upload(
  fhir: string,
  bytes: Buffer,
  contentType: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const res = await rawFetch(`${fhir}/Binary`, {
    method: 'POST',
    body: bytes,
    headers: { 'content-type': contentType, ...headers },
  });
  expect(res.status).toBe(201);
  return json(res).id;
}

describe('Binary', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t?.stop();
  });

  test('POST raw bytes: 201 with Location; GET with their media type streams the same bytes back', async () => {
    const created = await rawFetch(`${t.fhir}/Binary`, {
      method: 'POST',
      body: PDF,
      headers: { 'content-type': 'application/pdf' },
    });
    expect(created.status).toBe(201);
    const binary = json(created);
    expect(binary).toMatchObject({ resourceType: 'Binary', contentType: 'application/pdf', meta: { versionId: '1' } });
    expect(created.headers.get('location')).toBe(`${t.fhir}/Binary/${binary.id}/_history/1`);
    expect(created.headers.get('etag')).toBe('W/"1"');

    const read = await rawFetch(`${t.fhir}/Binary/${binary.id}`, { headers: { accept: 'application/pdf' } });
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toBe('application/pdf');
    expect(read.headers.get('content-length')).toBe(String(PDF.length));
    expect(read.headers.get('etag')).toBe('W/"1"');
    expect(read.bytes.equals(PDF)).toBe(true);
  });

  test('a random 3 MB upload comes back byte for byte', async () => {
    const bytes = randomBytes(3 * 1024 * 1024);
    const id = await upload(t.fhir, bytes, 'application/octet-stream');
    const read = await rawFetch(`${t.fhir}/Binary/${id}`, { headers: { accept: 'application/octet-stream' } });
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toBe('application/octet-stream');
    expect(read.bytes.length).toBe(bytes.length);
    expect(sha256(read.bytes)).toBe(sha256(bytes));
  });

  test('any Accept that does not name a FHIR format gets the raw content', async () => {
    const id = await upload(t.fhir, PDF, 'application/pdf');
    const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
    for (const headers of [{ accept: '*/*' }, { accept: browser }, {} as Record<string, string>]) {
      const read = await rawFetch(`${t.fhir}/Binary/${id}`, { headers });
      expect({ accept: headers.accept, status: read.status, type: read.headers.get('content-type') }).toEqual({
        accept: headers.accept,
        status: 200,
        type: 'application/pdf',
      });
      expect(read.bytes.equals(PDF)).toBe(true);
    }
  });

  test('XML content (a CDA document) is served raw for Accept: text/xml; application/fhir+xml is 406', async () => {
    const cda = Buffer.from(
      '<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>Discharge summary</title></ClinicalDocument>',
    );
    const id = await upload(t.fhir, cda, 'text/xml');
    const read = await rawFetch(`${t.fhir}/Binary/${id}`, { headers: { accept: 'text/xml' } });
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toMatch(/^text\/xml/);
    expect(read.bytes.equals(cda)).toBe(true);
    const fhirXml = await rawFetch(`${t.fhir}/Binary/${id}`, { headers: { accept: 'application/fhir+xml' } });
    expect(fhirXml.status).toBe(406);
    expect(json(fhirXml).resourceType).toBe('OperationOutcome');
  });

  test('GET with Accept: application/fhir+json (or _format=json) returns the Binary resource with base64 data', async () => {
    const id = await upload(t.fhir, PDF, 'application/pdf');
    const read = await fhirFetch(`${t.fhir}/Binary/${id}`);
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(read.body).toMatchObject({
      resourceType: 'Binary',
      id,
      contentType: 'application/pdf',
      meta: { versionId: '1' },
    });
    expect(Buffer.from(read.body.data, 'base64').equals(PDF)).toBe(true);
    const formatted = await rawFetch(`${t.fhir}/Binary/${id}?_format=json`, { headers: { accept: '*/*' } });
    expect(formatted.headers.get('content-type')).toMatch(/json/);
    expect(Buffer.from(json(formatted).data, 'base64').equals(PDF)).toBe(true);
  });

  test('a Binary created as FHIR JSON with data can be read raw', async () => {
    const text = Buffer.from('Histology: invasive ductal carcinoma, grade 2.\n', 'utf8');
    const created = await fhirFetch(`${t.fhir}/Binary`, {
      method: 'POST',
      body: { resourceType: 'Binary', contentType: 'text/plain', data: text.toString('base64') },
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toBe(text.toString('base64'));
    const read = await rawFetch(`${t.fhir}/Binary/${created.body.id}`, { headers: { accept: 'text/plain' } });
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(read.bytes.equals(text)).toBe(true);
  });

  test('PUT raw makes version 2; /_history/1 still returns the old bytes raw', async () => {
    const id = await upload(t.fhir, PDF, 'application/pdf');
    const replacement = Buffer.from('\x89PNG\r\n\x1a\n' + 'replacement image', 'latin1');
    const updated = await rawFetch(`${t.fhir}/Binary/${id}`, {
      method: 'PUT',
      body: replacement,
      headers: { 'content-type': 'image/png' },
    });
    expect(updated.status).toBe(200);
    expect(json(updated)).toMatchObject({ id, contentType: 'image/png', meta: { versionId: '2' } });
    expect(updated.headers.get('etag')).toBe('W/"2"');

    const current = await rawFetch(`${t.fhir}/Binary/${id}`, { headers: { accept: 'image/png' } });
    expect(current.headers.get('content-type')).toBe('image/png');
    expect(current.bytes.equals(replacement)).toBe(true);
    const v1 = await rawFetch(`${t.fhir}/Binary/${id}/_history/1`, { headers: { accept: 'application/pdf' } });
    expect(v1.status).toBe(200);
    expect(v1.headers.get('content-type')).toBe('application/pdf');
    expect(v1.headers.get('etag')).toBe('W/"1"');
    expect(v1.bytes.equals(PDF)).toBe(true);
    const v1Json = await fhirFetch(`${t.fhir}/Binary/${id}/_history/1`);
    expect(Buffer.from(v1Json.body.data, 'base64').equals(PDF)).toBe(true);
    const history = await fhirFetch(`${t.fhir}/Binary/${id}/_history`);
    expect(history.body.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['2', '1']);
  });

  test('PUT raw to an id that does not exist creates it (201)', async () => {
    const res = await rawFetch(`${t.fhir}/Binary/scan-report-77`, {
      method: 'PUT',
      body: PDF,
      headers: { 'content-type': 'application/pdf' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`${t.fhir}/Binary/scan-report-77/_history/1`);
    const read = await rawFetch(`${t.fhir}/Binary/scan-report-77`, { headers: { accept: 'application/pdf' } });
    expect(read.bytes.equals(PDF)).toBe(true);
  });

  test('raw reads answer If-None-Match with 304 while the version is current', async () => {
    const id = await upload(t.fhir, PDF, 'application/pdf');
    const url = `${t.fhir}/Binary/${id}`;
    const unchanged = await rawFetch(url, { headers: { accept: 'application/pdf', 'if-none-match': 'W/"1"' } });
    expect(unchanged.status).toBe(304);
    expect(unchanged.bytes.length).toBe(0);
    expect((await rawFetch(url, { headers: { accept: 'application/pdf', 'if-none-match': 'W/"5"' } })).status).toBe(
      200,
    );
    await rawFetch(url, { method: 'PUT', body: Buffer.from('v2'), headers: { 'content-type': 'application/pdf' } });
    const changed = await rawFetch(url, { headers: { accept: 'application/pdf', 'if-none-match': 'W/"1"' } });
    expect(changed.status).toBe(200);
    expect(changed.bytes.toString()).toBe('v2');
    const old = await rawFetch(`${url}/_history/1`, {
      headers: { accept: 'application/pdf', 'if-none-match': 'W/"1"' },
    });
    expect(old.status).toBe(304);
  });

  test('X-Security-Context on a raw upload becomes Binary.securityContext', async () => {
    const id = await upload(t.fhir, PDF, 'application/pdf', { 'x-security-context': 'Patient/example-1' });
    const read = await fhirFetch(`${t.fhir}/Binary/${id}`);
    expect(read.body.securityContext).toEqual({ reference: 'Patient/example-1' });
  });

  test('raw reads of missing or deleted Binaries are OperationOutcomes', async () => {
    const missing = await rawFetch(`${t.fhir}/Binary/no-such-binary`, { headers: { accept: 'application/pdf' } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(json(missing).resourceType).toBe('OperationOutcome');
    const id = await upload(t.fhir, PDF, 'application/pdf');
    expect((await fhirFetch(`${t.fhir}/Binary/${id}`, { method: 'DELETE' })).status).toBe(200);
    const deleted = await rawFetch(`${t.fhir}/Binary/${id}`, { headers: { accept: 'application/pdf' } });
    expect(deleted.status).toBe(410);
    expect(json(deleted).resourceType).toBe('OperationOutcome');
    const v1 = await rawFetch(`${t.fhir}/Binary/${id}/_history/1`, { headers: { accept: 'application/pdf' } });
    expect(v1.bytes.equals(PDF)).toBe(true);
  });
});

describe('Binary size limit (BINARY_MAX_BYTES=100000)', () => {
  const LIMIT = 100_000;
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ env: { BINARY_MAX_BYTES: String(LIMIT) } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function storedBinaries(): Promise<number> {
    return (await fhirFetch(`${t.fhir}/Binary?_total=accurate`)).body.total;
  }

  /** Every blob file under DATA_DIR/blobs, finished or temporary. */
  async function blobFiles(): Promise<string[]> {
    const root = path.join(t.config.dataDir, 'blobs');
    const entries = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
  }

  function expectTooLarge(res: RawResponse): void {
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    const outcome = json(res);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0].severity).toBe('error');
  }

  test('content at the limit is accepted', async () => {
    const before = await storedBinaries();
    await upload(t.fhir, randomBytes(LIMIT), 'application/octet-stream');
    expect(await storedBinaries()).toBe(before + 1);
  });

  test('a larger upload with a Content-Length gets 413 and nothing is stored', async () => {
    const before = { count: await storedBinaries(), files: await blobFiles() };
    const res = await rawFetch(`${t.fhir}/Binary`, {
      method: 'POST',
      body: randomBytes(LIMIT + 1),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expectTooLarge(res);
    expect(await storedBinaries()).toBe(before.count);
    expect(await blobFiles()).toEqual(before.files);
  });

  test('a larger chunked upload without a Content-Length gets 413 and nothing is stored', async () => {
    const before = { count: await storedBinaries(), files: await blobFiles() };
    const res = await rawFetch(`${t.fhir}/Binary`, {
      method: 'POST',
      body: chunked(randomBytes(LIMIT * 3)),
      headers: { 'content-type': 'application/dicom' },
    });
    expectTooLarge(res);
    expect(await storedBinaries()).toBe(before.count);
    expect(await blobFiles()).toEqual(before.files);
    // The connection stays usable for the next request.
    expect((await fhirFetch(`${t.fhir}/metadata`)).status).toBe(200);
  });

  test('a raw PUT past the limit leaves the current version in place', async () => {
    const id = await upload(t.fhir, PDF, 'application/pdf');
    const res = await rawFetch(`${t.fhir}/Binary/${id}`, {
      method: 'PUT',
      body: chunked(randomBytes(LIMIT * 2)),
      headers: { 'content-type': 'application/pdf' },
    });
    expectTooLarge(res);
    const read = await rawFetch(`${t.fhir}/Binary/${id}`, { headers: { accept: 'application/pdf' } });
    expect(read.headers.get('etag')).toBe('W/"1"');
    expect(read.bytes.equals(PDF)).toBe(true);
  });

  test('a FHIR JSON Binary whose data is past the limit gets 413 and nothing is stored', async () => {
    const before = { count: await storedBinaries(), files: await blobFiles() };
    const res = await fhirFetch(`${t.fhir}/Binary`, {
      method: 'POST',
      body: {
        resourceType: 'Binary',
        contentType: 'application/octet-stream',
        data: randomBytes(LIMIT + 10).toString('base64'),
      },
    });
    expect(res.status).toBe(413);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(await storedBinaries()).toBe(before.count);
    expect(await blobFiles()).toEqual(before.files);
  });
});
