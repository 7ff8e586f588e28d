/**
 * The case's history in words: what each resource is to the case, what a version changed from the one
 * before, who a version's writer or an AuditEvent's agent was, and what a Provenance attests.
 */
import type { AuditEvent, Provenance, Resource, Task } from '@medplum/fhirtypes';
import { stateLabel } from '../case-states.ts';
import { caseStateOf } from '../format.ts';
import { taskCodeOf } from './Tasks-data.ts';

/** Names of people by reference (`Practitioner/…`, `Patient/…`); undefined when unknown. */
export type Names = (reference: string) => string | undefined;

const TASK_LABELS: Record<string, string> = {
  coordination: 'The case',
  'expect-material': 'Expected material',
  'reconcile-imaging': 'Imaging reconciliation',
  'pre-review-radiology': 'Radiology pre-review',
  'pre-review-pathology': 'Pathology pre-review',
  'specialist-opinion': 'Specialist’s opinion',
  approve: 'Approval of the report',
  'case-access': 'Access to the case',
};
const TYPE_LABELS: Record<string, string> = {
  ServiceRequest: 'The request',
  QuestionnaireResponse: 'The questions',
  DiagnosticReport: 'The report',
  Composition: 'The letter',
  DocumentReference: 'A document',
  Communication: 'A message',
  Binary: 'A file',
  Patient: 'The patient',
};
const ROLE_WORDS: Record<string, string> = {
  coordinator: 'coordinator',
  admin: 'administrator',
  'referring-physician': 'referring physician',
  specialist: 'specialist',
  radiologist: 'radiologist',
  pathologist: 'pathologist',
  patient: 'patient',
};
const INTERACTION_WORDS: Record<string, string> = {
  read: 'read',
  vread: 'read a version of',
  'history-instance': 'read the history of',
  'history-type': 'read the history of',
  'search-type': 'searched',
  'search-system': 'searched',
  create: 'created',
  update: 'updated',
  patch: 'updated',
  delete: 'deleted',
  batch: 'sent a batch touching',
  transaction: 'sent a transaction touching',
  operation: 'ran an operation on',
};

/** What a resource is to the case, in words. */
export function resourceLabel(resource: Resource | undefined, reference: string): string {
  if (resource?.resourceType === 'Task') {
    return TASK_LABELS[taskCodeOf(resource) ?? ''] ?? 'A Task';
  }
  if (resource?.resourceType === 'DocumentReference' && resource.type?.coding?.some((c) => c.code === '11488-4')) {
    return 'The opinion letter (document)';
  }
  return TYPE_LABELS[reference.split('/')[0] ?? ''] ?? reference.split('/')[0] ?? 'A resource';
}

/** Who wrote a version, from its meta.source (`urn:hub:actor:<role>:<id>`; none: the hub's own jobs). */
export function writerWords(source: string | undefined, names: Names): string {
  const match = /^urn:hub:actor:([^:]+):(.+)$/.exec(source ?? '');
  if (match === null) {
    return 'the hub';
  }
  const [, role = '', id = ''] = match;
  if (role === 'ehr') {
    return `EHR client ${id}`;
  }
  const name = names(`${role === 'patient' ? 'Patient' : 'Practitioner'}/${id}`);
  return `${name ?? id} (${ROLE_WORDS[role] ?? role.replace(/-/g, ' ')})`;
}

/** The Practitioner and Patient references behind versions' writers, to look their names up. */
export function writerReference(source: string | undefined): string | undefined {
  const match = /^urn:hub:actor:([^:]+):(.+)$/.exec(source ?? '');
  if (match === null || match[1] === 'ehr') {
    return undefined;
  }
  return `${match[1] === 'patient' ? 'Patient' : 'Practitioner'}/${match[2] ?? ''}`;
}

const ownerWords = (task: Task, names: Names): string =>
  task.owner?.reference ? (names(task.owner.reference) ?? task.owner.reference) : 'nobody';
const reasonOf = (task: Task): string | undefined => task.statusReason?.text;

