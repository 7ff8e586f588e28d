/**
 * Installs staged blobs (migration 025) as content-addressed files, behind the acknowledgement.
 *
 * A staged blob's bytes were committed in the `blob_staging` row of the transaction that stored
 * what refers to it (a DICOM instance), so they are as durable as that row before any file exists.
 * Installing one is the blob store's own path (a temp file written and synced, renamed to its key,
 * its directory synced); only then is its row deleted. So at every moment the bytes are in the row,
 * in the file, or in both:
 * - a crash before the install leaves the row, and the next start-up installs it;
 * - a crash during it leaves the row and perhaps a temp file (the temp sweep's) or the installed
 *   file (installed again, which changes nothing: same key, same bytes);
 * - a crash after it, before the delete is durable (the delete does not wait for the WAL), leaves
 *   the row too, and the file is installed again.
 * Readers (staging-blob-store.ts) look for the file first, then the row, then the file again.
 *
 * Each process installs what it staged, from the bytes it still holds (up to `memoryBytes`; beyond,
 * they are read back from their row). Rows nobody is installing (a crash's, another process's that
 * died, a failed install's) are installed by the sweep: all of them at start-up, then those older
 * than `sweepAgeMs` every `sweepIntervalMs`. Two processes installing one blob at once is harmless.
 */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import type { Database } from '../db/database.ts';
import { prepared } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { FileBlobStore } from './blob-store.ts';

export interface BlobInstallerOptions {
  logger: Logger;
  /** Staged bytes held for installation; beyond this, they are read back from their row. */
  memoryBytes?: number | undefined;
  /** Blobs installed at once (each costs two syncs in libuv's thread pool). */
  concurrency?: number | undefined;
  /** How often rows nobody is installing are looked for. */
  sweepIntervalMs?: number | undefined;
  /** How old a row must be for the periodic sweep (another process may be installing younger ones). */
  sweepAgeMs?: number | undefined;
}

const DEFAULT_MEMORY_BYTES = 32 * 1024 * 1024;
const DEFAULT_CONCURRENCY = 2;
const DEFAULT_SWEEP_INTERVAL_MS = 10_000;
const DEFAULT_SWEEP_AGE_MS = 30_000;
/** Installed blobs released per statement, and how long a release waits for company. */
const RELEASE_BATCH = 200;
const RELEASE_DELAY_MS = 20;
/** PGlite runs no autovacuum: the installer vacuums the staging table itself after this many releases. */
const PGLITE_VACUUM_AFTER = 2000;

const READ_STAGED = prepared('SELECT bytes FROM blob_staging WHERE blob_key = $1');
const RELEASE = prepared('SELECT blob_staging_release($1::text[]) AS released');

