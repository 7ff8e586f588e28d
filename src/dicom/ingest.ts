/**
 * The ingest path of one DICOM instance (C-STORE now, STOW-RS later): bounded parse, consistency
 * check, the Part 10 bytes into the blob store (synced), then one database transaction with the
 * index rows, their counts and the study's FHIR ImagingStudy (whose write records the outbox event).
 * A caller acknowledges the instance only when this resolves with `stored` or `duplicate`.
 *
 * Policies (docs/architecture.md, "DICOM ingest"):
 * - Meta and dataset disagree on the SOP Instance (or Class) UID: refused. Storing under either
 *   UID would make the instance unreachable, or wrong, by the other one.
 * - The same SOP Instance UID again with the same bytes: `duplicate`, an idempotent success that
 *   changes nothing (no new ImagingStudy version). With different bytes: `conflict`; the first
 *   stored instance stays, the new one is refused. Replacing an acknowledged instance silently
 *   (Orthanc's default) could change a study a specialist has already read.
 * - A Series Instance UID already stored under another study: refused.
 */
import { createReadStream } from 'node:fs';
import type { Database, Queryable } from '../db/database.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { checkInstanceConsistency, readIndexedAttributes } from './attributes.ts';
import type { IndexedAttribute } from './attributes.ts';
import { toDicomJson } from './dicom-json.ts';
import { deriveImagingStudy, dicomWebEndpoint } from './imaging-study.ts';
import type { InstanceRow, SeriesRow, StudyRow } from './imaging-study.ts';
import { parsePart10File } from './part10.ts';

export interface IngestContext {
  db: Database;
  blobs: BlobStore;
  /** For the ImagingStudy writes, through the same repository as the FHIR API. */
  repository: RepositoryContext;
  /** The id of the DICOMweb Endpoint ({@link ensureDicomWebEndpoint}). */
  endpointId: string;
}

export interface StoredInstance {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  blobKey: string;
  size: number;
}

export type IngestOutcome =
  | ({ status: 'stored' } & StoredInstance)
  /** Already stored with the same bytes: nothing changed. */
  | ({ status: 'duplicate' } & StoredInstance)
  /** Already stored with other bytes: the stored instance stays, this one is refused. */
  | { status: 'conflict'; sopInstanceUid: string; reason: string }
  /** Cannot be parsed, or inconsistent: refused. The reason names tags, never values. */
  | { status: 'refused'; reason: string };

/** The fixed id of the one DICOMweb Endpoint. */
export const DICOMWEB_ENDPOINT_ID = 'dicomweb';
const ENDPOINT_LOCK = 'dicom:endpoint';

/**
 * Creates the DICOMweb Endpoint, or brings its address up to date; several hubs starting at once
 * take turns on an advisory lock, and an unchanged Endpoint gets no new version.
 */
export async function ensureDicomWebEndpoint(repository: RepositoryContext): Promise<string> {
  await repository.db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [ENDPOINT_LOCK]);
    await new HubRepository(repository, tx).updateResource(dicomWebEndpoint(DICOMWEB_ENDPOINT_ID, repository.baseUrl));
  });
  return DICOMWEB_ENDPOINT_ID;
}

/** Ends the index transaction without writing anything, carrying the outcome out. */
class NotStored extends Error {
  readonly outcome: IngestOutcome;

  constructor(outcome: IngestOutcome) {
    super(outcome.status);
    this.outcome = outcome;
  }
}

/**
 * Stores one Part 10 file. Resolves with the outcome; rejects only when storage fails (blob store
 * or database), which the caller reports as out of resources.
 */
