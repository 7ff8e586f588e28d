/**
 * Where the hub's memory goes: starts the hub as `npm start` does (a child process on a fresh
 * PostgreSQL database) and reads its VmRSS / VmHWM from /proc at each stage: idle after start-up,
 * after a few FHIR requests, during and after C-STORE of the DICOM benchmark corpus plus QIDO queries,
 * and (in a second fresh hub, as bench:dicom does) during and after STOW-RS in batches of 50.
 *
 *   node bench/memory.ts [--quick] [--snapshots] [--node-options "..."]
 *   --quick        the small corpus (2 patients x 8 studies) instead of the full one (1,328 instances)
 *   --snapshots    also write V8 heap snapshots (SIGUSR2) at each stage into bench/.work/memory/ and
 *                  print the largest self sizes by constructor
 *   --node-options="..."  extra NODE_OPTIONS for the hub (to try V8 flags)
 * Needs dcmtk (storescu, dcmodify), python3-pydicom's test files, PostgreSQL and Redis.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCorpus, writeStorescuProfile } from './dicom/corpus.ts';
import type { Corpus } from './dicom/corpus.ts';
import type { ChildProcess } from 'node:child_process';
import { spawnMain } from '../test/support/hub-process.ts';
import { TEST_REDIS_URL, createTestDatabase } from '../test/support/test-hub.ts';
import { freePort } from '../test/support/free-port.ts';
import { defined } from '../test/support/defined.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workDir = path.join(repoRoot, 'bench', '.work', 'memory');
const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    snapshots: { type: 'boolean', default: false },
    'node-options': { type: 'string', default: '' },
  },
});

interface Memory {
  rssMb: number;
  hwmMb: number;
}

function readMemory(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** Samples VmRSS every 50 ms while `work` runs; resolves with the highest sample. */
async function sampled<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; maxRssMb: number; seconds: number }> {
  let maxRssMb = 0;
  const started = performance.now();
  const timer = setInterval(() => {
    maxRssMb = Math.max(maxRssMb, readMemory(pid).rssMb);
  }, 50);
  try {
    const result = await work();
    return { result, maxRssMb, seconds: (performance.now() - started) / 1000 };
  } finally {
    clearInterval(timer);
  }
}

