/**
 * The storage area: immutable blobs addressed by the SHA-256 of their bytes. The file-system store
 * writes to a temporary file, syncs it, then renames it into place, so a blob that `put` returned
 * survives a crash. An S3-compatible store can implement the same interface.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface StoredBlob {
  key: string;
  size: number;
}

export interface BlobStore {
  /** Streams bytes into the store; rejects with BlobTooLargeError past maxBytes. */
  put(source: Readable | Buffer, maxBytes?: number): Promise<StoredBlob>;
  read(key: string): Promise<Buffer>;
  open(key: string): Readable;
  size(key: string): Promise<number>;
}

export class BlobTooLargeError extends Error {
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    super(`Content exceeds the limit of ${maxBytes} bytes`);
    this.maxBytes = maxBytes;
  }
}

function limiter(maxBytes: number, hash: ReturnType<typeof createHash>): Transform & { size: number } {
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > maxBytes) {
        callback(new BlobTooLargeError(maxBytes));
        return;
      }
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  return Object.defineProperty(transform, 'size', { get: () => size }) as Transform & { size: number };
}

export class FileBlobStore implements BlobStore {
  private readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  private pathOf(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) {
      throw new Error('Invalid blob key');
    }
    return path.join(this.root, key.slice(0, 2), key.slice(2, 4), key);
  }

  async put(source: Readable | Buffer, maxBytes = Number.MAX_SAFE_INTEGER): Promise<StoredBlob> {
    const tmpDir = path.join(this.root, 'tmp');
    await fsp.mkdir(tmpDir, { recursive: true });
    const tmp = path.join(tmpDir, randomUUID());
    const hash = createHash('sha256');
    const counter = limiter(maxBytes, hash);
    try {
      // `flush` fsyncs the file before the stream closes, and pipeline resolves only after the close.
      const input = Buffer.isBuffer(source) ? Readable.from([source]) : source;
      await pipeline(input, counter, fs.createWriteStream(tmp, { flush: true }));
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    const key = hash.digest('hex');
    const finalPath = this.pathOf(key);
    await fsp.mkdir(path.dirname(finalPath), { recursive: true });
    await fsp.rename(tmp, finalPath);
    await syncDirectory(path.dirname(finalPath));
    return { key, size: counter.size };
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
}

/** fsync on the directory makes a rename durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
