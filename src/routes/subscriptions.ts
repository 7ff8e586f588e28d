/**
 * `/fhir/Subscription`: topic-based subscriptions of the R4 Subscriptions Backport IG (docs/api.md,
 * "Subscriptions"), served from the hub's own record (workflow/subscriptions/store.ts) rather than the
 * FHIR store, because their owner, status and event numbers are the hub's to keep.
 *
 * Create, read, update (a new handshake), delete, search of one's own, `$status` and `$events`. Each
 * subscription is seen and changed by its owner alone (and administrators); a person must be staff;
 * a system client needs its Subscription scopes. Every request is audited like any FHIR request.
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Request, Response, Router } from 'express';
import {
  OperationOutcomeError,
  badRequest,
  forbidden,
  normalizeOperationOutcome,
  notFound,
  preconditionFailed,
  serverError,
} from '@medplum/core';
import type { Bundle, OperationOutcome, Resource, Subscription } from '@medplum/fhirtypes';
import type { RestAccess } from '../audit/auditor.ts';
import { requestIdentity } from '../auth/authenticate.ts';
import { scopesAllow } from '../auth/scopes.ts';
import type { Database } from '../db/database.ts';
import { recordOutboxEvent } from '../db/outbox.ts';
import { methodNotAllowed, outcomeStatus, unprocessable } from '../fhir/outcomes.ts';
import type { Clock } from '../runtime/clock.ts';
import { deliveryEvent } from '../workflow/jobs/subscriptions.ts';
import { EndpointRefusedError } from '../workflow/subscriptions/endpoint-policy.ts';
import type { EndpointPolicy } from '../workflow/subscriptions/endpoint-policy.ts';
import { notificationBundle, statusParameters } from '../workflow/subscriptions/notification.ts';
import type { StatusFacts } from '../workflow/subscriptions/notification.ts';
import {
  isStaffRole,
  ownerMayRead,
  ownerOf,
  ownerScopesOf,
  seesAllSubscriptions,
} from '../workflow/subscriptions/owners.ts';
import { MASKED_HEADER_VALUE, SubscriptionStore, presented } from '../workflow/subscriptions/store.ts';
import type { StoredSubscription } from '../workflow/subscriptions/store.ts';
import { readSubscription } from '../workflow/subscriptions/subscription-resource.ts';
import type { PayloadContent } from '../workflow/subscriptions/subscription-resource.ts';
import { topicByCanonical } from '../workflow/subscriptions/topics.ts';

/** Subscriptions one owner may hold. */
export const MAX_SUBSCRIPTIONS_PER_OWNER = 50;
/** Events one `$events` answer carries at most; a receiver asks again from the last number. */
export const MAX_EVENTS_PER_QUERY = 100;
const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export interface SubscriptionRoutesOptions {
  db: Database;
  clock: Clock;
  endpoints: EndpointPolicy;
  fhirBase: string;
  onWrite?: () => void;
  /** The FHIR routes' answers and audit (routes/fhir.ts), so a subscription request looks like any other. */
  sendOutcome(res: Response, outcome: OperationOutcome, status?: number): void;
  sendJson(req: Request, res: Response, status: number, body: unknown): void;
  audited(req: Request, res: Response, access: RestAccess): Promise<boolean>;
}

function refusal(text: string, status: 403 | 404 | 422): OperationOutcomeError {
  if (status === 404) {
    return new OperationOutcomeError(notFound);
  }
  return new OperationOutcomeError(
    status === 403
      ? { ...forbidden, issue: [{ severity: 'error', code: 'forbidden', details: { text } }] }
      : unprocessable(text),
  );
}

/** Who may use subscriptions at all, and with which permission of their scopes. */
function assertMayUse(res: Response, permission: string): void {
  const identity = requestIdentity(res);
  if (!identity) {
    return;
  }
  if (identity.kind === 'user' && !isStaffRole(identity.role)) {
    throw refusal('Subscriptions are for EHR systems and the service’s staff', 403);
  }
  if (!scopesAllow(identity.scopes, 'Subscription', permission)) {
    throw refusal(`The access token's scopes do not allow this on Subscription (needs "${permission}")`, 403);
  }
}

function contentOf(subscription: StoredSubscription): PayloadContent {
  try {
    return readSubscription(subscription.content).content;
  } catch {
    return 'empty';
  }
}

