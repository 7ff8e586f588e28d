-- People's accounts and login (src/auth/users.ts, sessions.ts, authorize-endpoint.ts): users, their
-- server-side sessions, one-time authorization codes, and public clients (the dashboard, SMART apps)
-- with their redirect URIs.

CREATE TABLE auth_user (
  id uuid PRIMARY KEY,
  -- unique whatever the case (auth_user_email below); stored as entered
  email text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
  role text NOT NULL CHECK (role IN ('coordinator', 'specialist', 'radiologist', 'pathologist', 'referring-physician', 'patient', 'admin')),
  -- the FHIR resource the person is: Practitioner/<id> or Patient/<id>
  fhir_user text CHECK (fhir_user ~ '^(Practitioner|Patient)/[A-Za-z0-9\-.]{1,64}$'),
  -- $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash> (passwords.ts): the parameters travel with the hash
  password_hash text NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  -- RFC 4648 base32 TOTP secret; required of staff (every role but patient and referring-physician)
  totp_secret text,
  -- the last RFC 6238 time step accepted: a code is never accepted twice
  totp_last_step bigint,
  failed_attempts integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (role IN ('patient', 'referring-physician') OR totp_secret IS NOT NULL)
);

CREATE UNIQUE INDEX auth_user_email ON auth_user (lower(email));

-- A login at the hub's authorization server. The browser holds a random cookie; only its SHA-256 is
-- stored. It ends at expires_at (absolute), after idle_seconds without use, or when revoked (logout,
-- the user disabled); access tokens carry its id (sid) so that revocation reaches them.
CREATE TABLE auth_session (
  id uuid PRIMARY KEY,
  token_hash bytea NOT NULL UNIQUE,
  user_id uuid NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  idle_seconds integer NOT NULL CHECK (idle_seconds > 0),
  revoked_at timestamptz
);

CREATE INDEX auth_session_user ON auth_session (user_id);
CREATE INDEX auth_session_expiry ON auth_session (expires_at);
CREATE INDEX auth_session_revoked ON auth_session (revoked_at) WHERE revoked_at IS NOT NULL;

-- RFC 6749 §4.1.2 authorization codes: only the SHA-256 of the code is stored; one use, short-lived,
-- bound to the client, the redirect URI and the PKCE challenge (RFC 7636, S256).
CREATE TABLE auth_authorization_code (
  code_hash bytea PRIMARY KEY,
  client_id text NOT NULL REFERENCES auth_client (id) ON DELETE CASCADE,
  redirect_uri text NOT NULL,
  code_challenge text NOT NULL,
  scope text NOT NULL,
  nonce text,
  session_id uuid NOT NULL REFERENCES auth_session (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);

CREATE INDEX auth_authorization_code_expiry ON auth_authorization_code (expires_at);

-- Public clients (RFC 6749 §2.1: no secret, no keys) log people in through the authorization endpoint
-- and must have redirect URIs; confidential clients keep exactly one of an inline JWKS or a JWKS URL.
ALTER TABLE auth_client ADD COLUMN public boolean NOT NULL DEFAULT false;
ALTER TABLE auth_client ADD COLUMN redirect_uris jsonb NOT NULL DEFAULT '[]';
ALTER TABLE auth_client DROP CONSTRAINT auth_client_check;
ALTER TABLE auth_client ADD CONSTRAINT auth_client_keys CHECK (
  CASE WHEN public THEN jwks IS NULL AND jwks_url IS NULL AND jsonb_array_length(redirect_uris) > 0
  ELSE (jwks IS NULL) <> (jwks_url IS NULL) END
);
