/**
 * The orphan blob sweep (src/storage/orphan-sweep.ts) on a real hub's PostgreSQL and blob store:
 * orphans past the grace period go; blobs of DICOM instances and of every Binary version (deleted
 * ones included) stay, byte for byte; a writer racing the sweep loses nothing; an interrupted
 * sweep's quarantine is settled; one process sweeps at a time; `hub blobs sweep` as an operator runs it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, rename, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { stow as stowFiles } from './support/stow.ts';
import { createLogger } from '../src/logger.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { QUARANTINE_DIR, startOrphanSweeper, sweepOrphanBlobs } from '../src/storage/orphan-sweep.ts';
import type { OrphanSweepOptions, OrphanSweepResult } from '../src/storage/orphan-sweep.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { runHubCli as cli } from './support/hub-cli.ts';
import { blobsInstalled } from './support/staged-blobs.ts';
import { until } from './support/until.ts';

const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
const HOUR_MS = 3600_000;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('orphan blob sweep', () => {
  let th: TestHub;
  let store: FileBlobStore;
  let ct: Buffer;
  let ctInstancePath: string;

  const sweep = (options: OrphanSweepOptions = {}, clock?: () => number): Promise<OrphanSweepResult> =>
    sweepOrphanBlobs(th.hub.db, store, options, clock);
  /** Sets the blob's mtime back, as if it had been written two days ago. */
  const age = async (key: string): Promise<void> => {
    const past = new Date(Date.now() - 48 * HOUR_MS);
    await utimes(store.pathOf(key), past, past);
  };
  const exists = (key: string): Promise<boolean> =>
    stat(store.pathOf(key)).then(
      () => true,
      () => false,
    );
  const quarantined = (): Promise<string[]> => readdir(join(store.root, QUARANTINE_DIR)).catch(() => []);
  const oldOrphan = async (bytes = randomBytes(2000)): Promise<string> => {
    const { key } = await store.put(bytes);
    await age(key);
    return key;
  };

  const stow = async (bytes: Buffer): Promise<number> => {
    const response = await stowFiles(th.baseUrl, [bytes]);
    await response.arrayBuffer();
    return response.status;
  };

  /** WADO-RS of one instance: the single part's bytes. */
  const retrieveInstance = async (): Promise<Buffer> => {
    const response = await fetch(`${th.baseUrl}/dicomweb${ctInstancePath}`, {
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    expect(response.status).toBe(200);
    const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get('content-type') ?? '')![1]!;
    const body = Buffer.from(await response.arrayBuffer());
    const start = body.indexOf('\r\n\r\n', body.indexOf(`--${boundary}`)) + 4;
    return body.subarray(start, body.indexOf(`\r\n--${boundary}--`, start));
  };

  const rawBinary = async (path: string): Promise<{ status: number; bytes: Buffer }> => {
    const response = await fetch(`${th.fhir}/${path}`, { headers: { accept: 'application/octet-stream' } });
    return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
  };

  const rawWrite = async (
    method: 'POST' | 'PUT',
    path: string,
    bytes: Buffer,
  ): Promise<{ status: number; id: string }> => {
    const response = await fetch(`${th.fhir}/${path}`, {
      method,
      headers: { 'content-type': 'application/octet-stream', accept: 'application/fhir+json' },
      body: new Uint8Array(bytes),
    });
    return { status: response.status, id: ((await response.json()) as { id: string }).id };
  };

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres' });
    store = new FileBlobStore(join(th.config.dataDir, 'blobs'));
    ct = await readFile(CT_SMALL);
    expect(await stow(ct)).toBe(200);
    const row = (
      await th.hub.db.query<{
        study_instance_uid: string;
        series_instance_uid: string;
        sop_instance_uid: string;
        blob_key: string;
      }>('SELECT study_instance_uid, series_instance_uid, sop_instance_uid, blob_key FROM dicom_instance')
    ).rows;
    expect(row).toHaveLength(1);
    expect(row[0]!.blob_key).toBe(sha256(ct));
    // Its file is installed behind the answer; the tests below age it.
    await blobsInstalled(th.hub.db);
    ctInstancePath = `/studies/${row[0]!.study_instance_uid}/series/${row[0]!.series_instance_uid}/instances/${row[0]!.sop_instance_uid}`;
  });

  afterAll(async () => {
    await th?.stop();
  });

  test('an old orphan goes; a fresh orphan, a STOW-RS instance and a FHIR Binary stay, retrievable byte for byte', async () => {
    const letter = Buffer.from('%PDF-1.4 a letter that nothing else contains');
    const created = await fhirFetch(`${th.fhir}/Binary`, {
      method: 'POST',
      body: { resourceType: 'Binary', contentType: 'application/pdf', data: letter.toString('base64') },
    });
    expect(created.status).toBe(201);
    await age(sha256(ct));
    await age(sha256(letter));
    const orphan = await oldOrphan();
    const fresh = (await store.put(randomBytes(1500))).key;

    const result = await sweep();
    expect(result).toEqual({
      ran: true,
      scanned: 4,
      old: 3,
      referenced: 2,
      removed: 1,
      removedBytes: 2000,
      rescued: 0,
      recovered: 0,
    });
    expect(await exists(orphan)).toBe(false);
    expect(await exists(fresh)).toBe(true);
    expect((await retrieveInstance()).equals(ct)).toBe(true);
    expect((await rawBinary(`Binary/${created.body.id}`)).bytes.equals(letter)).toBe(true);
    expect(await quarantined()).toEqual([]);
  });

  test('a duplicate refused as conflicting leaves no blob: a staged instance’s bytes are kept only when it is stored', async () => {
    const altered = Buffer.from(ct);
    altered[altered.length - 1]! ^= 0xff;
    expect(await stow(altered)).toBe(409);
    expect(await exists(sha256(altered))).toBe(false);
    expect((await th.hub.db.query('SELECT 1 FROM blob_staging WHERE blob_key = $1', [sha256(altered)])).rows).toEqual(
      [],
    );
    expect(await sweep()).toMatchObject({ removed: 0, rescued: 0 });
    expect((await retrieveInstance()).equals(ct)).toBe(true);
  });

  test('a deleted Binary keeps the blobs of all its versions for vread', async () => {
    const v1 = randomBytes(3000);
    const v2 = randomBytes(3100);
    const { id, status } = await rawWrite('POST', 'Binary', v1);
    expect(status).toBe(201);
    expect((await rawWrite('PUT', `Binary/${id}`, v2)).status).toBe(200);
    expect((await fhirFetch(`${th.fhir}/Binary/${id}`, { method: 'DELETE' })).status).toBe(200);
    await age(sha256(v1));
    await age(sha256(v2));
    expect(await sweep()).toMatchObject({ removed: 0, rescued: 0 });
    expect((await rawBinary(`Binary/${id}`)).status).toBe(410);
    expect((await rawBinary(`Binary/${id}/_history/1`)).bytes.equals(v1)).toBe(true);
    expect((await rawBinary(`Binary/${id}/_history/2`)).bytes.equals(v2)).toBe(true);
  });

  test('a copy installed by a writer just before the quarantine rename is put back', async () => {
    const bytes = randomBytes(2500);
    const key = await oldOrphan(bytes);
    const result = await sweep({
      hooks: {
        beforeQuarantine: async (candidate) => {
          if (candidate === key) {
            await store.put(bytes);
          }
        },
      },
    });
    expect(result).toMatchObject({ removed: 0, rescued: 1 });
    expect((await store.read(key)).equals(bytes)).toBe(true);
    expect(Date.now() - (await stat(store.pathOf(key))).mtimeMs).toBeLessThan(HOUR_MS);
    expect(await quarantined()).toEqual([]);
    // It is fresh now: the next sweep leaves it alone.
    expect(await sweep()).toMatchObject({ removed: 0, rescued: 0 });
    expect(await exists(key)).toBe(true);
  });

  test('a copy installed while the old one is in quarantine stays; a row that comes to refer to a quarantined blob brings it back', async () => {
    const reinstalled = randomBytes(2600);
    const referred = randomBytes(2700);
    const reinstalledKey = await oldOrphan(reinstalled);
    const referredKey = await oldOrphan(referred);
    const result = await sweep({
      hooks: {
        afterQuarantine: async (keys) => {
          expect([...keys].sort()).toEqual([reinstalledKey, referredKey].sort());
          expect(await exists(reinstalledKey)).toBe(false);
          await store.put(reinstalled);
          await th.hub.db.query('INSERT INTO binary_content (id, version, blob_key, size) VALUES ($1, 1, $2, $3)', [
            'sweep-race',
            referredKey,
            referred.length,
          ]);
        },
      },
    });
    // The old inode of the re-installed blob is dropped; its fresh copy is in place.
    expect(result).toMatchObject({ removed: 1, rescued: 1 });
    expect((await store.read(reinstalledKey)).equals(reinstalled)).toBe(true);
    expect((await store.read(referredKey)).equals(referred)).toBe(true);
    expect(await quarantined()).toEqual([]);
  });

  test('a failure while blobs are in quarantine puts them back', async () => {
    const bytes = randomBytes(2800);
    const key = await oldOrphan(bytes);
    await expect(
      sweep({ hooks: { afterQuarantine: () => Promise.reject(new Error('disk on fire')) } }),
    ).rejects.toThrow('disk on fire');
    expect((await store.read(key)).equals(bytes)).toBe(true);
    expect(await quarantined()).toEqual([]);
    expect(await sweep()).toMatchObject({ removed: 1 });
    expect(await exists(key)).toBe(false);
  });

  test('what an interrupted sweep left in quarantine is put back when referred to, and deleted when not', async () => {
    const ctKey = sha256(ct);
    const orphan = await oldOrphan();
    await rename(store.pathOf(ctKey), join(store.root, QUARANTINE_DIR, `${ctKey}.0b7c1d2e-interrupted`));
    await rename(store.pathOf(orphan), join(store.root, QUARANTINE_DIR, `${orphan}.5f3a9c1b-interrupted`));
    expect(await exists(ctKey)).toBe(false);
    expect(await sweep()).toMatchObject({ recovered: 1, removed: 1 });
    expect(await quarantined()).toEqual([]);
    expect(await exists(orphan)).toBe(false);
    expect((await retrieveInstance()).equals(ct)).toBe(true);
  });

  test('one process sweeps at a time (advisory lock); a dry run changes nothing', async () => {
    const orphan = await oldOrphan();
    const other = new pg.Client({ connectionString: th.databaseUrl });
    await other.connect();
    try {
      await other.query(`SELECT pg_advisory_lock(hashtextextended('blob-orphan-sweep', 0))`);
      expect(await sweep()).toMatchObject({ ran: false, scanned: 0, removed: 0 });
      expect(await sweep({ dryRun: true })).toMatchObject({ ran: true, removed: 1, removedBytes: 2000 });
      expect(await exists(orphan)).toBe(true);
    } finally {
      await other.end();
    }
    expect(await sweep()).toMatchObject({ ran: true, removed: 1 });
    expect(await exists(orphan)).toBe(false);
  });

  test('the grace period is measured on the given clock, and is never under an hour', async () => {
    const fresh = (await store.put(randomBytes(100))).key;
    await expect(sweep({ graceMs: HOUR_MS - 1 })).rejects.toThrow(RangeError);
    expect(await exists(fresh)).toBe(true);
    const dayLater = Date.now() + 25 * HOUR_MS;
    const result = await sweep({}, () => dayLater);
    expect(result.removed).toBeGreaterThanOrEqual(1);
    expect(await exists(fresh)).toBe(false);
    expect((await retrieveInstance()).equals(ct)).toBe(true);
  });

  test('the scheduled sweeper runs after its delay and stops', async () => {
    const orphan = await oldOrphan();
    const sweeper = startOrphanSweeper(th.hub.db, store, {
      logger: createLogger('silent'),
      delayMs: 20,
      intervalMs: HOUR_MS,
    });
    try {
      await until(async () => !(await exists(orphan)), 'the scheduled sweep', 10_000, 50);
    } finally {
      await sweeper.stop();
    }
  });

  test('hub blobs sweep: a dry run reports without removing; a sweep removes; a grace under an hour is refused', async () => {
    const orphan = await oldOrphan();
    const env = { DATABASE_URL: th.databaseUrl!, DATA_DIR: th.config.dataDir, LOG_LEVEL: 'silent' };
    const dry = await cli(['blobs', 'sweep', '--dry-run'], env);
    expect(dry).toMatchObject({ code: 0, stderr: '' });
    expect(dry.stdout).toContain('would remove: 1 (2000 bytes); dry run, nothing removed');
    expect(await exists(orphan)).toBe(true);

    const refused = await cli(['blobs', 'sweep', '--grace-hours', '0.5'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--grace-hours');
    expect(await exists(orphan)).toBe(true);

    const swept = await cli(['blobs', 'sweep', '--grace-hours', '30'], env);
    expect(swept).toMatchObject({ code: 0, stderr: '' });
    expect(swept.stdout).toContain('removed: 1 (2000 bytes)');
    expect(await exists(orphan)).toBe(false);
    expect((await retrieveInstance()).equals(ct)).toBe(true);
  });
});
