/**
 * The search columns of an AuditEvent in the audit store (table audit_event, migration 010),
 * computed directly from the shape the hub gives its events, not through the generic indexer's
 * FHIRPath (about 0.18 ms per event: at the benchmark's read rate, half a core). They hold what the
 * AuditEvent search parameters compare (R4 AuditEvent): `date` (recorded), `type`, `subtype`,
 * `action`, `outcome`, `patient` (agent.who and entity.what that are Patients), `agent` (agent.who),
 * `agent:identifier` and `entity` (entity.what). The hub's own agent (Destination Role ID) is the
 * same in every event and is left out; audit-columns.test.ts checks the columns against the
 * generic indexer's rows for the same parameters.
 */
import type { AuditEvent, Coding } from '@medplum/fhirtypes';
import { parseReference } from '../db/index-rows.ts';
import { DICOM } from './audit-event.ts';

export interface AuditColumns {
  recorded: string;
  /** `system|code`, `|code` without a system. */
  type: string | null;
  subtype: string[];
  action: string | null;
  outcome: string | null;
  /** References as localReference gives them. */
  patient: string[];
  agent: string[];
  /** `system|value` of agent.who.identifier. */
  agentIdentifier: string[];
  entity: string[];
}

/**
 * The stored and searched form of a reference: `Type/id` for a relative one (without `_history`),
 * anything absolute (a URL, a urn) as written.
 */
export function localReference(reference: string): string {
  if (reference.includes(':')) {
    return reference;
  }
  const { targetType, targetId } = parseReference(reference);
  return targetType !== null ? `${targetType}/${targetId}` : reference;
}

/** A coding as its token column value, or undefined without a code. */
export function tokenOf(coding: Coding | undefined): string | undefined {
  return coding?.code === undefined ? undefined : `${coding.system ?? ''}|${coding.code}`;
}

const isHubAgent = (agent: NonNullable<AuditEvent['agent']>[number]): boolean =>
  agent.type?.coding?.[0]?.system === DICOM && agent.type.coding[0].code === '110152';

const unique = (values: string[]): string[] => (values.length < 2 ? values : [...new Set(values)]);

export function auditColumns(event: AuditEvent): AuditColumns {
  const agent: string[] = [];
  const agentIdentifier: string[] = [];
  const entity: string[] = [];
  const patient: string[] = [];
  const noteReference = (list: string[], reference: string | undefined): void => {
    if (!reference) {
      return;
    }
    const local = localReference(reference);
    list.push(local);
    if (local.startsWith('Patient/')) {
      patient.push(local);
    }
  };
  for (const participant of event.agent ?? []) {
    if (isHubAgent(participant)) {
      continue;
    }
    noteReference(agent, participant.who?.reference);
    const identifier = participant.who?.identifier;
    if (identifier?.value !== undefined) {
      agentIdentifier.push(`${identifier.system ?? ''}|${identifier.value}`);
    }
  }
  for (const item of event.entity ?? []) {
    noteReference(entity, item.what?.reference);
  }
  const subtype: string[] = [];
  for (const coding of event.subtype ?? []) {
    const token = tokenOf(coding);
    if (token !== undefined) {
      subtype.push(token);
    }
  }
  return {
    recorded: event.recorded,
    type: tokenOf(event.type) ?? null,
    subtype: unique(subtype),
    action: event.action ?? null,
    outcome: event.outcome ?? null,
    patient: unique(patient),
    agent: unique(agent),
    agentIdentifier: unique(agentIdentifier),
    entity: unique(entity),
  };
}
