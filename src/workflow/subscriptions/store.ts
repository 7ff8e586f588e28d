/**
 * The hub's record of subscriptions and their events (migration 017). The Subscription a client sees
 * is its last write with the hub's own status, error and version; the event numbers are the hub's,
 * one sequence per subscription without gaps.
 */
import type { Subscription } from '@medplum/fhirtypes';
import { requiredRow } from '../../db/database.ts';
import type { Queryable } from '../../db/database.ts';
import { BACKPORT_SUBSCRIPTION_PROFILE } from './subscription-resource.ts';
import type { SubscriptionSettings } from './subscription-resource.ts';

export type SubscriptionStatus = 'requested' | 'active' | 'error' | 'off';

export interface StoredSubscription {
  id: string;
  owner: string;
  /** The scopes of a person's app (owners.ts ownerScopesOf); undefined for clients. */
  ownerScopes: string | undefined;
  version: number;
  content: Subscription;
  topic: string;
  status: SubscriptionStatus;
  error: string | undefined;
  endpoint: string;
  heartbeatSeconds: number | undefined;
  eventsSinceStart: number;
  lastDeliveredAt: Date | undefined;
  updatedAt: Date;
}

interface Row {
  id: string;
  owner: string;
  owner_scopes: string | null;
  version: number;
  content: Subscription | string;
  topic: string;
  status: SubscriptionStatus;
  error: string | null;
  endpoint: string;
  heartbeat_seconds: number | null;
  events_since_start: string | number;
  last_delivered_at: Date | string | null;
  updated_at: Date | string;
}

export interface StoredEvent {
  eventNumber: number;
  focus: string;
  additionalContext: string[];
  occurredAt: Date;
}

const COLUMNS =
  'id, owner, owner_scopes, version, content, topic, status, error, endpoint, heartbeat_seconds, events_since_start, last_delivered_at, updated_at';

function fromRow(row: Row): StoredSubscription {
  return {
    id: row.id,
    owner: row.owner,
    ownerScopes: row.owner_scopes ?? undefined,
    version: row.version,
    content: typeof row.content === 'string' ? (JSON.parse(row.content) as Subscription) : row.content,
    topic: row.topic,
    status: row.status,
    error: row.error ?? undefined,
    endpoint: row.endpoint,
    heartbeatSeconds: row.heartbeat_seconds ?? undefined,
    eventsSinceStart: Number(row.events_since_start),
    lastDeliveredAt: row.last_delivered_at === null ? undefined : new Date(row.last_delivered_at),
    updatedAt: new Date(row.updated_at),
  };
}

/** What a header's value reads as: the receiver's secrets are written, never read back. */
export const MASKED_HEADER_VALUE = '****';

/**
 * The Subscription as the API shows it: what the client wrote, with the hub's status, error and
 * version, and its channel headers' values masked.
 */
export function presented(subscription: StoredSubscription): Subscription {
  const { meta: _meta, status: _status, error: _error, ...content } = subscription.content;
  const headers = content.channel.header?.map((header) => `${header.split(':')[0] ?? ''}: ${MASKED_HEADER_VALUE}`);
  return {
    ...content,
    channel: { ...content.channel, ...(headers ? { header: headers } : {}) },
    resourceType: 'Subscription',
    id: subscription.id,
    meta: {
      versionId: String(subscription.version),
      lastUpdated: subscription.updatedAt.toISOString(),
      profile: [BACKPORT_SUBSCRIPTION_PROFILE],
    },
    status: subscription.status,
    ...(subscription.error ? { error: subscription.error } : {}),
  };
}

/** What is kept of a client's write: the resource without what the hub decides. */
function kept(resource: Subscription, id: string): Subscription {
  const { meta: _meta, status: _status, error: _error, ...content } = resource;
  return { ...content, id, status: 'requested' };
}

export class SubscriptionStore {
  private readonly db: Queryable;

  constructor(db: Queryable) {
    this.db = db;
  }

  async insert(
    id: string,
    owner: { key: string; scopes: string | undefined },
    resource: Subscription,
    settings: SubscriptionSettings,
    now: Date,
  ): Promise<StoredSubscription> {
    const result = await this.db.query<Row>(
      `INSERT INTO subscription (id, owner, owner_scopes, version, content, topic, status, endpoint, heartbeat_seconds, created_at, updated_at)
       VALUES ($1, $2, $9, 1, $3::jsonb, $4, $5, $6, $7, $8, $8) RETURNING ${COLUMNS}`,
      [
        id,
        owner.key,
        JSON.stringify(kept(resource, id)),
        settings.topic.canonical,
        settings.off ? 'off' : 'requested',
        settings.endpoint,
        settings.heartbeatSeconds ?? null,
        now.toISOString(),
        owner.scopes ?? null,
      ],
    );
    return fromRow(requiredRow(result, 'the subscription insert'));
  }

