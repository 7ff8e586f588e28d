/**
 * The fee schedule as versioned data, and the quote of a case: every line, and the total.
 *
 * Prices are integer cents (USD). Each quote line becomes a FHIR ChargeItem whose `code` is the fee
 * code in {@link FEE_CODE_SYSTEM}. A case is quoted with the schedule in effect when it was submitted
 * (the caller passes that moment to {@link selectSchedule}), so materials arriving after a price
 * change do not re-price what the patient was told.
 */

/** The hub's CodeSystem for fee codes (ChargeItem.code). */
export const FEE_CODE_SYSTEM = 'urn:hub:fee-code';

export type FeeCode =
  | 'specialist-opinion'
  | 'imaging-review'
  | 'biopsy-review'
  | 'pathology-block'
  | 'unstained-slide'
  | 'special-stain'
  | 'extra-question'
  | 'record-pages'
  | 'record-collection'
  | 'follow-up-question';

/** Fees charged per unit; record pages are priced by tier instead. */
export type UnitFeeCode = Exclude<FeeCode, 'record-pages'>;

export interface RecordPageTier {
  /** First and last page count of the tier, inclusive. */
  readonly fromPage: number;
  readonly toPage: number;
  readonly priceCents: number;
}

export interface FeeSchedule {
  readonly version: string;
  /** ISO 8601 instant with an offset, e.g. `2026-01-01T00:00:00-05:00`. */
  readonly effectiveFrom: string;
  /** Exclusive end; open-ended when absent (a later schedule still supersedes it). */
  readonly effectiveTo?: string;
  readonly currency: 'USD';
  readonly unitPriceCents: Readonly<Record<UnitFeeCode, number>>;
  /** Questions included in the base opinion; each further one costs `extra-question`. */
  readonly includedQuestions: number;
  /** Record pages included in the base opinion. */
  readonly includedRecordPages: number;
  /** Contiguous tiers from `includedRecordPages + 1`; more pages than the last tier needs a manual quote. */
  readonly recordPageTiers: readonly RecordPageTier[];
  /** Prices not yet set by the business, shipped as placeholders. */
  readonly placeholderCodes: readonly FeeCode[];
}

export const FEE_DESCRIPTIONS: Readonly<Record<FeeCode, string>> = {
  'specialist-opinion': 'Specialist opinion',
  'imaging-review': 'Imaging review, per imaging site (each body part reviewed)',
  'biopsy-review': 'Biopsy review, per biopsy site',
  'pathology-block': 'Review of a pathology block',
  'unstained-slide': 'Review of an unstained slide',
  'special-stain': 'Special staining of a slide',
  'extra-question': 'Question beyond those included',
  'record-pages': 'Medical records',
  'record-collection': 'Medical record collection service',
  'follow-up-question': 'Follow-up question after the report',
};

const PLACEHOLDER_CODES: readonly UnitFeeCode[] = [
  'specialist-opinion',
  'pathology-block',
  'unstained-slide',
  'special-stain',
  'extra-question',
  'record-collection',
  'follow-up-question',
];

/**
 * The shipped schedule. Imaging, biopsy and record-page prices are the service page's; every price
 * in `placeholderCodes` is a PLACEHOLDER the page does not state, to be replaced by the business
 * before a quote reaches a patient (quotes flag lines priced from placeholders).
 */
export const DEFAULT_FEE_SCHEDULE: FeeSchedule = {
  version: '2026-01-placeholder',
  effectiveFrom: '2026-01-01T00:00:00-05:00',
  currency: 'USD',
  unitPriceCents: {
    'specialist-opinion': 75_000,
    'imaging-review': 37_500,
    'biopsy-review': 42_500,
    'pathology-block': 5_000,
    'unstained-slide': 2_500,
    'special-stain': 7_500,
    'extra-question': 10_000,
    'record-collection': 15_000,
    'follow-up-question': 25_000,
  },
  includedQuestions: 4,
  includedRecordPages: 50,
  recordPageTiers: [
    { fromPage: 51, toPage: 75, priceCents: 2_500 },
    { fromPage: 76, toPage: 100, priceCents: 5_000 },
    { fromPage: 101, toPage: 125, priceCents: 7_500 },
    { fromPage: 126, toPage: 150, priceCents: 10_000 },
    { fromPage: 151, toPage: 175, priceCents: 12_500 },
    { fromPage: 176, toPage: 200, priceCents: 15_000 },
  ],
  placeholderCodes: PLACEHOLDER_CODES,
};

/** A fee schedule or case materials the hub cannot price; the message says what to fix. */
export class FeeError extends Error {
  override name = 'FeeError';
}

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})$/;

