-- Case membership as the hub's own record (src/auth/case-links.ts, docs/access.md). Every write of a
-- resource replaces the rows it contributed (`via_type`, `via_id`) in the same statement as the
-- write itself (src/fhir/write.ts), after the write passed the writer's access checks.

-- Which case a resource belongs to. `report`: the consultation report (LOINC 11488-4) or its
-- content, which a patient sees only once the case is released.
CREATE TABLE case_resource (
  resource_type text NOT NULL,
  resource_id text NOT NULL,
  case_id text NOT NULL,
  report boolean NOT NULL DEFAULT false,
  via_type text NOT NULL,
  via_id text NOT NULL
);
CREATE INDEX case_resource_target ON case_resource (resource_type, resource_id, case_id);
CREATE INDEX case_resource_via ON case_resource (via_type, via_id);

-- Who belongs to a case: `Practitioner/<id>`, `PractitionerRole/<id>` or `Patient/<id>`, as the
-- case's referring physician, patient or reviewer.
CREATE TABLE case_member (
  case_id text NOT NULL,
  member text NOT NULL,
  role text NOT NULL,
  via_type text NOT NULL,
  via_id text NOT NULL
);
CREATE INDEX case_member_member ON case_member (member, role, case_id);
CREATE INDEX case_member_case ON case_member (case_id, member);
CREATE INDEX case_member_via ON case_member (via_type, via_id);

-- Cases whose consultation report the patient may see (a Task of the case in `report-accessed`).
CREATE TABLE case_release (
  case_id text NOT NULL,
  via_id text NOT NULL
);
CREATE INDEX case_release_case ON case_release (case_id);
CREATE INDEX case_release_via ON case_release (via_id);

-- The records of what is stored already, by the rules the writes follow from now on.
INSERT INTO case_resource (resource_type, resource_id, case_id, report, via_type, via_id)
WITH live AS (
  SELECT resource_type, id FROM resource WHERE NOT deleted
), reports AS (
  SELECT DISTINCT resource_type, resource_id FROM sp_token
  WHERE ((resource_type = 'DiagnosticReport' AND param = 'code') OR (resource_type = 'DocumentReference' AND param = 'type'))
    AND system = 'http://loinc.org' AND value = '11488-4'
), links AS (
  SELECT 'ServiceRequest' AS resource_type, id AS resource_id, id AS case_id FROM live WHERE resource_type = 'ServiceRequest'
  UNION
  SELECT x.resource_type, x.resource_id, x.target_id FROM sp_reference x
  JOIN live l ON l.resource_type = x.resource_type AND l.id = x.resource_id
  WHERE x.target_type = 'ServiceRequest' AND x.target_id IS NOT NULL
  UNION
  SELECT t.resource_type, t.resource_id, split_part(t.value, '/', 1) FROM sp_token t
  JOIN live l ON l.resource_type = t.resource_type AND l.id = t.resource_id
  WHERE t.param = 'identifier' AND t.system = 'urn:hub:case-resource' AND t.value IS NOT NULL
    AND split_part(t.value, '/', 1) <> 'reconcile-imaging'
)
SELECT k.resource_type, k.resource_id, k.case_id, r.resource_id IS NOT NULL, k.resource_type, k.resource_id
FROM links k LEFT JOIN reports r ON r.resource_type = k.resource_type AND r.resource_id = k.resource_id
UNION ALL
SELECT 'Patient', x.target_id, x.resource_id, false, 'ServiceRequest', x.resource_id FROM sp_reference x
JOIN resource s ON s.resource_type = 'ServiceRequest' AND s.id = x.resource_id AND NOT s.deleted
WHERE x.resource_type = 'ServiceRequest' AND x.param = 'subject' AND x.target_type = 'Patient' AND x.target_id IS NOT NULL;

INSERT INTO case_resource (resource_type, resource_id, case_id, report, via_type, via_id)
SELECT DISTINCT 'Binary', b.binary_id, c.case_id, c.report, c.resource_type, c.resource_id
FROM case_resource c
JOIN resource d ON d.resource_type = c.resource_type AND d.id = c.resource_id AND NOT d.deleted
CROSS JOIN LATERAL (
  SELECT substring(u #>> '{}' from '(?:^|/)Binary/([A-Za-z0-9.-]{1,64})$') AS binary_id
  FROM jsonb_path_query(d.content::jsonb, 'lax $.**.url') u
) b
WHERE c.resource_type IN ('DocumentReference', 'DiagnosticReport') AND c.via_type = c.resource_type AND c.via_id = c.resource_id
  AND b.binary_id IS NOT NULL;

INSERT INTO case_member (case_id, member, role, via_type, via_id)
SELECT x.resource_id, x.target_type || '/' || x.target_id,
  CASE WHEN x.param = 'subject' THEN 'patient' ELSE 'referring-physician' END, 'ServiceRequest', x.resource_id
FROM sp_reference x
JOIN resource s ON s.resource_type = 'ServiceRequest' AND s.id = x.resource_id AND NOT s.deleted
WHERE x.resource_type = 'ServiceRequest' AND x.target_id IS NOT NULL
  AND ((x.param = 'subject' AND x.target_type = 'Patient') OR (x.param = 'requester' AND x.target_type IN ('Practitioner', 'PractitionerRole', 'Organization')));

-- A PractitionerRole requester stands for its Practitioner and Organization too (src/fhir/write.ts
-- does the same).
INSERT INTO case_member (case_id, member, role, via_type, via_id)
SELECT m.case_id, x.target_type || '/' || x.target_id, m.role, m.via_type, m.via_id FROM case_member m
JOIN sp_reference x ON x.resource_type = 'PractitionerRole' AND m.member = 'PractitionerRole/' || x.resource_id
  AND ((x.param = 'practitioner' AND x.target_type = 'Practitioner') OR (x.param = 'organization' AND x.target_type = 'Organization'))
  AND x.target_id IS NOT NULL;

INSERT INTO case_member (case_id, member, role, via_type, via_id)
SELECT DISTINCT c.case_id, 'Practitioner/' || x.target_id, 'reviewer', 'Task', x.resource_id
FROM sp_reference x
JOIN case_resource c ON c.resource_type = 'Task' AND c.resource_id = x.resource_id AND c.via_type = 'Task' AND c.via_id = x.resource_id
WHERE x.resource_type = 'Task' AND x.param = 'owner' AND x.target_type = 'Practitioner' AND x.target_id IS NOT NULL;

INSERT INTO case_release (case_id, via_id)
SELECT DISTINCT b.target_id, b.resource_id FROM sp_reference b
JOIN resource t ON t.resource_type = 'Task' AND t.id = b.resource_id AND NOT t.deleted
JOIN sp_token s ON s.resource_type = 'Task' AND s.resource_id = b.resource_id AND s.param = 'business-status'
  AND s.system = 'urn:hub:case-state' AND s.value = 'report-accessed'
WHERE b.resource_type = 'Task' AND b.param = 'based-on' AND b.target_type = 'ServiceRequest' AND b.target_id IS NOT NULL;
