/**
 * Upgrading a store to migration 029: the questions (QuestionnaireResponse) a ServiceRequest stored
 * before names in supportingInfo become its case's, as a write of the request records them now
 * (auth/case-links.ts), and nothing else does.
 */
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createTestDatabase } from './support/test-hub.ts';

describe('migration 029 on a store with referrals', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    await migrate(db, { through: 28 });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  const store = (resourceType: string, id: string, content: Record<string, unknown>, deleted = false) =>
    db.query(
      `INSERT INTO resource (resource_type, id, version, last_updated, deleted, content) VALUES ($1, $2, 1, now(), $3, $4)`,
      [resourceType, id, deleted, deleted ? null : JSON.stringify({ resourceType, id, ...content })],
    );
  const linked = async (): Promise<string[]> =>
    (
      await db.query<{ row: string }>(
        `SELECT resource_id || ' in ' || case_id AS row FROM case_resource WHERE resource_type = 'QuestionnaireResponse' ORDER BY 1`,
      )
    ).rows.map((row) => row.row);

  test('each request’s questions join its case, once; other references and deleted requests add nothing', async () => {
    await store('ServiceRequest', 'sr-1', {
      status: 'active',
      supportingInfo: [
        { reference: 'QuestionnaireResponse/qr-1' },
        { reference: 'DocumentReference/doc-1' },
        { reference: 'https://elsewhere.example.org/fhir/QuestionnaireResponse/qr-x' },
      ],
    });
    await store('ServiceRequest', 'sr-2', {
      status: 'active',
      supportingInfo: [{ reference: 'QuestionnaireResponse/qr-2' }],
    });
    await store('ServiceRequest', 'sr-3', { status: 'active' });
    await store('ServiceRequest', 'sr-gone', {}, true);
    // One already recorded by a write after the code changed: not added twice.
    await db.query(
      `INSERT INTO case_resource (resource_type, resource_id, case_id, report, via_type, via_id)
       VALUES ('QuestionnaireResponse', 'qr-2', 'sr-2', false, 'ServiceRequest', 'sr-2')`,
    );

    await migrate(db);

    expect(await linked()).toEqual(['qr-1 in sr-1', 'qr-2 in sr-2']);
  });
});