/** What a version changed from the previous one, in a few phrases; a first version was created. */
export function changeWords(version: Resource, previous: Resource | undefined, names: Names): string[] {
  const status = (resource: Resource | undefined) => (resource as { status?: string } | undefined)?.status;
  if (previous === undefined) {
    const state = version.resourceType === 'Task' ? caseStateOf(version) : undefined;
    const owner = version.resourceType === 'Task' && version.owner ? `, for ${ownerWords(version, names)}` : '';
    return [
      `created${state ? `: ${stateLabel(state)}` : status(version) ? ` (${status(version) ?? ''})` : ''}${owner}`,
    ];
  }
  const words: string[] = [];
  if (version.resourceType === 'Task' && previous.resourceType === 'Task') {
    const [before, after] = [caseStateOf(previous), caseStateOf(version)];
    if (before !== after && after !== undefined) {
      words.push(`state: ${before ? stateLabel(before) : '—'} → ${stateLabel(after)}`);
    }
  }
  if (status(previous) !== status(version)) {
    words.push(`status: ${status(previous) ?? '—'} → ${status(version) ?? '—'}`);
  }
  if (version.resourceType === 'Task' && previous.resourceType === 'Task') {
    if (version.owner?.reference !== previous.owner?.reference) {
      words.push(`owner: ${ownerWords(previous, names)} → ${ownerWords(version, names)}`);
    }
    if (reasonOf(version) !== reasonOf(previous) && reasonOf(version)) {
      words.push(`reason: ${reasonOf(version) ?? ''}`);
    }
    const added = (version.note ?? []).slice((previous.note ?? []).length);
    for (const note of added) {
      words.push(
        `note${note.authorString ? ` (${note.authorString})` : ''}: ${(note.text ?? '').split('\n')[0] ?? ''}`,
      );
    }
    if ((version.output ?? []).length > (previous.output ?? []).length) {
      words.push('output added');
    }
    if (version.priority !== previous.priority && version.priority) {
      words.push(`priority: ${version.priority}`);
    }
  }
  return words.length > 0 ? words : ['updated'];
}

/** An AuditEvent's requesting person, client or hub part, in words. */
export function auditAgentWords(event: AuditEvent, names: Names): string {
  const agents = event.agent ?? [];
  const person = agents.find((agent) => agent.type?.coding?.some((coding) => coding.code === 'UserOauthAgent'));
  const source = agents.find((agent) => agent.type?.coding?.some((coding) => coding.code === '110153'));
  const client = source?.altId;
  if (person) {
    const reference = person.who?.reference;
    const name = reference
      ? (names(reference) ?? reference)
      : `user ${person.altId ?? person.who?.identifier?.value ?? ''}`;
    return client ? `${name} (via ${client})` : name;
  }
  if (source?.who?.display?.startsWith('hub ')) {
    return `the hub (${source.who.display.slice(4)})`;
  }
  return client ? `client ${client}` : 'unknown';
}

/** The people an AuditEvent names, to look their names up. */
export function auditPeople(event: AuditEvent): string[] {
  return (event.agent ?? []).flatMap((agent) => (agent.who?.reference ? [agent.who.reference] : []));
}

/** What an AuditEvent records, in words ("read The report", "refused: update The case"). */
export function auditWords(event: AuditEvent, labelOf: (reference: string) => string): string {
  const interaction = event.subtype?.[0]?.code ?? '';
  const verb = INTERACTION_WORDS[interaction] ?? event.subtype?.[0]?.display ?? interaction;
  const targets = (event.entity ?? [])
    .map((entity) => entity.what?.reference)
    .filter((reference): reference is string => reference !== undefined && !reference.startsWith('Patient/'));
  const what = [...new Set(targets.map(labelOf))].join(', ');
  const done = `${verb}${what ? ` ${what}` : ''}`;
  return event.outcome && event.outcome !== '0'
    ? `refused (${event.outcome === '4' ? 'not allowed or not found' : 'failed'}): ${done}`
    : done;
}

/** What a Provenance attests: the approval's author and verifier. */
export function provenanceWords(provenance: Provenance, names: Names): string {
  const role = (code: string) =>
    (provenance.agent ?? [])
      .filter((agent) => agent.type?.coding?.some((coding) => coding.code === code))
      .map((agent) => (agent.who.reference ? (names(agent.who.reference) ?? agent.who.reference) : 'unknown'));
  const authors = role('author');
  const verifiers = role('verifier');
  const revision = (provenance.entity ?? []).some((entity) => entity.role === 'revision');
  return [
    revision ? 'amendment approved' : 'report approved and signed',
    authors.length > 0 ? `author ${authors.join(', ')}` : undefined,
    verifiers.length > 0 ? `verifier ${verifiers.join(', ')}` : undefined,
  ]
    .filter((part) => part !== undefined)
    .join('; ');
}
