/**
 * A Binary whose stored content is gone (its blob file deleted or lost on disk) is read raw and as
 * FHIR JSON, both streamed from the blob store (routes/fhir.ts): the hub answers 500 with an
 * OperationOutcome naming the request id, logs the failure under that id (ids only), and stays up:
 * the next request is served. An unhandled stream error would end the process.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { systemClock } from '../src/runtime/clock.ts';
import { clientToken } from './support/client-token.ts';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { createTestDatabase } from './support/test-hub.ts';
import { until } from './support/until.ts';
import type { TestHub } from './support/test-hub.ts';

describe('a Binary whose blob file is missing', () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let hub: HubProcess;
  let db: Database;
  let ehr: string;
  const put = async (id: string, bytes: Buffer): Promise<void> => {
    const stored = await fetch(`${hub.url}/fhir/Binary/${id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ehr}`, 'content-type': 'application/pdf' },
      body: bytes,
    });
    expect(stored.status).toBe(201);
  };
  const read = (id: string, accept: string) =>
    fetch(`${hub.url}/fhir/Binary/${id}`, { headers: { authorization: `Bearer ${ehr}`, accept } });

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-missing-blob-'));
    hub = await startHubProcess(
      { DATABASE_URL: database.url, DATA_DIR: dataDir, AUTH_REQUIRED: 'true', HUB_ROLES: 'api' },
      60_000,
    );
    db = await openDatabase({ databaseUrl: database.url });
    const place = { baseUrl: hub.url, hub: { db, url: hub.url }, clock: systemClock } as unknown as TestHub;
    ehr = await clientToken(place, 'missing-blob-ehr', 'system/*.cruds');
  }, 90_000);
  afterAll(async () => {
    await db?.close();
    await hub?.stop();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('raw and FHIR JSON reads answer 500 and are logged; the hub serves the next request', async () => {
    const lost = randomBytes(100_000);
    const kept = randomBytes(1000);
    await put('bin-lost', lost);
    await put('bin-kept', kept);
    const key = createHash('sha256').update(lost).digest('hex');
    await fs.rm(path.join(dataDir, 'blobs', key.slice(0, 2), key.slice(2, 4), key));

    for (const accept of ['application/pdf', 'application/fhir+json']) {
      const response = await read('bin-lost', accept);
      const requestId = response.headers.get('x-request-id');
      expect([accept, response.status]).toEqual([accept, 500]);
      expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(response.headers.get('etag')).toBeNull();
      const outcome = (await response.json()) as { resourceType: string; issue: { details: { text: string } }[] };
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0]?.details.text).toBe(`Internal server error (request ${String(requestId)})`);
      // The log line may trail the answer a little.
      const logged = await until(
        async () =>
          hub.logs.find((line) => line.msg === 'Binary content could not be read' && line.requestId === requestId),
        `the log line of request ${String(requestId)}`,
        10_000,
      );
      expect(logged).toMatchObject({ binary: 'bin-lost', version: '1', sent: false, err: 'ENOENT' });
      // Ids only: nothing of the content, nor the file's path.
      expect(JSON.stringify(logged)).not.toContain(dataDir);
    }

    expect(hub.child.exitCode).toBeNull();
    const next = await read('bin-kept', 'application/pdf');
    expect(next.status).toBe(200);
    expect(Buffer.from(await next.arrayBuffer()).equals(kept)).toBe(true);
  }, 60_000);
});
