-- The scopes a person's subscription was created (or last written) with: what their app was granted,
-- so events are told within those scopes and not within everything the person's role reaches.
ALTER TABLE subscription ADD COLUMN owner_scopes text;
