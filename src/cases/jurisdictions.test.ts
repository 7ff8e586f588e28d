import {
  checkEligibility,
  DEFAULT_JURISDICTION_POLICY,
  effectivePolicy,
  type JurisdictionPolicy,
  parseJurisdictionPolicy,
} from './jurisdictions.ts';

const policy = DEFAULT_JURISDICTION_POLICY;
const both = { pathology: true, radiology: true };
const none = { pathology: false, radiology: false };

function editedPolicy(changes: Partial<JurisdictionPolicy>): JurisdictionPolicy {
  const parsed = parseJurisdictionPolicy({ ...structuredClone(policy), ...changes });
  if (!parsed.ok) {
    throw new Error(parsed.errors.join('\n'));
  }
  return parsed.policy;
}

describe('the shipped default policy', () => {
  test('is valid and lists every name of domain.md, nothing more', () => {
    expect(parseJurisdictionPolicy(structuredClone(policy)).ok).toBe(true);
    expect(policy.entries.map((entry) => entry.code).sort()).toEqual(
      [
        'US-NM',
        'US-VI',
        'US-NH',
        'US-NC',
        'US-AS',
        'FM',
        'MH',
        'US-NJ',
        'US-MP',
        'US-RI',
        'US-SC',
        'US-WV',
        'MM',
        'CF',
        'KP',
        'CD',
        'SS',
        'PS',
        'SY',
      ].sort(),
    );
    expect(policy.serviceJurisdiction).toEqual({ code: 'US-MA', name: 'Massachusetts' });
  });

  test('says that names were lost from the lists', () => {
    expect(policy.notes.join(' ')).toMatch(/lost names/);
    for (const entry of policy.entries) {
      expect(entry.source).toMatch(/incomplete/);
    }
  });

  test.each([
    ['US', 'US-NM', 'New Mexico'],
    ['US', 'US-VI', 'the U.S. Virgin Islands'],
  ])('%s %s: cross-state opinions prohibited, so ineligible', (country, subdivision, name) => {
    const result = checkEligibility({ country, subdivision }, policy);
    expect(result).toMatchObject({ outcome: 'ineligible', allowedReviews: none, policyVersion: 'default-1' });
    expect(result.reasons).toHaveLength(1);
    expect(result.reasons[0]).toMatchObject({ code: 'no-cross-state-opinion', jurisdiction: subdivision });
    expect(result.reasons[0]?.message).toContain(`residents of ${name}`);
    expect(result.reasons[0]?.message).toContain('our specialists practise in Massachusetts');
  });

  test.each([
    ['US-NH', 'New Hampshire'],
    ['US-NC', 'North Carolina'],
  ])('%s: radiology prohibited', (subdivision, name) => {
    const result = checkEligibility({ country: 'US', subdivision }, policy);
    expect(result).toMatchObject({
      outcome: 'eligible-with-restrictions',
      allowedReviews: { pathology: true, radiology: false },
    });
    expect(result.reasons.map((reason) => reason.message)).toEqual([
      `Residents of ${name} can receive a second opinion, but state rules do not allow us to review imaging from there.`,
    ]);
  });

  test.each([
    [{ country: 'US', subdivision: 'US-AS' }, 'US-AS', 'Residents of American Samoa', 'territory rules'],
    [{ country: 'FM' }, 'FM', 'Residents of the Federated States of Micronesia', 'local rules'],
    [{ country: 'MH' }, 'MH', 'Residents of the Marshall Islands', 'local rules'],
    [{ country: 'US', subdivision: 'US-NJ' }, 'US-NJ', 'Residents of New Jersey', 'state rules'],
    [{ country: 'US', subdivision: 'US-MP' }, 'US-MP', 'Residents of the Northern Mariana Islands', 'territory rules'],
    [{ country: 'US', subdivision: 'US-RI' }, 'US-RI', 'Residents of Rhode Island', 'state rules'],
    [{ country: 'US', subdivision: 'US-SC' }, 'US-SC', 'Residents of South Carolina', 'state rules'],
    [{ country: 'US', subdivision: 'US-WV' }, 'US-WV', 'Residents of West Virginia', 'state rules'],
  ])('%j: pathology and radiology prohibited', (residence, code, residents, rules) => {
    const result = checkEligibility(residence, policy);
    expect(result).toMatchObject({ outcome: 'eligible-with-restrictions', allowedReviews: none });
    expect(result.reasons).toEqual([
      expect.objectContaining({
        code: 'no-pathology-no-radiology',
        jurisdiction: code,
        message: `${residents} can receive a second opinion, but ${rules} do not allow us to review pathology slides or imaging from there.`,
      }),
    ]);
  });

  test.each([
    ['FM', 'FM'],
    ['MH', 'US-MH'],
    ['PW', 'pw'],
  ])(
    'an address in %s written the U.S. Postal Service way (US, state %s) is screened as that country',
    (country, state) => {
      const asPostal = checkEligibility({ country: 'US', subdivision: state }, policy);
      expect(asPostal.reasons.map((reason) => reason.code)).not.toContain('residence-unrecognised');
      expect(asPostal).toEqual(checkEligibility({ country }, policy));
    },
  );

  test('the example sentence of the brief, word for word', () => {
    expect(checkEligibility({ country: 'US', subdivision: 'US-NJ' }, policy).reasons[0]).toEqual({
      code: 'no-pathology-no-radiology',
      jurisdiction: 'US-NJ',
      message:
        'Residents of New Jersey can receive a second opinion, but state rules do not allow us to review pathology slides or imaging from there.',
      detail: 'New Jersey does not allow pathology or radiology reports to be shared across state lines.',
      source: "Service page, 'Both pathology and radiology prohibited' (list incomplete in our copy)",
    });
  });

  test.each([
    ['MM', 'Burma (Myanmar)'],
    ['CF', 'the Central African Republic'],
    ['KP', 'North Korea'],
    ['CD', 'the Democratic Republic of the Congo'],
    ['SS', 'South Sudan'],
    ['PS', 'the State of Palestine'],
    ['SY', 'Syria'],
  ])('%s: sanctioned, no service', (country, name) => {
    const result = checkEligibility({ country }, policy);
    expect(result).toMatchObject({ outcome: 'ineligible', allowedReviews: none });
    expect(result.reasons).toEqual([
      expect.objectContaining({
        code: 'no-service',
        jurisdiction: country,
        message: `We are sorry, but our service is not available to residents of ${name}.`,
        detail: expect.stringContaining('sanctions'),
      }),
    ]);
  });

  test.each([
    [{ country: 'US', subdivision: 'US-MA' }],
    [{ country: 'US', subdivision: 'US-CA' }],
    [{ country: 'US', subdivision: 'US-DC' }],
    [{ country: 'US', subdivision: 'US-PR' }],
    [{ country: 'GU' }],
    [{ country: 'FR' }],
    [{ country: 'PW' }],
    [{ country: 'CA', subdivision: 'CA-QC' }],
  ])('%j: eligible without restrictions', (residence) => {
    expect(checkEligibility(residence, policy)).toEqual({
      outcome: 'eligible',
      allowedReviews: both,
      reasons: [],
      policyVersion: 'default-1',
    });
  });
});

