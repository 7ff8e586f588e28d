/**
 * The hub under test, run as `npm start` would run it (`node src/main.ts`) in a child process, so
 * the load generator never shares its event loop or CPU time slices with the server.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HUB_NODE_FLAGS } from '../../test/support/node-flags.ts';
import { freePort } from '../../test/support/free-port.ts';

export interface HubProcessOptions {
  repoRoot: string;
  /** Absent: the embedded database under dataDir, as `npm start` runs it. */
  databaseUrl?: string;
  redisUrl: string;
  queuePrefix: string;
  dataDir: string;
  logFile: string;
  /** Write a V8 CPU profile of the hub into this folder when it exits. */
  cpuProfileDir?: string;
  startTimeoutMs?: number;
  /** Further hub variables (AUDIT_ENABLED for --audit-compare). */
  env?: Record<string, string>;
}

export interface HubProcess {
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves with its exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return true;
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function startHubProcess(options: HubProcessOptions): Promise<HubProcess> {
  fs.mkdirSync(options.dataDir, { recursive: true });
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const port = await freePort();
  const log = fs.openSync(options.logFile, 'a');
  const nodeFlags = options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
  // process.execPath is the Node 24 that runs this script (the project's pinned `node` package).
  const child = spawn(process.execPath, [...HUB_NODE_FLAGS, ...nodeFlags, 'src/main.ts'], {
    cwd: options.repoRoot,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      BASE_URL: '',
      DATA_DIR: options.dataDir,
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      QUEUE_PREFIX: options.queuePrefix,
      LOG_LEVEL: 'warn',
      DIMSE_PORT: '0',
      ...options.env,
    },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const url = `http://127.0.0.1:${port}`;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });

  const stop = async (graceMs = 20_000): Promise<number | null> => {
    if (!exited) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, graceMs))) {
        child.kill('SIGKILL');
        await waitForExit(child, 5_000);
      }
    }
    return child.exitCode;
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 120_000);
  for (;;) {
    if (exited) {
      throw new Error(
        `The hub exited during start-up (code ${child.exitCode}). Its log (${options.logFile}):\n${tail(options.logFile)}`,
      );
    }
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `The hub did not become healthy in time. Its log (${options.logFile}):\n${tail(options.logFile)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, pid: child.pid ?? -1, stop };
}
