/**
 * A large inline attachment becomes a Binary (docs/api.md, "Inline attachments"), so writing one is
 * creating a Binary (docs/access.md, "What every write is checked for"). As an attacker would try
 * it against a hub with AUTH_REQUIRED=true: a patient, who may not post a Binary, cannot get one
 * made through a Communication's attachment; a write that is refused (no right, no case of the
 * writer's) leaves no file in the blob store, because every check runs before the bytes are
 * stored; a system client whose scopes do not cover Binary is refused the same way. A physician's
 * inline PDF in their case is still stored, and what a transaction that fails after storing bytes
 * leaves behind is removed by the orphan sweep.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { sweepOrphanBlobs } from '../src/storage/orphan-sweep.ts';
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

type Json = any;
type Who = 'patient' | 'physician';

const SR = 'sr-att';
const HOUR_MS = 60 * 60 * 1000;

/** A PDF-shaped document of `size` bytes, different every time (a new blob each). */
function pdfOf(size: number): Buffer {
  const head = Buffer.from('%PDF-1.4\n', 'latin1');
  const tail = Buffer.from('\n%%EOF\n', 'latin1');
  return Buffer.concat([head, randomBytes(size - head.length - tail.length), tail]);
}

const message = (sender: string, bytes: Buffer, inCase: boolean): Json => ({
  resourceType: 'Communication',
  status: 'completed',
  subject: { reference: `Patient/pat-${SR}` },
  ...(inCase ? { basedOn: [{ reference: `ServiceRequest/${SR}` }] } : {}),
  sender: { reference: sender },
  payload: [{ contentAttachment: { contentType: 'application/pdf', title: 'scan', data: bytes.toString('base64') } }],
});