describe('reading the residence', () => {
  test.each([
    [{ country: 'us', subdivision: 'nj' }],
    [{ country: ' US ', subdivision: 'us-nj' }],
    [{ country: 'US', subdivision: 'NJ' }],
  ])('%j is New Jersey', (residence) => {
    expect(checkEligibility(residence, policy).reasons[0]?.jurisdiction).toBe('US-NJ');
  });

  test.each([
    ['VI', 'ineligible'],
    ['AS', 'eligible-with-restrictions'],
    ['MP', 'eligible-with-restrictions'],
  ])('a territory given by its own country code (%s) is read as its U.S. subdivision', (country, outcome) => {
    const result = checkEligibility({ country }, policy);
    expect(result.outcome).toBe(outcome);
    expect(result.reasons[0]?.jurisdiction).toBe(`US-${country}`);
  });

  test.each([[{ country: undefined }], [{ country: '' }], [{ country: '   ' }]])(
    '%j: asks for the country',
    (residence) => {
      const result = checkEligibility(residence, policy);
      expect(result).toMatchObject({ outcome: 'ineligible', allowedReviews: none });
      expect(result.reasons).toEqual([
        {
          code: 'residence-missing',
          message:
            'Please tell us the country where you live, so that we can check that we are able to serve residents there.',
        },
      ]);
    },
  );

  test.each([[{ country: 'US' }], [{ country: 'US', subdivision: '' }]])('%j: asks for the state', (residence) => {
    const result = checkEligibility(residence, policy);
    expect(result.outcome).toBe('ineligible');
    expect(result.reasons[0]?.code).toBe('residence-missing');
    expect(result.reasons[0]?.message).toMatch(/^Please tell us which U\.S\. state or territory you live in/);
  });

  test.each([['XX'], ['USA'], ['United States']])('an unknown country code (%s) is refused clearly', (country) => {
    const result = checkEligibility({ country }, policy);
    expect(result.outcome).toBe('ineligible');
    expect(result.reasons[0]).toEqual({
      code: 'residence-unrecognised',
      message: `We do not recognise the country code "${country.toUpperCase()}". Please choose your country from the list.`,
    });
  });

  test.each([['ZZ'], ['US-ZZ'], ['Texas']])('an unknown U.S. subdivision (%s) is refused clearly', (subdivision) => {
    const result = checkEligibility({ country: 'US', subdivision }, policy);
    expect(result.outcome).toBe('ineligible');
    expect(result.reasons[0]?.code).toBe('residence-unrecognised');
    expect(result.reasons[0]?.message).toContain('as a U.S. state or territory');
  });
});

