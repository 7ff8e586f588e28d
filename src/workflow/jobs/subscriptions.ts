/**
 * EHR notifications (docs/api.md, "Subscriptions"), in two queues:
 *
 * - `subscription-events`: one job per topic event (a case state the hub recorded, from the state
 *   write's own transaction; a consultation report released or amended, routed from its
 *   DiagnosticReport version). It finds the subscriptions of the topic whose filters the case passes
 *   and whose owner may read the focus, and numbers the event for each of them with its delivery job
 *   queued through the outbox, in one transaction per subscription (a job that runs again numbers
 *   nothing twice).
 * - `subscription-delivery`: one POST per job (a handshake, a heartbeat, or one event), with the
 *   queue's bounded retries. A handshake or an event that fails its last try puts the subscription in
 *   `error` (and the job in the dead-letter view); events that arrive meanwhile are kept, numbered,
 *   and readable with `$events`. A heartbeat that gets through again makes it `active` and sends what
 *   was kept, oldest first.
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
import { ownerMayRead } from '../subscriptions/owners.ts';
import { SubscriptionStore } from '../subscriptions/store.ts';
import type { StoredSubscription } from '../subscriptions/store.ts';
import { readSubscription } from '../subscriptions/subscription-resource.ts';
import { filterMatches, stateTopics, topicByCanonical, topicByName } from '../subscriptions/topics.ts';
import type { CaseFacts, TopicName } from '../subscriptions/topics.ts';
import type { ResourceEventRoute } from './resource-events.ts';

export const SUBSCRIPTION_EVENTS_QUEUE = 'subscription-events';
export const SUBSCRIPTION_DELIVERY_QUEUE = 'subscription-delivery';

/** Kept events sent again when a subscription recovers; beyond it, `$events` has them. */
const REDELIVERY_LIMIT = 1000;
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
    if (!wants(subscription, facts) || !(await ownerMayRead(deps.db, subscription.owner, topic.focusType))) {
      continue;
    }
    const readable: string[] = [];
    for (const item of context) {
      if (await ownerMayRead(deps.db, subscription.owner, item.type)) {
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

type DeliveryKind = 'handshake' | 'heartbeat' | 'event';

/** The outbox event of one delivery (a handshake when a subscription is written, or an event). */
export function deliveryEvent(subscriptionId: string, kind: DeliveryKind, eventNumber = 0): OutboxEvent {
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

export type DeliveryResult = { delivered: DeliveryKind; status: number } | { skipped: string } | { failed: string };

function endpointPolicy(deps: WorkerDeps): EndpointPolicy {
  return workflowDeps(deps).subscriptionEndpoints ?? new EndpointPolicy({ allowedNetworks: [] });
}

/** Queues the kept events of a subscription that has just become active again. */
async function sendKept(deps: WorkerDeps, store: SubscriptionStore, subscriptionId: string): Promise<number> {
  const numbers = await store.undelivered(subscriptionId, REDELIVERY_LIMIT);
  const { queues } = workflowDeps(deps);
  const round = deps.clock.now().getTime();
  for (const eventNumber of numbers) {
    await queues.add(
      subscriptionDeliveryQueue,
      { subscriptionId, kind: 'event', eventNumber: String(eventNumber) },
      { jobId: `redeliver-${subscriptionId}-${eventNumber}-${round}` },
    );
  }
  return numbers.length;
}

export async function deliverNotification(data: DeliveryData, job: JobInfo, deps: WorkerDeps): Promise<DeliveryResult> {
  const kind = data.kind as DeliveryKind;
  const store = new SubscriptionStore(deps.db);
  const subscription = await store.get(data.subscriptionId);
  if (!subscription || subscription.status === 'off') {
    return { skipped: 'subscription off or deleted' };
  }
  if (kind === 'handshake' && subscription.status !== 'requested') {
    return { skipped: `handshake for a subscription already ${subscription.status}` };
  }
  if (kind === 'event' && subscription.status !== 'active') {
    // Kept: sent when the handshake or a heartbeat gets through (sendKept), readable with $events now.
    return { skipped: `held while the subscription is ${subscription.status}` };
  }
  if (kind === 'heartbeat' && subscription.status !== 'active' && subscription.status !== 'error') {
    return { skipped: `no heartbeat while ${subscription.status}` };
  }
  const settings = readSubscription(subscription.content);
  const eventNumber = Number(data.eventNumber);
  const events = kind === 'event' ? await store.events(subscription.id, eventNumber - 1, eventNumber, 1) : [];
  if (kind === 'event' && events.length === 0) {
    return { skipped: 'event not found' };
  }
  const topic = topicByCanonical(subscription.topic);
  if (kind === 'event' && topic && !(await ownerMayRead(deps.db, subscription.owner, topic.focusType))) {
    await store.markDelivered(subscription.id, eventNumber, deps.clock.now());
    return { skipped: 'the owner may no longer read it' };
  }
  const type: NotificationType = kind === 'event' ? 'event-notification' : kind;
  const fhirBase = `${deps.baseUrl}/fhir`;
  const bundle = notificationBundle(
    {
      subscriptionUrl: `${fhirBase}/Subscription/${subscription.id}`,
      topic: subscription.topic,
      status: kind === 'handshake' ? 'requested' : subscription.status,
      type,
      eventsSinceStart: subscription.eventsSinceStart,
      events,
      error: undefined,
      fhirBase,
    },
    settings.content,
    deps.clock.now(),
  );
  try {
    const status = await postNotification(
      endpointPolicy(deps),
      settings.endpoint,
      bundle,
      settings.headers,
      settings.timeoutSeconds,
    );
    const now = deps.clock.now();
    await store.noteAttempt(subscription.id, true, now);
    if (kind === 'event') {
      await store.markDelivered(subscription.id, eventNumber, now);
    }
    const from = kind === 'handshake' ? (['requested'] as const) : (['error'] as const);
    if (kind !== 'event' && (await store.setStatus(subscription.id, 'active', undefined, now, from))) {
      const kept = await sendKept(deps, store, subscription.id);
      deps.logger.info({ subscriptionId: subscription.id, kind, kept }, 'subscription active');
    }
    return { delivered: kind, status };
  } catch (err) {
    const reason = err instanceof Error ? err.message.slice(0, 300) : 'delivery failed';
    const now = deps.clock.now();
    await store.noteAttempt(subscription.id, false, now);
    // A heartbeat is not retried (the next one is its retry); a handshake or an event is, up to the
    // queue's attempts, and then the subscription says what went wrong.
    if (kind === 'heartbeat' || job.finalAttempt) {
      await store.setStatus(subscription.id, 'error', reason, now, ['requested', 'active', 'error']);
      deps.logger.warn(
        { subscriptionId: subscription.id, kind, attempts: job.attemptsMade + 1 },
        'subscription delivery failed; subscription in error',
      );
    }
    if (kind === 'heartbeat') {
      return { failed: reason };
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
  concurrency: 8,
  process: deliverNotification,
});
