/**
 * A quick ingest timing loop (not the side-by-side benchmark): starts the hub as a child process on a
 * fresh database, sends N copies of pydicom's CT_small.dcm (fresh SOP Instance UIDs, one study and
 * series per round) by storescu over one association, then STOW-RS in batches of 50, and prints
 * instances/s for each. `node bench/ingest-loop.ts [N]` (Node 24: `npx node` or node_modules/.bin/node).
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDcmtk } from '../test/support/dicom/test-peer.ts';
import { writeMultipartRelated } from '../src/dicom/multipart.ts';
import { startHubProcess } from '../test/support/hub-process.ts';
import { createTestDatabase } from '../test/support/test-hub.ts';
import { freePort } from '../test/support/free-port.ts';

const CT_SMALL = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
const count = Number(process.argv[2] ?? 300);

/** The hub's user + system CPU time in ms (Linux /proc; clock ticks of 10 ms). */
async function hubCpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function uid(): string {
  return `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`).toString()}`;
}

/** `n` copies in one new study and series, each with a fresh SOP Instance UID. */
async function copies(dir: string, n: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths = Array.from({ length: n }, (_unused, index) => join(dir, `ct-${String(index).padStart(4, '0')}.dcm`));
  for (const path of paths) {
    await copyFile(CT_SMALL, path);
  }
  const result = await runDcmtk(
    'dcmodify',
    ['-nb', '-gin', '-m', `(0020,000D)=${uid()}`, '-m', `(0020,000E)=${uid()}`, ...paths],
    120_000,
  );
  if (result.code !== 0) {
    throw new Error(`dcmodify failed: ${result.output}`);
  }
  return paths;
}

const workDir = await mkdtemp(join(tmpdir(), 'ingest-loop-'));
const database = await createTestDatabase();
const dimsePort = await freePort();
const hub = await startHubProcess({
  DATA_DIR: join(workDir, 'data'),
  DATABASE_URL: database.url,
  DIMSE_PORT: String(dimsePort),
  LOG_LEVEL: 'info',
});
try {
  for (let round = 0; round < 3; round++) {
    const files = await copies(join(workDir, `dimse-${round}`), count);
    const cpu = await hubCpuMs(hub.child.pid!);
    const started = performance.now();
    const result = await runDcmtk(
      'storescu',
      ['-xs', '-aet', 'STORESCU', '-aec', 'HUB', '127.0.0.1', String(dimsePort), ...files],
      600_000,
    );
    const seconds = (performance.now() - started) / 1000;
    if (result.code !== 0) {
      throw new Error(`storescu failed: ${result.output}`);
    }
    const cpuPerInstance = ((await hubCpuMs(hub.child.pid!)) - cpu) / count;
    console.log(
      `C-STORE round ${round}: ${count} instances in ${seconds.toFixed(2)} s = ${(count / seconds).toFixed(0)}/s, hub CPU ${cpuPerInstance.toFixed(2)} ms/instance`,
    );
  }
  for (let round = 0; round < 3; round++) {
    const files = await copies(join(workDir, `stow-${round}`), count);
    const bodies = await Promise.all(files.map((file) => readFile(file)));
    const cpu = await hubCpuMs(hub.child.pid!);
    const started = performance.now();
    for (let offset = 0; offset < bodies.length; offset += 50) {
      const multipart = writeMultipartRelated(
        bodies.slice(offset, offset + 50).map((body) => ({ body, contentType: 'application/dicom' })),
        { type: 'application/dicom' },
      );
      const chunks: Buffer[] = [];
      for await (const chunk of multipart.body) {
        chunks.push(chunk as Buffer);
      }
      const response = await fetch(`${hub.url}/dicomweb/studies`, {
        method: 'POST',
        headers: { 'content-type': multipart.contentType, accept: 'application/dicom+json' },
        body: Buffer.concat(chunks),
      });
      await response.arrayBuffer();
      if (response.status !== 200) {
        throw new Error(`STOW status ${response.status}`);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const cpuPerInstance = ((await hubCpuMs(hub.child.pid!)) - cpu) / count;
    console.log(
      `STOW-RS round ${round}: ${count} instances in ${seconds.toFixed(2)} s = ${(count / seconds).toFixed(0)}/s, hub CPU ${cpuPerInstance.toFixed(2)} ms/instance`,
    );
  }
} finally {
  await hub.stop();
  await database.drop();
  await rm(workDir, { recursive: true, force: true });
}
