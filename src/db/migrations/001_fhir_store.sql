-- The FHIR store: current resources, every version, and one search index table per parameter kind.
-- Resource JSON is kept as text (served as stored, never re-encoded on the way in).

CREATE TABLE resource (
  resource_type text NOT NULL,
  id text NOT NULL,
  -- creation order; the default, immutable sort key that keeps paging stable while data changes
  seq bigserial NOT NULL,
  version integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  content text,
  PRIMARY KEY (resource_type, id)
);
CREATE UNIQUE INDEX resource_type_seq ON resource (resource_type, seq);
CREATE INDEX resource_type_last_updated ON resource (resource_type, last_updated);

CREATE TABLE resource_version (
  resource_type text NOT NULL,
  id text NOT NULL,
  version integer NOT NULL,
  last_updated timestamptz NOT NULL,
  method text NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  content text,
  PRIMARY KEY (resource_type, id, version)
);
CREATE INDEX resource_version_last_updated ON resource_version (last_updated);
CREATE INDEX resource_version_type_last_updated ON resource_version (resource_type, last_updated);

CREATE TABLE sp_token (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  param text NOT NULL,
  system text,
  value text,
  -- lower-cased display text of the coding or concept, for the :text modifier
  display text
);
CREATE INDEX sp_token_search ON sp_token (resource_type, param, value, system);
CREATE INDEX sp_token_owner ON sp_token (resource_type, resource_id);

CREATE TABLE sp_string (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  param text NOT NULL,
  -- lower case without diacritics, for the default starts-with and :contains matches
  normalized text NOT NULL,
  exact text NOT NULL
);
CREATE INDEX sp_string_search ON sp_string (resource_type, param, normalized text_pattern_ops);
CREATE INDEX sp_string_owner ON sp_string (resource_type, resource_id);

CREATE TABLE sp_reference (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  param text NOT NULL,
  target_type text,
  target_id text,
  reference text NOT NULL
);
CREATE INDEX sp_reference_search ON sp_reference (resource_type, param, target_id);
CREATE INDEX sp_reference_target ON sp_reference (target_type, target_id);
CREATE INDEX sp_reference_owner ON sp_reference (resource_type, resource_id);

CREATE TABLE sp_date (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  param text NOT NULL,
  low timestamptz,
  high timestamptz
);
CREATE INDEX sp_date_search ON sp_date (resource_type, param, low, high);
CREATE INDEX sp_date_owner ON sp_date (resource_type, resource_id);

CREATE TABLE sp_number (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  param text NOT NULL,
  low numeric,
  high numeric,
  -- quantities only
  system text,
  code text
);
CREATE INDEX sp_number_search ON sp_number (resource_type, param, low);
CREATE INDEX sp_number_owner ON sp_number (resource_type, resource_id);

CREATE TABLE sp_uri (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  param text NOT NULL,
  value text NOT NULL
);
CREATE INDEX sp_uri_search ON sp_uri (resource_type, param, value);
CREATE INDEX sp_uri_owner ON sp_uri (resource_type, resource_id);

-- Binary content lives in the blob store; this row ties a Binary version to its blob.
CREATE TABLE binary_content (
  id text NOT NULL,
  version integer NOT NULL,
  blob_key text NOT NULL,
  size bigint NOT NULL,
  PRIMARY KEY (id, version)
);

-- The transactional outbox (architecture.md): written in the same transaction as the data,
-- relayed to BullMQ with the outbox id as the job id.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  queue text NOT NULL,
  name text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  dispatched_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE dispatched_at IS NULL;
