import {
  matchSpecialists,
  type MatchingRequest,
  nextCandidate,
  reasonsAgainst,
  type SpecialistProfile,
} from './matching.ts';

const now = new Date('2026-03-02T15:00:00Z');
const dueBy = new Date('2026-03-16T21:00:00Z');

function specialist(id: string, name: string, changes: Partial<SpecialistProfile> = {}): SpecialistProfile {
  return {
    id,
    name,
    active: true,
    trainingLevel: 'attending',
    boardCertified: true,
    licenceExpiresAt: '2027-06-30T23:59:59-04:00',
    specialties: ['oncology'],
    subspecialtyKeywords: [],
    openCases: 1,
    capacity: 6,
    leave: [],
    ...changes,
  };
}

const ROSTER: readonly SpecialistProfile[] = [
  specialist('ruiz', 'Dr. Ana Ruiz', {
    subspecialtyKeywords: ['*sarcoma', 'uterine', 'gynecologic oncology', 'sarcoma'],
    openCases: 2,
  }),
  specialist('okafor', 'Dr. Ben Okafor', { subspecialtyKeywords: ['breast', 'lymphoma'] }),
  specialist('novak', 'Dr. Laura Novak'),
  specialist('weber', 'Dr. Paul Weber', { openCases: 3 }),
  specialist('rossi', 'Dr. Maria Rossi', {
    openCases: 0,
    leave: [{ start: '2026-03-07T00:00:00Z', end: '2026-03-21T00:00:00Z' }],
  }),
  specialist('farouk', 'Dr. Omar Farouk', { specialties: ['pathology'], openCases: 0, capacity: 4 }),
  specialist('li', 'Dr. Chen Li', { trainingLevel: 'fellow' }),
  specialist('park', 'Dr. Dana Park', { trainingLevel: 'resident' }),
  specialist('quinn', 'Dr. Eve Quinn', { trainingLevel: 'intern', boardCertified: false, licenceExpiresAt: undefined }),
  specialist('haddad', 'Dr. Farah Haddad', { licenceExpiresAt: '2026-02-28T23:59:59-05:00' }),
  specialist('stein', 'Dr. George Stein', { boardCertified: false }),
  specialist('sato', 'Dr. Hana Sato', { active: false }),
  specialist('petrov', 'Dr. Ivan Petrov', {
    subspecialtyKeywords: ['*sarcoma'],
    leave: [{ start: '2026-02-23T00:00:00Z', end: '2026-03-09T00:00:00Z' }],
  }),
  specialist('moreau', 'Dr. Julia Moreau', { openCases: 5, capacity: 5 }),
  specialist('mensah', 'Dr. Kofi Mensah', { specialties: ['cardiology'] }),
  specialist('noor', 'Dr. Layla Noor', { specialties: ['dermatology'], subspecialtyKeywords: ['melanoma'] }),
];

const sarcomaCase: MatchingRequest = {
  questions: [
    'Is the biopsy diagnosis of uterine leiomyosarcoma correct?',
    'Do you agree with surgery followed by chemotherapy for this tumour?',
  ],
  materials: { imaging: [{ modality: 'MR', bodySite: 'Pelvis' }], pathology: [{ bodySite: 'Uterus' }] },
  now,
  reviewDueBy: dueBy,
};

const ids = (candidates: readonly { specialistId: string }[]) => candidates.map((candidate) => candidate.specialistId);

