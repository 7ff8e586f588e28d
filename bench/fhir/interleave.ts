/**
 * One workload measured on two hubs at once for `--audit-compare`: after a warm-up of each, the
 * measured time is cut into short slices that alternate between the hubs (A B B A A B …), so that
 * the load of the other tenants of a shared machine, which drifts over seconds, falls on both alike.
 * Each hub's figures are the sum of its slices; its CPU shares are weighted by slice length.
 */
import os from 'node:os';
import { startCpuAccounting } from './cpu.ts';
import type { CpuShares } from './cpu.ts';
import { runLoad, verifyWorkload, workloadResult } from './workloads.ts';
import type { HttpWorkload, LoadSample, MeasuredWorkload } from './workloads.ts';

export interface InterleavedTarget {
  hub: { url: string; pid: number };
  /** Its own instance of the workload (the same seed for both targets: the same requests). */
  workload: HttpWorkload;
  authorization: () => Promise<string>;
}

export interface InterleaveOptions {
  connections: number;
  warmup: number;
  /** Measured seconds per target. */
  seconds: number;
  /** Seconds per slice. */
  slice: number;
  database: string;
}

type CpuSum = Omit<CpuShares, 'cores'>;

function addCpu(sum: CpuSum, shares: CpuShares, seconds: number): void {
  sum.hub += shares.hub * seconds;
  sum.postgres += shares.postgres * seconds;
  sum.loadGenerator += shares.loadGenerator * seconds;
  sum.other += shares.other * seconds;
}

export async function measureInterleaved(
  targets: readonly InterleavedTarget[],
  options: InterleaveOptions,
): Promise<MeasuredWorkload[]> {
  const maxRequests = 200_000 * options.seconds;
  for (const target of targets) {
    await verifyWorkload(target.hub.url, target.workload, await target.authorization());
    await runLoad(target.hub.url, target.workload, {
      connections: options.connections,
      seconds: options.warmup,
      maxRequests,
      authorization: await target.authorization(),
    });
  }
  // Per target: its slices, and its CPU sums (undefined once a slice could not be accounted).
  const measured: { target: InterleavedTarget; samples: LoadSample[]; cpu: CpuSum | undefined }[] = targets.map(
    (target) => ({ target, samples: [], cpu: { hub: 0, postgres: 0, loadGenerator: 0, other: 0 } }),
  );
  const rounds = Math.max(1, Math.round(options.seconds / options.slice));
  for (let round = 0; round < rounds; round++) {
    // A B, then B A: neither hub always goes first.
    const order = round % 2 === 0 ? measured : [...measured].reverse();
    for (const slot of order) {
      const { target } = slot;
      const authorization = await target.authorization();
      const endCpu = startCpuAccounting(target.hub.pid, options.database, os.cpus().length);
      const sample = await runLoad(target.hub.url, target.workload, {
        connections: options.connections,
        seconds: options.slice,
        maxRequests,
        authorization,
      });
      const shares = endCpu();
      slot.samples.push(sample);
      if (shares && slot.cpu) {
        addCpu(slot.cpu, shares, sample.seconds);
      } else {
        slot.cpu = undefined;
      }
    }
  }
  return measured.map(({ target, samples, cpu: sum }) => {
    const result = workloadResult(target.workload, samples);
    const round = (n: number): number => Math.round((n / result.seconds) * 100) / 100;
    return {
      result,
      cpu: sum && {
        hub: round(sum.hub),
        postgres: round(sum.postgres),
        loadGenerator: round(sum.loadGenerator),
        other: round(sum.other),
        cores: os.cpus().length,
      },
    };
  });
}
