-- Drafts of the consultation report (src/auth/case-links.ts, docs/access.md, "Drafts"): while the
-- specialist writes the opinion, only its author and the staff see it. `draft_author` is the
-- author's `Practitioner/<id>` while a resource (or its content) is a draft, `staff` when no author
-- is known, and NULL once it is not a draft.
ALTER TABLE case_resource ADD COLUMN draft_author text;

-- Drafts already stored: the report's own resources by their status, and their Binaries with them.
WITH drafts AS (
  SELECT r.resource_type, r.id,
    coalesce(
      CASE WHEN split_part(r.content::jsonb #>> '{meta,source}', ':', 4) IN ('specialist', 'radiologist', 'pathologist')
        THEN 'Practitioner/' || split_part(r.content::jsonb #>> '{meta,source}', ':', 5) END,
      substring(coalesce(r.content::jsonb #>> '{resultsInterpreter,0,reference}', r.content::jsonb #>> '{author,0,reference}')
        from '(?:^|/)(Practitioner/[A-Za-z0-9.-]{1,64})$'),
      'staff') AS author
  FROM resource r
  WHERE NOT r.deleted
    AND ((r.resource_type = 'DiagnosticReport' AND r.content::jsonb ->> 'status' IN ('registered', 'partial', 'preliminary')
          AND jsonb_path_exists(r.content::jsonb, 'lax $.code.coding[*] ? (@.system == "http://loinc.org" && @.code == "11488-4")'))
      OR (r.resource_type = 'Composition' AND r.content::jsonb ->> 'status' = 'preliminary'
          AND jsonb_path_exists(r.content::jsonb, 'lax $.type.coding[*] ? (@.system == "http://loinc.org" && @.code == "11488-4")')))
)
UPDATE case_resource c SET draft_author = d.author
FROM drafts d
WHERE c.via_type = d.resource_type AND c.via_id = d.id;
