/**
 * Studies stored into a named case (STOW-RS with `?case=`, routes/dicomweb/stow-case.ts): the study
 * is the case's from its first instance. Before an instance is stored, its study's index row is
 * written with the match (dicom_study.matched_*, as workflow/imaging-match.ts records one), or found
 * already holding it; the instance's own store statement then fills the row in. So neither the
 * ImagingStudy refresher nor the matching job ever sees the study unmatched, and a study that is
 * already at the hub and not this case's (another case's, or one waiting for a coordinator) takes no
 * instance from the request.
 *
 * A claim whose instance was then not stored leaves a row with no instance: the request releases it
 * when it is done (releaseEmptyClaims), unless an instance of another request has reached it since.
 *
 * A person's claim is provisional (dicom_study.claim_provisional, migration 031): it rests on their
 * word alone that the study is their case's, and anyone who knows a StudyInstanceUID could make it
 * before the imaging system sends the real study. An instance arriving without the case (C-STORE, a
 * system's STOW-RS, `hub dicom import`) joins such a study only when its patient agrees with the
 * study's (dicom_store_instance); a client's write must never decide what it may read. A system
 * client's claim is firm: it may store any study anyway, and the hub trusts it as an imaging source.
 */
import type { Queryable } from '../db/database.ts';

/** dicom_study.match_method of a study stored into a named case. */
export const STORED_INTO_CASE = 'stored-into-case';

export interface CaseTarget {
  serviceRequestId: string;
  patientId: string;
  /** The claim is a person's (not a system client's): see above. */
  provisional: boolean;
}

export type StudyClaim =
  /** The row was written here, with the match: the study is new. */
  | 'claimed'
  /** The study was already this case's. */
  | 'ours'
  /** The study is at the hub and not this case's. */
  | 'elsewhere';

/** Makes `studyInstanceUid` the target case's study, unless the hub holds it for something else. */
export async function claimStudyForCase(
  db: Queryable,
  studyInstanceUid: string,
  target: CaseTarget,
): Promise<StudyClaim> {
  const inserted = await db.query(
    `INSERT INTO dicom_study (study_instance_uid, imaging_study_id, matched_service_request_id, matched_patient_id,
       match_method, matched_at, claim_provisional)
     VALUES ($1, gen_random_uuid()::text, $2, $3, $4, now(), $5)
     ON CONFLICT (study_instance_uid) DO NOTHING`,
    [studyInstanceUid, target.serviceRequestId, target.patientId, STORED_INTO_CASE, target.provisional],
  );
  if (inserted.rowCount > 0) {
    return 'claimed';
  }
  // A match, once recorded, is never changed (imaging-match.ts refuses to match a matched study).
  const found = await db.query<{ matched_service_request_id: string | null }>(
    'SELECT matched_service_request_id FROM dicom_study WHERE study_instance_uid = $1',
    [studyInstanceUid],
  );
  return found.rows[0]?.matched_service_request_id === target.serviceRequestId ? 'ours' : 'elsewhere';
}

/** Deletes the rows these claims wrote that no instance reached (their instances were refused). */
export async function releaseEmptyClaims(db: Queryable, studyInstanceUids: readonly string[]): Promise<void> {
  if (studyInstanceUids.length === 0) {
    return;
  }
  await db.query(
    `DELETE FROM dicom_study s
     WHERE s.study_instance_uid = ANY ($1::text[]) AND s.number_of_instances = 0 AND s.match_method = $2
       AND NOT EXISTS (SELECT 1 FROM dicom_series se WHERE se.study_instance_uid = s.study_instance_uid)
       AND NOT EXISTS (SELECT 1 FROM dicom_study_refresh r WHERE r.study_instance_uid = s.study_instance_uid)`,
    [[...studyInstanceUids], STORED_INTO_CASE],
  );
}
