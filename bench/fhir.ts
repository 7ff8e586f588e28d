/**
 * The FHIR benchmark (`npm run bench:fhir -- --help`): loads 100,000 resources into a PostgreSQL
 * database of its own (kept between runs), starts the hub as a child process, and measures reads,
 * creates, token and reference searches at 16 concurrent clients, the latency of 50-entry transaction
 * bundles, and a no-op route as the machine's limit. Prints medians over several runs and writes
 * bench/.work/fhir-results.json. Every request is authenticated as a SMART Backend Services client
 * (fhir/auth.ts). With --audit-compare it measures what AuditEvents cost instead (fhir/audit-compare.ts),
 * with --person-compare what a referring physician's token costs against the client's
 * (fhir/person-compare.ts).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DATASET_VERSION, datasetShape } from './fhir/dataset.ts';
import {
  appliedMigrations,
  busiestReferringPhysician,
  countByType,
  currentMaxSeq,
  databaseUrl,
  loadedIds,
  pendingOutboxEvents,
  readDatabaseState,
  recreateDatabase,
  resetToDataset,
  serverVersion,
  vacuumAnalyze,
  waitForOutboxDrained,
  writeMarker,
} from './fhir/database.ts';
import type { DatasetMarker } from './fhir/database.ts';
import { runAuditCompare } from './fhir/audit-compare.ts';
import { TokenSource, registerBenchClient } from './fhir/auth.ts';
import { PersonTokenSource, registerBenchPerson } from './fhir/person.ts';
import { runPersonCompare } from './fhir/person-compare.ts';
import type { CpuShares } from './fhir/cpu.ts';
import { startHubProcess } from './fhir/hub-process.ts';
import type { HubProcess, HubProcessOptions } from './fhir/hub-process.ts';
import {
  EMBEDDED_DEFAULT_RESOURCES,
  createEmbeddedDataset,
  datasetDir,
  finishEmbeddedDataset,
  pendingOutbox,
  prepareEmbeddedRun,
  readEmbeddedMarker,
  waitForQueuesIdle,
} from './fhir/embedded.ts';
import { loadDataset } from './fhir/load.ts';
import { newestProfile, summarizeProfile } from './fhir/profile.ts';
import type { ProfileSummary } from './fhir/profile.ts';
import { clearQueuePrefix, pendingJobs } from './fhir/queues.ts';
import { maxOf, median, minOf } from './fhir/stats.ts';
import { CASE_WORKLOAD_NAMES, buildWorkloads, measureTransactions, measureWorkload } from './fhir/workloads.ts';
import type { TransactionResult, WorkloadResult } from './fhir/workloads.ts';

const HELP = `Usage: npm run bench:fhir -- [options]

  --runs N              measurement rounds; medians are reported (default 3)
  --rebuild             drop the bench database and load the data set again
  --resources N         size of the data set (default 100000)
  --connections N       concurrent clients of each workload (default 16)
  --duration S          measured seconds per workload (default 10)
  --warmup S            unmeasured seconds before each workload (default 3)
  --transactions N      measured 50-entry transaction bundles per round (default 20)
  --only a,b            run only these workloads (noop, read, create, search-token-code,
                        search-token-task, search-ref-subject, search-ref-focus, transaction)
  --database NAME       bench database (default hub_bench)
  --load-concurrency N  transaction bundles in flight while loading (default 4)
  --cpu-prof            write a V8 CPU profile of the hub to bench/.work/profiles/
  --audit-compare       run the workloads (default: read, search-ref-subject, search-token-code,
                        create) against a hub with AUDIT_ENABLED=false and one with true, the
                        measured time cut into slices that alternate between the two hubs;
                        prints medians and the on/off ratios
  --person-compare      the same reads and searches, all of one referring physician's cases
                        (default: read-patient, read-service-request, search-task-based-on,
                        search-document-patient), with the physician's token and with the system
                        client's, the measured time cut into slices that alternate between the two
                        on one hub; prints both, the person/system ratios and whether they reach 0.85
  --slice S             seconds per slice of --audit-compare and --person-compare (default 2)
  --embedded            the hub on its embedded database (PGlite, no DATABASE_URL) instead of
                        PostgreSQL: the data set (default 10000 resources) is loaded once into
                        bench/.work/embedded/<resources>/ and each run starts a hub on a fresh copy
  --help

Every request carries a SMART Backend Services token of the system client bench-fhir (registered
in the bench database with a key made for each bench process). With --person-compare, half of them
carry instead the token of a referring physician (role referring-physician, fhirUser the Practitioner
who requested the most of the data set's ServiceRequests), registered in the bench database with a
password made for each bench process and signed in through /oauth2/authorize with PKCE, again
before each token's 10 minutes run out.

Environment: BENCH_ADMIN_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (default redis://127.0.0.1:6379); hub variables such as DATABASE_POOL_SIZE pass through.`;

const WORKLOAD_NAMES = [
  'noop',
  'read',
  'search-token-code',
  'search-token-task',
  'search-ref-subject',
  'search-ref-focus',
  'create',
  'transaction',
] as const;
type WorkloadName = (typeof WORKLOAD_NAMES)[number];
/** Issue 3: reads, searches and creates, each with and without AuditEvents. */
const AUDIT_COMPARE_WORKLOADS: readonly WorkloadName[] = ['read', 'search-ref-subject', 'search-token-code', 'create'];

