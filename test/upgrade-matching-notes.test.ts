/**
 * Upgrading a store to migration 028: the matching's notes on offers, and the "no specialist" reason
 * on the coordination Task, named other specialists and why they were passed over, for every member
 * of the case to read. After the upgrade, every version of them keeps its first line only, and
 * nothing else of the Tasks changes.
 */
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createTestDatabase } from './support/test-hub.ts';

const MATCHING = 'Second-opinion hub: matching';
const RANKING =
  'Offered to Dr. Amelia Abernathy (rank 1 of 3).\nRanking:\n1. Dr. Amelia Abernathy: practises Medical Oncology\n' +
  'Not eligible or not available:\nDr. Delia Delacroix: licence expired on 2025-06-30.';

describe('migration 028 on a store with matching notes', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    await migrate(db, { through: 27 });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  async function store(id: string, versions: Record<string, unknown>[]): Promise<void> {
    for (const [index, task] of versions.entries()) {
      await db.query(
        `INSERT INTO resource_version (resource_type, id, version, last_updated, method, deleted, content)
         VALUES ('Task', $1, $2, now(), 'PUT', false, $3)`,
        [id, index + 1, JSON.stringify({ resourceType: 'Task', id, ...task })],
      );
    }
    await db.query(
      `INSERT INTO resource (resource_type, id, version, last_updated, content) VALUES ('Task', $1, $2, now(), $3)`,
      [id, versions.length, JSON.stringify({ resourceType: 'Task', id, ...versions.at(-1) })],
    );
  }

  const contents = async (id: string): Promise<Record<string, any>[]> => [
    ...(
      await db.query<{ content: string }>(
        `SELECT content FROM resource_version WHERE resource_type = 'Task' AND id = $1 ORDER BY version`,
        [id],
      )
    ).rows.map((row) => JSON.parse(row.content)),
    JSON.parse(
      (
        await db.query<{ content: string }>(`SELECT content FROM resource WHERE resource_type = 'Task' AND id = $1`, [
          id,
        ])
      ).rows[0]?.content ?? 'null',
    ),
  ];

  test('offers keep whom they went to; the reason keeps that nobody was left; other notes are untouched', async () => {
    const reminder = { authorString: 'Second-opinion hub: reminders', text: 'Reminder 1\nsecond line kept' };
    await store('offer-1', [
      { status: 'requested', intent: 'order', note: [{ authorString: MATCHING, text: RANKING }] },
      { status: 'accepted', intent: 'order', note: [{ authorString: MATCHING, text: RANKING }, reminder] },
    ]);
    const noSpecialist =
      'No eligible specialist is left to offer the case to (2 declined); a coordinator must find one. ' +
      'Not eligible or not available: Dr. Delia Delacroix: licence expired | Dr. Fiona Fellowes: a fellow.';
    await store('coord-1', [
      {
        status: 'in-progress',
        intent: 'order',
        statusReason: { text: noSpecialist, coding: [{ code: 'no-specialist' }] },
      },
    ]);
    await store('other-1', [{ status: 'requested', intent: 'order', note: [reminder] }]);

    await migrate(db);

    const offers = await contents('offer-1');
    expect(offers).toHaveLength(3);
    for (const offer of offers) {
      expect(offer.note[0]).toEqual({ authorString: MATCHING, text: 'Offered to Dr. Amelia Abernathy (rank 1 of 3).' });
      expect(JSON.stringify(offer)).not.toMatch(/Delacroix|licence/);
    }
    expect(offers.at(-1)?.note[1]).toEqual(reminder);
    expect(offers.at(-1)?.status).toBe('accepted');
    for (const coordination of await contents('coord-1')) {
      expect(coordination.statusReason).toEqual({
        text: 'No eligible specialist is left to offer the case to (2 declined); a coordinator must find one.',
        coding: [{ code: 'no-specialist' }],
      });
    }
    expect((await contents('other-1')).map((task) => task.note)).toEqual([[reminder], [reminder]]);
  });
});