  /**
   * A client's update: a new version, `requested` again (a new handshake) unless it turned the
   * subscription off. The event count goes on: numbers never repeat within a subscription.
   */
  async update(
    id: string,
    resource: Subscription,
    settings: SubscriptionSettings,
    now: Date,
    ifVersion: number | undefined,
    ownerScopes: string | undefined,
  ): Promise<StoredSubscription | undefined> {
    const result = await this.db.query<Row>(
      `UPDATE subscription SET version = version + 1, content = $2::jsonb, topic = $3, status = $4, error = NULL,
         endpoint = $5, heartbeat_seconds = $6, updated_at = $7, owner_scopes = $9
       WHERE id = $1 AND ($8::integer IS NULL OR version = $8) RETURNING ${COLUMNS}`,
      [
        id,
        JSON.stringify(kept(resource, id)),
        settings.topic.canonical,
        settings.off ? 'off' : 'requested',
        settings.endpoint,
        settings.heartbeatSeconds ?? null,
        now.toISOString(),
        ifVersion ?? null,
        ownerScopes ?? null,
      ],
    );
    const row = result.rows[0];
    return row && fromRow(row);
  }

  async get(id: string): Promise<StoredSubscription | undefined> {
    const result = await this.db.query<Row>(`SELECT ${COLUMNS} FROM subscription WHERE id = $1`, [id]);
    const row = result.rows[0];
    return row && fromRow(row);
  }

