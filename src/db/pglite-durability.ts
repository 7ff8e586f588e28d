/**
 * Durable commits on the embedded database.
 *
 * As shipped, PGlite runs PostgreSQL with fsync off (`-F`), and the Emscripten file system it writes
 * through (NODEFS) has no fsync while its fdatasync is a no-op: nothing it writes is ever flushed, so
 * an OS crash or a power loss can take commits the hub acknowledged (a killed process cannot: the
 * kernel still holds the pages). Here:
 *
 * - PostgreSQL runs with fsync on, and NODEFS gets a real fsync: checkpoints, pg_control, new WAL
 *   segments and the renames that install them are flushed where PostgreSQL flushes them.
 * - The WAL flush of a commit (wal_sync_method=fdatasync, the call Emscripten leaves a no-op) is done
 *   here instead, off the event loop: every WAL segment PostgreSQL writes is noted, and
 *   `WalFlusher.durable()` resolves once an fdatasync of each has returned. Commits that end while a
 *   flush runs share the next one (group commit), while PGlite goes on with the next statements.
 * - The write-ahead rule holds: before PostgreSQL writes data into any other file or flushes one, the
 *   WAL written so far is flushed first (synchronously: PostgreSQL is inside the write), as its own
 *   XLogFlush does before a data page goes out. Zero-filled relation extensions carry no data and
 *   do not wait.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { PGliteOptions } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

/** The parts of Emscripten's NODEFS and FS that this module touches. */
interface EmscriptenStream {
  node: unknown;
  nfd?: number;
  /** This module's note of what the file is, made on first use. */
  hubFileKind?: FileKind;
}
interface NodeFsStreamOps {
  write(stream: EmscriptenStream, buffer: Uint8Array, offset: number, length: number, position?: number): number;
  fsync?(stream: EmscriptenStream): number;
}
interface EmscriptenModule {
  NODEFS: { stream_ops: NodeFsStreamOps; realPath(node: unknown): string };
  FS: { ErrnoError: new (errno: number) => Error };
}

/** `wal`: a WAL segment; `data`: PostgreSQL's state, which the WAL must precede; `other`: neither. */
type FileKind = { kind: 'wal'; file: string } | { kind: 'data' } | { kind: 'other' };

const WAL_SEGMENT = /^[0-9A-F]{24}$/;
/** Directories of the data directory whose files hold state that WAL records describe (pg_control is in global). */
const DATA_DIRS = new Set(['base', 'global', 'pg_xact', 'pg_multixact', 'pg_commit_ts', 'pg_twophase', 'pg_logical']);
const EIO = 29; // Emscripten's errno for EIO

function classify(root: string, file: string): FileKind {
  const relative = path.relative(root, file).split(path.sep);
  const [top = '', name = ''] = [relative[0], relative[relative.length - 1]];
  if (top === 'pg_wal') {
    // Only segments: PostgreSQL itself fsyncs the temporary file a new segment is made in.
    return relative.length === 2 && WAL_SEGMENT.test(name) ? { kind: 'wal', file } : { kind: 'other' };
  }
  if (!DATA_DIRS.has(top) || relative.includes('pgsql_tmp') || name.startsWith('pg_internal.init')) {
    return { kind: 'other' };
  }
  return { kind: 'data' };
}

const ZEROS = new Uint8Array(64 * 1024);

function allZero(buffer: Uint8Array, offset: number, length: number): boolean {
  for (let at = 0; at < length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, length - at);
    const chunk = new Uint8Array(buffer.buffer, buffer.byteOffset + offset + at, n);
    if (Buffer.compare(chunk, n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n)) !== 0) {
      return false;
    }
  }
  return true;
}

/** fdatasync through the thread pool, off the event loop. */
function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Descriptors of the segments being written, kept open so that a flush is one call: PostgreSQL writes
 * one segment at a time, so a few suffice.
 */
const OPEN_SEGMENTS = 4;

class SegmentFiles {
  private readonly fds = new Map<string, number>();

