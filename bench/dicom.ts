/**
 * DICOM ingest and query benchmark: the hub against Orthanc (Debian's `orthanc` + `orthanc-dicomweb`)
 * on the same corpus in one run. See `npm run bench:dicom -- --help`.
 *
 * Each run, for each server, from an empty store: C-STORE of the whole corpus with dcmtk `storescu`
 * over one association (TCP_NODELAY=1 on both sides), then QIDO-RS / WADO-RS metadata latencies;
 * then, from an empty store again, STOW-RS in batches of 50; then STOW-RS one instance per request.
 * The hub runs as in production: a system client's token on every DICOMweb request, auditing on,
 * one allowed calling AE title. Results (medians over runs) go to bench/.work/dicom-results.json,
 * each measurement with the machine's load average beside it.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parseArgs } from 'node:util';
import { buildCorpus, writeStorescuProfile } from './dicom/corpus.ts';
import type { Corpus } from './dicom/corpus.ts';
import {
  BENCH_CALLING_AE_TITLE,
  cpuSecondsOf,
  databasePids,
  ensureNetns,
  missingTools,
  removeNetns,
  profiled,
  removeSetAside,
  resetDatabase,
  startFloor,
  startHub,
  startOrthanc,
  startStorescpIgnore,
  vmHwmKb,
} from './dicom/servers.ts';
import type { Server } from './dicom/servers.ts';
import { summarizeProfile } from './fhir/profile.ts';
import { median } from './fhir/stats.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workDir = path.join(repoRoot, 'bench', '.work', 'dicom');
const resultsFile = path.join(repoRoot, 'bench', '.work', 'dicom-results.json');
const clientScript = path.join(repoRoot, 'bench', 'dicom', 'client.ts');

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    reps: { type: 'string', default: '20' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/hub_dicom_bench' },
    'skip-batch1': { type: 'boolean', default: false },
    'skip-floor': { type: 'boolean', default: false },
    servers: { type: 'string', default: 'orthanc,hub' },
    'cpu-prof': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(`npm run bench:dicom -- [--runs N] [--quick] [--reps N] [--database-url URL] [--skip-batch1]
  --runs N        repeat everything N times and report medians (default 3)
  --quick         small corpus (2 patients x 8 studies) for a smoke test
  --reps N        requests per QIDO/WADO query (median reported; default 20)
  --database-url  the hub's database; it is DROPPED and re-created before each ingest
                  (default postgres://postgres@127.0.0.1:5432/hub_dicom_bench); the durable
                  floor uses the same name with _floor appended, dropped the same way
  --servers LIST  the servers measured (default orthanc,hub; hub alone for a quick look)
                  (each run: C-STORE over one association, then over 4 at once, the corpus's
                  patients split between them; STOW-RS in batches of 50, then of 1)
  --cpu-prof      a CPU profile of the hub during each ingest, summarised, in bench/.work/dicom/profiles
  --skip-floor    leave out the machine's limits: dcmtk storescp --ignore (C-STORE that stores
                  nothing) and the durable floors (bench/dicom/floor.ts, nothing but the durable
                  acknowledgement: "WAL", each instance's bytes in its one committed row; "files",
                  a synced, installed blob file and one committed row per instance; "journal",
                  an O_DSYNC append to a journal file beside an asynchronously committed row)
Needs root (network namespace for Orthanc), Debian packages orthanc, orthanc-dicomweb, dcmtk,
python3-pydicom, a PostgreSQL and a Redis the hub can use. Installs nothing.`);
  process.exit(0);
}
const runs = Math.max(1, Number(opts.runs));
const reps = Math.max(1, Number(opts.reps));
const databaseUrl = opts['database-url'];
const dbName = new URL(databaseUrl).pathname.replace(/^\//, '');
const adminUrl = Object.assign(new URL(databaseUrl), { pathname: '/postgres' }).toString();
const floorDbName = `${dbName}_floor`;
const floorDatabaseUrl = Object.assign(new URL(databaseUrl), { pathname: `/${floorDbName}` }).toString();

/** Issue 16's bar: the hub's rate over Orthanc's, per ingest method. */
const BARS: Record<string, number> = { 'c-store': 2, 'stow-batch50': 2, 'stow-batch1': 1.5 };
/** Concurrent associations of the C-STORE leg that stands for several modalities sending at once. */
const ASSOCIATIONS = 4;

