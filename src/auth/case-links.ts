/**
 * What one resource write contributes to the hub's record of case membership (migration 012): the
 * cases the resource belongs to, who belongs to a case, and which cases' reports are released.
 * Pure: derived from the resource, its search index rows and who wrote it. The write statement
 * (src/fhir/write.ts) replaces the rows the resource contributed before with these, after the
 * write passed its checks (auth/reference-claims.ts: a person can only link what they may read).
 *
 * - A ServiceRequest is its own case; its subject Patient, and the QuestionnaireResponses (the
 *   physician's questions) its supportingInfo names, belong to it; its requester
 *   (Practitioner, PractitionerRole or Organization) is the case's referring physician, with the
 *   practitioner and organisation a requesting PractitionerRole names (src/fhir/write.ts), and its
 *   subject the case's patient.
 * - Any other resource belongs to the cases it references by ServiceRequest, or names in a hub
 *   `urn:hub:case-resource` identifier (`<ServiceRequest id>/…`, written by the hub only).
 * - The Binary an attachment names (a DocumentReference's, a DiagnosticReport's presentedForm, a
 *   Communication's payload, any other) belongs to that resource's cases, and is held or released
 *   with it; a consultation report (LOINC 11488-4) and its Binary are marked `report`.
 * - What the patient sees only once the case is released is marked `held`: every DiagnosticReport
 *   and Composition (whatever its code: a report coded otherwise is no less a report), a
 *   DocumentReference a reviewer wrote or coded 11488-4, the Binaries they name, and a reviewer's
 *   Communication.
 * - The owner of a Task becomes a reviewer of the Task's cases only when the hub, a coordinator, an
 *   admin or a system client wrote that owner: a reviewer cannot make themselves a member. A Task
 *   another person writes leaves the memberships it gave unchanged.
 * - A coordinator's explicit act: a Task coded `case-access` (urn:hub:task-code) whose owner is the
 *   person (Practitioner, PractitionerRole or Patient) and whose input `urn:hub:case-access-role`
 *   names the role makes them a member of the Task's cases while the Task is open; cancelling or
 *   deleting it ends the membership. Only the hub, coordinators, admins and system clients' Tasks
 *   count, as for any owner.
 * - A Task in `report-accessed` releases the consultation report of the cases it is based on.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { SearchIndexRows } from '../db/index-rows.ts';
import { actorOf } from './actor.ts';

export const CASE_RESOURCE_SYSTEM = 'urn:hub:case-resource';
/**
 * First segments of `urn:hub:case-resource` identifiers that name no case (the reconciliation Tasks
 * of unmatched studies are filed under `reconcile-imaging/…`): no ServiceRequest may take these ids.
 */
