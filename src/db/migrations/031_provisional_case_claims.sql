-- A study a person stored into a named case (STOW-RS `?case=`, src/dicom/case-claim.ts) is that case's
-- on the person's word alone: whoever knows a StudyInstanceUID could claim it before the imaging
-- system sends the real study. Such a claim is provisional: an instance that arrives without that case
-- (a PACS's C-STORE, a system's STOW-RS, `hub dicom import`) joins the study only when its patient
-- agrees with the study's (docs/access.md, "Storing into a case"). A claim by a system client is firm.
ALTER TABLE dicom_study ADD COLUMN claim_provisional boolean NOT NULL DEFAULT false;
ALTER TABLE dicom_study ADD CONSTRAINT dicom_study_claim_provisional
  CHECK (NOT claim_provisional OR match_method = 'stored-into-case');

-- Who made the claims stored so far is not recorded: every one of them is taken as a person's.
UPDATE dicom_study SET claim_provisional = true WHERE match_method = 'stored-into-case';

-- The first value of a DICOM JSON attribute, trimmed; NULL when absent or empty.
CREATE FUNCTION dicom_json_first_value(p_dicom_json jsonb, p_tag text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT nullif(btrim(p_dicom_json #>> ARRAY[p_tag, 'Value', '0']), '')
$$;

-- Whether an instance (its DICOM JSON) is of the patient of the study's first instance, the one the
-- matching reads the patient module from (src/workflow/imaging-match.ts): the same Patient ID
-- (0010,0020) and Patient's Birth Date (0010,0030), both present, and the same Issuer of Patient ID
-- (0010,0021), or none on either side. A study with no instance yet has no patient to agree with.
CREATE FUNCTION dicom_same_patient(p_study text, p_dicom_json text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_held jsonb;
  v_new jsonb := p_dicom_json::jsonb;
BEGIN
  SELECT dicom_json::jsonb INTO v_held FROM dicom_instance WHERE study_instance_uid = p_study
    ORDER BY created_at, sop_instance_uid LIMIT 1;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  RETURN dicom_json_first_value(v_new, '00100020') IS NOT NULL
    AND dicom_json_first_value(v_new, '00100020') = dicom_json_first_value(v_held, '00100020')
    AND dicom_json_first_value(v_new, '00100030') IS NOT NULL
    AND dicom_json_first_value(v_new, '00100030') = dicom_json_first_value(v_held, '00100030')
    AND dicom_json_first_value(v_new, '00100021') IS NOT DISTINCT FROM dicom_json_first_value(v_held, '00100021');
END
$$;

-- dicom_store_instance (migration 025) with one more parameter: the case the request stores into
-- (STOW-RS `?case=`; NULL without one). One more outcome: 'patient-mismatch', an instance of a study
-- provisionally claimed by another case than p_case (or arriving without a case) whose patient does
-- not agree with the study's: nothing changes.
DROP FUNCTION dicom_store_instance(text, text, text, text, text, integer, integer, integer, integer, text, bigint,
  text, text, text, text, text, text, text, text, text, text, text, text, integer, text, text, bytea);

CREATE FUNCTION dicom_store_instance(
  p_study text, p_series text, p_sop text, p_sop_class text, p_transfer_syntax text,
  p_instance_number integer, p_rows integer, p_columns integer, p_frames integer,
  p_blob_key text, p_size bigint, p_dicom_json text,
  p_patient_id text, p_patient_name text, p_patient_birth_date text, p_patient_sex text,
  p_study_date text, p_study_time text, p_accession_number text, p_study_description text,
  p_referring_physician_name text, p_study_id text,
  p_modality text, p_series_number integer, p_series_description text, p_body_part_examined text,
  p_case text, p_staged bytea)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_sha text;
  v_series_study text;
  v_new_series boolean;
  v_claim_case text;
  v_provisional boolean;
  v_checked boolean := false;
BEGIN
  SELECT sha256 INTO v_sha FROM dicom_instance WHERE sop_instance_uid = p_sop;
  IF FOUND THEN
    RETURN CASE WHEN v_sha = p_blob_key THEN 'duplicate' ELSE 'conflict' END;
  END IF;
  SELECT study_instance_uid INTO v_series_study FROM dicom_series WHERE series_instance_uid = p_series;
  IF FOUND AND v_series_study <> p_study THEN
    RETURN 'series-elsewhere';
  END IF;

  -- Locked, so that the claim cannot be released, nor the study's first instance change, under the check.
  SELECT matched_service_request_id, claim_provisional INTO v_claim_case, v_provisional
    FROM dicom_study WHERE study_instance_uid = p_study FOR UPDATE;
  IF FOUND THEN
    v_checked := true;
    IF v_provisional AND v_claim_case IS DISTINCT FROM p_case AND NOT dicom_same_patient(p_study, p_dicom_json) THEN
      RETURN 'patient-mismatch';
    END IF;
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
    updated_at = now()
  RETURNING s.matched_service_request_id, s.claim_provisional INTO v_claim_case, v_provisional;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'study row not written' USING ERRCODE = '40001';
  END IF;
  IF NOT v_checked AND v_provisional AND v_claim_case IS DISTINCT FROM p_case THEN
    -- A claim was committed between the check above and this write: the retry checks the instance against it.
    RAISE EXCEPTION 'study claimed meanwhile' USING ERRCODE = '40001';
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
