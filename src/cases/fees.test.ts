import {
  DEFAULT_FEE_SCHEDULE,
  FEE_CODE_SYSTEM,
  FeeError,
  quoteCase,
  selectSchedule,
  validateFeeSchedule,
  type FeeSchedule,
  type QuoteLine,
} from './fees.ts';

const schedule = DEFAULT_FEE_SCHEDULE;
const BASE = schedule.unitPriceCents['specialist-opinion'];
const line = (lines: QuoteLine[], code: string) => lines.find((candidate) => candidate.code === code);

describe('the default schedule', () => {
  test('carries the service page’s prices', () => {
    expect(schedule.unitPriceCents['imaging-review']).toBe(37_500);
    expect(schedule.unitPriceCents['biopsy-review']).toBe(42_500);
    expect(schedule.includedQuestions).toBe(4);
    expect(schedule.includedRecordPages).toBe(50);
    expect(schedule.recordPageTiers.map((tier) => [tier.fromPage, tier.toPage, tier.priceCents])).toEqual([
      [51, 75, 2_500],
      [76, 100, 5_000],
      [101, 125, 7_500],
      [126, 150, 10_000],
      [151, 175, 12_500],
      [176, 200, 15_000],
    ]);
  });

  test('marks every price the page does not state as a placeholder, and no other', () => {
    expect([...schedule.placeholderCodes].sort()).toEqual([
      'extra-question',
      'follow-up-question',
      'pathology-block',
      'record-collection',
      'special-stain',
      'specialist-opinion',
      'unstained-slide',
    ]);
    expect(schedule.version).toMatch(/placeholder/);
  });

  test('is valid', () => {
    expect(() => validateFeeSchedule(schedule)).not.toThrow();
    expect(FEE_CODE_SYSTEM).toBe('urn:hub:fee-code');
  });
});

describe('quoteCase: every line', () => {
  test('a case with nothing but the request is the base opinion', () => {
    expect(quoteCase({}, schedule)).toEqual({
      scheduleVersion: '2026-01-placeholder',
      currency: 'USD',
      lines: [
        {
          code: 'specialist-opinion',
          description: 'Specialist opinion',
          quantity: 1,
          unitPriceCents: BASE,
          amountCents: BASE,
          placeholderPrice: true,
        },
      ],
      subtotalCents: BASE,
      totalCents: BASE,
      needsManualQuote: false,
      usesPlaceholderPrices: true,
    });
  });

  test('imaging: one line per distinct body part, whatever the number of studies', () => {
    const quote = quoteCase(
      { imagingSites: ['Chest', 'chest ', 'ABDOMEN', 'pelvis', 'Right  knee', 'right knee'] },
      schedule,
    );
    expect(line(quote.lines, 'imaging-review')).toEqual({
      code: 'imaging-review',
      description: 'Imaging review, per imaging site (each body part reviewed)',
      quantity: 4,
      unitPriceCents: 37_500,
      amountCents: 150_000,
      placeholderPrice: false,
    });
    expect(quote.totalCents).toBe(BASE + 150_000);
  });

  test('biopsy sites, with block, unstained-slide and special-stain surcharges', () => {
    const quote = quoteCase(
      { biopsySites: ['uterus', 'left ovary', 'Uterus'], blocks: 3, unstainedSlides: 10, specialStains: 2 },
      schedule,
    );
    expect(quote.lines.map((entry) => [entry.code, entry.quantity, entry.unitPriceCents, entry.amountCents])).toEqual([
      ['specialist-opinion', 1, BASE, BASE],
      ['biopsy-review', 2, 42_500, 85_000],
      ['pathology-block', 3, 5_000, 15_000],
      ['unstained-slide', 10, 2_500, 25_000],
      ['special-stain', 2, 7_500, 15_000],
    ]);
    expect(quote.totalCents).toBe(BASE + 85_000 + 15_000 + 25_000 + 15_000);
  });

  test.each([
    [0, 0],
    [3, 0],
    [4, 0],
    [5, 1],
    [9, 5],
  ])('%i questions → %i extra', (questionCount, extra) => {
    const quote = quoteCase({ questionCount }, schedule);
    if (extra === 0) {
      expect(line(quote.lines, 'extra-question')).toBeUndefined();
    } else {
      expect(line(quote.lines, 'extra-question')).toMatchObject({
        quantity: extra,
        unitPriceCents: 10_000,
        amountCents: extra * 10_000,
      });
    }
  });

  test('record collection and follow-up questions', () => {
    const quote = quoteCase({ recordCollectionService: true, followUpQuestions: 2 }, schedule);
    expect(line(quote.lines, 'record-collection')).toMatchObject({
      quantity: 1,
      unitPriceCents: 15_000,
      amountCents: 15_000,
      placeholderPrice: true,
    });
    expect(line(quote.lines, 'follow-up-question')).toMatchObject({
      quantity: 2,
      unitPriceCents: 25_000,
      amountCents: 50_000,
    });
    expect(quoteCase({ recordCollectionService: false }, schedule).lines).toHaveLength(1);
  });

  test('a full case, lines in a fixed order and the total', () => {
    const quote = quoteCase(
      {
        imagingSites: ['chest', 'abdomen'],
        biopsySites: ['lung'],
        blocks: 1,
        unstainedSlides: 4,
        specialStains: 1,
        questionCount: 6,
        recordPages: 130,
        recordCollectionService: true,
        followUpQuestions: 1,
      },
      schedule,
    );
    expect(quote.lines.map((entry) => [entry.code, entry.amountCents])).toEqual([
      ['specialist-opinion', BASE],
      ['imaging-review', 75_000],
      ['biopsy-review', 42_500],
      ['pathology-block', 5_000],
      ['unstained-slide', 10_000],
      ['special-stain', 7_500],
      ['extra-question', 20_000],
      ['record-pages', 10_000],
      ['record-collection', 15_000],
      ['follow-up-question', 25_000],
    ]);
    const expected = BASE + 75_000 + 42_500 + 5_000 + 10_000 + 7_500 + 20_000 + 10_000 + 15_000 + 25_000;
    expect(quote).toMatchObject({ subtotalCents: expected, totalCents: expected, needsManualQuote: false });
    expect(quote.lines.every((entry) => entry.amountCents === entry.unitPriceCents! * entry.quantity)).toBe(true);
  });
});

