/**
 * EHR notifications (docs/api.md, "Subscriptions"), in two queues:
 *
 * - `subscription-events`: one job per topic event (a case state the hub recorded, from the state
 *   write's own transaction; a consultation report released or amended, routed from its
 *   DiagnosticReport version). It finds the subscriptions of the topic whose filters the case passes
 *   and whose owner may read the focus, and numbers the event for each of them with its delivery job
 *   queued through the outbox, in one transaction per subscription (a job that runs again numbers
 *   nothing twice).
 * - `subscription-delivery`: one POST per job (a handshake, or one event), with the queue's bounded
 *   retries. A handshake or an event that fails its last try puts the subscription in `error` (and
 *   the job in the dead-letter view); events that arrive meanwhile are kept, numbered, and readable
 *   with `$events`.
 * - `subscription-upkeep`: heartbeats and probes (jobs/subscription-sweeper.ts), and the drain of kept
 *   events: a heartbeat or handshake that gets through makes the subscription `active` again and one
 *   drain job sends what was kept, oldest first.
 */
import type { WithId } from '@medplum/core';
import type { DiagnosticReport, ServiceRequest, Task } from '@medplum/fhirtypes';
import { CONSULTATION_NOTE, LOINC } from '../../auth/case-links.ts';
import type { CaseState } from '../../cases/case-state.ts';
import type { Queryable } from '../../db/database.ts';
import { recordOutboxEvent } from '../../db/outbox.ts';
import type { OutboxEvent } from '../../fhir/write.ts';
import { HubRepository } from '../../fhir/repository.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { JobInfo, WorkerDeps } from '../../queues/queue-definitions.ts';
import { CASE_ROLES, findCaseResource, referencedId } from '../case-resources.ts';
import { workflowDeps } from '../context.ts';
import { readOptional } from '../materials.ts';
import { postNotification } from '../subscriptions/delivery.ts';
import { EndpointPolicy } from '../subscriptions/endpoint-policy.ts';
import { notificationBundle } from '../subscriptions/notification.ts';
import type { NotificationType } from '../subscriptions/notification.ts';
import { ownerActive, ownerMayRead } from '../subscriptions/owners.ts';
import { SubscriptionStore } from '../subscriptions/store.ts';
import type { StoredEvent, StoredSubscription } from '../subscriptions/store.ts';
import { readSubscription } from '../subscriptions/subscription-resource.ts';
import { filterMatches, stateTopics, topicByCanonical, topicByName } from '../subscriptions/topics.ts';
import type { CaseFacts, TopicName } from '../subscriptions/topics.ts';
import type { ResourceEventRoute } from './resource-events.ts';

export const SUBSCRIPTION_EVENTS_QUEUE = 'subscription-events';
export const SUBSCRIPTION_DELIVERY_QUEUE = 'subscription-delivery';

const RELEASED_STATUSES = ['final', 'amended', 'corrected', 'appended'];

// ---- what sets a topic off ------------------------------------------------------------------------

/**
 * The topic events of a case state the hub has just recorded, for the state write's own transaction
 * (workflow/case-notifications.ts): the hub's record decides, so a move someone wrote and the hub
 * refused tells nobody anything.
 */
export async function recordCaseStateEvents(
  tx: Queryable,
  change: { serviceRequestId: string; task: WithId<Task>; state: CaseState },
): Promise<void> {
  for (const topic of stateTopics(change.state)) {
    await recordOutboxEvent(tx, topicEvent(topic, change.serviceRequestId, `Task/${change.task.id}`, change.task));
  }
}

function topicEvent(
  topic: TopicName,
  serviceRequestId: string,
  focus: string,
  version: { meta?: { versionId?: string } },
): OutboxEvent {
  return {
    queue: SUBSCRIPTION_EVENTS_QUEUE,
    name: topic,
    payload: { topic, focus, focusVersion: version.meta?.versionId ?? '1', serviceRequestId },
  };
}

function isReleased(report: DiagnosticReport): boolean {
  return (
    RELEASED_STATUSES.includes(report.status) &&
    (report.code.coding ?? []).some((coding) => coding.system === LOINC && coding.code === CONSULTATION_NOTE)
  );
}

function pdfOf(report: DiagnosticReport): string | undefined {
  return report.presentedForm?.map((form) => form.url ?? '').join(' ');
}

/**
 * `opinion-released`: a version of a consultation report that is released (final, amended, corrected,
 * appended) where the one before was not, or carried another PDF (an amendment).
 */
