import {
  ACTOR_ROLES,
  type ActorRole,
  type CaseFacts,
  type CaseSnapshot,
  CASE_STATES,
  type CaseState,
  STATE_RESOURCES,
  transition,
  TRANSITIONS,
} from './case-state.ts';

const now = new Date('2026-03-02T14:30:00Z');
const REFERRER = 'dr-referrer';
const SPECIALIST = 'dr-specialist';
const ACTOR_IDS: Record<ActorRole, string> = {
  'referring-physician': REFERRER,
  ehr: REFERRER,
  coordinator: 'coordinator-1',
  radiologist: 'dr-radiologist',
  pathologist: 'dr-pathologist',
  specialist: SPECIALIST,
  system: 'case-worker',
  patient: 'patient-1',
};
const actor = (role: ActorRole, id = ACTOR_IDS[role]) => ({ role, id });
const inState = (state: CaseState): CaseSnapshot => ({ state, referringPhysicianId: REFERRER });

/** Facts under which every guard of every transition holds. */
function satisfyingFacts(to: CaseState): CaseFacts {
  return {
    questionCount: 3,
    eligibility:
      to === 'declined'
        ? { outcome: 'ineligible', allowedReviews: { pathology: false, radiology: false } }
        : { outcome: 'eligible', allowedReviews: { pathology: true, radiology: true } },
    materialsComplete: true,
    preReviews: [
      { kind: 'radiology', reviewerId: 'dr-radiologist', done: true },
      { kind: 'pathology', reviewerId: 'dr-pathologist', done: true },
    ],
    assignedSpecialistId: SPECIALIST,
    reportAuthorId: SPECIALIST,
    letterProblems: [],
    reason: 'The imaging archive rejected the study three times.',
  };
}

// Written out independently of the implementation: from → to → who.
const physician: ActorRole[] = ['referring-physician', 'ehr'];
const beforeRelease: CaseState[] = [
  'intake',
  'submitted',
  'awaiting-materials',
  'pre-review',
  'matching',
  'specialist-review',
  'awaiting-information',
  'report-review',
];
const EXPECTED: Partial<Record<CaseState, Partial<Record<CaseState, ActorRole[]>>>> = {
  intake: { submitted: physician, cancelled: [...physician, 'coordinator'] },
  submitted: {
    'awaiting-materials': ['coordinator'],
    declined: ['system', 'coordinator'],
    cancelled: [...physician, 'coordinator'],
  },
  'awaiting-materials': {
    'pre-review': ['coordinator', 'system', 'radiologist', 'pathologist'],
    matching: ['system', 'coordinator'],
    cancelled: [...physician, 'coordinator'],
  },
  'pre-review': {
    'awaiting-materials': ['coordinator'],
    matching: ['system', 'coordinator'],
    cancelled: ['coordinator'],
  },
  matching: { 'specialist-review': ['specialist', 'coordinator'], cancelled: ['coordinator'] },
  'specialist-review': {
    matching: ['specialist', 'coordinator'],
    'awaiting-information': ['specialist'],
    'report-review': ['specialist'],
    cancelled: ['coordinator'],
  },
  'awaiting-information': {
    'specialist-review': [...physician, 'specialist', 'coordinator'],
    cancelled: ['coordinator'],
  },
  'report-review': {
    'specialist-review': ['coordinator'],
    'report-released': ['coordinator'],
    cancelled: ['coordinator'],
  },
  'report-released': { 'report-accessed': ['referring-physician', 'coordinator'] },
};
for (const from of beforeRelease) {
  EXPECTED[from] = { ...EXPECTED[from], failed: ['system', 'coordinator'] };
}

const pairs = CASE_STATES.flatMap((from) => CASE_STATES.filter((to) => to !== from).map((to) => [from, to] as const));

