/**
 * Specialist matching (shared/domain.md step 4): among the eligible specialists, those practising the specialty
 * the case calls for (specialties.ts), ranked by fit, availability and workload, each place and each
 * exclusion explained in words a coordinator reads.
 */
import {
  type CaseMaterials,
  findKeyword,
  inferSpecialtyNeeds,
  type Specialty,
  SPECIALTIES,
  type SpecialtyNeed,
  words,
} from './specialties.ts';

const SUBSPECIALTY_WEIGHT = 2;
const DEFAULT_REVIEW_DAYS = 14; // ≈ 10 business days, when the caller gives no due date

export interface SpecialistProfile {
  readonly id: string;
  readonly name: string;
  readonly active: boolean;
  readonly trainingLevel: 'attending' | 'fellow' | 'resident' | 'intern';
  readonly boardCertified: boolean;
  /** ISO 8601 instant the medical licence lapses (Practitioner.qualification.period.end). */
  readonly licenceExpiresAt: string | undefined;
  readonly specialties: readonly Specialty[];
  /** Narrower interests in the keyword syntax of specialties.ts: `uterine`, `*sarcoma`, `movement disorder*`. */
  readonly subspecialtyKeywords: readonly string[];
  readonly openCases: number;
  /** How many open cases the specialist takes at once. */
  readonly capacity: number;
  /** ISO 8601 instants, end exclusive. */
  readonly leave: readonly { readonly start: string; readonly end: string }[];
}

export interface MatchingRequest {
  readonly questions: readonly string[];
  readonly materials: CaseMaterials;
  readonly requestedSpecialistId?: string;
  /** A coordinator's choice of specialty, replacing the inferred ones. */
  readonly specialty?: Specialty;
  readonly now: Date;
  /** When the opinion is due (business-calendar); defaults to 14 days after `now`. */
  readonly reviewDueBy?: Date;
}

export interface RankedCandidate {
  readonly specialistId: string;
  readonly name: string;
  readonly rank: number;
  readonly requested: boolean;
  readonly matchedSpecialties: readonly Specialty[];
  readonly subspecialtyMatches: readonly string[];
  readonly fitScore: number;
  readonly openCases: number;
  readonly capacity: number;
  /** Start of a leave that begins before the review is due. */
  readonly leaveStartsAt: string | undefined;
  readonly explanation: string;
}

export interface ExcludedCandidate {
  readonly specialistId: string;
  readonly name: string;
  readonly reasons: readonly string[];
}

export interface MatchingResult {
  readonly needs: readonly SpecialtyNeed[];
  /** The specialties candidates must practise; empty when none could be told (all are ranked then). */
  readonly specialtiesSought: readonly Specialty[];
  readonly requested:
    { readonly specialistId: string; readonly honoured: boolean; readonly explanation: string } | undefined;
  readonly ranking: readonly RankedCandidate[];
  readonly excluded: readonly ExcludedCandidate[];
  readonly notes: readonly string[];
}

const day = (instant: string | Date) => new Date(instant).toISOString().slice(0, 10);

/** Why a specialist may never give an opinion (shared/domain.md: tenured, licensed, board-certified; no trainees). */
function ineligibility(specialist: SpecialistProfile, now: Date): string[] {
  const reasons: string[] = [];
  if (!specialist.active) {
    reasons.push('not active on the roster');
  }
  if (specialist.trainingLevel !== 'attending') {
    const trainee = specialist.trainingLevel === 'intern' ? 'an intern' : `a ${specialist.trainingLevel}`;
    reasons.push(`${trainee}: interns, residents and fellows cannot give opinions`);
  }
  if (!specialist.boardCertified) {
    reasons.push('not board-certified');
  }
  const expires = specialist.licenceExpiresAt === undefined ? Number.NaN : Date.parse(specialist.licenceExpiresAt);
  if (specialist.licenceExpiresAt === undefined) {
    reasons.push('no medical licence on file');
  } else if (Number.isNaN(expires)) {
    reasons.push(`licence expiry "${specialist.licenceExpiresAt}" cannot be read`);
  } else if (expires <= now.getTime()) {
    reasons.push(`licence expired on ${day(specialist.licenceExpiresAt)}`);
  }
  return reasons;
}

