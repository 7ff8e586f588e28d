/**
 * What each role of a person may do on the FHIR store, as data (ACCESS_POLICY), and the one place
 * that turns it into the checks HubRepository applies below the routes (AccessControl): a SQL
 * condition for searches, history and _include (so paging and _total stay right), and a check of
 * one resource for reads and writes. System clients and anonymous requests have no AccessControl:
 * their scopes (fhir-scope-guard.ts) are all that applies to them.
 *
 * The model. A case is its ServiceRequest. Who belongs to it and what belongs to it is the hub's own
 * record (tables case_member, case_resource and case_release), written by each resource write in the
 * write's own statement from what the write passed its checks with (auth/case-links.ts; a person's
 * write can only link what they may read, auth/reference-claims.ts). A person sees a resource when
 * it belongs to a case they are a member of in the role their policy's `cases` rule names:
 *  - `referred`: the case's referring physician (ServiceRequest.requester: their Practitioner, or a
 *    PractitionerRole of it);
 *  - `own`: the case's patient (ServiceRequest.subject), who also sees their own Patient without a
 *    case, and the case's reports (every DiagnosticReport and Composition, a reviewer's
 *    DocumentReference, the consultation report's, and their Binaries: case_resource.held) only
 *    once a Task of the case is in `report-accessed`;
 *  - `assigned`: a reviewer, the owner of a Task of the case that the hub, a coordinator, an admin or
 *    a system client assigned;
 *  - `all`: every case (and every resource: no condition at all).
 * docs/access.md has the table of roles, resources and interactions and how membership is decided.
 */
import { OperationOutcomeError, forbidden, notFound } from '@medplum/core';
import type { Identity } from './access-tokens.ts';
import type { UserRole } from './users.ts';
import { AUTHOR_ROLES, CASE_RESOURCE_SYSTEM, CONSULTATION_NOTE, DRAFT_STATUSES, LOINC } from './case-links.ts';
import type { MemberRole } from './case-links.ts';

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
  /**
   * `into-case`: the role may store DICOM instances (STOW-RS) without ImagingStudy create, into one of
   * its cases that the request names (routes/dicomweb/stow-case.ts): a referring physician sending
   * the studies of a patient's CD. The study is that case's from its first instance.
   */
  storeStudies?: 'into-case';
}

const EVERYTHING = { read: 'all', search: 'all', history: 'all', create: 'all', update: 'all', delete: 'all' } as const;
const SEE_CASE = { read: 'case', search: 'case', history: 'case' } as const;
const WRITE_CASE = { ...SEE_CASE, create: 'case', update: 'case' } as const;
/** The roster and terminology every person may read (who the specialists are, code systems). */
const REFERENCE_DATA = { read: 'all', search: 'all' } as const;
const REFERENCE_TYPES = [
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'HealthcareService',
  'Questionnaire',
  'CodeSystem',
  'ValueSet',
];
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
    Composition: WRITE_CASE,
    Observation: WRITE_CASE,
    QuestionnaireResponse: SEE_CASE,
    Communication: WRITE_CASE,
  },
};

/** The policy of each role (docs/access.md has the table of roles and resources). */
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
      Composition: SEE_CASE,
      QuestionnaireResponse: WRITE_CASE,
      Communication: WRITE_CASE,
      Consent: WRITE_CASE,
    },
    storeStudies: 'into-case',
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
      Composition: SEE_CASE,
      QuestionnaireResponse: WRITE_CASE,
      Communication: WRITE_CASE,
      Consent: SEE_CASE,
    },
  },
};

/** The membership (case_member.role, written by auth/case-links.ts) each case rule reads. */
const MEMBER_ROLE: Readonly<Record<Exclude<CaseRule, 'all'>, MemberRole>> = {
  referred: 'referring-physician',
  own: 'patient',
  assigned: 'reviewer',
};
const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
/** The pre-review Task (urn:hub:task-code) each reviewing role does before the specialist (docs/case-workflow.md). */
const PRE_REVIEW_TASK_CODE: Partial<Record<UserRole, string>> = {
  radiologist: 'pre-review-radiology',
  pathologist: 'pre-review-pathology',
};

/** Adds a bind value and returns its placeholder (SqlParams of the search builder has this shape). */
export interface SqlBinder {
  add(value: unknown): string;
}