describe('quoteCase: record page tiers', () => {
  test.each([
    [0, null],
    [1, null],
    [50, null],
    [51, 2_500],
    [75, 2_500],
    [76, 5_000],
    [100, 5_000],
    [101, 7_500],
    [125, 7_500],
    [126, 10_000],
    [150, 10_000],
    [151, 12_500],
    [175, 12_500],
    [176, 15_000],
    [200, 15_000],
  ])('%i pages → %p', (recordPages, price) => {
    const quote = quoteCase({ recordPages }, schedule);
    const pages = line(quote.lines, 'record-pages');
    if (price === null) {
      expect(pages).toBeUndefined();
    } else {
      expect(pages).toMatchObject({ quantity: 1, unitPriceCents: price, amountCents: price, placeholderPrice: false });
    }
    expect(quote).toMatchObject({ needsManualQuote: false, totalCents: BASE + (price ?? 0) });
  });

  test('the tier is named in the line', () => {
    expect(line(quoteCase({ recordPages: 76 }, schedule).lines, 'record-pages')!.description).toBe(
      'Medical records, 76–100 pages (76 pages)',
    );
  });

  test.each([201, 450])(
    '%i pages need a manual quote: the page line has no price and there is no total',
    (recordPages) => {
      const quote = quoteCase({ recordPages, imagingSites: ['brain'] }, schedule);
      expect(line(quote.lines, 'record-pages')).toEqual({
        code: 'record-pages',
        description: `Medical records, over 200 pages (${recordPages} pages): manual quote`,
        quantity: 1,
        unitPriceCents: null,
        amountCents: null,
        placeholderPrice: false,
      });
      expect(quote).toMatchObject({
        needsManualQuote: true,
        manualQuoteReason: `Medical records of ${recordPages} pages exceed the 200 pages the fee schedule prices; the service quotes them by hand.`,
        subtotalCents: BASE + 37_500,
        totalCents: null,
      });
    },
  );
});

describe('quoteCase: refuses what it cannot price', () => {
  test.each([
    [{ blocks: -1, biopsySites: ['lung'] }, /blocks must be a whole number, 0 or more, not -1/],
    [{ unstainedSlides: 1.5, biopsySites: ['lung'] }, /unstainedSlides must be a whole number/],
    [{ specialStains: Number.NaN, biopsySites: ['lung'] }, /specialStains must be a whole number/],
    [{ questionCount: -2 }, /questionCount must be a whole number/],
    [{ recordPages: -10 }, /recordPages must be a whole number/],
    [{ recordPages: Infinity }, /recordPages must be a whole number/],
    [{ followUpQuestions: -1 }, /followUpQuestions must be a whole number/],
    [{ imagingSites: ['chest', '  '] }, /Every imaging site needs its body part named/],
    [{ biopsySites: [''] }, /Every biopsy site needs its body part named/],
    [{ blocks: 2 }, /name the biopsy site/],
    [{ specialStains: 1, biopsySites: [] }, /name the biopsy site/],
  ])('%j', (materials, message) => {
    expect(() => quoteCase(materials, schedule)).toThrow(FeeError);
    expect(() => quoteCase(materials, schedule)).toThrow(message);
  });
});

