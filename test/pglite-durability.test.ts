/**
 * The embedded default keeps what it acknowledged (issue 11, item 6): `node src/main.ts` with no
 * DATABASE_URL, traced with strace while it answers creates. Every 201 must come after an fdatasync
 * (or fsync) of the WAL segment that covers every WAL write made before it, and concurrent creates
 * must share flushes (group commit).
 *
 * The hub runs only the api role, with AUDIT_ENABLED=false: the outbox relay and the audit journal
 * would otherwise write WAL of their own between a create's commit and its answer, and the trace
 * could not tell whose writes those were. What remains writes WAL only for the creates.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { attachStrace } from './support/strace.ts';
import type { TracedCall } from './support/strace.ts';
import { fhirFetch } from './support/test-hub.ts';

const SYSCALLS = ['fsync', 'fdatasync', 'sync_file_range', 'pwrite64', 'pwritev', 'write', 'writev'];
const WAL_SEGMENT = /\/pgdata\/pg_wal\/[0-9A-F]{24}$/;

const patient = (family: string) => ({ resourceType: 'Patient', name: [{ family }], gender: 'unknown' });

const walWrites = (calls: TracedCall[]) =>
  calls.filter((c) => c.name.startsWith('pwrite') && WAL_SEGMENT.test(c.path ?? '') && c.result > 0);
const walFlushes = (calls: TracedCall[]) =>
  calls.filter((c) => (c.name === 'fdatasync' || c.name === 'fsync') && WAL_SEGMENT.test(c.path ?? ''));
const createdAnswers = (calls: TracedCall[]) =>
  calls.filter((c) => (c.name === 'write' || c.name === 'writev') && c.text.includes('HTTP/1.1 201'));

/**
 * The WAL writes that an answer went out before being covered: for each segment written before the
 * answer, its last write must be followed by a successful flush of that segment that began after the
 * write returned and returned before the answer was sent.
 */
function uncoveredBefore(answer: TracedCall, calls: TracedCall[]): TracedCall[] {
  const flushes = walFlushes(calls);
  const lastWriteOf = new Map<string, TracedCall>();
  for (const write of walWrites(calls).filter((w) => w.exit < answer.entry)) {
    lastWriteOf.set(write.path ?? '', write);
  }
  return [...lastWriteOf.values()].filter(
    (write) =>
      !flushes.some(
        (flush) =>
          flush.path === write.path && flush.result === 0 && flush.entry > write.exit && flush.exit < answer.entry,
      ),
  );
}

let dataDir: string;
let hub: HubProcess;
/** Every Patient the hub answered 201 for. */
const acknowledged: string[] = [];

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-durability-'));
  // PGlite initialises a new data directory in WebAssembly: seconds, more on a busy machine.
  hub = await startHubProcess({ DATA_DIR: dataDir, HUB_ROLES: 'api', AUDIT_ENABLED: 'false' }, 90_000);
}, 120_000);

afterAll(async () => {
  await hub?.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

test('the embedded database says at start-up that it flushes each commit', () => {
  const ready = hub.logs.find((line) => line.msg === 'database ready');
  expect(ready?.database).toBe('pglite');
  expect(ready?.durability).toMatch(/fdatasync/);
  expect(hub.logs.filter((line) => line.msg.includes('can be lost'))).toEqual([]);
});

test('five creates: each 201 goes out after a flush of the WAL that holds it', async () => {
  const tracer = await attachStrace(hub.child.pid ?? -1, SYSCALLS, path.join(dataDir, 'sequential.strace'));
  let calls: TracedCall[];
  try {
    for (let n = 1; n <= 5; n++) {
      const created = await fhirFetch(`${hub.url}/fhir/Patient`, { method: 'POST', body: patient(`Durable${n}`) });
      expect(created.status).toBe(201);
      acknowledged.push(created.body.id as string);
    }
  } finally {
    calls = await tracer.stop();
  }
  const answers = createdAnswers(calls);
  expect(answers).toHaveLength(5);
  let previous = -1;
  for (const answer of answers) {
    // The create itself wrote WAL since the previous answer: there is something to cover.
    expect(walWrites(calls).filter((w) => w.exit > previous && w.exit < answer.entry).length).toBeGreaterThan(0);
    expect(uncoveredBefore(answer, calls).map((w) => w.text)).toEqual([]);
    previous = answer.entry;
  }
}, 60_000);

test('on a slow disk, concurrent creates share flushes (group commit), none answered before its flush', async () => {
  const creates = 40;
  // Each flush made to take 50 ms, as on a disk without a write cache: commits that end meanwhile
  // must wait for the next flush together, not queue for one each.
  const tracer = await attachStrace(hub.child.pid ?? -1, SYSCALLS, path.join(dataDir, 'concurrent.strace'), {
    delay: { syscalls: ['fdatasync', 'fsync'], ms: 50 },
  });
  let calls: TracedCall[];
  try {
    const results = await Promise.all(
      Array.from({ length: creates }, (_, n) =>
        fhirFetch(`${hub.url}/fhir/Patient`, { method: 'POST', body: patient(`Group${n}`) }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: creates }, () => 201));
    acknowledged.push(...results.map((r) => r.body.id as string));
  } finally {
    calls = await tracer.stop();
  }
  const answers = createdAnswers(calls);
  expect(answers).toHaveLength(creates);
  const flushes = walFlushes(calls).filter((f) => f.result === 0);
  expect(flushes.length).toBeGreaterThan(0);
  expect(flushes.length).toBeLessThanOrEqual(creates / 2);
  for (const answer of answers) {
    // Each answer waited for a flush that began after some WAL write of this burst and ended before it.
    expect(
      flushes.some((flush) => flush.exit < answer.entry && walWrites(calls).some((w) => w.exit < flush.entry)),
    ).toBe(true);
  }
  // By the last answer every create has committed, and each waited for a flush covering its commit.
  expect(uncoveredBefore(answers[answers.length - 1] as TracedCall, calls).map((w) => w.text)).toEqual([]);
}, 60_000);

test('killed outright, the hub recovers with flushing on and still has every create it acknowledged', async () => {
  expect(acknowledged.length).toBeGreaterThan(0);
  hub.child.kill('SIGKILL');
  await hub.exited;
  // Recovery replays the WAL and then flushes the whole data directory through the real fsync.
  hub = await startHubProcess({ DATA_DIR: dataDir, HUB_ROLES: 'api', AUDIT_ENABLED: 'false' }, 90_000);
  for (const id of acknowledged) {
    expect((await fhirFetch(`${hub.url}/fhir/Patient/${id}`)).status).toBe(200);
  }
}, 120_000);