export const opinionReleasedRoute: ResourceEventRoute = async (event, context) => {
  if (event.interaction === 'delete') {
    return [];
  }
  const version = Number(event.versionId);
  const report = await context.repository
    .readVersion<DiagnosticReport>('DiagnosticReport', event.id, event.versionId)
    .catch(() => undefined);
  if (!report || !isReleased(report)) {
    return [];
  }
  const previous =
    version > 1
      ? await context.repository
          .readVersion<DiagnosticReport>('DiagnosticReport', event.id, String(version - 1))
          .catch(() => undefined)
      : undefined;
  if (previous && isReleased(previous) && pdfOf(previous) === pdfOf(report)) {
    return [];
  }
  const serviceRequestId = (report.basedOn ?? [])
    .map((reference) => referencedId(reference, 'ServiceRequest'))
    .find((id) => id !== undefined);
  if (!serviceRequestId) {
    return [];
  }
  return [
    {
      queue: subscriptionEventsQueue,
      data: {
        topic: 'opinion-released',
        focus: `DiagnosticReport/${event.id}`,
        focusVersion: event.versionId,
        serviceRequestId,
      },
      jobId: `opinion-released-${event.id}-${event.versionId}`,
    },
  ];
};

// ---- fan-out --------------------------------------------------------------------------------------

interface TopicEventData {
  topic: string;
  focus: string;
  focusVersion: string;
  serviceRequestId: string;
}

function caseFacts(request: WithId<ServiceRequest> | undefined, serviceRequestId: string): CaseFacts {
  const requester = request?.requester?.reference;
  return {
    id: serviceRequestId,
    patient: request?.subject.reference,
    requesters: requester ? [requester] : [],
  };
}

/** The references an event names beside its focus: the case, and for a report its Task and letter. */
async function contextOf(
  repo: HubRepository,
  topic: TopicName,
  serviceRequestId: string,
): Promise<{ reference: string; type: string }[]> {
  const context = [{ reference: `ServiceRequest/${serviceRequestId}`, type: 'ServiceRequest' }];
  if (topic !== 'opinion-released') {
    return context;
  }
  const task = await findCaseResource<Task>(repo, 'Task', serviceRequestId, CASE_ROLES.coordination);
  if (task) {
    context.push({ reference: `Task/${task.id}`, type: 'Task' });
    for (const output of task.output ?? []) {
      const letter = referencedId(output.valueReference, 'DocumentReference');
      if (letter) {
        context.push({ reference: `DocumentReference/${letter}`, type: 'DocumentReference' });
      }
    }
  }
  return context;
}

/** True when the case passes every filter of the subscription (a subscription without filters takes all). */
function wants(subscription: StoredSubscription, facts: CaseFacts): boolean {
  try {
    return readSubscription(subscription.content).filters.every((filter) => filterMatches(filter, facts));
  } catch {
    return false;
  }
}

export async function fanOutTopicEvent(
  data: TopicEventData,
  _job: JobInfo,
  deps: WorkerDeps,
): Promise<{ told: number }> {
  const topic = topicByName(data.topic);
  if (!topic) {
    throw new Error(`unknown subscription topic "${data.topic}"`);
  }
  const now = deps.clock.now();
  const store = new SubscriptionStore(deps.db);
  const subscriptions = await store.listening(topic.canonical, now);
  if (subscriptions.length === 0) {
    return { told: 0 };
  }
  const repo = new HubRepository(deps.repository);
  const request = await readOptional<ServiceRequest>(repo, 'ServiceRequest', data.serviceRequestId);
  const facts = caseFacts(request, data.serviceRequestId);
  const context = await contextOf(repo, topic.name, data.serviceRequestId);
  const source = `${data.focus}/_history/${data.focusVersion}`;
  let told = 0;
  for (const subscription of subscriptions) {
    const mayRead = (type: string) => ownerMayRead(deps.db, subscription.owner, type, subscription.ownerScopes);
    if (!wants(subscription, facts) || !(await mayRead(topic.focusType))) {
      continue;
    }
    const readable: string[] = [];
    for (const item of context) {
      if (await mayRead(item.type)) {
        readable.push(item.reference);
      }
    }
    const numbered = await deps.db.transaction(async (tx) => {
      const eventNumber = await store.recordEvent(tx, subscription.id, {
        source,
        focus: data.focus,
        additionalContext: readable,
        occurredAt: now,
      });
      if (eventNumber !== undefined) {
        await recordOutboxEvent(tx, deliveryEvent(subscription.id, 'event', eventNumber));
      }
      return eventNumber;
    });
    if (numbered !== undefined) {
      told += 1;
    }
  }
  deps.logger.info({ topic: topic.name, focus: data.focus, told }, 'subscription event recorded');
  return { told };
}

export const subscriptionEventsQueue = defineQueue({
  name: SUBSCRIPTION_EVENTS_QUEUE,
  data: { topic: 'keyword', focus: 'reference', focusVersion: 'versionId', serviceRequestId: 'fhirId' },
  attempts: 8,
  backoffMs: 1000,
  concurrency: 2,
  process: fanOutTopicEvent,
});

// ---- delivery -------------------------------------------------------------------------------------