describe('an operator-edited policy', () => {
  const edited = editedPolicy({
    version: '2026-03',
    effectiveFrom: '2026-03-01T00:00:00-05:00',
    entries: [
      ...policy.entries.filter((entry) => entry.code !== 'US-NH'),
      {
        code: 'US-TX',
        name: 'Texas',
        rule: 'no-pathology',
        reason: 'Texas (example).',
        source: 'Operator, 2026-02-20',
      },
      { code: 'IR', name: 'Iran', rule: 'no-service', reason: 'Iran is sanctioned.', source: 'OFAC list, 2026-02-20' },
      { code: 'US', name: 'the United States', rule: 'no-radiology', reason: 'Example.', source: 'Operator' },
    ],
  });

  test('adds a pathology-only restriction', () => {
    const result = checkEligibility({ country: 'US', subdivision: 'TX' }, edited);
    expect(result.policyVersion).toBe('2026-03');
    expect(result.allowedReviews).toEqual({ pathology: false, radiology: false });
    expect(result.reasons.map((reason) => reason.message)).toEqual([
      'Residents of the United States can receive a second opinion, but federal rules do not allow us to review imaging from there.',
      'Residents of Texas can receive a second opinion, but state rules do not allow us to review pathology slides from there.',
    ]);
  });

  test('a country-wide entry applies to every subdivision, combined with theirs', () => {
    expect(checkEligibility({ country: 'US', subdivision: 'US-NH' }, edited)).toMatchObject({
      outcome: 'eligible-with-restrictions',
      allowedReviews: { pathology: true, radiology: false },
    });
    const newMexico = checkEligibility({ country: 'US', subdivision: 'US-NM' }, edited);
    expect(newMexico.outcome).toBe('ineligible');
    expect(newMexico.reasons.map((reason) => reason.code)).toEqual(['no-cross-state-opinion']);
  });

  test('adds a sanctioned country and removes an entry', () => {
    expect(checkEligibility({ country: 'IR' }, edited).outcome).toBe('ineligible');
    expect(checkEligibility({ country: 'US', subdivision: 'US-NH' }, policy).outcome).toBe(
      'eligible-with-restrictions',
    );
    expect(checkEligibility({ country: 'IR' }, policy).outcome).toBe('eligible');
  });

  test('no-cross-state-opinion does not apply to the service jurisdiction itself', () => {
    const massachusetts = editedPolicy({
      entries: [{ code: 'US-MA', name: 'Massachusetts', rule: 'no-cross-state-opinion', reason: 'x', source: 'y' }],
    });
    expect(checkEligibility({ country: 'US', subdivision: 'MA' }, massachusetts)).toMatchObject({
      outcome: 'eligible',
      reasons: [],
    });
    const elsewhere = editedPolicy({
      serviceJurisdiction: { code: 'US-NM', name: 'New Mexico' },
      entries: [{ code: 'US-MA', name: 'Massachusetts', rule: 'no-cross-state-opinion', reason: 'x', source: 'y' }],
    });
    expect(checkEligibility({ country: 'US', subdivision: 'MA' }, elsewhere).reasons[0]?.message).toBe(
      'We are sorry, but we cannot provide a second opinion to residents of Massachusetts: state rules do not allow ' +
        'second opinions from physicians outside Massachusetts, and our specialists practise in New Mexico.',
    );
  });

  test('a no-pathology entry next to a no-radiology entry forbids both', () => {
    const twoEntries = editedPolicy({
      entries: [
        { code: 'US', name: 'the United States', rule: 'no-radiology', reason: 'x', source: 'y' },
        { code: 'US-ME', name: 'Maine', rule: 'no-pathology', reason: 'x', source: 'y' },
      ],
    });
    expect(checkEligibility({ country: 'US', subdivision: 'ME' }, twoEntries).allowedReviews).toEqual(none);
    expect(checkEligibility({ country: 'US', subdivision: 'VT' }, twoEntries).allowedReviews).toEqual({
      pathology: true,
      radiology: false,
    });
  });
});