export function createSubscriptionRoutes(options: SubscriptionRoutesOptions): Router {
  const routes = express.Router();
  const store = new SubscriptionStore(options.db);

  /** The subscription when the caller may see it; 404 otherwise (as for one that does not exist). */
  const visible = async (res: Response, id: string): Promise<StoredSubscription> => {
    const subscription = ID_PATTERN.test(id) ? await store.get(id) : undefined;
    const identity = requestIdentity(res);
    if (!subscription || (subscription.owner !== ownerOf(identity) && !seesAllSubscriptions(identity))) {
      throw refusal('', 404);
    }
    return subscription;
  };

  const statusFacts = (subscription: StoredSubscription, type: StatusFacts['type']): StatusFacts => ({
    subscriptionUrl: `${options.fhirBase}/Subscription/${subscription.id}`,
    topic: subscription.topic,
    status: subscription.status,
    type,
    eventsSinceStart: subscription.eventsSinceStart,
    events: [],
    error: subscription.error,
    fhirBase: options.fhirBase,
  });

  const answer = async (
    req: Request,
    res: Response,
    access: Omit<RestAccess, 'status'>,
    work: () => Promise<{ status: number; body?: Resource; headers?: Record<string, string> }>,
  ): Promise<void> => {
    let result: { status: number; body?: Resource; headers?: Record<string, string> };
    try {
      result = await work();
    } catch (err) {
      const outcome = err instanceof OperationOutcomeError ? normalizeOperationOutcome(err) : serverError(err as Error);
      const status = outcomeStatus(outcome);
      if (await options.audited(req, res, { ...access, status })) {
        options.sendOutcome(res, outcome, status);
      }
      return;
    }
    const target = access.target && { ...access.target, id: result.body?.id ?? access.target.id };
    if (!(await options.audited(req, res, { ...access, target, status: result.status, resource: result.body }))) {
      return;
    }
    for (const [name, value] of Object.entries(result.headers ?? {})) {
      res.setHeader(name, value);
    }
    if (result.body) {
      options.sendJson(req, res, result.status, result.body);
    } else {
      res.status(result.status).end();
    }
  };

  const resourceHeaders = (subscription: StoredSubscription): Record<string, string> => ({
    ETag: `W/"${subscription.version}"`,
    'Last-Modified': subscription.updatedAt.toUTCString(),
  });

  /** The client's write checked (400/422) and its endpoint allowed, or the reason it is not. */
  const readWrite = async (body: unknown): Promise<ReturnType<typeof readSubscription>> => {
    const settings = readSubscription(body);
    try {
      await options.endpoints.check(settings.endpoint);
    } catch (err) {
      if (err instanceof EndpointRefusedError) {
        throw refusal(err.message, 422);
      }
      throw err;
    }
    return settings;
  };

  routes.post('/', (req, res) =>
    answer(req, res, { interaction: 'create', target: { resourceType: 'Subscription' } }, async () => {
      assertMayUse(res, 'c');
      const identity = requestIdentity(res);
      const owner = ownerOf(identity);
      const settings = await readWrite(req.body);
      if ((await store.count(owner)) >= MAX_SUBSCRIPTIONS_PER_OWNER) {
        throw refusal(`at most ${MAX_SUBSCRIPTIONS_PER_OWNER} subscriptions per client; delete unused ones`, 422);
      }
      const id = randomUUID();
      const created = await options.db.transaction(async (tx) => {
        const row = await new SubscriptionStore(tx).insert(
          id,
          { key: owner, scopes: ownerScopesOf(identity) },
          req.body as Subscription,
          settings,
          options.clock.now(),
        );
        if (!settings.off) {
          await recordOutboxEvent(tx, deliveryEvent(id, 'handshake'));
        }
        return row;
      });
      options.onWrite?.();
      return {
        status: 201,
        body: presented(created),
        headers: {
          ...resourceHeaders(created),
          Location: `${options.fhirBase}/Subscription/${id}/_history/${created.version}`,
        },
      };
    }),
  );

  routes.get('/', (req, res) =>
    answer(req, res, { interaction: 'search-type', target: { resourceType: 'Subscription' } }, async () => {
      assertMayUse(res, 's');
      const identity = requestIdentity(res);
      const count = Math.min(Math.max(Number(req.query._count ?? 50) || 50, 1), 200);
      const offset = Math.max(Number(req.query._offset ?? 0) || 0, 0);
      const status = typeof req.query.status === 'string' ? req.query.status : undefined;
      const unknown = Object.keys(req.query).filter((name) => !['_count', '_offset', 'status'].includes(name));
      if (unknown.length > 0) {
        throw new OperationOutcomeError(
          badRequest(
            `Subscription search supports status, _count and _offset; not ${unknown.join(', ').slice(0, 200)}`,
          ),
        );
      }
      const owner = seesAllSubscriptions(identity) ? undefined : ownerOf(identity);
      const all = await store.list(owner, status, count + 1, offset);
      const page = all.slice(0, count);
      const query = (at: number) =>
        `${options.fhirBase}/Subscription?${status ? `status=${encodeURIComponent(status)}&` : ''}_count=${count}&_offset=${at}`;
      const bundle: Bundle = {
        resourceType: 'Bundle',
        type: 'searchset',
        link: [
          { relation: 'self', url: query(offset) },
          ...(all.length > count ? [{ relation: 'next', url: query(offset + count) }] : []),
        ],
        entry: page.map((subscription) => ({
          fullUrl: `${options.fhirBase}/Subscription/${subscription.id}`,
          resource: presented(subscription),
          search: { mode: 'match' },
        })),
      };
      return { status: 200, body: bundle };
    }),
  );

  routes.get('/$status', (req, res) =>
    answer(req, res, { interaction: 'operation', target: { resourceType: 'Subscription' } }, async () => {
      assertMayUse(res, 'r');
      const ids = [req.query.id ?? []].flat().flatMap((value) => String(value).split(','));
      const found: StoredSubscription[] = [];
      for (const id of ids.slice(0, 100)) {
        const subscription = await visible(res, id).catch(() => undefined);
        if (subscription) {
          found.push(subscription);
        }
      }
      return { status: 200, body: statusBundle(found) };
    }),
  );

  const statusBundle = (subscriptions: readonly StoredSubscription[]): Bundle => ({
    resourceType: 'Bundle',
    type: 'searchset',
    entry: subscriptions.map((subscription) => ({
      resource: statusParameters(statusFacts(subscription, 'query-status'), 'empty'),
      search: { mode: 'match' },
    })),
  });

  routes.get('/:id', (req, res) =>
    answer(req, res, { interaction: 'read', target: { resourceType: 'Subscription', id: req.params.id } }, async () => {
      assertMayUse(res, 'r');
      const subscription = await visible(res, req.params.id);
      return { status: 200, body: presented(subscription), headers: resourceHeaders(subscription) };
    }),
  );

  routes.put('/:id', (req, res) =>
    answer(
      req,
      res,
      { interaction: 'update', target: { resourceType: 'Subscription', id: req.params.id } },
      async () => {
        assertMayUse(res, 'u');
        const current = await visible(res, req.params.id).catch(() => {
          throw refusal('Subscriptions are created with POST; the hub chooses their ids', 404);
        });
        const body = req.body as Subscription;
        if (body.id !== undefined && body.id !== current.id) {
          throw new OperationOutcomeError(badRequest('The resource id does not match the URL'));
        }
        const written = withKeptHeaders(body, current);
        const settings = await readWrite(written);
        const ifMatch = /^W\/"(\d+)"$/.exec(String(req.headers['if-match'] ?? ''))?.[1];
        const updated = await options.db.transaction(async (tx) => {
          const row = await new SubscriptionStore(tx).update(
            current.id,
            written,
            settings,
            options.clock.now(),
            ifMatch === undefined ? undefined : Number(ifMatch),
            ownerScopesOf(requestIdentity(res)),
          );
          if (row && !settings.off) {
            await recordOutboxEvent(tx, deliveryEvent(row.id, 'handshake'));
          }
          return row;
        });
        if (!updated) {
          throw new OperationOutcomeError({
            ...preconditionFailed,
            issue: [
              {
                severity: 'error',
                code: 'conflict',
                details: { text: 'The Subscription has changed since (If-Match)' },
              },
            ],
          });
        }
        options.onWrite?.();
        return { status: 200, body: presented(updated), headers: resourceHeaders(updated) };
      },
    ),
  );

  routes.delete('/:id', (req, res) =>
    answer(
      req,
      res,
      { interaction: 'delete', target: { resourceType: 'Subscription', id: req.params.id } },
      async () => {
        assertMayUse(res, 'd');
        const subscription = await visible(res, req.params.id);
        await store.delete(subscription.id);
        return { status: 204 };
      },
    ),
  );

  routes.get('/:id/$status', (req, res) =>
    answer(
      req,
      res,
      { interaction: 'operation', target: { resourceType: 'Subscription', id: req.params.id } },
      async () => {
        assertMayUse(res, 'r');
        return { status: 200, body: statusBundle([await visible(res, req.params.id)]) };
      },
    ),
  );

  const events = (req: Request, res: Response): Promise<void> =>
    answer(
      req,
      res,
      { interaction: 'operation', target: { resourceType: 'Subscription', id: String(req.params.id) } },
      async () => {
        assertMayUse(res, 'r');
        const subscription = await visible(res, String(req.params.id));
        const parameters = { ...(req.query as Record<string, unknown>), ...parametersOf(req.body) };
        const since = numberParameter(parameters.eventsSinceNumber, 0);
        const until = numberParameter(parameters.eventsUntilNumber, subscription.eventsSinceStart);
        const wanted = parameters.content === undefined ? contentOf(subscription) : String(parameters.content);
        if (wanted !== 'id-only' && wanted !== 'empty') {
          throw refusal(`content "${wanted.slice(0, 64)}" is not offered; use empty or id-only`, 422);
        }
        const topic = topicByCanonical(subscription.topic);
        const allowed =
          topic !== undefined &&
          (await ownerMayRead(options.db, subscription.owner, topic.focusType, subscription.ownerScopes));
        // Events are numbered from 1; both bounds are inclusive (the IG's $events).
        const found = allowed
          ? await store.events(subscription.id, Math.max(since - 1, 0), until, MAX_EVENTS_PER_QUERY)
          : [];
        const facts = { ...statusFacts(subscription, 'query-event'), events: found };
        return { status: 200, body: notificationBundle(facts, wanted, options.clock.now()) };
      },
    );
  routes.get('/:id/$events', events);
  routes.post('/:id/$events', events);

  routes.all(['/', '/:id', '/:id/*rest'], (req, res) => {
    const text =
      req.method === 'PATCH'
        ? 'Subscriptions are changed with PUT'
        : `${req.method} is not offered on Subscription (no history, no other operation)`;
    options.sendOutcome(res, methodNotAllowed(text));
  });

  return routes;
}

