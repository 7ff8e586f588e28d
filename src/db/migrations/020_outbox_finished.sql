-- An outbox event keeps its obligation until its job is seen finished (architecture.md, "The
-- transactional outbox and its relay"): Redis acknowledges writes it may lose in a crash, so the
-- relay's mark of dispatch no longer ends it. A worker records here that the job completed or failed
-- for good; the relay's sweep adds again, under the same job id, the jobs of dispatched events that
-- are not recorded finished and that Redis no longer holds.
ALTER TABLE outbox ADD COLUMN finished_at timestamptz;

-- Events dispatched before this migration: what became of their jobs is not known here. They keep
-- the guarantee they were dispatched under, and the sweep leaves them alone.
UPDATE outbox SET finished_at = dispatched_at WHERE dispatched_at IS NOT NULL;

-- The sweep's query: dispatched, not finished, in id order.
CREATE INDEX outbox_unfinished ON outbox (id) WHERE dispatched_at IS NOT NULL AND finished_at IS NULL;
