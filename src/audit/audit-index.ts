/**
 * The search index rows of an AuditEvent the hub built, computed directly from its known shape. The
 * generic indexer (fhir/indexer.ts) evaluates every AuditEvent search parameter's FHIRPath, about
 * 0.18 ms per event: at the benchmark's read rate that alone was half a core of the hub's one thread.
 * The rows are those the generic indexer gives for the same parameters (audit-index.test.ts compares
 * them), but only for the parameters an auditor needs, because every row is an insert per audited
 * read (the 15% budget of issue 3): date, type, subtype, outcome, entity, patient, agent (a
 * reference: a person's FHIR resource) and agent:identifier (a client id or user id), plus _id and
 * _lastUpdated, which are columns. Not indexed: action (the subtype says it), altid, address,
 * entity-role, entity-type, the `:text` of codes, and the hub's own agent and `source`, which are
 * the same in every event.
 */
import type { AuditEvent, Coding, Reference } from '@medplum/fhirtypes';
import type { SearchIndexRows } from '../fhir/indexer.ts';
import { parseReference, withoutDuplicates } from '../fhir/indexer.ts';
import { DICOM } from './audit-event.ts';

/** The hub's own agent (Destination Role ID): the same in every event, so not indexed. */
const isHubAgent = (agent: NonNullable<AuditEvent['agent']>[number]): boolean =>
  agent.type?.coding?.[0]?.system === DICOM && agent.type.coding[0].code === '110152';

export function auditSearchIndex(event: AuditEvent): SearchIndexRows {
  const rows: SearchIndexRows = { token: [], string: [], reference: [], date: [], number: [], uri: [] };
  const coding = (param: string, c: Coding | undefined): void => {
    if (c?.code !== undefined) rows.token.push([param, c.system ?? null, c.code, null]);
  };
  const reference = (param: string, ref: Reference | undefined): void => {
    if (ref?.reference) {
      const { targetType, targetId } = parseReference(ref.reference);
      rows.reference.push([param, targetType, targetId, ref.reference]);
      if (targetType === 'Patient') rows.reference.push(['patient', targetType, targetId, ref.reference]);
    }
    if (ref?.identifier?.value !== undefined) rows.token.push([`${param}:identifier`, ref.identifier.system ?? null, ref.identifier.value, null]);
  };
  coding('type', event.type);
  for (const c of event.subtype ?? []) coding('subtype', c);
  if (event.outcome) rows.token.push(['outcome', null, event.outcome, null]);
  rows.date.push(['date', event.recorded, event.recorded]);
  for (const agent of event.agent ?? []) {
    if (!isHubAgent(agent)) reference('agent', agent.who);
  }
  for (const entity of event.entity ?? []) reference('entity', entity.what);
  return withoutDuplicates(rows);
}

