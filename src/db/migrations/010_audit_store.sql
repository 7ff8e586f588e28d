-- The audit trail (audit/): AuditEvents in an append-only table of their own instead of `resource`
-- and the sp_* index tables. An audited read used to insert a resource row and about eight index
-- rows, each with two or three indexes; here it is one row with three indexes. The columns hold
-- exactly what AuditEvent search needs (audit/audit-columns.ts computes them):
--   tokens as `system|code` (`|code` without a system), references in their local form `Type/id`
--   (no version) or as written when absolute, and agent identifiers as `system|value`.
-- The hub's own agent (Destination Role ID) is the same in every event and is left out.

CREATE TABLE audit_event (
  id text PRIMARY KEY,
  -- storage order: the tie-breaker of paging, as resource.seq is
  seq bigint GENERATED ALWAYS AS IDENTITY,
  recorded timestamptz NOT NULL,
  type text,
  subtype text[] NOT NULL,
  action text,
  outcome text,
  patient text[] NOT NULL,
  agent text[] NOT NULL,
  agent_identifier text[] NOT NULL,
  entity text[] NOT NULL,
  content text NOT NULL
);
CREATE INDEX audit_event_recorded ON audit_event (recorded);
-- One GIN index for every reference search (`@>` / `&&` on any of the four arrays).
CREATE INDEX audit_event_references ON audit_event USING gin (patient, entity, agent, agent_identifier);

-- The AuditEvents stored before this migration move over, their columns computed from their JSON
-- the way audit-columns.ts computes them; their old rows go. The two helper functions exist only
-- while this migration runs.
CREATE FUNCTION audit_migration_reference(reference text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN reference IS NULL THEN NULL
    WHEN strpos(reference, ':') > 0 THEN reference
    ELSE coalesce(substring(reference FROM '([A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64})(?:/_history/[^/]+)?$'), reference)
  END
$$;

CREATE FUNCTION audit_migration_token(coding jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN coding ? 'code' THEN coalesce(coding ->> 'system', '') || '|' || (coding ->> 'code') END
$$;

INSERT INTO audit_event (id, recorded, type, subtype, action, outcome, patient, agent, agent_identifier, entity, content)
SELECT
  r.id,
  coalesce((c ->> 'recorded')::timestamptz, r.last_updated),
  audit_migration_token(c -> 'type'),
  ARRAY(SELECT t FROM (SELECT audit_migration_token(s) AS t FROM jsonb_array_elements(coalesce(c -> 'subtype', '[]')) s) x WHERE t IS NOT NULL),
  c ->> 'action',
  c ->> 'outcome',
  ARRAY(
    SELECT DISTINCT ref FROM (
      SELECT audit_migration_reference(a -> 'who' ->> 'reference') AS ref FROM jsonb_array_elements(coalesce(c -> 'agent', '[]')) a
      UNION ALL
      SELECT audit_migration_reference(e -> 'what' ->> 'reference') FROM jsonb_array_elements(coalesce(c -> 'entity', '[]')) e
    ) refs WHERE ref LIKE 'Patient/%'
  ),
  ARRAY(
    SELECT DISTINCT audit_migration_reference(a -> 'who' ->> 'reference') FROM jsonb_array_elements(coalesce(c -> 'agent', '[]')) a
    WHERE a -> 'who' ->> 'reference' IS NOT NULL AND a -> 'type' -> 'coding' -> 0 ->> 'code' IS DISTINCT FROM '110152'
  ),
  ARRAY(
    SELECT DISTINCT coalesce(a -> 'who' -> 'identifier' ->> 'system', '') || '|' || (a -> 'who' -> 'identifier' ->> 'value')
    FROM jsonb_array_elements(coalesce(c -> 'agent', '[]')) a
    WHERE a -> 'who' -> 'identifier' ->> 'value' IS NOT NULL AND a -> 'type' -> 'coding' -> 0 ->> 'code' IS DISTINCT FROM '110152'
  ),
  ARRAY(
    SELECT DISTINCT audit_migration_reference(e -> 'what' ->> 'reference') FROM jsonb_array_elements(coalesce(c -> 'entity', '[]')) e
    WHERE e -> 'what' ->> 'reference' IS NOT NULL
  ),
  r.content
FROM resource r, LATERAL (SELECT r.content::jsonb AS c) j
WHERE r.resource_type = 'AuditEvent' AND NOT r.deleted AND r.content IS NOT NULL
ORDER BY r.seq
ON CONFLICT (id) DO NOTHING;

DELETE FROM sp_token WHERE resource_type = 'AuditEvent';
DELETE FROM sp_string WHERE resource_type = 'AuditEvent';
DELETE FROM sp_reference WHERE resource_type = 'AuditEvent';
DELETE FROM sp_date WHERE resource_type = 'AuditEvent';
DELETE FROM sp_number WHERE resource_type = 'AuditEvent';
DELETE FROM sp_uri WHERE resource_type = 'AuditEvent';
DELETE FROM resource_version WHERE resource_type = 'AuditEvent';
DELETE FROM resource WHERE resource_type = 'AuditEvent';

DROP FUNCTION audit_migration_reference(text);
DROP FUNCTION audit_migration_token(jsonb);