describe('the table of transitions × actors', () => {
  test('TRANSITIONS lists exactly the expected pairs and roles', () => {
    const listed = Object.fromEntries(TRANSITIONS.map(({ from, to, actors }) => [`${from}→${to}`, [...actors].sort()]));
    const expected = Object.fromEntries(
      Object.entries(EXPECTED).flatMap(([from, targets]) =>
        Object.entries(targets ?? {}).map(([to, roles]) => [`${from}→${to}`, [...roles].sort()]),
      ),
    );
    expect(listed).toEqual(expected);
  });

  test.each(pairs)('%s → %s', (from, to) => {
    const allowed = EXPECTED[from]?.[to] ?? [];
    for (const role of ACTOR_ROLES) {
      const result = transition(inState(from), { to, actor: actor(role), now, facts: satisfyingFacts(to) });
      if (allowed.includes(role)) {
        expect({ role, result }).toEqual({
          role,
          result: expect.objectContaining({ ok: true, state: to, changed: true }),
        });
      } else {
        expect({ role, result }).toEqual({ role, result: { ok: false, reason: expect.any(String) } });
      }
    }
  });

  test.each(['report-accessed', 'declined', 'cancelled', 'failed'] as const)('%s is final', (from) => {
    expect(transition(inState(from), { to: 'intake', actor: actor('coordinator'), now })).toEqual({
      ok: false,
      reason: `The case is in its final state ("${from}"); it cannot change any more.`,
    });
  });

  test('an impossible move says where the case can go instead', () => {
    expect(transition(inState('report-review'), { to: 'matching', actor: actor('coordinator'), now })).toEqual({
      ok: false,
      reason:
        'A case cannot go from "report-review" to "matching". From "report-review" it can go to: specialist-review, report-released, cancelled, failed.',
    });
  });

  test('a role that may not make a move is told who does', () => {
    expect(transition(inState('matching'), { to: 'specialist-review', actor: actor('radiologist'), now })).toEqual({
      ok: false,
      reason:
        'A radiologist cannot move a case from "matching" to "specialist-review"; that is done by the specialist or a coordinator.',
    });
    expect(transition(inState('submitted'), { to: 'awaiting-materials', actor: actor('patient'), now })).toEqual({
      ok: false,
      reason: 'The patient cannot move a case from "submitted" to "awaiting-materials"; that is done by a coordinator.',
    });
  });
});

describe('what each state says in FHIR', () => {
  test.each([
    ['intake', 'draft', 'draft', undefined],
    ['submitted', 'requested', 'active', undefined],
    ['awaiting-materials', 'accepted', 'active', undefined],
    ['pre-review', 'in-progress', 'active', undefined],
    ['matching', 'in-progress', 'active', undefined],
    ['specialist-review', 'in-progress', 'active', 'preliminary'],
    ['awaiting-information', 'in-progress', 'active', 'preliminary'],
    ['report-review', 'in-progress', 'active', 'preliminary'],
    ['report-released', 'completed', 'completed', 'final'],
    ['report-accessed', 'completed', 'completed', 'final'],
    ['declined', 'rejected', 'revoked', undefined],
    ['cancelled', 'cancelled', 'revoked', undefined],
    ['failed', 'failed', 'revoked', undefined],
  ] as const)('%s: Task %s, ServiceRequest %s, report %s', (state, taskStatus, serviceRequestStatus, reportStatus) => {
    expect(STATE_RESOURCES[state]).toEqual({ taskStatus, serviceRequestStatus, reportStatus });
  });

  test('a successful move carries them, the time and a message', () => {
    expect(
      transition(inState('report-review'), {
        to: 'report-released',
        actor: actor('coordinator'),
        now,
        facts: { reportAuthorId: SPECIALIST },
      }),
    ).toEqual({
      ok: true,
      state: 'report-released',
      changed: true,
      at: '2026-03-02T14:30:00.000Z',
      message: 'The case moved from "report-review" to "report-released".',
      taskStatus: 'completed',
      serviceRequestStatus: 'completed',
      reportStatus: 'final',
    });
  });
});

