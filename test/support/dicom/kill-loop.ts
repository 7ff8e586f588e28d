/**
 * A hub SIGKILLed again and again at random moments while it ingests, from STOW-RS clients posting
 * requests of 1 to `stowBatchMax` instances and storescu associations streaming C-STOREs, all at
 * once (so instances commit alone and in groups, and installations run behind them). After every
 * restart, every instance acknowledged before the kill is whole (indexed, its blob file byte for
 * byte, nothing left staged; all of them again after the last kill), and none of the instances
 * sent but not acknowledged is half there. The delays come from a seeded generator; the seed is
 * printed so that a failure can be replayed (KILL_SEED=…).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { buildPart10Header } from '../../../src/dicom/dimse/part10-writer.ts';
import { startHubProcess } from '../hub-process.ts';
import type { HubProcess } from '../hub-process.ts';
import { blobsInstalled } from '../staged-blobs.ts';
import { stow } from '../stow.ts';
import { createTestDatabase } from '../test-hub.ts';
import { seededRandom } from './part10-fixtures.ts';
import { blobPath, freshInstances, halfVisible, retrieveInstance, sha256 } from './staged-crash.ts';
import type { CrashInstance } from './staged-crash.ts';
import { storescuProfile } from './test-peer.ts';

export interface KillPlan {
  kills: number;
  /** STOW-RS clients, each posting requests of 1 to `stowBatchMax` new instances one after the other. */
  stowClients: number;
  stowBatchMax: number;
  /** storescu associations at once, each sending new instances one after the other. */
  associations: number;
}
const CT = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
/** Part 10 files begin with a 128-byte preamble and "DICM"; the meta group follows. */
const META_START = 132;

/** The File Meta Information's length: its group length element's value plus the element itself. */
function datasetOf(part10: Buffer): Buffer {
  const groupLength = part10.readUInt32LE(META_START + 8);
  return part10.subarray(META_START + 12 + groupLength);
}

/** The bytes the hub stores for an instance received over C-STORE: its meta built from the command. */
function asReceivedOverDimse(instance: CrashInstance): CrashInstance {
  const bytes = Buffer.concat([
    buildPart10Header({
      mediaStorageSopClassUid: CT,
      mediaStorageSopInstanceUid: instance.sop,
      transferSyntaxUid: EXPLICIT_LE,
      sourceApplicationEntityTitle: 'STORESCU',
    }),
    datasetOf(instance.bytes),
  ]);
  return { ...instance, bytes, key: sha256(bytes) };
}

interface Cycle {
  acknowledged: CrashInstance[];
  unacknowledged: CrashInstance[];
  /** Called at each acknowledgement: the kill comes a random moment after the first. */
  onAcknowledged: () => void;
}

interface Association {
  instances: CrashInstance[];
  files: string[];
  profile: string;
}

/**
 * Every third cycle is a burst that ends before the kill, so that the kill can fall in the
 * installation that follows a burst (blob-installer.ts waits for ingest to pause).
 */
function burst(kill: number): boolean {
  return kill % 3 === 0;
}

