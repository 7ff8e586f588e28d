/**
 * Where the CPU time goes during a workload (Linux /proc): the hub process, the PostgreSQL processes
 * serving it, this load generator, and everything else on the machine (the noise of a shared host).
 * Figures are in cores: 1.0 is one core busy for the whole interval.
 */
import fs from 'node:fs';

export interface CpuShares {
  hub: number;
  postgres: number;
  loadGenerator: number;
  /** Busy time of the whole machine not accounted for by the three above. */
  other: number;
  /** Cores the machine has. */
  cores: number;
}

interface Snapshot {
  at: bigint;
  hubTicks: number;
  postgresTicks: Map<string, number>;
  generator: NodeJS.CpuUsage;
  machineBusyTicks: number;
}

// USER_HZ: 100 on every Linux we run on (sysconf(_SC_CLK_TCK) is not reachable from Node).
const TICKS_PER_SECOND = 100;

function processTicks(pid: number | string): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * CPU ticks of the PostgreSQL processes that work for the benchmark: the backends connected to its
 * database and the shared background processes (WAL writer, checkpointer, …). Backends of other
 * databases on the same server (other people's tests) count as "other".
 */
function postgresTicks(database: string): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') {
        continue;
      }
      // A backend's title is "postgres: [cluster: ]user database host(port) state".
      const title = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const backend = /\S+ (\S+) [\d.:[\]a-f]+\(\d+\)/.exec(title);
      if (!backend || backend[1] === database) {
        ticks.set(entry, processTicks(entry));
      }
    } catch {
      // the process ended while we looked
    }
  }
  return ticks;
}

/** Ticks spent between two snapshots by the processes alive at the end (one that exits in between is missed). */
function ticksBetween(start: Map<string, number>, end: Map<string, number>): number {
  let total = 0;
  for (const [pid, ticks] of end) {
    total += ticks - (start.get(pid) ?? 0);
  }
  return total;
}

function machineBusyTicks(): number {
  const [cpu = ''] = fs.readFileSync('/proc/stat', 'utf8').split('\n');
  const [, user, nice, system, , , irq, softirq, steal] = cpu.trim().split(/\s+/).map(Number);
  if (
    user === undefined ||
    nice === undefined ||
    system === undefined ||
    irq === undefined ||
    softirq === undefined ||
    steal === undefined
  ) {
    throw new Error(`unexpected first line of /proc/stat: ${cpu}`);
  }
  return user + nice + system + irq + softirq + steal;
}

export function cpuAccountingAvailable(): boolean {
  return fs.existsSync('/proc/stat');
}

function snapshot(hubPid: number, database: string): Snapshot {
  return {
    at: process.hrtime.bigint(),
    hubTicks: processTicks(hubPid),
    postgresTicks: postgresTicks(database),
    generator: process.cpuUsage(),
    machineBusyTicks: machineBusyTicks(),
  };
}

/** Starts measuring; the returned function ends the interval and gives the shares. */
export function startCpuAccounting(hubPid: number, database: string, cores: number): () => CpuShares | undefined {
  if (!cpuAccountingAvailable()) {
    return () => undefined;
  }
  const start = snapshot(hubPid, database);
  return () => {
    const end = snapshot(hubPid, database);
    const seconds = Number(end.at - start.at) / 1e9;
    const perCore = (ticks: number): number => ticks / TICKS_PER_SECOND / seconds;
    const hub = perCore(end.hubTicks - start.hubTicks);
    const postgres = perCore(ticksBetween(start.postgresTicks, end.postgresTicks));
    const generatorMicros = end.generator.user - start.generator.user + (end.generator.system - start.generator.system);
    const loadGenerator = generatorMicros / 1e6 / seconds;
    const busy = perCore(end.machineBusyTicks - start.machineBusyTicks);
    const round = (n: number): number => Math.round(n * 100) / 100;
    return {
      hub: round(hub),
      postgres: round(postgres),
      loadGenerator: round(loadGenerator),
      other: round(Math.max(0, busy - hub - postgres - loadGenerator)),
      cores,
    };
  };
}

/** CPU milliseconds one request cost a process group during a measurement (`pick` chooses the group). */
export function msPerRequest(
  half: { workloads: Record<string, { rps: number }>; cpu: Record<string, CpuShares | undefined> } | undefined,
  workload: string,
  pick: (cpu: CpuShares) => number,
): number | undefined {
  const cpu = half?.cpu[workload];
  const result = half?.workloads[workload];
  return cpu && result && result.rps > 0 ? (pick(cpu) * 1000) / result.rps : undefined;
}