interface Target {
  metric: 'rps' | 'p95';
  atLeast?: number;
  atMost?: number;
}

/** The product issue's targets. */
const TARGETS: Partial<Record<WorkloadName, Target>> = {
  read: { metric: 'rps', atLeast: 1500 },
  create: { metric: 'rps', atLeast: 400 },
  'search-token-code': { metric: 'p95', atMost: 25 },
  'search-token-task': { metric: 'p95', atMost: 25 },
  'search-ref-subject': { metric: 'p95', atMost: 25 },
  'search-ref-focus': { metric: 'p95', atMost: 25 },
  transaction: { metric: 'p95', atMost: 150 },
};

/** A mistake in how the bench was called: reported without a stack trace. */
class UsageError extends Error {}

const TRANSACTION_ENTRIES = 50;
const TRANSACTION_WARMUP = 3;
const QUEUE_PREFIX = 'hub-bench';
const SEED = 20240601;

function positiveInt(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) {
    return fallback;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new UsageError(`--${name} must be a positive integer`);
  }
  return n;
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      rebuild: { type: 'boolean', default: false },
      resources: { type: 'string' },
      connections: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      transactions: { type: 'string' },
      only: { type: 'string' },
      database: { type: 'string' },
      'load-concurrency': { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'audit-compare': { type: 'boolean', default: false },
      'person-compare': { type: 'boolean', default: false },
      slice: { type: 'string' },
      embedded: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values['audit-compare'] && values['person-compare']) {
    throw new UsageError('--audit-compare and --person-compare are separate runs: pass one of them');
  }
  if (values.embedded && (values['audit-compare'] || values['person-compare'] || values.database)) {
    throw new UsageError(
      '--embedded runs the plain workloads on PGlite: without --audit-compare, --person-compare or --database',
    );
  }
  const known: readonly string[] = values['person-compare'] ? CASE_WORKLOAD_NAMES : WORKLOAD_NAMES;
  const defaults = values['person-compare']
    ? CASE_WORKLOAD_NAMES
    : values['audit-compare']
      ? AUDIT_COMPARE_WORKLOADS
      : WORKLOAD_NAMES;
  const only = values.only?.split(',').map((name) => name.trim()) ?? [...defaults];
  const unknown = only.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new UsageError(
      `Unknown workload(s) in --only: ${unknown.join(', ')}${values['person-compare'] ? ` (with --person-compare: ${known.join(', ')})` : ''}`,
    );
  }
  const database = values.database ?? 'hub_bench';
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) {
    throw new UsageError(`--database must be lower-case letters, digits and _ (got "${database}")`);
  }
  return {
    help: values.help,
    runs: positiveInt(values.runs, 3, 'runs'),
    rebuild: values.rebuild,
    resources: positiveInt(values.resources, values.embedded ? EMBEDDED_DEFAULT_RESOURCES : 100_000, 'resources'),
    connections: positiveInt(values.connections, 16, 'connections'),
    duration: positiveInt(values.duration, 10, 'duration'),
    warmup: positiveInt(values.warmup, 3, 'warmup'),
    transactions: positiveInt(values.transactions, 20, 'transactions'),
    /** Names of WORKLOAD_NAMES, or of CASE_WORKLOAD_NAMES with --person-compare. */
    only: new Set(only),
    database,
    loadConcurrency: positiveInt(values['load-concurrency'], 4, 'load-concurrency'),
    cpuProfile: values['cpu-prof'],
    auditCompare: values['audit-compare'],
    personCompare: values['person-compare'],
    slice: positiveInt(values.slice, 2, 'slice'),
    embedded: values.embedded,
  };
}
type BenchOptions = ReturnType<typeof parseOptions>;

interface RunResult {
  run: number;
  loadAverage: number[];
  workloads: Partial<Record<WorkloadName, WorkloadResult>>;
  /** CPU cores used by the hub, PostgreSQL, the load generator and the rest during each measurement. */
  cpu: Partial<Record<WorkloadName, CpuShares>>;
  transaction?: TransactionResult;
}

