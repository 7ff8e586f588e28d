/**
 * AuditEvent resources (R4) for DICOM access, after the DICOM audit messages (PS3.15 Annex A.5.3)
 * as IHE BALP maps them to FHIR, with DICOM ontology codes:
 *  - Query (110112): a QIDO-RS request or a C-FIND, with its query (BALP: entity.query, base64) and
 *    the patients whose studies were returned;
 *  - DICOM Instances Accessed (110103, action R): a WADO-RS retrieval (instances, metadata, frames,
 *    bulk data, rendered, thumbnail). Chosen over Export (110106), which PS3.15 keeps for data leaving
 *    the system's custody on media or to another organisation: a viewer reading a study through the
 *    hub's API is the DICOM counterpart of a FHIR read;
 *  - DICOM Instances Transferred (110104, action C, the hub receiving): a STOW-RS request or a C-STORE
 *    association, one event for all its instances;
 *  - Import (110107, action C): an operator's `hub dicom import` of a patient's media, one event for
 *    all its files, as PS3.15 keeps Import for data brought in from media.
 * A study is an entity naming its ImagingStudy (when the hub has written it) and its Study Instance
 * UID (urn:oid); its matched case's Patient is a patient entity. Agents: over HTTP the person and the
 * client as the FHIR audits have them (audit-event.ts), the DICOMweb base as Destination; over DIMSE
 * the calling AE title and the peer's address as Source Role ID and the hub's AE as Destination.
 * Pure: the caller passes the clock and the id. Only references, UIDs and codes go in: never a
 * DICOM value; the query keeps only the values of UID, code string and number keys (auditQuery).
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';
import { DICOM, HUB_AUDIT_SUBTYPE, requestAgents } from './audit-event.ts';
import type { AuditActor, AuditOutcome, AuditSite } from './audit-event.ts';

const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const DICOM_UID_SYSTEM = 'urn:dicom:uid';
const STATION_AE_TITLE: Coding = { system: DICOM, code: '110119', display: 'Station AE Title' };

export const DICOM_AUDIT_EVENT = {
  query: { system: DICOM, code: '110112', display: 'Query' },
  accessed: { system: DICOM, code: '110103', display: 'DICOM Instances Accessed' },
  transferred: { system: DICOM, code: '110104', display: 'DICOM Instances Transferred' },
  imported: { system: DICOM, code: '110107', display: 'Import' },
} as const satisfies Record<string, Coding>;

/** The service that was used, as the event's subtype (the hub's codes: neither DICOM nor BALP has them). */
export type DicomService = 'qido-rs' | 'wado-rs' | 'stow-rs' | 'c-find' | 'c-store' | 'media-import';
const SERVICE_DISPLAY: Readonly<Record<DicomService, string>> = {
  'qido-rs': 'QIDO-RS',
  'wado-rs': 'WADO-RS',
  'stow-rs': 'STOW-RS',
  'c-find': 'DIMSE C-FIND',
  'c-store': 'DIMSE C-STORE',
  'media-import': 'DICOM media import (hub dicom import)',
};

/** A DIMSE peer: the calling AE title it associated with, and where it connected from. */
export interface DimsePeer {
  callingAeTitle: string;
  /** The hub's AE title (the called one). */
  calledAeTitle: string;
  address?: string | undefined;
  /** The hub's own address on the connection. */
  localAddress?: string | undefined;
}

export type DicomRequester = { kind: 'http'; actor: AuditActor } | { kind: 'dimse'; peer: DimsePeer };

/** A study as the audit names it. */
export interface AuditedStudy {
  studyInstanceUid: string;
  imagingStudyId?: string | undefined;
  /** The FHIR Patient id of the study's matched case, when it is matched. */
  patientId?: string | undefined;
}

export interface DicomAuditInput {
  id: string;
  recorded: Date;
  requester: DicomRequester;
  outcome: AuditOutcome;
  /** Only a fixed, non-revealing text. */
  outcomeDesc?: string | undefined;
  service: DicomService;
}

export interface DicomQueryAuditInput extends DicomAuditInput {
  /** The query, already reduced by auditQuery. */
  query: string;
  /** C-FIND: the query model's SOP Class UID. */
  sopClassUid?: string | undefined;
  /** FHIR Patient ids of the studies returned. */
  patientIds: readonly string[];
}

export interface DicomStudiesAuditInput extends DicomAuditInput {
  studies: readonly AuditedStudy[];
}

