-- What a patient sees only once their case is released (src/auth/case-links.ts, docs/access.md,
-- "Release"). `report` still marks the consultation report (LOINC 11488-4) and its content, whose
-- first reading by the physician releases the case; `held` is wider: every DiagnosticReport and
-- Composition of a case whatever its code, a DocumentReference a reviewer wrote, and the Binaries
-- they name, so that a report coded otherwise does not reach the patient before the physician.
ALTER TABLE case_resource ADD COLUMN held boolean NOT NULL DEFAULT false;

-- The rows already stored, by the same rule (a Binary's row names the resource that linked it).
UPDATE case_resource c SET held = true
WHERE c.report
  OR c.via_type IN ('DiagnosticReport', 'Composition')
  OR (c.via_type = 'DocumentReference' AND EXISTS (
    SELECT 1 FROM resource r
    WHERE r.resource_type = 'DocumentReference' AND r.id = c.via_id
      AND split_part(r.content::jsonb #>> '{meta,source}', ':', 4) IN ('specialist', 'radiologist', 'pathologist')));

-- A reviewer's draft is theirs whatever its code (until now only the consultation report's were).
UPDATE case_resource c SET draft_author = 'Practitioner/' || split_part(r.content::jsonb #>> '{meta,source}', ':', 5)
FROM resource r
WHERE c.draft_author IS NULL AND r.resource_type = c.via_type AND r.id = c.via_id AND NOT r.deleted
  AND split_part(r.content::jsonb #>> '{meta,source}', ':', 4) IN ('specialist', 'radiologist', 'pathologist')
  AND ((r.resource_type = 'DiagnosticReport' AND r.content::jsonb ->> 'status' IN ('registered', 'partial', 'preliminary'))
    OR (r.resource_type = 'Composition' AND r.content::jsonb ->> 'status' = 'preliminary'));
