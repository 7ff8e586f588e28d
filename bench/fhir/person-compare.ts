/**
 * `bench:fhir -- --person-compare`: what a person's token costs against a system client's. One hub;
 * the same reads and searches, all of one referring physician's cases (workloads.ts
 * buildCaseWorkloads), sent once with the physician's token (their access policy applies) and once
 * with the bench's SMART Backend Services client token (scopes only), in alternating slices of a few
 * seconds (interleave.ts), so that the drifting load of a shared machine weighs on both alike. Before
 * measuring, a few requests of each workload are sent with both tokens and must get the same
 * answers: the two sides do the same work. Prints the medians per identity, the person/system ratio
 * of throughput (and of p99) per workload, and the CPU one request costs the hub and PostgreSQL.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Resource } from '@medplum/fhirtypes';
import { msPerRequest } from './cpu.ts';
import type { CpuShares } from './cpu.ts';
import type { HubProcess } from './hub-process.ts';
import { measureInterleaved } from './interleave.ts';
import type { InterleaveOptions } from './interleave.ts';
import { median } from './stats.ts';
import { buildCaseWorkloads } from './workloads.ts';
import type { CaseTarget, HttpWorkload, WorkloadResult } from './workloads.ts';
import { defined } from '../../test/support/defined.ts';

/** The issue's budget: a person's reads and searches reach at least 0.85 of a system client's. */
const MIN_RATIO = 0.85;
/** Requests of each workload whose answers are compared between the two tokens before measuring. */
const SAME_ANSWER_SAMPLES = 5;

export type Identity = 'system' | 'person';
const IDENTITIES: readonly Identity[] = ['system', 'person'];

export interface PersonCompareContext {
  runs: number;
  workloads: string[];
  /** The referring physician's cases: every request touches one of them. */
  cases: readonly CaseTarget[];
  seed: number;
  measure: InterleaveOptions;
  hub: HubProcess;
  /** The `authorization` header of each identity (renewed as tokens age). */
  authorization: Record<Identity, () => Promise<string>>;
  /** Removes what earlier runs wrote (the audit trail); returns how many resources. */
  reset: () => Promise<number>;
  interrupted: () => boolean;
  log: (line: string) => void;
  resultsFile: string;
  /** What the results file says about the run besides the figures (read at the end). */
  describe: () => Record<string, unknown>;
}

/** One run's measurements with one of the two tokens. */
interface HalfRun {
  run: number;
  identity: Identity;
  /** At the start of the run. */
  loadAverage: number[];
  workloads: Record<string, WorkloadResult>;
  cpu: Record<string, CpuShares | undefined>;
}

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '—');
const rate = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '—');

function formatLine(name: string, result: WorkloadResult, cpu: CpuShares | undefined): string {
  const problems = result.non2xx + result.errors + result.timeouts;
  return (
    `    ${name.padEnd(31)} ${rate(result.rps).padStart(7)} req/s  ` +
    `p50 ${fixed(result.p50, 1)}  p95 ${fixed(result.p95, 1)}  p99 ${fixed(result.p99, 1)} ms` +
    (cpu ? `  [cores: hub ${cpu.hub} pg ${cpu.postgres} gen ${cpu.loadGenerator} other ${cpu.other}]` : '') +
    (problems > 0 ? `  (!) ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts` : '')
  );
}

/** What an answer says, for comparing two: the resource and version read, or the entries and total found. */
function answerOf(status: number, text: string): string {
  if (status !== 200) {
    return `HTTP ${status}`;
  }
  const resource = JSON.parse(text) as Resource;
  if (resource.resourceType !== 'Bundle') {
    return `${resource.resourceType}/${resource.id ?? ''} version ${resource.meta?.versionId ?? ''}`;
  }
  const bundle = resource;
  const entries = (bundle.entry ?? [])
    .map((entry) => `${entry.resource?.resourceType ?? ''}/${entry.resource?.id ?? ''}`)
    .sort();
  return `${entries.length} entries [${entries.join(', ')}]${bundle.total === undefined ? '' : ` of ${bundle.total}`}`;
}