/** PS3.15 A.5.2: an AE is identified by its AE title (AlternativeUserID `AETITLES=`). */
function aeAgent(role: Coding, aeTitle: string, requestor: boolean, address: string | undefined): AuditEventAgent {
  return {
    type: { coding: [role] },
    who: { identifier: { type: { coding: [STATION_AE_TITLE] }, value: aeTitle } },
    altId: `AETITLES=${aeTitle}`,
    requestor,
    ...(address !== undefined ? { network: { address, type: '2' as const } } : {}),
  };
}

function dimseAgents(peer: DimsePeer): AuditEventAgent[] {
  return [
    aeAgent({ system: DICOM, code: '110153', display: 'Source Role ID' }, peer.callingAeTitle, true, peer.address),
    aeAgent(
      { system: DICOM, code: '110152', display: 'Destination Role ID' },
      peer.calledAeTitle,
      false,
      peer.localAddress,
    ),
  ];
}

function base(site: AuditSite, input: DicomAuditInput, type: Coding, action: AuditEvent['action']): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: input.id,
    type,
    subtype: [{ system: HUB_AUDIT_SUBTYPE, code: input.service, display: SERVICE_DISPLAY[input.service] }],
    action,
    recorded: input.recorded.toISOString(),
    outcome: input.outcome,
    ...(input.outcomeDesc !== undefined ? { outcomeDesc: input.outcomeDesc } : {}),
    agent:
      input.requester.kind === 'http'
        ? requestAgents(site, input.requester.actor, '/dicomweb')
        : dimseAgents(input.requester.peer),
    source: {
      observer: { identifier: { system: 'urn:ietf:rfc:3986', value: site.baseUrl } },
      type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
    },
  };
}

const uidIdentifier = (code: string, display: string, uid: string) => ({
  type: { coding: [{ system: DICOM, code, display }] },
  system: DICOM_UID_SYSTEM,
  value: `urn:oid:${uid}`,
});

function studyEntity(study: AuditedStudy): AuditEventEntity {
  return {
    what: {
      ...(study.imagingStudyId ? { reference: `ImagingStudy/${study.imagingStudyId}` } : {}),
      identifier: uidIdentifier('110180', 'Study Instance UID', study.studyInstanceUid),
    },
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '3', display: 'Report' },
  };
}

function patientEntities(patientIds: Iterable<string | undefined>): AuditEventEntity[] {
  const unique = [...new Set([...patientIds].filter((id): id is string => id !== undefined && id !== ''))].sort();
  return unique.map((id) => ({
    what: { reference: `Patient/${id}` },
    type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
    role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
  }));
}

function withEntities(event: AuditEvent, entities: AuditEventEntity[]): AuditEvent {
  if (entities.length > 0) {
    event.entity = entities;
  }
  return event;
}

/** QIDO-RS or C-FIND (110112 Query, action E). */
export function dicomQueryAuditEvent(site: AuditSite, input: DicomQueryAuditInput): AuditEvent {
  const query: AuditEventEntity = {
    ...(input.sopClassUid ? { what: { identifier: uidIdentifier('110181', 'SOP Class UID', input.sopClassUid) } } : {}),
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
    query: Buffer.from(input.query, 'utf8').toString('base64'),
  };
  return withEntities(base(site, input, DICOM_AUDIT_EVENT.query, 'E'), [query, ...patientEntities(input.patientIds)]);
}

function studiesEvent(
  site: AuditSite,
  input: DicomStudiesAuditInput,
  type: Coding,
  action: AuditEvent['action'],
): AuditEvent {
  const byUid = new Map(input.studies.map((study) => [study.studyInstanceUid, study]));
  const studies = [...byUid.values()].sort((a, b) => (a.studyInstanceUid < b.studyInstanceUid ? -1 : 1));
  return withEntities(base(site, input, type, action), [
    ...studies.map(studyEntity),
    ...patientEntities(studies.map((study) => study.patientId)),
  ]);
}

/** A WADO-RS retrieval (110103 DICOM Instances Accessed, action R). */
export function dicomAccessedAuditEvent(site: AuditSite, input: DicomStudiesAuditInput): AuditEvent {
  return studiesEvent(site, input, DICOM_AUDIT_EVENT.accessed, 'R');
}

/** A STOW-RS request or a C-STORE association (110104 DICOM Instances Transferred, action C). */
export function dicomTransferredAuditEvent(site: AuditSite, input: DicomStudiesAuditInput): AuditEvent {
  return studiesEvent(site, input, DICOM_AUDIT_EVENT.transferred, 'C');
}

