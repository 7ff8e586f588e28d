/**
 * `npx hub dicom import PATH` as an operator runs it on a patient's CD: a real process next to a
 * running hub on PostgreSQL, and on the embedded database while the hub is stopped (refused, with
 * the alternatives named, while it runs). The media: a DICOMDIR made by dcmmkdir, nested folders, a
 * file the DICOMDIR does not list (a JPEG it would not take), a non-DICOM file, a truncated DICOM
 * file, a file listed but missing, the same image twice; a zip archive; and an interrupted run
 * taken up again. What is stored is read back through WADO-RS byte for byte, its ImagingStudy
 * through FHIR, and the Import AuditEvent from the audit store.
 */
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { runHubCli } from './support/hub-cli.ts';
import type { CliResult } from './support/hub-cli.ts';
import { NODE_BIN, REPO_ROOT, cleanEnvironment, startHubProcess } from './support/hub-process.ts';
import type { HubProcess } from './support/hub-process.ts';
import { runDcmtk } from './support/dicom/test-peer.ts';
import { createTestDatabase } from './support/test-hub.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

interface Instance {
  /** Where it is on the media. */
  path: string;
  study: string;
  series: string;
  sop: string;
}

async function dcmtk(command: string, args: string[]): Promise<void> {
  const result = await runDcmtk(command, args);
  expect({ command, code: result.code, output: result.output }).toEqual({ command, code: 0, output: '' });
}

/** A copy of a pydicom file with fresh UIDs (`-gst -gse -gin`, or fewer to stay in a study or series). */
async function makeInstance(source: string, target: string, regenerate: string[]): Promise<Instance> {
  await mkdir(join(target, '..'), { recursive: true });
  await copyFile(source, target);
  await dcmtk('dcmodify', ['-nb', ...regenerate, target]);
  return uidsOf(target);
}

async function uidsOf(path: string): Promise<Instance> {
  const dump = await runDcmtk('dcmdump', ['-s', '+P', '0020,000d', '+P', '0020,000e', '+P', '0008,0018', path]);
  const [study, series, sop] = [...dump.output.matchAll(/\[([\d.]+)\]/g)].map((match) => match[1]!);
  return { path, study: study!, series: series!, sop: sop! };
}

/** The one part of a WADO-RS instance retrieval. */
async function retrieve(baseUrl: string, instance: Instance): Promise<Buffer> {
  const response = await fetch(
    `${baseUrl}/dicomweb/studies/${instance.study}/series/${instance.series}/instances/${instance.sop}`,
    { headers: { accept: 'multipart/related; type="application/dicom"' } },
  );
  expect({ sop: instance.sop, status: response.status }).toEqual({ sop: instance.sop, status: 200 });
  const body = Buffer.from(await response.arrayBuffer());
  const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get('content-type')!)![1]!;
  const start = body.indexOf('\r\n\r\n', body.indexOf(`--${boundary}\r\n`)) + 4;
  return body.subarray(start, body.indexOf(`\r\n--${boundary}--`, start));
}

async function imagingStudyInstances(baseUrl: string, study: string): Promise<number | undefined> {
  const response = await fetch(`${baseUrl}/fhir/ImagingStudy?identifier=urn:oid:${study}`, {
    headers: { accept: 'application/fhir+json' },
  });
  expect(response.status).toBe(200);
  const bundle = (await response.json()) as { entry?: { resource: { numberOfInstances?: number } }[] };
  return bundle.entry?.[0]?.resource.numberOfInstances;
}

/** The summary's `name: value` lines. */
function counts(stdout: string): Record<string, string> {
  return Object.fromEntries(
    [...stdout.matchAll(/^ {2}([a-zA-Z ]+):\s+(\d+)/gm)].map((match) => [match[1]!.trim(), match[2]!]),
  );
}

/** The media of a patient's CD, and what should become of each file. */
interface Cd {
  root: string;
  stored: Instance[];
  duplicate: Instance;
  studies: string[];
}