export async function ingestInstance(ctx: IngestContext, part10FilePath: string): Promise<IngestOutcome> {
  const parsed = parsePart10File(part10FilePath);
  if (!parsed.ok) return { status: 'refused', reason: parsed.reason };
  const consistency = checkInstanceConsistency(parsed.meta, parsed.dataset);
  if (!consistency.ok) return { status: 'refused', reason: consistency.reason };
  const attributes = readIndexedAttributes(parsed.dataset);
  const dicomJson = JSON.stringify(toDicomJson(parsed.dataset, {
    bulkDataUri: (tag, path) => `bulkdata/${[...path, tag].join('/')}`,
  }));
  const blob = await ctx.blobs.put(createReadStream(part10FilePath));
  const instance: StoredInstance = {
    studyInstanceUid: attributes.StudyInstanceUID as string,
    seriesInstanceUid: attributes.SeriesInstanceUID as string,
    sopInstanceUid: attributes.SOPInstanceUID as string,
    blobKey: blob.key,
    size: blob.size,
  };
  try {
    await ctx.db.transaction((tx) => writeIndex(ctx, tx, instance, attributes, parsed.meta.transferSyntaxUid, dicomJson));
  } catch (error) {
    if (error instanceof NotStored) return error.outcome;
    throw error;
  }
  return { status: 'stored', ...instance };
}

type Attributes = Partial<Record<IndexedAttribute, string>>;

/** PostgreSQL text cannot hold NUL, which a hostile or broken value may contain. */
function text(value: string | undefined): string | null {
  const cleaned = value?.replace(/\0/g, '').trim();
  return cleaned === undefined || cleaned === '' ? null : cleaned;
}

/** IS/US values as an integer column; the first of several values; anything unusable is null. */
function integer(value: string | undefined): number | null {
  const first = value?.split('\\')[0]?.trim();
  if (!first || !/^[+-]?\d{1,10}$/.test(first)) return null;
  const number = Number(first);
  return number >= -2147483648 && number <= 2147483647 ? number : null;
}