describe('parseJurisdictionPolicy', () => {
  const entry = { code: 'US-NM', name: 'New Mexico', rule: 'no-cross-state-opinion', reason: 'r', source: 's' };
  const base = {
    version: '1',
    effectiveFrom: '2025-01-01T00:00:00Z',
    serviceJurisdiction: { code: 'US-MA', name: 'Massachusetts' },
    entries: [entry],
  };
  const errorsOf = (document: unknown) => {
    const parsed = parseJurisdictionPolicy(document);
    return parsed.ok ? [] : parsed.errors;
  };

  test('accepts a minimal document; notes default to none; extra copies are not shared', () => {
    const parsed = parseJurisdictionPolicy(base);
    expect(parsed).toEqual({ ok: true, policy: { ...base, notes: [] } });
    if (parsed.ok) {
      expect(parsed.policy.entries[0]).not.toBe(entry);
    }
  });

  test.each([[null], [[]], ['policy'], [42]])('refuses %j as a whole', (document) => {
    expect(errorsOf(document)).toEqual(['the policy must be a JSON object']);
  });

  test('an unknown rule names the entry and the allowed rules', () => {
    expect(errorsOf({ ...base, entries: [{ ...entry, rule: 'no-imaging' }] })).toEqual([
      'entries[0] (US-NM): unknown rule "no-imaging" (allowed: no-service, no-cross-state-opinion, no-pathology, no-radiology, no-pathology-no-radiology)',
    ]);
  });

  test('a duplicate entry points at the first one', () => {
    expect(errorsOf({ ...base, entries: [entry, { ...entry, rule: 'no-service' }] })).toEqual([
      'entries[1] (US-NM): duplicate entry, "US-NM" is already listed at entries[0]',
    ]);
  });

  test.each([
    ['us-nm', '"us-nm" is not an ISO 3166-1 alpha-2 country code (upper case, e.g. "SY")'],
    ['XX', '"XX" is not an ISO 3166-1 alpha-2 country code (upper case, e.g. "SY")'],
    ['USA', '"USA" is not an ISO 3166-1 alpha-2 country code (upper case, e.g. "SY")'],
    ['US-XX', '"US-XX" is not a U.S. state, district or territory code'],
    ['US-NMX', '"US-NMX" is not a U.S. state, district or territory code'],
    ['VI', '"VI" is a U.S. territory: write it as "US-VI"'],
    ['CA-QC', '"CA-QC": only U.S. subdivisions may be listed, other countries as a whole'],
  ])('a bad code %s is explained', (code, problem) => {
    expect(errorsOf({ ...base, entries: [{ ...entry, code }] })).toEqual([`entries[0] (${code}): ${problem}`]);
  });

  test('missing and empty fields, unknown fields and non-objects are all reported together', () => {
    expect(
      errorsOf({
        version: '',
        effectiveFrom: '2025-01-01',
        serviceJurisdiction: { code: 'MA', name: 'Massachusetts' },
        notes: 'none',
        entries: [{ code: 'SY', name: '', rule: 'no-service', reason: ' ', sorce: 's' }, 'SY', { name: 'x' }],
        comment: 'hi',
      }),
    ).toEqual([
      'unknown field "comment" (allowed: version, effectiveFrom, serviceJurisdiction, notes, entries)',
      '"version" must be a non-empty text',
      '"effectiveFrom" must be a date and time with an offset, e.g. "2025-07-01T00:00:00-04:00"',
      '"serviceJurisdiction" must be { "code": a U.S. state code such as "US-MA", "name": its name }',
      '"notes", when present, must be a list of texts',
      'entries[0] (SY): unknown field "sorce" (allowed: code, name, rule, reason, source)',
      'entries[0] (SY): "name" must be a non-empty text',
      'entries[0] (SY): "reason" must be a non-empty text',
      'entries[0] (SY): "source" must be a non-empty text',
      'entries[1]: must be an object',
      'entries[2]: "code" is required',
      'entries[2]: unknown rule undefined (allowed: no-service, no-cross-state-opinion, no-pathology, no-radiology, no-pathology-no-radiology)',
      'entries[2]: "reason" must be a non-empty text',
      'entries[2]: "source" must be a non-empty text',
    ]);
  });

  test('entries must be a list; an impossible date is refused', () => {
    expect(errorsOf({ ...base, entries: { 'US-NM': entry } })).toEqual(['"entries" must be a list']);
    expect(errorsOf({ ...base, effectiveFrom: '2025-13-45T00:00:00Z' })).toHaveLength(1);
  });
});

describe('effectivePolicy', () => {
  const at = (version: string, effectiveFrom: string) => ({ ...policy, version, effectiveFrom });
  const history = [
    at('a', '2025-01-01T00:00:00-05:00'),
    at('c', '2026-01-01T00:00:00-05:00'),
    at('b', '2025-06-01T00:00:00-04:00'),
  ];

  test('picks the latest document already in force', () => {
    expect(effectivePolicy(history, new Date('2025-07-01T12:00:00Z'))?.version).toBe('b');
    expect(effectivePolicy(history, new Date('2026-01-01T05:00:00Z'))?.version).toBe('c');
    expect(effectivePolicy(history, new Date('2026-01-01T04:59:59Z'))?.version).toBe('b');
  });

  test('none before the first; on a tie the one listed last', () => {
    expect(effectivePolicy(history, new Date('2024-12-31T00:00:00Z'))).toBeUndefined();
    expect(
      effectivePolicy([at('x', '2025-01-01T00:00:00Z'), at('y', '2025-01-01T00:00:00Z')], new Date('2025-02-01'))
        ?.version,
    ).toBe('y');
  });
});
