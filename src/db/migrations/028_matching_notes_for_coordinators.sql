-- The matching wrote its whole ranking into the note of each specialist's offer, and the names and
-- reasons of the specialists it excluded into the coordination Task's "no specialist" reason: other
-- specialists' names, their workload, "licence expired", "on leave", readable by every member of
-- the case (the referring physician, the patient, the specialist offered). The hub now keeps that
-- explanation in a Provenance only coordinators and admins read (workflow/specialists.ts). Here the
-- notes and reasons already written, in every version, keep their first line only ("Offered to
-- Dr X (rank 1 of 4)."; "No eligible specialist is left to offer the case to; …"); the rest of
-- their explanation is not kept.
CREATE FUNCTION pg_temp.matching_notes_cut(content text) RETURNS text LANGUAGE sql AS $$
  SELECT jsonb_set(
    content::jsonb,
    '{note}',
    (SELECT jsonb_agg(
        CASE WHEN n ->> 'authorString' = 'Second-opinion hub: matching'
          THEN jsonb_set(n, '{text}', to_jsonb(split_part(n ->> 'text', E'\n', 1)))
          ELSE n END
        ORDER BY i)
      FROM jsonb_array_elements(content::jsonb -> 'note') WITH ORDINALITY AS t(n, i)))::text
$$;

CREATE FUNCTION pg_temp.no_specialist_cut(content text) RETURNS text LANGUAGE sql AS $$
  SELECT jsonb_set(
    content::jsonb,
    '{statusReason,text}',
    to_jsonb(regexp_replace(content::jsonb #>> '{statusReason,text}', ' Not eligible or not available: .*$', '', 's'))
  )::text
$$;

UPDATE resource SET content = pg_temp.matching_notes_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%Second-opinion hub: matching%'
  AND jsonb_typeof(content::jsonb -> 'note') = 'array';

UPDATE resource_version SET content = pg_temp.matching_notes_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%Second-opinion hub: matching%'
  AND jsonb_typeof(content::jsonb -> 'note') = 'array';

UPDATE resource SET content = pg_temp.no_specialist_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%Not eligible or not available:%'
  AND content::jsonb #>> '{statusReason,text}' LIKE 'No eligible specialist is left%';

UPDATE resource_version SET content = pg_temp.no_specialist_cut(content)
WHERE resource_type = 'Task' AND content LIKE '%Not eligible or not available:%'
  AND content::jsonb #>> '{statusReason,text}' LIKE 'No eligible specialist is left%';
