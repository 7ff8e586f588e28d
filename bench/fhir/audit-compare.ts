/**
 * `bench:fhir -- --audit-compare` (issue 3): what AuditEvents cost the FHIR API. Two hubs run side
 * by side on the bench database, one started with AUDIT_ENABLED=false and one with true (the same
 * client, data set and flags otherwise); only one is loaded at a time. Each run resets the data set
 * and measures every workload on both hubs in alternating slices of a few seconds (interleave.ts),
 * so that the drifting load of a shared machine weighs on both alike and each run's on/off ratio
 * compares measurements taken seconds apart. Prints
 * the medians per mode, the on/off ratio of throughput (and of p99) per workload, the CPU time one
 * request costs the hub and PostgreSQL in each mode (less sensitive to the other tenants of a shared
 * machine than throughput is), and the load average at each half.
 */
import fs from 'node:fs';
import os from 'node:os';
import { median } from './stats.ts';
import type { HubProcess } from './hub-process.ts';
import { measureInterleaved } from './interleave.ts';
import type { InterleaveOptions } from './interleave.ts';
import { buildWorkloads } from './workloads.ts';
import type { HttpWorkload, WorkloadResult, WorkloadTargets } from './workloads.ts';
import { msPerRequest } from './cpu.ts';
import type { CpuShares } from './cpu.ts';
import { defined } from '../../test/support/defined.ts';

/** Issue 3: audited requests may cost at most 15% of the throughput. */
const MAX_SLOWDOWN = 0.15;

type Mode = 'off' | 'on';

export interface AuditCompareContext {
  runs: number;
  workloads: string[];
  targets: WorkloadTargets;
  seed: number;
  measure: InterleaveOptions;
  /** Removes what earlier measurements wrote; returns how many resources. */
  reset: () => Promise<number>;
  startHub: (env: Record<string, string>) => Promise<AuditHub>;
  interrupted: () => boolean;
  log: (line: string) => void;
  resultsFile: string;
  describe: Record<string, unknown>;
}

/** One run's measurements on one of the two hubs. */
interface HalfRun {
  run: number;
  mode: Mode;
  /** At the start of the run. */
  loadAverage: number[];
  workloads: Record<string, WorkloadResult>;
  cpu: Record<string, CpuShares | undefined>;
}

interface AuditHub {
  hub: HubProcess;
  authorization: () => Promise<string>;
}

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '—');

function formatLine(name: string, result: WorkloadResult, cpu: CpuShares | undefined): string {
  const problems = result.non2xx + result.errors + result.timeouts;
  return (
    `    ${name.padEnd(19)} ${Math.round(result.rps).toLocaleString('en-US').padStart(7)} req/s  ` +
    `p50 ${fixed(result.p50, 1)}  p95 ${fixed(result.p95, 1)}  p99 ${fixed(result.p99, 1)} ms` +
    (cpu ? `  [cores: hub ${cpu.hub} pg ${cpu.postgres} gen ${cpu.loadGenerator} other ${cpu.other}]` : '') +
    (problems > 0 ? `  (!) ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts` : '')
  );
}

async function measureRun(context: AuditCompareContext, run: number, hubs: Record<Mode, AuditHub>): Promise<HalfRun[]> {
  const removed = await context.reset();
  const loadAverage = os.loadavg();
  context.log(
    `\nRun ${run}/${context.runs} (load average ${loadAverage.map((n) => n.toFixed(2)).join(' ')}` +
      `${removed > 0 ? `; reset removed ${removed} resources` : ''})`,
  );
  const halves: Record<Mode, HalfRun> = {
    off: { run, mode: 'off', loadAverage, workloads: {}, cpu: {} },
    on: { run, mode: 'on', loadAverage, workloads: {}, cpu: {} },
  };
  // The same seed for both hubs: the same requests, in the same order.
  const workloads = {
    off: buildWorkloads(context.targets, context.seed + run),
    on: buildWorkloads(context.targets, context.seed + run),
  };
  let position = run;
  for (const name of context.workloads) {
    if (context.interrupted()) {
      break;
    }
    const order: Mode[] = position++ % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
    const targets = order.map((mode) => ({
      hub: hubs[mode].hub,
      workload: workloads[mode].find((w) => w.name === name) as HttpWorkload,
      authorization: hubs[mode].authorization,
    }));
    if (targets.some((target) => target.workload === undefined)) {
      continue;
    }
    const measured = await measureInterleaved(targets, context.measure);
    order.forEach((mode, i) => {
      const { result, cpu } = defined(measured[i], `the ${mode} measurement of ${name}`);
      halves[mode].workloads[name] = result;
      halves[mode].cpu[name] = cpu;
      context.log(formatLine(`${name} ${mode}`, result, cpu));
    });
  }
  return [halves.off, halves.on];
}

