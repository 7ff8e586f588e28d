/**
 * Uploads are authorised before they are stored (issue 11, item 4): raw Binary content from a caller
 * who may not write it is refused before its bytes reach the blob store. (STOW-RS is refused earlier
 * still, by dicomweb-scope-guard.ts, before the route reads the body.)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { userToken } from './support/user-token.ts';

async function filesUnder(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).length;
}

describe('raw Binary uploads are authorised before they are stored', () => {
  let testHub: TestHub;
  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  const upload = (token: string, method: 'POST' | 'PUT', pathname: string, bytes: number) =>
    fetch(`${testHub.fhir}/${pathname}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/pdf' },
      body: Buffer.alloc(bytes, 0x25),
    });

  test('a patient’s upload (no Binary create) and a physician’s PUT (no Binary update) store nothing; a physician’s POST is stored', async () => {
    const blobs = path.join(testHub.config.dataDir, 'blobs');
    const before = await filesUnder(blobs);
    const patient = await userToken(testHub, 'patient');
    const refused = await upload(patient, 'POST', 'Binary', 4 * 1024 * 1024);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    const physician = await userToken(testHub, 'referring-physician');
    expect((await upload(physician, 'PUT', 'Binary/chosen-by-physician', 1024 * 1024)).status).toBe(403);
    expect(await filesUnder(blobs)).toBe(before);

    const stored = await upload(physician, 'POST', 'Binary', 1024 * 1024);
    expect(stored.status).toBe(201);
    expect(await filesUnder(blobs)).toBe(before + 1);
  });
});
