/**
 * Runs `node src/main.ts` as a child process, as `npm start` and the container do, with an
 * environment built from scratch (no configuration leaks in from the test runner's own environment).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES } from '../../src/config.ts';
import { TEST_REDIS_URL } from './test-hub.ts';
import { freePort } from './free-port.ts';
import { HUB_NODE_FLAGS } from './node-flags.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The Node 24 binary of the `node` npm package (the machine's own node is older). */
export const NODE_BIN = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HubProcess {
  child: ChildProcess;
  /** The URL the hub listens on, from its 'hub listening' log line. */
  url: string;
  port: number;
  /** Every JSON log line printed so far. */
  logs: LogLine[];
  stderr(): string;
  exited: Promise<ExitStatus>;
  waitForLog(msg: string, timeoutMs?: number): Promise<LogLine>;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<ExitStatus>;
}

/** The test runner's environment without any of the hub's configuration variables. */
export function cleanEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !CONFIG_VARIABLES.includes(name)) {
      env[name] = value;
    }
  }
  return env;
}

/** Spawns `node src/main.ts` without waiting for it (for start-up failures). */
export function spawnMain(env: Record<string, string>): ChildProcess {
  return spawn(NODE_BIN, [...HUB_NODE_FLAGS, 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...cleanEnvironment(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Tries at taking a free port: another process may take the port freePort() found between its look and the hub's listen. */
const PORT_ATTEMPTS = 3;

/**
 * Starts the hub and resolves once it logs 'hub listening'. Without a PORT in `env` it picks a free
 * one, and picks again if another process took it first (the hub then fails with EADDRINUSE).
 */
export async function startHubProcess(env: Record<string, string> = {}, timeoutMs = 30_000): Promise<HubProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startHubProcessOn(env.PORT ? Number(env.PORT) : await freePort(), env, timeoutMs);
    } catch (err) {
      const taken = err instanceof Error && err.message.includes('EADDRINUSE');
      if (env.PORT || !taken || attempt >= PORT_ATTEMPTS) {
        throw err;
      }
    }
  }
}

async function startHubProcessOn(port: number, env: Record<string, string>, timeoutMs: number): Promise<HubProcess> {
  const child = spawnMain({
    HOST: '127.0.0.1',
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: `test-${randomBytes(4).toString('hex')}`,
    LOG_LEVEL: 'info',
    DIMSE_PORT: '0',
    // As in test-hub.ts: a test that is about access passes AUTH_REQUIRED=true.
    AUTH_REQUIRED: 'false',
    ...env,
    PORT: String(port),
  });
  const logs: LogLine[] = [];
  const waiters: { msg: string; resolve: (line: LogLine) => void }[] = [];
  let stderr = '';
  let pending = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { level: -1, msg: `(not JSON) ${text}` };
      }
      logs.push(line);
      for (const waiter of waiters.filter((w) => w.msg === line.msg)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const transcript = (): string =>
    `stdout:\n${logs.map((line) => JSON.stringify(line)).join('\n')}\nstderr:\n${stderr}`;
  const waitForLog = (msg: string, waitMs = timeoutMs): Promise<LogLine> => {
    const seen = logs.find((line) => line.msg === msg);
    if (seen) {
      return Promise.resolve(seen);
    }
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no '${msg}' log line within ${waitMs} ms\n${transcript()}`)),
        waitMs,
      );
      const waiter = {
        msg,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      waiters.push(waiter);
      void exited.then((status) => {
        if (waiters.includes(waiter)) {
          clearTimeout(timer);
          reject(new Error(`hub exited (${JSON.stringify(status)}) before logging '${msg}'\n${transcript()}`));
        }
      });
    });
  };

  let listening: LogLine;
  try {
    listening = await waitForLog('hub listening');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    child,
    url: listening.url as string,
    port,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
      }
      return exited;
    },
  };
}
