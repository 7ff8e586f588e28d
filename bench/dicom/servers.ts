/**
 * The two servers under test. Orthanc runs inside a network namespace that has only a loopback
 * interface (Orthanc 1.10 cannot bind to 127.0.0.1 alone), so it is unreachable from outside;
 * its clients run inside the same namespace. The hub runs as `npm start` would (`node src/main.ts`).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../test/support/free-port.ts';
import { HUB_NODE_FLAGS } from '../../test/support/node-flags.ts';
import { TokenSource, registerBenchClient } from '../fhir/auth.ts';
import { clearQueuePrefix } from '../fhir/queues.ts';

export const NETNS = 'hubbench-dicom';

/** The calling AE title the bench's storescu uses: the only one the hub allows, as a production hub lists its peers. */
export const BENCH_CALLING_AE_TITLE = 'BENCHSCU';

export interface Server {
  name: 'hub' | 'orthanc' | 'floor' | 'floor-wal' | 'floor-journal' | 'limit';
  /** DICOMweb base URL, as seen from where `wrap` runs commands. */
  dicomweb: string;
  dimsePort: number;
  aeTitle: string;
  pid: number;
  /** Prefix for commands that must reach this server (the namespace for Orthanc). */
  wrap(cmd: string, args: string[]): [string, string[]];
  /** The hub's inspector WebSocket, when started with `inspect`. */
  inspector?: string | undefined;
  /** The `Authorization` header value its DICOMweb requests need (the hub's, which requires a token). */
  authorization?: () => Promise<string>;
  stop(): Promise<void>;
}

export function missingTools(): string[] {
  const missing: string[] = [];
  const need: [string, string][] = [
    ['/usr/sbin/Orthanc', 'orthanc'],
    ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', 'orthanc-dicomweb'],
    ['/usr/bin/storescu', 'dcmtk'],
    ['/usr/bin/storescp', 'dcmtk'],
    ['/usr/bin/dcmodify', 'dcmtk'],
    ['/usr/lib/python3/dist-packages/pydicom/data/test_files', 'python3-pydicom'],
    ['/usr/sbin/ip', 'iproute2'],
  ];
  for (const [file, pkg] of need) {
    if (!fs.existsSync(file)) {
      missing.push(`${pkg} (${file})`);
    }
  }
  return missing;
}

/**
 * Moves a server's previous store out of the way instead of deleting it: on ext4 without a journal
 * (this machine's disk), creating files within about 30 s of deleting thousands makes every create
 * scan past the recently freed inodes, which would bill the next server for the cleanup. The
 * set-aside stores go with `removeSetAside` once the benchmark is over.
 */
function setAside(dir: string, workDir: string): void {
  if (!fs.existsSync(dir)) {
    return;
  }
  const trash = path.join(workDir, 'set-aside');
  fs.mkdirSync(trash, { recursive: true });
  fs.renameSync(dir, path.join(trash, `${path.basename(dir)}-${Date.now()}-${process.hrtime.bigint()}`));
}

export function removeSetAside(workDir: string): void {
  fs.rmSync(path.join(workDir, 'set-aside'), { recursive: true, force: true });
}

/** CPU seconds (user and system) the processes have used so far; a process gone counts 0. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces); utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The PostgreSQL backends connected to `database` (the hub's pool). */
export async function databasePids(adminUrl: string, database: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const result = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database],
    );
    return result.rows.map((row) => row.pid);
  } finally {
    await client.end();
  }
}

export function vmHwmKb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  child.kill('SIGTERM');
  if (!(await waitExit(child, 20_000))) {
    child.kill('SIGKILL');
    await waitExit(child, 5_000);
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

export function ensureNetns(): void {
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (!list.split('\n').some((line) => line.split(' ')[0] === NETNS)) {
    execFileSync('ip', ['netns', 'add', NETNS]);
  }
  execFileSync('ip', ['netns', 'exec', NETNS, 'ip', 'link', 'set', 'lo', 'up']);
  const links = execFileSync('ip', ['netns', 'exec', NETNS, 'ip', '-o', 'link'], { encoding: 'utf8' });
  const names = links
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (l.split(':')[1] ?? l).trim());
  if (names.some((n) => n !== 'lo')) {
    throw new Error(`namespace ${NETNS} has interfaces other than lo: ${names.join(', ')}`);
  }
}

