/**
 * Requests refused before anyone was identified (no token or a bad one, an unknown AE title, an
 * unknown e-mail at the login) cost an attacker nothing and would grow the audit store without
 * bound, one AuditEvent each. So would refusals of callers who name someone without proving it (a
 * signed token of this hub that is no longer valid, a client assertion naming a registered client
 * that does not verify). Within each minute this throttle decides which are recorded one by one;
 * the rest are counted, and one summary event per minute says how many there were, and from whom.
 *
 * By address, for callers nobody identified:
 * - each address has `perSource` recorded, and all addresses together `total` (the shared budget);
 * - once the shared budget is spent, each address still has its first `floor` recorded, for
 *   `floorSources` addresses a minute: decoys that spend the shared budget cannot hide another
 *   address's first refusals;
 * - `trackedSources` addresses are told apart a minute (the memory this takes is bounded, whatever
 *   a flood from many IPv6 addresses does); refusals from further addresses are only counted;
 * - the summary names every address with refusals not recorded, with how many (and how many were).
 *
 * By the identity named, for callers who named one without proving it: `perClaimed` recorded per
 * client or person named, for `trackedClaims` of them a minute; the summary names them likewise.
 * Naming someone takes a registered client's id or a token this hub signed, so an attacker cannot
 * make up names to spend the budgets; the caller's address does not matter here.
 *
 * At most `total + floor × floorSources + perClaimed × trackedClaims` refusals are recorded one by
 * one a minute, plus one summary. Refusals of identified callers are always recorded whole.
 *
 * Per process, in memory: a process that crashes loses at most the counts of its current minute.
 */
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import { DICOM, HUB_AUDIT_SUBTYPE, auditEventId, auditSource, requestAgents } from './audit-event.ts';
import type { AuditSite } from './audit-event.ts';

export interface RefusalLimits {
  /** Refusals of unidentified callers recorded one by one per source address and minute… */
  perSource: number;
  /** …and from all sources together. */
  total: number;
  /** Beyond `total`: each address's first refusals still recorded one by one… */
  floor: number;
  /** …for at most this many addresses a minute. */
  floorSources: number;
  /** Addresses told apart a minute; refusals from more addresses are counted together. */
  trackedSources: number;
  /** Refusals of a caller that named a client or person without proving it, per name and minute… */
  perClaimed: number;
  /** …for at most this many names a minute; refusals naming more are counted together. */
  trackedClaims: number;
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = {
  perSource: 20,
  total: 200,
  floor: 3,
  floorSources: 100,
  trackedSources: 1000,
  perClaimed: 10,
  trackedClaims: 100,
};
const WINDOW_MS = 60_000;

/** A client or person a refused caller named without proving it. */
export interface ClaimedIdentity {
  kind: 'client' | 'user';
  id: string;
}

/** Whom a refusal is counted against: the caller's address, or the identity it claimed. */
export type RefusalFrom = { address: string } | { claimed: ClaimedIdentity };

/** One address's or name's refusals in a minute. */
export interface RefusalTally {
  recorded: number;
  /** Counted, not recorded. */
  skipped: number;
}

interface SourceTally extends RefusalTally {
  /** Given the floor beyond the shared budget. */
  floored: boolean;
}

interface Window {
  start: number;
  sources: Map<string, SourceTally>;
  /** Recorded within the shared budget. */
  recordedTotal: number;
  /** Addresses given the floor. */
  floored: number;
  /** Refusals from addresses beyond `trackedSources`. */
  untrackedSources: number;
  /** `kind:id` → its tally. */
  claims: Map<string, RefusalTally>;
  untrackedClaims: number;
}

const claimKey = (claimed: ClaimedIdentity): string => `${claimed.kind}:${claimed.id}`;

function claimOf(key: string): ClaimedIdentity {
  const colon = key.indexOf(':');
  return { kind: key.slice(0, colon) === 'user' ? 'user' : 'client', id: key.slice(colon + 1) };
}

export class RefusalThrottle {
  private readonly limits: RefusalLimits;
  private window: Window;

  constructor(limits: RefusalLimits, now: number) {
    this.limits = limits;
    this.window = emptyWindow(now);
  }

  /**
   * Whether this refusal is recorded on its own, and the summary of a minute that ended before it,
   * if one is due.
   */
  admit(from: RefusalFrom, now: number): { record: boolean; summary: RefusalSummary | undefined } {
    const summary = this.roll(now);
    const record = 'address' in from ? this.admitAddress(from.address) : this.admitClaimed(from.claimed);
    return { record, summary };
  }

  private admitAddress(source: string): boolean {
    const window = this.window;
    const limits = this.limits;
    let tally = window.sources.get(source);
    if (tally === undefined) {
      if (window.sources.size >= limits.trackedSources) {
        window.untrackedSources += 1;
        return false;
      }
      tally = { recorded: 0, skipped: 0, floored: false };
      window.sources.set(source, tally);
    }
    if (tally.recorded < limits.perSource && window.recordedTotal < limits.total) {
      tally.recorded += 1;
      window.recordedTotal += 1;
      return true;
    }
    if (tally.recorded < limits.floor && (tally.floored || window.floored < limits.floorSources)) {
      if (!tally.floored) {
        tally.floored = true;
        window.floored += 1;
      }
      tally.recorded += 1;
      return true;
    }
    tally.skipped += 1;
    return false;
  }

