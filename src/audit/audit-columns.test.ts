/**
 * The audit store's search columns hold what the generic indexer (FHIRPath over the R4 AuditEvent
 * search parameters) finds for the same parameters, in the store's forms, minus the hub's own agent.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { extractSearchIndex } from '../fhir/indexer.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { authenticationAuditEvent, restAuditEvent } from './audit-event.ts';
import { auditColumns, localReference } from './audit-columns.ts';

const site = { baseUrl: 'https://hub.example.org' };
const recorded = new Date('2026-01-02T03:04:05.678Z');

const events: AuditEvent[] = [
  restAuditEvent(site, {
    id: 'a1',
    recorded,
    actor: { userId: 'u1', fhirUser: 'Patient/p9', clientId: 'app', clientIsRequestor: false, address: '10.0.0.1' },
    outcome: '0',
    interaction: 'search-type',
    resources: [],
    patients: ['Patient/p1', 'Patient/p2'],
    query: 'subject=Patient/p1',
  }),
  restAuditEvent(site, {
    id: 'a2',
    recorded,
    actor: { clientId: 'ehr', clientIsRequestor: true, address: '::1' },
    outcome: '4',
    interaction: 'delete',
    resources: ['Observation/o1/_history/3'],
    patients: ['Patient/p1'],
  }),
  restAuditEvent(site, {
    id: 'a3',
    recorded,
    actor: { userId: 'u3', fhirUser: 'Practitioner/dr', clientId: 'app', clientIsRequestor: false },
    outcome: '0',
    interaction: 'operation',
    resources: ['ServiceRequest/sr1'],
    patients: [],
  }),
  authenticationAuditEvent(site, {
    id: 'a4',
    recorded,
    actor: { userId: 'u2', clientId: 'app', clientIsRequestor: false },
    outcome: '4',
    outcomeDesc: 'refused',
    event: 'token',
    scope: 'user/*.rs',
  }),
];

const HUB_VALUES = ['https://hub.example.org/fhir', 'https://hub.example.org'];

/** The generic indexer's values of the parameters the store keeps, in the store's forms. */
function genericColumns(event: AuditEvent): Record<string, string[]> {
  const rows = extractSearchIndex(event);
  const pick = (param: string, table: 'token' | 'reference'): string[] => {
    const values =
      table === 'token'
        ? rows.token.filter((row) => row[0] === param && row[2] !== null).map((row) => `${row[1] ?? ''}|${row[2]}`)
        : rows.reference.filter((row) => row[0] === param && row[1] !== null).map((row) => localReference(row[3]));
    return [...new Set(values)]
      .filter((value) => !HUB_VALUES.some((hub) => value.endsWith(`|${hub}`) || value === hub))
      .sort();
  };
  return {
    type: pick('type', 'token'),
    subtype: pick('subtype', 'token'),
    action: pick('action', 'token').map((token) => token.slice(token.indexOf('|') + 1)),
    outcome: pick('outcome', 'token').map((token) => token.slice(token.indexOf('|') + 1)),
    patient: pick('patient', 'reference'),
    agent: pick('agent', 'reference'),
    agentIdentifier: pick('agent:identifier', 'token'),
    entity: pick('entity', 'reference'),
  };
}

describe('auditColumns', () => {
  beforeAll(() => loadFhirDefinitions());

  test.each(events.map((event) => [event.id, event] as const))(
    "%s: the generic indexer's values, in the store's forms",
    (_id, event) => {
      const columns = auditColumns(event);
      const sorted = (values: string[]): string[] => [...values].sort();
      expect({
        type: columns.type === null ? [] : [columns.type],
        subtype: sorted(columns.subtype),
        action: columns.action === null ? [] : [columns.action],
        outcome: columns.outcome === null ? [] : [columns.outcome],
        patient: sorted(columns.patient),
        agent: sorted(columns.agent),
        agentIdentifier: sorted(columns.agentIdentifier),
        entity: sorted(columns.entity),
      }).toEqual(genericColumns(event));
      expect(columns.recorded).toBe(recorded.toISOString());
    },
  );

  test('references are stored without their version; absolute ones as written', () => {
    expect(localReference('Observation/o1/_history/3')).toBe('Observation/o1');
    expect(localReference('Patient/p1')).toBe('Patient/p1');
    expect(localReference('https://other.example/fhir/Patient/p1')).toBe('https://other.example/fhir/Patient/p1');
    expect(auditColumns(events[1]!).entity).toEqual(['Observation/o1', 'Patient/p1']);
  });
});
