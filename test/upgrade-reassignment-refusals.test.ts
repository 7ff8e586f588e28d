/**
 * Upgrading a store to migration 030: a refused reassignment said why in the offer's note and in the
 * coordination Task's `move-refused` reason ("licence expired", "on leave", "at capacity"), for every
 * member of the case to read. After the upgrade, every version of them says only that the
 * reassignment to the specialist was refused; refusals that name nobody, and every other note and
 * reason, are as they were.
 */
import { openDatabase } from '../src/db/database.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createTestDatabase } from './support/test-hub.ts';

const REASSIGNMENT = 'Second-opinion hub: reassignment';
const MOVE_REFUSED = [{ system: 'urn:hub:case-reason', code: 'move-refused' }];
const PERSONAL =
  'The reassignment to Dr. Delia Delacroix was refused: licence expired on 2025-06-30; on leave until 2026-01-04; at capacity (5 of 5).';
const CUT = 'The reassignment to Dr. Delia Delacroix was refused.';
const NOBODY = 'The reassignment was refused: only a coordinator reassigns the specialist’s Task.';

describe('migration 030 on a store with refused reassignments', () => {
  let database: { url: string; drop: () => Promise<void> };
  let db: Database;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ databaseUrl: database.url, poolSize: 2 });
    await migrate(db, { through: 29 });
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

  test('notes and reasons keep that the reassignment was refused; those naming nobody, and the rest, are untouched', async () => {
    const offered = {
      authorString: 'Second-opinion hub: matching',
      text: 'Offered to Dr. Amelia Abernathy (rank 1 of 2).',
    };
    const reminder = { authorString: 'Second-opinion hub: reminders', text: `A reminder that quotes: ${PERSONAL}` };
    const nobody = { authorString: REASSIGNMENT, time: '2026-01-02T10:00:00Z', text: NOBODY };
    const personal = { authorString: REASSIGNMENT, time: '2026-01-02T11:00:00Z', text: PERSONAL };
    await store('offer-1', [
      { status: 'requested', intent: 'order', note: [offered] },
      { status: 'requested', intent: 'order', note: [offered, nobody] },
      { status: 'requested', intent: 'order', note: [offered, nobody, personal, reminder] },
    ]);
    await store('coord-1', [
      { status: 'in-progress', intent: 'order', statusReason: { coding: MOVE_REFUSED, text: NOBODY } },
      { status: 'in-progress', intent: 'order', statusReason: { coding: MOVE_REFUSED, text: PERSONAL } },
    ]);
    // Another code's reason, worded alike, is not the hub's refusal: left alone.
    const other = { coding: [{ system: 'urn:example:reasons', code: 'x' }], text: PERSONAL };
    await store('coord-2', [{ status: 'in-progress', intent: 'order', statusReason: other }]);

    await migrate(db);

    const offers = await contents('offer-1');
    expect(offers.map((offer) => offer.note)).toEqual([
      [offered],
      [offered, nobody],
      [offered, nobody, { ...personal, text: CUT }, reminder],
      [offered, nobody, { ...personal, text: CUT }, reminder],
    ]);
    expect(offers.map((offer) => offer.status)).toEqual(['requested', 'requested', 'requested', 'requested']);
    expect((await contents('coord-1')).map((task) => task.statusReason)).toEqual([
      { coding: MOVE_REFUSED, text: NOBODY },
      { coding: MOVE_REFUSED, text: CUT },
      { coding: MOVE_REFUSED, text: CUT },
    ]);
    // Nothing the hub wrote about the refusals says why any more (the reminder quoting one is not the hub's refusal).
    for (const task of [...offers, ...(await contents('coord-1'))]) {
      const ours = {
        ...task,
        note: task.note?.filter((note: { authorString: string }) => note.authorString !== reminder.authorString),
      };
      expect(JSON.stringify(ours)).not.toMatch(/licence|leave|capacity/);
    }
    expect((await contents('coord-2')).map((task) => task.statusReason)).toEqual([other, other]);
  });
});
