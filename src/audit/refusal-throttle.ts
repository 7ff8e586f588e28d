/**
 * Requests refused before anyone was identified (no token or a bad one, an unknown AE title, an
 * unknown e-mail at the login) cost an attacker nothing and would grow the audit store without
 * bound, one AuditEvent each. Within each minute this throttle lets each source address have
 * PER_SOURCE of them recorded one by one, and all sources together TOTAL; the rest are counted, and
 * one summary event per minute says how many were refused, from how many addresses, and from which
 * (the busiest few, with their counts). Refusals of identified callers are always recorded whole.
 *
 * Per process, in memory: a process that crashes loses at most the counts of its current minute.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { DICOM, HUB_AUDIT_SUBTYPE, auditEventId, auditSource, requestAgents } from './audit-event.ts';
import type { AuditSite } from './audit-event.ts';

export interface RefusalLimits {
  /** Refusals recorded one by one per source address and minute. */
  perSource: number;
  /** …and from all sources together. */
  total: number;
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = { perSource: 20, total: 200 };
const WINDOW_MS = 60_000;
/** Addresses named in a summary, the busiest first. */
const SUMMARY_SOURCES = 10;

interface Window {
  start: number;
  recorded: Map<string, number>;
  recordedTotal: number;
  /** Refusals counted but not recorded, per source. */
  skipped: Map<string, number>;
}

export class RefusalThrottle {
  private readonly limits: RefusalLimits;
  private window: Window;

  constructor(limits: RefusalLimits, now: number) {
    this.limits = limits;
    this.window = emptyWindow(now);
  }

  /**
   * Whether this refusal from `source` is recorded on its own, and the summary of a minute that
   * ended before it, if one is due.
   */
  admit(source: string, now: number): { record: boolean; summary: RefusalSummary | undefined } {
    const summary = this.roll(now);
    const window = this.window;
    const fromSource = window.recorded.get(source) ?? 0;
    if (fromSource < this.limits.perSource && window.recordedTotal < this.limits.total) {
      window.recorded.set(source, fromSource + 1);
      window.recordedTotal += 1;
      return { record: true, summary };
    }
    window.skipped.set(source, (window.skipped.get(source) ?? 0) + 1);
    return { record: false, summary };
  }

  /** The summary of the current minute when it has ended (or now, when `force`: at shutdown). */
  roll(now: number, force = false): RefusalSummary | undefined {
    const window = this.window;
    if (!force && now < window.start + WINDOW_MS) {
      return undefined;
    }
    this.window = emptyWindow(now);
    if (window.skipped.size === 0) {
      return undefined;
    }
    const sources = [...window.skipped].sort((a, b) => b[1] - a[1]);
    return {
      from: new Date(window.start),
      to: new Date(force ? now : window.start + WINDOW_MS),
      count: sources.reduce((sum, [, count]) => sum + count, 0),
      sourceCount: sources.length,
      busiest: sources.slice(0, SUMMARY_SOURCES),
    };
  }
}

function emptyWindow(start: number): Window {
  return { start, recorded: new Map(), recordedTotal: 0, skipped: new Map() };
}

export interface RefusalSummary {
  from: Date;
  to: Date;
  count: number;
  sourceCount: number;
  busiest: [string, number][];
}

/** The summary as an AuditEvent: a Security Alert (DICOM 110113) the hub itself records. */
export function refusalSummaryEvent(site: AuditSite, summary: RefusalSummary, recorded: Date): AuditEvent {
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
    outcomeDesc:
      `${summary.count} more requests refused before the caller was identified, from ` +
      `${summary.sourceCount} address${summary.sourceCount === 1 ? '' : 'es'}, were not recorded one by one`,
    agent: requestAgents(site, { application: 'audit', clientIsRequestor: true }),
    source: auditSource(site),
    entity: summary.busiest.map(([address, count]) => ({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      what: { display: address },
      detail: [{ type: 'refusals', valueString: String(count) }],
    })),
  };
}
