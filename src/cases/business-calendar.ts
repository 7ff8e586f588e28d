/**
 * The service's business calendar: US Eastern time (America/New_York, so EST/EDT as the law has it),
 * Monday to Friday, 8:30 a.m. to 5 p.m., excluding US federal holidays on their observed dates.
 *
 * Days are calendar dates in Eastern time written `YYYY-MM-DD` ({@link CalendarDate}); moments are
 * `Date` instants. A `Date` is never read as a day on its own: `new Date('2026-07-03')` is the evening
 * of July 2 in Eastern time, so a caller with an instant asks {@link easternDate} for its day.
 */

/** A calendar date in US Eastern time, `YYYY-MM-DD`. */
export type CalendarDate = string;

export const TIME_ZONE = 'America/New_York';
/** Business hours in minutes after Eastern midnight: 8:30 a.m. to 5 p.m. */
export const BUSINESS_OPENS = 8 * 60 + 30;
export const BUSINESS_CLOSES = 17 * 60;
/** Specialists typically complete a second opinion within 10 business days. */
export const OPINION_BUSINESS_DAYS = 10;

const FIRST_SUPPORTED_YEAR = 1986; // the first year every holiday below (but Juneteenth) was in force
const LAST_SUPPORTED_YEAR = 9999;
const DAY_MS = 86_400_000;

// --- calendar dates as day numbers (days since 1970-01-01, a Thursday) ---

function dayNumber(date: CalendarDate): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (match) {
    const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const ms = Date.UTC(year, month - 1, day);
    if (year >= FIRST_SUPPORTED_YEAR && formatDay(ms / DAY_MS) === date) {
      return ms / DAY_MS;
    }
  }
  throw new RangeError(`Not a calendar date YYYY-MM-DD from ${FIRST_SUPPORTED_YEAR}: ${JSON.stringify(date)}`);
}

