/**
 * A Subscription as a client writes it (R4, with the Subscriptions Backport IG's extensions), read
 * into the settings the hub delivers by. Anything the hub would not honour is refused with the reason,
 * rather than accepted and ignored.
 */
import { OperationOutcomeError, badRequest } from '@medplum/core';
import type { Element, Extension, Subscription, SubscriptionChannel } from '@medplum/fhirtypes';
import { unprocessable } from '../../fhir/outcomes.ts';
import { validateFhirResource } from '../../fhir/validation.ts';
import { FilterSyntaxError, parseFilter, topicByCanonical } from './topics.ts';
import type { SubscriptionFilter, TopicDefinition } from './topics.ts';

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
export const BACKPORT_EXTENSIONS = {
  filterCriteria: `${BACKPORT}backport-filter-criteria`,
  payloadContent: `${BACKPORT}backport-payload-content`,
  heartbeatPeriod: `${BACKPORT}backport-heartbeat-period`,
  timeout: `${BACKPORT}backport-timeout`,
  maxCount: `${BACKPORT}backport-max-count`,
} as const;
export const BACKPORT_SUBSCRIPTION_PROFILE = `${BACKPORT}backport-subscription`;
export const BACKPORT_STATUS_PROFILE = `${BACKPORT}backport-subscription-status-r4`;
export const BACKPORT_NOTIFICATION_PROFILE = `${BACKPORT}backport-subscription-notification-r4`;

export type PayloadContent = 'empty' | 'id-only';

/** A Subscription with the extensions of its primitive elements (JSON `_criteria`, `_payload`). */
type BackportSubscription = Subscription & {
  _criteria?: Element;
  channel: SubscriptionChannel & { _payload?: Element };
};

/** Heartbeats no more often than this, and at least once a day when asked for. */
export const HEARTBEAT_BOUNDS = { min: 5, max: 86_400 } as const;
/** How long one delivery may take, unless the subscriber asks for less. */
export const DEFAULT_TIMEOUT_SECONDS = 10;
const MAX_HEADERS = 10;
const MAX_FILTERS = 5;
/** A Subscription's size as JSON: it is read again at every delivery, so it stays small. */
export const MAX_SUBSCRIPTION_BYTES = 16 * 1024;
const FORBIDDEN_HEADERS = new Set([
  'host',
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'proxy-authorization',
]);

export interface SubscriptionSettings {
  topic: TopicDefinition;
  filters: SubscriptionFilter[];
  endpoint: string;
  content: PayloadContent;
  headers: [string, string][];
  heartbeatSeconds: number | undefined;
  timeoutSeconds: number;
  /** `off` when the client turned it off; otherwise the hub decides (requested until the handshake). */
  off: boolean;
  end: Date | undefined;
}

function invalid(text: string): OperationOutcomeError {
  return new OperationOutcomeError(badRequest(text));
}

function refused(text: string): OperationOutcomeError {
  return new OperationOutcomeError(unprocessable(text));
}

function extensionsOf(extensions: readonly Extension[] | undefined, url: string): Extension[] {
  return (extensions ?? []).filter((extension) => extension.url === url);
}

function oneNumber(extensions: readonly Extension[] | undefined, url: string, name: string): number | undefined {
  const found = extensionsOf(extensions, url);
  if (found.length > 1) {
    throw invalid(`channel has more than one ${name} extension`);
  }
  const value = found[0]?.valueUnsignedInt ?? found[0]?.valuePositiveInt ?? found[0]?.valueInteger;
  if (found.length === 1 && (value === undefined || !Number.isInteger(value) || value < 0)) {
    throw invalid(`the ${name} extension needs a whole number of seconds`);
  }
  return value;
}

