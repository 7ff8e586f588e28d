/**
 * Which resource writes cause later work. A write of one of these types records an outbox event
 * in the same transaction; the relay turns it into a BullMQ job. Payloads carry ids only.
 */
import type { OutboxEvent } from './write.ts';

export const RESOURCE_EVENTS_QUEUE = 'fhir-resource-events';

/** The case workflow's resource types (shared/fhir-model.md): their changes drive the case. */
const WORKFLOW_TYPES = new Set([
  'ServiceRequest',
  'Task',
  'DocumentReference',
  'ImagingStudy',
  'Specimen',
  'DiagnosticReport',
  'Communication',
  'QuestionnaireResponse',
  'Consent',
]);

export function resourceChangeEvent(
  resourceType: string,
  id: string,
  versionId: number,
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
): OutboxEvent | undefined {
  if (!WORKFLOW_TYPES.has(resourceType)) {
    return undefined;
  }
  const interaction = method === 'POST' ? 'create' : method === 'DELETE' ? 'delete' : 'update';
  return {
    queue: RESOURCE_EVENTS_QUEUE,
    name: `${resourceType}.${interaction}`,
    payload: { resourceType, id, versionId: String(versionId), interaction },
  };
}
