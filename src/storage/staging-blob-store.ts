/**
 * The blob store as readers must see it while staged blobs (blob-installer.ts) wait for their
 * files: a blob is its file, or, before the installer has put the file in place, its staged bytes.
 * Every read looks for the file first, then the staged bytes, then the file again: the installer
 * puts the file in place before it deletes the row, so a blob installed between the first two
 * looks is found by the third. Writes go to the file store unchanged.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { BlobInstaller } from './blob-installer.ts';
import type { BlobStore, BlobWriter, BlobWriterOptions, FileBlobStore, StoredBlob } from './blob-store.ts';

export class StagingBlobStore implements BlobStore {
  readonly files: FileBlobStore;
  readonly installer: BlobInstaller;

  constructor(files: FileBlobStore, installer: BlobInstaller) {
    this.files = files;
    this.installer = installer;
  }

  put(source: Readable | Buffer, maxBytes?: number): Promise<StoredBlob> {
    return this.files.put(source, maxBytes);
  }

  createWriter(options?: BlobWriterOptions): BlobWriter {
    return this.files.createWriter(options);
  }

  async read(key: string): Promise<Buffer> {
    try {
      return await this.files.read(key);
    } catch (error) {
      if (!isMissing(error)) {
        throw error;
      }
      return (await this.installer.stagedBytes(key)) ?? this.files.read(key);
    }
  }

  open(key: string): Readable {
    const path = this.files.pathOf(key);
    const installer = this.installer;
    async function* chunks(): AsyncGenerator<Buffer> {
      let handle: fs.promises.FileHandle;
      try {
        handle = await fs.promises.open(path, 'r');
      } catch (error) {
        if (!isMissing(error)) {
          throw error;
        }
        const staged = await installer.stagedBytes(key);
        if (staged !== undefined) {
          yield staged;
          return;
        }
        handle = await fs.promises.open(path, 'r');
      }
      // The stream closes the handle when it ends, fails or is destroyed.
      yield* handle.createReadStream() as AsyncIterable<Buffer>;
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async size(key: string): Promise<number> {
    try {
      return await this.files.size(key);
    } catch (error) {
      if (!isMissing(error)) {
        throw error;
      }
      return (await this.installer.stagedBytes(key))?.length ?? this.files.size(key);
    }
  }

  /** The blob's file once it is installed; undefined before, so that callers read it through `open`. */
  localPath(key: string): string | undefined {
    const path = this.files.pathOf(key);
    return fs.existsSync(path) ? path : undefined;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
