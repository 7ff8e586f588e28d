/**
 * What each role of a person may do on the FHIR store, as data (ACCESS_POLICY), and the one place
 * that turns it into the checks HubRepository applies below the routes (AccessControl): a SQL
 * condition for searches, history and _include (so paging and _total stay right), and a check of
 * one resource for reads and writes. System clients and anonymous requests have no AccessControl:
 * their scopes (fhir-scope-guard.ts) are all that applies to them.
 *
 * The model. A case is its ServiceRequest. Per request, the cases a person may see are an SQL
 * subquery over the search index (live, so a ServiceRequest a physician creates inside a
 * transaction is theirs at once):
 *  - `referred`: ServiceRequest.requester = their Practitioner, or a PractitionerRole of it;
 *  - `own`: ServiceRequest.subject = their Patient;
 *  - `assigned`: the cases of a Task whose owner is their Practitioner;
 *  - `all`: every case (and every resource: no condition at all).
 * A resource belongs to a case when it is the ServiceRequest, refers to it from any indexed
 * reference (Task.basedOn/focus, DocumentReference.context.related, ImagingStudy.basedOn,
 * DiagnosticReport.basedOn, Specimen.request, Communication.basedOn, …), or carries the hub's
 * `urn:hub:case-resource` identifier `<ServiceRequest id>/…` (ChargeItems and every resource a job
 * writes). A Patient belongs to the cases whose subject it is; a Binary to the cases of a
 * DocumentReference or DiagnosticReport whose attachment points at it. The patient role does not
 * see the consultation report (LOINC 11488-4 DiagnosticReport or DocumentReference, and its
 * Binary) until the case's coordination Task is in state `report-accessed`.
 */
import { OperationOutcomeError, forbidden, notFound } from '@medplum/core';
import type { Identity } from './access-tokens.ts';
import type { UserRole } from './users.ts';

export type AccessInteraction = 'read' | 'search' | 'history' | 'create' | 'update' | 'delete';
/**
 * `all`: every resource of the type; `case`: those of the person's cases (a written resource must be
 * one afterwards); `any-new`: a create needs no case yet (a Patient registered before its referral).
 */
export type AccessScope = 'all' | 'case' | 'any-new';
export type CaseRule = 'all' | 'referred' | 'own' | 'assigned';

export interface RolePolicy {
  cases: CaseRule;
  /** Resource type (or `*` for any other type) → interaction → scope. Absent: not allowed. */
  resources: Readonly<Record<string, Partial<Record<AccessInteraction, AccessScope>>>>;
  /**
   * The types a person of the role may create at an id of their choosing (update as create): the
   * roster and terminology, for staff whose accounts are linked to fixed ids. Nobody else chooses
   * ids; system clients (EHRs) are not persons and may.
   */
  chooseIds?: readonly string[];
}

const EVERYTHING = { read: 'all', search: 'all', history: 'all', create: 'all', update: 'all', delete: 'all' } as const;
const SEE_CASE = { read: 'case', search: 'case', history: 'case' } as const;
const WRITE_CASE = { ...SEE_CASE, create: 'case', update: 'case' } as const;
/** The roster and terminology every person may read (who the specialists are, code systems). */
const REFERENCE_DATA = { read: 'all', search: 'all' } as const;
const REFERENCE_TYPES = ['Practitioner', 'PractitionerRole', 'Organization', 'Location', 'HealthcareService', 'Questionnaire', 'CodeSystem', 'ValueSet'];
const reference = Object.fromEntries(REFERENCE_TYPES.map((type) => [type, REFERENCE_DATA]));

/** The reviewers': see their cases, write their opinion, reports and messages. */
const REVIEWER: RolePolicy = {
  cases: 'assigned',
  resources: {
    ...reference,
    Patient: SEE_CASE,
    ServiceRequest: SEE_CASE,
    Task: { ...SEE_CASE, update: 'case' },
    ChargeItem: SEE_CASE,
    DocumentReference: WRITE_CASE,
    Binary: { ...SEE_CASE, create: 'any-new' },
    ImagingStudy: SEE_CASE,
    Specimen: SEE_CASE,
    DiagnosticReport: WRITE_CASE,
    Observation: WRITE_CASE,
    QuestionnaireResponse: SEE_CASE,
    Communication: WRITE_CASE,
  },
};

