/** Words for what the FHIR resources say: names, dates, the due date's business days, who wrote a version. */
import type { HumanName, Task } from '@medplum/fhirtypes';
import { CASE_STATE_SYSTEM } from './case-states.ts';

export function formatName(names: HumanName[] | undefined): string | undefined {
  const name = names?.find((candidate) => candidate.use === 'official') ?? names?.[0];
  if (name === undefined) {
    return undefined;
  }
  if (name.text) {
    return name.text;
  }
  const parts = [...(name.prefix ?? []), ...(name.given ?? []), name.family ?? ''].filter((part) => part !== '');
  return parts.length > 0 ? parts.join(' ') : undefined;
}

export function formatDateTime(instant: string | undefined): string {
  if (instant === undefined) {
    return '—';
  }
  return new Date(instant).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function formatDate(instant: string): string {
  return new Date(instant).toLocaleDateString(undefined, { dateStyle: 'medium' });
}

export function caseStateOf(task: Task | undefined): string | undefined {
  return task?.businessStatus?.coding?.find((coding) => coding.system === CASE_STATE_SYSTEM)?.code;
}

/** The id in a local reference such as `ServiceRequest/abc`. */
export function idOf(reference: string | undefined, type: string): string | undefined {
  const prefix = `${type}/`;
  return reference?.startsWith(prefix) ? reference.slice(prefix.length) : undefined;
}

function startOfDay(date: Date): Date {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

const isWeekday = (date: Date): boolean => date.getDay() !== 0 && date.getDay() !== 6;

export interface DueClock {
  overdue: boolean;
  /** Business days left, or, when overdue, business days since the due date (at least 1). */
  businessDays: number;
}

/**
 * Business days from today to the due date, Monday to Friday in the browser's time zone: the due
 * day counts, today does not. Holidays are not known here (the hub's calendar sets the due date
 * itself, src/cases/business-calendar.ts), so near a holiday this is a day generous.
 */
export function dueClock(due: string, now: Date = new Date()): DueClock {
  const end = new Date(due);
  const overdue = end.getTime() < now.getTime();
  const [from, to] = overdue ? [startOfDay(end), startOfDay(now)] : [startOfDay(now), startOfDay(end)];
  let days = 0;
  for (const day = new Date(from); day < to;) {
    day.setDate(day.getDate() + 1);
    if (isWeekday(day)) {
      days += 1;
    }
  }
  return { overdue, businessDays: overdue ? Math.max(days, 1) : days };
}

/**
 * Who wrote a version, from its meta.source: the hub stamps every authenticated write with
 * `urn:hub:actor:<role>:<reference or id>` and drops any such value a client sends. No source: the
 * hub's own jobs.
 */
export function writerOf(source: string | undefined): string {
  const match = /^urn:hub:actor:([^:]+):(.+)$/.exec(source ?? '');
  if (match === null) {
    return 'the hub';
  }
  const [, role = '', who = ''] = match;
  return role === 'ehr' ? `EHR client ${who}` : `${role.replace(/-/g, ' ')} (${who})`;
}
