/**
 * A coordinator reassigns the case's specialist by writing another Practitioner as the `owner` of the
 * open `specialist-opinion` Task (docs/case-workflow.md, "Coordinators' moves"). The write itself
 * only changes who is a member of the case (auth/case-links.ts); this step, run by the progression
 * job under the case lock, decides whether it stands:
 *
 * - made by a coordinator or an admin (the writer of the version that set the owner, meta.source),
 *   while the case is in `matching` or `specialist-review`, to a specialist of the roster who may
 *   take a case now (matching.ts `reasonsAgainst`: eligible, not on leave, not at capacity; the
 *   ranking's fit is the coordinator's to overrule): the Task offered to the earlier specialist is
 *   `cancelled` without an owner (they leave the case), and the new one gets an offer of their own
 *   (identifier `…/specialist-opinion/<id>`, `requested`, the same due date, a note saying who
 *   reassigned it and where the ranking placed them). A case in specialist review goes back to
 *   matching until the new specialist accepts.
 * - otherwise the owner is written back and the coordination Task's statusReason (`move-refused`)
 *   and a note on the Task say that it was refused. Why, when the reason is about the specialist
 *   named (not on the roster, licence, leave, workload, training level), is the coordinators' alone:
 *   every member of the case reads the note and the statusReason, so the reasons go to a Provenance
 *   of the offer (refusalProvenance), as the matching's ranking does. A reason about the move itself
 *   (who made it, the case's state) names nobody and stays in the note.
 */
