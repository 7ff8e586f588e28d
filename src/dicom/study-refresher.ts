/**
 * Keeps each study's FHIR ImagingStudy up to date with its stored instances, once per burst of
 * instances rather than once per instance: rewriting (and re-indexing) a study's ImagingStudy for
 * each of its hundreds of instances would cost more than storing them.
 *
 * Ingest marks the study in `dicom_study_refresh` in the statement that stores the instance, then
 * calls `touch`. While instances keep arriving, refreshes wait: they compete with ingest for the
 * same CPU and database, and each one costs several statements and a commit, so refreshing a study
 * as soon as it alone was quiet cost bench:dicom about a third of its STOW-RS rate. The refresher
 * rebuilds the ImagingStudies when this process's ingest has been quiet for `quietMs`, or, during a
 * stream that never pauses, once a study has waited `maxDelayMs` since its first touch: then that
 * study goes with every other that has been quiet for `quietMs` itself, all in shared transactions.
 * More than MAX_PENDING studies waiting also sends them all. It removes a mark only if no instance
 * arrived meanwhile. `flush` refreshes at once: a DIMSE association calls it before confirming its
 * release, so a sender that has released finds the ImagingStudy current. Marks left by a crash, or by another hub process, are picked up by a sweep.
 * Studies that fall due together (the studies of one STOW-RS request, a flush, a sweep) are
 * refreshed in one transaction, up to REFRESH_BATCH at a time: one lock statement, one read of
 * their rows, one commit; a batch that fails is redone one study at a time, so one study's
 * failure leaves the others current.
 */
import type { Database, Queryable } from '../db/database.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import type { Logger } from '../logger.ts';
import { deriveImagingStudy } from './imaging-study.ts';
import type { InstanceRow, SeriesRow, StudyRow } from './imaging-study.ts';

export interface StudyRefresherOptions {
  db: Database;
  repository: RepositoryContext;
  endpointId: string;
  logger: Logger;
  /** Refresh the studies once ingest has had no instance for this long (default 250 ms). */
  quietMs?: number;
  /** ... but a study no later than this after its first touch (default 10 s). */
  maxDelayMs?: number;
  /** How often marks no process is working on are looked for (crash recovery, other processes). */
  sweepMs?: number;
  /** Called after an ImagingStudy was written (its outbox event is waiting). */
  onRefreshed?: () => void;
}

/** Studies refreshed in one transaction at most. */
const REFRESH_BATCH = 32;
/** How long studies falling due wait for others to share their transaction. */
const GATHER_MS = 20;
/** Studies waiting at most: beyond, they are all refreshed, whatever ingest is doing. */
const MAX_PENDING = 512;

interface Pending {
  firstTouch: number;
  lastTouch: number;
}

export class StudyRefresher {
  private readonly options: StudyRefresherOptions;
  private readonly quietMs: number;
  private readonly maxDelayMs: number;
  /** Studies touched and not yet due. */
  private readonly pending = new Map<string, Pending>();
  /**
   * The last touch of any study: ingest's last instance in this process. Times here are
   * performance.now()'s, which a change of the wall clock does not move.
   */
  private lastTouch = 0;
  /** Set while studies are pending: when it fires, it sends those due and sets itself again. */
  private pendingTimer: NodeJS.Timeout | undefined;
  /** Studies due, gathering for one batch. */
  private readonly due = new Set<string>();
  private dueTimer: NodeJS.Timeout | undefined;
  /** The refresh running per study; a second request for it waits and runs once more after it. */
  private readonly running = new Map<string, Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(options: StudyRefresherOptions) {
    this.options = options;
    this.quietMs = options.quietMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 10_000;
  }

  /** Starts the sweep, beginning with the marks a previous process left. */
  start(): void {
    const sweepMs = this.options.sweepMs ?? 5_000;
    // The first sweep takes every mark: those a crashed process left should not wait.
    let minAgeMs = 0;
    const loop = (): void => {
      this.sweeping = this.sweep(minAgeMs).finally(() => {
        minAgeMs = this.maxDelayMs;
        this.sweeping = undefined;
        if (!this.stopped) {
          this.sweepTimer = setTimeout(loop, sweepMs);
          this.sweepTimer.unref();
        }
      });
    };
    loop();
  }

  /** A study got an instance: schedule its refresh. */
  touch(studyInstanceUid: string): void {
    if (this.stopped) {
      return;
    }
    const now = performance.now();
    this.lastTouch = now;
    const existing = this.pending.get(studyInstanceUid);
    if (existing) {
      existing.lastTouch = now;
    } else {
      this.pending.set(studyInstanceUid, { firstTouch: now, lastTouch: now });
    }
    if (this.pending.size > MAX_PENDING) {
      this.sendDue(now, true);
      return;
    }
    this.schedule(now);
  }

