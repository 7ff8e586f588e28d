/**
 * The audit records of reads, searches, refused requests, logins and tokens: acknowledged once they
 * are appended to a local journal file (DATA_DIR/audit), and stored in the database (the audit
 * store, statement.ts) in batches, one multi-row statement every AUDIT_FLUSH_MS (or sooner when
 * AUDIT_BATCH_SIZE are waiting). A request never waits for the database. The requests of one turn
 * of the event loop share one append (group commit), made when the turn's callbacks have run. By
 * default the append is a synchronous write(2) into the page cache (a few microseconds, cheaper than
 * a round trip through libuv's thread pool), which survives any death of the hub process; with
 * AUDIT_JOURNAL_FSYNC=true the appends go through the thread pool and also wait for one shared
 * fdatasync, which survives a power loss.
 *
 * The journal is a series of segments: each database flush closes the current segment, stores its
 * events and deletes it. A hub that dies keeps its segments; the next start (of any hub on the same
 * DATA_DIR) stores every segment whose process is gone, and the insert ignores ids already stored, so
 * an event acknowledged before a crash is stored exactly once. Writes do not come here: their
 * AuditEvents are part of the write's own statement (fhir/write.ts).
 */
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import { insertAuditEvents, toStored } from './statement.ts';
import type { StoredAuditEvent } from './statement.ts';

export interface AuditLogOptions {
  db: Database;
  /** The journal directory, `${DATA_DIR}/audit`. */
  dir: string;
  logger: Logger;
  /** AUDIT_FLUSH_MS */
  flushMs: number;
  /** AUDIT_BATCH_SIZE: a flush starts at once when this many events wait. */
  batchSize: number;
  /**
   * AUDIT_JOURNAL_FSYNC: acknowledge only after fdatasync, which also survives a power loss; otherwise
   * after the write(2) that puts the line in the kernel's page cache, which survives any death of the
   * hub process, and the database has it within flushMs.
   */
  fsync: boolean;
}

const SEGMENT = /^journal-(\d+)-[0-9a-f]+-\d+\.ndjson$/;
const RETRY_MS = 1000;
const MAX_ROWS_PER_STATEMENT = 1000;

/**
 * A journal file and the events written to it, each kept as the texts it is stored with (its
 * journal line is its `content`): made when recorded, so the event objects die young instead of
 * living on, through a garbage collection or two, until the next flush.
 */
