/**
 * The AuditEvents of the DIMSE listener (audit/dicom-audit-event.ts): one Query per C-FIND, one DICOM
 * Instances Transferred per association that stored instances (recorded once, when the association is
 * released or aborted: never a write per instance), and one failure event per association refused.
 *
 * A peer's identity is the calling AE title the allow-list (DIMSE_ALLOWED_CALLING_AE_TITLES) let in,
 * with its address: no person stands behind it and no per-role access policy applies, so a C-FIND
 * from an allowed peer sees every study, as a system client with ImagingStudy scopes does on DICOMweb.
 */
import { randomUUID } from 'node:crypto';
import type { AuditOutcome } from '../../audit/audit-event.ts';
import type { Auditor } from '../../audit/auditor.ts';
import { dicomQueryAuditEvent, dicomTransferredAuditEvent } from '../../audit/dicom-audit-event.ts';
import type { AuditedStudy, DicomService, DimsePeer } from '../../audit/dicom-audit-event.ts';
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { AssociationPeer, AssociationRejected } from './association.ts';
import { isQuerySopClass } from './sop-classes.ts';

/** The studies as the audit names them: their ImagingStudy and their case's Patient, from the index. One query. */
export async function readAuditedStudies(db: Queryable, studyInstanceUids: Iterable<string>): Promise<AuditedStudy[]> {
  const uids = [...new Set(studyInstanceUids)];
  if (uids.length === 0) {
    return [];
  }
  const result = await db.query<{
    study_instance_uid: string;
    imaging_study_id: string | null;
    matched_patient_id: string | null;
  }>(
    'SELECT study_instance_uid, imaging_study_id, matched_patient_id FROM dicom_study WHERE study_instance_uid = ANY ($1::text[])',
    [uids],
  );
  const known = new Map(result.rows.map((row) => [row.study_instance_uid, row]));
  return uids.map((uid) => ({
    studyInstanceUid: uid,
    imagingStudyId: known.get(uid)?.imaging_study_id ?? undefined,
    patientId: known.get(uid)?.matched_patient_id ?? undefined,
  }));
}

function dimsePeer(peer: AssociationPeer): DimsePeer {
  return {
    callingAeTitle: peer.callingAeTitle,
    calledAeTitle: peer.calledAeTitle,
    address: peer.callingAddress,
    localAddress: peer.calledAddress,
  };
}

export interface CompletedFind {
  peer: AssociationPeer;
  sopClassUid: string;
  /** The query, already reduced by auditQuery. */
  query: string;
  patientIds: Iterable<string>;
  outcome: AuditOutcome;
  outcomeDesc?: string | undefined;
}

export interface CompletedStores {
  peer: AssociationPeer;
  studyInstanceUids: Iterable<string>;
  /** C-STOREs not stored. */
  failures: number;
}

export class DimseAuditTrail {
  private readonly auditor: Auditor;
  private readonly db: Queryable;
  private readonly logger: Logger;

  constructor(auditor: Auditor, db: Queryable, logger: Logger) {
    this.auditor = auditor;
    this.db = db;
    this.logger = logger;
  }

  private base(peer: AssociationPeer, outcome: AuditOutcome, service: DicomService, outcomeDesc?: string) {
    return {
      id: randomUUID(),
      recorded: new Date(),
      requester: { kind: 'dimse' as const, peer: dimsePeer(peer) },
      outcome,
      outcomeDesc,
      service,
    };
  }

  /** A C-FIND answered (or refused, or cancelled); before its final response goes out. */
  async queried(find: CompletedFind): Promise<void> {
    if (!this.auditor.enabled) {
      return;
    }
    await this.auditor.recordEvents([
      dicomQueryAuditEvent(this.auditor.site, {
        ...this.base(find.peer, find.outcome, 'c-find', find.outcomeDesc),
        query: find.query,
        sopClassUid: find.sopClassUid,
        patientIds: [...find.patientIds],
      }),
    ]);
  }

  /** An association that sent C-STOREs has ended: one event for all of them. */
  async transferred(stores: CompletedStores): Promise<void> {
    if (!this.auditor.enabled) {
      return;
    }
    const studies = await readAuditedStudies(this.db, stores.studyInstanceUids);
    const failed = stores.failures > 0;
    await this.auditor.recordEvents([
      dicomTransferredAuditEvent(this.auditor.site, {
        ...this.base(stores.peer, failed ? '4' : '0', 'c-store', failed ? 'some instances were not stored' : undefined),
        studies,
      }),
    ]);
  }

  /**
   * An association refused: a failure event of what it proposed (Query when it proposed only query
   * models, else Instances Transferred). Recorded in the background; a failure is logged.
   */
  rejected(rejection: AssociationRejected): void {
    if (!this.auditor.enabled) {
      return;
    }
    const queryOnly =
      rejection.abstractSyntaxUids.length > 0 && rejection.abstractSyntaxUids.every((uid) => isQuerySopClass(uid));
    const base = this.base(
      rejection,
      '4',
      queryOnly ? 'c-find' : 'c-store',
      `association rejected: ${rejection.reason}`,
    );
    const event = queryOnly
      ? dicomQueryAuditEvent(this.auditor.site, { ...base, query: '', patientIds: [] })
      : dicomTransferredAuditEvent(this.auditor.site, { ...base, studies: [] });
    // Nobody was identified: the peer's address is all there is, and the throttle keeps a flood of
    // refused associations from growing the audit store without bound (audit/refusal-throttle.ts).
    this.auditor.recordEvents([event], rejection.callingAddress ?? 'unknown').catch((error: unknown) => {
      this.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'the audit of a refused association failed',
      );
    });
  }
}
