/**
 * What the HTTP layers call: who is asking (from the bearer identity and the socket), the AuditEvent
 * of a REST interaction, login or token, and the audit context a repository's writes carry into
 * their own statement. Without an AuditLog (AUDIT_ENABLED=false) every method does nothing.
 */
import type { Request, Response } from 'express';
import type { AuditEvent, Resource } from '@medplum/fhirtypes';
import {
  CLAIMED_TOKEN_REFUSED,
  auditEventId,
  authenticationAuditEvent,
  patientOf,
  restAuditEvent,
} from './audit-event.ts';
import type { AuditActor, AuditOutcome, AuditSite, AuthenticationEvent } from './audit-event.ts';
import type { AuditLog } from './audit-log.ts';
import { clientAddress } from './client-address.ts';
import { toStored } from './statement.ts';
import { DEFAULT_REFUSAL_LIMITS, RefusalThrottle, refusalSummaryEvent } from './refusal-throttle.ts';
import type { RefusalFrom, RefusalLimits } from './refusal-throttle.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';
import type { StoredAuditEvent } from './statement.ts';

/** Set on a response once its REST AuditEvent is recorded (routes/fhir-audit-trail.ts looks). */
export const REST_AUDITED = 'restAudited';

/** Carried by a repository (RepositoryContext.audit): each of its writes stores its AuditEvent with it. */
export interface WriteAuditContext {
  site: AuditSite;
  actor: AuditActor;
}

/** Who made a request: the composition root passes auth/request-actor.ts's, which reads the bearer identity. */
export type RequestActorOf = (req: Request, res: Response) => AuditActor;

type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The AuditEvent of one resource write, ready for the write's statement; undefined without a context. */
export function writeAudit(
  context: WriteAuditContext | undefined,
  write: { method: WriteMethod; resourceType: string; id: string; version: number; resource?: Resource },
): StoredAuditEvent[] | undefined {
  if (context === undefined) {
    return undefined;
  }
  const interaction =
    write.method === 'DELETE'
      ? 'delete'
      : write.version === 1
        ? 'create'
        : write.method === 'PATCH'
          ? 'patch'
          : 'update';
  const patient = write.resource && patientOf(write.resource);
  const event = restAuditEvent(context.site, {
    id: auditEventId(),
    recorded: new Date(),
    actor: context.actor,
    outcome: '0',
    interaction,
    resources: [`${write.resourceType}/${write.id}/_history/${write.version}`],
    patients: patient ? [patient] : [],
  });
  return [toStored(event)];
}

/** The resources a response returned: one resource, or the entries of a Bundle. */
function returned(resource: Resource | undefined): Resource[] {
  if (resource === undefined) {
    return [];
  }
  if (resource.resourceType !== 'Bundle') {
    return [resource];
  }
  return (resource.entry ?? []).flatMap((entry) => (entry.resource ? [entry.resource] : []));
}

/** The resources a batch or transaction answered with, entry by entry (a search entry's matches included); failed entries touched nothing. */
function batchResources(resource: Resource | undefined): Resource[] {
  if (resource?.resourceType !== 'Bundle') {
    return [];
  }
  return (resource.entry ?? []).flatMap((entry) => {
    if (!entry.resource || !/^2\d\d/.test(entry.response?.status ?? '')) {
      return [];
    }
    return entry.resource.resourceType === 'Bundle' ? returned(entry.resource) : [entry.resource];
  });
}

/**
 * What each successful entry of a batch or transaction touched, `Type/id/_history/version`: the
 * resource it returned, or the location it answered with (a write with return=minimal).
 */
function batchReferences(resource: Resource | undefined, fhirBase: string): string[] {
  if (resource?.resourceType !== 'Bundle') {
    return [];
  }
  const references: string[] = [];
  for (const entry of resource.entry ?? []) {
    if (!/^2\d\d/.test(entry.response?.status ?? '')) {
      continue;
    }
    const touched =
      entry.resource?.resourceType === 'Bundle' ? returned(entry.resource) : entry.resource ? [entry.resource] : [];
    for (const item of touched) {
      if (item.id) {
        references.push(
          `${item.resourceType}/${item.id}${item.meta?.versionId ? `/_history/${item.meta.versionId}` : ''}`,
        );
      }
    }
    const location = entry.response?.location;
    if (touched.length === 0 && location) {
      references.push(location.startsWith(`${fhirBase}/`) ? location.slice(fhirBase.length + 1) : location);
    }
  }
  return references;
}