  /** An owner's subscriptions (undefined: everyone's), in a status if given, oldest first. */
  async list(
    owner: string | undefined,
    status: string | undefined,
    limit: number,
    offset: number,
  ): Promise<StoredSubscription[]> {
    const result = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM subscription WHERE ($1::text IS NULL OR owner = $1) AND ($4::text IS NULL OR status = $4)
       ORDER BY created_at, id LIMIT $2 OFFSET $3`,
      [owner ?? null, limit, offset, status ?? null],
    );
    return result.rows.map(fromRow);
  }

  async count(owner: string | undefined): Promise<number> {
    const result = await this.db.query<{ n: string | number }>(
      'SELECT count(*) AS n FROM subscription WHERE ($1::text IS NULL OR owner = $1)',
      [owner ?? null],
    );
    return Number(requiredRow(result, 'the subscription count').n);
  }

  async delete(id: string): Promise<boolean> {
    const result = await this.db.query('DELETE FROM subscription WHERE id = $1', [id]);
    return result.rowCount > 0;
  }

  /** Sets the hub's status; `from` limits it to subscriptions in one of those states. True when it changed. */
  async setStatus(
    id: string,
    status: SubscriptionStatus,
    error: string | undefined,
    now: Date,
    from: readonly SubscriptionStatus[],
  ): Promise<boolean> {
    const result = await this.db.query(
      `UPDATE subscription SET status = $2, error = $3, updated_at = $4 WHERE id = $1 AND status = ANY($5::text[])`,
      [id, status, error ?? null, now.toISOString(), from],
    );
    return result.rowCount > 0;
  }

  async noteAttempt(id: string, delivered: boolean, now: Date): Promise<void> {
    await this.db.query(
      `UPDATE subscription SET last_attempt_at = $2${delivered ? ', last_delivered_at = $2' : ''} WHERE id = $1`,
      [id, now.toISOString()],
    );
  }

  /** The subscriptions of a topic that may still hear of events (not off, not past their end). */
  async listening(topic: string, now: Date): Promise<StoredSubscription[]> {
    const result = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM subscription WHERE topic = $1 AND status <> 'off'
       AND (content ->> 'end' IS NULL OR (content ->> 'end')::timestamptz > $2) ORDER BY id`,
      [topic, now.toISOString()],
    );
    return result.rows.map(fromRow);
  }

  /**
   * Numbers and records one event for a subscription, in the caller's transaction: the next number,
   * or undefined when this source was already recorded for it (a job that ran again).
   */
  async recordEvent(
    tx: Queryable,
    subscriptionId: string,
    event: { source: string; focus: string; additionalContext: string[]; occurredAt: Date },
  ): Promise<number | undefined> {
    const locked = await tx.query<{ events_since_start: string | number }>(
      `SELECT events_since_start FROM subscription WHERE id = $1 AND status <> 'off' FOR UPDATE`,
      [subscriptionId],
    );
    if (locked.rows.length === 0) {
      return undefined;
    }
    const seen = await tx.query('SELECT 1 FROM subscription_event WHERE subscription_id = $1 AND source = $2', [
      subscriptionId,
      event.source,
    ]);
    if (seen.rows.length > 0) {
      return undefined;
    }
    const numbered = await tx.query<{ events_since_start: string | number }>(
      'UPDATE subscription SET events_since_start = events_since_start + 1 WHERE id = $1 RETURNING events_since_start',
      [subscriptionId],
    );
    const eventNumber = Number(requiredRow(numbered, 'the event count').events_since_start);
    await tx.query(
      `INSERT INTO subscription_event (subscription_id, event_number, source, focus, additional_context, occurred_at)
       VALUES ($1, $2, $3, $4, $5::text[], $6)`,
      [subscriptionId, eventNumber, event.source, event.focus, event.additionalContext, event.occurredAt.toISOString()],
    );
    return eventNumber;
  }

  /** Events `since` < number ≤ `until`, oldest first, at most `limit`. */
  async events(subscriptionId: string, since: number, until: number, limit: number): Promise<StoredEvent[]> {
    const result = await this.db.query<{
      event_number: string | number;
      focus: string;
      additional_context: string[] | string;
      occurred_at: Date | string;
    }>(
      `SELECT event_number, focus, additional_context, occurred_at FROM subscription_event
       WHERE subscription_id = $1 AND event_number > $2 AND event_number <= $3 ORDER BY event_number LIMIT $4`,
      [subscriptionId, since, until, limit],
    );
    return result.rows.map((row) => ({
      eventNumber: Number(row.event_number),
      focus: row.focus,
      additionalContext: Array.isArray(row.additional_context)
        ? row.additional_context
        : parsePgArray(row.additional_context),
      occurredAt: new Date(row.occurred_at),
    }));
  }

  async markDelivered(subscriptionId: string, eventNumber: number, now: Date): Promise<void> {
    await this.db.query(
      'UPDATE subscription_event SET delivered_at = $3 WHERE subscription_id = $1 AND event_number = $2 AND delivered_at IS NULL',
      [subscriptionId, eventNumber, now.toISOString()],
    );
  }

  /** The numbers of events not delivered yet, oldest first. */
  async undelivered(subscriptionId: string, limit: number): Promise<number[]> {
    const result = await this.db.query<{ event_number: string | number }>(
      `SELECT event_number FROM subscription_event WHERE subscription_id = $1 AND delivered_at IS NULL
       ORDER BY event_number LIMIT $2`,
      [subscriptionId, limit],
    );
    return result.rows.map((row) => Number(row.event_number));
  }

  /**
   * Subscriptions a heartbeat is due for (active, nothing sent for their period), and those in error
   * whose last try is older than their heartbeat period, or `probeAfterSeconds` without one (a
   * heartbeat tells whether the endpoint is back).
   */
  async heartbeatsDue(now: Date, probeAfterSeconds: number): Promise<{ id: string; periodSeconds: number }[]> {
    const result = await this.db.query<{ id: string; period: number }>(
      `SELECT id, COALESCE(heartbeat_seconds, $2) AS period FROM subscription
       WHERE (status = 'active' AND heartbeat_seconds IS NOT NULL
              AND COALESCE(GREATEST(last_delivered_at, last_attempt_at), updated_at) <= $1::timestamptz - make_interval(secs => heartbeat_seconds))
          OR (status = 'error'
              AND COALESCE(last_attempt_at, updated_at) <= $1::timestamptz - make_interval(secs => COALESCE(heartbeat_seconds, $2)))
       ORDER BY COALESCE(last_attempt_at, updated_at) LIMIT 500`,
      [now.toISOString(), probeAfterSeconds],
    );
    return result.rows.map((row) => ({ id: row.id, periodSeconds: Number(row.period) }));
  }

  /** Turns off the subscriptions whose `end` has passed; returns how many. */
  async endExpired(now: Date): Promise<number> {
    const result = await this.db.query(
      `UPDATE subscription SET status = 'off', updated_at = $1
       WHERE status <> 'off' AND content ->> 'end' IS NOT NULL AND (content ->> 'end')::timestamptz <= $1::timestamptz`,
      [now.toISOString()],
    );
    return result.rowCount;
  }
}

/** `{a,b}` (PGlite returns text[] as text in some paths). */
function parsePgArray(text: string): string[] {
  const inner = text.replace(/^\{|\}$/g, '');
  return inner === '' ? [] : inner.split(',').map((part) => part.replace(/^"|"$/g, ''));
}