/** The policy of each role. README: "Access policies". */
export const ACCESS_POLICY: Readonly<Record<UserRole, RolePolicy>> = {
  admin: { cases: 'all', resources: { '*': EVERYTHING }, chooseIds: REFERENCE_TYPES },
  coordinator: { cases: 'all', resources: { '*': EVERYTHING }, chooseIds: REFERENCE_TYPES },
  specialist: REVIEWER,
  radiologist: REVIEWER,
  pathologist: REVIEWER,
  'referring-physician': {
    cases: 'referred',
    resources: {
      ...reference,
      Patient: { ...SEE_CASE, create: 'any-new', update: 'case' },
      ServiceRequest: WRITE_CASE,
      Task: { ...SEE_CASE, update: 'case' },
      ChargeItem: SEE_CASE,
      DocumentReference: WRITE_CASE,
      Binary: { ...SEE_CASE, create: 'any-new' },
      ImagingStudy: SEE_CASE,
      Specimen: WRITE_CASE,
      DiagnosticReport: SEE_CASE,
      QuestionnaireResponse: WRITE_CASE,
      Communication: WRITE_CASE,
      Consent: WRITE_CASE,
    },
  },
  patient: {
    cases: 'own',
    resources: {
      Practitioner: REFERENCE_DATA,
      Organization: REFERENCE_DATA,
      Questionnaire: REFERENCE_DATA,
      Patient: SEE_CASE,
      ServiceRequest: SEE_CASE,
      Task: SEE_CASE,
      ChargeItem: SEE_CASE,
      DocumentReference: SEE_CASE,
      Binary: SEE_CASE,
      ImagingStudy: SEE_CASE,
      DiagnosticReport: SEE_CASE,
      QuestionnaireResponse: WRITE_CASE,
      Communication: WRITE_CASE,
      Consent: SEE_CASE,
    },
  },
};

const CASE_RESOURCE_SYSTEM = 'urn:hub:case-resource';
const CASE_STATE_SYSTEM = 'urn:hub:case-state';
const LOINC = 'http://loinc.org';
const CONSULTATION_NOTE = '11488-4';
const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

/** Adds a bind value and returns its placeholder (SqlParams of the search builder has this shape). */
export interface SqlBinder {
  add(value: unknown): string;
}

function notAllowed(interaction: AccessInteraction, resourceType: string): OperationOutcomeError {
  return new OperationOutcomeError({
    ...forbidden,
    issue: [{ severity: 'error', code: 'forbidden', details: { text: `Your role may not ${interaction} ${resourceType} resources` } }],
  });
}

/** The access of one person on one request. */
export class AccessControl {
  readonly role: UserRole;
  readonly policy: RolePolicy;
  /** The id of the person's Practitioner or Patient (whichever the role is), if any. */
  private readonly personId: string | null;

  constructor(role: UserRole, fhirUser: string | undefined) {
    this.role = role;
    this.policy = ACCESS_POLICY[role];
    const [type, id] = (fhirUser ?? '').split('/');
    const expected = this.policy.cases === 'own' ? 'Patient' : 'Practitioner';
    this.personId = type === expected && id && ID_PATTERN.test(id) ? id : null;
  }

  /** True when the role may create a resource of the type at an id it chooses (PUT to a new id). */
  mayChooseId(resourceType: string): boolean {
    return this.policy.chooseIds?.includes(resourceType) === true;
  }

  /** The scope of an interaction on a type, or undefined when the role may not do it at all. */
  scopeOf(resourceType: string, interaction: AccessInteraction): AccessScope | undefined {
    const rules = this.policy.resources[resourceType] ?? this.policy.resources['*'];
    return rules?.[interaction];
  }