/** Reads and checks a Subscription a client wrote; throws an OperationOutcomeError (400 or 422). */
export function readSubscription(resource: unknown): SubscriptionSettings {
  if (typeof resource !== 'object' || resource === null || (resource as Subscription).resourceType !== 'Subscription') {
    throw invalid('The body must be a Subscription resource');
  }
  if (JSON.stringify(resource).length > MAX_SUBSCRIPTION_BYTES) {
    throw refused(`a Subscription is at most ${MAX_SUBSCRIPTION_BYTES / 1024} KB as JSON`);
  }
  const subscription = resource as BackportSubscription;
  validateFhirResource(subscription);
  const topic = topicByCanonical(subscription.criteria);
  if (!topic) {
    throw refused(
      `criteria must be the canonical URL of a topic this hub offers (see the CapabilityStatement); "${String(subscription.criteria).slice(0, 200)}" is not one`,
    );
  }
  const filters: SubscriptionFilter[] = [];
  const filterExtensions = extensionsOf(subscription._criteria?.extension, BACKPORT_EXTENSIONS.filterCriteria);
  if (filterExtensions.length > MAX_FILTERS) {
    throw refused(`at most ${MAX_FILTERS} filter criteria`);
  }
  for (const extension of filterExtensions) {
    try {
      filters.push(parseFilter(extension.valueString ?? ''));
    } catch (err) {
      throw refused(err instanceof FilterSyntaxError ? err.message : 'filter criteria not understood');
    }
  }
  const channel = subscription.channel;
  if (channel.type !== 'rest-hook') {
    throw refused(`channel.type "${String(channel.type)}" is not offered; use rest-hook`);
  }
  if (!channel.endpoint) {
    throw invalid('channel.endpoint is required for a rest-hook channel');
  }
  if (channel.payload !== undefined && !['application/fhir+json', 'application/json'].includes(channel.payload)) {
    throw refused(`channel.payload "${channel.payload.slice(0, 100)}" is not offered; use application/fhir+json`);
  }
  const contents = extensionsOf(channel._payload?.extension, BACKPORT_EXTENSIONS.payloadContent);
  const requested = contents[0]?.valueCode ?? (channel.payload === undefined ? 'empty' : 'id-only');
  if (contents.length > 1) {
    throw invalid('channel.payload has more than one payload-content extension');
  }
  if (requested === 'full-resource') {
    throw refused(
      'full-resource payloads are not offered: notifications carry no clinical content; use id-only and read what changed with your own token',
    );
  }
  if (requested !== 'id-only' && requested !== 'empty') {
    throw invalid(`payload content "${requested.slice(0, 64)}" is not one of empty, id-only`);
  }
  const headers: [string, string][] = [];
  for (const header of channel.header ?? []) {
    const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*([^\r\n]{0,1024})$/.exec(header);
    if (!match?.[1] || match[2] === undefined) {
      throw invalid(
        'each channel.header must be "Name: value" on one line (names up to 64, values up to 1024 characters)',
      );
    }
    if (FORBIDDEN_HEADERS.has(match[1].toLowerCase())) {
      throw refused(`channel.header may not set ${match[1]}`);
    }
    headers.push([match[1], match[2].trim()]);
  }
  if (headers.length > MAX_HEADERS) {
    throw refused(`at most ${MAX_HEADERS} channel headers`);
  }
  const heartbeat = oneNumber(channel.extension, BACKPORT_EXTENSIONS.heartbeatPeriod, 'heartbeat-period');
  if (
    heartbeat !== undefined &&
    heartbeat !== 0 &&
    (heartbeat < HEARTBEAT_BOUNDS.min || heartbeat > HEARTBEAT_BOUNDS.max)
  ) {
    throw refused(
      `heartbeat-period must be 0 (none) or between ${HEARTBEAT_BOUNDS.min} and ${HEARTBEAT_BOUNDS.max} seconds`,
    );
  }
  const timeout = oneNumber(channel.extension, BACKPORT_EXTENSIONS.timeout, 'timeout');
  if (timeout !== undefined && (timeout < 1 || timeout > DEFAULT_TIMEOUT_SECONDS)) {
    throw refused(`timeout must be between 1 and ${DEFAULT_TIMEOUT_SECONDS} seconds`);
  }
  // max-count: the hub sends one event per notification, which honours any maximum.
  oneNumber(channel.extension, BACKPORT_EXTENSIONS.maxCount, 'max-count');
  const end = subscription.end ? new Date(subscription.end) : undefined;
  return {
    topic,
    filters,
    endpoint: channel.endpoint,
    content: requested,
    headers,
    heartbeatSeconds: heartbeat || undefined,
    timeoutSeconds: timeout ?? DEFAULT_TIMEOUT_SECONDS,
    off: subscription.status === 'off',
    end: end && !Number.isNaN(end.getTime()) ? end : undefined,
  };
}