/** The outbox event of one delivery (a handshake when a subscription is written, or an event). */
export function deliveryEvent(subscriptionId: string, kind: 'handshake' | 'event', eventNumber = 0): OutboxEvent {
  return {
    queue: SUBSCRIPTION_DELIVERY_QUEUE,
    name: kind,
    payload: { subscriptionId, kind, eventNumber: String(eventNumber) },
  };
}

interface DeliveryData {
  subscriptionId: string;
  kind: string;
  eventNumber: string;
}

export type DeliveryResult =
  { delivered: string; status: number } | { drained: number } | { skipped: string } | { failed: string };

function endpointPolicy(deps: WorkerDeps): EndpointPolicy {
  return workflowDeps(deps).subscriptionEndpoints ?? new EndpointPolicy({ allowedNetworks: [] });
}

/** Posts one notification of `type` with `events`; throws a DeliveryError (or the policy's refusal). */
async function post(
  deps: WorkerDeps,
  subscription: StoredSubscription,
  type: NotificationType,
  events: StoredEvent[],
): Promise<number> {
  const settings = readSubscription(subscription.content);
  const fhirBase = `${deps.baseUrl}/fhir`;
  const bundle = notificationBundle(
    {
      subscriptionUrl: `${fhirBase}/Subscription/${subscription.id}`,
      topic: subscription.topic,
      status: type === 'handshake' ? 'requested' : subscription.status,
      type,
      eventsSinceStart: subscription.eventsSinceStart,
      events,
      error: undefined,
      fhirBase,
    },
    settings.content,
    deps.clock.now(),
  );
  return postNotification(endpointPolicy(deps), settings.endpoint, bundle, settings.headers, settings.timeoutSeconds);
}

/** The subscription, unless it is off, gone, or its owner is (then it is turned off here). */
async function liveSubscription(
  deps: WorkerDeps,
  store: SubscriptionStore,
  id: string,
): Promise<StoredSubscription | undefined> {
  const subscription = await store.get(id);
  if (!subscription || subscription.status === 'off') {
    return undefined;
  }
  if (!(await ownerActive(deps.db, subscription.owner))) {
    await store.setStatus(id, 'off', 'the owner is disabled', deps.clock.now(), ['requested', 'active', 'error']);
    deps.logger.info({ subscriptionId: id }, 'subscription of a disabled owner turned off');
    return undefined;
  }
  return subscription;
}

/** After a handshake or heartbeat got through to a subscription that was not active: active, and what was kept goes out. */
async function activate(deps: WorkerDeps, store: SubscriptionStore, subscription: StoredSubscription): Promise<void> {
  const from = subscription.status === 'requested' ? (['requested'] as const) : (['error'] as const);
  if (!(await store.setStatus(subscription.id, 'active', undefined, deps.clock.now(), from))) {
    return;
  }
  const [first] = await store.undelivered(subscription.id, 1);
  if (first !== undefined) {
    await workflowDeps(deps).queues.add(
      subscriptionUpkeepQueue,
      { subscriptionId: subscription.id, kind: 'drain', eventNumber: String(first) },
      { jobId: `drain-${subscription.id}-${first}` },
    );
  }
  deps.logger.info({ subscriptionId: subscription.id, kept: first !== undefined }, 'subscription active');
}

async function markError(
  deps: WorkerDeps,
  store: SubscriptionStore,
  subscription: StoredSubscription,
  reason: string,
  kind: string,
): Promise<void> {
  await store.setStatus(subscription.id, 'error', reason, deps.clock.now(), ['requested', 'active', 'error']);
  deps.logger.warn({ subscriptionId: subscription.id, kind }, 'subscription delivery failed; subscription in error');
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 300) : 'delivery failed';
}

/**
 * `subscription-delivery`: a handshake, or one event, with the queue's retries. An event waits while
 * the subscription is not active (it is kept: sent by the drain when it becomes active, readable with
 * $events meanwhile).
 */