describe('matchSpecialists on a realistic roster', () => {
  const result = matchSpecialists(sarcomaCase, ROSTER);

  test('seeks the specialties the case calls for', () => {
    expect(result.specialtiesSought).toEqual(['oncology', 'pathology']);
    expect(result.needs.map((need) => [need.specialty, need.score])).toEqual([
      ['oncology', 6],
      ['pathology', 2],
    ]);
    expect(result.notes).toEqual([]);
    expect(result.requested).toBeUndefined();
  });

  test('ranks by fit, then availability through the due date, then workload; ties by name', () => {
    expect(ids(result.ranking)).toEqual(['ruiz', 'okafor', 'novak', 'weber', 'rossi', 'farouk']);
    expect(result.ranking.map((candidate) => [candidate.rank, candidate.fitScore])).toEqual([
      [1, 10],
      [2, 6],
      [3, 6],
      [4, 6],
      [5, 6],
      [6, 2],
    ]);
  });

  test('explains every place in words a coordinator reads', () => {
    expect(result.ranking.map((candidate) => candidate.explanation)).toEqual([
      '1. Dr. Ana Ruiz: practises Medical Oncology; special interest in leiomyosarcoma, uterine; fit 10; workload 2 of 6 open cases; available until the opinion is due.',
      '2. Dr. Ben Okafor: practises Medical Oncology; fit 6; workload 1 of 6 open cases; available until the opinion is due; tied with Dr. Laura Novak on fit, availability and workload; listed by name.',
      '3. Dr. Laura Novak: practises Medical Oncology; fit 6; workload 1 of 6 open cases; available until the opinion is due; tied with Dr. Ben Okafor on fit, availability and workload; listed by name.',
      '4. Dr. Paul Weber: practises Medical Oncology; fit 6; workload 3 of 6 open cases; available until the opinion is due.',
      '5. Dr. Maria Rossi: practises Medical Oncology; fit 6; workload 0 of 6 open cases; leave from 2026-03-07, before the opinion is due.',
      '6. Dr. Omar Farouk: practises Anatomic Pathology & Clinical Pathology; fit 2; workload 0 of 4 open cases; available until the opinion is due.',
    ]);
    expect(result.ranking[4]?.leaveStartsAt).toBe('2026-03-07T00:00:00Z');
    expect(result.ranking[0]?.subspecialtyMatches).toEqual(['leiomyosarcoma', 'uterine']);
  });

  test('never trainees, lapsed licences, uncertified, inactive, on leave, full or off-specialty; each says why', () => {
    expect(result.excluded).toEqual([
      {
        specialistId: 'li',
        name: 'Dr. Chen Li',
        reasons: ['a fellow: interns, residents and fellows cannot give opinions'],
      },
      {
        specialistId: 'park',
        name: 'Dr. Dana Park',
        reasons: ['a resident: interns, residents and fellows cannot give opinions'],
      },
      {
        specialistId: 'quinn',
        name: 'Dr. Eve Quinn',
        reasons: [
          'an intern: interns, residents and fellows cannot give opinions',
          'not board-certified',
          'no medical licence on file',
        ],
      },
      { specialistId: 'haddad', name: 'Dr. Farah Haddad', reasons: ['licence expired on 2026-03-01'] },
      { specialistId: 'stein', name: 'Dr. George Stein', reasons: ['not board-certified'] },
      { specialistId: 'sato', name: 'Dr. Hana Sato', reasons: ['not active on the roster'] },
      { specialistId: 'petrov', name: 'Dr. Ivan Petrov', reasons: ['on leave until 2026-03-09'] },
      { specialistId: 'moreau', name: 'Dr. Julia Moreau', reasons: ['at capacity (5 of 5 open cases)'] },
      {
        specialistId: 'mensah',
        name: 'Dr. Kofi Mensah',
        reasons: ['does not practise Medical Oncology or Anatomic Pathology & Clinical Pathology'],
      },
      {
        specialistId: 'noor',
        name: 'Dr. Layla Noor',
        reasons: ['does not practise Medical Oncology or Anatomic Pathology & Clinical Pathology'],
      },
    ]);
    expect(result.ranking.length + result.excluded.length).toBe(ROSTER.length);
  });
});

