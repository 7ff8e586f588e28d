-- PostgreSQL's WAL as the journal of DICOM ingest (issue 16, docs/architecture.md "DICOM ingest").
-- An instance up to a size threshold travels in the same transaction as its index rows: its bytes
-- go into blob_staging, so one commit (one WAL flush) makes the instance and its bytes durable
-- together, instead of a synced file, its synced directory and then the commit. After the answer,
-- the installer (src/storage/blob-installer.ts) writes each staged blob to its content-addressed
-- file, syncs it, and only then deletes its row; a row left by a crash is installed at the next
-- start-up. Until then readers find the bytes here (src/storage/staging-blob-store.ts).
CREATE TABLE blob_staging (
  blob_key text PRIMARY KEY,
  bytes bytea NOT NULL,
  staged_at timestamptz NOT NULL DEFAULT now()
);

-- Out of line and uncompressed: pixel data barely compresses, and pglz would cost the database CPU
-- on every instance for nothing.
ALTER TABLE blob_staging ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- Its rows live for milliseconds: vacuum the dead ones often rather than let the table and its
-- TOAST table grow between autovacuum's default thresholds.
ALTER TABLE blob_staging SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
  toast.autovacuum_vacuum_scale_factor = 0, toast.autovacuum_vacuum_threshold = 5000);

-- dicom_store_instance (migration 004) with one more parameter: the instance's bytes when they are
-- staged (NULL when the caller installed them as a file before the call). They are staged only
-- when the instance is stored: a duplicate's bytes are already kept, a refused instance's never are.
DROP FUNCTION dicom_store_instance(text, text, text, text, text, integer, integer, integer, integer, text, bigint,
  text, text, text, text, text, text, text, text, text, text, text, text, integer, text, text);

CREATE FUNCTION dicom_store_instance(
  p_study text, p_series text, p_sop text, p_sop_class text, p_transfer_syntax text,
  p_instance_number integer, p_rows integer, p_columns integer, p_frames integer,
  p_blob_key text, p_size bigint, p_dicom_json text,
  p_patient_id text, p_patient_name text, p_patient_birth_date text, p_patient_sex text,
  p_study_date text, p_study_time text, p_accession_number text, p_study_description text,
  p_referring_physician_name text, p_study_id text,
  p_modality text, p_series_number integer, p_series_description text, p_body_part_examined text,
  p_staged bytea)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_sha text;
  v_series_study text;
  v_new_series boolean;
BEGIN
  SELECT sha256 INTO v_sha FROM dicom_instance WHERE sop_instance_uid = p_sop;
  IF FOUND THEN
    RETURN CASE WHEN v_sha = p_blob_key THEN 'duplicate' ELSE 'conflict' END;
  END IF;
  SELECT study_instance_uid INTO v_series_study FROM dicom_series WHERE series_instance_uid = p_series;
  IF FOUND AND v_series_study <> p_study THEN
    RETURN 'series-elsewhere';
  END IF;

  -- The study row first: its lock orders concurrent instances of one study.
  INSERT INTO dicom_study AS s (study_instance_uid, patient_id, patient_name, patient_name_search, patient_birth_date,
    patient_sex, study_date, study_time, accession_number, study_description, referring_physician_name, study_id,
    imaging_study_id, number_of_instances, modalities)
  VALUES (p_study, p_patient_id, p_patient_name, upper(p_patient_name), p_patient_birth_date, p_patient_sex,
    p_study_date, p_study_time, p_accession_number, p_study_description, p_referring_physician_name, p_study_id,
    gen_random_uuid()::text, 1, CASE WHEN p_modality IS NULL THEN '{}'::text[] ELSE ARRAY[p_modality] END)
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
    study_id = coalesce(s.study_id, EXCLUDED.study_id),
    number_of_instances = s.number_of_instances + 1,
    modalities = CASE WHEN p_modality IS NULL OR p_modality = ANY (s.modalities) THEN s.modalities
      ELSE array_append(s.modalities, p_modality) END,
    updated_at = now();
  IF NOT FOUND THEN
    RAISE EXCEPTION 'study row not written' USING ERRCODE = '40001';
  END IF;

  INSERT INTO dicom_series (series_instance_uid, study_instance_uid, modality, series_number, series_description,
    body_part_examined, number_of_instances)
  VALUES (p_series, p_study, p_modality, p_series_number, p_series_description, p_body_part_examined, 1)
  ON CONFLICT (series_instance_uid) DO NOTHING;
  v_new_series := FOUND;
  IF v_new_series THEN
    UPDATE dicom_study SET number_of_series = number_of_series + 1 WHERE study_instance_uid = p_study;
  ELSE
    UPDATE dicom_series SET number_of_instances = number_of_instances + 1
      WHERE series_instance_uid = p_series AND study_instance_uid = p_study;
    IF NOT FOUND THEN
      -- Another study took the series since the check above.
      RAISE EXCEPTION 'series moved' USING ERRCODE = '40001';
    END IF;
  END IF;

  INSERT INTO dicom_instance (sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid, transfer_syntax_uid,
    instance_number, rows, columns, number_of_frames, blob_key, size, sha256, dicom_json)
  VALUES (p_sop, p_series, p_study, p_sop_class, p_transfer_syntax, p_instance_number, p_rows, p_columns, p_frames,
    p_blob_key, p_size, p_blob_key, p_dicom_json)
  ON CONFLICT (sop_instance_uid) DO NOTHING;
  IF NOT FOUND THEN
    -- The same SOP Instance UID arrived concurrently: undo the counts; the retry sees the winner.
    RAISE EXCEPTION 'instance raced' USING ERRCODE = '40001';
  END IF;

  IF p_staged IS NOT NULL THEN
    -- Other bytes with this key would be another instance with the same SOP Instance UID, refused
    -- above: a row already here holds these very bytes.
    INSERT INTO blob_staging (blob_key, bytes) VALUES (p_blob_key, p_staged) ON CONFLICT (blob_key) DO NOTHING;
  END IF;

  INSERT INTO dicom_study_refresh AS r (study_instance_uid) VALUES (p_study)
  ON CONFLICT (study_instance_uid) DO UPDATE SET generation = r.generation + 1, touched_at = now();
  RETURN 'stored';
END
$$;

-- Releases installed blobs' rows. Their files are synced before this runs, so the commit need not
-- wait for the WAL: a release a crash loses only makes the next start-up install those files again.
CREATE FUNCTION blob_staging_release(p_keys text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_released integer;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  DELETE FROM blob_staging WHERE blob_key = ANY (p_keys);
  GET DIAGNOSTICS v_released = ROW_COUNT;
  RETURN v_released;
END
$$;
