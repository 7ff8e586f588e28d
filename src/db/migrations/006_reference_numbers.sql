-- Every patient reference number the hub has issued (src/fhir/operations/reference-numbers.ts).
-- The primary key is what makes numbers unique under concurrency: a registration inserts its drawn
-- number here first and draws again when the insert finds the number taken. Rows are never deleted,
-- so a number stays spent even after its Patient is deleted: an old letter can never lead a
-- physician to somebody else's case.

CREATE TABLE reference_number (
  value text PRIMARY KEY CHECK (value ~ '^[1-9][0-9]{9}$'),
  patient_id text NOT NULL,
  -- the DocumentReference of the registration letter
  letter_id text NOT NULL,
  -- the client's requestId of Patient/$register, so that a retried request returns this registration
  request_key text UNIQUE,
  -- SHA-256 of the submitted registration: a requestId reused for other content is refused
  request_hash text,
  issued_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX reference_number_patient ON reference_number (patient_id);