const log = (line: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (logFile) {
        fs.writeFileSync(logFile, stdout + stderr);
      }
      resolve({ code, stdout, stderr });
    });
  });
}

async function client<T>(server: Server, args: string[]): Promise<T> {
  const [cmd, argv] = server.wrap(process.execPath, [clientScript, ...args]);
  const authorization = await server.authorization?.();
  const r = await run(cmd, argv, { ...process.env, ...(authorization ? { BENCH_AUTHORIZATION: authorization } : {}) });
  if (r.code !== 0) {
    throw new Error(`client ${args[0]} against ${server.name} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as T;
}

interface Ingest {
  method: string;
  server: string;
  /** The 1-minute load average when the measurement ended (`uptime`). */
  load: number;
  seconds: number;
  instancesPerSecond: number;
  mbPerSecond: number;
  stored: number;
  refused: number;
  /** CPU milliseconds per instance of the server's process, and of its PostgreSQL backends (the hub's). */
  cpu?: { serverMs: number; databaseMs: number | undefined };
  /** The hub's installation of the staged files after the answers (installation()). */
  installation?: { seconds: number; serverMs: number; databaseMs: number } | undefined;
  detail?: unknown;
}

interface CpuSnapshot {
  server: number;
  database: Map<number, number> | undefined;
}

/** The server's CPU so far, and its database backends' (the hub uses PostgreSQL; Orthanc its own SQLite). */
async function cpuSnapshot(server: Server): Promise<CpuSnapshot> {
  const pids = server.name === 'hub' ? await databasePids(adminUrl, dbName) : undefined;
  return { server: cpuSecondsOf(server.pid), database: pids && new Map(pids.map((pid) => [pid, cpuSecondsOf(pid)])) };
}

async function cpuSince(server: Server, before: CpuSnapshot, instances: number): Promise<Ingest['cpu']> {
  const after = await cpuSnapshot(server);
  let database: number | undefined;
  if (after.database !== undefined) {
    database = 0;
    for (const [pid, seconds] of after.database) {
      database += seconds - (before.database?.get(pid) ?? 0);
    }
  }
  return {
    serverMs: ((after.server - before.server) * 1000) / instances,
    databaseMs: database === undefined ? undefined : (database * 1000) / instances,
  };
}
interface Latency {
  medianMs: number;
  maxMs: number;
  n: number;
  items: number;
}
interface RunResult {
  ingest: Ingest[];
  latency: Record<string, Record<string, Latency>>;
  hubPeakRssKb: number;
  orthancPeakRssKb: number;
}

async function startFresh(name: 'hub' | 'orthanc'): Promise<Server> {
  if (name === 'orthanc') {
    return startOrthanc(workDir);
  }
  await resetDatabase(adminUrl, dbName);
  return startHub({ repoRoot, workDir, databaseUrl, inspect: opts['cpu-prof'] });
}

/**
 * What the hub does once ingest pauses: it installs staged instances' files
 * (storage/blob-installer.ts) and writes the ImagingStudies of the studies that got instances
 * (dicom/study-refresher.ts), whose outbox events are then relayed. The seconds from the last answer
 * until no file is left staged, no study waits for its ImagingStudy and no event for its relay, and
 * the CPU (hub and PostgreSQL, per instance) that took, which the ingest's own figures leave out.
 */
async function installation(server: Server, before: CpuSnapshot, instances: number): Promise<Ingest['installation']> {
  if (server.name !== 'hub') {
    return undefined;
  }
  const t0 = performance.now();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (;;) {
      const waiting = Number(
        (
          await client.query<{ n: string }>(
            `SELECT (SELECT count(*) FROM blob_staging) + (SELECT count(*) FROM dicom_study_refresh)
                  + (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) AS n`,
          )
        ).rows[0]?.n,
      );
      if (waiting === 0 || performance.now() - t0 > 300_000) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await client.end();
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = await cpuSince(server, before, instances);
  return { seconds, serverMs: cpu?.serverMs ?? NaN, databaseMs: cpu?.databaseMs ?? NaN };
}

async function countStored(server: Server): Promise<number> {
  return (await client<{ instances: number }>(server, ['count', server.dicomweb])).instances;
}

function ingestResult(
  corpus: Corpus,
  method: string,
  server: Server,
  seconds: number,
  stored: number,
  detail?: unknown,
): Ingest {
  const n = corpus.files.length;
  return {
    method,
    server: server.name,
    load: os.loadavg()[0] ?? NaN,
    seconds,
    instancesPerSecond: n / seconds,
    mbPerSecond: corpus.bytes / 1e6 / seconds,
    stored,
    refused: n - stored,
    detail,
  };
}

async function oneRun(corpus: Corpus, index: number, profile: string, listFile: string): Promise<RunResult> {
  const result: RunResult = { ingest: [], latency: {}, hubPeakRssKb: 0, orthancPeakRssKb: 0 };
  const peak = (server: Server): void => {
    const kb = vmHwmKb(server.pid);
    if (server.name === 'hub') {
      result.hubPeakRssKb = Math.max(result.hubPeakRssKb, kb);
    } else {
      result.orthancPeakRssKb = Math.max(result.orthancPeakRssKb, kb);
    }
  };
  for (const name of (['orthanc', 'hub'] as const).filter((server) => opts.servers.split(',').includes(server))) {
    // C-STORE, then queries on the loaded store
    let server = await startFresh(name);
    try {
      const cpuBefore = await cpuSnapshot(server);
      const t0 = performance.now();
      const r = await profiled(server, profileFile(`c-store-run${index}`), () =>
        storescuInto(server, profile, [corpus.dir], `storescu-${name}-run${index}.log`),
      );
      const seconds = (performance.now() - t0) / 1000;
      const cpu = await cpuSince(server, cpuBefore, corpus.files.length);
      const installed = await installation(server, await cpuSnapshot(server), corpus.files.length);
      const stored = await countStored(server);
      const ing = {
        ...ingestResult(corpus, 'c-store', server, seconds, stored, { storescuExit: r.code }),
        cpu,
        installation: installed,
      };
      result.ingest.push(ing);
      log(
        `run ${index} ${name} C-STORE: ${ing.instancesPerSecond.toFixed(1)} inst/s, ${ing.mbPerSecond.toFixed(2)} MB/s, stored ${stored}/${corpus.files.length} (storescu exit ${r.code}), load ${ing.load.toFixed(2)}, ${cpuText(cpu)}, VmHWM ${(vmHwmKb(server.pid) / 1024).toFixed(1)} MB${installationText(installed)}`,
      );
      const samplePatient = Math.min(5, corpus.patients);
      const q = await client<{ study: string; results: Record<string, Latency> }>(server, [
        'qido',
        server.dicomweb,
        String(reps),
        `BENCH-${String(samplePatient).padStart(2, '0')}`,
        `ACC${samplePatient}01`,
      ]);
      result.latency[name] = q.results;
      log(
        `run ${index} ${name} QIDO: ${Object.entries(q.results)
          .map(([k, v]) => `${k} ${v.medianMs.toFixed(1)} ms`)
          .join('; ')}`,
      );
      peak(server);
    } finally {
      await server.stop();
    }
    // Several modalities at once: the corpus's patients split over ASSOCIATIONS concurrent associations.
    server = await startFresh(name);
    try {
      const cpuBefore = await cpuSnapshot(server);
      const { seconds, exits } = await profiled(server, profileFile(`c-store-x${ASSOCIATIONS}-run${index}`), () =>
        storescuConcurrent(server, profile, corpus, `storescu-${name}-x${ASSOCIATIONS}-run${index}`),
      );
      const cpu = await cpuSince(server, cpuBefore, corpus.files.length);
      const installed = await installation(server, await cpuSnapshot(server), corpus.files.length);
      const stored = await countStored(server);
      const ing = {
        ...ingestResult(corpus, `c-store-x${ASSOCIATIONS}`, server, seconds, stored, { storescuExits: exits }),
        cpu,
        installation: installed,
      };
      result.ingest.push(ing);
      log(
        `run ${index} ${name} C-STORE over ${ASSOCIATIONS} associations: ${ing.instancesPerSecond.toFixed(1)} inst/s, ${ing.mbPerSecond.toFixed(2)} MB/s, stored ${stored}/${corpus.files.length} (storescu exits ${exits.join(',')}), load ${ing.load.toFixed(2)}, ${cpuText(cpu)}, VmHWM ${(vmHwmKb(server.pid) / 1024).toFixed(1)} MB${installationText(installed)}`,
      );
      peak(server);
    } finally {
      await server.stop();
    }
    for (const batch of opts['skip-batch1'] ? [50] : [50, 1]) {
      server = await startFresh(name);
      try {
        const cpuBefore = await cpuSnapshot(server);
        const s = await profiled(server, profileFile(`stow-batch${batch}-run${index}`), () =>
          client<{
            seconds: number;
            statuses: Record<string, number>;
            failedInstances: number;
            failureReasons: Record<string, number>;
          }>(server, ['stow', server.dicomweb, String(batch), listFile]),
        );
        const cpu = await cpuSince(server, cpuBefore, corpus.files.length);
        const installed = await installation(server, await cpuSnapshot(server), corpus.files.length);
        const stored = await countStored(server);
        const ing = {
          ...ingestResult(corpus, `stow-batch${batch}`, server, s.seconds, stored, s),
          cpu,
          installation: installed,
        };
        result.ingest.push(ing);
        log(
          `run ${index} ${name} STOW batch ${batch}: ${ing.instancesPerSecond.toFixed(1)} inst/s, ${ing.mbPerSecond.toFixed(2)} MB/s, stored ${stored}/${corpus.files.length}, HTTP ${JSON.stringify(s.statuses)}${s.failedInstances ? `, failed ${JSON.stringify(s.failureReasons)}` : ''}, load ${ing.load.toFixed(2)}, ${cpuText(cpu)}, VmHWM ${(vmHwmKb(server.pid) / 1024).toFixed(1)} MB${installationText(installed)}`,
        );
        peak(server);
      } finally {
        await server.stop();
      }
    }
  }
  if (!opts['skip-floor']) {
    result.ingest.push(...(await limitRuns(corpus, index, profile, listFile)));
  }
  log(
    `run ${index} peak RSS: hub ${(result.hubPeakRssKb / 1024).toFixed(1)} MB, Orthanc ${(result.orthancPeakRssKb / 1024).toFixed(1)} MB`,
  );
  return result;
}

/**
 * storescu over one association: every DICOM file under `dirs`, into the server's C-STORE SCP;
 * `verbose` logs each response (to count them).
 */
function storescuInto(
  server: Server,
  profile: string,
  dirs: string[],
  logName: string,
  verbose = false,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd, args] = server.wrap('storescu', [
    ...(verbose ? ['-v'] : []),
    '-xf',
    profile,
    'Bench',
    '-aet',
    BENCH_CALLING_AE_TITLE,
    '-aec',
    server.aeTitle,
    '+sd',
    '+r',
    '127.0.0.1',
    String(server.dimsePort),
    ...dirs,
  ]);
  return run(cmd, args, { ...process.env, TCP_NODELAY: '1' }, path.join(workDir, logName));
}

/** The corpus's patients split over ASSOCIATIONS storescu processes running at once. */
async function storescuConcurrent(
  server: Server,
  profile: string,
  corpus: Corpus,
  logPrefix: string,
): Promise<{ seconds: number; exits: (number | null)[] }> {
  const patients = fs.readdirSync(corpus.dir).sort();
  const groups = Array.from({ length: ASSOCIATIONS }, (_, g) =>
    patients.filter((_patient, i) => i % ASSOCIATIONS === g).map((patient) => path.join(corpus.dir, patient)),
  ).filter((dirs) => dirs.length > 0);
  const t0 = performance.now();
  const runs = await Promise.all(groups.map((dirs, g) => storescuInto(server, profile, dirs, `${logPrefix}-${g}.log`)));
  return { seconds: (performance.now() - t0) / 1000, exits: runs.map((one) => one.code) };
}

/** storescu over one association against a C-STORE SCP; the number of successful responses. */
async function storescu(
  server: Server,
  profile: string,
  corpus: Corpus,
  logName: string,
): Promise<{ seconds: number; code: number | null; successes: number }> {
  const t0 = performance.now();
  const r = await storescuInto(server, profile, [corpus.dir], logName, true);
  const seconds = (performance.now() - t0) / 1000;
  const successes = (r.stdout + r.stderr).split('Received Store Response (Success)').length - 1;
  return { seconds, code: r.code, successes };
}

/**
 * What this machine allows, measured in the same run: C-STORE against dcmtk's `storescp --ignore`
 * (receives, stores nothing), and C-STORE and STOW-RS against the durable floor (floor.ts).
 */
async function limitRuns(corpus: Corpus, index: number, profile: string, listFile: string): Promise<Ingest[]> {
  const out: Ingest[] = [];
  const limit = await startStorescpIgnore(workDir);
  try {
    const r = await storescu(limit, profile, corpus, `storescu-limit-run${index}.log`);
    out.push(ingestResult(corpus, 'c-store', limit, r.seconds, r.successes, { storescuExit: r.code }));
    log(
      `run ${index} limit (storescp --ignore) C-STORE: ${out.at(-1)!.instancesPerSecond.toFixed(1)} inst/s, answered ${r.successes}/${corpus.files.length}, load ${out.at(-1)!.load.toFixed(2)}`,
    );
  } finally {
    await limit.stop();
  }
  const legs: ('c-store' | 'c-store-x' | 50 | 1)[] = opts['skip-batch1']
    ? ['c-store', 'c-store-x', 50]
    : ['c-store', 'c-store-x', 50, 1];
  for (const [layout, leg] of (['wal', 'files', 'journal'] as const).flatMap((l) => legs.map((g) => [l, g] as const))) {
    await resetDatabase(adminUrl, floorDbName);
    const floor = await startFloor({ repoRoot, workDir, databaseUrl: floorDatabaseUrl, layout });
    try {
      if (leg === 'c-store') {
        const r = await storescu(floor, profile, corpus, `storescu-floor-run${index}.log`);
        out.push(ingestResult(corpus, 'c-store', floor, r.seconds, await floor.count(), { storescuExit: r.code }));
      } else if (leg === 'c-store-x') {
        const r = await storescuConcurrent(floor, profile, corpus, `storescu-floor-x${ASSOCIATIONS}-run${index}`);
        out.push(
          ingestResult(corpus, `c-store-x${ASSOCIATIONS}`, floor, r.seconds, await floor.count(), {
            storescuExits: r.exits,
          }),
        );
      } else {
        const s = await client<{ seconds: number; statuses: Record<string, number> }>(floor, [
          'stow',
          floor.dicomweb,
          String(leg),
          listFile,
        ]);
        out.push(ingestResult(corpus, `stow-batch${leg}`, floor, s.seconds, await floor.count(), s));
      }
      const ing = out.at(-1)!;
      log(
        `run ${index} durable floor (${layout}) ${ing.method}: ${ing.instancesPerSecond.toFixed(1)} inst/s, stored ${ing.stored}/${corpus.files.length}, load ${ing.load.toFixed(2)}`,
      );
    } finally {
      await floor.stop();
    }
  }
  return out;
}

const profileDir = path.join(workDir, 'profiles');

function profileFile(name: string): string {
  return path.join(profileDir, `${name}.cpuprofile`);
}

/** Prints where the hub's main thread spent each profiled measurement. */
function printProfiles(): void {
  if (!opts['cpu-prof'] || !fs.existsSync(profileDir)) {
    return;
  }
  for (const name of fs
    .readdirSync(profileDir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .sort()) {
    const summary = summarizeProfile(path.join(profileDir, name), 25);
    console.log(`\n${name}: busy ${summary.busyMs} ms, idle ${summary.idleMs} ms`);
    for (const entry of summary.byOrigin) {
      console.log(`  ${String(entry.ms).padStart(6)} ms ${String(entry.share).padStart(5)}%  ${entry.name}`);
    }
    console.log('  by function:');
    for (const entry of summary.byFunction) {
      console.log(`  ${String(entry.ms).padStart(6)} ms ${String(entry.share).padStart(5)}%  ${entry.name}`);
    }
  }
}

function installationText(installed: Ingest['installation']): string {
  return installed === undefined
    ? ''
    : `; files and ImagingStudies done ${installed.seconds.toFixed(1)} s later, CPU ms/instance ${installed.serverMs.toFixed(2)} + PostgreSQL ${installed.databaseMs.toFixed(2)}`;
}

function cpuText(cpu: Ingest['cpu']): string {
  if (cpu === undefined) {
    return '';
  }
  const database = cpu.databaseMs === undefined ? '' : ` + PostgreSQL ${cpu.databaseMs.toFixed(2)}`;
  return `CPU ms/instance ${cpu.serverMs.toFixed(2)}${database}`;
}

/** The commit measured, `+` when the working tree had changes. */
function gitCommit(): string {
  const git = (...args: string[]): string =>
    spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).stdout?.trim() ?? '';
  return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', 'src', 'bench') === '' ? '' : '+'}`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench:dicom must run as root: Orthanc is confined to a loopback-only network namespace (ip netns).');
    process.exit(2);
  }
  const missing = missingTools();
  if (missing.length > 0) {
    console.error(
      `bench:dicom installs nothing. Missing: ${missing.join('; ')}.\nInstall with: apt-get install -y orthanc orthanc-dicomweb dcmtk python3-pydicom`,
    );
    process.exit(2);
  }
  fs.mkdirSync(workDir, { recursive: true });
  fs.rmSync(profileDir, { recursive: true, force: true });
  removeSetAside(workDir);
  const patients = opts.quick ? 2 : 16;
  const corpus = buildCorpus({
    dir: path.join(workDir, opts.quick ? 'corpus-quick' : 'corpus'),
    classificationFile: path.join(repoRoot, 'test', 'support', 'dicom', 'testdata', 'pydicom-testfiles-classified.txt'),
    patients,
    studiesPerPatient: 8,
    log,
  });
  const syntaxes = new Map<string, number>();
  for (const f of corpus.files) {
    syntaxes.set(f.transferSyntaxUid, (syntaxes.get(f.transferSyntaxUid) ?? 0) + 1);
  }
  log(
    `corpus: ${corpus.files.length} instances, ${(corpus.bytes / 1e6).toFixed(2)} MB, ${patients} patients x 8 studies, ${corpus.sources.length} source files, transfer syntaxes: ${[...syntaxes].map(([ts, n]) => `${ts}=${n}`).join(' ')}`,
  );
  const profile = path.join(workDir, 'storescu-profile.cfg');
  log(`storescu profile: ${writeStorescuProfile(corpus, profile)} presentation contexts`);
  const listFile = path.join(workDir, 'corpus-files.txt');
  fs.writeFileSync(listFile, `${corpus.files.map((f) => f.path).join('\n')}\n`);

  ensureNetns();
  const results: RunResult[] = [];
  try {
    for (let i = 1; i <= runs; i += 1) {
      results.push(await oneRun(corpus, i, profile, listFile));
    }
  } finally {
    removeNetns();
    removeSetAside(workDir);
  }

  // medians over runs
  const methods = [...new Set(results.flatMap((r) => r.ingest.map((x) => x.method)))];
  const rows: string[] = [];
  const summary: Record<string, unknown> = {};
  const pad = (s: string, n: number): string => s.padEnd(n);
  const rate = (value: number): string => (Number.isNaN(value) ? '-' : value.toFixed(1));
  const times = (value: number): string => (Number.isNaN(value) ? '-' : `${value.toFixed(2)}x`);
  rows.push(
    `${pad(`ingest, inst/s (median of ${runs})`, 28)}${pad('hub', 9)}${pad('Orthanc', 9)}${pad('hub/Orthanc', 13)}${pad('bar', 15)}${pad('WAL floor (/Orthanc)', 23)}${pad('file floor (/Orthanc)', 24)}${pad('journal floor (/Orthanc)', 27)}${pad('no-store', 10)}${pad('load', 11)}refused hub/Orthanc`,
  );
  for (const m of methods) {
    const get = (server: string): Ingest[] =>
      results.flatMap((r) => r.ingest.filter((x) => x.method === m && x.server === server));
    const h = get('hub');
    const o = get('orthanc');
    const hi = median(h.map((x) => x.instancesPerSecond));
    const oi = median(o.map((x) => x.instancesPerSecond));
    const hm = median(h.map((x) => x.mbPerSecond));
    const om = median(o.map((x) => x.mbPerSecond));
    const hr = Math.max(...h.map((x) => x.refused));
    const or = Math.max(...o.map((x) => x.refused));
    const wal = median(get('floor-wal').map((x) => x.instancesPerSecond));
    const files = median(get('floor').map((x) => x.instancesPerSecond));
    const journal = median(get('floor-journal').map((x) => x.instancesPerSecond));
    const noStore = median(get('limit').map((x) => x.instancesPerSecond));
    const loads = [...h, ...o].map((x) => x.load);
    const bar = BARS[m];
    const ratio = hi / oi;
    summary[m] = {
      hubInstancesPerSecond: hi,
      hubMbPerSecond: hm,
      orthancInstancesPerSecond: oi,
      orthancMbPerSecond: om,
      ratio,
      bar,
      barMet: bar === undefined ? undefined : ratio >= bar,
      walFloorInstancesPerSecond: Number.isNaN(wal) ? undefined : wal,
      walFloorOverOrthanc: Number.isNaN(wal) ? undefined : wal / oi,
      fileFloorInstancesPerSecond: Number.isNaN(files) ? undefined : files,
      fileFloorOverOrthanc: Number.isNaN(files) ? undefined : files / oi,
      journalFloorInstancesPerSecond: Number.isNaN(journal) ? undefined : journal,
      journalFloorOverOrthanc: Number.isNaN(journal) ? undefined : journal / oi,
      limitInstancesPerSecond: Number.isNaN(noStore) ? undefined : noStore,
      loadAverage: { min: Math.min(...loads), max: Math.max(...loads) },
      hubRefusedMax: hr,
      orthancRefusedMax: or,
    };
    const barText = bar === undefined ? '' : `>=${bar}x ${ratio >= bar ? 'met' : 'missed'}`;
    rows.push(
      `${pad(m, 28)}${pad(rate(hi), 9)}${pad(rate(oi), 9)}${pad(times(ratio), 13)}${pad(barText, 15)}${pad(`${rate(wal)} (${times(wal / oi)})`, 23)}${pad(`${rate(files)} (${times(files / oi)})`, 24)}${pad(`${rate(journal)} (${times(journal / oi)})`, 27)}${pad(rate(noStore), 10)}${pad(`${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`, 11)}${hr}/${or}`,
    );
  }
  if (!opts['skip-floor']) {
    rows.push(
      "WAL floor: each instance's bytes in its one committed row (one WAL flush per acknowledgement), nothing else.",
      'file floor: a synced temp file renamed to its SHA-256, its directory synced, one committed row: 3 flushes.',
      "journal floor: the bytes and row values in an O_DSYNC append to a journal file of our own, beside the row's asynchronous commit (not the hub's layout).",
      'no-store: dcmtk storescp --ignore. A ratio above its floor cannot be met by a server with that layout.',
      'load: the 1-minute load average (uptime) when each hub and Orthanc measurement ended, lowest-highest.',
    );
  }
  rows.push(
    '',
    `${pad('CPU ms per instance (median)', 28)}${pad('hub', 9)}${pad('hub PostgreSQL', 16)}${pad('Orthanc', 9)}then files and ImagingStudies: s, hub, PostgreSQL`,
  );
  for (const m of methods) {
    const get = (server: string): Ingest[] =>
      results.flatMap((r) => r.ingest.filter((x) => x.method === m && x.server === server && x.cpu !== undefined));
    const hub = get('hub');
    const hubCpu = median(hub.map((x) => x.cpu!.serverMs));
    const hubDb = median(hub.map((x) => x.cpu!.databaseMs ?? NaN));
    const orthancCpu = median(get('orthanc').map((x) => x.cpu!.serverMs));
    const installs = hub.flatMap((x) => (x.installation ? [x.installation] : []));
    const installSeconds = median(installs.map((x) => x.seconds));
    const installHub = median(installs.map((x) => x.serverMs));
    const installDb = median(installs.map((x) => x.databaseMs));
    Object.assign(summary[m] as object, {
      cpuMsPerInstance: { hub: hubCpu, hubPostgres: hubDb, orthanc: orthancCpu },
      installation: { seconds: installSeconds, hubCpuMsPerInstance: installHub, postgresCpuMsPerInstance: installDb },
    });
    rows.push(
      `${pad(m, 28)}${pad(hubCpu.toFixed(2), 9)}${pad(hubDb.toFixed(2), 16)}${pad(orthancCpu.toFixed(2), 9)}${installSeconds.toFixed(1)} s, ${installHub.toFixed(2)}, ${installDb.toFixed(2)}`,
    );
  }
  rows.push('');
  rows.push(`${pad('latency (median ms)', 26)}${pad('hub', 12)}${pad('Orthanc', 12)}hub/Orthanc`);
  const queries = Object.keys(results[0]?.latency.hub ?? {});
  for (const q of queries) {
    const hv = median(results.map((r) => r.latency.hub?.[q]?.medianMs ?? NaN));
    const ov = median(results.map((r) => r.latency.orthanc?.[q]?.medianMs ?? NaN));
    const items = `${results[0]?.latency.hub?.[q]?.items}/${results[0]?.latency.orthanc?.[q]?.items}`;
    summary[q] = { hubMedianMs: hv, orthancMedianMs: ov, ratio: hv / ov, itemsHubOrthanc: items };
    rows.push(
      `${pad(q, 26)}${pad(hv.toFixed(1), 12)}${pad(ov.toFixed(1), 12)}${pad(`${(hv / ov).toFixed(2)}x`, 8)}${hv < ov ? 'faster' : 'SLOWER'}   (items ${items})`,
    );
  }
  const hubPeak = Math.max(...results.map((r) => r.hubPeakRssKb)) / 1024;
  const orthancPeak = Math.max(...results.map((r) => r.orthancPeakRssKb)) / 1024;
  summary.peakRssMb = { hub: hubPeak, orthanc: orthancPeak };
  rows.push('', `peak RSS (VmHWM, max over runs): hub ${hubPeak.toFixed(1)} MB, Orthanc ${orthancPeak.toFixed(1)} MB`);
  printProfiles();
  console.log(`\n${rows.join('\n')}`);
  fs.writeFileSync(
    resultsFile,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        commit: gitCommit(),
        runs,
        reps,
        corpus: {
          instances: corpus.files.length,
          bytes: corpus.bytes,
          patients,
          studiesPerPatient: 8,
          transferSyntaxes: Object.fromEntries(syntaxes),
          sources: corpus.sources,
        },
        summary,
        runsDetail: results,
      },
      null,
      2,
    ),
  );
  log(`wrote ${resultsFile}`);
}

await main();
