-- A reviewer's Communication reaches the patient only once the case is released, like the reports
-- (auth/case-links.ts): the messages written before this rule are held as a write would hold them now.
UPDATE case_resource cr SET held = true
FROM resource r
WHERE cr.resource_type = 'Communication' AND r.resource_type = 'Communication' AND r.id = cr.resource_id
  AND r.content::jsonb -> 'meta' ->> 'source' ~ '^urn:hub:actor:(specialist|radiologist|pathologist):';