interface SummaryRow {
  metric: string;
  unit: 'req/s' | 'ms';
  median: number;
  min: number;
  max: number;
  target?: string;
  met?: boolean;
  /** Median over runs of this workload's throughput divided by the no-op route's in the same run. */
  ratioToNoop?: number;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const workDir = path.join(repoRoot, 'bench', '.work');
const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function gitDescription(): string {
  try {
    const git = (...args: string[]): string =>
      execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain') !== '';
    return dirty ? `${commit} (with uncommitted changes)` : commit;
  } catch {
    return 'unknown';
  }
}

/** Makes sure the bench database holds the data set (loading it when needed); returns its marker. */
async function prepareDataset(
  options: BenchOptions,
  adminUrl: string,
  url: string,
): Promise<{ marker: DatasetMarker | undefined; reused: boolean }> {
  const current = await readDatabaseState(adminUrl, options.database);
  if (current.state === 'foreign' && !options.rebuild) {
    throw new UsageError(
      `Database ${options.database} exists but bench:fhir did not create it; pass --rebuild to replace it, or --database NAME to use another`,
    );
  }
  if (current.state === 'loaded' && !options.rebuild) {
    const existing = current.marker;
    if (existing.version === DATASET_VERSION && existing.resources === options.resources && existing.seed === SEED) {
      const removed = await resetToDataset(url, existing.maxSeq);
      log(
        `Reusing database ${options.database}: ${existing.resources} resources loaded ${existing.loadedAt}` +
          (removed ? `; removed ${removed} left by earlier runs` : ''),
      );
      return { marker: existing, reused: true };
    }
  }
  const why = options.rebuild
    ? '--rebuild'
    : current.state === 'absent'
      ? 'it does not exist'
      : current.state === 'loading'
        ? 'an earlier load did not finish'
        : 'it holds another data set (size or version)';
  log(`Creating database ${options.database} (${why})`);
  await recreateDatabase(adminUrl, options.database);
  return { marker: undefined, reused: false };
}

/** How long the bench waits for the hub's workers to finish with a loaded data set before it goes on without them. */
const WORKFLOW_TIMEOUT_MS = 30 * 60_000;

/**
 * Waits until the hub has relayed every outbox event and its workers have no job waiting or running
 * (seen twice, a second apart): the case workflow the load started (an intake per active
 * ServiceRequest, …) has written what it writes. False when it was still busy after the timeout.
 */
async function waitForWorkflowIdle(url: string, redisUrl: string): Promise<boolean> {
  const started = Date.now();
  let lastReport = started;
  let idleSeen = 0;
  while (idleSeen < 2) {
    await waitForOutboxDrained(url);
    const jobs = await pendingJobs(redisUrl, QUEUE_PREFIX);
    const idle = jobs === 0 && (await pendingOutboxEvents(url)) === 0;
    idleSeen = idle ? idleSeen + 1 : 0;
    if (Date.now() - started > WORKFLOW_TIMEOUT_MS) {
      return false;
    }
    if (!idle && Date.now() - lastReport >= 15_000) {
      lastReport = Date.now();
      log(`  the hub's workers have ${jobs} job(s) waiting or running`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  return true;
}

async function loadInto(
  hub: HubProcess,
  tokens: TokenSource,
  options: BenchOptions,
  adminUrl: string,
  url: string,
  redisUrl: string,
): Promise<DatasetMarker> {
  const shape = datasetShape(options.resources);
  log(
    `Loading ${shape.total} resources through POST /fhir transaction bundles (${options.loadConcurrency} in flight): ` +
      `${shape.patients} Patient, ${shape.observations} Observation, ${shape.serviceRequests} ServiceRequest, ` +
      `${shape.tasks} Task, ${shape.documentReferences} DocumentReference, ${shape.practitioners} Practitioner`,
  );
  let lastReport = 0;
  const report = await loadDataset({
    fhirBase: `${hub.url}/fhir`,
    resources: options.resources,
    seed: SEED,
    patientsPerBundle: 20,
    concurrency: options.loadConcurrency,
    authorization: () => tokens.authorization(),
    onProgress: (loaded, total) => {
      if (loaded - lastReport >= total / 10 || loaded === total) {
        lastReport = loaded;
        log(`  ${loaded} / ${total}`);
      }
    },
  });
  log(
    `Loaded in ${report.seconds.toFixed(1)} s (${Math.round(report.resourcesPerSecond)} resources/s, ${report.bundles} bundles)`,
  );
  // What the workers write for the loaded cases belongs to the data set, and no run should measure beside them.
  log("Waiting for the hub's workers to finish the case workflow the load started");
  const workflowStarted = performance.now();
  if (await waitForWorkflowIdle(url, redisUrl)) {
    log(`  done in ${((performance.now() - workflowStarted) / 1000).toFixed(1)} s`);
  } else {
    log(
      `  still busy after ${WORKFLOW_TIMEOUT_MS / 60_000} minutes: going on (what they write later is removed before each run)`,
    );
  }
  await vacuumAnalyze(url);
  const marker: DatasetMarker = {
    dataset: 'fhir-bench',
    version: DATASET_VERSION,
    resources: options.resources,
    seed: SEED,
    maxSeq: await currentMaxSeq(url),
    loadedAt: new Date().toISOString(),
    loadSeconds: Math.round(report.seconds * 10) / 10,
    migrations: await appliedMigrations(url),
  };
  await writeMarker(adminUrl, options.database, marker);
  return marker;
}

function summarize(runs: RunResult[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const collect = (pick: (run: RunResult) => number | undefined): number[] =>
    runs.map(pick).filter((value): value is number => value !== undefined && Number.isFinite(value));
  const targetText = (target: Target): string =>
    target.atLeast !== undefined ? `≥ ${target.atLeast.toLocaleString('en-US')}/s` : `p95 ≤ ${target.atMost} ms`;
  const judge = (target: Target | undefined, value: number): boolean | undefined =>
    target === undefined
      ? undefined
      : target.atLeast !== undefined
        ? value >= target.atLeast
        : value <= (target.atMost ?? Infinity);

  for (const name of WORKLOAD_NAMES.filter((n) => n !== 'transaction')) {
    const rps = collect((run) => run.workloads[name]?.rps);
    if (rps.length === 0) {
      continue;
    }
    const target = TARGETS[name];
    const ratios = collect((run) => {
      const noop = run.workloads.noop?.rps;
      const own = run.workloads[name]?.rps;
      return noop && own !== undefined ? own / noop : undefined;
    });
    const rpsRow: SummaryRow = {
      metric: `${name} throughput`,
      unit: 'req/s',
      median: median(rps),
      min: minOf(rps),
      max: maxOf(rps),
    };
    if (ratios.length > 0) {
      rpsRow.ratioToNoop = median(ratios);
    }
    if (target?.metric === 'rps') {
      rpsRow.target = targetText(target);
      rpsRow.met = judge(target, rpsRow.median);
    }
    rows.push(rpsRow);
    for (const p of ['p50', 'p95', 'p99'] as const) {
      const values = collect((run) => run.workloads[name]?.[p]);
      const row: SummaryRow = {
        metric: `${name} ${p}`,
        unit: 'ms',
        median: median(values),
        min: minOf(values),
        max: maxOf(values),
      };
      if (target?.metric === 'p95' && p === 'p95') {
        row.target = targetText(target);
        row.met = judge(target, row.median);
      }
      rows.push(row);
    }
  }
  for (const p of ['p50', 'p95'] as const) {
    const values = collect((run) => run.transaction?.[p]);
    if (values.length === 0) {
      continue;
    }
    const target = TARGETS.transaction;
    const row: SummaryRow = {
      metric: `transaction(${TRANSACTION_ENTRIES}) ${p}`,
      unit: 'ms',
      median: median(values),
      min: minOf(values),
      max: maxOf(values),
    };
    if (target && p === 'p95') {
      row.target = targetText(target);
      row.met = judge(target, row.median);
    }
    rows.push(row);
  }
  return rows;
}

function formatNumber(value: number, unit: 'req/s' | 'ms'): string {
  if (!Number.isFinite(value)) {
    return '—';
  }
  return unit === 'req/s'
    ? Math.round(value).toLocaleString('en-US')
    : value < 10
      ? value.toFixed(2)
      : value.toFixed(1);
}

function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function printSummary(rows: SummaryRow[], runs: number): void {
  const byMetric = new Map(rows.map((row) => [row.metric, row]));
  const medianLines: string[][] = [];
  for (const name of WORKLOAD_NAMES.filter((n) => n !== 'transaction')) {
    const rps = byMetric.get(`${name} throughput`);
    if (rps) {
      const p = (q: string): string => formatNumber(byMetric.get(`${name} ${q}`)?.median ?? Number.NaN, 'ms');
      medianLines.push([name, formatNumber(rps.median, 'req/s'), p('p50'), p('p95'), p('p99')]);
    }
  }
  const tx50 = byMetric.get(`transaction(${TRANSACTION_ENTRIES}) p50`);
  const tx95 = byMetric.get(`transaction(${TRANSACTION_ENTRIES}) p95`);
  if (tx50 && tx95) {
    medianLines.push([
      `transaction(${TRANSACTION_ENTRIES}), sequential`,
      '—',
      formatNumber(tx50.median, 'ms'),
      formatNumber(tx95.median, 'ms'),
      '—',
    ]);
  }
  log(`\nMEDIANS over ${runs} run(s)`);
  log(table(['workload', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms'], medianLines, new Set([1, 2, 3, 4])));

  const headline = rows.filter((row) => row.unit === 'req/s' || row.target !== undefined);
  log('');
  log(
    table(
      ['metric', 'median', 'min', 'max', 'target', 'ratio to no-op'],
      headline.map((row) => [
        `${row.metric} (${row.unit})`,
        formatNumber(row.median, row.unit),
        formatNumber(row.min, row.unit),
        formatNumber(row.max, row.unit),
        row.target ? `${row.target} ${row.met ? 'met' : 'MISSED'}` : '',
        row.ratioToNoop === undefined ? '' : row.ratioToNoop.toFixed(row.ratioToNoop < 0.1 ? 3 : 2),
      ]),
      new Set([1, 2, 3, 5]),
    ),
  );
}

/** One round of the workloads against a running hub. */
async function measureRun(
  hub: HubProcess,
  run: number,
  options: BenchOptions,
  context: {
    targets: ReturnType<typeof runTargets>;
    /** The PostgreSQL database whose backends count as the database's CPU (none match on PGlite). */
    database: string;
    authorization: () => Promise<string>;
    interrupted: () => boolean;
  },
): Promise<RunResult> {
  const { targets, authorization, interrupted } = context;
  const result: RunResult = { run, loadAverage: os.loadavg(), workloads: {}, cpu: {} };
  log(`\nRun ${run}/${options.runs} (load average ${result.loadAverage.map((n) => n.toFixed(2)).join(' ')})`);
  const workloads = buildWorkloads(targets, SEED + run);
  for (const workload of workloads) {
    if (!options.only.has(workload.name) || interrupted()) {
      continue;
    }
    const { result: measured, cpu } = await measureWorkload(hub, workload, {
      connections: options.connections,
      warmup: options.warmup,
      seconds: options.duration,
      database: context.database,
      authorization,
    });
    result.workloads[workload.name as WorkloadName] = measured;
    if (cpu) {
      result.cpu[workload.name as WorkloadName] = cpu;
    }
    const problems = measured.non2xx + measured.errors + measured.timeouts;
    log(
      `  ${workload.name.padEnd(19)} ${formatNumber(measured.rps, 'req/s').padStart(7)} req/s  ` +
        `p50 ${formatNumber(measured.p50, 'ms')}  p95 ${formatNumber(measured.p95, 'ms')}  p99 ${formatNumber(measured.p99, 'ms')} ms` +
        (cpu ? `  [cores: hub ${cpu.hub} pg ${cpu.postgres} gen ${cpu.loadGenerator} other ${cpu.other}]` : '') +
        (problems > 0
          ? `  (!) ${measured.non2xx} non-2xx, ${measured.errors} errors, ${measured.timeouts} timeouts`
          : ''),
    );
  }
  if (options.only.has('transaction') && !interrupted()) {
    result.transaction = await measureTransactions(`${hub.url}/fhir`, {
      entries: TRANSACTION_ENTRIES,
      bundles: options.transactions,
      warmup: TRANSACTION_WARMUP,
      practitionerReference: targets.practitionerReference,
      seed: SEED + 1000 + run,
      authorization,
    });
    log(
      `  transaction(${TRANSACTION_ENTRIES})     ${options.transactions} sequential bundles  ` +
        `p50 ${formatNumber(result.transaction.p50, 'ms')}  p95 ${formatNumber(result.transaction.p95, 'ms')} ms`,
    );
  }
  return result;
}

/** The ids the workloads pick from. */
function runTargets(
  options: BenchOptions,
  ids: { patientIds: string[]; serviceRequestIds: string[]; practitionerIds: string[] },
) {
  return {
    patientIds: ids.patientIds,
    serviceRequestIds: ids.serviceRequestIds,
    taskCount: datasetShape(options.resources).tasks,
    practitionerReference: `Practitioner/${ids.practitionerIds[0]}`,
  };
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (options.help) {
    log(HELP);
    return;
  }
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (options.embedded) {
    await mainEmbedded(options, redisUrl);
    return;
  }
  const adminUrl = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const url = databaseUrl(adminUrl, options.database);
  fs.mkdirSync(workDir, { recursive: true });
  const cpuProfileDir = options.cpuProfile ? path.join(workDir, 'profiles') : undefined;

  const preparation = await prepareDataset(options, adminUrl, url);
  await clearQueuePrefix(redisUrl, QUEUE_PREFIX);
  const hubOptions: HubProcessOptions = {
    repoRoot,
    databaseUrl: url,
    redisUrl,
    queuePrefix: QUEUE_PREFIX,
    dataDir: path.join(workDir, 'hub-data'),
    logFile: path.join(workDir, 'hub.log'),
    cpuProfileDir,
  };
  log('Starting the hub (node src/main.ts, LOG_LEVEL=warn, log in bench/.work/hub.log)');
  const hub = await startHubProcess(hubOptions);
  // After the hub's start: its migrations made the client table.
  const credentials = await registerBenchClient(url);
  const tokens = new TokenSource(credentials, hub.url);
  /** The two hubs of --audit-compare. */
  const comparedHubs: HubProcess[] = [];
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    log('Interrupted: stopping the hub');
    // Stopping may fail (a hub already gone); the process exits either way.
    void Promise.allSettled([hub, ...comparedHubs].map((h) => h.stop())).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const runs: RunResult[] = [];
  let marker: DatasetMarker;
  let counts: Record<string, number>;
  try {
    marker = preparation.marker ?? (await loadInto(hub, tokens, options, adminUrl, url, redisUrl));
    const migrationsNow = await appliedMigrations(url);
    const added = migrationsNow.filter((name) => !marker.migrations.includes(name));
    if (added.length > 0) {
      log(
        `Note: migrations applied since the data set was loaded: ${added.join(', ')} (use --rebuild if they change indexing)`,
      );
    }
    counts = await countByType(url);
    const patientIds = await loadedIds(url, 'Patient', marker.maxSeq);
    const serviceRequestIds = await loadedIds(url, 'ServiceRequest', marker.maxSeq);
    const practitionerIds = await loadedIds(url, 'Practitioner', marker.maxSeq);
    log(
      `Data set: ${Object.entries(counts)
        .map(([type, n]) => `${n} ${type}`)
        .join(', ')}`,
    );
    const targets = runTargets(options, { patientIds, serviceRequestIds, practitionerIds });

    if (options.personCompare) {
      const physician = await busiestReferringPhysician(url, marker.maxSeq);
      if (!physician) {
        throw new Error(
          'No loaded ServiceRequest names a Practitioner as requester and a Patient as subject: no referring physician to sign in as (--rebuild?)',
        );
      }
      const postgres = await serverVersion(url);
      const account = await registerBenchPerson(url, physician.practitionerId);
      const person = new PersonTokenSource(account, hub.url);
      const first = await person.current();
      log(
        `Referring physician ${account.fhirUser}: requester of ${physician.cases.length} of the ${physician.serviceRequests} ServiceRequests; ` +
          `signed in through ${account.clientId} (granted "${first.scope}", token valid ${first.expiresInSeconds} s)`,
      );
      await runPersonCompare({
        runs: options.runs,
        workloads: [...options.only],
        cases: physician.cases,
        seed: SEED,
        measure: {
          connections: options.connections,
          warmup: options.warmup,
          seconds: options.duration,
          slice: options.slice,
          database: options.database,
        },
        hub,
        authorization: { system: () => tokens.authorization(), person: () => person.authorization() },
        reset: async () => {
          const removed = await resetToDataset(url, marker.maxSeq);
          await waitForOutboxDrained(url);
          return removed;
        },
        interrupted: () => interrupted,
        log,
        resultsFile: path.join(workDir, 'fhir-person-compare.json'),
        describe: () => ({
          git: gitDescription(),
          environment: { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, postgres },
          options: { ...options, only: [...options.only] },
          dataset: { ...marker, counts },
          person: {
            role: 'referring-physician',
            fhirUser: account.fhirUser,
            client: account.clientId,
            scope: first.scope,
            cases: physician.cases.length,
            serviceRequests: physician.serviceRequests,
            signIns: person.signIns,
          },
        }),
      });
      log(`The referring physician signed in ${person.signIns} time(s) (a person's token lasts at most 10 minutes).`);
      return;
    }

    if (options.auditCompare) {
      await hub.stop();
      await runAuditCompare({
        runs: options.runs,
        workloads: [...options.only].filter((name) => name !== 'transaction' && name !== 'noop'),
        targets,
        seed: SEED,
        measure: {
          connections: options.connections,
          warmup: options.warmup,
          seconds: options.duration,
          slice: options.slice,
          database: options.database,
        },
        reset: async () => {
          const removed = await resetToDataset(url, marker.maxSeq);
          await waitForOutboxDrained(url);
          return removed;
        },
        startHub: async (env) => {
          const started = await startHubProcess({
            ...hubOptions,
            env,
            logFile: path.join(workDir, `hub-audit-${env.AUDIT_ENABLED}.log`),
          });
          comparedHubs.push(started);
          const source = new TokenSource(credentials, started.url);
          return { hub: started, authorization: () => source.authorization() };
        },
        interrupted: () => interrupted,
        log,
        resultsFile: path.join(workDir, 'fhir-audit-compare.json'),
        describe: { git: gitDescription(), dataset: { ...marker, counts } },
      });
      return;
    }

    for (let run = 1; run <= options.runs && !interrupted; run++) {
      if (run > 1) {
        const removed = await resetToDataset(url, marker.maxSeq);
        log(`Reset the data set (removed ${removed} resources created by run ${run - 1})`);
      }
      await waitForOutboxDrained(url);
      runs.push(
        await measureRun(hub, run, options, {
          targets,
          database: options.database,
          authorization: () => tokens.authorization(),
          interrupted: () => interrupted,
        }),
      );
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    const code = await hub.stop();
    if (code !== 0) {
      log(`The hub exited with code ${code}; see bench/.work/hub.log`);
    }
    await clearQueuePrefix(redisUrl, QUEUE_PREFIX);
  }

  await report(runs, options, {
    marker,
    reused: preparation.reused,
    counts,
    database: { postgres: await serverVersion(url) },
  });
}

/** Loads the data set into a new embedded data directory through a hub on it. */
async function loadEmbedded(options: BenchOptions, dir: string, redisUrl: string): Promise<DatasetMarker> {
  log(`Creating the embedded data set in ${path.relative(process.cwd(), dir)}`);
  const credentials = await createEmbeddedDataset(dir);
  let hub = await startHubProcess({
    ...embeddedHubOptions(dir, redisUrl),
    logFile: path.join(workDir, 'hub-load.log'),
  });
  const shape = datasetShape(options.resources);
  let report: Awaited<ReturnType<typeof loadDataset>>;
  try {
    const tokens = new TokenSource(credentials, hub.url);
    log(
      `Loading ${shape.total} resources through POST /fhir transaction bundles (${options.loadConcurrency} in flight)`,
    );
    report = await loadDataset({
      fhirBase: `${hub.url}/fhir`,
      resources: options.resources,
      seed: SEED,
      patientsPerBundle: 20,
      concurrency: options.loadConcurrency,
      authorization: () => tokens.authorization(),
    });
    log(`Loaded in ${report.seconds.toFixed(1)} s (${Math.round(report.resourcesPerSecond)} resources/s)`);
    // The case workflow the load started belongs to the data set (as with PostgreSQL): the outbox can
    // be read only with the hub stopped, so stop, look, and go on until it is empty.
    for (let attempt = 1; ; attempt++) {
      const idle = await waitForQueuesIdle(redisUrl, QUEUE_PREFIX, WORKFLOW_TIMEOUT_MS);
      await hub.stop();
      const pending = await pendingOutbox(dir);
      if (pending === 0 && idle) {
        break;
      }
      if (attempt >= 5) {
        throw new Error(`The embedded data set still has ${pending} outbox event(s) after ${attempt} rounds`);
      }
      log(`  ${pending} outbox event(s) not yet relayed: restarting the hub to finish them`);
      hub = await startHubProcess({
        ...embeddedHubOptions(dir, redisUrl),
        logFile: path.join(workDir, 'hub-load.log'),
      });
    }
  } finally {
    await hub.stop();
    await clearQueuePrefix(redisUrl, QUEUE_PREFIX);
  }
  return finishEmbeddedDataset(dir, {
    dataset: 'fhir-bench',
    version: DATASET_VERSION,
    resources: options.resources,
    seed: SEED,
    loadedAt: new Date().toISOString(),
    loadSeconds: Math.round(report.seconds * 10) / 10,
  });
}

function embeddedHubOptions(dataDir: string, redisUrl: string): HubProcessOptions {
  return {
    repoRoot,
    redisUrl,
    queuePrefix: QUEUE_PREFIX,
    dataDir,
    logFile: path.join(workDir, 'hub.log'),
    // PGlite initialises or recovers in WebAssembly: slower than a PostgreSQL connection.
    startTimeoutMs: 300_000,
  };
}

/** bench:fhir --embedded: each run on a fresh copy of the loaded data set, with a hub of its own. */
async function mainEmbedded(options: BenchOptions, redisUrl: string): Promise<void> {
  const dataset = datasetDir(workDir, options.resources);
  const expected = { version: DATASET_VERSION, resources: options.resources, seed: SEED };
  const existing = options.rebuild ? undefined : readEmbeddedMarker(dataset, expected);
  await clearQueuePrefix(redisUrl, QUEUE_PREFIX);
  const marker = existing ?? (await loadEmbedded(options, dataset, redisUrl));
  if (existing) {
    log(
      `Reusing the embedded data set ${path.relative(process.cwd(), dataset)}: ${marker.resources} resources loaded ${marker.loadedAt}`,
    );
  }
  const runDir = path.join(workDir, 'embedded', 'run');
  const runs: RunResult[] = [];
  let counts: Record<string, number> = {};
  let engine = 'PGlite';
  let current: HubProcess | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    log('Interrupted: stopping the hub');
    void (current?.stop() ?? Promise.resolve()).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let run = 1; run <= options.runs && !interrupted; run++) {
      const data = await prepareEmbeddedRun(dataset, runDir, marker.maxSeq);
      counts = data.counts;
      engine = data.pgliteVersion;
      await clearQueuePrefix(redisUrl, QUEUE_PREFIX);
      current = await startHubProcess({
        ...embeddedHubOptions(runDir, redisUrl),
        cpuProfileDir: options.cpuProfile ? path.join(workDir, 'profiles') : undefined,
      });
      const tokens = new TokenSource(data.credentials, current.url);
      try {
        runs.push(
          await measureRun(current, run, options, {
            targets: runTargets(options, data),
            database: '(embedded)',
            authorization: () => tokens.authorization(),
            interrupted: () => interrupted,
          }),
        );
      } finally {
        const code = await current.stop();
        if (code !== 0) {
          log(`The hub exited with code ${code}; see bench/.work/hub.log`);
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await clearQueuePrefix(redisUrl, QUEUE_PREFIX);
    fs.rmSync(runDir, { recursive: true, force: true });
  }
  await report(runs, options, { marker, reused: existing !== undefined, counts, database: { embedded: engine } });
}

/** Prints the medians and writes bench/.work/fhir-results.json. */
async function report(
  runs: RunResult[],
  options: BenchOptions,
  about: {
    marker: DatasetMarker;
    reused: boolean;
    counts: Record<string, number>;
    /** `postgres`: the server's version; `embedded`: PGlite's. */
    database: { postgres: string } | { embedded: string };
  },
): Promise<void> {
  const { marker, counts } = about;
  const cpuProfileDir = options.cpuProfile ? path.join(workDir, 'profiles') : undefined;
  const summary = summarize(runs);
  printSummary(summary, runs.length);
  const noise = median(runs.flatMap((run) => Object.values(run.cpu).map((cpu) => cpu.other)));
  if (Number.isFinite(noise)) {
    log(
      `\nOther processes on the machine used a median ${noise.toFixed(2)} of ${os.cpus().length} cores during the measurements` +
        (noise > 0.25 ? ': a noisy machine, so treat throughput and tail latencies as lower bounds.' : '.'),
    );
  }
  const failures = runs.flatMap((run) =>
    Object.values(run.workloads)
      .filter((w) => w.non2xx + w.errors + w.timeouts > 0)
      .map((w) => `run ${run.run} ${w.name}: ${w.non2xx} non-2xx, ${w.errors} errors, ${w.timeouts} timeouts`),
  );
  if (failures.length > 0) {
    log(`\nWARNING: some requests failed, so these figures are suspect:\n  ${failures.join('\n  ')}`);
  }
  let profile: ProfileSummary | undefined;
  const profileFile = cpuProfileDir && newestProfile(cpuProfileDir);
  if (profileFile) {
    profile = summarizeProfile(profileFile);
    const busy = (profile.busyMs / 1000).toFixed(1);
    log(
      `\nHub CPU profile ${path.relative(process.cwd(), profileFile)}: ${busy} s busy, ${(profile.idleMs / 1000).toFixed(1)} s idle`,
    );
    log(
      table(
        ['self time by origin', 'ms', '%'],
        profile.byOrigin.map((e) => [e.name, String(e.ms), e.share.toFixed(1)]),
        new Set([1, 2]),
      ),
    );
    log('');
    log(
      table(
        ['self time by function', 'ms', '%'],
        profile.byFunction.map((e) => [e.name, String(e.ms), e.share.toFixed(1)]),
        new Set([1, 2]),
      ),
    );
  }
  const resultsFile = path.join(workDir, 'fhir-results.json');
  const results = {
    generatedAt: new Date().toISOString(),
    git: gitDescription(),
    environment: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      ...about.database,
      databasePoolSize: process.env.DATABASE_POOL_SIZE ?? '(hub default)',
    },
    options: { ...options, only: [...options.only] },
    dataset: { ...marker, reused: about.reused, counts },
    method: {
      loadGenerator: 'autocannon 9 in the bench process; the hub runs in its own child process',
      model: 'closed loop: each connection sends its next request when the previous answer arrives',
      latency: 'per response, client side, exact nearest-rank percentiles',
      transaction: `${TRANSACTION_ENTRIES}-entry transaction bundles posted one after another after ${TRANSACTION_WARMUP} unmeasured ones`,
      ratioToNoop: 'median over runs of (workload req/s ÷ GET /livez req/s in the same run)',
      cpu:
        'cores busy during each measurement (Linux /proc): the hub process, the PostgreSQL processes serving the bench database ' +
        '(and the shared background ones), the load generator, and the rest of the machine; short-lived processes ' +
        '(PostgreSQL parallel query workers) exit before they can be read and so count as "other"',
      workloads: Object.fromEntries(
        buildWorkloads(
          { patientIds: ['{id}'], serviceRequestIds: ['{id}'], taskCount: 1, practitionerReference: '' },
          0,
        ).map((w) => [w.name, w.description]),
      ),
    },
    targets: TARGETS,
    summary,
    ...(profile ? { hubCpuProfile: profile } : {}),
    runs: runs.map((run) => ({
      ...run,
      transaction: run.transaction && {
        ...run.transaction,
        samplesMs: run.transaction.samplesMs.map((ms) => Math.round(ms * 10) / 10),
      },
    })),
  };
  fs.writeFileSync(resultsFile, JSON.stringify(results, null, 2) + '\n');
  log(`\nResults written to ${path.relative(process.cwd(), resultsFile)}`);
}

main().catch((err: unknown) => {
  const text =
    err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
      ? (err as Error).message
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
  process.stderr.write(`bench:fhir failed: ${text}\n`);
  process.exit(1);
});