const rows: string[] = [];
function report(stage: string, pid: number, sample?: { maxRssMb: number; seconds: number }): void {
  const m = readMemory(pid);
  const line =
    `${stage.padEnd(34)} VmRSS ${m.rssMb.toFixed(1).padStart(6)} MB   VmHWM ${m.hwmMb.toFixed(1).padStart(6)} MB` +
    (sample === undefined
      ? ''
      : `   max sampled VmRSS ${sample.maxRssMb.toFixed(1).padStart(6)} MB in ${sample.seconds.toFixed(1)} s`);
  rows.push(line);
  console.log(line);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Asks the hub for a heap snapshot and prints the twelve largest constructors by self size. */
async function snapshot(hub: ChildProcess, label: string): Promise<void> {
  if (!opts.snapshots) {
    return;
  }
  const before = new Set(fs.readdirSync(workDir));
  hub.kill('SIGUSR2');
  let file: string | undefined;
  for (let i = 0; i < 600 && !file; i += 1) {
    await sleep(100);
    file = fs.readdirSync(workDir).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
  }
  if (!file) {
    throw new Error('no heap snapshot written');
  }
  // The file is complete once it ends the top-level object and its size stops changing.
  const written = path.join(workDir, file);
  const complete = (): boolean => {
    const text = fs.readFileSync(written, 'latin1');
    return text.trimEnd().endsWith('}');
  };
  let size = -1;
  while (size !== fs.statSync(written).size || !complete()) {
    size = fs.statSync(written).size;
    await sleep(1000);
  }
  const target = path.join(workDir, `${label}.heapsnapshot`);
  fs.renameSync(written, target);
  console.log(`  heap snapshot ${path.relative(repoRoot, target)}: ${summarizeSnapshot(target)}`);
}

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size by (node type, constructor name), largest first. */
function summarizeSnapshot(file: string): string {
  const heap = JSON.parse(fs.readFileSync(file, 'utf8')) as HeapSnapshotFile;
  const fields = heap.snapshot.meta.node_fields;
  const typeNames = heap.snapshot.meta.node_types[0];
  const width = fields.length;
  const column = (field: string): number => {
    const index = fields.indexOf(field);
    if (index < 0) {
      throw new Error(`${file}: the heap snapshot's nodes have no ${field} field`);
    }
    return index;
  };
  const [typeAt, nameAt, sizeAt] = [column('type'), column('name'), column('self_size')];
  const node = (index: number): number => defined(heap.nodes[index], `${file}: node field ${index}`);
  const totals = new Map<string, { bytes: number; count: number }>();
  let all = 0;
  for (let i = 0; i < heap.nodes.length; i += width) {
    const type = defined(typeNames[node(i + typeAt)], `${file}: the type of node ${i / width}`);
    const name =
      type === 'object' || type === 'native'
        ? defined(heap.strings[node(i + nameAt)], `${file}: the name of node ${i / width}`)
        : `(${type})`;
    const size = node(i + sizeAt);
    const entry = totals.get(name) ?? { bytes: 0, count: 0 };
    entry.bytes += size;
    entry.count += 1;
    all += size;
    totals.set(name, entry);
  }
  const top = [...totals].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 12);
  return `${(all / 2 ** 20).toFixed(1)} MB live\n${top
    .map(
      ([name, t]) =>
        `    ${(t.bytes / 2 ** 20).toFixed(1).padStart(6)} MB ${String(t.count).padStart(8)}x ${name.slice(0, 60)}`,
    )
    .join('\n')}`;
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('env', ['TCP_NODELAY=1', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** Starts `node src/main.ts` at LOG_LEVEL=warn (as bench:dicom does) and waits for /healthz. */
async function startFreshHub(): Promise<{
  hub: ChildProcess;
  url: string;
  dimsePort: number;
  drop: () => Promise<void>;
}> {
  const database = await createTestDatabase();
  const port = await freePort();
  const dimsePort = await freePort();
  const dataDir = path.join(workDir, `data-${Date.now()}`);
  const nodeOptions = [
    opts.snapshots ? `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${workDir}` : '',
    opts['node-options'],
  ]
    .join(' ')
    .trim();
  const hub = spawnMain({
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: 'memory-bench',
    DIMSE_PORT: String(dimsePort),
    DIMSE_AE_TITLE: 'HUB',
    LOG_LEVEL: 'warn',
    // Measured without tokens on loopback, as bench:dicom does (the audit still runs).
    AUTH_REQUIRED: 'false',
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
  });
  let output = '';
  hub.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  hub.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => hub.once('exit', () => resolve()));
  const drop = async (): Promise<void> => {
    if (hub.exitCode === null && hub.signalCode === null) {
      hub.kill('SIGTERM');
      await exited;
    }
    await database.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (output !== '') {
      console.log(`hub warnings and errors (last 2000 characters):\n${output.slice(-2000)}`);
    }
  };
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 120_000; ;) {
    if (hub.exitCode !== null || Date.now() > deadline) {
      await drop();
      throw new Error(`the hub did not start:\n${output.slice(-4000)}`);
    }
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return { hub, url, dimsePort, drop };
}

async function fhirRequests(base: string): Promise<void> {
  const headers = { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' };
  const created = await fetch(`${base}/fhir/Patient`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      resourceType: 'Patient',
      gender: 'female',
      birthDate: '1970-01-01',
      name: [{ family: 'Memory' }],
    }),
  });
  if (created.status !== 201) {
    throw new Error(`POST Patient: ${created.status} ${await created.text()}`);
  }
  await created.arrayBuffer();
  for (const url of [
    `${base}/fhir/Patient?family=Memory`,
    `${base}/fhir/metadata`,
    `${base}/fhir/ImagingStudy?_count=5`,
  ]) {
    const response = await fetch(url, { headers });
    if (!response.ok) {
      throw new Error(`GET ${url}: ${response.status}`);
    }
    await response.arrayBuffer();
  }
}