interface Segment {
  path: string;
  file: FileHandle;
  events: StoredAuditEvent[];
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) {
    return false;
  } // our pid, but a previous process (a container restart)
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class AuditLog {
  private readonly options: AuditLogOptions;
  private readonly prefix: string;
  private segmentCount = 0;
  private current: Segment | undefined;
  /** Closed segments whose events are not stored yet (a failed flush keeps them here). */
  private readonly closed: Segment[] = [];
  private pendingLines: string[] = [];
  private pendingEvents: StoredAuditEvent[] = [];
  private waiters: Waiter[] = [];
  /** Segment switches and (with fsync) journal appends, one at a time. */
  private io: Promise<void> = Promise.resolve();
  private appendScheduled = false;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: AuditLogOptions) {
    this.options = options;
    this.prefix = `journal-${process.pid}-${randomBytes(4).toString('hex')}`;
  }

  /** Stores the segments of hubs that are gone, then opens this process's journal. */
  async start(): Promise<void> {
    await fs.mkdir(this.options.dir, { recursive: true });
    const replayed = await this.replayOrphans();
    if (replayed > 0) {
      this.options.logger.warn({ events: replayed }, 'audit events recovered from the journal of a stopped hub');
    }
    this.current = await this.openSegment();
    this.timer = setInterval(() => void this.flush().catch(() => undefined), this.options.flushMs);
    this.timer.unref();
  }

  /** Resolves once the events are durable in the journal; the caller may then acknowledge. */
  record(events: AuditEvent[]): Promise<void> {
    if (this.stopped || this.current === undefined) {
      return Promise.reject(new Error('the audit log is not running'));
    }
    for (const event of events) {
      const entry = toStored(event);
      this.pendingEvents.push(entry);
      this.pendingLines.push(entry.content + '\n');
    }
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.appendScheduled) {
      this.appendScheduled = true;
      setImmediate(() => {
        if (this.options.fsync) {
          this.io = this.io.then(() => this.sync());
        } else {
          this.append();
        }
      });
    }
    return written;
  }

  /**
   * One group commit without fsync: everything recorded in this turn of the event loop, in one
   * write(2). The segment is read and written in one synchronous step, so a segment switch
   * (flushOnce) never separates a line from the segment whose events it is stored with.
   */
  private append(): void {
    this.appendScheduled = false;
    const { lines, events, waiters } = this.takePending();
    const segment = this.current;
    try {
      if (segment === undefined) {
        throw new Error('the audit log is not running');
      }
      const bytes = Buffer.from(lines.join(''), 'utf8');
      for (let written = 0; written < bytes.length;) {
        written += writeSync(segment.file.fd, bytes, written);
      }
      for (const entry of events) {
        segment.events.push(entry);
      }
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'audit journal write failed');
      waiters.forEach((w) => w.reject(err));
      return;
    }
    waiters.forEach((w) => w.resolve());
    if (segment.events.length >= this.options.batchSize) {
      void this.flush().catch(() => undefined);
    }
  }

  /** One group commit with fsync: everything recorded since the last one, one write and one fdatasync. */
  private async sync(): Promise<void> {
    this.appendScheduled = false;
    const { lines, events, waiters } = this.takePending();
    const segment = this.current as Segment;
    try {
      // One write (off the event loop) for all the requests of this moment; with fsync, one fdatasync.
      await segment.file.write(lines.join(''));
      if (this.options.fsync) {
        await segment.file.datasync();
      }
      segment.events.push(...events);
      waiters.forEach((w) => w.resolve());
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'audit journal write failed');
      waiters.forEach((w) => w.reject(err));
    }
    if (segment.events.length >= this.options.batchSize) {
      void this.flush().catch(() => undefined);
    }
  }

  /** What was recorded since the last append, handed over whole; the next records start afresh. */
  private takePending(): { lines: string[]; events: StoredAuditEvent[]; waiters: Waiter[] } {
    const pending = { lines: this.pendingLines, events: this.pendingEvents, waiters: this.waiters };
    this.pendingLines = [];
    this.pendingEvents = [];
    this.waiters = [];
    return pending;
  }

  private async openSegment(): Promise<Segment> {
    this.segmentCount++;
    const file = path.join(this.options.dir, `${this.prefix}-${this.segmentCount}.ndjson`);
    const handle = await fs.open(file, 'a');
    if (this.options.fsync) {
      // The new name must survive a power loss too, or the fsynced lines in it could not be found.
      // Without fsync the promise is survival of the process's death, which the page cache keeps.
      const dir = await fs.open(this.options.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    return { path: file, file: handle, events: [] };
  }

  /** Stores every acknowledged event in the database (one statement per segment). */
  flush(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    await (this.io = this.io.then(async () => {
      const segment = this.current;
      if (segment && segment.events.length > 0 && !this.stopped) {
        this.current = await this.openSegment();
        await segment.file.close();
        this.closed.push(segment);
      }
    }));
    // The oldest closed segment first; it leaves the queue only once its events are stored.
    for (let segment = this.closed[0]; segment !== undefined; segment = this.closed[0]) {
      try {
        // Off the request path: one statement per segment.
        await this.insert(segment.events);
      } catch (err) {
        this.options.logger.error(
          { err: (err as Error).message, events: segment.events.length },
          'storing audit events failed; kept in the journal',
        );
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
        throw err;
      }
      this.closed.shift();
      await fs.rm(segment.path, { force: true });
    }
  }

  private async insert(events: readonly StoredAuditEvent[]): Promise<number> {
    let count = 0;
    // Bounded statements: a long outage can leave a large segment behind.
    for (let i = 0; i < events.length; i += MAX_ROWS_PER_STATEMENT) {
      count += await insertAuditEvents(this.options.db, events.slice(i, i + MAX_ROWS_PER_STATEMENT));
    }
    return count;
  }

  /** Every segment left by a process that no longer runs, stored and deleted. */
  private async replayOrphans(): Promise<number> {
    let count = 0;
    for (const name of (await fs.readdir(this.options.dir)).sort()) {
      const match = SEGMENT.exec(name);
      if (!match || processAlive(Number(match[1]))) {
        continue;
      }
      const file = path.join(this.options.dir, name);
      const events: StoredAuditEvent[] = [];
      for (const line of (await fs.readFile(file, 'utf8')).split('\n')) {
        if (line === '') {
          continue;
        }
        try {
          events.push(toStored(JSON.parse(line) as AuditEvent, line));
        } catch {
          // A line cut by the crash was never acknowledged (its fsync had not returned).
        }
      }
      count += await this.insert(events);
      await fs.rm(file, { force: true });
    }
    return count;
  }

  /** Stores what is left and closes the journal (SIGTERM). */
  async stop(): Promise<void> {
    if (this.timer) {
      clearInterval(this.timer);
    }
    await this.io;
    try {
      await this.flush();
    } catch {
      // Left in the journal; the next start stores it.
    }
    this.stopped = true;
    await this.io;
    // An append scheduled before `stopped` runs first (setImmediate keeps order): never on a closed fd.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.current) {
      await this.current.file.close();
      if (this.current.events.length === 0 && this.pendingEvents.length === 0) {
        await fs.rm(this.current.path, { force: true });
      }
      this.current = undefined;
    }
  }
}