function uniquePatients(resources: Resource[]): string[] {
  return [...new Set(resources.map(patientOf).filter((p): p is string => p !== undefined))];
}

export interface RestAccess {
  interaction: string;
  status: number;
  /** The resource type and id the path named, when it named one. */
  target?: { resourceType: string; id?: string; version?: string };
  resource?: Resource;
  /** The query string, for searches. */
  query?: string;
}

class RequestWriteContext implements WriteAuditContext {
  readonly site: AuditSite;
  private readonly req: Request;
  private readonly res: Response;
  private readonly actorOf: RequestActorOf;
  private requestActor: AuditActor | undefined;

  constructor(site: AuditSite, req: Request, res: Response, actorOf: RequestActorOf) {
    this.site = site;
    this.req = req;
    this.res = res;
    this.actorOf = actorOf;
  }

  get actor(): AuditActor {
    return (this.requestActor ??= this.actorOf(this.req, this.res));
  }
}

export interface AuditorOptions {
  /** Where the refusal summaries' minutes are read from (the hub's clock). */
  clock?: Clock;
  refusalLimits?: RefusalLimits;
}

/** No person, client or part of the hub: a caller the hub could not identify. */
function anonymous(actor: Omit<AuditActor, 'address'>): boolean {
  return actor.userId === undefined && actor.clientId === undefined && actor.application === undefined;
}

/** Whom a refusal counts against in the throttle (refusal-throttle.ts); undefined: an identified caller. */
function refusalFrom(actor: AuditActor): RefusalFrom | undefined {
  if (actor.claimed === true) {
    if (actor.userId !== undefined) {
      return { claimed: { kind: 'user', id: actor.userId } };
    }
    if (actor.clientId !== undefined) {
      return { claimed: { kind: 'client', id: actor.clientId } };
    }
  }
  return actor.claimed === true || anonymous(actor) ? { address: actor.address ?? 'unknown' } : undefined;
}

export class Auditor {
  readonly site: AuditSite;
  private readonly log: AuditLog | undefined;
  /** Who made a request (auth/request-actor.ts); the audit layer does not read identities itself. */
  readonly actorOf: RequestActorOf;
  private readonly clock: Clock;
  /** Refusals of callers not identified, or only claimed: some recorded whole, the rest summarized (refusal-throttle.ts). */
  private readonly refusals: RefusalThrottle;
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(site: AuditSite, log: AuditLog | undefined, actorOf: RequestActorOf, options: AuditorOptions = {}) {
    this.site = site;
    this.log = log;
    this.actorOf = actorOf;
    this.clock = options.clock ?? systemClock;
    this.refusals = new RefusalThrottle(options.refusalLimits ?? DEFAULT_REFUSAL_LIMITS, this.clock.now().getTime());
  }

  /** Writes each minute's refusal summary when the minute ends, even if no refusal follows it. */
  startSummaries(): void {
    this.summaryTimer = setInterval(() => {
      void this.recordSummary(false);
    }, 15_000);
    this.summaryTimer.unref();
  }

  /** Stops the summaries, writing the current minute's (at shutdown, before the AuditLog stops). */
  async stopSummaries(): Promise<void> {
    clearInterval(this.summaryTimer);
    await this.recordSummary(true);
  }

  private async recordSummary(force: boolean): Promise<void> {
    const now = this.clock.now();
    const summary = this.refusals.roll(now.getTime(), force);
    if (summary !== undefined && this.log) {
      await this.log.record([refusalSummaryEvent(this.site, summary, now)]).catch(() => undefined);
    }
  }

  /**
   * Records the events of a refused request of a caller not identified (or who only claimed an
   * identity), through the throttle: `from` is what it counts against.
   */
  private async recordRefusal(events: AuditEvent[], from: RefusalFrom): Promise<void> {
    if (!this.log) {
      return;
    }
    const now = this.clock.now();
    const { record, summary } = this.refusals.admit(from, now.getTime());
    const due = [...(summary ? [refusalSummaryEvent(this.site, summary, now)] : []), ...(record ? events : [])];
    if (due.length > 0) {
      await this.log.record(due);
    }
  }