async function makeCd(root: string): Promise<Cd> {
  const ct = join(TEST_FILES, 'CT_small.dcm');
  const mr = join(TEST_FILES, 'MR_small.dcm');
  const im1 = await makeInstance(ct, join(root, 'DICOM/ST1/SE1/IM1'), ['-gst', '-gse', '-gin']);
  // The same study and series, another instance.
  await copyFile(im1.path, join(root, 'DICOM/ST1/SE1/IM2'));
  await dcmtk('dcmodify', ['-nb', '-gin', join(root, 'DICOM/ST1/SE1/IM2')]);
  const im2 = await uidsOf(join(root, 'DICOM/ST1/SE1/IM2'));
  const im3 = await makeInstance(mr, join(root, 'DICOM/ST2/SE1/IM3'), ['-gst', '-gse', '-gin']);
  await makeInstance(mr, join(root, 'DICOM/ST2/SE1/IM4'), ['-gin']);
  // dcmmkdir's general-purpose CD profile takes only uncompressed files: IM5 stays out of the DICOMDIR.
  await dcmtk('dcmcjpeg', [im1.path, join(root, 'DICOM/ST1/SE1/IM5')]);
  await dcmtk('dcmodify', ['-nb', '-gin', join(root, 'DICOM/ST1/SE1/IM5')]);
  const im5 = await uidsOf(join(root, 'DICOM/ST1/SE1/IM5'));
  await promisify(execFile)('dcmmkdir', ['+r', '-Pgp', '+I', 'DICOM'], { cwd: root }).catch(() => undefined);
  await readFile(join(root, 'DICOMDIR'));
  // Listed in the DICOMDIR, then lost.
  await unlink(join(root, 'DICOM/ST2/SE1/IM4'));
  // Not listed: deep in other folders, a non-DICOM file, a truncated one, and IM1 again.
  const im6 = await makeInstance(mr, join(root, 'EXTRA/NESTED/DEEP/IM6'), ['-gst', '-gse', '-gin']);
  await writeFile(join(root, 'README.TXT'), 'Viewer: run VIEWER.EXE\r\n');
  await makeInstance(mr, join(root, 'EXTRA/BROKEN'), ['-gst', '-gse', '-gin']);
  await truncate(join(root, 'EXTRA/BROKEN'), 2000);
  await mkdir(join(root, 'COPY'));
  await copyFile(im1.path, join(root, 'COPY/IM1'));
  return {
    root,
    stored: [im1, im2, im3, im5, im6],
    duplicate: { ...im1, path: join(root, 'COPY/IM1') },
    studies: [...new Set([im1.study, im3.study, im6.study])],
  };
}

/** A zip of a DICOMDIR, two instances in nested folders and a viewer program. */
async function makeZip(work: string): Promise<{ zip: string; stored: Instance[] }> {
  const folder = join(work, 'zip-content');
  const ct = join(TEST_FILES, 'CT_small.dcm');
  const a = await makeInstance(ct, join(folder, 'DICOM/A/B/IM1'), ['-gst', '-gse', '-gin']);
  await copyFile(a.path, join(folder, 'DICOM/A/B/IM2'));
  await dcmtk('dcmodify', ['-nb', '-gin', join(folder, 'DICOM/A/B/IM2')]);
  const b = await uidsOf(join(folder, 'DICOM/A/B/IM2'));
  await promisify(execFile)('dcmmkdir', ['+r', '-Pgp', '+I', 'DICOM'], { cwd: folder });
  await mkdir(join(folder, 'VIEWER'));
  await writeFile(join(folder, 'VIEWER/VIEWER.EXE'), Buffer.from('MZ not really a program'));
  const zip = join(work, 'cd.zip');
  await promisify(execFile)('/usr/bin/python3', ['-m', 'zipfile', '-c', zip, 'DICOMDIR', 'DICOM', 'VIEWER'], {
    cwd: folder,
  });
  return { zip, stored: [a, b] };
}