export const RESERVED_CASE_IDS: readonly string[] = ['reconcile-imaging'];
const CASE_STATE_SYSTEM = 'urn:hub:case-state';
export const LOINC = 'http://loinc.org';
/** LOINC 11488-4 Consultation note: the code of the opinion's report, letter and document. */
export const CONSULTATION_NOTE = '11488-4';
const LOCAL_REFERENCE = /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
const BINARY_URL = /^Binary\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * `Type/id` of a reference to this hub (relative, or absolute under `fhirBase`); undefined for any
 * other (another server's URL, a urn:uuid, a contained `#id`). The one rule by which a link counts,
 * for the claims a write makes (reference-claims.ts) and for the membership it records (below).
 */
export function localTarget(reference: string, fhirBase: string): { resourceType: string; id: string } | undefined {
  const relative = reference.startsWith(`${fhirBase}/`) ? reference.slice(fhirBase.length + 1) : reference;
  const [, resourceType, id] = LOCAL_REFERENCE.exec(relative) ?? [];
  return resourceType !== undefined && id !== undefined ? { resourceType, id } : undefined;
}

/** The id of the Binary of this hub an attachment URL names, if it names one. */
export function binaryOfUrl(url: string, fhirBase: string): string | undefined {
  const relative = url.startsWith(`${fhirBase}/`) ? url.slice(fhirBase.length + 1) : url;
  return BINARY_URL.exec(relative)?.[1];
}

/** Roles a membership gives, as the policies' `cases` rules read them (access-policy.ts). */
export type MemberRole = 'referring-physician' | 'patient' | 'reviewer';

/** Writers whose Task owners the hub takes as an assignment. */
const ASSIGNING_ROLES = new Set(['coordinator', 'admin', 'ehr']);
const TASK_CODE_SYSTEM = 'urn:hub:task-code';
export const CASE_ACCESS_ROLE_SYSTEM = 'urn:hub:case-access-role';
const MEMBER_ROLES: readonly MemberRole[] = ['referring-physician', 'patient', 'reviewer'];
/** A `case-access` Task in one of these gives no membership. */
const CLOSED_TASK_STATUSES = new Set(['cancelled', 'rejected', 'failed', 'completed', 'entered-in-error']);

interface TaskFields {
  status?: string;
  code?: { coding?: { system?: string; code?: string }[] };
  input?: { type?: { coding?: { system?: string; code?: string }[] }; valueCode?: string }[];
}

/** The memberships a trusted writer's Task gives: its owner, as a reviewer or (a `case-access` Task) in the role it names. */
function taskMembers(
  task: TaskFields,
  references: (param: string, targetType: string) => string[],
  cases: Set<string>,
): [string, string, MemberRole][] {
  const grant = (member: string, role: MemberRole): [string, string, MemberRole][] =>
    [...cases].map((caseId) => [caseId, member, role]);
  const isAccessTask =
    task.code?.coding?.some((coding) => coding.system === TASK_CODE_SYSTEM && coding.code === 'case-access') === true;
  if (!isAccessTask) {
    return references('owner', 'Practitioner').flatMap((id) => grant(`Practitioner/${id}`, 'reviewer'));
  }
  if (CLOSED_TASK_STATUSES.has(task.status ?? '')) {
    return [];
  }
  const roles = (task.input ?? [])
    .filter((input) => input.type?.coding?.some((coding) => coding.system === CASE_ACCESS_ROLE_SYSTEM))
    .map((input) => input.valueCode)
    .filter((role): role is MemberRole => MEMBER_ROLES.includes(role as MemberRole));
  const owners = ['Practitioner', 'PractitionerRole', 'Patient'].flatMap((type) =>
    references('owner', type).map((id) => `${type}/${id}`),
  );
  return owners.flatMap((owner) => roles.flatMap((role) => grant(owner, role)));
}

export interface CaseLinkRows {
  /** [resource type, resource id, case id, report, draft author (null: not a draft), held until release] */
  resources: [string, string, string, boolean, string | null, boolean][];
  /** [case id, member reference, role]; undefined: leave the memberships the resource gave as they are. */
  members?: [string, string, MemberRole][];
  /** Cases whose report the resource releases; undefined for a type that never releases one. */
  releases?: string[];
}

/**
 * Every URL in the resource that names a Binary of this hub, with where it is: the `url` of an
 * Attachment (a DocumentReference's content, a DiagnosticReport's presentedForm, a Communication's
 * payload…), never an Extension's `url` (an element of `extension` or `modifierExtension`, or an
 * object with a `value[x]`) and nothing under `meta`, which the hub keeps. The one walk both the
 * write's claims (reference-claims.ts: the writer must be able to read each) and the case links
 * below use, so that no link is recorded that the claims did not check.
 */
export function binaryUrlsOf(resource: Resource, fhirBase: string): { id: string; path: string }[] {
  const found: { id: string; path: string }[] = [];
  const visit = (value: unknown, path: string, inExtensions: boolean): void => {
    if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, `${path}[${index}]`, inExtensions));
      return;
    }
    if (value === null || typeof value !== 'object') {
      return;
    }
    const node = value as Record<string, unknown>;
    const isExtension = inExtensions || Object.keys(node).some((key) => /^value[A-Z]/.test(key));
    if (!isExtension && typeof node.url === 'string') {
      const id = binaryOfUrl(node.url, fhirBase);
      if (id) {
        found.push({ id, path: `${path}.url` });
      }
    }
    for (const [key, child] of Object.entries(node)) {
      if (key === 'meta' || key === 'url') {
        continue;
      }
      visit(child, `${path}.${key}`, key === 'extension' || key === 'modifierExtension');
    }
  };
  visit(resource, resource.resourceType, false);
  return found;
}

function attachmentBinaries(resource: Resource, fhirBase: string): string[] {
  return [...new Set(binaryUrlsOf(resource, fhirBase).map((url) => url.id))];
}

/** The consultation report's resources: the DiagnosticReport, the letter's Composition, its DocumentReference. */
const REPORT_CODE_PARAM: Readonly<Record<string, string>> = {
  DiagnosticReport: 'code',
  Composition: 'type',
  DocumentReference: 'type',
};

/** Statuses of a report that is still being written (DiagnosticReport and Composition status). */
export const DRAFT_STATUSES: Readonly<Record<string, readonly string[]>> = {
  DiagnosticReport: ['registered', 'partial', 'preliminary'],
  Composition: ['preliminary'],
};

/** The roles that write opinions; a draft is theirs alone (with the staff) until it is approved. */
export const AUTHOR_ROLES: ReadonlySet<string> = new Set(['specialist', 'radiologist', 'pathologist']);

/** Who sees a draft besides the staff when no author can be named. */
export const STAFF_ONLY_DRAFT = 'staff';

/** True for a DiagnosticReport, Composition or DocumentReference coded LOINC 11488-4 (Consultation note). */
export function isConsultationReport(type: string, index: SearchIndexRows): boolean {
  const param = REPORT_CODE_PARAM[type];
  return (
    param !== undefined &&
    index.token.some(([p, system, value]) => p === param && system === LOINC && value === CONSULTATION_NOTE)
  );
}

/** True while a DiagnosticReport or Composition is a draft (by its status). */
export function isDraft(type: string, index: SearchIndexRows): boolean {
  const statuses = DRAFT_STATUSES[type];
  return (
    statuses !== undefined &&
    index.token.some(([param, , value]) => param === 'status' && value !== null && statuses.includes(value))
  );
}

