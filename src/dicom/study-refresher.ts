/**
 * Keeps each study's FHIR ImagingStudy up to date with its stored instances, once per burst of
 * instances rather than once per instance: rewriting (and re-indexing) a study's ImagingStudy for
 * each of its hundreds of instances would cost more than storing them.
 *
 * Ingest marks the study in `dicom_study_refresh` in the statement that stores the instance, then
 * calls `touch`. The refresher rebuilds the ImagingStudy when the study has been quiet for
 * `quietMs` (or `maxDelayMs` after its first touch), and removes the mark only if no instance
 * arrived meanwhile. `flush` refreshes at once: a DIMSE association calls it before confirming its
 * release, so a sender that has released finds the ImagingStudy current. Marks left by a crash, or by another hub process, are picked up by a sweep.
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
  /** Refresh a study this long after its last touch. */
  quietMs?: number;
  /** ... but no later than this after its first. */
  maxDelayMs?: number;
  /** How often marks no process is working on are looked for (crash recovery, other processes). */
  sweepMs?: number;
  /** Called after an ImagingStudy was written (its outbox event is waiting). */
  onRefreshed?: () => void;
}

interface Pending {
  firstTouch: number;
  timer: NodeJS.Timeout;
}

export class StudyRefresher {
  private readonly options: StudyRefresherOptions;
  private readonly quietMs: number;
  private readonly maxDelayMs: number;
  private readonly pending = new Map<string, Pending>();
  /** The refresh running per study; a second request for it waits and runs once more after it. */
  private readonly running = new Map<string, Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(options: StudyRefresherOptions) {
    this.options = options;
    this.quietMs = options.quietMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 2_000;
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
    if (this.stopped) return;
    const now = Date.now();
    const existing = this.pending.get(studyInstanceUid);
    if (existing) clearTimeout(existing.timer);
    const firstTouch = existing?.firstTouch ?? now;
    const delay = Math.max(0, Math.min(this.quietMs, firstTouch + this.maxDelayMs - now));
    const timer = setTimeout(() => {
      this.pending.delete(studyInstanceUid);
      void this.refresh(studyInstanceUid);
    }, delay);
    timer.unref();
    this.pending.set(studyInstanceUid, { firstTouch, timer });
  }

  /** Refreshes these studies now; resolves when their ImagingStudies are current. */
  async flush(studyInstanceUids: Iterable<string>): Promise<void> {
    const refreshes: Promise<void>[] = [];
    for (const uid of new Set(studyInstanceUids)) {
      const pending = this.pending.get(uid);
      if (pending) {
        clearTimeout(pending.timer);
        this.pending.delete(uid);
      }
      refreshes.push(this.refresh(uid, true));
    }
    const results = await Promise.allSettled(refreshes);
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Stops scheduling, then refreshes what is pending (what is left stays marked for the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    await this.sweeping;
    const uids = [...this.pending.keys()];
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    await Promise.allSettled([...uids.map((uid) => this.refresh(uid)), ...this.running.values()]);
  }

  /** One study's refresh, never two at once in this process; `rethrow` for callers that must know. */
  private async refresh(uid: string, rethrow = false): Promise<void> {
    const previous = this.running.get(uid);
    const run = (async () => {
      await previous?.catch(() => undefined);
      await this.refreshOnce(uid);
    })();
    this.running.set(uid, run);
    try {
      await run;
    } catch (error) {
      // Another try comes with the next touch or sweep: the mark stays.
      this.options.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'ImagingStudy refresh failed');
      if (rethrow) throw error;
    } finally {
      if (this.running.get(uid) === run) this.running.delete(uid);
    }
  }

  private async refreshOnce(uid: string): Promise<void> {
    const wrote = await this.options.db.transaction(async (tx) => {
      // Orders refreshes of one study across processes; ingest never takes this lock.
      await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('dicom-refresh:' || $1, 0))`, [uid]);
      const mark = await tx.query<{ generation: string }>(
        'SELECT generation FROM dicom_study_refresh WHERE study_instance_uid = $1', [uid]);
      if (mark.rows.length === 0) return false;
      await writeImagingStudy(tx, this.options, uid);
      await tx.query('DELETE FROM dicom_study_refresh WHERE study_instance_uid = $1 AND generation = $2',
        [uid, mark.rows[0]!.generation]);
      return true;
    });
    if (wrote) this.options.onRefreshed?.();
  }

  /** Refreshes marks that have waited longer than this process would let its own wait. */
  private async sweep(minAgeMs: number): Promise<void> {
    try {
      const stale = await this.options.db.query<{ study_instance_uid: string }>(
        `SELECT study_instance_uid FROM dicom_study_refresh
         WHERE touched_at < now() - make_interval(secs => $1::double precision / 1000)
         ORDER BY touched_at LIMIT 100`,
        [minAgeMs]);
      for (const { study_instance_uid: uid } of stale.rows) {
        if (this.stopped) return;
        if (!this.pending.has(uid)) await this.refresh(uid);
      }
    } catch (error) {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'ImagingStudy sweep failed');
    }
  }
}

/** Rebuilds one study's ImagingStudy from its index rows, in the caller's transaction. */
export async function writeImagingStudy(tx: Queryable, options: { repository: RepositoryContext; endpointId: string },
  studyInstanceUid: string): Promise<void> {
  const rows = await tx.query<{ imaging_study_id: string; study: StudyRow; series: SeriesRow[]; instances: InstanceRow[] }>(
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
     FROM dicom_study s WHERE s.study_instance_uid = $1`,
    [studyInstanceUid],
  );
  const row = rows.rows[0];
  if (!row) return;
  const imagingStudy = deriveImagingStudy(row.imaging_study_id, options.endpointId, row.study, row.series, row.instances);
  await new HubRepository(options.repository, tx).updateDerivedResource(imagingStudy);
}
