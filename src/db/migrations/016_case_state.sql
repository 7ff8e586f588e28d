-- The state the hub last settled for each case, and since when (src/workflow/progression.ts): the base
-- against which a move someone writes on the coordination Task is checked, kept where no client can
-- write it (a client can write as many Task versions as it likes), and the start of a pause.
CREATE TABLE case_state (
  case_id text PRIMARY KEY,
  state text NOT NULL,
  since timestamptz NOT NULL
);