/**
 * The author a draft is shown to: the reviewer who wrote this version (what they wrote in the
 * resource does not matter), or, for a version the staff, a system client or the hub wrote, the
 * Practitioner the resource names as its interpreter or author; `staff` when it names none.
 */
function draftAuthorOf(resource: Resource, actor: string | undefined, fhirBase: string): string {
  const writer = actorOf(actor);
  if (writer && AUTHOR_ROLES.has(writer.role)) {
    return `Practitioner/${writer.id}`;
  }
  const named =
    resource.resourceType === 'DiagnosticReport'
      ? resource.resultsInterpreter?.[0]?.reference
      : resource.resourceType === 'Composition'
        ? resource.author[0]?.reference
        : undefined;
  const target = named === undefined ? undefined : localTarget(named, fhirBase);
  return target?.resourceType === 'Practitioner' ? `Practitioner/${target.id}` : STAFF_ONLY_DRAFT;
}

/**
 * The rows a version of `resource` contributes; `actor` is the writer the hub stamped (meta.source),
 * `fhirBase` the hub's FHIR base URL (references under it are its own).
 */
export function caseLinksOf(
  resource: Resource & { id: string },
  index: SearchIndexRows,
  actor: string | undefined,
  fhirBase: string,
): CaseLinkRows {
  const type = resource.resourceType;
  // The index also parses other servers' URLs into a type and id: only references to this hub link.
  const references = (param: string | undefined, targetType: string): string[] =>
    index.reference.flatMap(([p, , , reference]) => {
      const target = param === undefined || p === param ? localTarget(reference, fhirBase) : undefined;
      return target?.resourceType === targetType ? [target.id] : [];
    });
  const cases = new Set<string>(references(undefined, 'ServiceRequest'));
  if (type === 'ServiceRequest') {
    cases.add(resource.id);
  }
  for (const [param, system, value] of index.token) {
    if (param === 'identifier' && system === CASE_RESOURCE_SYSTEM && value) {
      const caseId = value.split('/')[0];
      if (caseId && !RESERVED_CASE_IDS.includes(caseId)) {
        cases.add(caseId);
      }
    }
  }
  const report = isConsultationReport(type, index);
  const writer = actorOf(actor);
  const byReviewer = writer !== undefined && AUTHOR_ROLES.has(writer.role);
  // A reviewer's draft is theirs whatever its code; a draft another writer sends (an EHR's
  // preliminary result) is material, unless it is the consultation report.
  const draftAuthor = (report || byReviewer) && isDraft(type, index) ? draftAuthorOf(resource, actor, fhirBase) : null;
  // A reviewer's message could carry the opinion before its approval: it too reaches the patient
  // only with the opinion (the physician reads it at once).
  const held =
    report ||
    type === 'DiagnosticReport' ||
    type === 'Composition' ||
    ((type === 'DocumentReference' || type === 'Communication') && byReviewer);

  const rows: CaseLinkRows = {
    resources: [...cases].map((caseId) => [type, resource.id, caseId, report, draftAuthor, held]),
  };
  if (type !== 'Binary') {
    for (const binaryId of attachmentBinaries(resource, fhirBase)) {
      for (const caseId of cases) {
        rows.resources.push(['Binary', binaryId, caseId, report, draftAuthor, held]);
      }
    }
  }
  if (type === 'ServiceRequest') {
    const members: [string, string, MemberRole][] = [];
    for (const patientId of references('subject', 'Patient')) {
      rows.resources.push(['Patient', patientId, resource.id, false, null, false]);
      members.push([resource.id, `Patient/${patientId}`, 'patient']);
    }
    // The physician's questions (shared/fhir-model.md) name no case themselves: the request's
    // supportingInfo makes them its case's, for the specialist who answers them. No search
    // parameter indexes supportingInfo, so it is read from the resource.
    const supportingInfo = resource.resourceType === 'ServiceRequest' ? resource.supportingInfo : undefined;
    for (const info of supportingInfo ?? []) {
      const target = info.reference === undefined ? undefined : localTarget(info.reference, fhirBase);
      if (target?.resourceType === 'QuestionnaireResponse') {
        rows.resources.push(['QuestionnaireResponse', target.id, resource.id, false, null, false]);
      }
    }
    for (const targetType of ['Practitioner', 'PractitionerRole', 'Organization']) {
      for (const id of references('requester', targetType)) {
        members.push([resource.id, `${targetType}/${id}`, 'referring-physician']);
      }
    }
    rows.members = members;
  }
  if (type === 'Task') {
    if (!writer || ASSIGNING_ROLES.has(writer.role)) {
      rows.members = taskMembers(resource, references, cases);
    }
    const released = index.token.some(
      ([param, system, value]) =>
        param === 'business-status' && system === CASE_STATE_SYSTEM && value === 'report-accessed',
    );
    // Only the hub (moving the case when the physician has read the report) or the staff release a
    // report to the patient; a person's own write of the state releases nothing before the job checks it.
    const mayRelease = !writer || writer.role === 'coordinator' || writer.role === 'admin';
    rows.releases = released && mayRelease ? references('based-on', 'ServiceRequest') : [];
  }
  return rows;
}