export class BlobInstaller {
  private readonly db: Database;
  private readonly store: FileBlobStore;
  private readonly logger: Logger;
  private readonly memoryBytes: number;
  private readonly concurrency: number;
  private readonly sweepIntervalMs: number;
  private readonly sweepAgeMs: number;
  /** Keys to install, in order; the bytes when held (undefined: read them from the row). */
  private readonly queue = new Map<string, Buffer | undefined>();
  private heldBytes = 0;
  /** Bytes of blobs being installed, for readers: from here until their file is in place. */
  private readonly installing = new Map<string, Buffer | undefined>();
  /** Installed, their rows not yet released: the sweep leaves them alone. */
  private readonly unreleased = new Set<string>();
  private releases: string[] = [];
  private releaseTimer: NodeJS.Timeout | undefined;
  private releasing: Promise<void> | undefined;
  private releasedSinceVacuum = 0;
  private idleWaiters: (() => void)[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(db: Database, store: FileBlobStore, options: BlobInstallerOptions) {
    this.db = db;
    this.store = store;
    this.logger = options.logger;
    this.memoryBytes = options.memoryBytes ?? DEFAULT_MEMORY_BYTES;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.sweepAgeMs = options.sweepAgeMs ?? DEFAULT_SWEEP_AGE_MS;
  }

  /**
   * Installs every row a previous run left (resolves once they are installed), then sweeps
   * periodically. A failed recovery is logged and left to the sweep.
   */
  async start(): Promise<void> {
    await this.sweep(0);
    if (!this.stopped) {
      this.sweepTimer = setInterval(() => void this.sweep(this.sweepAgeMs), this.sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  /** Told once staged blobs are committed: they are installed soon, from these bytes. */
  committed(key: string, bytes: Buffer): void {
    if (this.queue.has(key) || this.installing.has(key) || this.unreleased.has(key)) {
      return;
    }
    const hold = this.heldBytes + bytes.length <= this.memoryBytes;
    if (hold) {
      this.heldBytes += bytes.length;
    }
    this.queue.set(key, hold ? bytes : undefined);
    this.pump();
  }

  /**
   * The bytes of a blob staged and not installed yet: from memory when held, else from its row;
   * undefined when there is none (installed meanwhile, or never staged).
   */
  async stagedBytes(key: string): Promise<Buffer | undefined> {
    const held = this.queue.get(key) ?? this.installing.get(key);
    if (held !== undefined) {
      return held;
    }
    const row = (await this.db.query<{ bytes: Buffer }>(READ_STAGED, [key])).rows[0];
    return row?.bytes;
  }

  /** Resolves once every blob told of so far is installed and its row released. */
  drain(): Promise<void> {
    if (this.idle()) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops sweeping and taking new work; the installations running finish and are released. Rows
   * still queued stay staged, for the next start-up.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    for (const bytes of this.queue.values()) {
      this.heldBytes -= bytes?.length ?? 0;
    }
    this.queue.clear();
    await this.sweeping;
    await this.drain();
  }

  /** Queues the rows nobody here is installing, staged at least `minAgeMs` ago; waits for them. */
  private sweep(minAgeMs: number): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        const rows = await this.db.query<{ blob_key: string }>(
          `SELECT blob_key FROM blob_staging WHERE staged_at <= now() - make_interval(secs => $1) ORDER BY staged_at`,
          [minAgeMs / 1000],
        );
        let queued = 0;
        for (const { blob_key: key } of rows.rows) {
          if (!this.stopped && !this.queue.has(key) && !this.installing.has(key) && !this.unreleased.has(key)) {
            this.queue.set(key, undefined);
            queued++;
          }
        }
        if (queued > 0) {
          this.logger.info({ blobs: queued }, 'installing staged blobs left by an earlier run or a failed install');
          this.pump();
          await this.drain();
        }
      } catch (error) {
        this.logger.warn({ err: messageOf(error) }, 'the sweep of staged blobs failed');
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  private pump(): void {
    while (this.installing.size < this.concurrency && this.queue.size > 0) {
      const [key, bytes] = this.queue.entries().next().value as [string, Buffer | undefined];
      this.queue.delete(key);
      this.installing.set(key, bytes);
      void this.install(key, bytes).finally(() => {
        this.installing.delete(key);
        if (bytes !== undefined) {
          this.heldBytes -= bytes.length;
        }
        this.pump();
        this.settleIfIdle();
      });
    }
  }

  private async install(key: string, held: Buffer | undefined): Promise<void> {
    try {
      let bytes = held;
      if (bytes === undefined) {
        bytes = (await this.db.query<{ bytes: Buffer }>(READ_STAGED, [key])).rows[0]?.bytes;
        if (bytes === undefined) {
          // Installed and released by another process meanwhile.
          return;
        }
        if (createHash('sha256').update(bytes).digest('hex') !== key) {
          throw new Error(`the staged bytes of blob ${key} do not match their key`);
        }
      }
      const tmp = await this.store.writeTemp(bytes);
      try {
        await this.store.install(tmp, key);
      } catch (error) {
        await fsp.rm(tmp, { force: true }).catch(() => undefined);
        throw error;
      }
      this.unreleased.add(key);
      this.release(key);
    } catch (error) {
      // The row stays: the sweep tries again.
      this.logger.warn({ err: messageOf(error), blob: key }, 'a staged blob could not be installed');
    }
  }

  private release(key: string): void {
    this.releases.push(key);
    if (this.releases.length >= RELEASE_BATCH || (this.queue.size === 0 && this.installing.size <= 1)) {
      this.flushReleases();
    } else {
      this.releaseTimer ??= setTimeout(() => this.flushReleases(), RELEASE_DELAY_MS);
    }
  }

  private flushReleases(): void {
    clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
    if (this.releasing !== undefined || this.releases.length === 0) {
      return;
    }
    const keys = this.releases;
    this.releases = [];
    this.releasing = (async () => {
      try {
        await this.db.query(RELEASE, [keys]);
        this.releasedSinceVacuum += keys.length;
        if (this.db.kind === 'pglite' && this.releasedSinceVacuum >= PGLITE_VACUUM_AFTER && this.queue.size === 0) {
          this.releasedSinceVacuum = 0;
          await this.db.query('VACUUM blob_staging');
        }
      } catch (error) {
        // The files are in place; their rows are installed again by the sweep (or the next start-up).
        this.logger.warn({ err: messageOf(error), blobs: keys.length }, 'installed blobs could not be released');
      } finally {
        for (const key of keys) {
          this.unreleased.delete(key);
        }
        this.releasing = undefined;
      }
      if (this.releases.length > 0) {
        this.flushReleases();
      }
      this.settleIfIdle();
    })();
  }

  private idle(): boolean {
    return (
      this.queue.size === 0 && this.installing.size === 0 && this.releases.length === 0 && this.releasing === undefined
    );
  }

  private settleIfIdle(): void {
    if (!this.idle()) {
      return;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) {
      resolve();
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
