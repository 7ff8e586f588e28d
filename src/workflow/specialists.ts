/**
 * The specialists' roster as the FHIR store holds it, read into matching.ts SpecialistProfiles, and the
 * `specialist-opinion` Task offered to the chosen one (shared/fhir-model.md: owner the specialist,
 * `restriction.period.end` the due date; a declined Task is `rejected` and the next candidate gets a
 * new Task).
 *
 * Roster members are Practitioners with a PractitionerRole coded `urn:hub:practitioner-role|specialist`
 * (a referring physician's PractitionerRole never is). The Practitioner carries the medical licence and
 * the board certification as `qualification` (codes of `urn:hub:qualification`, validity in `period`)
 * and the training level as an extension; the PractitionerRole carries `specialty` (NUCC), `active`,
 * `notAvailable` (leave) and the case capacity.
 */
import { parseSearchRequest } from '@medplum/core';
import type { WithId } from '@medplum/core';
import type {
  Extension,
  Practitioner,
  PractitionerRole,
  Provenance,
  Reference,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import type { ExcludedCandidate, MatchingResult, RankedCandidate, SpecialistProfile } from '../cases/matching.ts';
import { SPECIALTIES } from '../cases/specialties.ts';
import type { Specialty } from '../cases/specialties.ts';
import type { HubRepository } from '../fhir/repository.ts';
import { TASK_CODE_SYSTEM, caseResourceIdentifier, referencedId, taskCode } from './case-resources.ts';
import { TASK_INPUT_SYSTEM } from './imaging-match.ts';
import { readOptional } from './materials.ts';

/** PractitionerRole.code of the hub's roster. */
export const PRACTITIONER_ROLE_SYSTEM = 'urn:hub:practitioner-role';
export const SPECIALIST_ROLE = 'specialist';
/** Practitioner.qualification.code: `medical-licence` (period.end = expiry), `board-certification`. */
export const QUALIFICATION_SYSTEM = 'urn:hub:qualification';
/** Practitioner extension, valueCode `attending` | `fellow` | `resident` | `intern`. */
export const TRAINING_LEVEL_EXTENSION = 'urn:hub:extension:training-level';
/** PractitionerRole extension, valueInteger: how many open cases the specialist takes at once. */
export const CASE_CAPACITY_EXTENSION = 'urn:hub:extension:case-capacity';
/** PractitionerRole extension, valueString (repeating): narrower interests, keyword syntax of specialties.ts. */
export const SUBSPECIALTY_EXTENSION = 'urn:hub:extension:subspecialty-keyword';
export const NUCC_SYSTEM = 'http://nucc.org/provider-taxonomy';
export const DEFAULT_CASE_CAPACITY = 5;
/** Annotation.authorString of the notes the matching writes. */
export const MATCHING_NOTE_AUTHOR = 'Second-opinion hub: matching';

const TRAINING_LEVELS: readonly SpecialistProfile['trainingLevel'][] = ['attending', 'fellow', 'resident', 'intern'];
/** Task statuses of an offer still open: it occupies one of the specialist's case slots. */
export const OPEN_TASK_STATUSES: readonly Task['status'][] = [
  'draft',
  'requested',
  'received',
  'accepted',
  'ready',
  'in-progress',
  'on-hold',
];
const FAR_PAST = '0001-01-01T00:00:00Z';
const FAR_FUTURE = '9999-12-31T23:59:59Z';

export interface Roster {
  profiles: SpecialistProfile[];
  /** Roster members whose record the hub cannot read into a profile, with why. */
  unreadable: ExcludedCandidate[];
}

function displayName(practitioner: Practitioner): string {
  const name = practitioner.name?.find((candidate) => candidate.use === 'official') ?? practitioner.name?.[0];
  const text = name?.text ?? [...(name?.prefix ?? []), ...(name?.given ?? []), name?.family].filter(Boolean).join(' ');
  return text || `Practitioner/${practitioner.id}`;
}

const hasCode = (
  concept: { coding?: { system?: string; code?: string }[] } | undefined,
  system: string,
  code: string,
): boolean => (concept?.coding ?? []).some((coding) => coding.system === system && coding.code === code);

const inPeriod = (period: { start?: string; end?: string } | undefined, now: Date): boolean =>
  Date.parse(period?.start ?? FAR_PAST) <= now.getTime() && now.getTime() < Date.parse(period?.end ?? FAR_FUTURE);

/** The latest end of the licences on file; a licence without an end date is reported as unreadable. */
function licenceExpiry(practitioner: Practitioner): string | undefined {
  const licences = (practitioner.qualification ?? []).filter((q) =>
    hasCode(q.code, QUALIFICATION_SYSTEM, 'medical-licence'),
  );
  if (licences.length === 0) {
    return undefined;
  }
  const ends = licences.flatMap((licence) => licence.period?.end ?? []);
  if (ends.length < licences.length) {
    return 'without an end date';
  }
  return ends.sort((a, b) => Date.parse(b) - Date.parse(a))[0];
}

function specialtiesOf(roles: readonly PractitionerRole[]): Specialty[] {
  const found = new Set<Specialty>();
  for (const role of roles) {
    for (const coding of (role.specialty ?? []).flatMap((concept) => concept.coding ?? [])) {
      if (coding.system !== NUCC_SYSTEM) {
        continue;
      }
      const specialty = (Object.keys(SPECIALTIES) as Specialty[]).find(
        (key) => SPECIALTIES[key].nuccCode === coding.code,
      );
      if (specialty) {
        found.add(specialty);
      }
    }
  }
  return [...found];
}

const extensionValues = (extensions: readonly Extension[] | undefined, url: string): Extension[] =>
  (extensions ?? []).filter((extension) => extension.url === url);

/** One profile from a Practitioner and their roster roles, or why not. */
export function specialistProfile(
  practitioner: WithId<Practitioner>,
  roles: readonly PractitionerRole[],
  openCases: number,
  now: Date,
): { profile: SpecialistProfile } | { unreadable: ExcludedCandidate } {
  const name = displayName(practitioner);
  const level = extensionValues(practitioner.extension, TRAINING_LEVEL_EXTENSION)[0]?.valueCode;
  if (!level || !(TRAINING_LEVELS as readonly string[]).includes(level)) {
    return {
      unreadable: {
        specialistId: practitioner.id,
        name,
        reasons: [`training level not on file (extension ${TRAINING_LEVEL_EXTENSION})`],
      },
    };
  }
  const activeRoles = roles.filter((role) => role.active !== false);
  const capacities = activeRoles.flatMap((role) =>
    extensionValues(role.extension, CASE_CAPACITY_EXTENSION).map((extension) => extension.valueInteger),
  );
  const capacity = Math.max(0, ...capacities.filter((value): value is number => typeof value === 'number'));
  return {
    profile: {
      id: practitioner.id,
      name,
      active: practitioner.active !== false && activeRoles.length > 0,
      trainingLevel: level as SpecialistProfile['trainingLevel'],
      boardCertified: (practitioner.qualification ?? []).some(
        (q) => hasCode(q.code, QUALIFICATION_SYSTEM, 'board-certification') && inPeriod(q.period, now),
      ),
      licenceExpiresAt: licenceExpiry(practitioner),
      specialties: specialtiesOf(activeRoles),
      subspecialtyKeywords: activeRoles.flatMap((role) =>
        extensionValues(role.extension, SUBSPECIALTY_EXTENSION).flatMap((extension) =>
          extension.valueString ? [extension.valueString] : [],
        ),
      ),
      openCases,
      capacity: capacities.length > 0 ? capacity : DEFAULT_CASE_CAPACITY,
      leave: activeRoles.flatMap((role) =>
        (role.notAvailable ?? []).flatMap((absence) =>
          absence.during ? [{ start: absence.during.start ?? FAR_PAST, end: absence.during.end ?? FAR_FUTURE }] : [],
        ),
      ),
    },
  };
}

/** Open specialist-opinion Tasks per owner (Practitioner id): each specialist's current workload. */
async function openCasesByOwner(repo: HubRepository): Promise<Map<string, number>> {
  const open = await repo.searchResources<Task>(
    parseSearchRequest<Task>(
      `Task?code=${encodeURIComponent(`${TASK_CODE_SYSTEM}|specialist-opinion`)}&status=${OPEN_TASK_STATUSES.join(',')}&_count=1000`,
    ),
  );
  const counts = new Map<string, number>();
  for (const task of open) {
    const owner = referencedId(task.owner, 'Practitioner');
    if (owner) {
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
  }
  return counts;
}

/** Every roster member as a profile (matching.ts decides who is eligible and available). */
export async function loadRoster(repo: HubRepository, now: Date): Promise<Roster> {
  const roles = await repo.searchResources<PractitionerRole>(
    parseSearchRequest<PractitionerRole>(
      `PractitionerRole?role=${encodeURIComponent(`${PRACTITIONER_ROLE_SYSTEM}|${SPECIALIST_ROLE}`)}&_count=1000`,
    ),
  );
  const rolesByPractitioner = new Map<string, PractitionerRole[]>();
  for (const role of roles) {
    const id = referencedId(role.practitioner, 'Practitioner');
    if (id) {
      rolesByPractitioner.set(id, [...(rolesByPractitioner.get(id) ?? []), role]);
    }
  }
  const ids = [...rolesByPractitioner.keys()].sort();
  const practitioners =
    ids.length === 0
      ? []
      : await repo.searchResources<Practitioner>(
          parseSearchRequest<Practitioner>(`Practitioner?_id=${ids.join(',')}&_count=${ids.length}`),
        );
  const workload = await openCasesByOwner(repo);
  const roster: Roster = { profiles: [], unreadable: [] };
  for (const practitioner of practitioners) {
    const result = specialistProfile(
      practitioner,
      rolesByPractitioner.get(practitioner.id) ?? [],
      workload.get(practitioner.id) ?? 0,
      now,
    );
    if ('profile' in result) {
      roster.profiles.push(result.profile);
    } else {
      roster.unreadable.push(result.unreadable);
    }
  }
  return roster;
}

/** The Practitioner the physician asked for (ServiceRequest.performer, a Practitioner or a PractitionerRole). */
export async function requestedSpecialistId(repo: HubRepository, request: ServiceRequest): Promise<string | undefined> {
  for (const performer of request.performer ?? []) {
    const practitionerId = referencedId(performer, 'Practitioner');
    if (practitionerId) {
      return practitionerId;
    }
    const roleId = referencedId(performer, 'PractitionerRole');
    const role = roleId ? await readOptional<PractitionerRole>(repo, 'PractitionerRole', roleId) : undefined;
    const viaRole = referencedId(role?.practitioner, 'Practitioner');
    if (viaRole) {
      return viaRole;
    }
  }
  return undefined;
}

/**
 * The offer's note, which every member of the case reads (the physician, the patient, the specialist
 * offered): whom it went to and their place. Who else was ranked, passed over or excluded, and why,
 * is the coordinators' alone (rankingExplanation, in a Provenance).
 */
export function offerNote(result: MatchingResult, chosen: RankedCandidate): string {
  return `Offered to ${chosen.name} (rank ${chosen.rank} of ${result.ranking.length}).`;
}

/** The coordinator's reading of a ranking: who was chosen and why, the requested specialist, the exclusions. */
export function rankingExplanation(
  result: MatchingResult,
  chosen: RankedCandidate,
  declinedIds: readonly string[],
  unreadable: readonly ExcludedCandidate[],
): string {
  return [offerNote(result, chosen), ...rankingLines(result, declinedIds, unreadable)].join('\n');
}

/** Provenance.activity of the matching's explanations. */
export const MATCHING_ACTIVITY = { system: 'urn:hub:provenance-activity', code: 'specialist-matching' } as const;

/**
 * Why the matching (or a coordinator's reassignment) did what it did to `target` (an offer, or the
 * coordination Task when nobody was left), in words that name other specialists and their
 * exclusions: a Provenance, which of the people only coordinators and admins may read
 * (auth/access-policy.ts has no Provenance for anyone else) and system clients as their scopes
 * allow, never a note or a reason a case member reads.
 */
export function rankingProvenance(target: string, explanation: string, now: Date): Provenance {
  return {
    resourceType: 'Provenance',
    target: [{ reference: target }],
    recorded: now.toISOString(),
    activity: { coding: [{ ...MATCHING_ACTIVITY, display: 'Specialist matching' }] },
    agent: [{ who: { display: MATCHING_NOTE_AUTHOR } }],
    reason: [{ text: explanation }],
  };
}

/** A ranking in words, without whom it chose: the specialties sought, the request, the places, the exclusions. */
export function rankingLines(
  result: MatchingResult,
  declinedIds: readonly string[],
  unreadable: readonly ExcludedCandidate[],
): string[] {
  const lines: string[] = [];
  if (result.specialtiesSought.length > 0) {
    lines.push(
      `Specialties sought: ${result.specialtiesSought.map((specialty) => SPECIALTIES[specialty].display).join(', ')}.`,
    );
  }
  if (result.requested) {
    lines.push(result.requested.explanation);
  }
  if (declinedIds.length > 0) {
    lines.push(
      `Declined earlier by: ${declinedIds.map((id) => result.ranking.find((c) => c.specialistId === id)?.name ?? `Practitioner/${id}`).join(', ')}.`,
    );
  }
  lines.push('Ranking:', ...result.ranking.map((candidate) => candidate.explanation));
  const excluded = [...result.excluded, ...unreadable];
  if (excluded.length > 0) {
    lines.push(
      'Not eligible or not available:',
      ...excluded.map((member) => `${member.name}: ${member.reasons.join('; ')}.`),
    );
  }
  lines.push(...result.notes);
  return lines;
}

export interface SpecialistTaskInput {
  serviceRequest: WithId<ServiceRequest>;
  coordination: WithId<Task>;
  specialistId: string;
  dueAt: Date;
  note: string;
  /** The pre-review reports the specialist should read. */
  reports: readonly Reference[];
  now: Date;
}

/** The case-resource role of the Task offered to one specialist: one offer per specialist and case. */
export const specialistTaskRole = (specialistId: string): string => `specialist-opinion/${specialistId}`;

export function specialistTask(input: SpecialistTaskInput): Task {
  const { serviceRequest, coordination, now } = input;
  return {
    resourceType: 'Task',
    identifier: [caseResourceIdentifier(serviceRequest.id, specialistTaskRole(input.specialistId))],
    ...(coordination.groupIdentifier ? { groupIdentifier: coordination.groupIdentifier } : {}),
    basedOn: [{ reference: `ServiceRequest/${serviceRequest.id}` }],
    partOf: [{ reference: `Task/${coordination.id}` }],
    status: 'requested',
    intent: 'order',
    ...(serviceRequest.priority ? { priority: serviceRequest.priority } : {}),
    code: taskCode('specialist-opinion'),
    description: 'Second opinion: answer the referring physician’s questions',
    focus: { reference: `ServiceRequest/${serviceRequest.id}` },
    ...(coordination.for ? { for: coordination.for } : {}),
    authoredOn: now.toISOString(),
    lastModified: now.toISOString(),
    owner: { reference: `Practitioner/${input.specialistId}` },
    restriction: { period: { end: input.dueAt.toISOString() } },
    ...(input.reports.length > 0
      ? {
          input: input.reports.map((report) => ({
            type: { coding: [{ system: TASK_INPUT_SYSTEM, code: 'pre-review-report' }] },
            valueReference: report,
          })),
        }
      : {}),
    note: [{ authorString: MATCHING_NOTE_AUTHOR, time: now.toISOString(), text: input.note }],
  };
}
