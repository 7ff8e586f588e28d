/**
 * The subscription topics the hub offers (R4 Subscriptions Backport IG, topic-based): what sets each
 * one off, what an event's focus is, and the filters a subscriber may narrow it with. Advertised in
 * the CapabilityStatement (fhir/capability.ts reads SUBSCRIPTION_TOPICS through hub.ts).
 *
 * Every topic is about a case: its filters are search parameters of the case's ServiceRequest, written
 * in the IG's filter-criteria extension as `ServiceRequest?<param>=<value>[,<value>…][&…]`.
 */
import type { CaseState } from '../../cases/case-state.ts';

export const TOPIC_PREFIX = 'urn:hub:subscription-topic:';

export type TopicName = 'case-state-changed' | 'information-requested' | 'opinion-released';

export interface TopicDefinition {
  name: TopicName;
  canonical: string;
  title: string;
  /** What an event's focus is, and the resource type a subscriber must be allowed to read. */
  focusType: 'Task' | 'DiagnosticReport';
  description: string;
}

function topic(name: TopicName, focusType: TopicDefinition['focusType'], title: string, description: string) {
  return { name, canonical: `${TOPIC_PREFIX}${name}`, focusType, title, description };
}

export const SUBSCRIPTION_TOPICS: readonly TopicDefinition[] = [
  topic(
    'case-state-changed',
    'Task',
    'Case state changed',
    "The case's state (its coordination Task's businessStatus) changed. Focus: the coordination Task; context: the ServiceRequest.",
  ),
  topic(
    'information-requested',
    'Task',
    'Information requested',
    'The specialist asked the referring physician for information (the case is awaiting-information). Focus: the coordination Task; context: the ServiceRequest.',
  ),
  topic(
    'opinion-released',
    'DiagnosticReport',
    'Opinion released',
    'The consultation report was approved and released, or an amendment of it was. Focus: the DiagnosticReport; context: the ServiceRequest, the coordination Task and the letter DocumentReference.',
  ),
];

export function topicByCanonical(canonical: string | undefined): TopicDefinition | undefined {
  return SUBSCRIPTION_TOPICS.find((candidate) => candidate.canonical === canonical);
}

export function topicByName(name: string): TopicDefinition | undefined {
  return SUBSCRIPTION_TOPICS.find((candidate) => candidate.name === name);
}

/** The topics a move of the case into `state` sets off. */
export function stateTopics(state: CaseState): TopicName[] {
  return state === 'awaiting-information' ? ['case-state-changed', 'information-requested'] : ['case-state-changed'];
}

/** The ServiceRequest search parameters a filter may use, and what each compares. */
export const FILTER_PARAMETERS = ['_id', 'patient', 'subject', 'requester'] as const;
export type FilterParameter = (typeof FILTER_PARAMETERS)[number];

/** One filter: every parameter must match one of its values. */
export type SubscriptionFilter = Partial<Record<FilterParameter, string[]>>;

export class FilterSyntaxError extends Error {}

/** `ServiceRequest?patient=Patient/1&requester=Practitioner/2,Practitioner/3` → a filter. */
export function parseFilter(text: string): SubscriptionFilter {
  const match = /^ServiceRequest\?(.+)$/.exec(text.trim());
  if (!match?.[1] || text.length > 2000) {
    throw new FilterSyntaxError(
      `filter "${text.slice(0, 100)}" must be a search on the case: ServiceRequest?<parameter>=<value> (parameters: ${FILTER_PARAMETERS.join(', ')})`,
    );
  }
  const filter: SubscriptionFilter = {};
  for (const [name, value] of new URLSearchParams(match[1])) {
    if (!(FILTER_PARAMETERS as readonly string[]).includes(name)) {
      throw new FilterSyntaxError(
        `filter parameter "${name.slice(0, 64)}" is not offered; use ${FILTER_PARAMETERS.join(', ')}`,
      );
    }
    const values = value.split(',').map((part) => part.trim());
    if (values.some((part) => !/^([A-Z][A-Za-z]{1,63}\/)?[A-Za-z0-9\-.]{1,64}$/.test(part))) {
      throw new FilterSyntaxError(`filter parameter "${name}" needs ids or references (Type/id)`);
    }
    const key = name as FilterParameter;
    filter[key] = [...(filter[key] ?? []), ...values];
  }
  return filter;
}

/** What a filter compares, read from the case's ServiceRequest. */
export interface CaseFacts {
  id: string;
  /** `Patient/<id>` */
  patient: string | undefined;
  /** The requester's references: `Practitioner/<id>`, `PractitionerRole/<id>`, `Organization/<id>`. */
  requesters: string[];
}

function matches(values: readonly string[] | undefined, actual: readonly string[], type?: string): boolean {
  if (!values) {
    return true;
  }
  return values.some((value) => actual.includes(value) || (type !== undefined && actual.includes(`${type}/${value}`)));
}

/** True when the case passes the filter (every filter of a subscription must pass). */
export function filterMatches(filter: SubscriptionFilter, facts: CaseFacts): boolean {
  const patient = facts.patient ? [facts.patient] : [];
  return (
    matches(filter._id, [facts.id]) &&
    matches(filter.patient, patient, 'Patient') &&
    matches(filter.subject, patient, 'Patient') &&
    matches(filter.requester, facts.requesters)
  );
}