describe('guards', () => {
  const refusal = (from: CaseState, to: CaseState, role: ActorRole, facts: CaseFacts, id?: string) => {
    const result = transition(inState(from), { to, actor: actor(role, id), now, facts });
    return result.ok ? 'allowed' : result.reason;
  };
  const ok = satisfyingFacts;

  test('submission needs a registered referring physician, the case’s own, and questions', () => {
    const unregistered = { state: 'intake', referringPhysicianId: undefined } as const;
    expect(
      transition(unregistered, { to: 'submitted', actor: actor('referring-physician'), now, facts: ok('submitted') }),
    ).toEqual({
      ok: false,
      reason:
        'The case has no registered referring physician; the service is physician-to-physician, so one must take part first.',
    });
    expect(refusal('intake', 'submitted', 'referring-physician', ok('submitted'), 'dr-other')).toBe(
      'Only the case’s own referring physician (or their EHR) can do this; the request comes from another physician.',
    );
    expect(refusal('intake', 'submitted', 'ehr', ok('submitted'), 'dr-other')).toMatch(
      /^Only the case’s own referring physician/,
    );
    for (const questionCount of [undefined, 0]) {
      expect(refusal('intake', 'submitted', 'ehr', { ...ok('submitted'), questionCount })).toBe(
        'The request has no questions; at least one is needed to choose the right specialist.',
      );
    }
  });

  test('declined only when ineligible; accepted only when eligible; both need the check done', () => {
    const ineligible = { outcome: 'ineligible', allowedReviews: { pathology: false, radiology: false } } as const;
    const restricted = {
      outcome: 'eligible-with-restrictions',
      allowedReviews: { pathology: false, radiology: true },
    } as const;
    expect(refusal('submitted', 'declined', 'system', { eligibility: ineligible })).toBe('allowed');
    expect(refusal('submitted', 'declined', 'coordinator', { eligibility: restricted })).toBe(
      'The patient’s residence allows the service; a case is declined only when the jurisdiction rules do not allow it.',
    );
    expect(refusal('submitted', 'awaiting-materials', 'coordinator', { eligibility: restricted })).toBe('allowed');
    expect(refusal('submitted', 'awaiting-materials', 'coordinator', { eligibility: ineligible })).toBe(
      'The jurisdiction rules do not allow the service for this patient’s residence; decline the case instead.',
    );
    for (const to of ['declined', 'awaiting-materials'] as const) {
      expect(refusal('submitted', to, 'coordinator', {})).toBe(
        'The patient’s eligibility (jurisdiction rules) has not been checked yet.',
      );
    }
  });

  test('the physician may withdraw only their own case', () => {
    expect(refusal('awaiting-materials', 'cancelled', 'referring-physician', {}, 'dr-other')).toMatch(
      /^Only the case’s own/,
    );
    expect(refusal('awaiting-materials', 'cancelled', 'coordinator', {})).toBe('allowed');
  });

  test('pre-review needs complete materials and something to pre-review', () => {
    const missing =
      'Not all expected materials have arrived; wait for them, or waive the missing ones, before going on.';
    expect(
      refusal('awaiting-materials', 'pre-review', 'system', { ...ok('pre-review'), materialsComplete: false }),
    ).toBe(missing);
    expect(
      refusal('awaiting-materials', 'matching', 'system', { ...ok('matching'), materialsComplete: undefined }),
    ).toBe(missing);
    expect(refusal('awaiting-materials', 'pre-review', 'system', { ...ok('pre-review'), preReviews: [] })).toBe(
      'The case has no imaging or pathology to pre-review; move it to matching instead.',
    );
    expect(refusal('awaiting-materials', 'pre-review', 'system', { ...ok('pre-review'), preReviews: undefined })).toBe(
      'The case’s pre-reviews are not known.',
    );
  });

  test('no pre-review of radiology (or pathology) where the jurisdiction prohibits it', () => {
    const newJersey = {
      outcome: 'eligible-with-restrictions',
      allowedReviews: { pathology: false, radiology: false },
    } as const;
    const newHampshire = {
      outcome: 'eligible-with-restrictions',
      allowedReviews: { pathology: true, radiology: false },
    } as const;
    const radiology = [{ kind: 'radiology', reviewerId: 'dr-radiologist', done: false }] as const;
    const pathology = [{ kind: 'pathology', reviewerId: 'dr-pathologist', done: false }] as const;
    const facts = { materialsComplete: true };
    expect(
      refusal('awaiting-materials', 'pre-review', 'coordinator', {
        ...facts,
        eligibility: newHampshire,
        preReviews: radiology,
      }),
    ).toBe(
      'The patient’s jurisdiction does not allow radiology review; remove the radiology pre-review (and tell the referring physician) before going on.',
    );
    expect(
      refusal('awaiting-materials', 'pre-review', 'radiologist', {
        ...facts,
        eligibility: newHampshire,
        preReviews: radiology,
      }),
    ).toMatch(/does not allow radiology review/);
    expect(
      refusal('awaiting-materials', 'pre-review', 'system', {
        ...facts,
        eligibility: newJersey,
        preReviews: pathology,
      }),
    ).toMatch(/does not allow pathology review/);
    expect(
      refusal('awaiting-materials', 'pre-review', 'pathologist', {
        ...facts,
        eligibility: newHampshire,
        preReviews: pathology,
      }),
    ).toBe('allowed');
    expect(refusal('awaiting-materials', 'pre-review', 'system', { ...facts, preReviews: pathology })).toBe(
      'The patient’s eligibility (jurisdiction rules) has not been checked yet.',
    );
  });

  test('a prohibited pre-review added once the case is in pre-review still stops it going further', () => {
    const newHampshire = {
      outcome: 'eligible-with-restrictions',
      allowedReviews: { pathology: true, radiology: false },
    } as const;
    const facts = {
      ...ok('matching'),
      eligibility: newHampshire,
      preReviews: [
        { kind: 'pathology', done: true },
        { kind: 'radiology', done: true },
      ],
    } as const;
    expect(refusal('pre-review', 'matching', 'system', facts)).toMatch(
      /^The patient’s jurisdiction does not allow radiology review/,
    );
    expect(refusal('matching', 'specialist-review', 'coordinator', facts)).toMatch(/does not allow radiology review/);
    expect(refusal('awaiting-materials', 'matching', 'coordinator', facts)).toMatch(/does not allow radiology review/);
    expect(
      refusal('pre-review', 'matching', 'system', { ...facts, preReviews: [{ kind: 'pathology', done: true }] }),
    ).toBe('allowed');
    expect(refusal('pre-review', 'matching', 'system', { preReviews: [] })).toBe('allowed');
  });

  test('a radiologist or pathologist starts only the pre-review assigned to them', () => {
    const facts = {
      ...ok('pre-review'),
      preReviews: [{ kind: 'radiology', reviewerId: 'dr-radiologist', done: false }],
    } as const;
    expect(refusal('awaiting-materials', 'pre-review', 'radiologist', facts)).toBe('allowed');
    expect(refusal('awaiting-materials', 'pre-review', 'radiologist', facts, 'dr-other')).toBe(
      'This radiologist is not assigned to the case’s radiology pre-review.',
    );
    expect(refusal('awaiting-materials', 'pre-review', 'pathologist', facts)).toBe(
      'This pathologist is not assigned to the case’s pathology pre-review.',
    );
  });

  test('matching, and a specialist, only after every pre-review is done', () => {
    const pending = {
      ...ok('matching'),
      preReviews: [
        { kind: 'radiology', done: false },
        { kind: 'pathology', done: false },
      ],
    } as const;
    const onePending = {
      ...ok('matching'),
      preReviews: [
        { kind: 'radiology', done: true },
        { kind: 'pathology', done: false },
      ],
    } as const;
    expect(refusal('pre-review', 'matching', 'system', pending)).toBe(
      'The case cannot go to matching yet: the radiology pre-review and the pathology pre-review are not done.',
    );
    expect(refusal('awaiting-materials', 'matching', 'coordinator', onePending)).toBe(
      'The case cannot go to matching yet: the pathology pre-review is not done.',
    );
    expect(refusal('matching', 'specialist-review', 'coordinator', onePending)).toBe(
      'A specialist cannot be assigned yet: the pathology pre-review is not done.',
    );
    expect(refusal('awaiting-materials', 'matching', 'system', { ...ok('matching'), preReviews: [] })).toBe('allowed');
  });

  test('specialist review needs the assigned specialist', () => {
    expect(
      refusal('matching', 'specialist-review', 'coordinator', {
        ...ok('specialist-review'),
        assignedSpecialistId: undefined,
      }),
    ).toBe('No specialist is assigned to the case yet.');
    expect(refusal('matching', 'specialist-review', 'specialist', ok('specialist-review'), 'dr-someone-else')).toBe(
      'This specialist is not the one assigned to the case.',
    );
    for (const to of ['awaiting-information', 'report-review', 'matching'] as const) {
      expect(refusal('specialist-review', to, 'specialist', ok(to), 'dr-someone-else')).toBe(
        'This specialist is not the one assigned to the case.',
      );
    }
  });

  test('the physician’s answer resumes the review only for their own case', () => {
    expect(refusal('awaiting-information', 'specialist-review', 'ehr', ok('specialist-review'))).toBe('allowed');
    expect(
      refusal('awaiting-information', 'specialist-review', 'referring-physician', ok('specialist-review'), 'dr-other'),
    ).toMatch(/^Only the case’s own/);
  });

  test('the specialist submits only a complete letter', () => {
    expect(
      refusal('specialist-review', 'report-review', 'specialist', {
        ...ok('report-review'),
        letterProblems: undefined,
      }),
    ).toBe('The draft report has no letter (a Composition, LOINC 11488-4) to submit.');
    expect(
      refusal('specialist-review', 'report-review', 'specialist', {
        ...ok('report-review'),
        letterProblems: ['Question 2 of 2 has no answer.'],
      }),
    ).toBe('The letter is not complete: Question 2 of 2 has no answer.');
  });

  test('the specialist submits only a report of their own', () => {
    expect(
      refusal('specialist-review', 'report-review', 'specialist', {
        ...ok('report-review'),
        reportAuthorId: undefined,
      }),
    ).toBe('There is no draft report by the assigned specialist to submit for review.');
    expect(
      refusal('specialist-review', 'report-review', 'specialist', {
        ...ok('report-review'),
        reportAuthorId: 'dr-other',
      }),
    ).toBe('There is no draft report by the assigned specialist to submit for review.');
  });

  test('release needs approval by a coordinator who is not the author', () => {
    expect(
      refusal(
        'report-review',
        'report-released',
        'coordinator',
        { reportAuthorId: 'dr-coordinating-specialist' },
        'dr-coordinating-specialist',
      ),
    ).toBe('The report’s author cannot approve it; another coordinator must.');
    expect(refusal('report-review', 'report-released', 'coordinator', {})).toBe(
      'The report’s author is not known, so its approval cannot be checked.',
    );
    expect(refusal('report-review', 'report-released', 'specialist', ok('report-released'))).toMatch(
      /that is done by a coordinator\.$/,
    );
  });

  test('report-accessed only by the referring physician’s own read, never a system client’s prefetch', () => {
    const prefetch =
      'Only the referring physician’s own reading of the report marks it accessed (or a coordinator recording, ' +
      'with a reason, that the physician had it another way); a system client’s retrieval or anyone else’s ' +
      'reading does not.';
    expect(refusal('report-released', 'report-accessed', 'ehr', {})).toBe(prefetch);
    expect(refusal('report-released', 'report-accessed', 'system', {})).toBe(prefetch);
    expect(refusal('report-released', 'report-accessed', 'patient', {})).toBe(prefetch);
    expect(refusal('report-released', 'report-accessed', 'referring-physician', {}, 'dr-other')).toMatch(
      /^Only the case’s own/,
    );
    expect(refusal('report-released', 'report-accessed', 'referring-physician', {})).toBe('allowed');
    // A coordinator records that the physician had it by another route, saying how.
    expect(refusal('report-released', 'report-accessed', 'coordinator', { reason: ' ' })).toBe(
      'Say how the physician had the report (a phone call, a printed copy); the reason is kept on the case.',
    );
    expect(
      refusal('report-released', 'report-accessed', 'coordinator', { reason: 'Read to Dr. Physick by phone.' }),
    ).toBe('allowed');
  });

  test('failing a case needs a reason', () => {
    for (const reason of [undefined, '  ']) {
      expect(refusal('matching', 'failed', 'system', { reason })).toBe(
        'Say why the case failed; the reason is shown to coordinators.',
      );
    }
  });
});

