-- EHR notifications (R4 Subscriptions Backport IG, topic-based; src/workflow/subscriptions/): the
-- subscriptions, kept by the hub and not in the FHIR store, because who owns one, its status and its
-- event count are the hub's to decide, never what a client wrote.
CREATE TABLE subscription (
  id text PRIMARY KEY,
  -- Who created it: `client:<client id>`, `user:<user id>` or `anonymous` (AUTH_REQUIRED=false).
  owner text NOT NULL,
  version integer NOT NULL,
  -- The Subscription resource as last written, without status and error (the columns below).
  content jsonb NOT NULL,
  topic text NOT NULL,
  -- requested | active | error | off (R4 SubscriptionStatus).
  status text NOT NULL,
  error text,
  endpoint text NOT NULL,
  heartbeat_seconds integer,
  events_since_start bigint NOT NULL DEFAULT 0,
  -- When the hub last posted to the endpoint successfully, and when it last tried.
  last_delivered_at timestamptz,
  last_attempt_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX subscription_owner ON subscription (owner);
CREATE INDEX subscription_topic ON subscription (topic) WHERE status <> 'off';

-- Every event a subscription was told of (or will be), numbered per subscription from 1 with no
-- gaps, so a receiver can see one is missing and ask $events for it.
CREATE TABLE subscription_event (
  subscription_id text NOT NULL REFERENCES subscription (id) ON DELETE CASCADE,
  event_number bigint NOT NULL,
  -- What caused it: the resource version (`Task/<id>/_history/<v>`), one event per source and subscription.
  source text NOT NULL,
  focus text NOT NULL,
  additional_context text[] NOT NULL DEFAULT '{}',
  occurred_at timestamptz NOT NULL,
  delivered_at timestamptz,
  PRIMARY KEY (subscription_id, event_number),
  UNIQUE (subscription_id, source)
);
CREATE INDEX subscription_event_undelivered ON subscription_event (subscription_id, event_number)
  WHERE delivered_at IS NULL;