  /**
   * The descriptor of `file`, opened when needed; undefined when the segment is gone: a checkpoint
   * renamed or removed it, after flushing everything it described, so nothing in it is needed.
   */
  open(file: string): number | undefined {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = fs.openSync(file, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          return undefined;
        }
        throw err;
      }
      this.fds.set(file, fd);
    } else {
      // Most recently used last.
      this.fds.delete(file);
      this.fds.set(file, fd);
    }
    return fd;
  }

  /** Closes the least recently used beyond the few kept; only while no flush uses them. */
  trim(): void {
    for (const [file, fd] of this.fds) {
      if (this.fds.size <= OPEN_SEGMENTS) {
        break;
      }
      this.fds.delete(file);
      fs.closeSync(fd);
    }
  }

  close(): void {
    for (const fd of this.fds.values()) {
      fs.closeSync(fd);
    }
    this.fds.clear();
  }
}

/**
 * Group commit for the WAL segments PostgreSQL writes: `durable()` resolves once everything written
 * before the call is on disk. One flush runs at a time; the callers that arrive meanwhile wait for
 * the next one, which covers them all.
 */
export class WalFlusher {
  /** WAL writes seen so far. */
  private written = 0;
  /** WAL writes up to this count are on disk. */
  private flushedUpTo = 0;
  /** Segments written since the last flush began. */
  private dirty = new Set<string>();
  /** Segments the running flush is syncing. */
  private inFlight: readonly string[] = [];
  private waiters: { upTo: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private running = false;
  private failure: Error | undefined;
  private readonly segments = new SegmentFiles();

  noteWalWrite(file: string): void {
    this.written++;
    this.dirty.add(file);
  }

  /** True while some WAL written is not known to be on disk. */
  get pending(): boolean {
    return this.flushedUpTo < this.written;
  }

  /** Resolves once every WAL write made before this call is on disk; rejects for good after a failed flush. */
  durable(): Promise<void> {
    if (this.failure) {
      return Promise.reject(this.failure);
    }
    const upTo = this.written;
    if (upTo <= this.flushedUpTo) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo, resolve, reject });
      if (!this.running) {
        void this.run();
      }
    });
  }

  /** Flushes the WAL written so far before returning (the write-ahead rule, from inside PostgreSQL). */
  flushNow(): void {
    if (this.failure) {
      throw this.failure;
    }
    if (!this.pending) {
      return;
    }
    const upTo = this.written;
    const files = new Set([...this.dirty, ...this.inFlight]);
    this.dirty.clear();
    try {
      for (const file of files) {
        const fd = this.segments.open(file);
        if (fd !== undefined) {
          fs.fdatasyncSync(fd);
        }
      }
    } catch (err) {
      this.fail(err);
      throw err;
    }
    this.settle(upTo);
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.waiters.length > 0 && !this.failure) {
        const upTo = this.written;
        this.inFlight = [...this.dirty];
        this.dirty.clear();
        try {
          this.segments.trim();
          const fds = this.inFlight.map((file) => this.segments.open(file));
          await Promise.all(fds.map((fd) => (fd === undefined ? undefined : fdatasync(fd))));
        } catch (err) {
          this.fail(err);
          return;
        } finally {
          this.inFlight = [];
        }
        this.settle(upTo);
      }
    } finally {
      this.running = false;
    }
  }

  private settle(upTo: number): void {
    this.flushedUpTo = Math.max(this.flushedUpTo, upTo);
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) {
      if (waiter.upTo <= this.flushedUpTo) {
        waiter.resolve();
      } else {
        this.waiters.push(waiter);
      }
    }
  }

  /** Closes the segments' descriptors (the database is closed: its own shutdown flushed everything). */
  close(): void {
    this.segments.close();
  }

  /**
   * After a failed fsync the kernel may have dropped the pages it could not write, so no later flush
   * can vouch for them: like PostgreSQL (which panics), nothing is acknowledged any more.
   */
  private fail(err: unknown): void {
    const cause = err instanceof Error ? err.message : String(err);
    this.failure = new Error(
      `the embedded database could not flush its write-ahead log (${cause}); restart the hub (recovery replays what reached the disk)`,
    );
    for (const waiter of this.waiters) {
      waiter.reject(this.failure);
    }
    this.waiters = [];
  }
}

