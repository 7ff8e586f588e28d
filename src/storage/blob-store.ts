/**
 * The storage area: immutable blobs addressed by the SHA-256 of their bytes. A blob is written to a
 * temporary file, synced, renamed into place and its directory synced, so a blob that `put` (or a
 * staged blob's `commit`) returned survives a crash. An S3-compatible store can implement the same
 * interface.
 *
 * Small blobs are held in memory while they arrive and reach the disk in one write; larger ones
 * spill to a temporary file as they arrive, so nothing large is ever held whole.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Hash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export interface StoredBlob {
  key: string;
  size: number;
}

/**
 * Bytes received and hashed but not yet in the store: `commit` makes them a durable blob, `discard`
 * drops them. Exactly one of `bytes` (held in memory) and `file` (spilled) is set, for a caller that
 * must read them before deciding (a DICOM parser, say).
 */
export interface StagedBlob extends StoredBlob {
  readonly bytes: Buffer | undefined;
  readonly file: string | undefined;
  /**
   * Starts writing the bytes to a synced temp file, so that the sync overlaps whatever the caller
   * does before deciding; `commit` and `discard` wait for it. Calling it is optional.
   */
  prepare(): void;
  commit(): Promise<StoredBlob>;
  discard(): Promise<void>;
}

/** Receives a blob's bytes in order. `write` rejects with BlobTooLargeError past the limit. */
export interface BlobWriter {
  readonly size: number;
  write(chunk: Buffer): Promise<void>;
  /** Ends the bytes; the writer is spent. */
  stage(): Promise<StagedBlob>;
  abort(): Promise<void>;
}

export interface BlobWriterOptions {
  maxBytes?: number | undefined;
  /** Bytes held in memory before the writer spills to a temporary file. */
  memoryBytes?: number | undefined;
}

export interface BlobStore {
  /** Streams bytes into the store; rejects with BlobTooLargeError past maxBytes. */
  put(source: Readable | Buffer, maxBytes?: number): Promise<StoredBlob>;
  createWriter(options?: BlobWriterOptions): BlobWriter;
  read(key: string): Promise<Buffer>;
  open(key: string): Readable;
  size(key: string): Promise<number>;
  /** The blob's file, for stores that keep blobs on the local file system (random access without a copy). */
  localPath?(key: string): string | undefined;
}

export class BlobTooLargeError extends Error {
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    super(`Content exceeds the limit of ${maxBytes} bytes`);
    this.maxBytes = maxBytes;
  }
}

/** Held in memory up to this by default: a typical CT or MR instance (~0.5 MB) never touches a temp file. */
export const DEFAULT_MEMORY_BYTES = 1024 * 1024;
const KEY_PATTERN = /^[0-9a-f]{64}$/;

export class FileBlobStore implements BlobStore {
  readonly root: string;
  readonly tmpDir: string;
  /** Directories known to exist (the temp directory): saves a mkdir per blob. */
  private readonly knownDirs = new Set<string>();
  /** Blob directories made or seen, settled once each is durable: saves a mkdir per blob. */
  private readonly blobDirs = new Map<string, Promise<void>>();

  constructor(root: string) {
    this.root = root;
    this.tmpDir = path.join(root, 'tmp');
  }

  pathOf(key: string): string {
    if (!KEY_PATTERN.test(key)) {
      throw new Error('Invalid blob key');
    }
    return path.join(this.root, key.slice(0, 2), key.slice(2, 4), key);
  }

  createWriter(options: BlobWriterOptions = {}): BlobWriter {
    return new FileBlobWriter(
      this,
      options.maxBytes ?? Number.MAX_SAFE_INTEGER,
      options.memoryBytes ?? DEFAULT_MEMORY_BYTES,
    );
  }

