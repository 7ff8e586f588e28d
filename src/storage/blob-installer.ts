/**
 * Installs staged blobs (migration 025) as content-addressed files, behind the acknowledgement.
 *
 * When: once ingest has paused (no instance committed for `idleMs`), or at once while more than
 * `backlogBytes` or `backlogBlobs` wait. An installation costs two device flushes and their kernel
 * work: installing as instances arrived, bench:dicom's C-STORE took 2.4 ms of the hub's CPU per
 * instance and ran at 381 instances/s; deferred, 1.0 ms and 631/s (the installation's flushes also
 * delayed the WAL's). DICOM arrives in bursts (a study, then quiet), so the files follow each
 * burst; a stream that never pauses still gets them, the backlog held near its bound. (Syncing the
 * whole file system once per batch instead, with `sync -f`, was tried: slower still, 230/s.)
 * Blobs go in batches of per-file installations, two at a time, and each batch's rows are
 * deleted by one statement; between batches the installer yields again if ingest resumed.
 *
 * A staged blob's bytes were committed in the `blob_staging` row of the transaction that stored
 * what refers to it (a DICOM instance), so they are as durable as that row before any file exists.
 * Its row is deleted only once its file is durable. So at every moment the bytes are in the row,
 * in the file, or in both:
 * - a crash before the install leaves the row, and the next start-up installs it;
 * - a crash during it leaves the row and perhaps a temp file (the temp sweep's) or the installed
 *   file (installed again, which changes nothing: same key, same bytes);
 * - a crash after it, before the delete is durable (the delete does not wait for the WAL), leaves
 *   the row too, and the file is installed again.
 * Readers (staging-blob-store.ts) look for the file first, then the row, then the file again.
 *
 * Each process installs what it staged, reading the bytes back from their rows (as base64: node-
 * postgres would decode hex text twice their size) and checking them against their key. Holding
 * them in memory instead saved little CPU, all of it after the burst, and cost more memory than
 * the bytes (about 30 MB of RSS for 16 MB held, in bench:dicom). Rows nobody is installing (a crash's, another process's that
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
  /** Installation waits until no blob has been committed for this long (ingest has paused). */
  idleMs?: number | undefined;
  /** ... unless more than this many bytes, or blobs, wait to be installed. */
  backlogBytes?: number | undefined;
  backlogBlobs?: number | undefined;
  /** How often rows nobody is installing are looked for. */
  sweepIntervalMs?: number | undefined;
  /** How old a row must be for the periodic sweep (another process may be installing younger ones). */
  sweepAgeMs?: number | undefined;
}

const DEFAULT_IDLE_MS = 500;
const DEFAULT_BACKLOG_BYTES = 256 * 1024 * 1024;
const DEFAULT_BACKLOG_BLOBS = 20_000;
/** A blob's size for the backlog bound when it is not known (a row found by the sweep): a CT slice's. */
const UNKNOWN_BLOB_BYTES = 512 * 1024;
const DEFAULT_SWEEP_INTERVAL_MS = 10_000;
const DEFAULT_SWEEP_AGE_MS = 30_000;
/** Most blobs per batch: small enough to notice soon that ingest resumed. */
const BATCH_BLOBS = 64;
/** Blobs installed at once when each goes alone (two syncs each, in libuv's thread pool). */
const SINGLE_CONCURRENCY = 2;
/** PGlite runs no autovacuum: the installer vacuums the staging table itself after this many releases. */
const PGLITE_VACUUM_AFTER = 2000;

const READ_STAGED = prepared("SELECT encode(bytes, 'base64') AS bytes FROM blob_staging WHERE blob_key = $1");
const RELEASE = prepared('SELECT blob_staging_release($1::text[]) AS released');