/** NODEFS with a real fsync, WAL writes noted for the flusher, and the write-ahead rule kept. */
class DurableNodeFS extends NodeFS {
  private readonly root: string;
  private readonly wal: WalFlusher;

  constructor(root: string, wal: WalFlusher) {
    super(root);
    this.root = root;
    this.wal = wal;
  }

  override async init(pg: PGlite, options: Parameters<NodeFS['init']>[1]): ReturnType<NodeFS['init']> {
    const result = await super.init(pg, options);
    const preRun = [...(result.emscriptenOpts.preRun ?? [])];
    // Before NODEFS is mounted (the first file opened already goes through the patched operations).
    preRun.unshift((mod: unknown) => this.patch(mod as EmscriptenModule));
    return { emscriptenOpts: { ...result.emscriptenOpts, preRun } };
  }

  private patch(mod: EmscriptenModule): void {
    const { NODEFS, FS } = mod;
    const ops = NODEFS.stream_ops;
    const write = ops.write.bind(ops);
    const kindOf = (stream: EmscriptenStream): FileKind =>
      (stream.hubFileKind ??= classify(this.root, NODEFS.realPath(stream.node)));
    const walFirst = (): void => {
      try {
        this.wal.flushNow();
      } catch {
        throw new FS.ErrnoError(EIO);
      }
    };
    ops.write = (stream, buffer, offset, length, position) => {
      const kind = kindOf(stream);
      if (kind.kind === 'data' && this.wal.pending && !allZero(buffer, offset, length)) {
        walFirst();
      }
      const n = write(stream, buffer, offset, length, position);
      if (kind.kind === 'wal') {
        this.wal.noteWalWrite(kind.file);
      }
      return n;
    };
    ops.fsync = (stream) => {
      if (kindOf(stream).kind !== 'wal') {
        walFirst();
      }
      try {
        fs.fsyncSync(stream.nfd ?? -1);
      } catch {
        throw new FS.ErrnoError(EIO);
      }
      return 0;
    };
  }
}

/** fsync of every file and directory under `dir`, and of `dir`'s own entry in its parent. */
async function syncTree(dir: string): Promise<void> {
  const syncPath = async (target: string): Promise<void> => {
    const handle = await fs.promises.open(target, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  const walk = async (current: string): Promise<void> => {
    const entries = await fs.promises.readdir(current, { withFileTypes: true });
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) {
        await walk(full);
      } else if (entry.isFile()) {
        await syncPath(full);
      }
    }
    await syncPath(current);
  };
  await walk(dir);
  await syncPath(path.dirname(dir));
}

export interface DurablePGlite {
  pg: PGlite;
  wal: WalFlusher;
}

/**
 * Opens (creating when absent) the embedded database in `pgdata` with durable commits: PostgreSQL's
 * fsyncs are real, and the caller awaits `wal.durable()` before acknowledging what it committed.
 */
export async function openDurablePGlite(pgdata: string, options: PGliteOptions = {}): Promise<DurablePGlite> {
  const root = path.resolve(pgdata);
  const fresh = !fs.existsSync(path.join(root, 'PG_VERSION'));
  const wal = new WalFlusher();
  const startParams = [
    ...PGlite.defaultStartParams.filter((param) => param !== '-F'),
    // The commit's WAL flush is left to WalFlusher: this is the method Emscripten makes a no-op.
    '-c',
    'wal_sync_method=fdatasync',
  ];
  const pg = await PGlite.create({ ...options, fs: new DurableNodeFS(root, wal), startParams });
  if (fresh) {
    // PGlite writes a new cluster from a template without flushing it.
    await syncTree(root);
  }
  return { pg, wal };
}
