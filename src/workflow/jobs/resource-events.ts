/**
 * The consumer of `fhir-resource-events` (src/fhir/events.ts: one event per write of a workflow
 * resource type, ids only). It reads what it needs to decide, and queues jobs that carry ids only,
 * each under a job id derived from what it is about, so a repeated event queues nothing twice.
 *
 * Routing is a table: resource type → routes. A route looks at one event and returns the jobs to
 * queue (none when the event does not concern it). Queue modules export their routes and are
 * listed here; every queue a route targets must also be in all-queues.ts.
 */
import type { WithId } from '@medplum/core';
import { OperationOutcomeError, getStatus } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { RESOURCE_EVENTS_QUEUE } from '../../fhir/events.ts';
import { HubRepository } from '../../fhir/repository.ts';
import { workflowDeps } from '../context.ts';
import { serviceRequestIntakeRoute } from './case-intake.ts';
import {
  caseMaterialRoute,
  requoteTaskRoute,
  questionnaireResponseRoute,
  reconcileImagingRoute,
} from './case-materials.ts';
import { caseProgressionRoute, communicationProgressionRoute } from './case-progression.ts';
import { opinionReleasedRoute } from './subscriptions.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { AnyQueueDefinition, JobInfo, QueueDefinition, WorkerDeps } from '../../queues/queue-definitions.ts';

/** The payload of a resource event (src/fhir/events.ts resourceChangeEvent). */
export interface ResourceEvent {
  resourceType: string;
  id: string;
  versionId: string;
  /** `create`, `update` or `delete`. */
  interaction: string;
}

/** A job a route asks for; build it with {@link routedJob} to keep the data typed. */
export interface RoutedJob {
  queue: AnyQueueDefinition;
  data: unknown;
  /** Derived from the ids the job is about, so a repeated event adds nothing. */
  jobId: string;
}

export function routedJob<Data>(queue: QueueDefinition<Data>, data: Data, jobId: string): RoutedJob {
  return { queue: queue, data, jobId };
}

export interface RouteContext {
  repository: HubRepository;
  /** The current version of a resource, or undefined when it is gone (deleted, never existed). */
  read<T extends Resource>(resourceType: T['resourceType'], id: string): Promise<WithId<T> | undefined>;
}

export type ResourceEventRoute = (event: ResourceEvent, context: RouteContext) => Promise<RoutedJob[]>;

/**
 * Which routes see which resource type's events. Extension point: the materials jobs add
 * DocumentReference, ImagingStudy, Specimen and Task routes here from their queue module.
 */
export const RESOURCE_EVENT_ROUTES: Readonly<Record<string, readonly ResourceEventRoute[]>> = {
  ServiceRequest: [serviceRequestIntakeRoute],
  DocumentReference: [caseMaterialRoute],
  ImagingStudy: [caseMaterialRoute],
  Specimen: [caseMaterialRoute],
  Task: [reconcileImagingRoute, caseProgressionRoute, requoteTaskRoute],
  QuestionnaireResponse: [questionnaireResponseRoute],
  Communication: [communicationProgressionRoute],
  DiagnosticReport: [opinionReleasedRoute],
};

export interface RoutingResult {
  /** `<queue>/<job id>` of each job added (or already there under that id). */
  routed: string[];
}

function routeContext(deps: WorkerDeps): RouteContext {
  const repository = new HubRepository(deps.repository);
  return {
    repository,
    read: async <T extends Resource>(resourceType: T['resourceType'], id: string) => {
      try {
        return await repository.readResource<T>(resourceType, id);
      } catch (err) {
        if (err instanceof OperationOutcomeError && [404, 410].includes(getStatus(err.outcome))) {
          return undefined;
        }
        throw err;
      }
    },
  };
}

/** The job function: routes one event (a route's failure retries the whole event; adds are idempotent). */
export async function routeResourceEvent(
  event: ResourceEvent,
  _job: JobInfo,
  deps: WorkerDeps,
): Promise<RoutingResult> {
  const routes = RESOURCE_EVENT_ROUTES[event.resourceType] ?? [];
  if (routes.length === 0) {
    return { routed: [] };
  }
  const context = routeContext(deps);
  const jobs: RoutedJob[] = [];
  for (const route of routes) {
    jobs.push(...(await route(event, context)));
  }
  if (jobs.length === 0) {
    return { routed: [] };
  }
  const { queues } = workflowDeps(deps);
  const routed: string[] = [];
  for (const job of jobs) {
    routed.push(`${job.queue.name}/${await queues.add(job.queue, job.data, { jobId: job.jobId })}`);
  }
  deps.logger.debug(
    { resourceType: event.resourceType, id: event.id, versionId: event.versionId, routed },
    'resource event routed',
  );
  return { routed };
}

export const resourceEventsQueue = defineQueue({
  name: RESOURCE_EVENTS_QUEUE,
  data: { resourceType: 'resourceType', id: 'fhirId', versionId: 'versionId', interaction: 'keyword' },
  attempts: 8,
  backoffMs: 1000,
  concurrency: 4,
  process: routeResourceEvent,
});