export class BlobInstaller {
  private readonly db: Database;
  private readonly store: FileBlobStore;
  private readonly logger: Logger;
  private readonly idleMs: number;
  private readonly backlogBytes: number;
  private readonly backlogBlobs: number;
  /** Bytes queued, for the backlog bound. */
  private queuedBytes = 0;
  private lastCommitted = 0;
  private readonly sweepIntervalMs: number;
  private readonly sweepAgeMs: number;
  /** Keys to install, in order, with their sizes. */
  private readonly queue = new Map<string, number>();
  /** The batch being installed. */
  private readonly installing = new Set<string>();
  private batchTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private releasedSinceVacuum = 0;
  private idleWaiters: (() => void)[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(db: Database, store: FileBlobStore, options: BlobInstallerOptions) {
    this.db = db;
    this.store = store;
    this.logger = options.logger;
    this.idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
    this.backlogBytes = options.backlogBytes ?? DEFAULT_BACKLOG_BYTES;
    this.backlogBlobs = options.backlogBlobs ?? DEFAULT_BACKLOG_BLOBS;
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

  /** Told once a staged blob of `size` bytes is committed: it is installed once ingest pauses. */
  committed(key: string, size: number): void {
    if (this.stopped || this.queue.has(key) || this.installing.has(key)) {
      return;
    }
    this.enqueue(key, size);
    this.lastCommitted = Date.now();
    this.schedule();
  }

  /** The bytes of a blob staged and not installed yet; undefined when there is none (installed meanwhile, or never staged). */
  async stagedBytes(key: string): Promise<Buffer | undefined> {
    const text = (await this.db.query<{ bytes: string }>(READ_STAGED, [key])).rows[0]?.bytes;
    return text === undefined ? undefined : Buffer.from(text, 'base64');
  }

  /** Resolves once every blob told of so far is installed and its row released. */
  drain(): Promise<void> {
    if (this.idle()) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops sweeping and taking new work; the batch being installed finishes and is released. Rows
   * still queued stay staged, for the next start-up.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.queue.clear();
    this.queuedBytes = 0;
    await this.sweeping;
    await this.running;
    this.settleIfIdle();
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
          if (!this.stopped && !this.queue.has(key) && !this.installing.has(key)) {
            this.enqueue(key, UNKNOWN_BLOB_BYTES);
            queued++;
          }
        }
        if (queued > 0) {
          this.logger.info({ blobs: queued }, 'installing staged blobs left by an earlier run or a failed install');
          this.schedule();
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

  private enqueue(key: string, size: number): void {
    this.queue.set(key, size);
    this.queuedBytes += size;
  }

  private overBacklog(): boolean {
    return this.queuedBytes > this.backlogBytes || this.queue.size > this.backlogBlobs;
  }

  /** How long until installing may begin: 0 when ingest has paused or the backlog is over its bound. */
  private wait(): number {
    return this.overBacklog() ? 0 : Math.max(0, this.lastCommitted + this.idleMs - Date.now());
  }

  private schedule(): void {
    if (this.running !== undefined || this.batchTimer !== undefined || this.stopped || this.queue.size === 0) {
      return;
    }
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      if (this.wait() > 0) {
        this.schedule();
        return;
      }
      this.running = this.installQueued().finally(() => {
        this.running = undefined;
        this.schedule();
        this.settleIfIdle();
      });
    }, this.wait());
  }

  /** Installs what is queued, a batch at a time, until the queue is empty or ingest resumes. */
  private async installQueued(): Promise<void> {
    while (this.queue.size > 0 && !this.stopped && this.wait() === 0) {
      const batch: [string, number][] = [];
      for (const entry of this.queue) {
        if (batch.length >= BATCH_BLOBS) {
          break;
        }
        batch.push(entry);
      }
      for (const [key, size] of batch) {
        this.queue.delete(key);
        this.queuedBytes -= size;
        this.installing.add(key);
      }
      try {
        const installed = await this.installBatch(batch.map(([key]) => key));
        if (installed.length > 0) {
          await this.release(installed);
        }
      } catch (error) {
        // The rows stay: the sweep tries again.
        this.logger.warn({ err: messageOf(error), blobs: batch.length }, 'staged blobs could not be installed');
      } finally {
        for (const [key] of batch) {
          this.installing.delete(key);
        }
      }
    }
  }

  /** Installs a batch's blobs one by one; resolves with the keys installed (not those another process released meanwhile). */
  private async installBatch(batch: readonly string[]): Promise<string[]> {
    const installed: string[] = [];
    let failed: unknown;
    for (let start = 0; start < batch.length; start += SINGLE_CONCURRENCY) {
      await Promise.all(
        batch.slice(start, start + SINGLE_CONCURRENCY).map(async (key) => {
          try {
            const bytes = await this.readStaged(key);
            if (bytes !== undefined) {
              await this.installOne(key, bytes);
              installed.push(key);
            }
          } catch (error) {
            failed ??= error;
          }
        }),
      );
    }
    if (failed !== undefined) {
      // One warning per batch, not per blob: a full disk would otherwise flood the log.
      this.logger.warn(
        { err: messageOf(failed), blobs: batch.length - installed.length },
        'staged blobs could not be installed',
      );
    }
    return installed;
  }

  /** A blob's staged bytes from its row, checked against its key; undefined once another process released it. */
  private async readStaged(key: string): Promise<Buffer | undefined> {
    const bytes = await this.stagedBytes(key);
    if (bytes !== undefined && createHash('sha256').update(bytes).digest('hex') !== key) {
      throw new Error(`the staged bytes of blob ${key} do not match their key`);
    }
    return bytes;
  }

  private async installOne(key: string, bytes: Buffer): Promise<void> {
    const tmp = await this.store.writeTemp(bytes);
    try {
      await this.store.install(tmp, key);
    } catch (error) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** Deletes installed blobs' rows; a failure leaves them to be installed again (same bytes, no harm). */
  private async release(keys: string[]): Promise<void> {
    try {
      await this.db.query(RELEASE, [keys]);
      this.releasedSinceVacuum += keys.length;
      if (this.db.kind === 'pglite' && this.releasedSinceVacuum >= PGLITE_VACUUM_AFTER && this.queue.size === 0) {
        this.releasedSinceVacuum = 0;
        await this.db.query('VACUUM blob_staging');
      }
    } catch (error) {
      this.logger.warn({ err: messageOf(error), blobs: keys.length }, 'installed blobs could not be released');
    }
  }

  private idle(): boolean {
    return (
      this.queue.size === 0 && this.installing.size === 0 && this.running === undefined && this.batchTimer === undefined
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
