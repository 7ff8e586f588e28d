-- The referring physician's first reading of a released consultation report (docs/access.md,
-- "Release"): recorded by the read itself (src/fhir/repository.ts), once per case, it lets the case
-- move to report-accessed, and only then is the patient told.
CREATE TABLE report_read (
  case_id text PRIMARY KEY,
  -- `Practitioner/<id>` of the physician who read it
  reader text NOT NULL,
  read_at timestamptz NOT NULL
);