  async put(source: Readable | Buffer, maxBytes = Number.MAX_SAFE_INTEGER): Promise<StoredBlob> {
    const writer = this.createWriter({ maxBytes });
    try {
      if (Buffer.isBuffer(source)) {
        await writer.write(source);
      } else {
        for await (const chunk of source) {
          await writer.write(chunk as Buffer);
        }
      }
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return (await writer.stage()).commit();
  }

  async read(key: string): Promise<Buffer> {
    return fsp.readFile(this.pathOf(key));
  }

  open(key: string): Readable {
    return fs.createReadStream(this.pathOf(key));
  }

  async size(key: string): Promise<number> {
    return (await fsp.stat(this.pathOf(key))).size;
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  /** A path for a new temporary file, creating the temp directory once. */
  async tempPath(): Promise<string> {
    await this.ensureDir(this.tmpDir);
    return path.join(this.tmpDir, randomUUID());
  }

  /**
   * Renames a synced temp file to its key's place and syncs the directory. A blob already there has
   * the same bytes (its name is their hash), so replacing it changes nothing a reader could see.
   * Every write must install, even of a blob that exists: the new file's fresh mtime and inode are
   * what tell the orphan sweep (orphan-sweep.ts) that a row is about to refer to it.
   */
  async install(tmp: string, key: string): Promise<void> {
    const finalPath = this.pathOf(key);
    const dir = path.dirname(finalPath);
    const ready = this.blobDirs.get(dir);
    if (ready === undefined) {
      return this.installCreatingDir(tmp, finalPath);
    }
    // Another install may still be making this directory durable: this blob is not durable before.
    await ready;
    // rename(2) and open(2) of a directory take microseconds: run here rather than through the
    // thread pool, which the fsyncs (the real waits) keep busy.
    fs.renameSync(tmp, finalPath);
    await syncDirectory(dir);
  }

  /**
   * The first install into a directory (in this process) makes it if need be. A directory made
   * here is durable only once its parent is synced, and so on up to the highest one made: Linux's
   * journaling file systems (and ext4 without a journal) do that with the blob's own syncs, others
   * need it done. Those syncs come after the blob's, when they find little or nothing left to write.
   */
  private async installCreatingDir(tmp: string, finalPath: string): Promise<void> {
    const dir = path.dirname(finalPath);
    let settle!: { resolve: () => void; reject: (error: unknown) => void };
    const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    ready.catch(() => undefined);
    this.blobDirs.set(dir, ready);
    try {
      const first = await fsp.mkdir(dir, { recursive: true });
      fs.renameSync(tmp, finalPath);
      await syncDirectory(dir);
      await syncParentsOfMade(dir, first);
      settle.resolve();
    } catch (error) {
      this.blobDirs.delete(dir);
      settle.reject(error);
      throw error;
    }
  }

  /** Writes bytes to a new temp file and syncs it; returns its path. */
  async writeTemp(bytes: Buffer): Promise<string> {
    const tmp = await this.tempPath();
    const fd = fs.openSync(tmp, 'wx');
    try {
      let written = 0;
      while (written < bytes.length) {
        written += fs.writeSync(fd, bytes, written, bytes.length - written);
      }
      await fdatasync(fd);
    } catch (error) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw error;
    }
    fs.closeSync(fd);
    return tmp;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) {
      return;
    }
    // The store's root is made here, with the temp directory, before any blob.
    await syncParentsOfMade(dir, await fsp.mkdir(dir, { recursive: true }));
    this.knownDirs.add(dir);
  }
}

class FileBlobWriter implements BlobWriter {
  private readonly store: FileBlobStore;
  private readonly maxBytes: number;
  private readonly memoryBytes: number;
  private readonly hash: Hash = createHash('sha256');
  private chunks: Buffer[] = [];
  private buffered = 0;
  private spill: { path: string; handle: FileHandle } | undefined;
  private written = 0;
  private done = false;

  constructor(store: FileBlobStore, maxBytes: number, memoryBytes: number) {
    this.store = store;
    this.maxBytes = maxBytes;
    this.memoryBytes = memoryBytes;
  }