/** One key of a query as the audit records it. */
export interface AuditQueryKey {
  name: string;
  value: string;
  /** The key's VR, when known: the values of UI, CS, AE, IS and US keys are kept. */
  vr?: string | undefined;
  /** Keep the value whatever the VR (paging and includefield parameters). */
  keep?: boolean | undefined;
}

const KEPT_VRS = new Set(['UI', 'CS', 'AE', 'IS', 'US']);
/** What a value that could identify a patient (a name, an ID, a date, a description) becomes. */
export const REDACTED = 'redacted';

/**
 * The query as `name=value&…`, each value that is not a UID, code string or number replaced by
 * `redacted` (an empty value, a universal match or a return key, stays empty): the audit says who
 * searched with which keys, and never carries a name, an ID or a date.
 */
export function auditQuery(keys: readonly AuditQueryKey[]): string {
  const params = new URLSearchParams();
  for (const key of keys) {
    const kept = key.keep === true || (key.vr !== undefined && KEPT_VRS.has(key.vr));
    params.append(key.name, key.value === '' || kept ? key.value : REDACTED);
  }
  return params.toString();
}

/**
 * Who ran `hub dicom import`: the operating-system account on its host (the command has no login:
 * whoever can run it can reach the database), and the hub user the operator named, when they did.
 */
export interface MediaImporter {
  osAccount: string;
  host: string;
  user?: { userId: string; fhirUser?: string | undefined } | undefined;
}

export interface DicomImportAuditInput {
  id: string;
  recorded: Date;
  outcome: AuditOutcome;
  /** Only a fixed, non-revealing text. */
  outcomeDesc?: string | undefined;
  importer: MediaImporter;
  /** What the media was (folder, DICOMDIR, zip archive, file): never its path, which may name the patient. */
  mediaKind: string;
  studies: readonly AuditedStudy[];
}

const HUMAN_USER: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type',
  code: 'humanuser',
  display: 'human user',
};

/** PS3.15 A.5.3.7: the importing person, the hub that received the data, and the source media. */
function importAgents(site: AuditSite, importer: MediaImporter, mediaKind: string): AuditEventAgent[] {
  const account = `${importer.osAccount}@${importer.host}`;
  const person: AuditEventAgent = importer.user
    ? {
        type: { coding: [HUMAN_USER] },
        who: {
          ...(importer.user.fhirUser !== undefined ? { reference: importer.user.fhirUser } : {}),
          identifier: { system: `${site.baseUrl}/users`, value: importer.user.userId },
        },
        altId: importer.user.userId,
        name: account,
        requestor: true,
        network: { address: importer.host, type: '1' },
      }
    : {
        type: { coding: [HUMAN_USER] },
        who: { display: account },
        altId: account,
        name: account,
        requestor: true,
        network: { address: importer.host, type: '1' },
      };
  return [
    person,
    {
      type: { coding: [{ system: DICOM, code: '110152', display: 'Destination Role ID' }] },
      who: { identifier: { system: 'urn:ietf:rfc:3986', value: site.baseUrl }, display: 'hub dicom import' },
      altId: 'hub dicom import',
      requestor: false,
    },
    {
      type: { coding: [{ system: DICOM, code: '110155', display: 'Source Media' }] },
      who: { display: mediaKind },
      requestor: false,
    },
  ];
}

/** An operator's import of a patient's media (110107 Import, action C). */
export function dicomImportAuditEvent(site: AuditSite, input: DicomImportAuditInput): AuditEvent {
  const byUid = new Map(input.studies.map((study) => [study.studyInstanceUid, study]));
  const studies = [...byUid.values()].sort((a, b) => (a.studyInstanceUid < b.studyInstanceUid ? -1 : 1));
  const service: DicomService = 'media-import';
  return withEntities(
    {
      resourceType: 'AuditEvent',
      id: input.id,
      type: DICOM_AUDIT_EVENT.imported,
      subtype: [{ system: HUB_AUDIT_SUBTYPE, code: service, display: SERVICE_DISPLAY[service] }],
      action: 'C',
      recorded: input.recorded.toISOString(),
      outcome: input.outcome,
      ...(input.outcomeDesc !== undefined ? { outcomeDesc: input.outcomeDesc } : {}),
      agent: importAgents(site, input.importer, input.mediaKind),
      source: {
        observer: { identifier: { system: 'urn:ietf:rfc:3986', value: site.baseUrl } },
        type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
      },
    },
    [...studies.map(studyEntity), ...patientEntities(studies.map((study) => study.patientId))],
  );
}