  /** Sets the timer for the next moment something may fall due, unless it is set. */
  private schedule(now: number): void {
    if (this.pendingTimer !== undefined || this.pending.size === 0 || this.stopped) {
      return;
    }
    let firstTouch = Infinity;
    for (const pending of this.pending.values()) {
      firstTouch = Math.min(firstTouch, pending.firstTouch);
    }
    const at = Math.min(this.lastTouch + this.quietMs, firstTouch + this.maxDelayMs);
    this.pendingTimer = setTimeout(
      () => {
        this.pendingTimer = undefined;
        this.sendDue(performance.now(), false);
      },
      Math.max(0, at - now),
    );
    this.pendingTimer.unref();
  }

  /**
   * Everything pending once ingest is quiet (or when `all`); during a stream, once one study is
   * overdue, it and every study quiet by itself; otherwise nothing yet.
   */
  private sendDue(now: number, all: boolean): void {
    const quiet = all || now - this.lastTouch >= this.quietMs;
    let overdue = false;
    for (const pending of this.pending.values()) {
      if (now - pending.firstTouch >= this.maxDelayMs) {
        overdue = true;
        break;
      }
    }
    if (quiet || overdue) {
      for (const [uid, pending] of this.pending) {
        if (quiet || now - pending.lastTouch >= this.quietMs || now - pending.firstTouch >= this.maxDelayMs) {
          this.pending.delete(uid);
          this.gather(uid);
        }
      }
    }
    this.schedule(now);
  }

  /** Refreshes these studies now; resolves when their ImagingStudies are current. */
  async flush(studyInstanceUids: Iterable<string>): Promise<void> {
    const uids = [...new Set(studyInstanceUids)];
    for (const uid of uids) {
      this.pending.delete(uid);
      this.due.delete(uid);
    }
    await this.refresh(uids, true);
  }

  /** Stops scheduling, then refreshes what is pending (what is left stays marked for the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) {
      clearTimeout(this.sweepTimer);
    }
    if (this.dueTimer) {
      clearTimeout(this.dueTimer);
    }
    if (this.pendingTimer) {
      clearTimeout(this.pendingTimer);
    }
    await this.sweeping;
    const uids = [...this.pending.keys(), ...this.due];
    this.pending.clear();
    this.due.clear();
    await Promise.allSettled([this.refresh(uids), ...this.running.values()]);
  }

  /** A study fell due: it waits briefly for others to share its transaction. */
  private gather(uid: string): void {
    this.due.add(uid);
    if (this.dueTimer) {
      return;
    }
    this.dueTimer = setTimeout(() => {
      this.dueTimer = undefined;
      const uids = [...this.due];
      this.due.clear();
      void this.refresh(uids);
    }, GATHER_MS);
    this.dueTimer.unref();
  }