async function stowBatches(dicomweb: string, corpus: Corpus, batchSize: number): Promise<void> {
  const boundary = 'memory-bench-boundary';
  for (let i = 0; i < corpus.files.length; i += batchSize) {
    const parts: Buffer[] = [];
    for (const file of corpus.files.slice(i, i + batchSize)) {
      parts.push(
        Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
        fs.readFileSync(file.path),
        Buffer.from('\r\n'),
      );
    }
    parts.push(Buffer.from(`--${boundary}--\r\n`));
    const response = await fetch(`${dicomweb}/studies`, {
      method: 'POST',
      headers: {
        accept: 'application/dicom+json',
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      },
      body: Buffer.concat(parts),
    });
    await response.arrayBuffer();
    // 409 when every instance of a batch is refused (bench:dicom counts, rather than fails on, refusals).
    if (![200, 202, 409].includes(response.status)) {
      throw new Error(`STOW-RS: ${response.status}`);
    }
  }
}

async function qidoQueries(dicomweb: string): Promise<void> {
  for (const url of [
    `${dicomweb}/studies`,
    `${dicomweb}/studies?limit=25&includefield=00081030%2C00080060`,
    `${dicomweb}/studies?PatientID=BENCH-01`,
  ]) {
    for (let i = 0; i < 5; i += 1) {
      const response = await fetch(url, { headers: { accept: 'application/dicom+json' } });
      if (!response.ok) {
        throw new Error(`GET ${url}: ${response.status}`);
      }
      await response.arrayBuffer();
    }
  }
}

fs.mkdirSync(workDir, { recursive: true });
const corpus = buildCorpus({
  dir: path.join(repoRoot, 'bench', '.work', 'dicom', opts.quick ? 'corpus-quick' : 'corpus'),
  classificationFile: path.join(repoRoot, 'test', 'support', 'dicom', 'testdata', 'pydicom-testfiles-classified.txt'),
  patients: opts.quick ? 2 : 16,
  studiesPerPatient: 8,
  log: (line) => console.log(line),
});
const profile = path.join(workDir, 'storescu-profile.cfg');
writeStorescuProfile(corpus, profile);
console.log(`corpus: ${corpus.files.length} instances, ${(corpus.bytes / 1e6).toFixed(1)} MB`);

// Hub 1: start-up, FHIR, C-STORE, QIDO.
{
  const { hub, url, dimsePort, drop } = await startFreshHub();
  const pid = hub.pid!;
  try {
    await sleep(1000);
    report('idle after start-up', pid);
    await snapshot(hub, 'idle');
    await fhirRequests(url);
    await sleep(500);
    report('after FHIR requests', pid);
    await snapshot(hub, 'after-fhir');
    const cstore = await sampled(pid, () =>
      run('storescu', [
        '-xf',
        profile,
        'Bench',
        '-aet',
        'MEMSCU',
        '-aec',
        'HUB',
        '+sd',
        '+r',
        '127.0.0.1',
        String(dimsePort),
        corpus.dir,
      ]),
    );
    // storescu exits non-zero when the hub refuses some instances (as it does a few of the corpus).
    report(`after C-STORE (storescu exit ${cstore.result.code})`, pid, cstore);
    if (cstore.result.code !== 0) {
      console.log(cstore.result.output.slice(-1500));
    }
    const qido = await sampled(pid, () => qidoQueries(`${url}/dicomweb`));
    report('after QIDO', pid, qido);
    await snapshot(hub, 'after-cstore');
  } finally {
    await drop();
  }
}

// Hub 2: STOW-RS in batches of 50 from an empty store.
{
  const { hub, url, drop } = await startFreshHub();
  const pid = hub.pid!;
  try {
    await sleep(1000);
    report('idle after start-up (2nd hub)', pid);
    const stow = await sampled(pid, () => stowBatches(`${url}/dicomweb`, corpus, 50));
    report('after STOW-RS batches of 50', pid, stow);
    await snapshot(hub, 'after-stow');
  } finally {
    await drop();
  }
}
console.log(`\n${rows.join('\n')}`);