async function writeIndex(ctx: IngestContext, tx: Queryable, instance: StoredInstance, a: Attributes, transferSyntaxUid: string,
  dicomJson: string): Promise<void> {
  // The study row first: its lock orders concurrent instances of one study, so the counts and the
  // ImagingStudy below are written one instance at a time.
  const study = await tx.query<{ imaging_study_id: string }>(
    `INSERT INTO dicom_study AS s (study_instance_uid, patient_id, patient_name, patient_name_search, patient_birth_date,
       patient_sex, study_date, study_time, accession_number, study_description, referring_physician_name, study_id,
       imaging_study_id)
     VALUES ($1, $2, $3, upper($3), $4, $5, $6, $7, $8, $9, $10, $11, gen_random_uuid()::text)
     ON CONFLICT (study_instance_uid) DO UPDATE SET
       patient_id = coalesce(s.patient_id, EXCLUDED.patient_id),
       patient_name = coalesce(s.patient_name, EXCLUDED.patient_name),
       patient_name_search = coalesce(s.patient_name_search, EXCLUDED.patient_name_search),
       patient_birth_date = coalesce(s.patient_birth_date, EXCLUDED.patient_birth_date),
       patient_sex = coalesce(s.patient_sex, EXCLUDED.patient_sex),
       study_date = coalesce(s.study_date, EXCLUDED.study_date),
       study_time = coalesce(s.study_time, EXCLUDED.study_time),
       accession_number = coalesce(s.accession_number, EXCLUDED.accession_number),
       study_description = coalesce(s.study_description, EXCLUDED.study_description),
       referring_physician_name = coalesce(s.referring_physician_name, EXCLUDED.referring_physician_name),
       study_id = coalesce(s.study_id, EXCLUDED.study_id)
     RETURNING imaging_study_id`,
    [instance.studyInstanceUid, text(a.PatientID), text(a.PatientName), text(a.PatientBirthDate), text(a.PatientSex),
      text(a.StudyDate), text(a.StudyTime), text(a.AccessionNumber), text(a.StudyDescription), text(a.ReferringPhysicianName),
      text(a.StudyID)],
  );
  const imagingStudyId = study.rows[0]!.imaging_study_id;

  const modality = text(a.Modality);
  // One round trip either way: the new series row, or (from the statement's snapshot, which does not
  // see `created`) the study that already holds this series.
  const seriesRow = await tx.query<{ created: boolean; study_instance_uid: string }>(
    `WITH created AS (
       INSERT INTO dicom_series (series_instance_uid, study_instance_uid, modality, series_number, series_description, body_part_examined)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (series_instance_uid) DO NOTHING RETURNING study_instance_uid)
     SELECT true AS created, study_instance_uid FROM created
     UNION ALL
     SELECT false, study_instance_uid FROM dicom_series WHERE series_instance_uid = $1 AND NOT EXISTS (SELECT FROM created)`,
    [instance.seriesInstanceUid, instance.studyInstanceUid, modality, integer(a.SeriesNumber), text(a.SeriesDescription),
      text(a.BodyPartExamined)],
  );
  const seriesCreated = seriesRow.rows[0]?.created === true;
  if (seriesRow.rows[0]?.study_instance_uid !== instance.studyInstanceUid) {
    throw new NotStored({ status: 'refused', reason: 'SeriesInstanceUID is already stored under another StudyInstanceUID' });
  }

  const inserted = await tx.query(
    `INSERT INTO dicom_instance (sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid, transfer_syntax_uid,
       instance_number, rows, columns, number_of_frames, blob_key, size, sha256, dicom_json)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12) ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING 1`,
    [instance.sopInstanceUid, instance.seriesInstanceUid, instance.studyInstanceUid, a.SOPClassUID, transferSyntaxUid,
      integer(a.InstanceNumber), integer(a.Rows), integer(a.Columns), integer(a.NumberOfFrames), instance.blobKey, instance.size,
      dicomJson],
  );
  if (inserted.rows.length === 0) {
    const existing = await tx.query<{ sha256: string; series_instance_uid: string; study_instance_uid: string; size: string }>(
      'SELECT sha256, series_instance_uid, study_instance_uid, size FROM dicom_instance WHERE sop_instance_uid = $1',
      [instance.sopInstanceUid]);
    const row = existing.rows[0]!;
    if (row.sha256 === instance.blobKey) throw new NotStored({ status: 'duplicate', ...instance });
    throw new NotStored({
      status: 'conflict',
      sopInstanceUid: instance.sopInstanceUid,
      reason: 'another instance with this SOP Instance UID is already stored',
    });
  }

  // The counts and the rows the ImagingStudy is built from, in one round trip. The SELECTs see the
  // statement's snapshot: the instance inserted above, but not this statement's own series count
  // update, hence the `+ 1` for this instance's series.
  const rows = await tx.query<{ study: StudyRow; series: SeriesRow[]; instances: InstanceRow[] }>(
    `WITH series_count AS (
       UPDATE dicom_series SET number_of_instances = number_of_instances + 1 WHERE series_instance_uid = $2 RETURNING 1),
     study AS (
       UPDATE dicom_study SET
         number_of_instances = number_of_instances + 1,
         number_of_series = number_of_series + $3,
         modalities = CASE WHEN $4::text IS NULL OR $4::text = ANY (modalities) THEN modalities ELSE array_append(modalities, $4::text) END,
         updated_at = now()
       WHERE study_instance_uid = $1
       RETURNING study_instance_uid, patient_id, study_date, accession_number, study_description, modalities, number_of_series,
         number_of_instances)
     SELECT
       (SELECT row_to_json(study) FROM study) AS study,
       (SELECT coalesce(json_agg(json_build_object(
           'series_instance_uid', series_instance_uid, 'modality', modality, 'series_number', series_number,
           'series_description', series_description, 'body_part_examined', body_part_examined,
           'number_of_instances', number_of_instances + CASE WHEN series_instance_uid = $2 THEN 1 ELSE 0 END)
           ORDER BY series_number NULLS LAST, created_at, series_instance_uid), '[]')
         FROM dicom_series WHERE study_instance_uid = $1) AS series,
       (SELECT coalesce(json_agg(json_build_object(
           'sop_instance_uid', sop_instance_uid, 'series_instance_uid', series_instance_uid, 'sop_class_uid', sop_class_uid,
           'instance_number', instance_number)
           ORDER BY instance_number NULLS LAST, created_at, sop_instance_uid), '[]')
         FROM dicom_instance WHERE study_instance_uid = $1) AS instances`,
    [instance.studyInstanceUid, instance.seriesInstanceUid, seriesCreated ? 1 : 0, modality],
  );
  const { study: studyRow, series, instances } = rows.rows[0]!;
  const imagingStudy = deriveImagingStudy(imagingStudyId, ctx.endpointId, studyRow, series, instances);
  await new HubRepository(ctx.repository, tx).updateDerivedResource(imagingStudy);
}