  /**
   * These studies' refreshes, after any still running for them (never two at once per study in
   * this process); `rethrow` for callers that must know.
   */
  private async refresh(uids: string[], rethrow = false): Promise<void> {
    if (uids.length === 0) {
      return;
    }
    const previous = uids.flatMap((uid) => this.running.get(uid) ?? []);
    const run = (async () => {
      await Promise.all(previous.map((earlier) => earlier.catch(() => undefined)));
      await this.refreshNow(uids);
    })();
    for (const uid of uids) {
      this.running.set(uid, run);
    }
    try {
      await run;
    } catch (error) {
      // Another try comes with the next touch or sweep: the marks stay.
      this.options.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'ImagingStudy refresh failed',
      );
      if (rethrow) {
        throw error;
      }
    } finally {
      for (const uid of uids) {
        if (this.running.get(uid) === run) {
          this.running.delete(uid);
        }
      }
    }
  }

  /** Batch by batch; a batch that fails is redone one study at a time. Throws the first failure. */
  private async refreshNow(uids: string[]): Promise<void> {
    const sorted = [...new Set(uids)].sort();
    let failure: { error: unknown } | undefined;
    for (let start = 0; start < sorted.length; start += REFRESH_BATCH) {
      const batch = sorted.slice(start, start + REFRESH_BATCH);
      try {
        await this.refreshBatch(batch);
      } catch (error) {
        if (batch.length === 1) {
          failure ??= { error };
          continue;
        }
        for (const uid of batch) {
          try {
            await this.refreshBatch([uid]);
          } catch (single) {
            failure ??= { error: single };
          }
        }
      }
    }
    if (failure) {
      throw failure.error;
    }
  }

  private async refreshBatch(uids: string[]): Promise<void> {
    const wrote = await this.options.db.transaction(async (tx) => {
      // Orders refreshes of one study across processes (in UID order, so two batches cannot wait
      // on each other); ingest never takes these locks.
      await tx.query(
        `SELECT pg_advisory_xact_lock(hashtextextended('dicom-refresh:' || uid, 0))
           FROM (SELECT uid FROM unnest($1::text[]) AS uid ORDER BY uid) AS due`,
        [uids],
      );
      const marks = await tx.query<{ study_instance_uid: string; generation: string }>(
        'SELECT study_instance_uid, generation FROM dicom_study_refresh WHERE study_instance_uid = ANY($1::text[])',
        [uids],
      );
      if (marks.rows.length === 0) {
        return false;
      }
      await writeImagingStudies(
        tx,
        this.options,
        marks.rows.map((mark) => mark.study_instance_uid),
      );
      // A mark an instance bumped meanwhile stays. The rows are locked in study-UID order, the order
      // in which ingest's shared store statements take them, so the two cannot deadlock.
      await tx.query(
        `DELETE FROM dicom_study_refresh AS r USING (
           SELECT d.study_instance_uid FROM dicom_study_refresh AS d
             JOIN unnest($1::text[], $2::bigint[]) AS m(uid, generation) ON d.study_instance_uid = m.uid AND d.generation = m.generation
            ORDER BY d.study_instance_uid FOR UPDATE OF d) AS done
          WHERE r.study_instance_uid = done.study_instance_uid`,
        [marks.rows.map((mark) => mark.study_instance_uid), marks.rows.map((mark) => mark.generation)],
      );
      return true;
    });
    if (wrote) {
      this.options.onRefreshed?.();
    }
  }

  /** Refreshes marks that have waited longer than this process would let its own wait. */
  private async sweep(minAgeMs: number): Promise<void> {
    try {
      const stale = await this.options.db.query<{ study_instance_uid: string }>(
        `SELECT study_instance_uid FROM dicom_study_refresh
         WHERE touched_at < now() - make_interval(secs => $1::double precision / 1000)
         ORDER BY touched_at LIMIT 100`,
        [minAgeMs],
      );
      if (this.stopped) {
        return;
      }
      await this.refresh(
        stale.rows.map((row) => row.study_instance_uid).filter((uid) => !this.pending.has(uid) && !this.due.has(uid)),
      );
    } catch (error) {
      this.options.logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'ImagingStudy sweep failed',
      );
    }
  }
}

/** Rebuilds one study's ImagingStudy from its index rows, in the caller's transaction. */
export async function writeImagingStudy(
  tx: Queryable,
  options: { repository: RepositoryContext; endpointId: string },
  studyInstanceUid: string,
): Promise<void> {
  await writeImagingStudies(tx, options, [studyInstanceUid]);
}

/** Rebuilds these studies' ImagingStudies from their index rows (one read for all), in the caller's transaction. */
async function writeImagingStudies(
  tx: Queryable,
  options: { repository: RepositoryContext; endpointId: string },
  studyInstanceUids: string[],
): Promise<void> {
  const rows = await tx.query<{
    imaging_study_id: string;
    study: StudyRow;
    series: SeriesRow[];
    instances: InstanceRow[];
  }>(
    `SELECT
       s.imaging_study_id,
       json_build_object('study_instance_uid', s.study_instance_uid, 'patient_id', s.patient_id, 'study_date', s.study_date,
         'accession_number', s.accession_number, 'study_description', s.study_description, 'modalities', s.modalities,
         'number_of_series', s.number_of_series, 'number_of_instances', s.number_of_instances,
         'matched_service_request_id', s.matched_service_request_id, 'matched_patient_id', s.matched_patient_id) AS study,
       (SELECT coalesce(json_agg(json_build_object(
           'series_instance_uid', series_instance_uid, 'modality', modality, 'series_number', series_number,
           'series_description', series_description, 'body_part_examined', body_part_examined,
           'number_of_instances', number_of_instances)
           ORDER BY series_number NULLS LAST, created_at, series_instance_uid), '[]')
         FROM dicom_series WHERE study_instance_uid = s.study_instance_uid) AS series,
       (SELECT coalesce(json_agg(json_build_object(
           'sop_instance_uid', sop_instance_uid, 'series_instance_uid', series_instance_uid, 'sop_class_uid', sop_class_uid,
           'instance_number', instance_number)
           ORDER BY instance_number NULLS LAST, created_at, sop_instance_uid), '[]')
         FROM dicom_instance WHERE study_instance_uid = s.study_instance_uid) AS instances
     FROM dicom_study s WHERE s.study_instance_uid = ANY($1::text[])
     ORDER BY s.study_instance_uid`,
    [studyInstanceUids],
  );
  const repository = new HubRepository(options.repository, tx);
  for (const row of rows.rows) {
    await repository.updateDerivedResource(
      deriveImagingStudy(row.imaging_study_id, options.endpointId, row.study, row.series, row.instances),
    );
  }
}
