-- The bytes of DICOM instances each person stored through STOW-RS, per hour, for the daily quota
-- (DICOM_PERSON_DAILY_BYTES, src/routes/dicomweb/stow-quota.ts). In the database, not in a process,
-- so that the quota holds across restarts and across the hub processes on one database. A part's
-- bytes are added before it is stored and taken off again when it was not (a refusal, or identical
-- bytes already stored). Rows older than two days are deleted.
CREATE TABLE stow_person_bytes (
  user_id text NOT NULL,
  hour timestamptz NOT NULL,
  bytes bigint NOT NULL,
  PRIMARY KEY (user_id, hour)
);
CREATE INDEX stow_person_bytes_hour ON stow_person_bytes (hour);
