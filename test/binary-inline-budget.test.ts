/**
 * One request puts at most 32 MiB of Binary content inline (docs/api.md, "Binary"): a batch's GET
 * Binary/<id> entries, which put each Binary's base64 in `data`, share that budget, and the entries
 * past it answer 413 each, as a batch reports any entry's error; the hub's memory stays bounded
 * however many entries the batch has. As a referring physician would send it, against a hub
 * process with AUTH_REQUIRED=true whose peak resident memory (VmHWM) is read from /proc.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { BINARY_JSON_INLINE_MAX_BYTES } from '../src/fhir/binary-budget.ts';
import { systemClock } from '../src/runtime/clock.ts';
import { clientToken } from './support/client-token.ts';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { signInPeople } from './support/login-flow.ts';
import { createTestDatabase, fhirFetch, putTransaction } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

type Json = any;

const SR = 'sr-budget';
const SIZE = 2 * 1024 * 1024;
const ENTRIES = 64;

function peakRssBytes(pid: number): Promise<number> {
  return fs
    .readFile(`/proc/${pid}/status`, 'utf8')
    .then((status) => Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024);
}

describe('the Binary content one request puts inline', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let hub: HubProcess;
  let db: Database;
  let ehr: string;
  let physician: string;
  const content = randomBytes(SIZE);
  const as = (token: string, urlPath: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${hub.url}/fhir/${urlPath}`, { ...init, headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-inline-budget-'));
    hub = await startHubProcess(
      { DATABASE_URL: database.url, DATA_DIR: dataDir, AUTH_REQUIRED: 'true', HUB_ROLES: 'api' },
      60_000,
    );
    db = await openDatabase({ databaseUrl: database.url });
    const place = { baseUrl: hub.url, hub: { db, url: hub.url }, clock: systemClock } as unknown as TestHub;
    ehr = await clientToken(place, 'budget-ehr', 'system/*.cruds');
    ({ physician } = await signInPeople(
      place,
      { physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-budget' } },
      { clientId: 'budget-app', redirectUri: 'http://127.0.0.1:5173/callback', scope: 'openid fhirUser user/*.cruds' },
    ));
    const stored = await fetch(`${hub.url}/fhir/Binary/bin-budget`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ehr}`, 'content-type': 'application/octet-stream' },
      body: content,
    });
    expect(stored.status).toBe(201);
    const fixtures: Json[] = [
      { resourceType: 'Practitioner', id: 'prac-budget' },
      { resourceType: 'Patient', id: `pat-${SR}` },
      {
        resourceType: 'ServiceRequest',
        id: SR,
        status: 'active',
        intent: 'order',
        subject: { reference: `Patient/pat-${SR}` },
        requester: { reference: 'Practitioner/prac-budget' },
      },
      // The Binary is the case's through the document that attaches it.
      {
        resourceType: 'DocumentReference',
        id: `doc-${SR}`,
        status: 'current',
        subject: { reference: `Patient/pat-${SR}` },
        context: { related: [{ reference: `ServiceRequest/${SR}` }] },
        content: [{ attachment: { contentType: 'application/octet-stream', url: 'Binary/bin-budget' } }],
      },
    ];
    const loaded = await putTransaction(`${hub.url}/fhir`, ehr, fixtures);
    expect(loaded.status).toBe(200);
  }, 90_000);
  afterAll(async () => {
    await db?.close();
    await hub?.stop();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('a batch of 64 reads of a 2 MiB Binary inlines 32 MiB; the other entries are 413, and memory stays bounded', async () => {
    // Each read alone is within the cap.
    const one = await as(physician, 'Binary/bin-budget?_elements=contentType');
    expect(one.status).toBe(200);
    const before = await peakRssBytes(hub.child.pid as number);
    const batch = await as(physician, '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: Array.from({ length: ENTRIES }, () => ({ request: { method: 'GET', url: 'Binary/bin-budget' } })),
      },
    });
    const after = await peakRssBytes(hub.child.pid as number);
    expect(batch.status).toBe(200);
    // The budget's answer, whatever the number of entries (all 64 inline: +556 MB).
    expect(after - before).toBeLessThan(300 * 1000 * 1000);
    const inline = BINARY_JSON_INLINE_MAX_BYTES / SIZE;
    const statuses = batch.body.entry.map((entry: Json) => entry.response.status.split(' ')[0]);
    expect(statuses).toEqual([...Array(inline).fill('200'), ...Array(ENTRIES - inline).fill('413')]);
    for (const entry of batch.body.entry.slice(0, inline)) {
      expect(Buffer.from(entry.resource.data as string, 'base64').equals(content)).toBe(true);
    }
    expect(batch.body.entry[inline].response.outcome.issue[0].details.text).toMatch(
      /Binary content one request may put inline.*read it raw/,
    );

    // The budget is the request's: the next request has its own, and a raw read is never counted.
    const again = await as(physician, 'Binary/bin-budget?_elements=contentType');
    expect(again.status).toBe(200);
    const raw = await fetch(`${hub.url}/fhir/Binary/bin-budget`, { headers: { authorization: `Bearer ${physician}` } });
    expect(Buffer.from(await raw.arrayBuffer()).equals(content)).toBe(true);
  }, 120_000);

  test('a transaction whose reads would inline more than the budget is refused whole with 413', async () => {
    const transaction = await as(physician, '', {
      method: 'POST',
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: BINARY_JSON_INLINE_MAX_BYTES / SIZE + 1 }, () => ({
          request: { method: 'GET', url: 'Binary/bin-budget' },
        })),
      },
    });
    expect(transaction.status).toBe(413);
    expect(transaction.body.issue[0].details.text).toMatch(/read it raw/);
  }, 60_000);
});