/**
 * A PUT of what a GET returned carries masked header values (store.ts presented): each header whose
 * value is the mask keeps the value stored under its name.
 */
function withKeptHeaders(body: Subscription, current: StoredSubscription): Subscription {
  const headers = body.channel?.header;
  if (!headers) {
    return body;
  }
  const stored = new Map(
    (current.content.channel.header ?? []).map((header) => {
      const colon = header.indexOf(':');
      return [header.slice(0, colon).toLowerCase(), header] as const;
    }),
  );
  const kept = headers.map((header) => {
    const [name = '', value = ''] = header.split(/:[ \t]*/, 2);
    return value.trim() === MASKED_HEADER_VALUE ? (stored.get(name.toLowerCase()) ?? header) : header;
  });
  return { ...body, channel: { ...body.channel, header: kept } };
}

function parametersOf(body: unknown): Record<string, unknown> {
  const parameters = (body as { resourceType?: string; parameter?: { name: string; [value: string]: unknown }[] })
    ?.parameter;
  if ((body as { resourceType?: string } | undefined)?.resourceType !== 'Parameters' || !parameters) {
    return {};
  }
  return Object.fromEntries(
    parameters.map((parameter) => [
      parameter.name,
      parameter.valueString ?? parameter.valueCode ?? parameter.valueInteger ?? parameter.valueUnsignedInt,
    ]),
  );
}

function numberParameter(value: unknown, fallback: number): number {
  if (value === undefined || value === '') {
    return fallback;
  }
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) {
    throw new OperationOutcomeError(badRequest('eventsSinceNumber and eventsUntilNumber are whole numbers'));
  }
  return number;
}
