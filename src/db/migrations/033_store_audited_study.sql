-- dicom_store_instance (migration 031), and for an instance stored (or stored before, with the same
-- bytes) the ids its audit names: the study's ImagingStudy and the Patient it is matched to. STOW-RS
-- audits each request from these (src/routes/dicomweb/stow.ts) instead of reading its studies again
-- after storing them: one round trip to the database less per request.
CREATE FUNCTION dicom_store_instance_audited(
  p_study text, p_series text, p_sop text, p_sop_class text, p_transfer_syntax text,
  p_instance_number integer, p_rows integer, p_columns integer, p_frames integer,
  p_blob_key text, p_size bigint, p_dicom_json text,
  p_patient_id text, p_patient_name text, p_patient_birth_date text, p_patient_sex text,
  p_study_date text, p_study_time text, p_accession_number text, p_study_description text,
  p_referring_physician_name text, p_study_id text,
  p_modality text, p_series_number integer, p_series_description text, p_body_part_examined text,
  p_case text, p_staged bytea)
RETURNS TABLE (outcome text, audit_imaging_study_id text, audit_patient_id text)
LANGUAGE plpgsql AS $$
BEGIN
  outcome := dicom_store_instance(p_study, p_series, p_sop, p_sop_class, p_transfer_syntax,
    p_instance_number, p_rows, p_columns, p_frames, p_blob_key, p_size, p_dicom_json,
    p_patient_id, p_patient_name, p_patient_birth_date, p_patient_sex,
    p_study_date, p_study_time, p_accession_number, p_study_description,
    p_referring_physician_name, p_study_id,
    p_modality, p_series_number, p_series_description, p_body_part_examined,
    p_case, p_staged);
  IF outcome IN ('stored', 'duplicate') THEN
    -- Same bytes, same data set: a duplicate's study is p_study too.
    SELECT s.imaging_study_id, s.matched_patient_id INTO audit_imaging_study_id, audit_patient_id
      FROM dicom_study AS s WHERE s.study_instance_uid = p_study;
  END IF;
  RETURN NEXT;
END
$$;