describe('repeated requests (at-least-once delivery)', () => {
  test.each([
    ['intake', 'referring-physician'],
    ['intake', 'ehr'],
    ['submitted', 'ehr'],
    ['awaiting-materials', 'coordinator'],
    ['pre-review', 'radiologist'],
    ['matching', 'system'],
    ['specialist-review', 'specialist'],
    ['awaiting-information', 'specialist'],
    ['report-review', 'specialist'],
    ['report-released', 'coordinator'],
    ['report-accessed', 'referring-physician'],
    ['declined', 'system'],
    ['cancelled', 'referring-physician'],
    ['failed', 'system'],
  ] as const)('%s again by %s is a no-op, reported as such', (state, role) => {
    expect(transition(inState(state), { to: state, actor: actor(role), now })).toEqual({
      ok: true,
      state,
      changed: false,
      at: now.toISOString(),
      message: `The case is already "${state}"; nothing changed.`,
      ...STATE_RESOURCES[state],
    });
  });

  test('guards are not re-run: the facts may have moved on since', () => {
    const result = transition(inState('report-released'), {
      to: 'report-released',
      actor: actor('coordinator', SPECIALIST),
      now,
      facts: { reportAuthorId: SPECIALIST },
    });
    expect(result).toMatchObject({ ok: true, changed: false });
  });

  test.each([
    ['report-accessed', 'ehr'],
    ['report-released', 'specialist'],
    ['declined', 'referring-physician'],
    ['matching', 'patient'],
  ] as const)('%s again by %s, who could never move a case there, is refused', (state, role) => {
    const result = transition(inState(state), { to: state, actor: actor(role), now });
    expect(result).toEqual({
      ok: false,
      reason: expect.stringMatching(new RegExp(`^The case is already "${state}", and .* cannot move a case there\\.$`)),
    });
  });
});

