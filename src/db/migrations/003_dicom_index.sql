-- The DICOM index (the storage area holds the bytes; see src/dicom/ingest.ts). Either can be
-- rebuilt from the other: every column here is read out of the stored Part 10 files.
-- DICOM dates stay as their YYYYMMDD text: it sorts and range-compares correctly and keeps
-- partial or odd values that a date column would refuse.

CREATE TABLE dicom_study (
  study_instance_uid text PRIMARY KEY,
  patient_id text,
  patient_name text,
  -- Upper case, carets kept: QIDO PatientName matching (prefix and wildcards) is case-insensitive here.
  patient_name_search text,
  patient_birth_date text,
  patient_sex text,
  study_date text,
  study_time text,
  accession_number text,
  study_description text,
  referring_physician_name text,
  study_id text,
  modalities text[] NOT NULL DEFAULT '{}',
  number_of_series integer NOT NULL DEFAULT 0,
  number_of_instances integer NOT NULL DEFAULT 0,
  -- The study's FHIR ImagingStudy, kept up to date in the same transaction as these rows.
  imaging_study_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dicom_study_patient_id ON dicom_study (patient_id);
-- text_pattern_ops serves LIKE 'ABC%' (prefix and trailing-wildcard matches); pg_trgm would serve
-- leading wildcards but is not available on PGlite.
CREATE INDEX dicom_study_patient_name ON dicom_study (patient_name_search text_pattern_ops);
CREATE INDEX dicom_study_accession_number ON dicom_study (accession_number);
CREATE INDEX dicom_study_study_date ON dicom_study (study_date, study_time);
CREATE INDEX dicom_study_modalities ON dicom_study USING gin (modalities);
CREATE INDEX dicom_study_updated_at ON dicom_study (updated_at, study_instance_uid);

CREATE TABLE dicom_series (
  series_instance_uid text PRIMARY KEY,
  study_instance_uid text NOT NULL REFERENCES dicom_study (study_instance_uid),
  modality text,
  series_number integer,
  series_description text,
  body_part_examined text,
  number_of_instances integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dicom_series_study ON dicom_series (study_instance_uid, series_number);
CREATE INDEX dicom_series_modality ON dicom_series (modality);

CREATE TABLE dicom_instance (
  sop_instance_uid text PRIMARY KEY,
  series_instance_uid text NOT NULL REFERENCES dicom_series (series_instance_uid),
  study_instance_uid text NOT NULL REFERENCES dicom_study (study_instance_uid),
  sop_class_uid text NOT NULL,
  transfer_syntax_uid text NOT NULL,
  instance_number integer,
  rows integer,
  columns integer,
  number_of_frames integer,
  -- The Part 10 file in the blob store, exactly as acknowledged.
  blob_key text NOT NULL,
  size bigint NOT NULL,
  sha256 text NOT NULL,
  -- DICOM JSON (PS3.18 §F.2) of the whole dataset; bulk values are BulkDataURIs relative to the
  -- instance's WADO-RS URL ("bulkdata/<tag>", nested ones "bulkdata/<seq>/<item>/<tag>").
  dicom_json text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dicom_instance_series ON dicom_instance (series_instance_uid, instance_number);
CREATE INDEX dicom_instance_study ON dicom_instance (study_instance_uid);