describe('an inline attachment is a Binary the writer must be allowed to create', () => {
  let th: TestHub;
  let blobRoot: string;
  const tokens = {} as Record<Who | 'system' | 'narrowClient', string>;
  const as = (who: keyof typeof tokens, method: string, urlPath: string, body?: unknown) =>
    fhirFetch(`${th.fhir}/${urlPath}`, { method, body, headers: { authorization: `Bearer ${tokens[who]}` } });

  /** Every blob file under the store (`<2 hex>/<2 hex>/<sha256>`). */
  const blobFiles = async (): Promise<string[]> => {
    const files: string[] = [];
    for (const first of await fs.readdir(blobRoot).catch(() => [])) {
      if (!/^[0-9a-f]{2}$/.test(first)) {
        continue;
      }
      for (const second of await fs.readdir(path.join(blobRoot, first))) {
        files.push(...(await fs.readdir(path.join(blobRoot, first, second))));
      }
    }
    return files.sort();
  };
  const binaryCount = async (): Promise<number> =>
    Number(
      (await th.hub.db.query<{ n: string }>("SELECT count(*) AS n FROM resource WHERE resource_type = 'Binary'"))
        .rows[0]?.n,
    );

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    blobRoot = path.join(th.config.dataDir, 'blobs');
    tokens.system = await clientToken(th, 'attachments-ehr', 'system/*.cruds');
    // An EHR that files documents but was not granted Binary.
    tokens.narrowClient = await clientToken(th, 'attachments-narrow', 'system/DocumentReference.cru');
    const fixtures: Json[] = [
      { resourceType: 'Practitioner', id: 'prac-att' },
      { resourceType: 'Patient', id: `pat-${SR}` },
      {
        resourceType: 'ServiceRequest',
        id: SR,
        status: 'active',
        intent: 'order',
        subject: { reference: `Patient/pat-${SR}` },
        requester: { reference: 'Practitioner/prac-att' },
      },
    ];
    const loaded = await putTransaction(th.fhir, tokens.system, fixtures);
    expect(loaded.status).toBe(200);
    Object.assign(
      tokens,
      await signInPeople(
        th,
        {
          patient: { role: 'patient', fhirUser: `Patient/pat-${SR}` },
          physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-att' },
        },
        {
          clientId: 'attachments-app',
          redirectUri: 'http://127.0.0.1:5173/callback',
          scope: 'openid fhirUser user/*.cruds',
        },
      ),
    );
  }, 60_000);
  afterAll(async () => {
    await th?.stop();
  });

  test('the patient’s Communication with a 200 KiB attachment is refused, in their case or in none, and leaves no file', async () => {
    const files = await blobFiles();
    const binaries = await binaryCount();
    // A raw Binary is refused them, and so is one made of an attachment.
    const raw = await fetch(`${th.fhir}/Binary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.patient}`, 'content-type': 'application/pdf' },
      body: pdfOf(1000),
    });
    expect(raw.status).toBe(403);
    const inCase = await as('patient', 'POST', 'Communication', message(`Patient/pat-${SR}`, pdfOf(200 * 1024), true));
    expect(inCase.status).toBe(403);
    expect(inCase.body.issue[0].details.text).toMatch(/stored as a Binary, which you may not create/);
    expect(inCase.body.issue[0].expression).toEqual(['Communication.payload[0].contentAttachment.data']);
    for (let attempt = 0; attempt < 3; attempt++) {
      const noCase = await as(
        'patient',
        'POST',
        'Communication',
        message(`Patient/pat-${SR}`, pdfOf(200 * 1024), false),
      );
      expect(noCase.status).toBe(403);
    }
    // A small attachment stays inline: the patient's messages still carry one.
    const small = await as('patient', 'POST', 'Communication', message(`Patient/pat-${SR}`, pdfOf(10 * 1024), true));
    expect(small.status).toBe(201);
    expect(await blobFiles()).toEqual(files);
    expect(await binaryCount()).toBe(binaries);
  });

  test('a write the case guard refuses leaves no file: the physician’s message naming no case', async () => {
    const files = await blobFiles();
    const binaries = await binaryCount();
    const refused = await as(
      'physician',
      'POST',
      'Communication',
      message('Practitioner/prac-att', pdfOf(300 * 1024), false),
    );
    expect(refused.status).toBe(403);
    expect(refused.body.issue[0].details.text).toMatch(/must belong to one of your cases/);
    const bundle = await as('physician', 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: message('Practitioner/prac-att', pdfOf(300 * 1024), false),
          request: { method: 'POST', url: 'Communication' },
        },
      ],
    });
    expect(bundle.status).toBe(403);
    expect(await blobFiles()).toEqual(files);
    expect(await binaryCount()).toBe(binaries);
  });

  test('a system client whose scopes do not cover Binary cannot have one made', async () => {
    const files = await blobFiles();
    const filed = await as('narrowClient', 'POST', 'DocumentReference', {
      resourceType: 'DocumentReference',
      status: 'current',
      context: { related: [{ reference: `ServiceRequest/${SR}` }] },
      content: [{ attachment: { contentType: 'application/pdf', data: pdfOf(100 * 1024).toString('base64') } }],
    });
    expect(filed.status).toBe(403);
    expect(filed.body.issue[0].details.text).toMatch(/stored as a Binary, which you may not create/);
    expect(await blobFiles()).toEqual(files);
  });

  test('the physician’s inline PDF in their case is stored, and read back raw', async () => {
    const files = await blobFiles();
    const pdf = pdfOf(500 * 1024);
    const written = await as('physician', 'POST', 'DocumentReference', {
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: `Patient/pat-${SR}` },
      context: { related: [{ reference: `ServiceRequest/${SR}` }] },
      content: [{ attachment: { contentType: 'application/pdf', data: pdf.toString('base64') } }],
    });
    expect(written.status).toBe(201);
    const url = written.body.content[0].attachment.url as string;
    expect((await blobFiles()).length).toBe(files.length + 1);
    const back = await fetch(`${th.fhir}/${url}`, { headers: { authorization: `Bearer ${tokens.physician}` } });
    expect(back.status).toBe(200);
    expect(Buffer.from(await back.arrayBuffer()).equals(pdf)).toBe(true);
  });

  test('the bytes of a transaction that fails after storing them are removed by the orphan sweep', async () => {
    const files = await blobFiles();
    const failed = await as('system', 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: {
            resourceType: 'DocumentReference',
            status: 'current',
            content: [{ attachment: { contentType: 'application/pdf', data: pdfOf(200 * 1024).toString('base64') } }],
          },
          request: { method: 'POST', url: 'DocumentReference' },
        },
        { resource: { resourceType: 'Patient', birthDate: 'not a date' }, request: { method: 'POST', url: 'Patient' } },
      ],
    });
    expect(failed.status).toBe(400);
    const left = (await blobFiles()).filter((file) => !files.includes(file));
    expect(left).toHaveLength(1);
    // Two hours on, with the shortest grace: the orphan goes, every referred blob stays.
    const swept = await sweepOrphanBlobs(
      th.hub.db,
      new FileBlobStore(blobRoot),
      { graceMs: HOUR_MS },
      () => Date.now() + 2 * HOUR_MS,
    );
    expect(swept).toMatchObject({ removed: 1 });
    expect(await blobFiles()).toEqual(files);
  });
});