  get size(): number {
    return this.written;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.done) {
      throw new Error('blob writer already finished');
    }
    if (this.written + chunk.length > this.maxBytes) {
      throw new BlobTooLargeError(this.maxBytes);
    }
    this.written += chunk.length;
    this.hash.update(chunk);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.spill !== undefined || this.buffered > this.memoryBytes) {
      await this.flushToSpill();
    }
  }

  async stage(): Promise<StagedBlob> {
    if (this.done) {
      throw new Error('blob writer already finished');
    }
    this.done = true;
    const key = this.hash.digest('hex');
    const size = this.written;
    if (this.spill === undefined) {
      // A single chunk is the blob as it is; several are joined (and none make an empty blob).
      const [only, ...more] = this.chunks;
      const bytes = only !== undefined && more.length === 0 ? only : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      return stagedInMemory(this.store, key, size, bytes);
    }
    try {
      await this.flushToSpill();
      await this.spill.handle.datasync();
    } finally {
      await this.spill.handle.close();
    }
    return stagedInFile(this.store, key, size, this.spill.path);
  }

  async abort(): Promise<void> {
    this.done = true;
    this.chunks = [];
    const spill = this.spill;
    this.spill = undefined;
    if (spill) {
      await spill.handle.close().catch(() => undefined);
      await fsp.rm(spill.path, { force: true });
    }
  }

  private async flushToSpill(): Promise<void> {
    if (this.spill === undefined) {
      const tmp = await this.store.tempPath();
      this.spill = { path: tmp, handle: await fsp.open(tmp, 'wx') };
    }
    const chunks = this.chunks;
    this.chunks = [];
    this.buffered = 0;
    if (chunks.length > 0) {
      await writeAll(this.spill.handle, chunks);
    }
  }
}

function stagedInMemory(store: FileBlobStore, key: string, size: number, bytes: Buffer): StagedBlob {
  let synced: Promise<string> | undefined;
  let installed = false;
  return {
    key,
    size,
    bytes,
    file: undefined,
    prepare() {
      synced ??= store.writeTemp(bytes);
      // Its failure is reported by commit; discard needs no report.
      synced.catch(() => undefined);
    },
    async commit() {
      synced ??= store.writeTemp(bytes);
      await store.install(await synced, key);
      installed = true;
      return { key, size };
    },
    async discard() {
      // After a commit the temp file is the blob: nothing is left to remove (callers discard in a finally).
      if (synced === undefined || installed) {
        return;
      }
      const tmp = await synced.catch(() => undefined);
      if (tmp !== undefined) {
        await fsp.rm(tmp, { force: true });
      }
    },
  };
}

function stagedInFile(store: FileBlobStore, key: string, size: number, file: string): StagedBlob {
  let installed = false;
  return {
    key,
    size,
    bytes: undefined,
    file,
    prepare() {},
    async commit() {
      await store.install(file, key);
      installed = true;
      return { key, size };
    },
    async discard() {
      if (!installed) {
        await fsp.rm(file, { force: true });
      }
    },
  };
}

async function writeAll(handle: FileHandle, chunks: Buffer[]): Promise<void> {
  let pending = chunks;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending);
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const chunk of pending) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
      } else {
        rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
        skip = 0;
      }
    }
    pending = rest;
  }
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

/** Syncs the parent of each directory `mkdir -p` made, from `dir` up to `first` (none if it made none). */
async function syncParentsOfMade(dir: string, first: string | undefined): Promise<void> {
  if (first === undefined) {
    return;
  }
  for (let made = dir; ; made = path.dirname(made)) {
    await syncDirectory(path.dirname(made));
    if (made === first || made === path.dirname(made)) {
      return;
    }
  }
}

/** fsync on the directory makes a rename (or a link) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const fd = fs.openSync(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve())));
  } finally {
    fs.closeSync(fd);
  }
}