describe('a requested specialist', () => {
  test('is honoured first when eligible and available, even above a better fit', () => {
    const result = matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'weber' }, ROSTER);
    expect(result.requested).toEqual({
      specialistId: 'weber',
      honoured: true,
      explanation: 'Dr. Paul Weber was requested, is eligible and available, and is proposed first.',
    });
    expect(ids(result.ranking)).toEqual(['weber', 'ruiz', 'okafor', 'novak', 'rossi', 'farouk']);
    expect(result.ranking[0]?.explanation).toBe(
      '1. Dr. Paul Weber: requested by the referring physician; practises Medical Oncology; fit 6; workload 3 of 6 open cases; available until the opinion is due.',
    );
  });

  test('on leave: not honoured, with the reason, and the best other match is proposed', () => {
    const result = matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'petrov' }, ROSTER);
    expect(result.requested).toEqual({
      specialistId: 'petrov',
      honoured: false,
      explanation:
        'Dr. Ivan Petrov was requested but cannot take the case: on leave until 2026-03-09. The best other match is proposed.',
    });
    expect(result.ranking[0]?.specialistId).toBe('ruiz');
    expect(ids(result.excluded)).toContain('petrov');
  });

  test('a trainee or a full specialist is not honoured either', () => {
    expect(matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'li' }, ROSTER).requested?.honoured).toBe(false);
    expect(matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'moreau' }, ROSTER).requested?.explanation).toBe(
      'Dr. Julia Moreau was requested but cannot take the case: at capacity (5 of 5 open cases). The best other match is proposed.',
    );
  });

  test('outside the inferred specialty: honoured, with a note to check the fit', () => {
    const result = matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'noor' }, ROSTER);
    expect(result.requested?.honoured).toBe(true);
    expect(result.ranking[0]).toMatchObject({ specialistId: 'noor', requested: true, fitScore: 0 });
    expect(result.ranking[0]?.explanation).toBe(
      '1. Dr. Layla Noor: requested by the referring physician; no specialty match; fit 0; workload 1 of 6 open cases; ' +
        'available until the opinion is due; check the fit: the case calls for Medical Oncology or Anatomic Pathology & Clinical Pathology.',
    );
  });

  test('not on the roster', () => {
    const result = matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'dr-unknown' }, ROSTER);
    expect(result.requested).toEqual({
      specialistId: 'dr-unknown',
      honoured: false,
      explanation: 'The requested specialist is not on the roster. The best match is proposed.',
    });
    expect(result.ranking[0]?.specialistId).toBe('ruiz');
  });
});

describe('boundaries and choices', () => {
  test('a licence lapsing exactly now is lapsed; one lapsing a second later is not', () => {
    const roster = [
      specialist('a', 'Dr. A', { licenceExpiresAt: now.toISOString() }),
      specialist('b', 'Dr. B', { licenceExpiresAt: new Date(now.getTime() + 1000).toISOString() }),
      specialist('c', 'Dr. C', { licenceExpiresAt: 'soon' }),
    ];
    const result = matchSpecialists(sarcomaCase, roster);
    expect(ids(result.ranking)).toEqual(['b']);
    expect(result.excluded.map((member) => member.reasons)).toEqual([
      ['licence expired on 2026-03-02'],
      ['licence expiry "soon" cannot be read'],
    ]);
  });

  test('leave is end-exclusive; leave starting after the due date does not count; unreadable leave excludes', () => {
    const roster = [
      specialist('back', 'Dr. Back Today', { leave: [{ start: '2026-02-20T00:00:00Z', end: now.toISOString() }] }),
      specialist('gone', 'Dr. Gone Now', { leave: [{ start: now.toISOString(), end: '2026-03-05T00:00:00Z' }] }),
      specialist('later', 'Dr. Later', { leave: [{ start: '2026-03-17T00:00:00Z', end: '2026-03-30T00:00:00Z' }] }),
      specialist('bad', 'Dr. Bad Dates', { leave: [{ start: 'next week', end: '2026-03-30T00:00:00Z' }] }),
    ];
    const result = matchSpecialists(sarcomaCase, roster);
    expect(result.ranking.map((candidate) => [candidate.specialistId, candidate.leaveStartsAt])).toEqual([
      ['back', undefined],
      ['later', undefined],
    ]);
    expect(result.excluded).toEqual([
      { specialistId: 'gone', name: 'Dr. Gone Now', reasons: ['on leave until 2026-03-05'] },
      {
        specialistId: 'bad',
        name: 'Dr. Bad Dates',
        reasons: ['a leave period on the roster has dates that cannot be read'],
      },
    ]);
  });

  test('without a due date, the review window is 14 days', () => {
    const roster = [
      specialist('x', 'Dr. X', { leave: [{ start: '2026-03-15T00:00:00Z', end: '2026-03-20T00:00:00Z' }] }),
    ];
    expect(matchSpecialists({ ...sarcomaCase, reviewDueBy: undefined }, roster).ranking[0]?.leaveStartsAt).toBe(
      '2026-03-15T00:00:00Z',
    );
    const [first] = matchSpecialists({ ...sarcomaCase, reviewDueBy: new Date('2026-03-10T00:00:00Z') }, roster).ranking;
    expect(first).toBeDefined();
    expect(first!.leaveStartsAt).toBeUndefined();
  });

  test('workload compares the share of capacity used, then the count of open cases', () => {
    const roster = [
      specialist('half-of-six', 'Dr. A', { openCases: 3, capacity: 6 }),
      specialist('half-of-four', 'Dr. B', { openCases: 2, capacity: 4 }),
      specialist('quarter', 'Dr. C', { openCases: 2, capacity: 8 }),
    ];
    expect(ids(matchSpecialists(sarcomaCase, roster).ranking)).toEqual(['quarter', 'half-of-four', 'half-of-six']);
  });

  test('a coordinator’s choice of specialty replaces the inferred ones', () => {
    const result = matchSpecialists({ ...sarcomaCase, specialty: 'pathology' }, ROSTER);
    expect(result.specialtiesSought).toEqual(['pathology']);
    expect(ids(result.ranking)).toEqual(['farouk']);
    expect(result.ranking[0]?.fitScore).toBe(2);
    const chosen = matchSpecialists({ ...sarcomaCase, specialty: 'cardiology' }, ROSTER);
    expect(chosen.ranking.map((candidate) => [candidate.specialistId, candidate.fitScore])).toEqual([['mensah', 1]]);
    expect(chosen.excluded.find((member) => member.specialistId === 'ruiz')?.reasons).toEqual([
      'does not practise Cardiovascular Disease',
    ]);
  });

  test('when no specialty can be told, every eligible specialist is ranked and the coordinator is asked to choose', () => {
    const result = matchSpecialists(
      { ...sarcomaCase, questions: ['Please advise on next steps.'], materials: { imaging: [], pathology: [] } },
      ROSTER,
    );
    expect(result.specialtiesSought).toEqual([]);
    expect(result.notes).toEqual([
      'The questions and materials point to no specialty the hub recognises; a coordinator should choose one.',
    ]);
    expect(ids(result.ranking)).toEqual(['farouk', 'okafor', 'mensah', 'novak', 'noor', 'ruiz', 'weber', 'rossi']);
    expect(result.ranking[2]?.explanation).toContain('no specialty match');
  });

  test('the same input gives the same ranking, whatever the roster order', () => {
    const reversed = matchSpecialists(sarcomaCase, [...ROSTER].reverse());
    expect(ids(reversed.ranking)).toEqual(ids(matchSpecialists(sarcomaCase, ROSTER).ranking));
  });
});

