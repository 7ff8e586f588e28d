-- This database's identity. The outbox relay's BullMQ job ids carry it, so that two databases on one
-- Redis can never produce the same job id, and a QUEUE_PREFIX belongs to one database
-- (src/queues/queue-prefix.ts). A copy made with pg_dump or a file-level backup keeps it.
CREATE TABLE hub_database (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  id uuid NOT NULL
);
INSERT INTO hub_database (id) VALUES (gen_random_uuid());
