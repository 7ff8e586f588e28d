/**
 * A coordinator reassigns the case's specialist (docs/case-workflow.md, "Coordinators' moves") by
 * writing another Practitioner as the owner of the open specialist-opinion Task; the progression job
 * (called as the worker calls it) checks and applies it, or writes the owner back and says why. The
 * people who may not reassign (the referring physician, the specialist offered the case) write the
 * same owner with their own tokens: the hub undoes it, and the person they named gets no access.
 */
import type { UserRole } from '../src/auth/users.ts';
import { generateReferenceNumber } from '../src/cases/reference-number.ts';
import { advanceCase } from '../src/workflow/progression.ts';
import { workflowContextOf } from './support/case-fixtures.ts';
import { matchingCaseFixtures, rosterFixtures } from './support/case-review-fixtures.ts';
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { TASK_CODE } from './support/opinion-case.ts';
import { fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

type Person = 'coordinator' | 'physician' | 'patient' | 'specialist' | 'specialist2';
const SR = 'sr-reassign';
const PEOPLE: Record<Person, { role: UserRole; fhirUser: string }> = {
  coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  patient: { role: 'patient', fhirUser: `Patient/pat-${SR}` },
  specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  specialist2: { role: 'specialist', fhirUser: 'Practitioner/prac-s2' },
};
/** What the roster says of a specialist a coordinator named: the coordinators' to read, nobody else's. */
const PERSONAL_REASONS = /a fellow|interns|residents|licen[cs]e|on leave|capacity|not on the specialists/;

describe('a coordinator reassigns the specialist', () => {
  let testHub: TestHub;
  const tokens = {} as Record<Person | 'system', string>;
  const as = (who: Person | 'system', path: string, init: { method?: string; body?: unknown } = {}) =>
    fhirFetch(`${testHub.fhir}/${path}`, { ...init, headers: { authorization: `Bearer ${tokens[who]}` } });
  const advance = () => advanceCase(workflowContextOf(testHub), { serviceRequestId: SR });
  const offers = async (): Promise<any[]> =>
    ((await as('coordinator', `Task?part-of=Task/coord-${SR}&code=${TASK_CODE}|specialist-opinion`)).body.entry ?? [])
      .map((entry: { resource: unknown }) => entry.resource)
      .sort((a: any, b: any) => String(a.authoredOn).localeCompare(String(b.authoredOn)));
  const coordination = async () => (await as('coordinator', `Task/coord-${SR}`)).body;
  const stateOf = (task: any): string => task.businessStatus.coding[0].code;
  /** `who` writes the offer's owner (and, for a declined one, reopens it), as the web app does. */
  const writeOwner = async (who: Person, taskId: string, owner: string, extra: Record<string, unknown> = {}) => {
    const task = (await as('coordinator', `Task/${taskId}`)).body;
    const written = await as(who, `Task/${taskId}`, {
      method: 'PUT',
      body: { ...task, meta: undefined, owner: { reference: owner }, ...extra },
    });
    expect([who, written.status]).toEqual([who, 200]);
  };
  const sees = async (who: Person) => (await as(who, `ServiceRequest/${SR}`)).status;
  /** The matching's explanation of what it did to `target` (a Provenance only coordinators read). */
  const explanationOf = async (target: string): Promise<string> => (await provenanceOf(target, false)).reason[0].text;
  /** Why the hub refused the latest reassignment of `target` (a Provenance only coordinators read). */
  const refusalOf = async (target: string): Promise<string> => (await provenanceOf(target, true)).reason[0].text;
  /** The newest of the matching's Provenances of `target`: a refused reassignment's, or not. */
  const provenanceOf = async (target: string, refusal: boolean): Promise<any> => {
    const found = await as('coordinator', `Provenance?target=${target}&_sort=-recorded&_count=20`);
    expect(found.status).toBe(200);
    const matching = (found.body.entry ?? [])
      .map((entry: { resource: any }) => entry.resource)
      .filter((provenance: any) => (provenance.reason[0].coding?.[0]?.code === 'move-refused') === refusal);
    expect(matching[0].activity.coding[0].code).toBe('specialist-matching');
    return matching[0];
  };

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    Object.assign(
      tokens,
      await signInPeople(testHub, PEOPLE, {
        clientId: 'reassign-app',
        redirectUri: 'http://127.0.0.1:5173/callback',
        scope: 'openid fhirUser user/*.cruds',
      }),
    );
    tokens.system = await clientToken(testHub, 'reassign-loader', 'system/*.cruds');
    const fixtures = [
      { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
      { resourceType: 'Practitioner', id: 'prac-phys', name: [{ given: ['Paul'], family: 'Physick' }] },
      ...rosterFixtures(),
      ...matchingCaseFixtures(
        SR,
        generateReferenceNumber(() => 6),
      ),
    ];
    const loaded = await putTransaction(testHub.fhir, tokens.system, fixtures);
    expect(loaded.status).toBe(200);
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('only a coordinator’s choice of an eligible specialist stands; the others are written back with the reason', async () => {
    await advance();
    const [first, ...none] = await offers();
    expect(none).toEqual([]);
    expect(first.owner.reference).toBe('Practitioner/prac-s');
    expect(first.note.map((note: { text: string }) => note.text)).toEqual([
      'Offered to Dr. Amelia Abernathy (rank 1 of 2).',
    ]);
    // Who else was ranked or excluded, and why, is the coordinators' reading alone.
    expect(await explanationOf(`Task/${first.id}`)).toMatch(/Dr\. Fiona Fellowes: a fellow/);
    for (const who of ['physician', 'specialist'] as const) {
      const offer = await as(who, `Task/${first.id}`);
      expect([who, offer.status]).toEqual([who, 200]);
      expect(JSON.stringify(offer.body)).not.toMatch(/Fellowes|Brightwater/);
      expect([who, (await as(who, `Provenance?target=Task/${first.id}`)).status]).toEqual([who, 403]);
      const history = await as(who, `Task/${first.id}/_history`);
      expect(JSON.stringify(history.body)).not.toMatch(/Fellowes|Brightwater/);
    }

    // The physician, then the specialist offered the case, hand it to Brightwater: undone each time.
    for (const who of ['physician', 'specialist'] as const) {
      await writeOwner(who, first.id, 'Practitioner/prac-s2');
      expect(await sees('specialist2')).toBe(404);
      expect((await advance()).refusal).toBe(
        'The reassignment was refused: only a coordinator reassigns the specialist’s Task.',
      );
      const [restored, ...still] = await offers();
      expect(still).toEqual([]);
      expect([who, restored.owner.reference, restored.status]).toEqual([who, 'Practitioner/prac-s', 'requested']);
      expect(restored.note.at(-1).text).toMatch(/only a coordinator reassigns/);
      expect((await coordination()).statusReason.text).toMatch(/only a coordinator reassigns/);
    }

    // A coordinator's choice of a fellow, then of a radiologist: refused for what the roster says of
    // them. The case's members read that it was refused; only the coordinators read why.
    await writeOwner('coordinator', first.id, 'Practitioner/prac-fellow');
    expect((await advance()).refusal).toBe('The reassignment to Dr. Fiona Fellowes was refused.');
    expect((await offers()).map((task) => task.owner.reference)).toEqual(['Practitioner/prac-s']);
    expect((await coordination()).statusReason.text).toBe('The reassignment to Dr. Fiona Fellowes was refused.');
    expect(await refusalOf(`Task/${first.id}`)).toMatch(
      /^The reassignment to Dr\. Fiona Fellowes was refused: a fellow: interns, residents and fellows cannot give opinions/,
    );
    await writeOwner('coordinator', first.id, 'Practitioner/prac-r');
    expect((await advance()).refusal).toBe('The reassignment to Dr. Rita Radley was refused.');
    expect((await offers()).at(-1).note.at(-1).text).toBe('The reassignment to Dr. Rita Radley was refused.');
    expect(await refusalOf(`Task/${first.id}`)).toBe(
      'The reassignment to Dr. Rita Radley was refused: they are not on the specialists’ roster.',
    );
    // The ranking that proposed the offer's specialist is still the coordinators' to read, as it was.
    expect(await explanationOf(`Task/${first.id}`)).toMatch(/^Offered to Dr\. Amelia Abernathy/);
    for (const who of ['physician', 'patient', 'specialist'] as const) {
      for (const path of [
        `Task/${first.id}`,
        `Task/${first.id}/_history`,
        `Task/coord-${SR}`,
        `Task/coord-${SR}/_history`,
      ]) {
        const read = await as(who, path);
        expect([who, path, read.status]).toEqual([who, path, 200]);
        expect(JSON.stringify(read.body)).toMatch(
          /The reassignment to Dr\. (Fiona Fellowes|Rita Radley) was refused\./,
        );
        expect([who, path, JSON.stringify(read.body).match(PERSONAL_REASONS)?.[0]]).toEqual([who, path, undefined]);
      }
      expect([who, (await as(who, `Provenance?target=Task/${first.id}`)).status]).toEqual([who, 403]);
    }
  });

  test('a coordinator’s reassignment takes the case from the first specialist and offers it to the second, with why', async () => {
    const [first] = await offers();
    await writeOwner('coordinator', first.id, 'Practitioner/prac-s2');
    expect((await advance()).refusal).toBeUndefined();
    const [taken, offered, ...none] = await offers();
    expect(none).toEqual([]);
    expect(taken.id).toBe(first.id);
    expect(taken.status).toBe('cancelled');
    expect(taken.owner).toBeUndefined();
    expect(taken.statusReason.text).toBe('Reassigned to Dr. Ben Brightwater by Cora Coordinator.');
    expect(offered.owner.reference).toBe('Practitioner/prac-s2');
    expect(offered.status).toBe('requested');
    expect(offered.identifier[0].value).toBe(`${SR}/specialist-opinion/prac-s2`);
    expect(offered.restriction.period.end).toBe(first.restriction.period.end);
    expect(offered.note.at(-1).text).toBe(
      'Reassigned to Dr. Ben Brightwater by Cora Coordinator (coordinator), in place of Dr. Amelia Abernathy.',
    );
    const why = await explanationOf(`Task/${offered.id}`);
    expect(why).toMatch(
      /^Reassigned to Dr\. Ben Brightwater by Cora Coordinator \(coordinator\), in place of Dr\. Amelia Abernathy\./,
    );
    expect(why).toMatch(/Dr\. Ben Brightwater is rank 2 of 2: 2\. Dr\. Ben Brightwater: practises Medical Oncology/);
    const coordinationTask = await coordination();
    expect(stateOf(coordinationTask)).toBe('matching');
    expect(coordinationTask.statusReason).toBeUndefined();
    // The first specialist has left the case; the second is in it.
    expect(await sees('specialist')).toBe(404);
    expect(await sees('specialist2')).toBe(200);
    // Run again: nothing to do.
    expect((await advance()).outcome).toBe('unchanged');
  });

  test('reassigned in specialist review, the case waits in matching for the new specialist; a declined offer is reopened', async () => {
    const [, offered] = await offers();
    const accepted = await as('specialist2', `Task/${offered.id}`, {
      method: 'PUT',
      body: { ...offered, meta: undefined, status: 'accepted' },
    });
    expect(accepted.status).toBe(200);
    await advance();
    expect(stateOf(await coordination())).toBe('specialist-review');

    // Back to Abernathy, whose earlier offer the hub reopens rather than making a second.
    await writeOwner('coordinator', offered.id, 'Practitioner/prac-s');
    expect((await advance()).refusal).toBeUndefined();
    const tasks = await offers();
    expect(
      tasks.map((task) => [task.identifier[0].value.split('/').at(-1), task.status, task.owner?.reference]),
    ).toEqual([
      ['prac-s2', 'cancelled', undefined],
      ['prac-s', 'requested', 'Practitioner/prac-s'],
    ]);
    expect(stateOf(await coordination())).toBe('matching');
    expect(await sees('specialist')).toBe(200);
    expect(await sees('specialist2')).toBe(404);

    // Abernathy declines; the coordinator reopens the declined offer for Brightwater.
    const [, reopened] = await offers();
    await as('specialist', `Task/${reopened.id}`, {
      method: 'PUT',
      body: { ...reopened, meta: undefined, status: 'rejected' },
    });
    await advance();
    const coordinationTask = await coordination();
    expect(coordinationTask.statusReason.coding[0].code).toBe('no-specialist');
    // The physician reads the case's reason, not who was excluded and why.
    const asPhysician = await as('physician', `Task/coord-${SR}`);
    expect(asPhysician.body.statusReason.text).toMatch(/^No eligible specialist is left to offer the case to/);
    expect(JSON.stringify(asPhysician.body)).not.toMatch(/Fellowes/);
    expect(await explanationOf(`Task/coord-${SR}`)).toMatch(/Not eligible or not available: .*Dr\. Fiona Fellowes/);
    const declined = (await offers()).find((task) => task.status === 'rejected');
    await writeOwner('coordinator', declined.id, 'Practitioner/prac-s2', { status: 'requested' });
    expect((await advance()).refusal).toBeUndefined();
    const after = await offers();
    expect(
      after.map((task) => [task.identifier[0].value.split('/').at(-1), task.status, task.owner?.reference]),
    ).toEqual([
      ['prac-s', 'rejected', 'Practitioner/prac-s'],
      ['prac-s2', 'requested', 'Practitioner/prac-s2'],
    ]);
    expect((await coordination()).statusReason).toBeUndefined();
  });
});