test('a whole case, from draft to the physician reading the report', () => {
  const steps: [CaseState, ActorRole, CaseFacts][] = [
    ['submitted', 'ehr', { questionCount: 2 }],
    ['awaiting-materials', 'coordinator', satisfyingFacts('awaiting-materials')],
    ['pre-review', 'system', { ...satisfyingFacts('pre-review'), preReviews: [{ kind: 'radiology', done: false }] }],
    ['matching', 'system', { ...satisfyingFacts('matching'), preReviews: [{ kind: 'radiology', done: true }] }],
    ['specialist-review', 'specialist', satisfyingFacts('specialist-review')],
    ['awaiting-information', 'specialist', { assignedSpecialistId: SPECIALIST }],
    ['specialist-review', 'referring-physician', { assignedSpecialistId: SPECIALIST }],
    [
      'report-review',
      'specialist',
      { assignedSpecialistId: SPECIALIST, reportAuthorId: SPECIALIST, letterProblems: [] },
    ],
    ['specialist-review', 'coordinator', {}],
    [
      'report-review',
      'specialist',
      { assignedSpecialistId: SPECIALIST, reportAuthorId: SPECIALIST, letterProblems: [] },
    ],
    ['report-released', 'coordinator', { reportAuthorId: SPECIALIST }],
    ['report-accessed', 'referring-physician', {}],
  ];
  let snapshot = inState('intake');
  for (const [to, role, facts] of steps) {
    const result = transition(snapshot, { to, actor: actor(role), now, facts });
    expect({ to, result }).toEqual({ to, result: expect.objectContaining({ ok: true, state: to, changed: true }) });
    snapshot = { ...snapshot, state: to };
  }
});
