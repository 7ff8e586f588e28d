/**
 * The notifications a subscriber receives and the answers of `$status` and `$events`, as the R4
 * Subscriptions Backport IG shapes them: a `history` Bundle whose first entry is a Parameters
 * resource (the subscription's status) and, with `id-only` content, one entry per event focus with its
 * full URL and no resource. Nothing in them is clinical: references, numbers, codes and instants.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { StoredEvent, SubscriptionStatus } from './store.ts';
import { BACKPORT_NOTIFICATION_PROFILE, BACKPORT_STATUS_PROFILE } from './subscription-resource.ts';
import type { PayloadContent } from './subscription-resource.ts';

export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

export interface StatusFacts {
  /** `<fhir base>/Subscription/<id>` */
  subscriptionUrl: string;
  topic: string;
  status: SubscriptionStatus;
  type: NotificationType;
  eventsSinceStart: number;
  events: readonly StoredEvent[];
  /** What the hub's last delivery attempt found, when the subscription is in error. */
  error: string | undefined;
  fhirBase: string;
}

function absolute(fhirBase: string, reference: string): string {
  return `${fhirBase}/${reference}`;
}

export function statusParameters(facts: StatusFacts, content: PayloadContent): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: facts.subscriptionUrl } },
    { name: 'topic', valueCanonical: facts.topic },
    { name: 'status', valueCode: facts.status },
    { name: 'type', valueCode: facts.type },
    { name: 'events-since-subscription-start', valueString: String(facts.eventsSinceStart) },
  ];
  for (const event of facts.events) {
    const part: ParametersParameter[] = [
      { name: 'event-number', valueString: String(event.eventNumber) },
      { name: 'timestamp', valueInstant: event.occurredAt.toISOString() },
    ];
    if (content === 'id-only') {
      part.push({ name: 'focus', valueReference: { reference: absolute(facts.fhirBase, event.focus) } });
      for (const context of event.additionalContext) {
        part.push({ name: 'additional-context', valueReference: { reference: absolute(facts.fhirBase, context) } });
      }
    }
    parameter.push({ name: 'notification-event', part });
  }
  if (facts.error) {
    parameter.push({ name: 'error', valueCodeableConcept: { text: facts.error } });
  }
  return {
    resourceType: 'Parameters',
    id: randomUUID(),
    meta: { profile: [BACKPORT_STATUS_PROFILE] },
    parameter,
  };
}

/** A notification (or an `$events` answer): the status first, then the focus of each event by URL. */
export function notificationBundle(facts: StatusFacts, content: PayloadContent, now: Date): Bundle {
  const status = statusParameters(facts, content);
  const entry: BundleEntry[] = [
    {
      fullUrl: `urn:uuid:${status.id ?? randomUUID()}`,
      resource: status,
      request: { method: 'GET', url: `${facts.subscriptionUrl}/$status` },
      response: { status: '200' },
    },
  ];
  if (content === 'id-only') {
    for (const event of facts.events) {
      entry.push({
        fullUrl: absolute(facts.fhirBase, event.focus),
        request: { method: 'PUT', url: event.focus },
        response: { status: '200' },
      });
    }
  }
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [BACKPORT_NOTIFICATION_PROFILE] },
    type: 'history',
    timestamp: now.toISOString(),
    entry,
  };
}
