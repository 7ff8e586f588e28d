/**
 * Everything that happened to a case, from the hub's public API with the person's token: every version
 * of the case's resources (its request and questions, its Tasks, the report, letter, documents and
 * messages; each version's writer is the hub's `meta.source`), and for the staff, who may read them
 * (docs/access.md), the Provenance of the opinion's approvals and the AuditEvents that name the case's
 * resources. The histories come in one batch. What the person may not see is simply not there.
 */
import type {
  AuditEvent,
  Bundle,
  Communication,
  DiagnosticReport,
  DocumentReference,
  Patient,
  Practitioner,
  Provenance,
  Resource,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { fhirGet, fhirRequest, searchEntries } from '../fhir.ts';
import { formatName, idOf } from '../format.ts';
import {
  auditAgentWords,
  auditPeople,
  auditWords,
  changeWords,
  provenanceWords,
  resourceLabel,
  writerReference,
  writerWords,
} from './Timeline-words.ts';
import type { Names } from './Timeline-words.ts';

const LETTER_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition';
/** Versions read per resource: a case's Task rarely has more; the newest are kept. */
const VERSIONS_PER_RESOURCE = 100;

export type TimelineKind = 'change' | 'approval' | 'refused' | 'access';

export interface TimelineEvent {
  key: string;
  at: string;
  kind: TimelineKind;
  subject: string;
  what: string;
  who: string;
}

export interface TimelineOptions {
  serviceRequest: ServiceRequest;
  coordination: Task | undefined;
  /** Staff: the approvals' Provenance and the AuditEvents too. */
  staff: boolean;
  /** Every read and search of the case's resources, not only the refused requests. */
  withReads: boolean;
}

const local = (resource: Resource): string => `${resource.resourceType}/${resource.id ?? ''}`;

async function search<T extends Resource>(path: string, type: T['resourceType']): Promise<T[]> {
  return searchEntries<T>(await fhirGet<Bundle>(path), type);
}

/** The case's resources the person may read, by reference. */
async function caseResources(options: TimelineOptions): Promise<Map<string, Resource>> {
  const { serviceRequest, coordination } = options;
  const sr = encodeURIComponent(`ServiceRequest/${serviceRequest.id ?? ''}`);
  const [tasks, reports, documents, messages] = await Promise.all([
    coordination?.id
      ? search<Task>(`Task?part-of=${encodeURIComponent(`Task/${coordination.id}`)}&_count=200`, 'Task')
      : [],
    search<DiagnosticReport>(`DiagnosticReport?based-on=${sr}&_count=100`, 'DiagnosticReport'),
    search<DocumentReference>(`DocumentReference?related=${sr}&_count=200`, 'DocumentReference'),
    search<Communication>(`Communication?based-on=${sr}&_count=200`, 'Communication'),
  ]);
  const found = new Map<string, Resource>();
  for (const resource of [serviceRequest, coordination, ...tasks, ...reports, ...documents, ...messages]) {
    if (resource?.id) {
      found.set(local(resource), resource);
    }
  }
  for (const reference of [
    ...(serviceRequest.supportingInfo ?? []).map((info) => info.reference),
    ...reports.map(
      (report) => report.extension?.find((extension) => extension.url === LETTER_EXTENSION)?.valueReference?.reference,
    ),
  ]) {
    if (
      reference &&
      /^(QuestionnaireResponse|Composition)\/[A-Za-z0-9\-.]{1,64}$/.test(reference) &&
      !found.has(reference)
    ) {
      found.set(reference, { resourceType: reference.split('/')[0], id: reference.split('/')[1] } as Resource);
    }
  }
  return found;
}

/** Every version of each resource, oldest first, in one batch (a resource the person may not read has none). */
async function histories(references: readonly string[]): Promise<Map<string, Resource[]>> {
  const answer = await fhirRequest<Bundle>('POST', '', {
    resourceType: 'Bundle',
    type: 'batch',
    entry: references.map((reference) => ({
      request: { method: 'GET', url: `${reference}/_history?_count=${VERSIONS_PER_RESOURCE}` },
    })),
  });
  const versions = new Map<string, Resource[]>();
  (answer.entry ?? []).forEach((entry, index) => {
    const reference = references[index];
    const bundle = entry.resource?.resourceType === 'Bundle' ? entry.resource : undefined;
    if (reference === undefined || bundle === undefined) {
      return;
    }
    const list = (bundle.entry ?? [])
      .map((item) => item.resource)
      .filter((resource): resource is Resource => resource !== undefined)
      .sort((a, b) => Number(a.meta?.versionId ?? 0) - Number(b.meta?.versionId ?? 0));
    versions.set(reference, list);
  });
  return versions;
}

/** Names of the people these references name, looked up in two searches. */
async function lookUpNames(references: Iterable<string>): Promise<Names> {
  const ids = { Practitioner: new Set<string>(), Patient: new Set<string>() };
  for (const reference of references) {
    const practitioner = idOf(reference, 'Practitioner');
    const patient = idOf(reference, 'Patient');
    if (practitioner) {
      ids.Practitioner.add(practitioner);
    }
    if (patient) {
      ids.Patient.add(patient);
    }
  }
  const lookUp = async <T extends Practitioner | Patient>(type: T['resourceType'], set: Set<string>) =>
    set.size === 0
      ? []
      : search<T>(`${type}?_id=${[...set].map(encodeURIComponent).join(',')}&_count=${set.size}`, type).catch(() => []);
  const people = [
    ...(await lookUp<Practitioner>('Practitioner', ids.Practitioner)),
    ...(await lookUp<Patient>('Patient', ids.Patient)),
  ];
  const names = new Map(people.map((person) => [local(person), formatName(person.name)]));
  return (reference) => names.get(reference) ?? undefined;
}

/** The case's timeline, oldest first. */
export async function loadTimeline(options: TimelineOptions): Promise<TimelineEvent[]> {
  const resources = await caseResources(options);
  const references = [...resources.keys()];
  const versions = await histories(references);
  const entities = encodeURIComponent(references.join(','));
  const [provenances, audits] = options.staff
    ? await Promise.all([
        search<Provenance>(`Provenance?target=${entities}&_count=100`, 'Provenance'),
        search<AuditEvent>(
          `AuditEvent?entity=${entities}&${options.withReads ? '' : 'outcome=4,8,12&'}_sort=-date&_count=200`,
          'AuditEvent',
        ),
      ])
    : [[], []];

  const people = new Set<string>();
  for (const list of versions.values()) {
    for (const version of list) {
      const writer = writerReference(version.meta?.source);
      if (writer) {
        people.add(writer);
      }
      const owner = version.resourceType === 'Task' ? version.owner?.reference : undefined;
      if (owner) {
        people.add(owner);
      }
    }
  }
  provenances.forEach((provenance) =>
    provenance.agent?.forEach((agent) => agent.who.reference && people.add(agent.who.reference)),
  );
  audits.forEach((event) => auditPeople(event).forEach((reference) => people.add(reference)));
  const names = await lookUpNames(people);
  const labelOf = (reference: string) => resourceLabel(resources.get(reference), reference);

  const events: TimelineEvent[] = [];
  for (const [reference, list] of versions) {
    list.forEach((version, index) => {
      events.push({
        key: `${reference}@${version.meta?.versionId ?? index}`,
        at: version.meta?.lastUpdated ?? '',
        kind: 'change',
        subject: resourceLabel(version, reference),
        what: changeWords(version, list[index - 1], names).join('; '),
        who: writerWords(version.meta?.source, names),
      });
    });
  }
  for (const provenance of provenances) {
    const verifier = provenance.agent?.find((agent) =>
      agent.type?.coding?.some((coding) => coding.code === 'verifier'),
    );
    events.push({
      key: local(provenance),
      at: provenance.recorded,
      kind: 'approval',
      subject: labelOf(provenance.target[0]?.reference ?? ''),
      what: provenanceWords(provenance, names),
      who: verifier?.who.reference ? (names(verifier.who.reference) ?? verifier.who.reference) : 'the hub',
    });
  }
  for (const event of audits) {
    const writeOk = ['C', 'U', 'D'].includes(event.action ?? '') && event.outcome === '0';
    // A successful write is its version already.
    if (writeOk) {
      continue;
    }
    events.push({
      key: local(event),
      at: event.recorded,
      kind: event.outcome === '0' ? 'access' : 'refused',
      subject: labelOf(
        (event.entity ?? []).find((entity) => resources.has(entity.what?.reference ?? ''))?.what?.reference ?? '',
      ),
      what: auditWords(event, labelOf),
      who: auditAgentWords(event, names),
    });
  }
  return events.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || a.key.localeCompare(b.key));
}
