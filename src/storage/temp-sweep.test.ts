import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeStaleFiles } from './temp-sweep.ts';

describe('removeStaleFiles', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'temp-sweep-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('removes files untouched for longer than the age, in sub-directories too, and keeps fresh ones', async () => {
    await mkdir(join(dir, 'nested'));
    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    for (const name of ['old-1', 'nested/old-2']) {
      await writeFile(join(dir, name), 'x');
      await utimes(join(dir, name), hourAgo, hourAgo);
    }
    await writeFile(join(dir, 'fresh'), 'x');
    await writeFile(join(dir, 'nested', 'fresh-2'), 'x');
    expect(await removeStaleFiles(dir, 3600_000)).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['fresh', 'nested']);
    expect(await readdir(join(dir, 'nested'))).toEqual(['fresh-2']);
  });

  test('a directory that does not exist has nothing to sweep', async () => {
    expect(await removeStaleFiles(join(dir, 'missing'), 1000)).toBe(0);
  });
});
