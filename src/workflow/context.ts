/**
 * What the workflow jobs need beyond the queue framework's WorkerDeps: the jurisdiction policies
 * and fee schedules in force, a clock, and a producer for routing to other queues. The composition
 * root (src/hub.ts) passes a WorkflowWorkerDeps where the framework takes WorkerDeps.
 */
import type { Logger } from 'pino';
import { DEFAULT_FEE_SCHEDULE } from '../cases/fees.ts';
import type { FeeSchedule } from '../cases/fees.ts';
import type { JurisdictionPolicy } from '../cases/jurisdictions.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import type { QueueProducer, WorkerDeps } from '../queues/queue-definitions.ts';
import type { EndpointPolicy } from './subscriptions/endpoint-policy.ts';

/** What a workflow job function runs with; tests build one to call job functions directly. */
export interface WorkflowContext {
  repository: RepositoryContext;
  /** The versions loaded by eligibility.ts loadJurisdictionPolicies; the one in force is chosen per case. */
  jurisdictionPolicies: readonly JurisdictionPolicy[];
  /** The fee schedules; a case is quoted with the one in effect when it was submitted. */
  feeSchedules: readonly FeeSchedule[];
  now: () => Date;
  logger?: Logger;
  /** Right-hand side of notification Message-IDs (`Mailer.domain`); `localhost` when unset. */
  messageIdDomain?: string;
}

export interface WorkflowWorkerDeps extends WorkerDeps {
  /** Adds jobs to declared queues (the resource-event router's output). */
  queues: QueueProducer;
  jurisdictionPolicies: readonly JurisdictionPolicy[];
  /** Defaults to the shipped schedule. */
  feeSchedules?: readonly FeeSchedule[];
  /** Where subscription notifications may go (SUBSCRIPTION_ALLOWED_NETWORKS); public addresses only when unset. */
  subscriptionEndpoints?: EndpointPolicy;
}

/** The workflow's dependencies, or a clear error when the process started workers without them. */
export function workflowDeps(deps: WorkerDeps): WorkflowWorkerDeps {
  const candidate = deps as Partial<WorkflowWorkerDeps>;
  if (!candidate.queues || !candidate.jurisdictionPolicies) {
    throw new Error(
      'workflow queues need WorkflowWorkerDeps (queues, jurisdictionPolicies); see src/workflow/context.ts',
    );
  }
  return deps as WorkflowWorkerDeps;
}

export function workflowContext(deps: WorkerDeps): WorkflowContext {
  const workflow = workflowDeps(deps);
  return {
    repository: workflow.repository,
    jurisdictionPolicies: workflow.jurisdictionPolicies,
    feeSchedules: workflow.feeSchedules ?? [DEFAULT_FEE_SCHEDULE],
    now: () => workflow.clock.now(),
    logger: workflow.logger,
    messageIdDomain: workflow.mailer?.domain,
  };
}
