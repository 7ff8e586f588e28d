/**
 * Removes blobs nothing refers to: the bytes of a DICOM instance refused as a conflicting duplicate
 * after its blob was committed, of a Binary write whose transaction rolled back, or of a crash
 * between a blob's install and its index row's commit.
 *
 * Why a blob that is referred to, or about to be, is never lost:
 * - Every writer installs a blob by renaming a freshly written temp file over its path, then commits
 *   the row that refers to it. Only blobs untouched for the grace period (24 h by default, never
 *   less than an hour) and referred to by no committed row are candidates, so a write in progress
 *   (its file is fresh) is left alone.
 * - A candidate is removed by renaming it into the quarantine directory, which is atomic: a writer
 *   that installs the same key afterwards puts its own file in place. The quarantined file is then
 *   checked again: when it is not the inode that was found old (a writer installed a new copy just
 *   before the rename), or a row now refers to its key, it is linked back (EEXIST: a newer copy is
 *   already there) before the quarantined name goes. Only then is it deleted.
 * - Files left in quarantine by an interrupted sweep are put back or deleted by the same rules at
 *   the start of the next sweep.
 * - One process sweeps at a time: a PostgreSQL advisory lock (PGlite has a single process). A dry
 *   run only reads, and takes no lock.
 * Directories are never removed: FileBlobStore remembers the ones it created.
 */
import { randomUUID } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Database, Queryable } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import { syncDirectory } from './blob-store.ts';
import type { FileBlobStore } from './blob-store.ts';

/**
 * Every column that holds a blob key. A table that comes to refer to blobs must be listed here, or
 * the sweep removes its blobs.
 */
export const BLOB_REFERENCES: readonly { table: string; column: string }[] = [
  { table: 'dicom_instance', column: 'blob_key' },
  // One row per Binary version, deleted Binaries' included: history and vread serve them.
  { table: 'binary_content', column: 'blob_key' },
];

const HOUR_MS = 60 * 60 * 1000;
export const DEFAULT_GRACE_MS = 24 * HOUR_MS;
/** A shorter grace could take the blob of a write that has installed it but not yet committed its row. */
export const MIN_GRACE_MS = HOUR_MS;
const DEFAULT_BATCH_SIZE = 1000;
/** Under the blob root, so that a rename into it never crosses file systems. */
export const QUARANTINE_DIR = 'quarantine';
const LOCK_NAME = 'blob-orphan-sweep';
const PREFIX_PATTERN = /^[0-9a-f]{2}$/;
const KEY_PATTERN = /^[0-9a-f]{64}$/;
const QUARANTINED_PATTERN = /^([0-9a-f]{64})\./;

/** Milliseconds since the epoch. */
export type Clock = () => number;

/** Points where a test can act as a concurrent writer would. */
export interface OrphanSweepHooks {
  /** Just before a candidate is renamed into quarantine. */
  beforeQuarantine?(key: string): Promise<void>;
  /** After a batch's candidates are in quarantine, before they are checked again. */
  afterQuarantine?(keys: readonly string[]): Promise<void>;
}

export interface OrphanSweepOptions {
  /** Blobs modified more recently than this are kept (default 24 h, at least 1 h). */
  graceMs?: number;
  /** Count what would be removed; change nothing. */
  dryRun?: boolean;
  /** Blobs checked against the database per query. */
  batchSize?: number;
  /** Stops the sweep; a batch already in quarantine is settled first. */
  signal?: AbortSignal;
  hooks?: OrphanSweepHooks;
}

export interface OrphanSweepResult {
  /** False when another process was sweeping: nothing was looked at. */
  ran: boolean;
  /** Blob files found. */
  scanned: number;
  /** Of those, untouched for the grace period. */
  old: number;
  /** Old blobs that a row refers to. */
  referenced: number;
  /** Orphans removed (in a dry run: that would be removed), quarantine leftovers included. */
  removed: number;
  removedBytes: number;
  /** Candidates kept because a writer installed them again or a row came to refer to them meanwhile. */
  rescued: number;
  /** Files an interrupted sweep had left in quarantine, put back. */
  recovered: number;
}