export async function deliverNotification(data: DeliveryData, job: JobInfo, deps: WorkerDeps): Promise<DeliveryResult> {
  const store = new SubscriptionStore(deps.db);
  const subscription = await liveSubscription(deps, store, data.subscriptionId);
  if (!subscription) {
    return { skipped: 'subscription off or deleted' };
  }
  if (data.kind === 'handshake' && subscription.status !== 'requested') {
    return { skipped: `handshake for a subscription already ${subscription.status}` };
  }
  if (data.kind === 'event' && subscription.status !== 'active') {
    return { skipped: `held while the subscription is ${subscription.status}` };
  }
  const eventNumber = Number(data.eventNumber);
  const events = data.kind === 'event' ? await store.events(subscription.id, eventNumber - 1, eventNumber, 1) : [];
  if (data.kind === 'event' && events.length === 0) {
    return { skipped: 'event not found' };
  }
  const topic = topicByCanonical(subscription.topic);
  if (
    data.kind === 'event' &&
    topic &&
    !(await ownerMayRead(deps.db, subscription.owner, topic.focusType, subscription.ownerScopes))
  ) {
    await store.markDelivered(subscription.id, eventNumber, deps.clock.now());
    return { skipped: 'the owner may no longer read it' };
  }
  try {
    const status = await post(deps, subscription, data.kind === 'event' ? 'event-notification' : 'handshake', events);
    const now = deps.clock.now();
    await store.noteAttempt(subscription.id, true, now);
    if (data.kind === 'event') {
      await store.markDelivered(subscription.id, eventNumber, now);
    } else {
      await activate(deps, store, subscription);
    }
    return { delivered: data.kind, status };
  } catch (err) {
    await store.noteAttempt(subscription.id, false, deps.clock.now());
    if (job.finalAttempt) {
      await markError(deps, store, subscription, reasonOf(err), data.kind);
    }
    throw err;
  }
}

export const subscriptionDeliveryQueue = defineQueue({
  name: SUBSCRIPTION_DELIVERY_QUEUE,
  data: { subscriptionId: 'fhirId', kind: 'keyword', eventNumber: 'versionId' },
  // 1, 2, 4, 8 s between the five tries; then `error`, the dead-letter view, and heartbeats as probes.
  attempts: 5,
  backoffMs: 1000,
  concurrency: 16,
  process: deliverNotification,
});

/** Kept events one drain job sends, oldest first; it queues the next drain for the rest. */
const DRAIN_BATCH = 100;

/**
 * `subscription-upkeep`: a heartbeat (or the probe of a subscription in error), or the drain of the
 * events kept while a subscription was not active. Tried once each (the next heartbeat is the retry;
 * a drain stops at the first failure and leaves the rest for the next recovery), on a queue of their
 * own, so that many slow heartbeats never hold up an event's delivery. Done jobs are not kept.
 */
export async function upkeep(data: DeliveryData, _job: JobInfo, deps: WorkerDeps): Promise<DeliveryResult> {
  const store = new SubscriptionStore(deps.db);
  const subscription = await liveSubscription(deps, store, data.subscriptionId);
  if (!subscription) {
    return { skipped: 'subscription off or deleted' };
  }
  if (data.kind === 'heartbeat') {
    if (subscription.status !== 'active' && subscription.status !== 'error') {
      return { skipped: `no heartbeat while ${subscription.status}` };
    }
    try {
      const status = await post(deps, subscription, 'heartbeat', []);
      await store.noteAttempt(subscription.id, true, deps.clock.now());
      if (subscription.status === 'error') {
        await activate(deps, store, subscription);
      }
      return { delivered: 'heartbeat', status };
    } catch (err) {
      await store.noteAttempt(subscription.id, false, deps.clock.now());
      await markError(deps, store, subscription, reasonOf(err), 'heartbeat');
      return { failed: reasonOf(err) };
    }
  }
  if (subscription.status !== 'active') {
    return { skipped: `no drain while ${subscription.status}` };
  }
  const topic = topicByCanonical(subscription.topic);
  const mayRead =
    topic !== undefined && (await ownerMayRead(deps.db, subscription.owner, topic.focusType, subscription.ownerScopes));
  const numbers = await store.undelivered(subscription.id, DRAIN_BATCH + 1);
  let drained = 0;
  for (const eventNumber of numbers.slice(0, DRAIN_BATCH)) {
    const events = await store.events(subscription.id, eventNumber - 1, eventNumber, 1);
    try {
      if (mayRead) {
        await post(deps, subscription, 'event-notification', events);
      }
      await store.markDelivered(subscription.id, eventNumber, deps.clock.now());
      drained += 1;
    } catch (err) {
      await store.noteAttempt(subscription.id, false, deps.clock.now());
      await markError(deps, store, subscription, reasonOf(err), 'drain');
      return { drained };
    }
  }
  await store.noteAttempt(subscription.id, true, deps.clock.now());
  const next = numbers[DRAIN_BATCH];
  if (next !== undefined) {
    await workflowDeps(deps).queues.add(
      subscriptionUpkeepQueue,
      { subscriptionId: subscription.id, kind: 'drain', eventNumber: String(next) },
      { jobId: `drain-${subscription.id}-${next}` },
    );
  }
  return { drained };
}

export const SUBSCRIPTION_UPKEEP_QUEUE = 'subscription-upkeep';

export const subscriptionUpkeepQueue = defineQueue({
  name: SUBSCRIPTION_UPKEEP_QUEUE,
  data: { subscriptionId: 'fhirId', kind: 'keyword', eventNumber: 'versionId' },
  attempts: 1,
  concurrency: 4,
  removeOnComplete: true,
  process: upkeep,
});