describe('validateFeeSchedule', () => {
  const broken = (change: Partial<FeeSchedule>): FeeSchedule => ({ ...schedule, ...change });

  test.each([
    [broken({ version: ' ' }), /needs a version/],
    [broken({ effectiveFrom: '2026-01-01' }), /effectiveFrom must be an ISO 8601 instant with an offset/],
    [broken({ effectiveFrom: '2026-13-01T00:00:00Z' }), /effectiveFrom must be an ISO 8601 instant/],
    [broken({ effectiveTo: '2026-01-01T00:00:00-05:00' }), /effectiveTo must be after effectiveFrom/],
    [broken({ currency: 'EUR' as 'USD' }), /prices are in USD, not EUR/],
    [
      broken({ unitPriceCents: { ...schedule.unitPriceCents, 'imaging-review': 375.5 } }),
      /the price of imaging-review in cents must be a whole number/,
    ],
    [broken({ unitPriceCents: { ...schedule.unitPriceCents, 'special-stain': -1 } }), /the price of special-stain/],
    [broken({ includedQuestions: -1 }), /includedQuestions must be a whole number/],
    [broken({ recordPageTiers: [{ fromPage: 50, toPage: 75, priceCents: 2_500 }] }), /expected a tier from page 51/],
    [
      broken({
        recordPageTiers: [
          { fromPage: 51, toPage: 75, priceCents: 2_500 },
          { fromPage: 77, toPage: 100, priceCents: 5_000 },
        ],
      }),
      /without gaps from page 51; expected a tier from page 76/,
    ],
    [broken({ recordPageTiers: [{ fromPage: 51, toPage: 50, priceCents: 2_500 }] }), /without gaps/],
    [broken({ recordPageTiers: [{ fromPage: 51, toPage: 75, priceCents: -5 }] }), /the price of pages 51–75 in cents/],
  ])('refuses %#', (bad, message) => {
    expect(() => validateFeeSchedule(bad)).toThrow(FeeError);
    expect(() => validateFeeSchedule(bad)).toThrow(message);
    expect(() => quoteCase({}, bad)).toThrow(message);
  });

  test('a schedule without page tiers sends every case over the included pages to a manual quote', () => {
    const noTiers = broken({ recordPageTiers: [] });
    expect(quoteCase({ recordPages: 50 }, noTiers).needsManualQuote).toBe(false);
    expect(quoteCase({ recordPages: 51 }, noTiers)).toMatchObject({
      needsManualQuote: true,
      manualQuoteReason: expect.stringMatching(/exceed the 50 pages/),
    });
  });
});

describe('selectSchedule', () => {
  const first: FeeSchedule = {
    ...schedule,
    version: 'v1',
    effectiveFrom: '2026-01-01T00:00:00-05:00',
    effectiveTo: '2026-07-01T00:00:00-04:00',
  };
  const second: FeeSchedule = {
    ...schedule,
    version: 'v2',
    effectiveFrom: '2026-07-01T00:00:00-04:00',
    unitPriceCents: { ...schedule.unitPriceCents, 'imaging-review': 40_000 },
  };
  const third: FeeSchedule = { ...schedule, version: 'v3', effectiveFrom: '2027-01-01T00:00:00-05:00' };
  const schedules = [third, first, second];

  test.each([
    ['2026-01-01T05:00:00.000Z', 'v1'],
    ['2026-06-30T23:59:59.999-04:00', 'v1'],
    ['2026-07-01T04:00:00.000Z', 'v2'],
    ['2026-12-31T23:59:59-05:00', 'v2'],
    ['2027-01-01T05:00:00Z', 'v3'],
    ['2040-01-01T00:00:00Z', 'v3'],
  ])('at %s → %s', (at, version) => {
    expect(selectSchedule(schedules, new Date(at)).version).toBe(version);
  });

  test('the price changes with the schedule', () => {
    const before = quoteCase({ imagingSites: ['chest'] }, selectSchedule(schedules, new Date('2026-06-15T12:00:00Z')));
    const after = quoteCase({ imagingSites: ['chest'] }, selectSchedule(schedules, new Date('2026-07-15T12:00:00Z')));
    expect(line(before.lines, 'imaging-review')!.amountCents).toBe(37_500);
    expect(line(after.lines, 'imaging-review')!.amountCents).toBe(40_000);
    expect([before.scheduleVersion, after.scheduleVersion]).toEqual(['v1', 'v2']);
  });

  test('nothing in effect, an ambiguous pair, a bad moment', () => {
    expect(() => selectSchedule(schedules, new Date('2025-12-31T23:59:59-05:00'))).toThrow(
      /No fee schedule is in effect at 2026-01-01T04:59:59.000Z/,
    );
    expect(() => selectSchedule([], new Date())).toThrow(FeeError);
    expect(() => selectSchedule([second, { ...second, version: 'v2-bis' }], new Date('2026-08-01T00:00:00Z'))).toThrow(
      /v2 and v2-bis take effect at the same moment/,
    );
    expect(() => selectSchedule(schedules, new Date(Number.NaN))).toThrow(/Invalid Date/);
    expect(() => selectSchedule([{ ...first, effectiveFrom: 'soon' }], new Date())).toThrow(/effectiveFrom/);
  });

  test('the default schedule is in effect from 2026', () => {
    expect(selectSchedule([DEFAULT_FEE_SCHEDULE], new Date('2026-11-28T12:00:00Z'))).toBe(DEFAULT_FEE_SCHEDULE);
  });
});