  get enabled(): boolean {
    return this.log !== undefined;
  }

  /** Every request's repository gets one; the actor is worked out only when a write asks for it. */
  /**
   * The audit context of the hub's own writes (the case workflow's jobs, the ImagingStudy refresher):
   * the hub application is the agent, `component` says which part of it.
   */
  hubWriteContext(component: string): WriteAuditContext | undefined {
    return this.log ? { site: this.site, actor: { application: component, clientIsRequestor: true } } : undefined;
  }

  writeContext(req: Request, res: Response): WriteAuditContext | undefined {
    return this.log ? new RequestWriteContext(this.site, req, res, this.actorOf) : undefined;
  }

  private record(event: AuditEvent): Promise<void> {
    return this.log ? this.log.record([event]) : Promise.resolve();
  }

  /** A read, search, history, batch or operation, or any refused request, after it ran. */
  async rest(req: Request, res: Response, access: RestAccess): Promise<void> {
    if (!this.log) {
      return;
    }
    res.locals[REST_AUDITED] = true;
    const outcome: AuditOutcome = access.status >= 500 ? '8' : access.status >= 400 ? '4' : '0';
    const isSearch = access.interaction.startsWith('search');
    const isBundle = access.interaction === 'batch' || access.interaction === 'transaction';
    const resources = outcome !== '0' ? [] : isBundle ? batchResources(access.resource) : returned(access.resource);
    const references = isSearch
      ? []
      : isBundle
        ? outcome === '0'
          ? batchReferences(access.resource, `${this.site.baseUrl}/fhir`)
          : []
        : access.target?.id
          ? [
              `${access.target.resourceType}/${access.target.id}${access.target.version ? `/_history/${access.target.version}` : ''}`,
            ]
          : [];
    const actor = this.actorOf(req, res);
    const event = restAuditEvent(this.site, {
      id: auditEventId(),
      recorded: new Date(),
      actor,
      outcome,
      ...(outcome !== '0' && actor.claimed === true ? { outcomeDesc: CLAIMED_TOKEN_REFUSED } : {}),
      interaction: access.interaction,
      resources: references,
      patients: uniquePatients(resources),
      query: isSearch ? (access.query ?? '') : undefined,
    });
    const from = outcome !== '0' ? refusalFrom(actor) : undefined;
    if (from !== undefined) {
      await this.recordRefusal([event], from);
      return;
    }
    await this.record(event);
  }

  /** A login (success or refusal), a logout, or an access token issued (or refused). */
  async authentication(
    req: Request,
    input: {
      event: AuthenticationEvent;
      actor: Omit<AuditActor, 'address'>;
      success: boolean;
      failureText?: string;
      scope?: string;
    },
  ): Promise<void> {
    if (!this.log) {
      return;
    }
    const actor = { ...input.actor, address: clientAddress(req) };
    const event = authenticationAuditEvent(this.site, {
      id: auditEventId(),
      recorded: new Date(),
      actor,
      outcome: input.success ? '0' : '4',
      outcomeDesc: input.success ? undefined : input.failureText,
      event: input.event,
      scope: input.scope,
    });
    // A refusal that names no account (an unknown e-mail, a client that did not authenticate): the
    // client id it gave is not an identity, unless it is a registered client's (`claimed`).
    const from = input.success
      ? undefined
      : actor.claimed === true
        ? refusalFrom(actor)
        : actor.userId === undefined
          ? { address: actor.address ?? 'unknown' }
          : undefined;
    if (from !== undefined) {
      await this.recordRefusal([event], from);
      return;
    }
    await this.record(event);
  }

  /**
   * Records events built elsewhere (the DICOM audit messages of audit/dicom-audit-event.ts).
   * `refused`: the events are of a refusal, of this actor (throttled unless it was identified), or
   * of a caller not identified at all, from this address.
   */
  async recordEvents(events: AuditEvent[], refused?: AuditActor | string): Promise<void> {
    const from = typeof refused === 'string' ? { address: refused } : refused && refusalFrom(refused);
    if (from !== undefined) {
      await this.recordRefusal(events, from);
      return;
    }
    if (this.log && events.length > 0) {
      await this.log.record(events);
    }
  }
}
