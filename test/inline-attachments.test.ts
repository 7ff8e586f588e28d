/**
 * Records as EHRs send them (issue 11, item 5): a PDF as base64 `data` inside a DocumentReference of
 * a transaction Bundle, and a Binary resource posted as FHIR JSON with more than 1 MiB of `data`.
 * The bytes move to the blob store as a Binary, the attachment keeps url, size and hash, the bytes
 * come back unchanged, and the Binary is seen by exactly those who see the resource.
 */
import { createHash, randomBytes } from 'node:crypto';
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const sha1 = (bytes: Buffer): string => createHash('sha1').update(bytes).digest('base64');
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** A PDF-shaped document of `size` bytes: a header, random content, the trailer. */
function pdfOf(size: number): Buffer {
  const head = Buffer.from('%PDF-1.4\n', 'latin1');
  const tail = Buffer.from('\n%%EOF\n', 'latin1');
  return Buffer.concat([head, randomBytes(size - head.length - tail.length), tail]);
}

const PEOPLE = {
  physician: { role: 'referring-physician' as const, fhirUser: 'Practitioner/prac-inline' },
  otherPhysician: { role: 'referring-physician' as const, fhirUser: 'Practitioner/prac-elsewhere' },
};

function caseResources(sr: string, requester: string): Record<string, unknown>[] {
  return [
    { resourceType: 'Patient', id: `pat-${sr}`, name: [{ family: 'Inline' }] },
    {
      resourceType: 'ServiceRequest',
      id: sr,
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/pat-${sr}` },
      requester: { reference: requester },
    },
  ];
}

describe('inline attachments and Binary data up to BINARY_MAX_BYTES', () => {
  let testHub: TestHub;
  let ehr: string;
  const tokens = {} as Record<keyof typeof PEOPLE, string>;
  const as = (token: string, path: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${testHub.fhir}/${path}`, { ...init, headers: { authorization: `Bearer ${token}` } });
  const raw = async (token: string, path: string) => {
    const response = await fetch(`${testHub.fhir}/${path}`, {
      headers: { authorization: `Bearer ${token}`, accept: '*/*' },
    });
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      bytes: Buffer.from(await response.arrayBuffer()),
    };
  };
  const binaryCount = async (): Promise<number> =>
    Number(
      (await testHub.hub.db.query<{ n: string }>("SELECT count(*) AS n FROM resource WHERE resource_type = 'Binary'"))
        .rows[0]?.n,
    );

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    ehr = await clientToken(testHub, 'inline-ehr', 'system/*.cruds');
    Object.assign(
      tokens,
      await signInPeople(testHub, PEOPLE, {
        clientId: 'inline-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await testHub?.stop();
  });

  test('a 20 MB PDF inline in a transaction becomes a Binary; the DocumentReference keeps url, size and hash', async () => {
    const pdf = pdfOf(20_000_000);
    const small = Buffer.from('a short note, kept inline');
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        ...caseResources('sr-inline', 'Practitioner/prac-inline').map((resource) => ({
          resource,
          request: { method: 'PUT', url: `${String(resource.resourceType)}/${String(resource.id)}` },
        })),
        {
          fullUrl: 'urn:uuid:5b0c7a52-3f5e-4c36-9d3e-2f8f4a1c0001',
          resource: {
            resourceType: 'DocumentReference',
            status: 'current',
            subject: { reference: 'Patient/pat-sr-inline' },
            context: { related: [{ reference: 'ServiceRequest/sr-inline' }] },
            content: [
              {
                attachment: {
                  contentType: 'application/pdf',
                  title: 'Discharge summary',
                  data: pdf.toString('base64'),
                },
              },
              { attachment: { contentType: 'text/plain', data: small.toString('base64') } },
            ],
          },
          request: { method: 'POST', url: 'DocumentReference' },
        },
      ],
    };
    const posted = await as(ehr, '', { method: 'POST', body: bundle });
    expect(posted.status).toBe(200);
    const location: string = posted.body.entry[2].response.location;
    const documentId = /^DocumentReference\/([^/]+)/.exec(location)?.[1] as string;

    const read = await as(ehr, `DocumentReference/${documentId}`);
    expect(read.status).toBe(200);
    expect(JSON.stringify(read.body).length).toBeLessThan(4096);
    const [moved, kept] = read.body.content.map(
      (content: { attachment: Record<string, unknown> }) => content.attachment,
    );
    expect(moved).toEqual({
      contentType: 'application/pdf',
      title: 'Discharge summary',
      url: expect.stringMatching(/^Binary\/[A-Za-z0-9\-.]+$/),
      size: pdf.length,
      hash: sha1(pdf),
    });
    // 64 KiB and under stays as it was sent.
    expect(kept).toEqual({ contentType: 'text/plain', data: small.toString('base64') });

    const bytes = await raw(ehr, moved.url as string);
    expect(bytes.status).toBe(200);
    expect(bytes.type).toMatch(/^application\/pdf/);
    expect(sha256(bytes.bytes)).toBe(sha256(pdf));
    const binary = await as(ehr, `${moved.url as string}?_elements=securityContext`, {});
    expect(binary.status).toBe(200);

    // The case's physician reads it; another physician finds nothing there.
    expect(sha256((await raw(tokens.physician, moved.url as string)).bytes)).toBe(sha256(pdf));
    expect((await raw(tokens.otherPhysician, moved.url as string)).status).toBe(404);
    expect((await as(tokens.otherPhysician, `DocumentReference/${documentId}`)).status).toBe(404);
  }, 120_000);

  test('a Binary posted as FHIR JSON with 3 MB of data is stored and read back unchanged', async () => {
    const bytes = randomBytes(3_000_000);
    const created = await as(ehr, 'Binary', {
      method: 'POST',
      body: { resourceType: 'Binary', contentType: 'application/octet-stream', data: bytes.toString('base64') },
    });
    expect(created.status).toBe(201);
    const back = await raw(ehr, `Binary/${created.body.id as string}`);
    expect(sha256(back.bytes)).toBe(sha256(bytes));
    const asJson = await as(ehr, `Binary/${created.body.id as string}`);
    expect(Buffer.from(asJson.body.data as string, 'base64').equals(bytes)).toBe(true);
  }, 60_000);

  test('data that disagrees with its size or hash, or is not base64, is refused and stores nothing', async () => {
    const pdf = pdfOf(200_000);
    const before = await binaryCount();
    const write = (attachment: Record<string, unknown>) =>
      as(ehr, 'DocumentReference', {
        method: 'POST',
        body: { resourceType: 'DocumentReference', status: 'current', content: [{ attachment }] },
      });
    const wrongHash = await write({
      contentType: 'application/pdf',
      data: pdf.toString('base64'),
      hash: sha1(Buffer.from('x')),
    });
    expect(wrongHash.status).toBe(400);
    expect(JSON.stringify(wrongHash.body)).toContain('SHA-1');
    const wrongSize = await write({ contentType: 'application/pdf', data: pdf.toString('base64'), size: 12 });
    expect(wrongSize.status).toBe(400);
    const notBase64 = await write({ contentType: 'application/pdf', data: `${pdf.toString('base64')}!!` });
    expect(notBase64.status).toBe(400);
    expect(await binaryCount()).toBe(before);
  }, 60_000);

  test('a transaction that fails after an inline attachment keeps no Binary of it', async () => {
    const before = await binaryCount();
    const failed = await as(ehr, '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: {
              resourceType: 'DocumentReference',
              status: 'current',
              content: [{ attachment: { contentType: 'application/pdf', data: pdfOf(300_000).toString('base64') } }],
            },
            request: { method: 'POST', url: 'DocumentReference' },
          },
          {
            resource: { resourceType: 'Patient', birthDate: 'not a date' },
            request: { method: 'POST', url: 'Patient' },
          },
        ],
      },
    });
    expect(failed.status).toBe(400);
    expect(await binaryCount()).toBe(before);
  }, 60_000);

  test('a person’s attachment follows the case: the physician writes one, the other physician cannot read it', async () => {
    const pdf = pdfOf(500_000);
    await as(ehr, '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: caseResources('sr-inline-2', 'Practitioner/prac-inline').map((resource) => ({
          resource,
          request: { method: 'PUT', url: `${String(resource.resourceType)}/${String(resource.id)}` },
        })),
      },
    });
    const written = await as(tokens.physician, 'DocumentReference', {
      method: 'POST',
      body: {
        resourceType: 'DocumentReference',
        status: 'current',
        subject: { reference: 'Patient/pat-sr-inline-2' },
        context: { related: [{ reference: 'ServiceRequest/sr-inline-2' }] },
        content: [{ attachment: { contentType: 'application/pdf', data: pdf.toString('base64') } }],
      },
    });
    expect(written.status).toBe(201);
    const url = written.body.content[0].attachment.url as string;
    expect(sha256((await raw(tokens.physician, url)).bytes)).toBe(sha256(pdf));
    expect((await raw(tokens.otherPhysician, url)).status).toBe(404);
  }, 60_000);
});