interface BlobFile {
  key: string;
  path: string;
  ino: number;
  mtimeMs: number;
  size: number;
}

interface QuarantinedBlob {
  key: string;
  /** Its name in quarantine. */
  path: string;
  /** Where it is put back. */
  finalPath: string;
  /** The inode and mtime that were found old; anything else in quarantine was installed meanwhile. */
  ino: number | undefined;
  mtimeMs: number | undefined;
}

function emptyResult(ran: boolean): OrphanSweepResult {
  return { ran, scanned: 0, old: 0, referenced: 0, removed: 0, removedBytes: 0, rescued: 0, recovered: 0 };
}

/** Removes the blobs under `store` that nothing refers to and that are older than the grace period. */
export async function sweepOrphanBlobs(
  db: Database,
  store: FileBlobStore,
  options: OrphanSweepOptions = {},
  clock: Clock = Date.now,
): Promise<OrphanSweepResult> {
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  if (!(graceMs >= MIN_GRACE_MS)) {
    throw new RangeError(`the grace period must be at least ${MIN_GRACE_MS / HOUR_MS} hour`);
  }
  const cutoff = clock() - graceMs;
  return db.withConnection(async (conn) => {
    const locking = options.dryRun !== true && db.kind === 'postgres';
    if (locking) {
      const lock = await conn.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked',
        [LOCK_NAME],
      );
      if (lock.rows[0]?.locked !== true) {
        return emptyResult(false);
      }
    }
    try {
      return await new OrphanSweep(conn, store, options, cutoff).run();
    } finally {
      if (locking) {
        await conn.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [LOCK_NAME]);
      }
    }
  });
}

class OrphanSweep {
  private readonly conn: Queryable;
  private readonly store: FileBlobStore;
  private readonly options: OrphanSweepOptions;
  private readonly cutoff: number;
  private readonly quarantineDir: string;
  private readonly result = emptyResult(true);

  constructor(conn: Queryable, store: FileBlobStore, options: OrphanSweepOptions, cutoff: number) {
    this.conn = conn;
    this.store = store;
    this.options = options;
    this.cutoff = cutoff;
    this.quarantineDir = path.join(store.root, QUARANTINE_DIR);
  }

  private get batchSize(): number {
    return this.options.batchSize ?? DEFAULT_BATCH_SIZE;
  }

  private get stopped(): boolean {
    return this.options.signal?.aborted === true;
  }

  async run(): Promise<OrphanSweepResult> {
    if (this.options.dryRun !== true) {
      await fsp.mkdir(this.quarantineDir, { recursive: true });
      await this.recoverQuarantine();
    }
    let batch: BlobFile[] = [];
    for await (const blob of this.blobFiles()) {
      // Nothing of a batch still being gathered is in quarantine yet: it can be dropped.
      if (this.stopped) {
        return this.result;
      }
      this.result.scanned++;
      if (blob.mtimeMs >= this.cutoff) {
        continue;
      }
      this.result.old++;
      batch.push(blob);
      if (batch.length >= this.batchSize) {
        await this.sweepBatch(batch);
        batch = [];
      }
    }
    if (batch.length > 0) {
      await this.sweepBatch(batch);
    }
    return this.result;
  }

  /** Every file shaped like a blob: `<root>/<2 hex>/<2 hex>/<sha256 hex>` whose name matches its directories. */
  private async *blobFiles(): AsyncGenerator<BlobFile> {
    for (const first of await directoryNames(this.store.root)) {
      for (const second of await directoryNames(path.join(this.store.root, first))) {
        const dir = path.join(this.store.root, first, second);
        for (const key of await fileNames(dir)) {
          if (!KEY_PATTERN.test(key) || key.slice(0, 2) !== first || key.slice(2, 4) !== second) {
            continue;
          }
          const file = path.join(dir, key);
          const stat = await lstatIfExists(file);
          if (stat?.isFile()) {
            yield { key, path: file, ino: stat.ino, mtimeMs: stat.mtimeMs, size: stat.size };
          }
        }
      }
    }
  }

