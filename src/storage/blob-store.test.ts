import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlobStore } from './blob-store.ts';

const keyOf = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** The directories fsync'd while `action` runs (the blob store syncs a directory by opening it). */
async function directoriesSynced(action: () => Promise<unknown>): Promise<string[]> {
  const opened = new Map<number, string>();
  const synced: string[] = [];
  const openSync = fs.openSync;
  const open = jest.spyOn(fs, 'openSync').mockImplementation(((file: fs.PathLike, flags: fs.OpenMode, mode?: fs.Mode) => {
    const fd = openSync(file, flags, mode);
    opened.set(fd, String(file));
    return fd;
  }) as typeof fs.openSync);
  const fsync = fs.fsync;
  const sync = jest.spyOn(fs, 'fsync').mockImplementation(((fd: number, callback: fs.NoParamCallback) => {
    const file = opened.get(fd);
    if (file !== undefined && fs.statSync(file).isDirectory()) synced.push(file);
    fsync(fd, callback);
  }) as typeof fs.fsync);
  try {
    await action();
  } finally {
    open.mockRestore();
    sync.mockRestore();
  }
  return synced;
}

describe('FileBlobStore directories', () => {
  let dataDir: string;
  let root: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blob-store-'));
    root = join(dataDir, 'blobs');
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('the first blob in a new directory syncs that directory and every parent up to the store\'s own entry', async () => {
    const store = new FileBlobStore(root);
    const bytes = Buffer.from('first blob');
    const key = keyOf(bytes);
    const synced = await directoriesSynced(() => store.put(bytes));
    const dir = join(root, key.slice(0, 2), key.slice(2, 4));
    expect(synced).toEqual([dir, join(root, key.slice(0, 2)), root, dataDir]);
    expect(await readFile(store.pathOf(key))).toEqual(bytes);
  });

  test('a directory seen once is not synced again for the next blob in it', async () => {
    const store = new FileBlobStore(root);
    await store.put(Buffer.from('one'));
    const bytes = Buffer.from('one');
    const synced = await directoriesSynced(() => store.put(bytes));
    const key = keyOf(bytes);
    expect(synced).toEqual([join(root, key.slice(0, 2), key.slice(2, 4))]);
  });

  test('blobs stored at once into one new directory all succeed and are readable', async () => {
    const store = new FileBlobStore(root);
    // Different bytes, same first four hex digits of the key: found by trying.
    const blobs: Buffer[] = [];
    const wanted = keyOf(Buffer.from('seed-0')).slice(0, 4);
    for (let i = 0; blobs.length < 3; i++) {
      const bytes = Buffer.from(`seed-${i}`);
      if (keyOf(bytes).startsWith(wanted)) blobs.push(bytes);
    }
    const stored = await Promise.all(blobs.map((bytes) => store.put(bytes)));
    for (const [i, blob] of stored.entries()) expect(await readFile(store.pathOf(blob.key))).toEqual(blobs[i]);
  });

  test('a directory that could not be made fails its blob, and the next blob there succeeds once it can be made', async () => {
    const store = new FileBlobStore(root);
    const bytes = Buffer.from('blocked');
    const key = keyOf(bytes);
    await mkdir(root, { recursive: true });
    await writeFile(join(root, key.slice(0, 2)), 'a file where a directory belongs');
    await expect(store.put(bytes)).rejects.toMatchObject({ code: expect.stringMatching(/^(EEXIST|ENOTDIR)$/) });
    await rm(join(root, key.slice(0, 2)));
    await store.put(bytes);
    expect(await readFile(store.pathOf(key))).toEqual(bytes);
  });
});