/** Why a specialist cannot take a case right now. */
function unavailability(specialist: SpecialistProfile, now: Date): string[] {
  const reasons: string[] = [];
  if (specialist.leave.some((leave) => Number.isNaN(Date.parse(leave.start)) || Number.isNaN(Date.parse(leave.end)))) {
    reasons.push('a leave period on the roster has dates that cannot be read');
  }
  const at = now.getTime();
  const onLeave = specialist.leave.find((leave) => Date.parse(leave.start) <= at && at < Date.parse(leave.end));
  if (onLeave) {
    reasons.push(`on leave until ${day(onLeave.end)}`);
  }
  if (specialist.openCases >= specialist.capacity) {
    reasons.push(`at capacity (${specialist.openCases} of ${specialist.capacity} open cases)`);
  }
  return reasons;
}

/**
 * Why a specialist cannot be given a case now (ineligible, on leave, at capacity), whatever the case
 * is about; empty when they can. A coordinator's own choice of specialist is checked with this alone:
 * the ranking's fit is theirs to overrule, these are not.
 */
export function reasonsAgainst(specialist: SpecialistProfile, now: Date): string[] {
  return [...ineligibility(specialist, now), ...unavailability(specialist, now)];
}

function upcomingLeave(specialist: SpecialistProfile, now: Date, dueBy: Date): string | undefined {
  return specialist.leave
    .filter((leave) => Date.parse(leave.start) > now.getTime() && Date.parse(leave.start) < dueBy.getTime())
    .map((leave) => leave.start)
    .sort((a, b) => Date.parse(a) - Date.parse(b))[0];
}

type Candidate = Omit<RankedCandidate, 'rank' | 'explanation'>;

const load = (candidate: Candidate) => candidate.openCases / candidate.capacity;

/** Orders two candidates; 0 when they are tied on fit, availability and workload. */
function compareMerit(a: Candidate, b: Candidate): number {
  return (
    b.fitScore - a.fitScore ||
    Number(a.leaveStartsAt !== undefined) - Number(b.leaveStartsAt !== undefined) ||
    load(a) - load(b) ||
    a.openCases - b.openCases
  );
}

function explain(
  candidate: Candidate & { rank: number },
  tiedWith: string | undefined,
  notes: readonly string[],
): string {
  const parts: string[] = [];
  if (candidate.requested) {
    parts.push('requested by the referring physician');
  }
  parts.push(
    candidate.matchedSpecialties.length > 0
      ? `practises ${candidate.matchedSpecialties.map((specialty) => SPECIALTIES[specialty].display).join(' and ')}`
      : 'no specialty match',
  );
  if (candidate.subspecialtyMatches.length > 0) {
    parts.push(`special interest in ${candidate.subspecialtyMatches.join(', ')}`);
  }
  parts.push(`fit ${candidate.fitScore}`);
  parts.push(`workload ${candidate.openCases} of ${candidate.capacity} open cases`);
  parts.push(
    candidate.leaveStartsAt
      ? `leave from ${day(candidate.leaveStartsAt)}, before the opinion is due`
      : 'available until the opinion is due',
  );
  if (tiedWith) {
    parts.push(`tied with ${tiedWith} on fit, availability and workload; listed by name`);
  }
  return `${candidate.rank}. ${candidate.name}: ${[...parts, ...notes].join('; ')}.`;
}

const displays = (specialties: readonly Specialty[]) => specialties.map((specialty) => SPECIALTIES[specialty].display);

interface CaseContext {
  readonly now: Date;
  readonly dueBy: Date;
  readonly sought: readonly Specialty[];
  readonly needScore: (specialty: Specialty) => number;
  readonly caseWords: readonly string[];
  readonly requestedSpecialistId: string | undefined;
}

type Assessment = { readonly excluded: ExcludedCandidate } | { readonly candidate: Candidate };

function assess(specialist: SpecialistProfile, context: CaseContext): Assessment {
  const requested = specialist.id === context.requestedSpecialistId;
  const matchedSpecialties = specialist.specialties.filter((specialty) => context.sought.includes(specialty));
  const reasons = reasonsAgainst(specialist, context.now);
  // A physician's request is honoured even outside the inferred specialty; the explanation flags it.
  if (!requested && context.sought.length > 0 && matchedSpecialties.length === 0) {
    reasons.push(`does not practise ${displays(context.sought).join(' or ')}`);
  }
  if (reasons.length > 0) {
    return { excluded: { specialistId: specialist.id, name: specialist.name, reasons } };
  }
  const subspecialtyMatches = [
    ...new Set(specialist.subspecialtyKeywords.flatMap((keyword) => findKeyword(keyword, context.caseWords) ?? [])),
  ];
  const specialtyFit = matchedSpecialties.reduce((sum, specialty) => sum + context.needScore(specialty), 0);
  return {
    candidate: {
      specialistId: specialist.id,
      name: specialist.name,
      requested,
      matchedSpecialties,
      subspecialtyMatches,
      fitScore: specialtyFit + SUBSPECIALTY_WEIGHT * subspecialtyMatches.length,
      openCases: specialist.openCases,
      capacity: specialist.capacity,
      leaveStartsAt: upcomingLeave(specialist, context.now, context.dueBy),
    },
  };
}