  /**
   * Throws when the role may not do `interaction` on the type: 403 for searches and writes (it says
   * nothing about any one resource), 404 for reads (R4: a server may hide that a resource exists).
   */
  require(resourceType: string, interaction: AccessInteraction): AccessScope {
    const scope = this.scopeOf(resourceType, interaction);
    if (scope) return scope;
    if (interaction === 'read') throw new OperationOutcomeError(notFound);
    throw notAllowed(interaction, resourceType);
  }

  /**
   * A condition on a `resource` row (alias) that holds for the rows the person may see with
   * `interaction`; `types` are the types the query can return (undefined: any). `TRUE` when no
   * condition applies.
   */
  condition(binder: SqlBinder, alias: string, interaction: AccessInteraction, types?: readonly string[]): string {
    if (this.policy.cases === 'all' && this.policy.resources['*']?.[interaction] === 'all') return 'TRUE';
    const everyType = Object.keys(this.policy.resources).filter((type) => type !== '*' && this.scopeOf(type, interaction) === 'all');
    const caseTypes = Object.keys(this.policy.resources).filter((type) => type !== '*' && this.scopeOf(type, interaction) === 'case');
    const relevant = (list: string[]): string[] => (types ? list.filter((type) => types.includes(type)) : list);
    const parts: string[] = [];
    const open = relevant(everyType);
    if (open.length > 0) parts.push(`${alias}.resource_type = ANY(${binder.add(open)}::text[])`);
    const inCase = relevant(caseTypes);
    if (inCase.length > 0) {
      const typeTest = types && types.length === 1 ? 'TRUE' : `${alias}.resource_type = ANY(${binder.add(inCase)}::text[])`;
      parts.push(`(${typeTest} AND ${this.visibleInCase(binder, alias)})`);
    }
    return parts.length === 0 ? 'FALSE' : `(${parts.join(' OR ')})`;
  }

  /**
   * A condition on a `dicom_study` row (alias) for the studies the person may see through DICOMweb
   * (`search`: QIDO-RS, `read`: WADO-RS), by the policy's ImagingStudy entry: `all` every study,
   * `case` the studies matched to one of their cases (dicom_study.matched_service_request_id, set by
   * workflow/imaging-match.ts), anything else none.
   */
  studyCondition(binder: SqlBinder, alias: string, interaction: 'read' | 'search'): string {
    const scope = this.scopeOf('ImagingStudy', interaction);
    if (scope === 'all') return 'TRUE';
    if (scope !== 'case') return 'FALSE';
    return `${alias}.matched_service_request_id IN (${this.cases(binder)})`;
  }

  /**
   * STOW-RS: true when the role may create ImagingStudies without a case (`all` or `any-new`). A
   * `case` scope cannot be honoured: a stored study belongs to no case until it is matched later.
   */
  mayStoreStudies(): boolean {
    const scope = this.scopeOf('ImagingStudy', 'create');
    return scope === 'all' || scope === 'any-new';
  }

  /** The person's case ServiceRequest ids, as a subquery. */
  private cases(binder: SqlBinder): string {
    const person = binder.add(this.personId);
    switch (this.policy.cases) {
      case 'all':
        return `SELECT id FROM resource WHERE resource_type = 'ServiceRequest' AND NOT deleted`;
      case 'referred':
        return (
          `SELECT resource_id FROM sp_reference WHERE resource_type = 'ServiceRequest' AND param = 'requester' AND (` +
          `(target_type = 'Practitioner' AND target_id = ${person}) OR (target_type = 'PractitionerRole' AND target_id IN (` +
          `SELECT resource_id FROM sp_reference WHERE resource_type = 'PractitionerRole' AND param = 'practitioner' ` +
          `AND target_type = 'Practitioner' AND target_id = ${person})))`
        );
      case 'own':
        return `SELECT resource_id FROM sp_reference WHERE resource_type = 'ServiceRequest' AND param = 'subject' AND target_type = 'Patient' AND target_id = ${person}`;
      case 'assigned': {
        const owned = `SELECT resource_id FROM sp_reference WHERE resource_type = 'Task' AND param = 'owner' AND target_type = 'Practitioner' AND target_id = ${person}`;
        return (
          `SELECT target_id FROM sp_reference WHERE resource_type = 'Task' AND target_type = 'ServiceRequest' AND resource_id IN (${owned}) ` +
          `UNION SELECT split_part(value, '/', 1) FROM sp_token WHERE resource_type = 'Task' AND param = 'identifier' ` +
          `AND system = '${CASE_RESOURCE_SYSTEM}' AND resource_id IN (${owned})`
        );
      }
    }
  }