function notAllowed(interaction: AccessInteraction, resourceType: string): OperationOutcomeError {
  return new OperationOutcomeError({
    ...forbidden,
    issue: [
      {
        severity: 'error',
        code: 'forbidden',
        details: { text: `Your role may not ${interaction} ${resourceType} resources` },
      },
    ],
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

  /**
   * True when the person may write a consultation report that is not a draft (a final or amended
   * DiagnosticReport or Composition, the letter's DocumentReference): the staff. A reviewer's opinion
   * becomes final only through its approval.
   */
  mayPublishReports(): boolean {
    return this.policy.cases === 'all';
  }

  /** `Practitioner/<id>` of a referring physician, whose first reading of a released report releases it to the patient. */
  referringPhysician(): string | null {
    return this.policy.cases === 'referred' ? this.practitioner() : null;
  }

  /**
   * A radiologist's or pathologist's Practitioner and the code of the pre-review Tasks (urn:hub:task-code)
   * they do: the report of such a Task is the one report a reviewer writes as final. Null for other roles.
   */
  preReviewer(): { practitioner: string; taskCode: string } | null {
    const taskCode = PRE_REVIEW_TASK_CODE[this.role];
    const practitioner = this.practitioner();
    return taskCode !== undefined && practitioner !== null ? { practitioner, taskCode } : null;
  }

  /** `Practitioner/<id>` of a person whose cases are reached through their Practitioner; null otherwise. */
  private practitioner(): string | null {
    return this.policy.cases !== 'own' && this.personId !== null ? `Practitioner/${this.personId}` : null;
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
    if (scope) {
      return scope;
    }
    if (interaction === 'read') {
      throw new OperationOutcomeError(notFound);
    }
    throw notAllowed(interaction, resourceType);
  }

  /**
   * A condition on a `resource` row (alias) that holds for the rows the person may see with
   * `interaction`; `types` are the types the query can return (undefined: any). `TRUE` when no
   * condition applies.
   */
  condition(binder: SqlBinder, alias: string, interaction: AccessInteraction, types?: readonly string[]): string {
    if (this.policy.cases === 'all' && this.policy.resources['*']?.[interaction] === 'all') {
      return 'TRUE';
    }
    const everyType = Object.keys(this.policy.resources).filter(
      (type) => type !== '*' && this.scopeOf(type, interaction) === 'all',
    );
    const caseTypes = Object.keys(this.policy.resources).filter(
      (type) => type !== '*' && this.scopeOf(type, interaction) === 'case',
    );
    const relevant = (list: string[]): string[] => (types ? list.filter((type) => types.includes(type)) : list);
    const parts: string[] = [];
    const open = relevant(everyType);
    if (open.length > 0) {
      parts.push(`${alias}.resource_type = ANY(${binder.add(open)}::text[])`);
    }
    const inCase = relevant(caseTypes);
    if (inCase.length > 0) {
      const typeTest =
        types && types.length === 1 ? 'TRUE' : `${alias}.resource_type = ANY(${binder.add(inCase)}::text[])`;
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
    if (scope === 'all') {
      return 'TRUE';
    }
    if (scope !== 'case') {
      return 'FALSE';
    }
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

  /**
   * STOW-RS naming one of the person's cases (`?case=`): true for the roles that may store studies at
   * all, and for those whose policy stores `into-case`; which cases are theirs is memberCases.
   */
  mayStoreStudiesIntoCase(): boolean {
    return this.mayStoreStudies() || this.policy.storeStudies === 'into-case';
  }

  /**
   * A condition on a `resource_version` row (alias) for vread and history, beside the resource's
   * current visibility: the version itself belonged to one of the person's cases, by the links its
   * own content made (a ServiceRequest is its case; references to a ServiceRequest; the hub's case
   * identifiers), so a resource moved between cases does not show its earlier case's versions. A
   * Patient or a Binary belongs to cases through other resources, so their current visibility
   * decides; a deletion carries no content.
   */
  versionCondition(binder: SqlBinder, alias: string): string {
    if (this.policy.cases === 'all') {
      return 'TRUE';
    }
    const versionCases =
      `SELECT ${alias}.id AS case_id WHERE ${alias}.resource_type = 'ServiceRequest' ` +
      `UNION ALL SELECT substring(u #>> '{}' from '(?:^|/)ServiceRequest/([A-Za-z0-9.-]{1,64})$') ` +
      `FROM jsonb_path_query(${alias}.content::jsonb, 'lax $.**.reference') u ` +
      `UNION ALL SELECT split_part(i ->> 'value', '/', 1) ` +
      `FROM jsonb_path_query(${alias}.content::jsonb, 'lax $.identifier[*] ? (@.system == "${CASE_RESOURCE_SYSTEM}")') i`;
    // A version that was a draft of the opinion (or any draft report a reviewer wrote) is shown to
    // the draft's author while it is one (the current version still a draft of theirs), never to the
    // case's other members.
    const byReviewer = `split_part(${alias}.content::jsonb #>> '{meta,source}', ':', 4) IN (${sqlList([...AUTHOR_ROLES])})`;
    const draftVersion =
      `((${alias}.resource_type = 'DiagnosticReport' AND ${alias}.content::jsonb ->> 'status' IN (${sqlList(DRAFT_STATUSES.DiagnosticReport)}) ` +
      `AND (${byReviewer} OR jsonb_path_exists(${alias}.content::jsonb, 'lax $.code.coding[*] ? (@.system == "${LOINC}" && @.code == "${CONSULTATION_NOTE}")'))) ` +
      `OR (${alias}.resource_type = 'Composition' AND ${alias}.content::jsonb ->> 'status' IN (${sqlList(DRAFT_STATUSES.Composition)}) ` +
      `AND (${byReviewer} OR jsonb_path_exists(${alias}.content::jsonb, 'lax $.type.coding[*] ? (@.system == "${LOINC}" && @.code == "${CONSULTATION_NOTE}")'))))`;
    const ownDraft =
      `EXISTS (SELECT 1 FROM case_resource cd WHERE cd.resource_type = ${alias}.resource_type AND cd.resource_id = ${alias}.id ` +
      `AND cd.draft_author = ${binder.add(this.practitioner())})`;
    return (
      `(${alias}.resource_type IN ('Patient', 'Binary') OR ${alias}.content IS NULL OR ` +
      `EXISTS (SELECT 1 FROM (${versionCases}) vc WHERE vc.case_id IN (${this.cases(binder)}))) ` +
      `AND (${alias}.content IS NULL OR NOT ${draftVersion} OR ${ownDraft})`
    );
  }

  /** The membership role (case_member.role) through which the policy's `cases` rule reaches a case. */
  private memberRole(): MemberRole | undefined {
    return this.policy.cases === 'all' ? undefined : MEMBER_ROLE[this.policy.cases];
  }

  /**
   * A condition on a `case_member` row (alias) that it is the person's: their Practitioner or
   * Patient (a PractitionerRole member is recorded for its Practitioner too), in the role their
   * policy reads.
   */
  private isMine(binder: SqlBinder, alias: string): string {
    const type = this.policy.cases === 'own' ? 'Patient' : 'Practitioner';
    const me = `${alias}.member = ${binder.add(this.personId === null ? null : `${type}/${this.personId}`)}`;
    // A referring physician's organisations (of their PractitionerRoles, which only staff and
    // system clients write) are members of the cases they referred.
    const organisations =
      this.policy.cases === 'referred'
        ? ` OR ${alias}.member IN (SELECT 'Organization/' || o.target_id FROM sp_reference p JOIN sp_reference o ` +
          `ON o.resource_type = 'PractitionerRole' AND o.resource_id = p.resource_id AND o.param = 'organization' AND o.target_type = 'Organization' ` +
          `WHERE p.resource_type = 'PractitionerRole' AND p.param = 'practitioner' AND p.target_type = 'Practitioner' AND p.target_id = ${binder.add(this.personId)})`
        : '';
    return `(${me}${organisations}) AND ${alias}.role = ${binder.add(this.memberRole())}`;
  }

  /**
   * The ids of the cases the person reaches (through their Practitioner, Patient or, for a referring
   * physician, an organisation they work for), as a subquery for a condition on a case id.
   */
  memberCases(binder: SqlBinder): string {
    return this.cases(binder);
  }

  /** The person's case ServiceRequest ids, as a subquery over the hub's membership record. */
  private cases(binder: SqlBinder): string {
    if (this.policy.cases === 'all') {
      return `SELECT id FROM resource WHERE resource_type = 'ServiceRequest' AND NOT deleted`;
    }
    return `SELECT m.case_id FROM case_member m WHERE ${this.isMine(binder, 'm')}`;
  }

  /**
   * `alias` belongs to one of the person's cases by the hub's record (case_resource); for the patient
   * role a report held until release (case_resource.held: every DiagnosticReport and Composition, the
   * consultation report's DocumentReference, a reviewer's, and their Binaries) only once its case is
   * released, and their own Patient even before they have a case.
   */
  private visibleInCase(binder: SqlBinder, alias: string): string {
    const released =
      this.policy.cases === 'own'
        ? ' AND (NOT cr.held OR EXISTS (SELECT 1 FROM case_release rel WHERE rel.case_id = cr.case_id))'
        : '';
    // A draft of the opinion is its author's (and the staff's) until it is approved.
    const notAnothersDraft = ` AND (cr.draft_author IS NULL OR cr.draft_author = ${binder.add(this.practitioner())})`;
    const own =
      this.policy.cases === 'own'
        ? ` OR (${alias}.resource_type = 'Patient' AND ${alias}.id = ${binder.add(this.personId)})`
        : '';
    return (
      `(EXISTS (SELECT 1 FROM case_resource cr JOIN case_member m ON m.case_id = cr.case_id ` +
      `WHERE cr.resource_type = ${alias}.resource_type AND cr.resource_id = ${alias}.id AND ${this.isMine(binder, 'm')}${released}${notAnothersDraft})${own})`
    );
  }
}

/** Fixed codes (never client input) as an SQL list of literals. */
function sqlList(values: readonly string[] | undefined): string {
  return (values ?? []).map((value) => `'${value.replace(/'/g, "''")}'`).join(', ');
}

/** The access control of a request's identity; undefined (no filtering) for clients and anonymous requests. */
export function accessControlFor(identity: Identity | undefined): AccessControl | undefined {
  return identity?.kind === 'user' ? new AccessControl(identity.role, identity.fhirUser) : undefined;
}