function requestOutcome(
  specialistId: string | undefined,
  roster: readonly SpecialistProfile[],
  excluded: readonly ExcludedCandidate[],
): MatchingResult['requested'] {
  if (specialistId === undefined) {
    return undefined;
  }
  const specialist = roster.find((member) => member.id === specialistId);
  if (!specialist) {
    return {
      specialistId,
      honoured: false,
      explanation: 'The requested specialist is not on the roster. The best match is proposed.',
    };
  }
  const refusal = excluded.find((member) => member.specialistId === specialistId);
  if (refusal) {
    const why = refusal.reasons.join('; ');
    const explanation = `${specialist.name} was requested but cannot take the case: ${why}. The best other match is proposed.`;
    return { specialistId, honoured: false, explanation };
  }
  return {
    specialistId,
    honoured: true,
    explanation: `${specialist.name} was requested, is eligible and available, and is proposed first.`,
  };
}

function rank(candidates: readonly Candidate[], sought: readonly Specialty[]): RankedCandidate[] {
  const ordered = [...candidates].sort(
    (a, b) =>
      Number(b.requested) - Number(a.requested) ||
      compareMerit(a, b) ||
      a.name.localeCompare(b.name, 'en') ||
      a.specialistId.localeCompare(b.specialistId, 'en'),
  );
  return ordered.map((candidate, index) => {
    const ranked = { ...candidate, rank: index + 1 };
    const tie = candidate.requested
      ? undefined
      : ordered.find((other) => other !== candidate && !other.requested && compareMerit(other, candidate) === 0);
    const notes =
      candidate.requested && sought.length > 0 && candidate.matchedSpecialties.length === 0
        ? [`check the fit: the case calls for ${displays(sought).join(' or ')}`]
        : [];
    return { ...ranked, explanation: explain(ranked, tie?.name, notes) };
  });
}

/** Ranks the roster for a case and explains every place and every exclusion. */
export function matchSpecialists(request: MatchingRequest, roster: readonly SpecialistProfile[]): MatchingResult {
  const needs = inferSpecialtyNeeds(request.questions, request.materials);
  const sought = request.specialty ? [request.specialty] : needs.map((need) => need.specialty);
  const context: CaseContext = {
    now: request.now,
    dueBy: request.reviewDueBy ?? new Date(request.now.getTime() + DEFAULT_REVIEW_DAYS * 86_400_000),
    sought,
    // A coordinator's chosen specialty counts even where the words did not point to it.
    needScore: (specialty) =>
      Math.max(needs.find((need) => need.specialty === specialty)?.score ?? 0, request.specialty === specialty ? 1 : 0),
    caseWords: [
      ...request.questions,
      ...request.materials.imaging.map((study) => study.bodySite ?? ''),
      ...request.materials.pathology.map((specimen) => specimen.bodySite ?? ''),
    ].flatMap((text) => [...words(text), '']), // the empty word keeps a phrase from spanning two texts
    requestedSpecialistId: request.requestedSpecialistId,
  };
  const assessments = roster.map((specialist) => assess(specialist, context));
  const excluded = assessments.flatMap((assessment) => ('excluded' in assessment ? [assessment.excluded] : []));
  const candidates = assessments.flatMap((assessment) => ('candidate' in assessment ? [assessment.candidate] : []));
  return {
    needs,
    specialtiesSought: sought,
    requested: requestOutcome(request.requestedSpecialistId, roster, excluded),
    ranking: rank(candidates, sought),
    excluded,
    notes:
      sought.length > 0
        ? []
        : ['The questions and materials point to no specialty the hub recognises; a coordinator should choose one.'],
  };
}

/** The best-ranked candidate who has not declined this case, or undefined when the ranking is exhausted. */
export function nextCandidate(
  ranking: readonly RankedCandidate[],
  declinedIds: Iterable<string>,
): RankedCandidate | undefined {
  const declined = new Set(declinedIds);
  return ranking.find((candidate) => !declined.has(candidate.specialistId));
}
