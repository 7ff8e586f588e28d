/**
 * Node's compile cache holds code that runs as the hub (src/main.ts, bin/hub.js). In a shared temporary
 * directory another local user could create the hub user's cache directory first and plant entries
 * that Node would run in place of the hub's modules. The hub and `npx hub` keep it in the
 * installation's own node_modules/.cache, whatever TMPDIR says.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_BIN, REPO_ROOT, cleanEnvironment } from './support/hub-process.ts';
import { runHubCli } from './support/hub-cli.ts';

const PROJECT_CACHE = join(REPO_ROOT, 'node_modules', '.cache', 'node-compile-cache');

/** Runs `node src/main.ts` with a configuration it refuses, so that it stops once its modules have loaded. */
function hubThatRefusesItsConfiguration(env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, ['src/main.ts'], {
      cwd: REPO_ROOT,
      env: { ...cleanEnvironment(), ...env, PORT: 'not-a-port' },
      stdio: 'ignore',
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

describe('the compile cache', () => {
  let sharedTmp: string;

  beforeAll(async () => {
    sharedTmp = await mkdtemp(join(tmpdir(), 'shared-tmp-'));
  });
  afterAll(async () => {
    await rm(sharedTmp, { recursive: true, force: true });
  });

  test('neither the hub nor `npx hub` keeps it in the temporary directory; both keep it in node_modules/.cache', async () => {
    const env = { TMPDIR: sharedTmp, TMP: sharedTmp, TEMP: sharedTmp };
    const help = await runHubCli(['--help'], env);
    expect(help.code).toBe(0);
    expect(await hubThatRefusesItsConfiguration(env)).toBe(2);

    expect(await readdir(sharedTmp)).toEqual([]);
    expect(existsSync(PROJECT_CACHE)).toBe(true);
    expect((await readdir(PROJECT_CACHE)).length).toBeGreaterThan(0);
  });
});
