/**
 * Where the service may serve a patient, and without which reviews (shared/domain.md, "Jurisdictions").
 * The rules are a versioned policy document that operators edit; `jurisdiction-policy.default.json`
 * is the shipped default. Every document, the default included, goes through parseJurisdictionPolicy.
 */
import { createRequire } from 'node:module';

export const JURISDICTION_RULES = [
  'no-service',
  'no-cross-state-opinion',
  'no-pathology',
  'no-radiology',
  'no-pathology-no-radiology',
] as const;
export type JurisdictionRule = (typeof JURISDICTION_RULES)[number];

export interface JurisdictionEntry {
  /** ISO 3166-1 alpha-2 country (`SY`), or ISO 3166-2 subdivision of the US (`US-NM`, `US-VI`). */
  readonly code: string;
  /** As it reads after "Residents of": `New Jersey`, `the Marshall Islands`. */
  readonly name: string;
  readonly rule: JurisdictionRule;
  /** Why, in a sentence an operator or applicant can read. */
  readonly reason: string;
  /** Where the rule comes from (statute, page, date checked). */
  readonly source: string;
}

export interface JurisdictionPolicy {
  readonly version: string;
  /** ISO 8601 date-time with an offset; see effectivePolicy. */
  readonly effectiveFrom: string;
  /** Where the service's specialists practise; `no-cross-state-opinion` never applies to it. */
  readonly serviceJurisdiction: { readonly code: string; readonly name: string };
  readonly notes: readonly string[];
  readonly entries: readonly JurisdictionEntry[];
}

export interface Residence {
  readonly country: string | undefined;
  /** ISO 3166-2 (`US-NJ`) or, for the US, the bare state code (`NJ`). Ignored outside the US. */
  readonly subdivision?: string | undefined;
}

export type EligibilityOutcome = 'eligible' | 'eligible-with-restrictions' | 'ineligible';
export interface AllowedReviews {
  readonly pathology: boolean;
  readonly radiology: boolean;
}
export interface EligibilityReason {
  readonly code: JurisdictionRule | 'residence-missing' | 'residence-unrecognised';
  /** The policy entry that applied, when one did. */
  readonly jurisdiction?: string;
  /** For the applicant. */
  readonly message: string;
  /** The policy entry's own reason and source, for a coordinator or an applicant who asks why. */
  readonly detail?: string;
  readonly source?: string;
}
export interface Eligibility {
  readonly outcome: EligibilityOutcome;
  readonly allowedReviews: AllowedReviews;
  /** Empty when eligible without restrictions. */
  readonly reasons: readonly EligibilityReason[];
  readonly policyVersion: string;
}

// ISO 3166-1 alpha-2, officially assigned codes (249).
const COUNTRY_CODES = new Set(
  (
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW ' +
    'BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI ' +
    'FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN ' +
    'IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME ' +
    'MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF ' +
    'PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV ' +
    'SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE ' +
    'YT ZA ZM ZW'
  ).split(' '),
);
const US_STATES = new Set(
  (
    'AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH ' +
    'OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC'
  ).split(' '),
);
// Outlying areas have a country code of their own and an ISO 3166-2 code under US; the policy uses the latter.
const US_TERRITORIES = new Set(['AS', 'GU', 'MP', 'PR', 'UM', 'VI']);
// The freely associated states: sovereign countries to which the U.S. Postal Service gives state
// codes and ZIP codes, so addresses there are often written as U.S. ones (`US`, state `FM`). They are
// screened as the countries they are.
const FREELY_ASSOCIATED_STATES = new Set(['FM', 'MH', 'PW']);

function isUsSubdivision(code: string): boolean {
  const state = /^US-([A-Z]{2})$/.exec(code)?.[1];
  return state !== undefined && (US_STATES.has(state) || US_TERRITORIES.has(state));
}

// --- Validation --------------------------------------------------------------------------------------

