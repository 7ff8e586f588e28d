/**
 * DICOM ingest and query benchmark: the hub against Orthanc (Debian's `orthanc` + `orthanc-dicomweb`)
 * on the same corpus in one run. See `npm run bench:dicom -- --help`.
 *
 * Each run, for each server, from an empty store: C-STORE of the whole corpus with dcmtk `storescu`
 * over one association (TCP_NODELAY=1 on both sides), then QIDO-RS / WADO-RS metadata latencies;
 * then, from an empty store again, STOW-RS in batches of 50; then STOW-RS one instance per request.
 * Results (medians over runs) go to bench/.work/dicom-results.json.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCorpus, writeStorescuProfile } from './dicom/corpus.ts';
import type { Corpus } from './dicom/corpus.ts';
import {
  ensureNetns,
  missingTools,
  removeNetns,
  removeSetAside,
  resetDatabase,
  startFloor,
  startHub,
  startOrthanc,
  startStorescpIgnore,
  vmHwmKb,
} from './dicom/servers.ts';
import type { Server } from './dicom/servers.ts';
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
  --skip-floor    leave out the machine's limits: dcmtk storescp --ignore (C-STORE that stores
                  nothing) and the durable floor (bench/dicom/floor.ts: the hub's synced blob and
                  one committed row per instance, nothing else)
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
  const r = await run(cmd, argv, process.env);
  if (r.code !== 0) {
    throw new Error(`client ${args[0]} against ${server.name} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as T;
}

interface Ingest {
  method: string;
  server: string;
  seconds: number;
  instancesPerSecond: number;
  mbPerSecond: number;
  stored: number;
  refused: number;
  detail?: unknown;
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
  return startHub({ repoRoot, workDir, databaseUrl });
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
  for (const name of ['orthanc', 'hub'] as const) {
    // C-STORE, then queries on the loaded store
    let server = await startFresh(name);
    try {
      const [cmd, args] = server.wrap('storescu', [
        '-xf',
        profile,
        'Bench',
        '-aet',
        'BENCHSCU',
        '-aec',
        server.aeTitle,
        '+sd',
        '+r',
        '127.0.0.1',
        String(server.dimsePort),
        corpus.dir,
      ]);
      const t0 = performance.now();
      const r = await run(
        cmd,
        args,
        { ...process.env, TCP_NODELAY: '1' },
        path.join(workDir, `storescu-${name}-run${index}.log`),
      );
      const seconds = (performance.now() - t0) / 1000;
      const stored = await countStored(server);
      const ing = ingestResult(corpus, 'c-store', server, seconds, stored, { storescuExit: r.code });
      result.ingest.push(ing);
      log(
        `run ${index} ${name} C-STORE: ${ing.instancesPerSecond.toFixed(1)} inst/s, ${ing.mbPerSecond.toFixed(2)} MB/s, stored ${stored}/${corpus.files.length} (storescu exit ${r.code})`,
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
    for (const batch of opts['skip-batch1'] ? [50] : [50, 1]) {
      server = await startFresh(name);
      try {
        const s = await client<{
          seconds: number;
          statuses: Record<string, number>;
          failedInstances: number;
          failureReasons: Record<string, number>;
        }>(server, ['stow', server.dicomweb, String(batch), listFile]);
        const stored = await countStored(server);
        const ing = ingestResult(corpus, `stow-batch${batch}`, server, s.seconds, stored, s);
        result.ingest.push(ing);
        log(
          `run ${index} ${name} STOW batch ${batch}: ${ing.instancesPerSecond.toFixed(1)} inst/s, ${ing.mbPerSecond.toFixed(2)} MB/s, stored ${stored}/${corpus.files.length}, HTTP ${JSON.stringify(s.statuses)}${s.failedInstances ? `, failed ${JSON.stringify(s.failureReasons)}` : ''}`,
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

/** storescu over one association against a C-STORE SCP; the number of successful responses. */
async function storescu(
  server: Server,
  profile: string,
  corpus: Corpus,
  logName: string,
): Promise<{ seconds: number; code: number | null; successes: number }> {
  const [cmd, args] = server.wrap('storescu', [
    '-v',
    '-xf',
    profile,
    'Bench',
    '-aet',
    'BENCHSCU',
    '-aec',
    server.aeTitle,
    '+sd',
    '+r',
    '127.0.0.1',
    String(server.dimsePort),
    corpus.dir,
  ]);
  const t0 = performance.now();
  const r = await run(cmd, args, { ...process.env, TCP_NODELAY: '1' }, path.join(workDir, logName));
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
      `run ${index} limit (storescp --ignore) C-STORE: ${out.at(-1)!.instancesPerSecond.toFixed(1)} inst/s, answered ${r.successes}/${corpus.files.length}`,
    );
  } finally {
    await limit.stop();
  }
  const legs: ('c-store' | 50 | 1)[] = opts['skip-batch1'] ? ['c-store', 50] : ['c-store', 50, 1];
  for (const leg of legs) {
    await resetDatabase(adminUrl, floorDbName);
    const floor = await startFloor({ repoRoot, workDir, databaseUrl: floorDatabaseUrl });
    try {
      if (leg === 'c-store') {
        const r = await storescu(floor, profile, corpus, `storescu-floor-run${index}.log`);
        out.push(ingestResult(corpus, 'c-store', floor, r.seconds, await floor.count(), { storescuExit: r.code }));
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
        `run ${index} durable floor ${ing.method}: ${ing.instancesPerSecond.toFixed(1)} inst/s, stored ${ing.stored}/${corpus.files.length}`,
      );
    } finally {
      await floor.stop();
    }
  }
  return out;
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
  rows.push(
    `${pad('ingest (median of ' + runs + ')', 26)}${pad('hub inst/s', 12)}${pad('hub MB/s', 10)}${pad('Orthanc inst/s', 16)}${pad('Orthanc MB/s', 14)}${pad('hub/Orthanc', 12)}refused hub/Orthanc`,
  );
  const limitRows: string[] = [];
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
    summary[m] = {
      hubInstancesPerSecond: hi,
      hubMbPerSecond: hm,
      orthancInstancesPerSecond: oi,
      orthancMbPerSecond: om,
      ratio: hi / oi,
      hubRefusedMax: hr,
      orthancRefusedMax: or,
    };
    rows.push(
      `${pad(m, 26)}${pad(hi.toFixed(1), 12)}${pad(hm.toFixed(2), 10)}${pad(oi.toFixed(1), 16)}${pad(om.toFixed(2), 14)}${pad((hi / oi).toFixed(2) + 'x', 12)}${hr}/${or}`,
    );
    const floor = get('floor');
    if (floor.length > 0) {
      const fi = median(floor.map((x) => x.instancesPerSecond));
      const li = median(get('limit').map((x) => x.instancesPerSecond));
      Object.assign(summary[m] as object, {
        floorInstancesPerSecond: fi,
        limitInstancesPerSecond: Number.isNaN(li) ? undefined : li,
        floorOverOrthanc: fi / oi,
        hubOverFloor: hi / fi,
      });
      limitRows.push(
        `${pad(m, 26)}${pad(Number.isNaN(li) ? '-' : li.toFixed(1), 18)}${pad(fi.toFixed(1), 18)}${pad((fi / oi).toFixed(2) + 'x', 16)}${pad((hi / fi).toFixed(2) + 'x', 12)}${Math.max(...floor.map((x) => x.refused))}`,
      );
    }
  }
  if (limitRows.length > 0) {
    rows.push(
      '',
      `${pad('machine limits (median)', 26)}${pad('no-store inst/s', 18)}${pad('durable floor', 18)}${pad('floor/Orthanc', 16)}${pad('hub/floor', 12)}floor refused`,
      ...limitRows,
    );
    rows.push(
      'no-store: dcmtk storescp --ignore. durable floor: synced blob + one committed row per instance, nothing else;',
    );
    rows.push('a target above the floor cannot be met by any server that acknowledges only durable instances.');
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
      `${pad(q, 26)}${pad(hv.toFixed(1), 12)}${pad(ov.toFixed(1), 12)}${(hv / ov).toFixed(2)}x   (items ${items})`,
    );
  }
  const hubPeak = Math.max(...results.map((r) => r.hubPeakRssKb)) / 1024;
  const orthancPeak = Math.max(...results.map((r) => r.orthancPeakRssKb)) / 1024;
  summary.peakRssMb = { hub: hubPeak, orthanc: orthancPeak };
  rows.push('', `peak RSS (VmHWM, max over runs): hub ${hubPeak.toFixed(1)} MB, Orthanc ${orthancPeak.toFixed(1)} MB`);
  console.log(`\n${rows.join('\n')}`);
  fs.writeFileSync(
    resultsFile,
    JSON.stringify(
      {
        date: new Date().toISOString(),
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