function instantMs(value: string, field: string, version: string): number {
  const ms = INSTANT.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new FeeError(
      `Fee schedule ${version}: ${field} must be an ISO 8601 instant with an offset, not ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

function requireCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new FeeError(`${what} must be a whole number, 0 or more, not ${value}`);
  }
}

/** Throws a {@link FeeError} naming the first thing wrong with a schedule. */
export function validateFeeSchedule(schedule: FeeSchedule): void {
  const { version } = schedule;
  if (typeof version !== 'string' || version.trim() === '') {
    throw new FeeError('A fee schedule needs a version');
  }
  const from = instantMs(schedule.effectiveFrom, 'effectiveFrom', version);
  if (schedule.effectiveTo !== undefined && instantMs(schedule.effectiveTo, 'effectiveTo', version) <= from) {
    throw new FeeError(`Fee schedule ${version}: effectiveTo must be after effectiveFrom`);
  }
  if (schedule.currency !== 'USD') {
    throw new FeeError(`Fee schedule ${version}: prices are in USD, not ${schedule.currency}`);
  }
  for (const code of Object.keys(FEE_DESCRIPTIONS) as FeeCode[]) {
    if (code !== 'record-pages') {
      requireCount(schedule.unitPriceCents[code], `Fee schedule ${version}: the price of ${code} in cents`);
    }
  }
  requireCount(schedule.includedQuestions, `Fee schedule ${version}: includedQuestions`);
  requireCount(schedule.includedRecordPages, `Fee schedule ${version}: includedRecordPages`);
  let nextPage = schedule.includedRecordPages + 1;
  for (const tier of schedule.recordPageTiers) {
    if (tier.fromPage !== nextPage || !Number.isSafeInteger(tier.toPage) || tier.toPage < tier.fromPage) {
      throw new FeeError(
        `Fee schedule ${version}: record page tiers must run without gaps from page ${schedule.includedRecordPages + 1}; expected a tier from page ${nextPage}`,
      );
    }
    requireCount(
      tier.priceCents,
      `Fee schedule ${version}: the price of pages ${tier.fromPage}–${tier.toPage} in cents`,
    );
    nextPage = tier.toPage + 1;
  }
}

/**
 * The schedule in effect at a moment: effectiveFrom ≤ at < effectiveTo. When several are, the one
 * that took effect last wins, so publishing a new version does not require closing the old one.
 */
export function selectSchedule(schedules: readonly FeeSchedule[], at: Date): FeeSchedule {
  const atMs = at.getTime();
  if (Number.isNaN(atMs)) {
    throw new FeeError('A fee schedule is selected for a valid moment, not an Invalid Date');
  }
  const inEffect = schedules
    .map((schedule) => {
      validateFeeSchedule(schedule);
      const to = schedule.effectiveTo === undefined ? Infinity : Date.parse(schedule.effectiveTo);
      return { schedule, from: Date.parse(schedule.effectiveFrom), to };
    })
    .filter(({ from, to }) => from <= atMs && atMs < to)
    .sort((a, b) => b.from - a.from);
  // Latest first: the one that took effect last applies, unless another took effect at the same moment.
  const [latest, previous] = inEffect;
  if (latest === undefined) {
    throw new FeeError(`No fee schedule is in effect at ${at.toISOString()}`);
  }
  if (previous !== undefined && latest.from === previous.from) {
    throw new FeeError(
      `Fee schedules ${latest.schedule.version} and ${previous.schedule.version} take effect at the same moment`,
    );
  }
  return latest.schedule;
}

/** What a case asks to be reviewed; absent fields count as none. */
export interface CaseMaterials {
  /** The body part of each imaging study reviewed; each distinct body part is one imaging site. */
  imagingSites?: readonly string[];
  /** The body site of each biopsy; each distinct site is one biopsy review. */
  biopsySites?: readonly string[];
  blocks?: number;
  unstainedSlides?: number;
  specialStains?: number;
  /** The question count of questions.ts, after any coordinator's override. */
  questionCount?: number;
  recordPages?: number;
  recordCollectionService?: boolean;
  followUpQuestions?: number;
}

export interface QuoteLine {
  code: FeeCode;
  description: string;
  quantity: number;
  /** Null when the line needs a manual quote. */
  unitPriceCents: number | null;
  amountCents: number | null;
  /** The price is a placeholder of the schedule, not a price the business has set. */
  placeholderPrice: boolean;
}

export interface Quote {
  scheduleVersion: string;
  currency: 'USD';
  lines: QuoteLine[];
  /** Sum of the priced lines. */
  subtotalCents: number;
  /** The amount due, or null while a line needs a manual quote. */
  totalCents: number | null;
  needsManualQuote: boolean;
  manualQuoteReason?: string;
  /** Some line is priced from a placeholder. */
  usesPlaceholderPrices: boolean;
}

function distinctSites(sites: readonly string[], kind: string): number {
  const normalized = sites.map((site) => site.trim().replace(/\s+/g, ' ').toLowerCase());
  if (normalized.some((site) => site === '')) {
    throw new FeeError(`Every ${kind} needs its body part named`);
  }
  return new Set(normalized).size;
}

/** Every line of a case's fees and the total, or the lines and the reason a person must quote it. */
export function quoteCase(materials: CaseMaterials, schedule: FeeSchedule): Quote {
  validateFeeSchedule(schedule);
  const counts = {
    blocks: materials.blocks ?? 0,
    unstainedSlides: materials.unstainedSlides ?? 0,
    specialStains: materials.specialStains ?? 0,
    questionCount: materials.questionCount ?? 0,
    recordPages: materials.recordPages ?? 0,
    followUpQuestions: materials.followUpQuestions ?? 0,
  };
  for (const [field, value] of Object.entries(counts)) {
    requireCount(value, field);
  }
  const imagingSites = distinctSites(materials.imagingSites ?? [], 'imaging site');
  const biopsySites = distinctSites(materials.biopsySites ?? [], 'biopsy site');
  if (biopsySites === 0 && counts.blocks + counts.unstainedSlides + counts.specialStains > 0) {
    throw new FeeError(
      'Blocks, unstained slides and special stains are part of a biopsy review: name the biopsy site they come from',
    );
  }

  const lines: QuoteLine[] = [];
  const unitLine = (code: UnitFeeCode, quantity: number): void => {
    if (quantity === 0) {
      return;
    }
    const unitPriceCents = schedule.unitPriceCents[code];
    const placeholderPrice = schedule.placeholderCodes.includes(code);
    lines.push({
      code,
      description: FEE_DESCRIPTIONS[code],
      quantity,
      unitPriceCents,
      amountCents: unitPriceCents * quantity,
      placeholderPrice,
    });
  };
  unitLine('specialist-opinion', 1);
  unitLine('imaging-review', imagingSites);
  unitLine('biopsy-review', biopsySites);
  unitLine('pathology-block', counts.blocks);
  unitLine('unstained-slide', counts.unstainedSlides);
  unitLine('special-stain', counts.specialStains);
  unitLine('extra-question', Math.max(0, counts.questionCount - schedule.includedQuestions));

  let manualQuoteReason: string | undefined;
  if (counts.recordPages > schedule.includedRecordPages) {
    const tier = schedule.recordPageTiers.find(
      (candidate) => counts.recordPages >= candidate.fromPage && counts.recordPages <= candidate.toPage,
    );
    const placeholderPrice = schedule.placeholderCodes.includes('record-pages');
    if (tier) {
      const description = `${FEE_DESCRIPTIONS['record-pages']}, ${tier.fromPage}–${tier.toPage} pages (${counts.recordPages} pages)`;
      lines.push({
        code: 'record-pages',
        description,
        quantity: 1,
        unitPriceCents: tier.priceCents,
        amountCents: tier.priceCents,
        placeholderPrice,
      });
    } else {
      const lastPriced = schedule.recordPageTiers.at(-1)?.toPage ?? schedule.includedRecordPages;
      manualQuoteReason = `Medical records of ${counts.recordPages} pages exceed the ${lastPriced} pages the fee schedule prices; the service quotes them by hand.`;
      const description = `${FEE_DESCRIPTIONS['record-pages']}, over ${lastPriced} pages (${counts.recordPages} pages): manual quote`;
      lines.push({
        code: 'record-pages',
        description,
        quantity: 1,
        unitPriceCents: null,
        amountCents: null,
        placeholderPrice: false,
      });
    }
  }
  unitLine('record-collection', materials.recordCollectionService ? 1 : 0);
  unitLine('follow-up-question', counts.followUpQuestions);

  const subtotalCents = lines.reduce((sum, line) => sum + (line.amountCents ?? 0), 0);
  return {
    scheduleVersion: schedule.version,
    currency: schedule.currency,
    lines,
    subtotalCents,
    totalCents: manualQuoteReason ? null : subtotalCents,
    needsManualQuote: manualQuoteReason !== undefined,
    ...(manualQuoteReason ? { manualQuoteReason } : {}),
    usesPlaceholderPrices: lines.some((line) => line.placeholderPrice),
  };
}
