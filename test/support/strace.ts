/**
 * strace attached to a running process (every thread, `-f -p`), and its output read back as calls in
 * the order strace saw them. A call another thread interrupted is printed in two lines (`<unfinished
 * ...>`, then `<... name resumed>`): it gets the position of each line, its entry and its exit.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';

export interface TracedCall {
  tid: number;
  name: string;
  /** The path of the first argument's descriptor (strace -y), when it has one. */
  path?: string;
  /** The line(s) as strace printed them. */
  text: string;
  /** Positions in the output: the call entered at `entry` and returned at `exit`. */
  entry: number;
  exit: number;
  result: number;
}

export interface Tracer {
  /** Detaches strace and returns every call it saw, in order. */
  stop(): Promise<TracedCall[]>;
}

export interface TraceOptions {
  /** Makes each of these calls return this much later (a slow disk's flush), with strace's fault injection. */
  delay?: { syscalls: readonly string[]; ms: number };
}

/** Attaches `strace -f -y` to `pid` for `syscalls`, and resolves once it has attached to every thread. */
export async function attachStrace(
  pid: number,
  syscalls: readonly string[],
  outFile: string,
  options: TraceOptions = {},
): Promise<Tracer> {
  const inject = options.delay
    ? ['-e', `inject=${options.delay.syscalls.join(',')}:delay_exit=${options.delay.ms * 1000}`]
    : [];
  const child: ChildProcess = spawn(
    'strace',
    ['-f', '-y', '-s', '48', '-e', `trace=${syscalls.join(',')}`, ...inject, '-o', outFile, '-p', String(pid)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      // One line per thread, all at once; the last one settles within moments.
      if (stderr.includes('attached') && timer === undefined) {
        timer = setTimeout(resolve, 500);
      }
    });
    child.once('error', reject);
    void exited.then((code) => reject(new Error(`strace exited (${code}) before attaching: ${stderr}`)));
  });
  return {
    stop: async () => {
      child.kill('SIGINT');
      await exited;
      return parseStrace(await fs.readFile(outFile, 'utf8'));
    },
  };
}

const LINE = /^(\d+)\s+(.*)$/;
const RESUMED = /^<\.\.\. (\w+) resumed>(.*)$/;
const CALL = /^(\w+)\((.*)$/;
const RESULT = /\)\s+=\s+(-?\d+)/;
const FD_PATH = /^\d+<([^>]*)>/;

export function parseStrace(output: string): TracedCall[] {
  const calls: TracedCall[] = [];
  const open = new Map<string, TracedCall>();
  output.split('\n').forEach((raw, position) => {
    const line = LINE.exec(raw);
    if (!line) {
      return;
    }
    const tid = Number(line[1]);
    const rest = line[2] ?? '';
    const resumed = RESUMED.exec(rest);
    if (resumed) {
      const call = open.get(`${tid} ${resumed[1]}`);
      if (call) {
        open.delete(`${tid} ${resumed[1]}`);
        call.exit = position;
        call.text += rest;
        call.result = Number(RESULT.exec(rest)?.[1] ?? Number.NaN);
      }
      return;
    }
    const started = CALL.exec(rest);
    if (!started) {
      return; // signals, exits
    }
    const call: TracedCall = {
      tid,
      name: started[1] ?? '',
      path: FD_PATH.exec(started[2] ?? '')?.[1],
      text: rest,
      entry: position,
      exit: position,
      result: Number(RESULT.exec(rest)?.[1] ?? Number.NaN),
    };
    calls.push(call);
    if (rest.endsWith('<unfinished ...>')) {
      open.set(`${tid} ${call.name}`, call);
    }
  });
  return calls;
}
