/**
 * A staged DICOM instance (migration 025: its bytes committed with its index rows, installed as a
 * file behind the answer) through a SIGKILL of the hub at each step of its path, on PostgreSQL:
 * before the commit, after it (nothing installed yet), while installing, and installed with its
 * staged row not yet released. After each restart every acknowledged instance is whole (indexed,
 * its file byte for byte, served by WADO-RS), nothing acknowledged is lost, and nothing
 * unacknowledged is half there. While installation is held back, everything else works from the
 * staged bytes: WADO-RS (instance, metadata, frames), QIDO-RS, the ImagingStudy, duplicate and
 * conflict detection, the orphan sweep and the audit trail.
 *
 * The steps are reached without hooks in the hub: a table lock holds a statement before its commit
 * or an installer's release; a file where the blob store's temp directory should be keeps the
 * installer from writing anything.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { runHubCli } from './support/hub-cli.ts';
import { stow } from './support/stow.ts';
import { blobsInstalled } from './support/staged-blobs.ts';
import { createTestDatabase } from './support/test-hub.ts';
import { until } from './support/until.ts';
import {
  blobPath,
  freshInstances,
  halfVisible,
  notWhole,
  retrieveInstance,
  singlePart,
  storedState,
} from './support/dicom/staged-crash.ts';
import type { CrashInstance } from './support/dicom/staged-crash.ts';

describe('a staged DICOM instance through a SIGKILL at each step', () => {
  let database: { url: string; drop: () => Promise<void> };
  let work: string;
  let dataDir: string;
  let env: Record<string, string>;
  let sql: pg.Client;
  let blocker: pg.Client;
  let hub: HubProcess | undefined;
  /** Everything the hub has acknowledged so far: it must all be whole after every restart. */
  const acknowledged: CrashInstance[] = [];

  const tmpDir = (): string => join(dataDir, 'blobs', 'tmp');
  const start = async (): Promise<HubProcess> => (hub = await startHubProcess(env, 60_000));
  const kill = async (): Promise<void> => {
    hub!.child.kill('SIGKILL');
    expect(await hub!.exited).toEqual({ code: null, signal: 'SIGKILL' });
    hub = undefined;
  };
  /** Ends what a killed hub left running in PostgreSQL: as a machine crash would. */
  const endOrphanedBackends = async (): Promise<void> => {
    await sql.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1`,
      [(blocker as unknown as { processID: number }).processID],
    );
    await until(
      async () =>
        (
          await sql.query(
            `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1`,
            [(blocker as unknown as { processID: number }).processID],
          )
        ).rows.length === 0,
      'the killed hub’s backends to end',
    );
  };
  const holdTable = async (): Promise<void> => {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE blob_staging IN SHARE MODE');
  };
  const releaseTable = (): Promise<unknown> => blocker.query('ROLLBACK');
  /** A statement of the hub waits for the lock on blob_staging. */
  const waitingOnStaging = () =>
    until(
      async () =>
        (
          await sql.query(
            `SELECT 1 FROM pg_locks WHERE relation = 'blob_staging'::regclass AND NOT granted AND pid <> pg_backend_pid()`,
          )
        ).rows.length > 0,
      'a statement to wait on blob_staging',
    );
  /** The installer cannot write a temp file: a file stands where its directory should be. */
  const blockInstalls = async (): Promise<void> => {
    await rm(tmpDir(), { recursive: true, force: true });
    await mkdir(join(tmpDir(), '..'), { recursive: true });
    await writeFile(tmpDir(), 'not a directory');
  };
  const unblockInstalls = async (): Promise<void> => {
    await rm(tmpDir(), { force: true });
    await mkdir(tmpDir(), { recursive: true });
  };
  const stowAll = async (instances: CrashInstance[]): Promise<number> => {
    const response = await stow(
      hub!.url,
      instances.map((instance) => instance.bytes),
    );
    await response.arrayBuffer();
    return response.status;
  };
  const expectAllWhole = async (): Promise<void> => {
    await blobsInstalled(sql);
    expect(await notWhole(sql, dataDir, hub!.url, acknowledged)).toEqual([]);
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    work = await mkdtemp(join(tmpdir(), 'dicom-staging-crash-'));
    dataDir = join(work, 'data');
    env = { DATABASE_URL: database.url, DATA_DIR: dataDir, LOG_LEVEL: 'info' };
    sql = new pg.Client({ connectionString: database.url });
    blocker = new pg.Client({ connectionString: database.url });
    await start();
    await Promise.all([sql.connect(), blocker.connect()]);
  }, 90_000);

  afterAll(async () => {
    await blocker?.query('ROLLBACK').catch(() => undefined);
    if (hub && hub.child.exitCode === null && hub.child.signalCode === null) {
      await hub.stop();
    }
    await Promise.all([sql?.end(), blocker?.end()]);
    await database?.drop();
    await rm(work, { recursive: true, force: true });
  });

  test('killed before the commit: the instance is not there at all, and the restarted hub stores it', async () => {
    const [instance] = freshInstances(1);
    await holdTable();
    const answer = stowAll([instance!]).catch(() => 'no answer');
    await waitingOnStaging();
    await kill();
    await endOrphanedBackends();
    await releaseTable();
    expect(await answer).toBe('no answer');

    await start();
    expect(await halfVisible(sql, dataDir, hub!.url, [instance!])).toEqual([]);
    expect(await storedState(sql, dataDir, instance!)).toEqual({ indexed: false, staged: false, file: undefined });
    expect(
      (await sql.query('SELECT 1 FROM dicom_study WHERE study_instance_uid = $1', [instance!.study])).rows,
    ).toEqual([]);
    // The sender's retry.
    expect(await stowAll([instance!])).toBe(200);
    acknowledged.push(instance!);
    await expectAllWhole();
  }, 90_000);

  test('killed before the commit with the database going on: the statement commits whole, never half', async () => {
    const [instance] = freshInstances(1);
    await holdTable();
    const answer = stowAll([instance!]).catch(() => 'no answer');
    await waitingOnStaging();
    await kill();
    // The dead hub's statement is still in PostgreSQL: it goes on once the lock is free.
    await releaseTable();
    expect(await answer).toBe('no answer');
    await until(
      async () => (await storedState(sql, dataDir, instance!)).indexed,
      'the dead hub’s statement to commit',
      10_000,
    );
    expect(await storedState(sql, dataDir, instance!)).toEqual({ indexed: true, staged: true, file: undefined });

    await start();
    // Never acknowledged, yet whole: the restart installed it, and the sender's retry is a duplicate.
    await blobsInstalled(sql);
    expect(await notWhole(sql, dataDir, hub!.url, [instance!])).toEqual([]);
    expect(await stowAll([instance!])).toBe(200);
    acknowledged.push(instance!);
    await expectAllWhole();
  }, 90_000);

  test('killed after the commit, before installation: served from the staged bytes meanwhile, installed at the restart', async () => {
    const batch = freshInstances(12, 6);
    const [first, second] = batch;
    await blockInstalls();
    expect(await stowAll(batch)).toBe(200);
    acknowledged.push(...batch);
    await hub!.waitForLog('staged blobs could not be installed', 10_000);
    for (const instance of batch) {
      expect(await storedState(sql, dataDir, instance)).toEqual({ indexed: true, staged: true, file: undefined });
    }

    // Everything works from the staged bytes. WADO-RS: the instance, its metadata, a frame.
    expect((await retrieveInstance(hub!.url, first!)) as Buffer).toEqual(first!.bytes);
    const instancePath = `/dicomweb/studies/${first!.study}/series/${first!.series}/instances/${first!.sop}`;
    const metadata = await fetch(`${hub!.url}${instancePath}/metadata`, {
      headers: { accept: 'application/dicom+json' },
    });
    expect(metadata.status).toBe(200);
    expect(((await metadata.json()) as Record<string, { Value?: unknown[] }>[])[0]!['00080018']?.Value).toEqual([
      first!.sop,
    ]);
    const frame = await fetch(`${hub!.url}${instancePath}/frames/1`, {
      headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
    });
    expect(frame.status).toBe(200);
    const frameWhileStaged = await singlePart(frame);
    expect(frameWhileStaged.length).toBe(16 * 16 * 2);
    // QIDO-RS and the ImagingStudy.
    const qido = await fetch(`${hub!.url}/dicomweb/studies/${first!.study}/instances`, {
      headers: { accept: 'application/dicom+json' },
    });
    expect(((await qido.json()) as unknown[]).length).toBe(6);
    await until(
      async () => {
        const bundle = (await (
          await fetch(`${hub!.url}/fhir/ImagingStudy?identifier=urn:oid:${first!.study}`, {
            headers: { accept: 'application/fhir+json' },
          })
        ).json()) as { entry?: { resource: { numberOfInstances?: number } }[] };
        return bundle.entry?.[0]?.resource.numberOfInstances === 6;
      },
      'the ImagingStudy to count the staged instances',
      10_000,
    );
    // Duplicates: the same bytes again are a success; other bytes under a staged SOP Instance UID are refused.
    expect(await stowAll([second!])).toBe(200);
    const altered = Buffer.from(second!.bytes);
    altered[altered.length - 1]! ^= 0xff;
    const conflict = await stow(hub!.url, [altered]);
    expect(conflict.status).toBe(409);
    await conflict.arrayBuffer();
    expect(await retrieveInstance(hub!.url, second!)).toEqual(second!.bytes);
    // The orphan sweep runs, and takes nothing (a staged instance has no file yet to take).
    const swept = await runHubCli(['blobs', 'sweep', '--grace-hours', '1'], env);
    expect({ code: swept.code, removed: /removed: 0\b/.test(swept.stdout) }).toEqual({ code: 0, removed: true });
    // The audit trail: the request's DICOM Instances Transferred event names the study.
    await until(
      async () =>
        (
          await sql.query(`SELECT 1 FROM audit_event WHERE content LIKE '%110104%' AND content LIKE '%' || $1 || '%'`, [
            first!.study,
          ])
        ).rows.length > 0,
      'the STOW-RS request’s audit event',
      10_000,
    );

    await kill();
    await unblockInstalls();
    await start();
    await expectAllWhole();
    // The frame from the installed file is the one served from the staged bytes.
    const after = await fetch(`${hub!.url}${instancePath}/frames/1`, {
      headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
    });
    expect((await singlePart(after)).equals(frameWhileStaged)).toBe(true);
  }, 120_000);

  test('killed while installing: what installations cut short left is replaced, every instance whole', async () => {
    const batch = freshInstances(400, 20);
    await blockInstalls();
    expect(await stowAll(batch.slice(0, 200))).toBe(200);
    expect(await stowAll(batch.slice(200))).toBe(200);
    acknowledged.push(...batch);
    await kill();
    // Debris of installations cut short: a torn copy at one blob's place, a half-written temp file.
    await unblockInstalls();
    const torn = batch[7]!;
    await mkdir(join(blobPath(dataDir, torn.key), '..'), { recursive: true });
    await writeFile(blobPath(dataDir, torn.key), torn.bytes.subarray(0, 100));
    await writeFile(join(tmpDir(), 'interrupted'), torn.bytes.subarray(0, 50));
    const staged = async (): Promise<number> =>
      ((await sql.query('SELECT count(*)::int AS n FROM blob_staging')).rows[0] as { n: number }).n;
    expect(await staged()).toBe(400);

    // The restarted hub installs the 400 at start-up: it is killed once the first files are in
    // place, their rows not yet released (the table lock holds the release back, whatever the timing).
    await holdTable();
    await start();
    const watched = batch
      .filter((_instance, index) => index % 10 === 3)
      .map((instance) => blobPath(dataDir, instance.key));
    await until(async () => watched.some((file) => existsSync(file)), 'the first installed files', 20_000, 1);
    await kill();
    await endOrphanedBackends();
    await releaseTable();
    expect(await staged()).toBe(400);

    await start();
    await expectAllWhole();
    expect((await readFile(blobPath(dataDir, torn.key))).equals(torn.bytes)).toBe(true);
  }, 120_000);

  test('killed after installing, before the staged rows are released: installed again, released', async () => {
    const batch = freshInstances(5);
    await blockInstalls();
    expect(await stowAll(batch)).toBe(200);
    acknowledged.push(...batch);
    await kill();
    await unblockInstalls();
    // The restart installs them; their release waits on the lock.
    await holdTable();
    await start();
    await until(
      async () => {
        for (const instance of batch) {
          const file = await readFile(blobPath(dataDir, instance.key)).catch(() => undefined);
          if (!file?.equals(instance.bytes)) {
            return false;
          }
        }
        return true;
      },
      'the files to be installed',
      20_000,
    );
    await waitingOnStaging();
    await kill();
    await endOrphanedBackends();
    await releaseTable();
    for (const instance of batch) {
      expect((await storedState(sql, dataDir, instance)).staged).toBe(true);
    }
    await start();
    await expectAllWhole();
    expect((await readdir(tmpDir())).filter((name) => name !== 'interrupted')).toEqual([]);
  }, 90_000);
});