function formatDay(day: number): CalendarDate {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** 0 = Sunday … 6 = Saturday. */
function weekday(day: number): number {
  return (((day + 4) % 7) + 7) % 7;
}

function dayOf(year: number, month: number, dayOfMonth: number): number {
  return Date.UTC(year, month - 1, dayOfMonth) / DAY_MS;
}

/** The nth (1-based) given weekday of a month, or with n = -1 the last one. */
function nthWeekday(year: number, month: number, weekdayWanted: number, n: number): number {
  if (n === -1) {
    const last = dayOf(year, month + 1, 0);
    return last - ((weekday(last) - weekdayWanted + 7) % 7);
  }
  const first = dayOf(year, month, 1);
  return first + ((weekdayWanted - weekday(first) + 7) % 7) + 7 * (n - 1);
}

// --- federal holidays ---

export interface FederalHoliday {
  name: string;
  /** The holiday's own date. */
  date: CalendarDate;
  /** The day offices close for it: 5 U.S.C. 6103(b) moves a Saturday holiday to Friday, a Sunday one to Monday. */
  observed: CalendarDate;
}

const MONDAY = 1;
const THURSDAY = 4;

/** The legal public holidays of 5 U.S.C. 6103(a) for a year, in date order, computed by rule. */
export function federalHolidays(year: number): FederalHoliday[] {
  if (!Number.isInteger(year) || year < FIRST_SUPPORTED_YEAR || year > LAST_SUPPORTED_YEAR) {
    throw new RangeError(
      `Federal holidays are computed for years ${FIRST_SUPPORTED_YEAR}–${LAST_SUPPORTED_YEAR}, not ${year}`,
    );
  }
  const holidays: [string, number][] = [
    ["New Year's Day", dayOf(year, 1, 1)],
    ['Birthday of Martin Luther King, Jr.', nthWeekday(year, 1, MONDAY, 3)],
    ["Washington's Birthday", nthWeekday(year, 2, MONDAY, 3)],
    ['Memorial Day', nthWeekday(year, 5, MONDAY, -1)],
    ...(year >= 2021 ? [['Juneteenth National Independence Day', dayOf(year, 6, 19)] as [string, number]] : []),
    ['Independence Day', dayOf(year, 7, 4)],
    ['Labor Day', nthWeekday(year, 9, MONDAY, 1)],
    ['Columbus Day', nthWeekday(year, 10, MONDAY, 2)],
    ['Veterans Day', dayOf(year, 11, 11)],
    ['Thanksgiving Day', nthWeekday(year, 11, THURSDAY, 4)],
    ['Christmas Day', dayOf(year, 12, 25)],
  ];
  return holidays.map(([name, day]) => {
    const shift = weekday(day) === 6 ? -1 : weekday(day) === 0 ? 1 : 0;
    return { name, date: formatDay(day), observed: formatDay(day + shift) };
  });
}

const observedHolidaysByYear = new Map<number, Map<number, string>>();

/** Observed holidays (by day number) falling in a calendar year; a Saturday Jan 1 is observed on Dec 31 before it. */
function observedHolidaysIn(year: number): Map<number, string> {
  let observed = observedHolidaysByYear.get(year);
  if (!observed) {
    observed = new Map();
    const candidates =
      year < LAST_SUPPORTED_YEAR ? [...federalHolidays(year), ...federalHolidays(year + 1)] : federalHolidays(year);
    for (const holiday of candidates) {
      if (holiday.observed.startsWith(`${year}-`)) {
        observed.set(dayNumber(holiday.observed), holiday.name);
      }
    }
    observedHolidaysByYear.set(year, observed);
  }
  return observed;
}

function observedHolidayOnDay(day: number): string | undefined {
  return observedHolidaysIn(new Date(day * DAY_MS).getUTCFullYear()).get(day);
}

/** The name of the federal holiday observed on a date, if any. */
export function observedHolidayOn(date: CalendarDate): string | undefined {
  return observedHolidayOnDay(dayNumber(date));
}

function isBusinessDayNumber(day: number): boolean {
  const dow = weekday(day);
  return dow !== 0 && dow !== 6 && observedHolidayOnDay(day) === undefined;
}

/** Monday to Friday and not an observed federal holiday. */
export function isBusinessDay(date: CalendarDate): boolean {
  return isBusinessDayNumber(dayNumber(date));
}

/**
 * The date n business days after `start` (before it when n is negative). `start` itself never counts,
 * business day or not: one business day after Friday is Monday, and after Saturday too. n = 0 gives
 * `start` unchanged.
 */
export function addBusinessDays(start: CalendarDate, n: number): CalendarDate {
  if (!Number.isInteger(n)) {
    throw new RangeError(`A whole number of business days is needed, not ${n}`);
  }
  let day = dayNumber(start);
  let remaining = Math.abs(n);
  while (remaining > 0) {
    day += Math.sign(n);
    if (isBusinessDayNumber(day)) {
      remaining--;
    }
  }
  return formatDay(day);
}

/**
 * The business days after `start` up to and including `end`, so that
 * `addBusinessDays(start, businessDaysBetween(start, end)) === end` when `end` is a business day.
 * Negative when `end` is before `start`: `businessDaysBetween(a, b) === -businessDaysBetween(b, a)`.
 */
export function businessDaysBetween(start: CalendarDate, end: CalendarDate): number {
  const [from, to] = [dayNumber(start), dayNumber(end)];
  if (to < from) {
    return -businessDaysBetween(end, start);
  }
  let count = 0;
  for (let day = from + 1; day <= to; day++) {
    if (isBusinessDayNumber(day)) {
      count++;
    }
  }
  return count;
}

/** The first business day strictly after a date. */
export function nextBusinessDay(date: CalendarDate): CalendarDate {
  return addBusinessDays(date, 1);
}

// --- instants and Eastern wall-clock time ---

const easternParts = new Intl.DateTimeFormat('en-US', {
  timeZone: TIME_ZONE,
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

interface WallClock {
  date: CalendarDate;
  /** Minutes after midnight, with seconds as a fraction. */
  minutes: number;
  /** Milliseconds the Eastern wall clock is ahead of UTC (negative: -5 h in winter, -4 h in summer). */
  offsetMs: number;
}

function easternWallClock(instant: Date): WallClock {
  const ms = instant.getTime();
  if (Number.isNaN(ms)) {
    throw new RangeError('Invalid Date');
  }
  const part: Record<string, number> = {};
  for (const { type, value } of easternParts.formatToParts(instant)) {
    part[type] = Number(value);
  }
  const { year, month, day, hour, minute, second } = part;
  if (
    year === undefined ||
    month === undefined ||
    day === undefined ||
    hour === undefined ||
    minute === undefined ||
    second === undefined
  ) {
    throw new Error('the Eastern time format gave no full date and time');
  }
  const wallMs = Date.UTC(year, month - 1, day, hour, minute, second);
  const date = formatDay(Math.floor(wallMs / DAY_MS));
  return {
    date,
    minutes: hour * 60 + minute + second / 60,
    offsetMs: wallMs - (ms - (((ms % 1000) + 1000) % 1000)),
  };
}

/** The Eastern calendar date of an instant. */
export function easternDate(instant: Date): CalendarDate {
  return easternWallClock(instant).date;
}

/**
 * The instant a given Eastern wall-clock time occurs on a date. Refuses a time skipped by the spring
 * DST change; in the repeated autumn hour either instant may come back. Neither matters for business
 * hours: the clocks change at 2 a.m.
 */
export function easternInstant(date: CalendarDate, hour: number, minute = 0): Date {
  if (!Number.isInteger(hour) || !Number.isInteger(minute) || hour < 0 || hour > 23 || minute < 0 || minute > 59) {
    throw new RangeError(`Not a time of day: ${hour}:${minute}`);
  }
  const wallMs = dayNumber(date) * DAY_MS + (hour * 60 + minute) * 60_000;
  // The offset at the guessed instant is right unless a DST change lies between guess and answer,
  // which the second pass corrects.
  let instantMs = wallMs + 5 * 3_600_000;
  for (let pass = 0; pass < 2; pass++) {
    instantMs = wallMs - easternWallClock(new Date(instantMs)).offsetMs;
  }
  const instant = new Date(instantMs);
  const check = easternWallClock(instant);
  if (check.date !== date || check.minutes !== hour * 60 + minute) {
    throw new RangeError(
      `${date} ${hour}:${String(minute).padStart(2, '0')} does not exist in ${TIME_ZONE} (DST change)`,
    );
  }
  return instant;
}

/** Monday to Friday, not a holiday, 8:30 a.m. (inclusive) to 5 p.m. (exclusive) Eastern. */
export function isWithinBusinessHours(instant: Date): boolean {
  const { date, minutes } = easternWallClock(instant);
  return isBusinessDay(date) && minutes >= BUSINESS_OPENS && minutes < BUSINESS_CLOSES;
}

/**
 * The business day a case completed at `completeAt` counts as complete: that Eastern day if it is a
 * business day and the moment is before 5 p.m.; otherwise (after 5 p.m., a weekend or a holiday) the
 * next business day, as if the materials had arrived when the office next opened. Before 8:30 a.m.
 * on a business day is that same day: the count starts after it either way.
 */
export function completionBusinessDay(completeAt: Date): CalendarDate {
  const { date, minutes } = easternWallClock(completeAt);
  return isBusinessDay(date) && minutes < BUSINESS_CLOSES ? date : nextBusinessDay(date);
}

/**
 * When the specialist's opinion is due: 5 p.m. Eastern on the nth business day after the day the case
 * became complete ({@link completionBusinessDay}). Complete on Monday 10:00 → due Monday two weeks
 * later, 17:00.
 */
export function dueDate(completeAt: Date, businessDays: number = OPINION_BUSINESS_DAYS): Date {
  if (!Number.isInteger(businessDays) || businessDays < 1) {
    throw new RangeError(`A due date is at least 1 business day away, not ${businessDays}`);
  }
  return easternInstant(addBusinessDays(completionBusinessDay(completeAt), businessDays), 17, 0);
}

export interface ReminderPolicy {
  /** Remind at opening time this many business days before the due day (0 = on the due day). */
  remindBusinessDaysBefore: number[];
  /** Escalate to a coordinator at opening time this many business days after the due day. */
  escalateBusinessDaysAfter: number;
}

export const DEFAULT_REMINDER_POLICY: ReminderPolicy = {
  remindBusinessDaysBefore: [2, 0],
  escalateBusinessDaysAfter: 1,
};

export interface ReminderSchedule {
  /** In time order; only those before the due moment. */
  reminders: Date[];
  escalation: Date;
}

/**
 * When to remind the assignee and when to escalate, all at 8:30 a.m. Eastern so someone is at work to
 * act: by default 2 business days before the due day, on the due day, and escalation on the first
 * business morning after it (the first moment a coordinator can act on an overdue case).
 */
export function reminderSchedule(due: Date, policy: ReminderPolicy = DEFAULT_REMINDER_POLICY): ReminderSchedule {
  const dueDay = easternDate(due);
  for (const days of [...policy.remindBusinessDaysBefore, policy.escalateBusinessDaysAfter]) {
    if (!Number.isInteger(days) || days < 0) {
      throw new RangeError(`Business-day offsets must be whole and not negative, not ${days}`);
    }
  }
  if (policy.escalateBusinessDaysAfter < 1) {
    throw new RangeError('Escalation comes at least 1 business day after the due day');
  }
  const atOpening = (date: CalendarDate): Date => easternInstant(date, 8, 30);
  const reminderMs = new Set(
    policy.remindBusinessDaysBefore
      .map((days) => atOpening(addBusinessDays(dueDay, -days)).getTime())
      .filter((ms) => ms < due.getTime()),
  );
  return {
    reminders: [...reminderMs].sort((a, b) => a - b).map((ms) => new Date(ms)),
    escalation: atOpening(addBusinessDays(dueDay, policy.escalateBusinessDaysAfter)),
  };
}

/**
 * The new due date after a pause: moved by the business days (New York) from the day the question
 * was asked to the day it was answered, at the same time of day. Asked and answered on the same
 * business day moves nothing; asked on Friday and answered on Monday moves it one day.
 */
export function dueAfterPause(due: Date, pausedAt: Date, resumedAt: Date): Date {
  const paused = Math.max(0, businessDaysBetween(easternDate(pausedAt), easternDate(resumedAt)));
  if (paused === 0) {
    return due;
  }
  const shifted = easternInstant(addBusinessDays(easternDate(due), paused), 0);
  return new Date(shifted.getTime() + (due.getTime() - easternInstant(easternDate(due), 0).getTime()));
}
