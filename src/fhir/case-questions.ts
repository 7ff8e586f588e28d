/**
 * The physician's questions are the physician's (docs/access.md, "What every write is checked for").
 * A QuestionnaireResponse a case's ServiceRequest names in `supportingInfo` is what the specialist
 * must answer, what the letter's sections follow and what the question fee counts (the re-quote of
 * workflow/jobs/case-materials.ts). Naming it makes it the case's (auth/case-links.ts: case_resource
 * rows the request wrote, via_type 'ServiceRequest'), and every member whose policy may write the
 * case's QuestionnaireResponses (the patient answers questionnaires of their own) could then change
 * it. So the repository passes every person's write of a QuestionnaireResponse (create, update,
 * patch, delete) through here before storing it: when a request names it, only the staff
 * (coordinator, admin) and a referring physician of every case whose request names it may write it;
 * the patient and reviewers get 403, and nothing is stored.
 *
 * System clients are not persons: their scopes are all that limits them (docs/access.md), and the
 * hub's own jobs write without an identity.
 */
import { OperationOutcomeError, forbidden } from '@medplum/core';
import type { AccessControl } from '../auth/access-policy.ts';
import { prepared } from '../db/database.ts';
import type { Queryable } from '../db/database.ts';
import { SqlParams } from '../db/sql-params.ts';

/**
 * Refuses (403) a person's write of `QuestionnaireResponse/<id>` when a case's request names it and
 * the person is not the staff nor a referring physician of each such case. Nothing to check for
 * other types, system clients and the hub (no access control).
 */
export async function checkCaseQuestionsWrite(
  conn: Queryable,
  resourceType: string,
  id: string,
  access: AccessControl | undefined,
): Promise<void> {
  if (resourceType !== 'QuestionnaireResponse' || !access || access.policy.cases === 'all') {
    return;
  }
  const params = new SqlParams();
  const key = params.add(id);
  // A referring physician may change the questions of the cases they referred; anyone else none.
  const notTheirs = access.policy.cases === 'referred' ? ` AND cr.case_id NOT IN (${access.memberCases(params)})` : '';
  const naming = await conn.query<{ case_id: string }>(
    prepared(
      `SELECT cr.case_id FROM case_resource cr WHERE cr.resource_type = 'QuestionnaireResponse' ` +
        `AND cr.resource_id = ${key} AND cr.via_type = 'ServiceRequest' AND cr.via_id = cr.case_id${notTheirs} LIMIT 1`,
    ),
    params.values,
  );
  const [named] = naming.rows;
  if (named) {
    throw new OperationOutcomeError({
      ...forbidden,
      issue: [
        {
          severity: 'error',
          code: 'forbidden',
          details: {
            text: `QuestionnaireResponse/${id} holds the questions ServiceRequest/${named.case_id} asks (its supportingInfo): only the case's referring physician or a coordinator changes them`,
          },
          expression: ['QuestionnaireResponse'],
        },
      ],
    });
  }
}
