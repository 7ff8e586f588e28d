-- The physician's questions (a QuestionnaireResponse the ServiceRequest names in supportingInfo)
-- belong to the request's case since the request's writes record them (auth/case-links.ts). The
-- requests stored before that are read here, so that their specialist and their physician can read
-- the questions without waiting for the request to be written again. Relative references only, as
-- the hub itself and the EHRs write them; an absolute one counts from the request's next write.
INSERT INTO case_resource (resource_type, resource_id, case_id, report, via_type, via_id)
SELECT DISTINCT 'QuestionnaireResponse', substring(info ->> 'reference' FROM '^QuestionnaireResponse/([A-Za-z0-9.-]{1,64})$'),
  r.id, false, 'ServiceRequest', r.id
FROM resource r
CROSS JOIN LATERAL jsonb_array_elements(
  CASE WHEN jsonb_typeof(r.content::jsonb -> 'supportingInfo') = 'array' THEN r.content::jsonb -> 'supportingInfo' ELSE '[]'::jsonb END
) AS info
WHERE r.resource_type = 'ServiceRequest' AND NOT r.deleted
  AND info ->> 'reference' ~ '^QuestionnaireResponse/[A-Za-z0-9.-]{1,64}$'
  AND NOT EXISTS (
    SELECT 1 FROM case_resource c
    WHERE c.resource_type = 'QuestionnaireResponse'
      AND c.resource_id = substring(info ->> 'reference' FROM '^QuestionnaireResponse/([A-Za-z0-9.-]{1,64})$')
      AND c.case_id = r.id AND c.via_type = 'ServiceRequest' AND c.via_id = r.id
  );