/** Sends a few requests of each workload with both tokens; throws when the answers differ. */
async function checkSameAnswers(context: PersonCompareContext): Promise<void> {
  // Workloads of their own (another seed than the runs'): the same requests for both tokens.
  const sides = IDENTITIES.map((identity) => ({
    identity,
    workloads: buildCaseWorkloads(context.cases, context.seed - 1),
  }));
  for (const name of context.workloads) {
    for (let i = 0; i < SAME_ANSWER_SAMPLES; i++) {
      const answers: string[] = [];
      let path = '';
      for (const side of sides) {
        const workload = side.workloads.find((w) => w.name === name) as HttpWorkload;
        path = workload.next().path;
        const response = await fetch(context.hub.url + path, {
          headers: { accept: 'application/fhir+json', authorization: await context.authorization[side.identity]() },
          signal: AbortSignal.timeout(30_000),
        });
        answers.push(answerOf(response.status, await response.text()));
      }
      if (answers[0] !== answers[1]) {
        throw new Error(
          `GET ${path} answers the system client and the referring physician differently, so their figures would not compare like with like:\n  system: ${answers[0]}\n  person: ${answers[1]}`,
        );
      }
    }
  }
}

async function measureRun(context: PersonCompareContext, run: number): Promise<HalfRun[]> {
  const removed = await context.reset();
  const loadAverage = os.loadavg();
  context.log(
    `\nRun ${run}/${context.runs} (load average ${loadAverage.map((n) => n.toFixed(2)).join(' ')}` +
      `${removed > 0 ? `; reset removed ${removed} resources` : ''})`,
  );
  const halves: Record<Identity, HalfRun> = {
    system: { run, identity: 'system', loadAverage, workloads: {}, cpu: {} },
    person: { run, identity: 'person', loadAverage, workloads: {}, cpu: {} },
  };
  // The same seed for both tokens: the same requests, in the same order.
  const workloads = {
    system: buildCaseWorkloads(context.cases, context.seed + run),
    person: buildCaseWorkloads(context.cases, context.seed + run),
  };
  let position = run;
  for (const name of context.workloads) {
    if (context.interrupted()) {
      break;
    }
    const order: Identity[] = position++ % 2 === 1 ? ['system', 'person'] : ['person', 'system'];
    const targets = order.map((identity) => ({
      hub: context.hub,
      workload: workloads[identity].find((w) => w.name === name) as HttpWorkload,
      authorization: context.authorization[identity],
    }));
    if (targets.some((target) => target.workload === undefined)) {
      continue;
    }
    const measured = await measureInterleaved(targets, context.measure);
    order.forEach((identity, i) => {
      const { result, cpu } = defined(measured[i], `the ${identity} measurement of ${name}`);
      halves[identity].workloads[name] = result;
      halves[identity].cpu[name] = cpu;
      context.log(formatLine(`${name} ${identity}`, result, cpu));
    });
  }
  return [halves.system, halves.person];
}

interface CompareRow {
  workload: string;
  description: string;
  rpsSystem: number;
  rpsPerson: number;
  /** Median over runs of (person ÷ system) within the same run. */
  rpsRatio: number;
  /** Each run's person ÷ system. */
  rpsRatios: number[];
  p99System: number;
  p99Person: number;
  p99Ratio: number;
  /** CPU milliseconds per request: [system, person]. */
  hubMs: [number, number];
  postgresMs: [number, number];
  met: boolean;
}

function compare(halves: HalfRun[], workloads: string[]): CompareRow[] {
  const runs = [...new Set(halves.map((h) => h.run))];
  const of = (run: number, identity: Identity): HalfRun | undefined =>
    halves.find((h) => h.run === run && h.identity === identity);
  return workloads.flatMap((workload) => {
    const pairs = runs
      .map((run) => [of(run, 'system')?.workloads[workload], of(run, 'person')?.workloads[workload]] as const)
      .filter(
        (pair): pair is readonly [WorkloadResult, WorkloadResult] => pair[0] !== undefined && pair[1] !== undefined,
      );
    if (pairs.length === 0) {
      return [];
    }
    const rpsRatios = pairs.map(([system, person]) => person.rps / system.rps);
    const rpsRatio = median(rpsRatios);
    const cpuMs = (identity: Identity, pick: (cpu: CpuShares) => number): number =>
      median(runs.flatMap((run) => msPerRequest(of(run, identity), workload, pick) ?? []));
    return [
      {
        workload,
        description: defined(pairs[0], 'a measured pair')[0].description,
        rpsSystem: median(pairs.map(([system]) => system.rps)),
        rpsPerson: median(pairs.map(([, person]) => person.rps)),
        rpsRatio,
        rpsRatios: rpsRatios.map((ratio) => Math.round(ratio * 1000) / 1000),
        p99System: median(pairs.map(([system]) => system.p99)),
        p99Person: median(pairs.map(([, person]) => person.p99)),
        p99Ratio: median(pairs.map(([system, person]) => person.p99 / system.p99)),
        hubMs: [cpuMs('system', (cpu) => cpu.hub), cpuMs('person', (cpu) => cpu.hub)],
        postgresMs: [cpuMs('system', (cpu) => cpu.postgres), cpuMs('person', (cpu) => cpu.postgres)],
        met: rpsRatio >= MIN_RATIO,
      },
    ];
  });
}

