-- SMART Backend Services (src/auth/): the registered clients, the assertion ids already used, and the
-- hub's own keys for signing access tokens.

-- A system client (an EHR, an imaging system) and the public keys its assertions are signed with:
-- a JWKS registered inline or the URL the client publishes it at, never both.
CREATE TABLE auth_client (
  id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._~:-]{0,127}$'),
  jwks jsonb,
  jwks_url text,
  -- the scopes the client may be granted, space-separated SMART v2 (system/Patient.rs system/*.s)
  scopes text NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((jwks IS NULL) <> (jwks_url IS NULL))
);

-- The jti of every accepted client assertion until the assertion expires: a replay is refused in
-- every process of the hub (the primary key), and expired rows are deleted as tokens are issued.
CREATE TABLE auth_assertion_jti (
  client_id text NOT NULL,
  jti text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);

CREATE INDEX auth_assertion_jti_expiry ON auth_assertion_jti (expires_at);

-- The hub's access-token signing keys (ES256 JWKs), shared by every process through the database.
-- The newest unretired key signs; every unretired key verifies, so a new key can be added before
-- the old one is retired.
CREATE TABLE auth_signing_key (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  private_jwk jsonb NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz
);