/** Registers the suite: `plan.kills` kills, then a last restart that checks everything. */
export function describeKills(title: string, plan: KillPlan): void {
  describe(title, () => {
    let database: { url: string; drop: () => Promise<void> };
    let work: string;
    let dataDir: string;
    let sql: pg.Client;

    beforeAll(async () => {
      database = await createTestDatabase();
      work = await mkdtemp(join(tmpdir(), 'dicom-ingest-kills-'));
      dataDir = join(work, 'data');
      sql = new pg.Client({ connectionString: database.url });
      await sql.connect();
    });

    afterAll(async () => {
      await sql?.end();
      await database?.drop();
      await rm(work, { recursive: true, force: true });
    });

    /** Posts requests of new instances one after the other until the hub is gone, or `requests` are answered. */
    async function stowLoop(hub: HubProcess, random: () => number, cycle: Cycle, requests = Infinity): Promise<void> {
      for (let sent = 0; sent < requests; sent++) {
        const batch = freshInstances(1 + Math.floor(random() * plan.stowBatchMax), 7);
        let status: number;
        try {
          const response = await stow(
            hub.url,
            batch.map((instance) => instance.bytes),
          );
          await response.arrayBuffer();
          status = response.status;
        } catch {
          cycle.unacknowledged.push(...batch);
          return;
        }
        expect(status).toBe(200);
        cycle.acknowledged.push(...batch);
        cycle.onAcknowledged();
      }
    }

    /** `count` new instances as files for one storescu association, written before the hub starts. */
    async function prepareAssociation(dir: string, count: number): Promise<Association> {
      const instances = freshInstances(count, 25);
      await mkdir(dir, { recursive: true });
      const files = instances.map((_instance, index) => join(dir, `${String(index).padStart(4, '0')}.dcm`));
      await Promise.all(instances.map((instance, index) => writeFile(files[index]!, instance.bytes)));
      const profile = join(dir, 'profile.cfg');
      await writeFile(profile, storescuProfile([{ sopClassUid: CT, transferSyntaxUid: EXPLICIT_LE }], 'Kills'));
      return { instances, files, profile };
    }

    /** One storescu association sending its instances; the ones it saw acknowledged, in order. */
    async function storeLoop(hub: HubProcess, { instances, files, profile }: Association, cycle: Cycle): Promise<void> {
      const dimsePort = (await hub.waitForLog('DIMSE listener started')).port;
      const output = await new Promise<string>((resolve) => {
        const child = spawn(
          'storescu',
          ['-v', '-xf', profile, 'Kills', '-aet', 'STORESCU', '-aec', 'HUB', '127.0.0.1', String(dimsePort), ...files],
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TCP_NODELAY: '1' } },
        );
        let text = '';
        const onOutput = (chunk: Buffer): void => {
          text += chunk.toString();
          if (text.includes('Received Store Response')) {
            cycle.onAcknowledged();
          }
        };
        child.stdout.on('data', onOutput);
        child.stderr.on('data', onOutput);
        child.on('close', () => resolve(text));
      });
      const responses = output.split('\n').filter((line) => line.includes('Received Store Response'));
      expect(responses.every((line) => line.includes('(Success)'))).toBe(true);
      const received = instances.map(asReceivedOverDimse);
      cycle.acknowledged.push(...received.slice(0, responses.length));
      // storescu sends one instance at a time: only the one after the last answer can have reached the hub.
      cycle.unacknowledged.push(...received.slice(responses.length, responses.length + 1));
    }

    /** Every one of `instances` is indexed and its installed file holds exactly its bytes. */
    async function lost(instances: readonly CrashInstance[]): Promise<string[]> {
      const rows = await sql.query<{ sop_instance_uid: string; blob_key: string }>(
        'SELECT sop_instance_uid, blob_key FROM dicom_instance WHERE sop_instance_uid = ANY($1)',
        [instances.map((instance) => instance.sop)],
      );
      const keys = new Map(rows.rows.map((row) => [row.sop_instance_uid, row.blob_key]));
      const missing: string[] = [];
      for (const instance of instances) {
        const file = await readFile(blobPath(dataDir, instance.key)).catch(() => undefined);
        if (keys.get(instance.sop) !== instance.key || !file?.equals(instance.bytes)) {
          missing.push(instance.sop);
        }
      }
      return missing;
    }

    test('no acknowledged instance is lost, none unacknowledged is half there', async () => {
      const seed = Number(process.env.KILL_SEED ?? Date.now() % 1_000_000);
      console.log(`KILL_SEED=${seed}`);
      const random = seededRandom(seed);
      const started = Date.now();
      const env = { DATABASE_URL: database.url, DATA_DIR: dataDir, DIMSE_PORT: '0', DIMSE_AE_TITLE: 'HUB' };
      const acknowledged: CrashInstance[] = [];
      /** Sent to the hub killed last, never answered: each must be whole or absent, never half there. */
      let unanswered: CrashInstance[] = [];
      let previous: CrashInstance[] = [];
      let unacknowledged = 0;
      /** Burst cycles whose kill came while the burst's files were being installed. */
      let installsCut = 0;
      for (let kill = 1; kill <= plan.kills + 1; kill++) {
        const associations =
          kill > plan.kills
            ? []
            : await Promise.all(
                Array.from({ length: plan.associations }, (_unused, association) =>
                  prepareAssociation(join(work, `cstore-${kill}-${association}`), burst(kill) ? 60 : 400),
                ),
              );
        const hub = await startHubProcess(env, 60_000);
        // What the previous kill might have cost: nothing acknowledged, nothing half there.
        await blobsInstalled(sql);
        expect({ kill, lost: await lost(kill > plan.kills ? acknowledged : previous) }).toEqual({ kill, lost: [] });
        expect({ kill, half: await halfVisible(sql, dataDir, hub.url, unanswered) }).toEqual({ kill, half: [] });
        for (const instance of acknowledged.slice(-5)) {
          expect(await retrieveInstance(hub.url, instance)).toEqual(instance.bytes);
        }
        if (kill > plan.kills) {
          await hub.stop();
          break;
        }
        let firstAcknowledgement!: () => void;
        const acknowledging = new Promise<void>((resolve) => (firstAcknowledgement = resolve));
        const cycle: Cycle = { acknowledged: [], unacknowledged: [], onAcknowledged: () => firstAcknowledgement() };
        const load = Promise.all([
          ...Array.from({ length: plan.stowClients }, () => stowLoop(hub, random, cycle, burst(kill) ? 6 : Infinity)),
          ...associations.map((association) => storeLoop(hub, association, cycle)),
        ]);
        if (burst(kill)) {
          // The burst ends; its files are installed from half a second later: the kill comes
          // before, during or after that installation.
          await load;
          await new Promise((resolve) => setTimeout(resolve, 200 + random() * 1500));
        } else {
          // A random moment once ingest is flowing: commits going on, alone and in groups.
          await acknowledging;
          await new Promise((resolve) => setTimeout(resolve, random() * 1000));
        }
        hub.child.kill('SIGKILL');
        expect(await hub.exited).toMatchObject({ signal: 'SIGKILL' });
        await load;
        if (burst(kill)) {
          const staged = (await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM blob_staging')).rows[0]!.n;
          installsCut += staged > 0 && staged < cycle.acknowledged.length ? 1 : 0;
        }
        acknowledged.push(...cycle.acknowledged);
        previous = cycle.acknowledged;
        unanswered = cycle.unacknowledged;
        unacknowledged += unanswered.length;
        for (let association = 0; association < plan.associations; association++) {
          await rm(join(work, `cstore-${kill}-${association}`), { recursive: true, force: true });
        }
      }
      console.log(
        `${plan.kills} kills in ${Math.round((Date.now() - started) / 1000)} s: ${acknowledged.length} instances acknowledged, all whole; ${unacknowledged} sent unanswered; ${installsCut} kills while installing`,
      );
      expect(acknowledged.length).toBeGreaterThan(plan.kills * 20);
    }, 600_000);
  });
}