  private admitClaimed(claimed: ClaimedIdentity): boolean {
    const window = this.window;
    const key = claimKey(claimed);
    let tally = window.claims.get(key);
    if (tally === undefined) {
      if (window.claims.size >= this.limits.trackedClaims) {
        window.untrackedClaims += 1;
        return false;
      }
      tally = { recorded: 0, skipped: 0 };
      window.claims.set(key, tally);
    }
    if (tally.recorded < this.limits.perClaimed) {
      tally.recorded += 1;
      return true;
    }
    tally.skipped += 1;
    return false;
  }

  /** The summary of the current minute when it has ended (or now, when `force`: at shutdown). */
  roll(now: number, force = false): RefusalSummary | undefined {
    const window = this.window;
    if (!force && now < window.start + WINDOW_MS) {
      return undefined;
    }
    this.window = emptyWindow(now);
    const skipped = <T extends RefusalTally>(tallies: Map<string, T>): [string, RefusalTally][] =>
      [...tallies]
        .filter(([, tally]) => tally.skipped > 0)
        .sort((a, b) => b[1].skipped - a[1].skipped)
        .map(([key, { recorded, skipped: count }]) => [key, { recorded, skipped: count }]);
    const sources = skipped(window.sources);
    const claims = skipped(window.claims);
    if (sources.length === 0 && claims.length === 0 && window.untrackedSources === 0 && window.untrackedClaims === 0) {
      return undefined;
    }
    const sum = (tallies: [string, RefusalTally][]): number => tallies.reduce((total, [, t]) => total + t.skipped, 0);
    return {
      from: new Date(window.start),
      to: new Date(force ? now : window.start + WINDOW_MS),
      count: sum(sources) + window.untrackedSources,
      sources,
      untrackedSources: window.untrackedSources,
      claimedCount: sum(claims) + window.untrackedClaims,
      claims: claims.map(([key, tally]) => [claimOf(key), tally]),
      untrackedClaims: window.untrackedClaims,
    };
  }
}

function emptyWindow(start: number): Window {
  return {
    start,
    sources: new Map(),
    recordedTotal: 0,
    floored: 0,
    untrackedSources: 0,
    claims: new Map(),
    untrackedClaims: 0,
  };
}

export interface RefusalSummary {
  from: Date;
  to: Date;
  /** Refusals of unidentified callers not recorded one by one. */
  count: number;
  /** Every address told apart with refusals not recorded, the busiest first. */
  sources: [string, RefusalTally][];
  /** Of `count`, those from addresses beyond the ones told apart. */
  untrackedSources: number;
  /** Refusals of callers who named someone without proving it, not recorded one by one. */
  claimedCount: number;
  claims: [ClaimedIdentity, RefusalTally][];
  untrackedClaims: number;
}

const plural = (count: number, one: string, many: string): string => `${count} ${count === 1 ? one : many}`;

function summaryText(summary: RefusalSummary): string {
  const parts: string[] = [];
  if (summary.count > 0) {
    const told = summary.sources.length;
    parts.push(
      `${summary.count} more requests refused before the caller was identified, from ` +
        (summary.untrackedSources === 0
          ? plural(told, 'address', 'addresses')
          : `${plural(told, 'address', 'addresses')} and ${summary.untrackedSources} from further addresses not told apart`),
    );
  }
  if (summary.claimedCount > 0) {
    const told = summary.claims.length;
    parts.push(
      `${summary.claimedCount} more refused requests that named a client or person without proving it, naming ` +
        (summary.untrackedClaims === 0
          ? plural(told, 'identity', 'identities')
          : `${plural(told, 'identity', 'identities')} and ${summary.untrackedClaims} naming further ones not told apart`),
    );
  }
  return `${parts.join(', and ')}, were not recorded one by one`;
}

const tallyDetail = (tally: RefusalTally): NonNullable<AuditEventEntity['detail']> => [
  { type: 'refusals', valueString: String(tally.skipped) },
  { type: 'recorded', valueString: String(tally.recorded) },
];

/** The summary as an AuditEvent: a Security Alert (DICOM 110113) the hub itself records. */
export function refusalSummaryEvent(site: AuditSite, summary: RefusalSummary, recorded: Date): AuditEvent {
  const entity: AuditEventEntity[] = [
    ...summary.sources.map(([address, tally]): AuditEventEntity => ({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      what: { display: address },
      detail: tallyDetail(tally),
    })),
    ...summary.claims.map(([claimed, tally]): AuditEventEntity => ({
      type:
        claimed.kind === 'user'
          ? { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1', display: 'Person' }
          : { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      what: { identifier: { system: `${site.baseUrl}/${claimed.kind}s`, value: claimed.id } },
      detail: tallyDetail(tally),
    })),
  ];
  return {
    resourceType: 'AuditEvent',
    id: auditEventId(recorded.getTime()),
    meta: { versionId: '1', lastUpdated: recorded.toISOString() },
    type: { system: DICOM, code: '110113', display: 'Security Alert' },
    subtype: [{ system: HUB_AUDIT_SUBTYPE, code: 'refusals-summarized', display: 'Refusals summarized' }],
    action: 'E',
    period: { start: summary.from.toISOString(), end: summary.to.toISOString() },
    recorded: recorded.toISOString(),
    outcome: '4',
    outcomeDesc: summaryText(summary),
    agent: requestAgents(site, { application: 'audit', clientIsRequestor: true }),
    source: auditSource(site),
    ...(entity.length > 0 ? { entity } : {}),
  };
}
