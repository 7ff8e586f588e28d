-- DICOM ingest in one round trip (src/dicom/ingest.ts), and the studies whose FHIR ImagingStudy
-- must be brought up to date (src/dicom/study-refresher.ts).

-- A study with instances that its ImagingStudy does not show yet. Written in the same statement as
-- the instance, so a crash between the instance's acknowledgement and the refresh leaves the row
-- for the refresher; `generation` grows with every instance, so a refresh that read an older
-- generation leaves the row for the next one.
CREATE TABLE dicom_study_refresh (
  study_instance_uid text PRIMARY KEY REFERENCES dicom_study (study_instance_uid),
  generation bigint NOT NULL DEFAULT 1,
  touched_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dicom_study_refresh_touched_at ON dicom_study_refresh (touched_at);

-- Stores one instance's index rows, counts and refresh marker; one statement, so one transaction.
-- Returns 'stored', 'duplicate' (same SOP Instance UID and bytes), 'conflict' (same UID, other
-- bytes: nothing changes) or 'series-elsewhere' (the series is stored under another study:
-- nothing changes). A race that would leave half a write raises SQLSTATE 40001, which the
-- caller retries.
CREATE FUNCTION dicom_store_instance(
  p_study text, p_series text, p_sop text, p_sop_class text, p_transfer_syntax text,
  p_instance_number integer, p_rows integer, p_columns integer, p_frames integer,
  p_blob_key text, p_size bigint, p_dicom_json text,
  p_patient_id text, p_patient_name text, p_patient_birth_date text, p_patient_sex text,
  p_study_date text, p_study_time text, p_accession_number text, p_study_description text,
  p_referring_physician_name text, p_study_id text,
  p_modality text, p_series_number integer, p_series_description text, p_body_part_examined text)
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

  INSERT INTO dicom_study_refresh AS r (study_instance_uid) VALUES (p_study)
  ON CONFLICT (study_instance_uid) DO UPDATE SET generation = r.generation + 1, touched_at = now();
  RETURN 'stored';
END
$$;
