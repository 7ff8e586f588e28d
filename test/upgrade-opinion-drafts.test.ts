/**
 * Upgrading a store to migration 014: drafts of the consultation report stored before it are marked
 * as their author's (docs/access.md, "Drafts"), so that an upgrade does not show them to the rest of
 * the case. The store is built at migration 013 with rows as that version wrote them.
 */
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createTestDatabase } from './support/test-hub.ts';

const LOINC = 'http://loinc.org';

interface Stored {
  resourceType: string;
  id: string;
  [key: string]: unknown;
}

describe('migration 014 on a store with opinions in progress', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    await migrate(db, { through: 13 });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  /** A resource and the case rows 013 recorded for it (and for the Binary it presents). */
  async function store(resource: Stored, binary?: string): Promise<void> {
    await db.query(
      `INSERT INTO resource (resource_type, id, version, last_updated, content) VALUES ($1, $2, 1, now(), $3)`,
      [resource.resourceType, resource.id, JSON.stringify(resource)],
    );
    const rows: [string, string][] = [
      [resource.resourceType, resource.id],
      ...(binary ? [['Binary', binary] as [string, string]] : []),
    ];
    for (const [type, id] of rows) {
      await db.query(
        `INSERT INTO case_resource (resource_type, resource_id, case_id, report, via_type, via_id) VALUES ($1, $2, 'sr-1', true, $3, $4)`,
        [type, id, resource.resourceType, resource.id],
      );
    }
  }

  const report = (id: string, status: string, extra: Record<string, unknown>): Stored => ({
    resourceType: 'DiagnosticReport',
    id,
    status,
    code: { coding: [{ system: LOINC, code: '11488-4' }] },
    basedOn: [{ reference: 'ServiceRequest/sr-1' }],
    ...extra,
  });

  test('drafts become their author’s (the reviewer who wrote them, else the one they name, else the staff’s); final reports stay open', async () => {
    await store(
      report('by-specialist', 'preliminary', { meta: { source: 'urn:hub:actor:specialist:prac-s' } }),
      'bin-1',
    );
    await store(
      report('by-ehr', 'partial', {
        meta: { source: 'urn:hub:actor:ehr:some-client' },
        resultsInterpreter: [{ reference: 'Practitioner/prac-t' }],
      }),
    );
    await store(report('nobody-named', 'preliminary', {}));
    await store(report('approved', 'final', { meta: { source: 'urn:hub:actor:coordinator:prac-c' } }));
    await store({
      resourceType: 'Composition',
      id: 'letter',
      status: 'preliminary',
      type: { coding: [{ system: LOINC, code: '11488-4' }] },
      author: [{ reference: 'Practitioner/prac-s' }],
    });

    expect(await migrate(db)).toEqual(expect.arrayContaining(['014_opinion_drafts']));

    const rows = await db.query<{ resource_type: string; resource_id: string; draft_author: string | null }>(
      'SELECT resource_type, resource_id, draft_author FROM case_resource ORDER BY resource_type, resource_id',
    );
    expect(rows.rows.map((row) => [row.resource_type, row.resource_id, row.draft_author])).toEqual([
      ['Binary', 'bin-1', 'Practitioner/prac-s'],
      ['Composition', 'letter', 'Practitioner/prac-s'],
      ['DiagnosticReport', 'approved', null],
      ['DiagnosticReport', 'by-ehr', 'Practitioner/prac-t'],
      ['DiagnosticReport', 'by-specialist', 'Practitioner/prac-s'],
      ['DiagnosticReport', 'nobody-named', 'staff'],
    ]);
  });
});