  private async sweepBatch(batch: BlobFile[]): Promise<void> {
    const referenced = await this.referencedKeys(batch.map((blob) => blob.key));
    const orphans = batch.filter((blob) => !referenced.has(blob.key));
    this.result.referenced += batch.length - orphans.length;
    if (this.options.dryRun === true) {
      this.result.removed += orphans.length;
      this.result.removedBytes += orphans.reduce((sum, blob) => sum + blob.size, 0);
      return;
    }
    const quarantined: QuarantinedBlob[] = [];
    let stillReferenced: Set<string>;
    try {
      for (const orphan of orphans) {
        const moved = await this.quarantine(orphan);
        if (moved) {
          quarantined.push(moved);
        }
      }
      if (quarantined.length === 0) {
        return;
      }
      await this.options.hooks?.afterQuarantine?.(quarantined.map((blob) => blob.key));
      stillReferenced = await this.referencedKeys(quarantined.map((blob) => blob.key));
    } catch (error) {
      await this.restoreAll(quarantined);
      throw error;
    }
    await this.settle(quarantined, stillReferenced, 'rescued');
  }

  /** Moves a candidate into quarantine unless a writer has replaced it since it was found old. */
  private async quarantine(blob: BlobFile): Promise<QuarantinedBlob | undefined> {
    const current = await lstatIfExists(blob.path);
    if (!current) {
      return undefined;
    }
    if (current.ino !== blob.ino || current.mtimeMs !== blob.mtimeMs) {
      this.result.rescued++;
      return undefined;
    }
    await this.options.hooks?.beforeQuarantine?.(blob.key);
    const target = path.join(this.quarantineDir, `${blob.key}.${randomUUID()}`);
    try {
      await fsp.rename(blob.path, target);
    } catch (error) {
      if (isCode(error, 'ENOENT')) {
        return undefined;
      }
      throw error;
    }
    return { key: blob.key, path: target, finalPath: blob.path, ino: blob.ino, mtimeMs: blob.mtimeMs };
  }

  /**
   * Deletes each quarantined blob that is still the old, unreferenced file; puts back the others,
   * counting them under `kept`. A failure puts back the rest before it is reported.
   */
  private async settle(
    quarantined: QuarantinedBlob[],
    referenced: Set<string>,
    kept: 'rescued' | 'recovered',
  ): Promise<void> {
    let failure: unknown;
    for (const blob of quarantined) {
      try {
        if (failure !== undefined) {
          await this.restore(blob);
          continue;
        }
        const stat = await fsp.lstat(blob.path);
        const replaced =
          (blob.ino !== undefined && stat.ino !== blob.ino) ||
          (blob.mtimeMs !== undefined && stat.mtimeMs !== blob.mtimeMs);
        if (replaced || stat.mtimeMs >= this.cutoff || referenced.has(blob.key)) {
          await this.restore(blob);
          this.result[kept]++;
        } else {
          await fsp.unlink(blob.path);
          this.result.removed++;
          this.result.removedBytes += stat.size;
        }
      } catch (error) {
        if (isCode(error, 'ENOENT')) {
          continue;
        }
        failure ??= error;
      }
    }
    if (failure !== undefined) {
      throw failure;
    }
  }

  /** Links a quarantined blob back into place (a copy already there has the same bytes), durably, then drops its quarantine name. */
  private async restore(blob: QuarantinedBlob): Promise<void> {
    const dir = path.dirname(blob.finalPath);
    await fsp.mkdir(dir, { recursive: true });
    try {
      await fsp.link(blob.path, blob.finalPath);
    } catch (error) {
      if (!isCode(error, 'EEXIST')) {
        throw error;
      }
    }
    await syncDirectory(dir);
    await fsp.unlink(blob.path);
  }

