/**
 * STOW-RS into a named case: `POST /dicomweb/studies?case=<ServiceRequest id>` (or to a study's
 * path). A referring physician sends a patient's CD this way, and may store only so, into one of
 * their own cases (AccessControl.mayStoreStudiesIntoCase; the guard refuses them without `case`);
 * whoever may store studies at all (coordinators, admins, system clients) may name any case too.
 *
 * The case is resolved before the body is read, through the person's membership (memberCases): one
 * they may not see answers 404 exactly like a missing one, one that is not active 409 (matching, too,
 * ties studies to active requests only). Each instance's study is then claimed for the case before
 * the instance is stored (dicom/case-claim.ts), so the study is the case's from its first instance,
 * and an instance of a study the hub holds for anything else is refused. A person's claim is
 * provisional, a system client's firm (case-claim.ts). Whatever holds the instance elsewhere (its
 * study, its series or its SOP Instance UID, for another case or for a coordinator), the caller gets
 * one answer, "not authorized" (stow.ts), and the log the cause: so a person cannot probe which UIDs
 * the hub holds beyond their cases.
 */
import type { Request, Response } from 'express';
import type { ServiceRequest } from '@medplum/fhirtypes';
import { accessControlFor } from '../../auth/access-policy.ts';
import { requestIdentity } from '../../auth/authenticate.ts';
import type { Queryable } from '../../db/database.ts';
import { SqlParams } from '../../db/sql-params.ts';
import { claimStudyForCase, releaseEmptyClaims } from '../../dicom/case-claim.ts';
import type { CaseTarget, StudyClaim } from '../../dicom/case-claim.ts';

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
/** The log's words for an instance whose study the hub holds for another case or for a coordinator. */
const STUDY_ELSEWHERE = 'the study is held at the hub, not for this case';

export type StowCase =
  | { kind: 'none' }
  | { kind: 'case'; target: CaseTarget }
  | { kind: 'refused'; status: number; code: string; text: string };

/** The case the request names, checked against the caller's access; `none` when it names none. */
export async function resolveStowCase(db: Queryable, req: Request, res: Response): Promise<StowCase> {
  const named = req.query.case;
  if (named === undefined) {
    return { kind: 'none' };
  }
  if (typeof named !== 'string' || !ID_PATTERN.test(named)) {
    return { kind: 'refused', status: 400, code: 'invalid', text: 'case must be one ServiceRequest id' };
  }
  const params = new SqlParams();
  const id = params.add(named);
  const access = accessControlFor(requestIdentity(res));
  const mine = access ? ` AND r.id IN (${access.memberCases(params)})` : '';
  const found = await db.query<{ content: string }>(
    `SELECT r.content FROM resource r WHERE r.resource_type = 'ServiceRequest' AND r.id = ${id} AND NOT r.deleted${mine}`,
    params.values,
  );
  const row = found.rows[0];
  if (row === undefined) {
    return { kind: 'refused', status: 404, code: 'not-found', text: `No case ServiceRequest/${named} of yours` };
  }
  const request = JSON.parse(row.content) as ServiceRequest;
  if (request.status !== 'active') {
    return {
      kind: 'refused',
      status: 409,
      code: 'business-rule',
      text: `The case is ${request.status}: imaging is stored into an active case only`,
    };
  }
  const patientId = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(request.subject?.reference ?? '')?.[1];
  if (patientId === undefined) {
    return { kind: 'refused', status: 409, code: 'business-rule', text: 'The case has no Patient subject' };
  }
  // Without an AccessControl the caller is a system client (or the trusted network, tokens not required).
  return { kind: 'case', target: { serviceRequestId: named, patientId, provisional: access !== undefined } };
}

/** Claims each study once per request for the case, and releases the claims no instance reached. */
export class CaseClaims {
  private readonly claims = new Map<string, Promise<StudyClaim>>();
  private readonly db: Queryable;
  private readonly target: CaseTarget;

  constructor(db: Queryable, target: CaseTarget) {
    this.db = db;
    this.target = target;
  }

  /** ingest.ts admitStudy: undefined admits the instance, a reason refuses it. */
  readonly admit = async (studyInstanceUid: string): Promise<string | undefined> => {
    let claim = this.claims.get(studyInstanceUid);
    if (claim === undefined) {
      claim = claimStudyForCase(this.db, studyInstanceUid, this.target);
      this.claims.set(studyInstanceUid, claim);
      // A failed claim is tried again by the study's next instance.
      claim.catch(() => this.claims.delete(studyInstanceUid));
    }
    return (await claim) === 'elsewhere' ? STUDY_ELSEWHERE : undefined;
  };

  async release(): Promise<void> {
    const claimed: string[] = [];
    for (const [uid, claim] of this.claims) {
      if ((await claim.catch(() => undefined)) === 'claimed') {
        claimed.push(uid);
      }
    }
    await releaseEmptyClaims(this.db, claimed);
  }
}