export function removeNetns(): void {
  spawnSync('ip', ['netns', 'delete', NETNS]);
}

const inNs = (cmd: string, args: string[]): [string, string[]] => ['ip', ['netns', 'exec', NETNS, cmd, ...args]];

export async function startOrthanc(workDir: string): Promise<Server> {
  const storage = path.join(workDir, 'orthanc', 'storage');
  const logs = path.join(workDir, 'orthanc', 'logs');
  setAside(storage, workDir);
  fs.mkdirSync(storage, { recursive: true });
  fs.mkdirSync(logs, { recursive: true });
  const httpPort = 18042;
  const dimsePort = 14242;
  const config = {
    Name: 'HUB-BENCH-ORTHANC',
    StorageDirectory: storage,
    IndexDirectory: storage,
    StorageCompression: false,
    Plugins: ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so'],
    HttpServerEnabled: true,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: true,
    DicomAet: 'ORTHANC',
    DicomPort: dimsePort,
    DicomCheckCalledAet: false,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomModalities: {},
    SaveJobs: false,
    KeepAlive: true,
    TcpNoDelay: true,
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
  };
  const configFile = path.join(workDir, 'orthanc', 'orthanc.json');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  const logFile = path.join(logs, 'stdout.txt');
  const out = fs.openSync(logFile, 'a');
  const [cmd, args] = inNs('/usr/sbin/Orthanc', [`--logdir=${logs}`, configFile]);
  // `ip netns exec` execs Orthanc in place, so child.pid is Orthanc's pid.
  const child = spawn(cmd, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const base = `http://127.0.0.1:${httpPort}`;
  for (let i = 0; ; i += 1) {
    const probe = spawnSync(...inNs('curl', ['-sf', '-o', '/dev/null', `${base}/system`]));
    if (probe.status === 0) {
      break;
    }
    if (child.exitCode !== null || i > 300) {
      await stopChild(child);
      throw new Error(`Orthanc did not start; log ${logFile}:\n${tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'orthanc',
    dicomweb: `${base}/dicom-web`,
    dimsePort,
    aeTitle: 'ORTHANC',
    pid: child.pid ?? -1,
    wrap: inNs,
    stop: () => stopChild(child),
  };
}

export async function resetDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${database}"`);
  } finally {
    await client.end();
  }
}

const HUB_QUEUE_PREFIX = 'hubbench-dicom';

export async function startHub(options: {
  repoRoot: string;
  workDir: string;
  databaseUrl: string;
  /** Opens the hub's inspector on a loopback port, for CPU profiles of single measurements (`profile`). */
  inspect?: boolean;
}): Promise<Server> {
  // Each start has a fresh database, which the hub would refuse on a prefix an earlier one claimed.
  await clearQueuePrefix(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', HUB_QUEUE_PREFIX);
  const dataDir = path.join(options.workDir, 'hub-data');
  setAside(dataDir, options.workDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const port = await freePort();
  const dimsePort = await freePort();
  const logFile = path.join(options.workDir, 'hub.log');
  const logStart = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
  const out = fs.openSync(logFile, 'a');
  const inspect = options.inspect ? ['--inspect=127.0.0.1:0'] : [];
  const child = spawn(process.execPath, [...HUB_NODE_FLAGS, ...inspect, 'src/main.ts'], {
    cwd: options.repoRoot,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      BASE_URL: '',
      DATA_DIR: dataDir,
      DATABASE_URL: options.databaseUrl,
      QUEUE_PREFIX: HUB_QUEUE_PREFIX,
      LOG_LEVEL: 'warn',
      DIMSE_HOST: '127.0.0.1',
      DIMSE_PORT: String(dimsePort),
      DIMSE_AE_TITLE: 'HUB',
      // As a production hub runs (issue 16): tokens required, every DICOMweb request and C-STORE
      // association audited, and only a listed calling AE title let in. Orthanc keeps its defaults.
      AUTH_REQUIRED: 'true',
      AUDIT_ENABLED: 'true',
      DIMSE_ALLOWED_CALLING_AE_TITLES: BENCH_CALLING_AE_TITLE,
    },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`the hub exited during start-up; log ${logFile}:\n${tail(logFile)}`);
    }
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`the hub did not become healthy; log ${logFile}:\n${tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // A SMART Backend Services client (system/*.cruds: ImagingStudy c, r and s), registered once the
  // hub has migrated its fresh database.
  const tokens = new TokenSource(await registerBenchClient(options.databaseUrl), url);
  const inspector = options.inspect
    ? /Debugger listening on (ws:\/\/\S+)/.exec(fs.readFileSync(logFile, 'utf8').slice(logStart))?.[1]
    : undefined;
  return {
    name: 'hub',
    inspector,
    dicomweb: `${url}/dicomweb`,
    dimsePort,
    aeTitle: 'HUB',
    pid: child.pid ?? -1,
    wrap: (cmd, args) => [cmd, args],
    authorization: () => tokens.authorization(),
    stop: () => stopChild(child),
  };
}

/**
 * A durable floor (floor.ts): `files`, the hub's blob store and one committed row per instance;
 * `wal`, each instance's bytes in its committed row. Nothing else. Its `dicomweb` base answers only
 * STOW-RS; `count` is its GET /count.
 */
export async function startFloor(options: {
  repoRoot: string;
  workDir: string;
  databaseUrl: string;
  layout: 'files' | 'wal' | 'journal';
}): Promise<Server & { count(): Promise<number> }> {
  const dataDir = path.join(options.workDir, 'floor-data');
  setAside(dataDir, options.workDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const httpPort = await freePort();
  const dimsePort = await freePort();
  const logFile = path.join(options.workDir, 'floor.log');
  const child = spawn(
    process.execPath,
    [
      ...HUB_NODE_FLAGS,
      'bench/dicom/floor.ts',
      options.databaseUrl,
      dataDir,
      String(dimsePort),
      String(httpPort),
      options.layout,
    ],
    {
      cwd: options.repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (output.includes('ready')) {
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', () => reject(new Error(`the durable floor exited during start-up:\n${output.slice(-2000)}`)));
  });
  child.stdout.on('data', (d: Buffer) => fs.appendFileSync(logFile, d));
  child.stderr.on('data', (d: Buffer) => fs.appendFileSync(logFile, d));
  const base = `http://127.0.0.1:${httpPort}`;
  return {
    name: options.layout === 'files' ? 'floor' : `floor-${options.layout}`,
    dicomweb: `${base}/dicomweb`,
    dimsePort,
    aeTitle: 'FLOOR',
    pid: child.pid ?? -1,
    wrap: (cmd, args) => [cmd, args],
    stop: () => stopChild(child),
    count: async () => ((await (await fetch(`${base}/count`)).json()) as { instances: number }).instances,
  };
}

/**
 * The machine's limit for one association: dcmtk's own `storescp --ignore`, which receives every
 * data set and stores nothing (all transfer syntaxes it knows, any SOP class, Nagle off).
 */
export async function startStorescpIgnore(workDir: string): Promise<Server> {
  const dimsePort = await freePort();
  const out = fs.openSync(path.join(workDir, 'storescp-ignore.log'), 'a');
  const child = spawn('storescp', ['--ignore', '+xa', '-pm', String(dimsePort)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  for (let i = 0; ; i += 1) {
    const probe = spawnSync('echoscu', ['-aec', 'ANY', '127.0.0.1', String(dimsePort)]);
    if (probe.status === 0) {
      break;
    }
    if (child.exitCode !== null || i > 100) {
      await stopChild(child);
      throw new Error('storescp --ignore did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'limit',
    dicomweb: '',
    dimsePort,
    aeTitle: 'ANY',
    pid: child.pid ?? -1,
    wrap: (cmd, args) => [cmd, args],
    stop: () => stopChild(child),
  };
}

/**
 * Runs `work` under V8's sampling profiler in the hub (through its inspector) and writes the
 * profile to `file`: the CPU of one measurement, without the hub's start-up.
 */
export async function profiled<T>(server: Server, file: string, work: () => Promise<T>): Promise<T> {
  if (server.inspector === undefined) {
    return work();
  }
  const socket = new WebSocket(server.inspector);
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', reject, { once: true });
  });
  let next = 0;
  const pending = new Map<number, (result: unknown) => void>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) {
      pending.get(message.id)?.(message.result);
    }
  });
  const send = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 200 });
  await send('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = (await send('Profiler.stop')) as { profile: unknown };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(profile));
    socket.close();
  }
}
