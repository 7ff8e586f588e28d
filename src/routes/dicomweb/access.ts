/**
 * Who sees which studies on DICOMweb, and the AuditEvent of every request.
 *
 * Access: a person's requests are filtered by their role's access policy (AccessControl.studyCondition)
 * in the SQL of every QIDO-RS and WADO-RS query, so a study they may not see is absent from searches
 * (paging stays right) and answers 404 like a missing one. System clients and anonymous requests
 * (AUTH_REQUIRED=false) are not filtered: their scopes (auth/dicomweb-scope-guard.ts) are all that applies.
 *
 * Audit (audit/dicom-audit-event.ts): a handler that answers 200 records its event before the
 * answer goes out (`audited`; when the event cannot be recorded the answer is a 500). Every other
 * request, refused before the routes (401, 403) or by them (400, 404, 406, …), is recorded by
 * `dicomwebAuditTrail`, mounted before authentication, once its answer has gone out, naming only what
 * the request itself named (the query, the study UID of the path).
 */
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { accessControlFor } from '../../auth/access-policy.ts';
import { requestIdentity } from '../../auth/authenticate.ts';
import { dicomwebPermission } from '../../auth/dicomweb-scope-guard.ts';
import { CLAIMED_TOKEN_REFUSED, outcomeForStatus } from '../../audit/audit-event.ts';
import type { AuditOutcome } from '../../audit/audit-event.ts';
import { requestActor } from '../../auth/request-actor.ts';
import type { Auditor } from '../../audit/auditor.ts';
import {
  auditQuery,
  dicomAccessedAuditEvent,
  dicomQueryAuditEvent,
  dicomTransferredAuditEvent,
} from '../../audit/dicom-audit-event.ts';
import type { AuditQueryKey, AuditedStudy, DicomService } from '../../audit/dicom-audit-event.ts';
import { isValidUid } from '../../dicom/part10.ts';
import { INDEX_ATTRIBUTE_BY_KEYWORD, INDEX_ATTRIBUTE_BY_TAG } from '../../dicom/query.ts';
import type { StudyAccess } from '../../dicom/query.ts';

/** The studies the request may see (`search`: QIDO-RS, `read`: WADO-RS); undefined: every study. */
export function studyAccessOf(res: Response, interaction: 'read' | 'search'): StudyAccess | undefined {
  const control = accessControlFor(requestIdentity(res));
  return control ? { condition: (binder, alias) => control.studyCondition(binder, alias, interaction) } : undefined;
}

/** The index columns a study's audit reads, under the `dicom_study` alias. */
export const AUDITED_STUDY_COLUMNS = (alias: string): string =>
  `${alias}.imaging_study_id AS audit_imaging_study_id, ${alias}.matched_patient_id AS audit_patient_id`;

export interface AuditedStudyRow {
  study_instance_uid: string;
  audit_imaging_study_id: string | null;
  audit_patient_id: string | null;
}

export function auditedStudyOf(row: AuditedStudyRow): AuditedStudy {
  return {
    studyInstanceUid: row.study_instance_uid,
    imagingStudyId: row.audit_imaging_study_id ?? undefined,
    patientId: row.audit_patient_id ?? undefined,
  };
}

const AUDITED = 'dicomwebAudited';
const RESERVED_QIDO_PARAMETERS = new Set(['limit', 'offset', 'includefield', 'fuzzymatching']);

/** A QIDO-RS query string as the audit keeps it (auditQuery: UIDs, codes and numbers only). */
export function qidoAuditQuery(req: Request): string {
  const keys: AuditQueryKey[] = [];
  for (const [name, raw] of Object.entries(req.query)) {
    const attribute = INDEX_ATTRIBUTE_BY_KEYWORD.get(name) ?? INDEX_ATTRIBUTE_BY_TAG.get(name.toUpperCase());
    for (const value of [raw].flat()) {
      if (typeof value === 'string') {
        keys.push({ name, value, vr: attribute?.vr, keep: RESERVED_QIDO_PARAMETERS.has(name) });
      }
    }
  }
  return auditQuery(keys);
}

function serviceOf(req: Request, path: string): DicomService {
  const { permission } = dicomwebPermission(req.method, path);
  return permission === 'c' ? 'stow-rs' : permission === 's' ? 'qido-rs' : 'wado-rs';
}

export interface DicomwebAudit {
  service: DicomService;
  outcome: AuditOutcome;
  outcomeDesc?: string | undefined;
  /** WADO-RS and STOW-RS: the studies retrieved or stored. */
  studies?: readonly AuditedStudy[];
  /** QIDO-RS: the FHIR Patient ids of the studies returned. */
  patientIds?: readonly (string | null | undefined)[];
}

async function record(auditor: Auditor, req: Request, res: Response, audit: DicomwebAudit): Promise<void> {
  const actor = requestActor(req, res);
  const input = {
    id: randomUUID(),
    recorded: new Date(),
    requester: { kind: 'http' as const, actor },
    outcome: audit.outcome,
    outcomeDesc:
      audit.outcomeDesc ?? (audit.outcome !== '0' && actor.claimed === true ? CLAIMED_TOKEN_REFUSED : undefined),
    service: audit.service,
  };
  const studies = audit.studies ?? [];
  const event =
    audit.service === 'qido-rs'
      ? dicomQueryAuditEvent(auditor.site, {
          ...input,
          query: qidoAuditQuery(req),
          patientIds: (audit.patientIds ?? []).filter((id): id is string => typeof id === 'string'),
        })
      : audit.service === 'stow-rs'
        ? dicomTransferredAuditEvent(auditor.site, { ...input, studies })
        : dicomAccessedAuditEvent(auditor.site, { ...input, studies });
  res.locals[AUDITED] = true;
  // A refusal goes through the refusal throttle unless the caller was identified.
  await auditor.recordEvents([event], audit.outcome !== '0' ? actor : undefined);
}

/**
 * Records the request's AuditEvent before its answer goes out. False when it could not be recorded:
 * a 500 was sent instead, and the caller answers nothing more.
 */
export async function audited(
  auditor: Auditor | undefined,
  req: Request,
  res: Response,
  audit: DicomwebAudit,
  logger: Logger,
): Promise<boolean> {
  if (!auditor?.enabled) {
    return true;
  }
  try {
    await record(auditor, req, res, audit);
    return true;
  } catch (error) {
    logger.error(
      { requestId: res.locals.requestId, err: error instanceof Error ? error.message : String(error) },
      'DICOMweb audit failed',
    );
    res
      .status(500)
      .type('application/json')
      .send(JSON.stringify({ error: 'the access could not be audited' }));
    return false;
  }
}

const STUDY_IN_PATH = /^\/studies\/([^/?]+)/;

/** Mounted on /dicomweb before authentication: audits, after the answer, every request its handler did not. */
export function dicomwebAuditTrail(auditor: Auditor, logger: Logger): RequestHandler {
  return (req, res, next) => {
    if (!auditor.enabled || req.method === 'OPTIONS') {
      next();
      return;
    }
    const path = req.path;
    res.once('finish', () => {
      if (res.locals[AUDITED] === true) {
        return;
      }
      const study = STUDY_IN_PATH.exec(path)?.[1];
      const studies = study !== undefined && isValidUid(study) ? [{ studyInstanceUid: study }] : [];
      record(auditor, req, res, {
        service: serviceOf(req, path),
        outcome: outcomeForStatus(res.statusCode),
        studies,
      }).catch((error: unknown) => {
        logger.error(
          { requestId: res.locals.requestId, err: error instanceof Error ? error.message : String(error) },
          'DICOMweb audit failed',
        );
      });
    });
    next();
  };
}
