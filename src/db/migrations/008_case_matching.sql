-- The case a DICOM study belongs to (src/workflow/imaging-match.ts). Kept in the index, not only in
-- the FHIR ImagingStudy, because the study refresher rebuilds the ImagingStudy from these rows on
-- every burst of instances: the builder turns the columns into ImagingStudy.subject and basedOn.

ALTER TABLE dicom_study ADD COLUMN matched_service_request_id text;
ALTER TABLE dicom_study ADD COLUMN matched_patient_id text;
-- How the match was made: accession-number, reference-number, patient-identifier or coordinator.
ALTER TABLE dicom_study ADD COLUMN match_method text;
ALTER TABLE dicom_study ADD COLUMN matched_at timestamptz;

ALTER TABLE dicom_study ADD CONSTRAINT dicom_study_match_complete
  CHECK ((matched_service_request_id IS NULL) = (matched_patient_id IS NULL)
     AND (matched_service_request_id IS NULL) = (match_method IS NULL));

CREATE INDEX dicom_study_matched_service_request ON dicom_study (matched_service_request_id)
  WHERE matched_service_request_id IS NOT NULL;
-- The matching job starts from the ImagingStudy's id (its outbox event).
CREATE INDEX dicom_study_imaging_study_id ON dicom_study (imaging_study_id);
