/**
 * What the HTTP layers call: who is asking (from the bearer identity and the socket), the AuditEvent
 * of a REST interaction, login or token, and the audit context a repository's writes carry into
 * their own statement. Without an AuditLog (AUDIT_ENABLED=false) every method does nothing.
 */
import type { Request, Response } from 'express';
import type { AuditEvent, Resource } from '@medplum/fhirtypes';
import { auditEventId, authenticationAuditEvent, patientOf, restAuditEvent } from './audit-event.ts';
import type { AuditActor, AuditOutcome, AuditSite, AuthenticationEvent } from './audit-event.ts';
import type { AuditLog } from './audit-log.ts';
import { toStored } from './statement.ts';
import type { StoredAuditEvent } from './statement.ts';

/** Carried by a repository (RepositoryContext.audit): each of its writes stores its AuditEvent with it. */
export interface WriteAuditContext {
  site: AuditSite;
  actor: AuditActor;
}

export function requestAddress(req: Request): string | undefined {
  return req.ip ?? req.socket.remoteAddress ?? undefined;
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

export class Auditor {
  readonly site: AuditSite;
  private readonly log: AuditLog | undefined;
  /** Who made a request (auth/request-actor.ts); the audit layer does not read identities itself. */
  readonly actorOf: RequestActorOf;

  constructor(site: AuditSite, log: AuditLog | undefined, actorOf: RequestActorOf) {
    this.site = site;
    this.log = log;
    this.actorOf = actorOf;
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
    await this.record(
      restAuditEvent(this.site, {
        id: auditEventId(),
        recorded: new Date(),
        actor: this.actorOf(req, res),
        outcome,
        interaction: access.interaction,
        resources: references,
        patients: uniquePatients(resources),
        query: isSearch ? (access.query ?? '') : undefined,
      }),
    );
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
    await this.record(
      authenticationAuditEvent(this.site, {
        id: auditEventId(),
        recorded: new Date(),
        actor: { ...input.actor, address: requestAddress(req) },
        outcome: input.success ? '0' : '4',
        outcomeDesc: input.success ? undefined : input.failureText,
        event: input.event,
        scope: input.scope,
      }),
    );
  }

  /** Records events built elsewhere (the DICOM audit messages of audit/dicom-audit-event.ts). */
  async recordEvents(events: AuditEvent[]): Promise<void> {
    if (this.log && events.length > 0) {
      await this.log.record(events);
    }
  }
}