describe('nextCandidate', () => {
  const { ranking } = matchSpecialists(sarcomaCase, ROSTER);

  test('the best-ranked candidate who has not declined', () => {
    expect(nextCandidate(ranking, [])?.specialistId).toBe('ruiz');
    expect(nextCandidate(ranking, ['ruiz'])?.specialistId).toBe('okafor');
    expect(nextCandidate(ranking, new Set(['ruiz', 'okafor', 'someone-else']))?.specialistId).toBe('novak');
  });

  test('none left when all have declined', () => {
    expect(nextCandidate(ranking, ids(ranking))).toBeUndefined();
    expect(nextCandidate([], [])).toBeUndefined();
  });

  test('after a requested specialist declines, the ranking goes on by merit', () => {
    const requested = matchSpecialists({ ...sarcomaCase, requestedSpecialistId: 'weber' }, ROSTER).ranking;
    expect(nextCandidate(requested, ['weber'])?.specialistId).toBe('ruiz');
  });
});

describe('reasonsAgainst: a coordinator’s own choice of specialist', () => {
  test('whatever the case asks for, only eligibility and availability count', () => {
    // A cardiologist for a sarcoma: the ranking would pass them over; a coordinator may choose them.
    expect(reasonsAgainst(specialist('mensah', 'Dr. Kofi Mensah', { specialties: ['cardiology'] }), now)).toEqual([]);
    expect(reasonsAgainst(specialist('li', 'Dr. Chen Li', { trainingLevel: 'fellow' }), now)).toEqual([
      'a fellow: interns, residents and fellows cannot give opinions',
    ]);
    expect(reasonsAgainst(specialist('moreau', 'Dr. Julia Moreau', { openCases: 5, capacity: 5 }), now)).toEqual([
      'at capacity (5 of 5 open cases)',
    ]);
    expect(
      reasonsAgainst(
        specialist('petrov', 'Dr. Ivan Petrov', {
          leave: [{ start: '2026-02-23T00:00:00Z', end: '2026-03-09T00:00:00Z' }],
        }),
        now,
      ),
    ).toEqual(['on leave until 2026-03-09']);
  });
});
