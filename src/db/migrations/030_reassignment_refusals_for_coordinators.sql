-- A refused reassignment of a case's specialist said why in the note the hub wrote on the offer
-- (authorString "Second-opinion hub: reassignment") and in the coordination Task's `move-refused`
-- statusReason: "The reassignment to Dr X was refused: licence expired on …; on leave until …; at
-- capacity (5 of 5)", readable by every member of the case (the referring physician, the patient,
-- the specialist offered). The hub now keeps those reasons in a Provenance of the offer that only
-- coordinators, admins and system clients with Provenance scopes read (workflow/reassignment.ts).
-- Here the notes and reasons already written, in every version, keep "The reassignment to Dr X was
-- refused." only; the reasons themselves are not kept. A refusal that names nobody ("The
-- reassignment was refused: only a coordinator reassigns …", the case's state) is left as it is.
CREATE FUNCTION pg_temp.refusal_cut(text text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN text LIKE 'The reassignment to % was refused: %'
    THEN left(text, strpos(text, ' was refused: ') - 1) || ' was refused.'
    ELSE text END
$$;

CREATE FUNCTION pg_temp.reassignment_notes_cut(content text) RETURNS text LANGUAGE sql AS $$
  SELECT jsonb_set(
    content::jsonb,
    '{note}',
    (SELECT jsonb_agg(
        CASE WHEN n ->> 'authorString' = 'Second-opinion hub: reassignment' AND jsonb_typeof(n -> 'text') = 'string'
          THEN jsonb_set(n, '{text}', to_jsonb(pg_temp.refusal_cut(n ->> 'text')))
          ELSE n END
        ORDER BY i)
      FROM jsonb_array_elements(content::jsonb -> 'note') WITH ORDINALITY AS t(n, i)))::text
$$;

CREATE FUNCTION pg_temp.move_refused_cut(content text) RETURNS text LANGUAGE sql AS $$
  SELECT jsonb_set(
    content::jsonb,
    '{statusReason,text}',
    to_jsonb(pg_temp.refusal_cut(content::jsonb #>> '{statusReason,text}'))
  )::text
$$;

UPDATE resource SET content = pg_temp.reassignment_notes_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%Second-opinion hub: reassignment%'
  AND jsonb_typeof(content::jsonb -> 'note') = 'array';

UPDATE resource_version SET content = pg_temp.reassignment_notes_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%Second-opinion hub: reassignment%'
  AND jsonb_typeof(content::jsonb -> 'note') = 'array';

UPDATE resource SET content = pg_temp.move_refused_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%move-refused%'
  AND content::jsonb #>> '{statusReason,text}' LIKE 'The reassignment to % was refused: %'
  AND content::jsonb -> 'statusReason' -> 'coding' @> '[{"system": "urn:hub:case-reason", "code": "move-refused"}]';

UPDATE resource_version SET content = pg_temp.move_refused_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%move-refused%'
  AND content::jsonb #>> '{statusReason,text}' LIKE 'The reassignment to % was refused: %'
  AND content::jsonb -> 'statusReason' -> 'coding' @> '[{"system": "urn:hub:case-reason", "code": "move-refused"}]';
