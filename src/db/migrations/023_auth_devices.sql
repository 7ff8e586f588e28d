-- Browsers a person has signed in from (auth/devices.ts): the browser keeps a random token in the
-- hub_device cookie, the database its SHA-256. A login from a known browser is not held back by the
-- lock-out that failures from elsewhere put on the account, so guessing at a coordinator's
-- password from another address cannot lock the coordinator out.
CREATE TABLE auth_device (
  token_hash bytea PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE INDEX auth_device_user ON auth_device (user_id);