  /** `alias` belongs to one of the cases of the subquery `cases` (Binary excepted). */
  private linked(alias: string, cases: string): string {
    return (
      `((${alias}.resource_type = 'ServiceRequest' AND ${alias}.id IN (${cases}))` +
      ` OR EXISTS (SELECT 1 FROM sp_reference x WHERE x.resource_type = ${alias}.resource_type AND x.resource_id = ${alias}.id ` +
      `AND x.target_type = 'ServiceRequest' AND x.target_id IN (${cases}))` +
      ` OR EXISTS (SELECT 1 FROM sp_token x WHERE x.resource_type = ${alias}.resource_type AND x.resource_id = ${alias}.id ` +
      `AND x.param = 'identifier' AND x.system = '${CASE_RESOURCE_SYSTEM}' AND split_part(x.value, '/', 1) IN (${cases}))` +
      ` OR (${alias}.resource_type = 'Patient' AND ${alias}.id IN (SELECT target_id FROM sp_reference WHERE resource_type = 'ServiceRequest' ` +
      `AND param = 'subject' AND target_type = 'Patient' AND resource_id IN (${cases}))))`
    );
  }

  /** For the patient role: not a consultation report, or one of a case whose report was accessed. */
  private reportGate(alias: string, cases: string): string {
    if (this.policy.cases !== 'own') return 'TRUE';
    const released =
      `SELECT target_id FROM sp_reference WHERE resource_type = 'Task' AND param = 'based-on' AND target_type = 'ServiceRequest' ` +
      `AND target_id IN (${cases}) AND resource_id IN (SELECT resource_id FROM sp_token WHERE resource_type = 'Task' ` +
      `AND param = 'business-status' AND system = '${CASE_STATE_SYSTEM}' AND value = 'report-accessed')`;
    const isReport =
      `EXISTS (SELECT 1 FROM sp_token x WHERE x.resource_type = ${alias}.resource_type AND x.resource_id = ${alias}.id ` +
      `AND ((x.resource_type = 'DiagnosticReport' AND x.param = 'code') OR (x.resource_type = 'DocumentReference' AND x.param = 'type')) ` +
      `AND x.system = '${LOINC}' AND x.value = '${CONSULTATION_NOTE}')`;
    return `(NOT ${isReport} OR ${this.linked(alias, released)})`;
  }

  private visibleInCase(binder: SqlBinder, alias: string): string {
    const cases = this.cases(binder);
    const own = this.policy.cases === 'own' ? ` OR (${alias}.resource_type = 'Patient' AND ${alias}.id = ${binder.add(this.personId)})` : '';
    // A Binary is the content of an attachment (DocumentReference.content, DiagnosticReport.presentedForm).
    const binaries =
      `SELECT substring(u #>> '{}' from '(?:^|/)Binary/([A-Za-z0-9.-]{1,64})$') FROM resource d ` +
      `CROSS JOIN LATERAL jsonb_path_query(d.content::jsonb, 'lax $.**.url') u ` +
      `WHERE d.resource_type IN ('DocumentReference', 'DiagnosticReport') AND NOT d.deleted ` +
      `AND ${this.linked('d', cases)} AND ${this.reportGate('d', cases)}`;
    return (
      `((${this.linked(alias, cases)}${own} OR (${alias}.resource_type = 'Binary' AND ${alias}.id IN (${binaries}))) ` +
      `AND ${this.reportGate(alias, cases)})`
    );
  }
}

/** The access control of a request's identity; undefined (no filtering) for clients and anonymous requests. */
export function accessControlFor(identity: Identity | undefined): AccessControl | undefined {
  return identity?.kind === 'user' ? new AccessControl(identity.role, identity.fhirUser) : undefined;
}
