/**
 * A summary of a V8 CPU profile (`node --cpu-prof`): where the hub spent its busy time, by function
 * and by package or source file, so a run with --cpu-prof says at once what bounds a workload.
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  file: string;
  busyMs: number;
  idleMs: number;
  byFunction: ProfileEntry[];
  byOrigin: ProfileEntry[];
}

/** The package a script belongs to, `src/…` for our own code, or V8's pseudo-frames. */
function originOf(url: string, functionName: string): string {
  if (!url) {
    return functionName.startsWith('(') ? functionName : '(native)';
  }
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (module) {
    return module;
  }
  if (url.startsWith('node:')) {
    return 'node internals';
  }
  return /\/((?:src|bench)\/.+)$/.exec(url)?.[1] ?? url;
}

function top(map: Map<string, number>, busyMs: number, count: number): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => ({ name, ms: Math.round(ms), share: Math.round((ms / busyMs) * 1000) / 10 }));
}

/** Self time by function and by origin, leaving out idle time. */
export function summarizeProfile(file: string, count = 15): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map<number, number>();
  // timeDeltas[i] is the time between sample i-1 and sample i, spent in sample i's frame.
  profile.samples.forEach((nodeId, i) => {
    selfMs.set(nodeId, (selfMs.get(nodeId) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  for (const [nodeId, ms] of selfMs) {
    const frame = nodes.get(nodeId)?.callFrame;
    if (!frame) {
      continue;
    }
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    const origin = originOf(frame.url, frame.functionName);
    const name = `${frame.functionName || '(anonymous)'} ${origin}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + ms);
  }
  return {
    file,
    busyMs: Math.round(busyMs),
    idleMs: Math.round(idleMs),
    byFunction: top(byFunction, busyMs, count),
    byOrigin: top(byOrigin, busyMs, count),
  };
}

/** The newest profile in a folder, if any. */
export function newestProfile(dir: string): string | undefined {
  if (!fs.existsSync(dir)) {
    return undefined;
  }
  const files = fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => ({ name, at: fs.statSync(`${dir}/${name}`).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  return files[0] && `${dir}/${files[0].name}`;
}
