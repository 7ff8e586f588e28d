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
  const open = jest.spyOn(fs, 'openSync').mockImplementation(((
    file: fs.PathLike,
    flags: fs.OpenMode,
    mode?: fs.Mode,
  ) => {
    const fd = openSync(file, flags, mode);
    opened.set(fd, String(file));
    return fd;
  }) as typeof fs.openSync);
  const fsync = fs.fsync;
  const sync = jest.spyOn(fs, 'fsync').mockImplementation((fd: number, callback: fs.NoParamCallback) => {
    const file = opened.get(fd);
    if (file !== undefined && fs.statSync(file).isDirectory()) {
      synced.push(file);
    }
    fsync(fd, callback);
  });
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

  test('the first blob in a new directory syncs that directory and the parent of every directory made for it', async () => {
    const store = new FileBlobStore(root);
    const bytes = Buffer.from('first blob');
    const key = keyOf(bytes);
    const synced = await directoriesSynced(() => store.put(bytes));
    const dir = join(root, key.slice(0, 2), key.slice(2, 4));
    // The temp directory comes first: making it makes the store's root, whose entry is in dataDir.
    expect(synced).toEqual([root, dataDir, dir, join(root, key.slice(0, 2)), root]);
    expect(await readFile(store.pathOf(key))).toEqual(bytes);
  });

  test("a directory that exists gets only the blob's own sync, whether this process made it or not", async () => {
    const bytes = Buffer.from('one');
    const dir = join(root, keyOf(bytes).slice(0, 2), keyOf(bytes).slice(2, 4));
    const store = new FileBlobStore(root);
    await store.put(bytes);
    expect(await directoriesSynced(() => store.put(bytes))).toEqual([dir]);
    expect(await directoriesSynced(() => new FileBlobStore(root).put(bytes))).toEqual([dir]);
  });

  test('blobs stored at once into one new directory all succeed and are readable', async () => {
    const store = new FileBlobStore(root);
    // Different bytes, same first four hex digits of the key: found by trying.
    const blobs: Buffer[] = [];
    const wanted = keyOf(Buffer.from('seed-0')).slice(0, 4);
    for (let i = 0; blobs.length < 3; i++) {
      const bytes = Buffer.from(`seed-${i}`);
      if (keyOf(bytes).startsWith(wanted)) {
        blobs.push(bytes);
      }
    }
    const stored = await Promise.all(blobs.map((bytes) => store.put(bytes)));
    for (const [i, blob] of stored.entries()) {
      expect(await readFile(store.pathOf(blob.key))).toEqual(blobs[i]);
    }
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
