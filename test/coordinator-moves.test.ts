/**
 * The coordinators' moves on a case's quote (docs/case-workflow.md, "Coordinators' moves"), as an
 * attacker would try them against a hub with AUTH_REQUIRED=true: the case's referring physician and
 * its specialist may read and update its Tasks, but neither may correct the question count (the
 * coordination Task's question-count override) nor waive a material (cancel an expect-material
 * Task), by PUT, PATCH or a transaction; the hub refuses with 403 and stores nothing. A coordinator
 * may, the override then names them as `setBy` whatever the client wrote, and the write is audited.
 */
import { signInPeople } from './support/login-flow.ts';
import { clientToken } from './support/client-token.ts';
import { fhirFetch, putTransaction, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { userToken } from './support/user-token.ts';

const CASE = 'urn:hub:case-resource';
const TASK_CODE = 'urn:hub:task-code';
const OVERRIDE = 'urn:hub:extension:question-count-override';
const SR = 'sr-moves';
const COORDINATION = `Task/coord-${SR}`;
const EXPECT = `Task/expect-${SR}`;

type Json = any;
type Who = 'physician' | 'specialist' | 'coordinator';

const FIXTURES: Json[] = [
  ...['prac-phys', 'prac-s', 'prac-c'].map((id) => ({ resourceType: 'Practitioner', id })),
  { resourceType: 'Patient', id: `pat-${SR}` },
  {
    resourceType: 'ServiceRequest',
    id: SR,
    status: 'active',
    intent: 'order',
    subject: { reference: `Patient/pat-${SR}` },
    requester: { reference: 'Practitioner/prac-phys' },
  },
  {
    resourceType: 'Task',
    id: `coord-${SR}`,
    identifier: [{ system: CASE, value: `${SR}/coordination` }],
    status: 'accepted',
    intent: 'order',
    code: { coding: [{ system: TASK_CODE, code: 'coordination' }] },
    businessStatus: { coding: [{ system: 'urn:hub:case-state', code: 'awaiting-materials' }] },
    basedOn: [{ reference: `ServiceRequest/${SR}` }],
    focus: { reference: `ServiceRequest/${SR}` },
    for: { reference: `Patient/pat-${SR}` },
  },
  {
    resourceType: 'Task',
    id: `expect-${SR}`,
    identifier: [{ system: CASE, value: `${SR}/expect-material/pathology` }],
    status: 'requested',
    intent: 'order',
    code: { coding: [{ system: TASK_CODE, code: 'expect-material' }] },
    basedOn: [{ reference: `ServiceRequest/${SR}` }],
    partOf: [{ reference: `Task/coord-${SR}` }],
    focus: { reference: `ServiceRequest/${SR}` },
    input: [
      {
        type: { coding: [{ system: 'urn:hub:material-count', code: 'material' }] },
        valueCoding: { system: 'urn:hub:material', code: 'pathology' },
      },
    ],
  },
  // The offer the specialist accepted: it makes them a reviewer of the case, who may update its Tasks.
  {
    resourceType: 'Task',
    id: `offer-${SR}`,
    identifier: [{ system: CASE, value: `${SR}/specialist-opinion/prac-s` }],
    status: 'accepted',
    intent: 'order',
    code: { coding: [{ system: TASK_CODE, code: 'specialist-opinion' }] },
    basedOn: [{ reference: `ServiceRequest/${SR}` }],
    partOf: [{ reference: `Task/coord-${SR}` }],
    owner: { reference: 'Practitioner/prac-s' },
  },
];

const override = (count: number, reason: string, setBy: Json) => ({
  url: OVERRIDE,
  extension: [{ url: 'count', valueUnsignedInt: count }, { url: 'reason', valueString: reason }, setBy],
});
const overrideOf = (task: Json): Json => task.extension?.find((extension: Json) => extension.url === OVERRIDE);
const part = (extension: Json, url: string): Json => extension?.extension?.find((p: Json) => p.url === url);

describe('the coordinators’ moves on the quote', () => {
  let th: TestHub;
  let tokens: Record<Who, string>;

  const as = (token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fhirFetch(`${th.fhir}/${path}`, { method, body, headers: { authorization: `Bearer ${token}`, ...headers } });
  const read = async (path: string): Promise<Json> => {
    const response = await as(tokens.coordinator, 'GET', path);
    expect(response.status).toBe(200);
    return response.body;
  };

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'true' } });
    const loader = await clientToken(th, 'moves-ehr', 'system/*.cruds');
    const loaded = await putTransaction(th.fhir, loader, FIXTURES);
    expect(loaded.status).toBe(200);
    tokens = await signInPeople(
      th,
      {
        physician: { role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
        specialist: { role: 'specialist', fhirUser: 'Practitioner/prac-s' },
        coordinator: { role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
      },
      { clientId: 'moves-app', redirectUri: 'http://127.0.0.1:5173/callback', scope: 'openid fhirUser user/*.cruds' },
    );
  }, 60_000);

  afterAll(async () => {
    await th?.stop();
  });

  /** Every way a person might write the override or the waiver; each must be refused with 403. */
  async function attempts(who: 'physician' | 'specialist'): Promise<void> {
    const token = tokens[who];
    const task = (await as(token, 'GET', COORDINATION)).body;
    const expectTask = (await as(token, 'GET', EXPECT)).body;
    // They see both Tasks: the refusals below are the moves', not the case's.
    expect([task.id, expectTask.id]).toEqual([`coord-${SR}`, `expect-${SR}`]);
    const mine = override(9, 'More questions than it seems', {
      url: 'setBy',
      valueReference: { reference: who === 'physician' ? 'Practitioner/prac-phys' : 'Practitioner/prac-s' },
    });
    const others = (task.extension ?? []).filter((extension: Json) => extension.url !== OVERRIDE);

    const put = await as(token, 'PUT', COORDINATION, { ...task, extension: [...others, mine] });
    expect(put.status).toBe(403);
    expect(put.body.issue[0].details.text).toMatch(/Only a coordinator corrects the question count/);

    const removed = await as(token, 'PUT', COORDINATION, { ...task, extension: others.length ? others : undefined });
    if (overrideOf(task)) {
      expect(removed.status).toBe(403);
    }

    const patch = await as(token, 'PATCH', COORDINATION, [{ op: 'add', path: '/extension', value: [mine] }], {
      'content-type': 'application/json-patch+json',
    });
    expect(patch.status).toBe(403);

    const transaction = await as(token, 'POST', '', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { ...task, extension: [...others, mine] }, request: { method: 'PUT', url: COORDINATION } }],
    });
    expect(transaction.status).toBe(403);

    // Waiving the material, or taking a coordinator's waiver back.
    const status = expectTask.status === 'cancelled' ? 'requested' : 'cancelled';
    const waive = await as(token, 'PUT', EXPECT, { ...expectTask, status, statusReason: { text: 'Not needed' } });
    expect(waive.status).toBe(403);
    expect(waive.body.issue[0].details.text).toMatch(/Only a coordinator waives a material/);
    const waivePatch = await as(token, 'PATCH', EXPECT, [{ op: 'replace', path: '/status', value: status }], {
      'content-type': 'application/json-patch+json',
    });
    expect(waivePatch.status).toBe(403);

    // Nothing was stored.
    expect((await read(COORDINATION)).meta.versionId).toBe(task.meta.versionId);
    expect(await read(EXPECT)).toEqual(expectTask);
  }

  test('the referring physician and the specialist are refused every way, and nothing changes', async () => {
    await attempts('physician');
    await attempts('specialist');
  });

  test('a coordinator corrects the count and waives a material: the hub names them and audits it', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const task = await read(COORDINATION);
    // The client claims someone else set it: the hub records the writer.
    const put = await as(tokens.coordinator, 'PUT', COORDINATION, {
      ...task,
      extension: [override(6, 'Question 2 asks two things.', { url: 'setBy', valueString: 'somebody else' })],
    });
    expect(put.status).toBe(200);
    expect(overrideOf(put.body)).toEqual(
      override(6, 'Question 2 asks two things.', {
        url: 'setBy',
        valueReference: { reference: 'Practitioner/prac-c' },
      }),
    );
    expect(overrideOf(await read(COORDINATION))).toEqual(overrideOf(put.body));

    // A coordinator whose account has no Practitioner is named by the hub's actor id.
    const unlinked = await userToken(th, 'coordinator');
    const again = await as(
      unlinked,
      'PATCH',
      COORDINATION,
      [{ op: 'replace', path: '/extension/0/extension/0/valueUnsignedInt', value: 7 }],
      { 'content-type': 'application/json-patch+json' },
    );
    expect(again.status).toBe(200);
    expect(part(overrideOf(again.body), 'count')).toEqual({ url: 'count', valueUnsignedInt: 7 });
    expect(part(overrideOf(again.body), 'setBy').valueString).toMatch(/^urn:hub:actor:coordinator:/);

    const expectTask = await read(EXPECT);
    const waived = await as(tokens.coordinator, 'PUT', EXPECT, {
      ...expectTask,
      status: 'cancelled',
      statusReason: { text: 'The biopsy was done elsewhere; no slides exist.' },
    });
    expect(waived.status).toBe(200);
    expect(waived.body.status).toBe('cancelled');

    // Each write has its AuditEvent, naming the Task and the coordinator.
    const audited = async (entity: string): Promise<Json[]> => {
      const search = `AuditEvent?entity=${entity}&action=U&agent=Practitioner/prac-c&outcome=0&date=ge${since}`;
      const response = await as(tokens.coordinator, 'GET', search);
      expect(response.status).toBe(200);
      return response.body.entry ?? [];
    };
    expect(await audited(COORDINATION)).toHaveLength(1);
    expect(await audited(EXPECT)).toHaveLength(1);

    // The physician's ordinary writes of the Task go on; carrying the override unchanged is no move.
    const current = await read(COORDINATION);
    const note = await as(tokens.physician, 'PUT', COORDINATION, {
      ...current,
      note: [{ text: 'The patient prefers phone calls.' }],
    });
    expect(note.status).toBe(200);
    expect(overrideOf(note.body)).toEqual(overrideOf(current));
    // Removing or changing it, or un-waiving the material, is not theirs.
    await attempts('physician');
    await attempts('specialist');
  });

  test('the physician and the specialist move the case or add a note, and change nothing else of its record', async () => {
    const record = await read(COORDINATION);
    const tries: [string, Json][] = [
      ['owner', { ...record, owner: { reference: 'Practitioner/prac-phys' } }],
      ['deadline', { ...record, restriction: { period: { end: '2099-01-01T00:00:00Z' } } }],
      ['specialty sought', { ...record, performerType: [{ coding: [{ system: 'urn:x', code: 'x' }] }] }],
      ['code', { ...record, code: { coding: [{ system: 'urn:hub:task-code', code: 'case-access' }] } }],
      ['notes already there', { ...record, note: [] }],
    ];
    for (const who of ['physician', 'specialist'] as const) {
      for (const [what, body] of tries) {
        const written = await as(tokens[who], 'PUT', COORDINATION, body);
        expect([who, what, written.status]).toEqual([who, what, 403]);
        expect(written.body.issue[0].details.text).toMatch(/Only a coordinator changes the case record/);
      }
    }
    expect((await read(COORDINATION)).meta.versionId).toBe(record.meta.versionId);
    // A note added after the others is theirs to write, as a move is (the progression job checks moves).
    const added = await as(tokens.physician, 'PUT', COORDINATION, {
      ...record,
      note: [...(record.note ?? []), { text: 'Mornings are best.' }],
    });
    expect(added.status).toBe(200);
    // A coordinator takes the case.
    const taken = await as(tokens.coordinator, 'PUT', COORDINATION, {
      ...added.body,
      owner: { reference: 'Practitioner/prac-c' },
    });
    expect(taken.status).toBe(200);
    expect(taken.body.owner).toEqual({ reference: 'Practitioner/prac-c' });
  });
});