  /** Best effort, after a failure: whatever is not put back now is recovered by the next sweep. */
  private async restoreAll(quarantined: QuarantinedBlob[]): Promise<void> {
    for (const blob of quarantined) {
      await this.restore(blob).catch(() => undefined);
    }
  }

  /** Settles the files an interrupted sweep left in quarantine, by the same rules as a new candidate. */
  private async recoverQuarantine(): Promise<void> {
    const leftovers: QuarantinedBlob[] = [];
    for (const name of await fileNames(this.quarantineDir)) {
      const key = QUARANTINED_PATTERN.exec(name)?.[1];
      if (key === undefined) {
        continue;
      }
      leftovers.push({
        key,
        path: path.join(this.quarantineDir, name),
        finalPath: this.store.pathOf(key),
        ino: undefined,
        mtimeMs: undefined,
      });
    }
    for (let start = 0; start < leftovers.length; start += this.batchSize) {
      const batch = leftovers.slice(start, start + this.batchSize);
      await this.settle(batch, await this.referencedKeys(batch.map((blob) => blob.key)), 'recovered');
    }
  }

  /** The keys among `keys` that some row refers to: one query per batch. */
  private async referencedKeys(keys: string[]): Promise<Set<string>> {
    const sql = BLOB_REFERENCES.map(
      ({ table, column }) => `SELECT ${column} AS key FROM ${table} WHERE ${column} = ANY($1::text[])`,
    ).join(' UNION ');
    const result = await this.conn.query<{ key: string }>(sql, [keys]);
    return new Set(result.rows.map((row) => row.key));
  }
}

function isCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

async function lstatIfExists(file: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(file);
  } catch (error) {
    if (isCode(error, 'ENOENT')) {
      return undefined;
    }
    throw error;
  }
}

async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isCode(error, 'ENOENT')) {
      return [];
    }
    throw error;
  }
}

/** The blob-prefix directories in `dir` (`tmp` and the quarantine are not). */
async function directoryNames(dir: string): Promise<string[]> {
  return (await entriesOf(dir))
    .filter((entry) => entry.isDirectory() && PREFIX_PATTERN.test(entry.name))
    .map((entry) => entry.name);
}

async function fileNames(dir: string): Promise<string[]> {
  return (await entriesOf(dir)).filter((entry) => entry.isFile()).map((entry) => entry.name);
}

export interface OrphanSweeper {
  /** Cancels the timers and waits for a running sweep to finish its batch. */
  stop(): Promise<void>;
}

export interface OrphanSweeperOptions {
  logger: Logger;
  /** The first sweep, after start-up. */
  delayMs: number;
  intervalMs: number;
  graceMs?: number;
}

/** Sweeps after `delayMs` and then every `intervalMs`, logging counts only. */
export function startOrphanSweeper(db: Database, store: FileBlobStore, options: OrphanSweeperOptions): OrphanSweeper {
  const controller = new AbortController();
  let running: Promise<void> | undefined;
  let interval: NodeJS.Timeout | undefined;
  const sweep = (): void => {
    if (running !== undefined || controller.signal.aborted) {
      return;
    }
    running = (async () => {
      try {
        const result = await sweepOrphanBlobs(db, store, { graceMs: options.graceMs, signal: controller.signal });
        if (result.ran) {
          options.logger.info({ ...result }, 'blob orphan sweep done');
        } else {
          options.logger.debug('blob orphan sweep skipped: another process is sweeping');
        }
      } catch (error) {
        options.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'blob orphan sweep failed',
        );
      } finally {
        running = undefined;
      }
    })();
  };
  const first = setTimeout(() => {
    sweep();
    interval = setInterval(sweep, options.intervalMs);
    interval.unref();
  }, options.delayMs);
  first.unref();
  return {
    async stop() {
      controller.abort();
      clearTimeout(first);
      clearInterval(interval);
      await running;
    },
  };
}