import type { WithId } from '@medplum/core';
import type { Practitioner, Provenance, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { CaseState } from '../cases/case-state.ts';
import { reasonsAgainst } from '../cases/matching.ts';
import type { ExcludedCandidate, MatchingResult } from '../cases/matching.ts';
import { actorOf } from '../auth/actor.ts';
import type { HubRepository } from '../fhir/repository.ts';
import { CASE_RESOURCE_SYSTEM, findCaseResource, referencedId } from './case-resources.ts';
import { readOptional } from './materials.ts';
import { PAUSED_AT_EXTENSION } from './opinion.ts';
import {
  OPEN_TASK_STATUSES,
  rankingLines,
  rankingProvenance,
  specialistTask,
  specialistTaskRole,
} from './specialists.ts';
import type { Roster } from './specialists.ts';

/** Annotation.authorString of the hub's notes on a refused reassignment. */
export const REASSIGNMENT_NOTE_AUTHOR = 'Second-opinion hub: reassignment';
const REASSIGNABLE_STATES: readonly CaseState[] = ['matching', 'specialist-review'];
const STAFF_ROLES = new Set(['coordinator', 'admin']);
/** progression.ts's `move-refused` (urn:hub:case-reason), which imports this module. */
const REFUSED_REASON = { system: 'urn:hub:case-reason', code: 'move-refused' } as const;

/** The Practitioner an offer was made to, from the hub's identifier `<ServiceRequest id>/specialist-opinion/<id>`. */
export function offeredTo(task: Task, serviceRequestId: string): string | undefined {
  const prefix = `${serviceRequestId}/${specialistTaskRole('')}`;
  const value = task.identifier?.find((identifier) => identifier.system === CASE_RESOURCE_SYSTEM)?.value;
  return value?.startsWith(prefix) ? value.slice(prefix.length) || undefined : undefined;
}

/** Everyone the case was offered to: owners, and those an offer was made to before a reassignment took it. */
export function offeredIds(offers: readonly Task[], serviceRequestId: string): string[] {
  const ids = offers.flatMap((task) => [
    referencedId(task.owner, 'Practitioner') ?? [],
    offeredTo(task, serviceRequestId) ?? [],
  ]);
  return [...new Set(ids.flat())];
}

export interface ReassignmentContext {
  repo: HubRepository;
  now: Date;
  request: WithId<ServiceRequest>;
  coordination: WithId<Task>;
  state: CaseState;
  /** The case's specialist-opinion Tasks. */
  offers: readonly WithId<Task>[];
  /** The roster and the case's ranking as matching sees them now, with the due date of the case's opinion. */
  rank: () => Promise<{ roster: Roster; result: MatchingResult; dueAt: Date }>;
}

export type ReassignmentOutcome =
  | { kind: 'none' }
  | {
      kind: 'refused';
      /** What every member of the case reads: that it was refused, and why only when that names nobody. */
      reason: string;
      written: WithId<Task>[];
    }
  | {
      kind: 'reassigned';
      /** The specialist the case was taken from, and the coordinator who reassigned it (`urn:hub:actor` id). */
      fromId: string;
      coordinatorId: string;
      written: WithId<Task>[];
    };

interface OwnerChange {
  offer: WithId<Task>;
  fromId: string;
  toId: string | undefined;
  writer: { role: string; id: string } | undefined;
  /** The Task as it was before the owner changed, when its history holds it. */
  before: Task | undefined;
}

/** An offer its specialist declined, or that was withdrawn: a coordinator may reopen it for someone else. */
const WITHDRAWN: readonly Task['status'][] = ['rejected', 'cancelled', 'failed', 'entered-in-error'];

/** The open offer whose owner is not the specialist it was made to, and who set that owner. */
async function ownerChange(context: ReassignmentContext): Promise<OwnerChange | undefined> {
  const offer = context.offers.find((task) => {
    const fromId = offeredTo(task, context.request.id);
    return (
      OPEN_TASK_STATUSES.includes(task.status) &&
      fromId !== undefined &&
      referencedId(task.owner, 'Practitioner') !== fromId
    );
  });
  const fromId = offer && offeredTo(offer, context.request.id);
  if (!offer || fromId === undefined) {
    return undefined;
  }
  // The versions since the owner took its current value, newest first; the oldest of them set it.
  const history = await context.repo.readHistory<Task>('Task', offer.id, { limit: 50 });
  const versions = (history.entry ?? []).flatMap((entry) => (entry.resource ? [entry.resource] : []));
  const sameOwner = (task: Task) => task.owner?.reference === offer.owner?.reference;
  const changedAt = versions.findIndex((version) => !sameOwner(version));
  const setter = changedAt > 0 ? versions[changedAt - 1] : versions.at(-1);
  return {
    offer,
    fromId,
    toId: referencedId(offer.owner, 'Practitioner'),
    // A version with no recorded writer came from the hub or an anonymous request: a coordinator's.
    writer: setter && actorOf(setter.meta?.source),
    before: changedAt > 0 ? versions[changedAt] : undefined,
  };
}

async function nameOf(repo: HubRepository, id: string | undefined, roster: Roster | undefined): Promise<string> {
  if (id === undefined) {
    return 'nobody';
  }
  const known = roster?.profiles.find((profile) => profile.id === id)?.name;
  if (known) {
    return known;
  }
  const practitioner = await readOptional<Practitioner>(repo, 'Practitioner', id);
  const name = practitioner?.name?.[0];
  const text = name?.text ?? [...(name?.prefix ?? []), ...(name?.given ?? []), name?.family].filter(Boolean).join(' ');
  return text || `Practitioner/${id}`;
}

/**
 * The offer's owner, status and statusReason as they were before the change. An offer the hub took
 * from its specialist had no owner and stays so; any other is its specialist's again (an open offer
 * whose owner is not theirs would be taken for another reassignment).
 */
function restored(change: OwnerChange): Task {
  const { meta: _meta, statusReason: _reason, owner: _owner, ...rest } = change.offer;
  const before = change.before;
  const status = before?.status ?? change.offer.status;
  const ownerless = before !== undefined && before.owner === undefined && WITHDRAWN.includes(status);
  return {
    ...rest,
    ...(ownerless ? {} : { owner: { reference: `Practitioner/${change.fromId}` } }),
    status,
    ...(before?.statusReason ? { statusReason: before.statusReason } : {}),
  };
}

/**
 * The coordinators' reading of a refused reassignment: why the specialist named may not take the
 * case. The matching's Provenance shape and activity; its reason coded `move-refused`, so that the
 * case page tells it from the ranking that proposed the offer's specialist.
 */
export function refusalProvenance(target: string, explanation: string, now: Date): Provenance {
  return { ...rankingProvenance(target, explanation, now), reason: [{ coding: [REFUSED_REASON], text: explanation }] };
}

/**
 * Writes the owner back with `reason` in a note. `personal`, the reasons about the specialist named,
 * goes to a Provenance of the offer only the coordinators read, never into the note or the reason.
 */
async function refuse(
  context: ReassignmentContext,
  change: OwnerChange,
  reason: string,
  personal?: string,
): Promise<ReassignmentOutcome> {
  const written = await context.repo.updateResource<Task>(
    {
      ...restored(change),
      note: [
        ...(change.offer.note ?? []),
        { authorString: REASSIGNMENT_NOTE_AUTHOR, time: context.now.toISOString(), text: reason },
      ],
      lastModified: context.now.toISOString(),
    },
    { ifMatch: change.offer.meta?.versionId },
  );
  if (personal !== undefined) {
    await context.repo.createResource(refusalProvenance(`Task/${written.id}`, personal, context.now));
  }
  return { kind: 'refused', reason, written: [written] };
}

/** Checks and applies, or undoes, a coordinator's reassignment of the case's specialist. */
export async function settleReassignment(context: ReassignmentContext): Promise<ReassignmentOutcome> {
  const change = await ownerChange(context);
  if (!change) {
    return { kind: 'none' };
  }
  const { writer, toId } = change;
  if (writer && !STAFF_ROLES.has(writer.role)) {
    return refuse(context, change, 'The reassignment was refused: only a coordinator reassigns the specialist’s Task.');
  }
  if (!REASSIGNABLE_STATES.includes(context.state)) {
    return refuse(
      context,
      change,
      `The reassignment was refused: a specialist is reassigned while the case is in matching or specialist review, and it is "${context.state}".`,
    );
  }
  if (toId === undefined) {
    return refuse(context, change, 'The reassignment was refused: name the new specialist (a Practitioner) as owner.');
  }
  const { roster, result, dueAt } = await context.rank();
  const profile = roster.profiles.find((candidate) => candidate.id === toId);
  const name = await nameOf(context.repo, toId, roster);
  // Whether a specialist is on the roster, licensed, on leave or at capacity is nobody else's business.
  const refused = `The reassignment to ${name} was refused.`;
  if (!profile) {
    const unreadable = roster.unreadable.find((member: ExcludedCandidate) => member.specialistId === toId);
    return refuse(
      context,
      change,
      refused,
      unreadable
        ? `The reassignment to ${name} was refused: ${unreadable.reasons.join('; ')}.`
        : `The reassignment to ${name} was refused: they are not on the specialists’ roster.`,
    );
  }
  // The offer being reassigned already counts in the new owner's workload.
  const against = reasonsAgainst({ ...profile, openCases: Math.max(profile.openCases - 1, 0) }, context.now);
  if (against.length > 0) {
    return refuse(context, change, refused, `The reassignment to ${name} was refused: ${against.join('; ')}.`);
  }

  const now = context.now.toISOString();
  const fromName = await nameOf(context.repo, change.fromId, roster);
  const coordinatorId = writer?.id || 'coordinator';
  const coordinatorName = writer ? await nameOf(context.repo, writer.id, roster) : 'a coordinator';
  const place = result.ranking.find((candidate) => candidate.specialistId === toId);
  const excluded = result.excluded.find((member) => member.specialistId === toId);
  // The note every member of the case reads: who made the move. Where the specialist stands in the
  // ranking, and who else was ranked or excluded and why, is the coordinators' (a Provenance).
  const note = `Reassigned to ${name} by ${coordinatorName} (coordinator), in place of ${fromName}.`;
  const explanation = [
    note,
    place
      ? `${name} is rank ${place.rank} of ${result.ranking.length}: ${place.explanation}`
      : `${name} is outside the ranking (${excluded?.reasons.join('; ') ?? 'not ranked'}): the coordinator’s choice.`,
    ...rankingLines(
      result,
      context.offers
        .filter((task) => task.status === 'rejected')
        .flatMap((task) => referencedId(task.owner, 'Practitioner') ?? []),
      roster.unreadable,
    ),
  ].join('\n');

  // An offer still open is taken from its specialist, who leaves the case; one they had declined
  // (reopened by the coordinator for someone else) is put back as it was.
  const { meta, owner: _owner, statusReason: _reason, ...taken } = change.offer;
  const declined = change.before !== undefined && WITHDRAWN.includes(change.before.status);
  const cancelled = await context.repo.updateResource<Task>(
    declined
      ? { ...restored(change), lastModified: now }
      : {
          ...taken,
          status: 'cancelled',
          statusReason: { text: `Reassigned to ${name} by ${coordinatorName}.` },
          lastModified: now,
        },
    { ifMatch: meta?.versionId },
  );
  const due = change.offer.restriction?.period?.end ? new Date(change.offer.restriction.period.end) : dueAt;
  const offer = specialistTask({
    serviceRequest: context.request,
    coordination: context.coordination,
    specialistId: toId,
    dueAt: due,
    note,
    reports: (change.offer.input ?? []).flatMap((input) => (input.valueReference ? [input.valueReference] : [])),
    now: context.now,
  });
  // One offer per specialist and case: one who was asked before (and declined) gets theirs again.
  const earlier = await findCaseResource<Task>(context.repo, 'Task', context.request.id, specialistTaskRole(toId));
  const kept = (earlier?.extension ?? []).filter((extension) => extension.url !== PAUSED_AT_EXTENSION);
  const written = earlier
    ? await context.repo.updateResource<Task>(
        {
          ...offer,
          id: earlier.id,
          note: [...(earlier.note ?? []), ...(offer.note ?? [])],
          ...(kept.length > 0 ? { extension: kept } : {}),
        },
        { ifMatch: earlier.meta?.versionId },
      )
    : await context.repo.createResource<Task>(offer);
  await context.repo.createResource(rankingProvenance(`Task/${written.id}`, explanation, context.now));
  return { kind: 'reassigned', fromId: change.fromId, coordinatorId, written: [cancelled, written] };
}