const POLICY_FIELDS = ['version', 'effectiveFrom', 'serviceJurisdiction', 'notes', 'entries'];
const ENTRY_FIELDS = ['code', 'name', 'rule', 'reason', 'source'];
const OFFSET_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function isText(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

/** Why `code` is not a usable policy code, or undefined when it is. */
function codeProblem(code: string): string | undefined {
  if (code.startsWith('US-')) {
    return isUsSubdivision(code) ? undefined : `"${code}" is not a U.S. state, district or territory code`;
  }
  if (US_TERRITORIES.has(code)) {
    return `"${code}" is a U.S. territory: write it as "US-${code}"`;
  }
  if (/^[A-Z]{2}-/.test(code)) {
    return `"${code}": only U.S. subdivisions may be listed, other countries as a whole`;
  }
  if (!COUNTRY_CODES.has(code)) {
    return `"${code}" is not an ISO 3166-1 alpha-2 country code (upper case, e.g. "SY")`;
  }
  return undefined;
}

function entryErrors(entry: unknown, where: string): string[] {
  if (!isRecord(entry)) {
    return [`${where}: must be an object`];
  }
  const errors = Object.keys(entry)
    .filter((field) => !ENTRY_FIELDS.includes(field))
    .map((field) => `${where}: unknown field "${field}" (allowed: ${ENTRY_FIELDS.join(', ')})`);
  if (typeof entry.code !== 'string') {
    errors.push(`${where}: "code" is required`);
  } else {
    const problem = codeProblem(entry.code);
    if (problem) {
      errors.push(`${where}: ${problem}`);
    }
  }
  if (typeof entry.rule !== 'string' || !(JURISDICTION_RULES as readonly string[]).includes(entry.rule)) {
    errors.push(`${where}: unknown rule ${JSON.stringify(entry.rule)} (allowed: ${JURISDICTION_RULES.join(', ')})`);
  }
  for (const field of ['name', 'reason', 'source']) {
    if (!isText(entry[field])) {
      errors.push(`${where}: "${field}" must be a non-empty text`);
    }
  }
  return errors;
}

export type PolicyParseResult =
  | { readonly ok: true; readonly policy: JurisdictionPolicy }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Checks an operator's policy document; every problem is reported, each naming the entry it is in. */
export function parseJurisdictionPolicy(document: unknown): PolicyParseResult {
  if (!isRecord(document)) {
    return { ok: false, errors: ['the policy must be a JSON object'] };
  }
  const errors = Object.keys(document)
    .filter((field) => !POLICY_FIELDS.includes(field))
    .map((field) => `unknown field "${field}" (allowed: ${POLICY_FIELDS.join(', ')})`);
  if (!isText(document.version)) {
    errors.push('"version" must be a non-empty text');
  }
  const from = document.effectiveFrom;
  if (typeof from !== 'string' || !OFFSET_DATE_TIME.test(from) || Number.isNaN(Date.parse(from))) {
    errors.push('"effectiveFrom" must be a date and time with an offset, e.g. "2025-07-01T00:00:00-04:00"');
  }
  const service = document.serviceJurisdiction;
  if (
    !isRecord(service) ||
    typeof service.code !== 'string' ||
    !isUsSubdivision(service.code) ||
    !isText(service.name)
  ) {
    errors.push('"serviceJurisdiction" must be { "code": a U.S. state code such as "US-MA", "name": its name }');
  }
  const notes = document.notes ?? [];
  if (!Array.isArray(notes) || !notes.every((note) => typeof note === 'string')) {
    errors.push('"notes", when present, must be a list of texts');
  }
  if (!Array.isArray(document.entries)) {
    errors.push('"entries" must be a list');
  } else {
    const firstIndexByCode = new Map<string, number>();
    document.entries.forEach((entry: unknown, index) => {
      const code = isRecord(entry) && typeof entry.code === 'string' ? entry.code : undefined;
      errors.push(...entryErrors(entry, `entries[${index}]${code ? ` (${code})` : ''}`));
      if (code === undefined) {
        return;
      }
      const first = firstIndexByCode.get(code);
      if (first === undefined) {
        firstIndexByCode.set(code, index);
      } else {
        errors.push(`entries[${index}] (${code}): duplicate entry, "${code}" is already listed at entries[${first}]`);
      }
    });
  }
  if (errors.length > 0) {
    return { ok: false, errors };
  }
  const valid = document as unknown as JurisdictionPolicy;
  return {
    ok: true,
    policy: {
      version: valid.version,
      effectiveFrom: valid.effectiveFrom,
      serviceJurisdiction: { code: valid.serviceJurisdiction.code, name: valid.serviceJurisdiction.name },
      notes: valid.notes ?? [],
      entries: valid.entries.map(({ code, name, rule, reason, source }) => ({ code, name, rule, reason, source })),
    },
  };
}

function loadDefaultPolicy(): JurisdictionPolicy {
  const parsed = parseJurisdictionPolicy(createRequire(import.meta.url)('./jurisdiction-policy.default.json'));
  if (!parsed.ok) {
    throw new Error(`jurisdiction-policy.default.json is invalid: ${parsed.errors.join('; ')}`);
  }
  return parsed.policy;
}

export const DEFAULT_JURISDICTION_POLICY: JurisdictionPolicy = loadDefaultPolicy();

/** The policy in force at `now`: the latest effectiveFrom not after it (on a tie, the one listed last). */
export function effectivePolicy(policies: readonly JurisdictionPolicy[], now: Date): JurisdictionPolicy | undefined {
  let current: JurisdictionPolicy | undefined;
  for (const policy of policies) {
    const from = Date.parse(policy.effectiveFrom);
    if (from <= now.getTime() && (current === undefined || from >= Date.parse(current.effectiveFrom))) {
      current = policy;
    }
  }
  return current;
}

// --- Eligibility -------------------------------------------------------------------------------------

type ResolvedResidence = { readonly codes: readonly string[] } | { readonly problem: EligibilityReason };

/** The policy codes that describe a residence, most general first: `['US', 'US-NJ']`, `['SY']`. */
function resolveResidence(residence: Residence): ResolvedResidence {
  const country = residence.country?.trim().toUpperCase() ?? '';
  if (country === '') {
    return {
      problem: {
        code: 'residence-missing',
        message:
          'Please tell us the country where you live, so that we can check that we are able to serve residents there.',
      },
    };
  }
  if (!COUNTRY_CODES.has(country)) {
    return {
      problem: {
        code: 'residence-unrecognised',
        message: `We do not recognise the country code "${country}". Please choose your country from the list.`,
      },
    };
  }
  if (US_TERRITORIES.has(country)) {
    return { codes: ['US', `US-${country}`] };
  }
  if (country !== 'US') {
    return { codes: [country] };
  }

  const given = residence.subdivision?.trim().toUpperCase() ?? '';
  if (given === '') {
    return {
      problem: {
        code: 'residence-missing',
        message:
          'Please tell us which U.S. state or territory you live in: some states and territories restrict ' +
          'second opinions or the review of pathology and imaging.',
      },
    };
  }
  const subdivision = given.startsWith('US-') ? given : `US-${given}`;
  const postalCode = subdivision.slice(3);
  if (FREELY_ASSOCIATED_STATES.has(postalCode)) {
    return { codes: [postalCode] };
  }
  if (!isUsSubdivision(subdivision)) {
    return {
      problem: {
        code: 'residence-unrecognised',
        message: `We do not recognise "${given}" as a U.S. state or territory. Please choose yours from the list.`,
      },
    };
  }
  return { codes: ['US', subdivision] };
}

function whoseRules(code: string): string {
  if (code === 'US') {
    return 'federal rules';
  }
  if (!code.startsWith('US-')) {
    return 'local rules';
  }
  return US_TERRITORIES.has(code.slice(3)) ? 'territory rules' : 'state rules';
}

function applicantMessage(entry: JurisdictionEntry, policy: JurisdictionPolicy): string {
  const rules = whoseRules(entry.code);
  const restricted = (what: string) =>
    `Residents of ${entry.name} can receive a second opinion, but ${rules} do not allow us to review ${what} from there.`;
  switch (entry.rule) {
    case 'no-service':
      return `We are sorry, but our service is not available to residents of ${entry.name}.`;
    case 'no-cross-state-opinion':
      return (
        `We are sorry, but we cannot provide a second opinion to residents of ${entry.name}: ${rules} do not allow ` +
        `second opinions from physicians outside ${entry.name}, and our specialists practise in ${policy.serviceJurisdiction.name}.`
      );
    case 'no-pathology':
      return restricted('pathology slides');
    case 'no-radiology':
      return restricted('imaging');
    case 'no-pathology-no-radiology':
      return restricted('pathology slides or imaging');
  }
}

/**
 * `no-cross-state-opinion` makes a resident ineligible: our specialists practise in the service
 * jurisdiction, so any opinion to a resident elsewhere crosses the line the rule forbids. The rule is
 * ignored for the service jurisdiction itself, the only place an opinion would not cross it.
 */
function isBarring(entry: JurisdictionEntry, policy: JurisdictionPolicy): boolean {
  if (entry.rule === 'no-service') {
    return true;
  }
  return entry.rule === 'no-cross-state-opinion' && entry.code !== policy.serviceJurisdiction.code;
}

/** Whether a resident of `residence` can be served under `policy`, and without which reviews. */
export function checkEligibility(residence: Residence, policy: JurisdictionPolicy): Eligibility {
  const noReviews = { pathology: false, radiology: false };
  const resolved = resolveResidence(residence);
  if ('problem' in resolved) {
    return {
      outcome: 'ineligible',
      allowedReviews: noReviews,
      reasons: [resolved.problem],
      policyVersion: policy.version,
    };
  }
  // A country-wide entry and a subdivision entry may both apply; the stricter combination wins.
  const applicable = resolved.codes.flatMap((code) => policy.entries.filter((entry) => entry.code === code));
  const reasonFor = (entry: JurisdictionEntry): EligibilityReason => ({
    code: entry.rule,
    jurisdiction: entry.code,
    message: applicantMessage(entry, policy),
    detail: entry.reason,
    source: entry.source,
  });

  const barring = applicable.filter((entry) => isBarring(entry, policy));
  if (barring.length > 0) {
    return {
      outcome: 'ineligible',
      allowedReviews: noReviews,
      reasons: barring.map(reasonFor),
      policyVersion: policy.version,
    };
  }
  const restricting = applicable.filter((entry) => entry.rule !== 'no-cross-state-opinion');
  const forbids = (rule: JurisdictionRule) =>
    restricting.some((entry) => entry.rule === rule || entry.rule === 'no-pathology-no-radiology');
  const allowedReviews = { pathology: !forbids('no-pathology'), radiology: !forbids('no-radiology') };
  return {
    outcome: restricting.length > 0 ? 'eligible-with-restrictions' : 'eligible',
    allowedReviews,
    reasons: restricting.map(reasonFor),
    policyVersion: policy.version,
  };
}