interface CompareRow {
  workload: string;
  rpsOff: number;
  rpsOn: number;
  /** Median over runs of (on ÷ off) within the same run. */
  rpsRatio: number;
  p99Off: number;
  p99On: number;
  p99Ratio: number;
  /** CPU milliseconds per request: [off, on]. */
  hubMs: [number, number];
  postgresMs: [number, number];
  met: boolean;
}

function compare(halves: HalfRun[], workloads: string[]): CompareRow[] {
  const runs = [...new Set(halves.map((h) => h.run))];
  const of = (run: number, mode: Mode): HalfRun | undefined => halves.find((h) => h.run === run && h.mode === mode);
  return workloads.flatMap((workload) => {
    const pairs = runs
      .map((run) => [of(run, 'off')?.workloads[workload], of(run, 'on')?.workloads[workload]] as const)
      .filter(
        (pair): pair is readonly [WorkloadResult, WorkloadResult] => pair[0] !== undefined && pair[1] !== undefined,
      );
    if (pairs.length === 0) {
      return [];
    }
    const rpsRatio = median(pairs.map(([off, on]) => on.rps / off.rps));
    const cpuMs = (mode: Mode, pick: (cpu: CpuShares) => number): number =>
      median(runs.flatMap((run) => msPerRequest(of(run, mode), workload, pick) ?? []));
    return [
      {
        workload,
        rpsOff: median(pairs.map(([off]) => off.rps)),
        rpsOn: median(pairs.map(([, on]) => on.rps)),
        rpsRatio,
        p99Off: median(pairs.map(([off]) => off.p99)),
        p99On: median(pairs.map(([, on]) => on.p99)),
        p99Ratio: median(pairs.map(([off, on]) => on.p99 / off.p99)),
        hubMs: [cpuMs('off', (cpu) => cpu.hub), cpuMs('on', (cpu) => cpu.hub)],
        postgresMs: [cpuMs('off', (cpu) => cpu.postgres), cpuMs('on', (cpu) => cpu.postgres)],
        met: rpsRatio >= 1 - MAX_SLOWDOWN,
      },
    ];
  });
}

function printComparison(log: (line: string) => void, rows: CompareRow[], runs: number): void {
  const header = [
    'workload',
    'off req/s',
    'on req/s',
    'on/off',
    'off p99',
    'on p99',
    'p99 on/off',
    'hub ms/req off→on',
    'pg ms/req off→on',
    `≤ ${MAX_SLOWDOWN * 100}% slower`,
  ];
  const lines = rows.map((row) => [
    row.workload,
    Math.round(row.rpsOff).toLocaleString('en-US'),
    Math.round(row.rpsOn).toLocaleString('en-US'),
    fixed(row.rpsRatio, 3),
    fixed(row.p99Off, 1),
    fixed(row.p99On, 1),
    fixed(row.p99Ratio, 2),
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
    `\nAUDIT COMPARISON, medians over ${runs} run(s) (on/off: median of the per-run ratios; p99 in ms; CPU ms per request)`,
  );
  log(format(header));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  lines.forEach((line) => log(format(line)));
}

export async function runAuditCompare(context: AuditCompareContext): Promise<void> {
  const halves: HalfRun[] = [];
  const off = await context.startHub({ AUDIT_ENABLED: 'false' });
  let on: AuditHub | undefined;
  try {
    on = await context.startHub({ AUDIT_ENABLED: 'true' });
    for (let run = 1; run <= context.runs && !context.interrupted(); run++) {
      halves.push(...(await measureRun(context, run, { off, on })));
    }
  } finally {
    await Promise.all([off.hub.stop(), on?.hub.stop()]);
  }
  const rows = compare(halves, context.workloads);
  printComparison(context.log, rows, context.runs);
  const loads = halves.map((h) => h.loadAverage[0] ?? Number.NaN);
  context.log(
    `Load average (1 min) at the start of each run: ${loads
      .filter((_, i) => i % 2 === 0)
      .map((n) => n.toFixed(2))
      .join(', ')}; median ${fixed(median(loads), 2)}`,
  );
  const others = halves.flatMap((h) => Object.values(h.cpu).flatMap((cpu) => (cpu ? [cpu.other] : [])));
  if (others.length > 0) {
    context.log(
      `Other processes used a median ${fixed(median(others), 2)} of ${os.cpus().length} cores during the measurements.`,
    );
  }
  fs.writeFileSync(
    context.resultsFile,
    JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        ...context.describe,
        maxSlowdown: MAX_SLOWDOWN,
        comparison: rows,
        halves,
      },
      null,
      2,
    ) + '\n',
  );
  context.log(`Results written to ${context.resultsFile}`);
}
