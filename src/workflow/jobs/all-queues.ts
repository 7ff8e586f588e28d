/** Every queue the hub's workers serve; the admin view and the outbox relay read their settings here. */
import { caseIntakeQueue } from './case-intake.ts';
import { caseMaterialsQueue } from './case-materials.ts';
import { caseProgressionQueue } from './case-progression.ts';
import { caseRemindersQueue } from './case-reminders.ts';
import { notificationsQueue } from './notifications.ts';
import { jobOptions } from '../../queues/queue-definitions.ts';
import type { AnyQueueDefinition } from '../../queues/queue-definitions.ts';
import { resourceEventsQueue } from './resource-events.ts';
import { subscriptionDeliveryQueue, subscriptionEventsQueue, subscriptionUpkeepQueue } from './subscriptions.ts';
import type { JobsOptions } from 'bullmq';

export const HUB_QUEUES: readonly AnyQueueDefinition[] = [
  notificationsQueue,
  resourceEventsQueue,
  caseIntakeQueue,
  caseMaterialsQueue,
  caseProgressionQueue,
  caseRemindersQueue,
  subscriptionEventsQueue,
  subscriptionDeliveryQueue,
  subscriptionUpkeepQueue,
];

/** The job options of a declared queue, for the outbox relay; undefined for a queue not declared here. */
export function declaredJobOptions(queue: string): JobsOptions | undefined {
  const definition = HUB_QUEUES.find((candidate) => candidate.name === queue);
  return definition ? jobOptions(definition) : undefined;
}