function printComparison(log: (line: string) => void, rows: CompareRow[], runs: number): void {
  const header = [
    'workload',
    'system req/s',
    'person req/s',
    'person/system',
    'system p99',
    'person p99',
    'hub ms/req system→person',
    'pg ms/req system→person',
    `≥ ${MIN_RATIO}`,
  ];
  const lines = rows.map((row) => [
    row.workload,
    rate(row.rpsSystem),
    rate(row.rpsPerson),
    fixed(row.rpsRatio, 2) +
      (row.rpsRatios.length > 1 ? ` (${row.rpsRatios.map((ratio) => fixed(ratio, 2)).join(', ')})` : ''),
    fixed(row.p99System, 1),
    fixed(row.p99Person, 1),
    `${fixed(row.hubMs[0], 3)} → ${fixed(row.hubMs[1], 3)}`,
    `${fixed(row.postgresMs[0], 3)} → ${fixed(row.postgresMs[1], 3)}`,
    row.met ? 'met' : 'MISSED',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => (line[i] ?? '').length)));
  const format = (cells: string[]): string =>
    cells
      .map((cell, i) =>
        i === 0 || i === header.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0),
      )
      .join('  ')
      .trimEnd();
  log(
    `\nPERSON TOKEN AGAINST SYSTEM TOKEN, medians over ${runs} run(s) (person/system: median of the per-run ratios; p99 in ms; CPU ms per request)`,
  );
  log(format(header));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  lines.forEach((line) => log(format(line)));
  for (const row of rows) {
    log(`  ${row.workload}: ${row.description}`);
  }
}

export async function runPersonCompare(context: PersonCompareContext): Promise<void> {
  await checkSameAnswers(context);
  context.log(
    `The system client and the referring physician got the same answers to ${SAME_ANSWER_SAMPLES} requests of each workload.`,
  );
  const halves: HalfRun[] = [];
  for (let run = 1; run <= context.runs && !context.interrupted(); run++) {
    halves.push(...(await measureRun(context, run)));
  }
  const rows = compare(halves, context.workloads);
  printComparison(context.log, rows, context.runs);
  const loads = halves.filter((h) => h.identity === 'system').map((h) => h.loadAverage[0] ?? Number.NaN);
  context.log(
    `Load average (1 min) at the start of each run: ${loads.map((n) => n.toFixed(2)).join(', ')}; median ${fixed(median(loads), 2)}`,
  );
  const others = halves.flatMap((h) => Object.values(h.cpu).flatMap((cpu) => (cpu ? [cpu.other] : [])));
  if (others.length > 0) {
    context.log(
      `Other processes used a median ${fixed(median(others), 2)} of ${os.cpus().length} cores during the measurements.`,
    );
  }
  const failures = halves.flatMap((half) =>
    Object.values(half.workloads)
      .filter((w) => w.non2xx + w.errors + w.timeouts > 0)
      .map(
        (w) =>
          `run ${half.run} ${w.name} ${half.identity}: ${w.non2xx} non-2xx, ${w.errors} errors, ${w.timeouts} timeouts`,
      ),
  );
  if (failures.length > 0) {
    context.log(`\nWARNING: some requests failed, so these figures are suspect:\n  ${failures.join('\n  ')}`);
  }
  fs.writeFileSync(
    context.resultsFile,
    JSON.stringify(
      { generatedAt: new Date().toISOString(), ...context.describe(), minRatio: MIN_RATIO, comparison: rows, halves },
      null,
      2,
    ) + '\n',
  );
  context.log(`Results written to ${context.resultsFile}`);
}
