-- E-mail notifications (src/queues/notifications.ts). A row is recorded in the same transaction as
-- the change it announces, with an outbox event whose job carries the row's id only. The recipient is
-- a FHIR reference: the address is read from the FHIR store when the e-mail is sent, never stored.
CREATE TABLE notification (
  id uuid PRIMARY KEY,
  kind text NOT NULL,
  -- Patient/<id> or Practitioner/<id>
  recipient text NOT NULL CHECK (recipient ~ '^(Patient|Practitioner)/[A-Za-z0-9.-]{1,64}$'),
  case_reference text NOT NULL,
  -- What makes this notification unique (e.g. the Task version that caused it): recording it twice keeps one.
  dedupe_key text NOT NULL UNIQUE,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  -- The same on every try, so a receiving mail system can drop a second copy.
  message_id text NOT NULL UNIQUE,
  attempts integer NOT NULL DEFAULT 0,
  -- Redacted: no e-mail address, no PHI.
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz
);
CREATE INDEX notification_case ON notification (case_reference);
CREATE INDEX notification_unsent ON notification (created_at) WHERE status <> 'sent';