describe('hub dicom import on PostgreSQL, while a hub process runs', () => {
  let work: string;
  let dataDir: string;
  let database: { url: string; drop: () => Promise<void> };
  let hub: HubProcess;
  let env: Record<string, string>;
  let cd: Cd;
  let first: CliResult;
  const audits = async (): Promise<Record<string, unknown>[]> => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const result = await client.query<{ content: string }>(
        `SELECT content FROM audit_event WHERE content::jsonb -> 'type' ->> 'code' = '110107' ORDER BY recorded`,
      );
      return result.rows.map((row) => JSON.parse(row.content) as Record<string, unknown>);
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    work = await mkdtemp(join(os.tmpdir(), 'dicom-import-'));
    dataDir = join(work, 'data');
    database = await createTestDatabase();
    [hub, cd] = await Promise.all([
      startHubProcess({ DATABASE_URL: database.url, DATA_DIR: dataDir }),
      makeCd(join(work, 'cd')),
    ]);
    env = { DATABASE_URL: database.url, DATA_DIR: dataDir, BASE_URL: hub.url };
    first = await runHubCli(['dicom', 'import', cd.root], env);
  }, 90_000);

  afterAll(async () => {
    await hub?.stop();
    await database?.drop();
    await rm(work, { recursive: true, force: true });
  });

  test('a CD folder: every DICOM file stored, the others counted, the refused ones listed with their reason', () => {
    expect({ code: first.code, stderr: first.stderr.replace(/^progress: .*\n/gm, '') }).toEqual({
      code: 3,
      stderr: '',
    });
    expect(counts(first.stdout)).toEqual({
      files: '8',
      stored: '5',
      'already stored': '1',
      'not DICOM': '1',
      DICOMDIRs: '1',
      refused: '2',
      studies: '3',
    });
    expect(first.stdout).toContain(`Imported from ${cd.root} (folder, DICOMDIR listing 4 files):`);
    const refused = first.stdout.slice(first.stdout.indexOf('Refused:\n')).split('\n').slice(1, 3).sort();
    expect(refused).toEqual([
      expect.stringMatching(/^ {2}DICOM\/ST2\/SE1\/IM4: listed in the DICOMDIR but not on the media$/),
      expect.stringMatching(/^ {2}EXTRA\/BROKEN: .*truncated/),
    ]);
    // Not a terminal: plain progress lines, without control characters.
    expect(first.stderr).toMatch(/^progress: 8\/8 files, [\d.]+\/[\d.]+ MB, .* MB\/s, took \d+:\d\d\n$/m);
    expect(first.stderr.includes('\r') || first.stderr.includes('\u001b')).toBe(false);
  });

  test('what it stored is served by the running hub byte for byte, with its ImagingStudy', async () => {
    for (const instance of cd.stored) {
      expect((await retrieve(hub.url, instance)).equals(await readFile(instance.path))).toBe(true);
    }
    const [study] = cd.studies;
    expect(await imagingStudyInstances(hub.url, study!)).toBe(3);
    const qido = await fetch(`${hub.url}/dicomweb/studies?StudyInstanceUID=${cd.studies.join(',')}`);
    expect(((await qido.json()) as unknown[]).length).toBe(3);
  });

  test('one Import AuditEvent names the operating-system account, the studies and that files were refused', async () => {
    const [event, ...more] = await audits();
    expect(more).toHaveLength(0);
    expect(event).toMatchObject({
      resourceType: 'AuditEvent',
      type: { code: '110107', display: 'Import' },
      subtype: [{ code: 'media-import' }],
      action: 'C',
      outcome: '4',
      outcomeDesc: 'some files were not stored',
    });
    const agents = event!.agent as { altId?: string; requestor: boolean; who?: { display?: string } }[];
    expect(agents.find((agent) => agent.requestor)?.altId).toBe(`${os.userInfo().username}@${os.hostname()}`);
    expect(agents.map((agent) => agent.who?.display)).toContain('folder');
    const entities = JSON.stringify(event!.entity);
    for (const study of cd.studies) {
      expect(entities).toContain(`urn:oid:${study}`);
    }
    // Never the path, which may name the patient.
    expect(JSON.stringify(event)).not.toContain(cd.root);
  });

  test('a re-run stores nothing again: every instance counted as already stored', async () => {
    const again = await runHubCli(['dicom', 'import', cd.root, '--json'], env);
    expect(again.code).toBe(3);
    const summary = JSON.parse(again.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ files: 8, stored: 0, alreadyStored: 6, notDicom: 1, interrupted: false });
    expect((summary.refused as unknown[]).length).toBe(2);
    expect(summary.studies).toEqual([...cd.studies].sort());
    expect((await audits()).map((event) => event.outcome)).toEqual(['4', '4']);
  });

  test('a zip archive, for a hub user named with --operator, drawn with a progress bar on a terminal', async () => {
    const { zip, stored } = await makeZip(work);
    const password = join(work, 'password');
    await writeFile(password, 'a long enough password for the operator 1');
    const added = await runHubCli(
      ['user', 'add', '--email', 'operator@example.org', '--role', 'coordinator', '--password-file', password],
      env,
    );
    expect(added.code).toBe(0);
    expect((await runHubCli(['dicom', 'import', zip, '--operator', 'nobody@example.org'], env)).code).toBe(2);

    // script(1) gives the command a terminal: the bar is redrawn in place on it.
    const command = [NODE_BIN, 'bin/hub.js', 'dicom', 'import', zip, '--operator', 'operator@example.org'];
    const terminal = await promisify(execFile)(
      'script',
      ['-qec', command.map((arg) => `'${arg}'`).join(' '), '/dev/null'],
      { cwd: REPO_ROOT, env: { ...cleanEnvironment(), ...env, COLUMNS: '100' } },
    );
    expect(terminal.stdout).toMatch(/\r\[#+\] 3\/3 files, /);
    expect(counts(terminal.stdout.replace(/\r\n/g, '\n'))).toMatchObject({
      files: '3',
      stored: '2',
      'not DICOM': '1',
      refused: '0',
    });
    for (const instance of stored) {
      expect((await retrieve(hub.url, instance)).equals(await readFile(instance.path))).toBe(true);
    }
    const event = (await audits()).at(-1)!;
    expect(event.outcome).toBe('0');
    const person = (event.agent as { requestor: boolean; who?: { identifier?: { value?: string } } }[]).find(
      (agent) => agent.requestor,
    );
    const users = JSON.parse((await runHubCli(['user', 'list', '--json'], env)).stdout) as { id: string }[];
    expect(person?.who?.identifier?.value).toBe(users[0]!.id);
  });

  test('interrupted, it finishes the files in hand, reports and exits 130; the next run goes on', async () => {
    const many = join(work, 'many');
    await mkdir(many);
    await promisify(execFile)('/usr/bin/python3', [
      '-c',
      [
        'import sys, pydicom',
        'from pydicom.uid import generate_uid',
        `ds = pydicom.dcmread('${join(TEST_FILES, 'CT_small.dcm')}')`,
        'ds.StudyInstanceUID = generate_uid()',
        'for i in range(300):',
        '    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()',
        `    ds.save_as(f'${many}/IM{i:04d}', write_like_original=True)`,
      ].join('\n'),
    ]);
    const child = spawn(NODE_BIN, ['bin/hub.js', 'dicom', 'import', many], {
      cwd: REPO_ROOT,
      env: { ...cleanEnvironment(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    // The first progress line comes once the first file is stored: the import is under way.
    await new Promise<void>((resolve) =>
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (stderr.includes('progress: ')) {
          resolve();
        }
      }),
    );
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stdout).toContain('Interrupted import from');
    const storedFirst = Number(counts(stdout).stored);
    expect(storedFirst).toBeGreaterThan(0);
    expect(storedFirst).toBeLessThan(300);
    const rest = await runHubCli(['dicom', 'import', many, '--json'], env);
    expect(rest.code).toBe(0);
    expect(JSON.parse(rest.stdout)).toMatchObject({ stored: 300 - storedFirst, alreadyStored: storedFirst });
    expect((await audits()).slice(-2).map((event) => [event.outcome, event.outcomeDesc])).toEqual([
      ['4', 'the import was interrupted'],
      ['0', undefined],
    ]);
  });

  test("a DATA_DIR that does not hold the hub's DICOM files is refused before anything is stored", async () => {
    const elsewhere = await runHubCli(['dicom', 'import', cd.root], { ...env, DATA_DIR: join(work, 'other') });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain("run the import with the hub's own DATA_DIR");
    expect((await audits()).length).toBe(5);
  });
});

describe('hub dicom import on the embedded database', () => {
  let work: string;
  let dataDir: string;
  let hub: HubProcess | undefined;
  let cd: Cd;

  beforeAll(async () => {
    work = await mkdtemp(join(os.tmpdir(), 'dicom-import-pglite-'));
    dataDir = join(work, 'data');
    [hub, cd] = await Promise.all([startHubProcess({ DATA_DIR: dataDir }, 60_000), makeCd(join(work, 'cd'))]);
  }, 90_000);

  afterAll(async () => {
    await hub?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('refused while the hub runs, naming what to do instead; stored once it is stopped, and served when it is back', async () => {
    const refused = await runHubCli(['dicom', 'import', cd.root], { DATA_DIR: dataDir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is open in a running hub');
    expect(refused.stderr).toContain('Stop the hub and run the import again');
    expect(refused.stderr).toContain('storescu +sd +r');
    expect(refused.stderr).toContain('STOW-RS');

    await hub!.stop();
    hub = undefined;
    const imported = await runHubCli(['dicom', 'import', join(cd.root, 'DICOMDIR')], { DATA_DIR: dataDir });
    expect(imported.code).toBe(3);
    expect(counts(imported.stdout)).toMatchObject({ stored: '5', 'already stored': '1', refused: '2' });

    hub = await startHubProcess({ DATA_DIR: dataDir }, 60_000);
    for (const instance of [...cd.stored, cd.duplicate]) {
      expect((await retrieve(hub.url, instance)).equals(await readFile(instance.path))).toBe(true);
    }
    expect(await imagingStudyInstances(hub.url, cd.studies[0]!)).toBe(3);
  }, 120_000);
});
