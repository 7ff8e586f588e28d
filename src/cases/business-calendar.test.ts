import {
  dueAfterPause,
  addBusinessDays,
  businessDaysBetween,
  completionBusinessDay,
  dueDate,
  easternDate,
  easternInstant,
  federalHolidays,
  isBusinessDay,
  isWithinBusinessHours,
  nextBusinessDay,
  observedHolidayOn,
  reminderSchedule,
} from './business-calendar.ts';

const at = (iso: string): Date => new Date(iso);

describe('federalHolidays', () => {
  test('2026, as published by OPM', () => {
    expect(federalHolidays(2026)).toEqual([
      { name: "New Year's Day", date: '2026-01-01', observed: '2026-01-01' },
      { name: 'Birthday of Martin Luther King, Jr.', date: '2026-01-19', observed: '2026-01-19' },
      { name: "Washington's Birthday", date: '2026-02-16', observed: '2026-02-16' },
      { name: 'Memorial Day', date: '2026-05-25', observed: '2026-05-25' },
      { name: 'Juneteenth National Independence Day', date: '2026-06-19', observed: '2026-06-19' },
      { name: 'Independence Day', date: '2026-07-04', observed: '2026-07-03' },
      { name: 'Labor Day', date: '2026-09-07', observed: '2026-09-07' },
      { name: 'Columbus Day', date: '2026-10-12', observed: '2026-10-12' },
      { name: 'Veterans Day', date: '2026-11-11', observed: '2026-11-11' },
      { name: 'Thanksgiving Day', date: '2026-11-26', observed: '2026-11-26' },
      { name: 'Christmas Day', date: '2026-12-25', observed: '2026-12-25' },
    ]);
  });

  test('2027: Saturday and Sunday holidays move to Friday and Monday', () => {
    expect(federalHolidays(2027).map((holiday) => [holiday.date, holiday.observed])).toEqual([
      ['2027-01-01', '2027-01-01'],
      ['2027-01-18', '2027-01-18'],
      ['2027-02-15', '2027-02-15'],
      ['2027-05-31', '2027-05-31'],
      ['2027-06-19', '2027-06-18'],
      ['2027-07-04', '2027-07-05'],
      ['2027-09-06', '2027-09-06'],
      ['2027-10-11', '2027-10-11'],
      ['2027-11-11', '2027-11-11'],
      ['2027-11-25', '2027-11-25'],
      ['2027-12-25', '2027-12-24'],
    ]);
  });

  test('a Saturday New Year’s Day is observed on Friday December 31 of the year before', () => {
    expect(federalHolidays(2028)[0]).toEqual({ name: "New Year's Day", date: '2028-01-01', observed: '2027-12-31' });
    expect(federalHolidays(2022)[0]).toEqual({ name: "New Year's Day", date: '2022-01-01', observed: '2021-12-31' });
  });

  test('Juneteenth only from 2021 (first observed on Friday June 18, 2021)', () => {
    expect(federalHolidays(2020).map((holiday) => holiday.name)).not.toContain('Juneteenth National Independence Day');
    expect(federalHolidays(2020)).toHaveLength(10);
    expect(federalHolidays(2021).find((holiday) => holiday.name.startsWith('Juneteenth'))).toEqual({
      name: 'Juneteenth National Independence Day',
      date: '2021-06-19',
      observed: '2021-06-18',
    });
  });

  test('rules hold for any year: Mondays, Thursdays, last Monday of May, never a weekend observed', () => {
    const weekdayOf = (date: string) => new Date(`${date}T12:00:00Z`).getUTCDay();
    const dayOfMonth = (date: string) => Number(date.slice(8));
    const broken: string[] = [];
    for (let year = 1986; year <= 2100; year++) {
      for (const { name, date, observed } of federalHolidays(year)) {
        const wrong =
          [0, 6].includes(weekdayOf(observed)) ||
          (/King|Washington|Memorial|Labor|Columbus/.test(name) && weekdayOf(date) !== 1) ||
          (name === 'Memorial Day' && dayOfMonth(date) < 25) ||
          (name === 'Thanksgiving Day' && (weekdayOf(date) !== 4 || dayOfMonth(date) < 22 || dayOfMonth(date) > 28));
        if (wrong) {
          broken.push(`${year} ${name} ${date} ${observed}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  test('other known years', () => {
    const names = (year: number) =>
      Object.fromEntries(federalHolidays(year).map((holiday) => [holiday.name, holiday.observed]));
    expect(names(2024)).toMatchObject({
      'Thanksgiving Day': '2024-11-28',
      'Memorial Day': '2024-05-27',
      'Labor Day': '2024-09-02',
    });
    expect(names(2023)).toMatchObject({
      "New Year's Day": '2023-01-02',
      'Christmas Day': '2023-12-25',
      'Veterans Day': '2023-11-10',
    });
    expect(names(2033)).toMatchObject({ "New Year's Day": '2032-12-31' });
  });

  test('refuses years it does not compute', () => {
    expect(() => federalHolidays(1985)).toThrow(RangeError);
    expect(() => federalHolidays(2026.5)).toThrow(RangeError);
    expect(() => federalHolidays(10000)).toThrow(RangeError);
  });
});

describe('isBusinessDay', () => {
  test.each([
    ['2026-11-30', true, 'a Monday'],
    ['2026-11-27', true, 'the Friday after Thanksgiving is not a federal holiday'],
    ['2026-11-28', false, 'Saturday'],
    ['2026-11-29', false, 'Sunday'],
    ['2026-11-26', false, 'Thanksgiving'],
    ['2026-07-03', false, 'Independence Day observed'],
    ['2026-07-04', false, 'Saturday (the holiday itself)'],
    ['2027-07-05', false, 'Independence Day observed on Monday'],
    ['2027-12-24', false, 'Christmas observed'],
    ['2027-12-31', false, 'New Year’s Day 2028 observed'],
    ['2027-12-30', true, 'a Thursday'],
    ['2021-12-31', false, 'New Year’s Day 2022 observed'],
    ['2026-06-19', false, 'Juneteenth'],
    ['2020-06-19', true, 'before Juneteenth was a federal holiday'],
    ['2028-02-29', true, 'a leap day, Tuesday'],
  ])('%s → %s (%s)', (date, expected) => {
    expect(isBusinessDay(date)).toBe(expected);
  });

  test('names the observed holiday', () => {
    expect(observedHolidayOn('2027-12-31')).toBe("New Year's Day");
    expect(observedHolidayOn('2026-07-03')).toBe('Independence Day');
    expect(observedHolidayOn('2026-07-04')).toBeUndefined();
    expect(observedHolidayOn('2026-07-06')).toBeUndefined();
  });

  test('refuses what is not a calendar date', () => {
    for (const bad of ['2026-02-30', '2026-13-01', '2026-1-5', '20260105', '2026-01-05T00:00:00Z', '', '1985-06-03']) {
      expect(() => isBusinessDay(bad)).toThrow(RangeError);
    }
  });
});

describe('addBusinessDays, businessDaysBetween', () => {
  test('skips weekends and observed holidays', () => {
    expect(addBusinessDays('2026-11-25', 1)).toBe('2026-11-27');
    expect(addBusinessDays('2026-11-25', 2)).toBe('2026-11-30');
    expect(addBusinessDays('2026-07-02', 1)).toBe('2026-07-06');
    expect(addBusinessDays('2027-12-23', 1)).toBe('2027-12-27');
    expect(addBusinessDays('2027-12-30', 1)).toBe('2028-01-03');
    expect(addBusinessDays('2026-03-02', 10)).toBe('2026-03-16');
  });

  test('the start never counts, business day or not; 0 leaves it alone', () => {
    expect(addBusinessDays('2026-11-28', 1)).toBe('2026-11-30');
    expect(addBusinessDays('2026-11-27', 1)).toBe('2026-11-30');
    expect(addBusinessDays('2026-11-28', 0)).toBe('2026-11-28');
    expect(nextBusinessDay('2026-12-24')).toBe('2026-12-28');
  });

  test('backwards', () => {
    expect(addBusinessDays('2026-07-06', -1)).toBe('2026-07-02');
    expect(addBusinessDays('2028-01-03', -1)).toBe('2027-12-30');
    expect(addBusinessDays('2026-11-30', -2)).toBe('2026-11-25');
  });

  test('refuses a fractional count', () => {
    expect(() => addBusinessDays('2026-11-30', 1.5)).toThrow(RangeError);
  });

  test('counts', () => {
    expect(businessDaysBetween('2026-03-02', '2026-03-16')).toBe(10);
    expect(businessDaysBetween('2026-03-16', '2026-03-02')).toBe(-10);
    expect(businessDaysBetween('2026-11-30', '2026-11-30')).toBe(0);
    expect(businessDaysBetween('2026-11-27', '2026-11-29')).toBe(0);
    expect(businessDaysBetween('2025-12-31', '2026-12-31')).toBe(250);
    expect(businessDaysBetween('2026-12-31', '2027-12-31')).toBe(249);
  });

  test('are inverse, over three years of starting days and counts up to 30', () => {
    const mismatches: string[] = [];
    for (let offset = 0; offset < 3 * 365; offset += 1) {
      const start = new Date(Date.UTC(2025, 11, 1 + offset)).toISOString().slice(0, 10);
      for (const n of [1, 2, 5, 10, 30]) {
        const end = addBusinessDays(start, n);
        const before = addBusinessDays(start, -n);
        const backAgain = addBusinessDays(before, n);
        if (!isBusinessDay(end) || !isBusinessDay(before)) {
          mismatches.push(`${start} ± ${n} lands on a day off`);
        }
        if (businessDaysBetween(start, end) !== n) {
          mismatches.push(`${start} → ${end} is not ${n}`);
        }
        if (backAgain !== (isBusinessDay(start) ? start : nextBusinessDay(start))) {
          mismatches.push(`${start} −${n} +${n} → ${backAgain}`);
        }
      }
    }
    expect(mismatches).toEqual([]);
  });
});

describe('Eastern time', () => {
  test('easternDate across midnight and DST', () => {
    expect(easternDate(at('2026-07-03T03:59:59Z'))).toBe('2026-07-02');
    expect(easternDate(at('2026-07-03T04:00:00Z'))).toBe('2026-07-03');
    expect(easternDate(at('2026-01-02T04:59:59Z'))).toBe('2026-01-01');
    expect(easternDate(at('2026-01-02T05:00:00Z'))).toBe('2026-01-02');
  });

  test('easternInstant: EST is UTC−5, EDT UTC−4, switching on 2026-03-08 and 2026-11-01', () => {
    expect(easternInstant('2026-03-06', 17).toISOString()).toBe('2026-03-06T22:00:00.000Z');
    expect(easternInstant('2026-03-08', 1, 59).toISOString()).toBe('2026-03-08T06:59:00.000Z');
    expect(easternInstant('2026-03-08', 3).toISOString()).toBe('2026-03-08T07:00:00.000Z');
    expect(easternInstant('2026-03-09', 8, 30).toISOString()).toBe('2026-03-09T12:30:00.000Z');
    expect(easternInstant('2026-10-30', 17).toISOString()).toBe('2026-10-30T21:00:00.000Z');
    expect(easternInstant('2026-11-02', 8, 30).toISOString()).toBe('2026-11-02T13:30:00.000Z');
    expect(() => easternInstant('2026-03-08', 2, 30)).toThrow(/does not exist/);
    expect(() => easternInstant('2026-03-09', 24)).toThrow(RangeError);
  });

  test.each([
    ['2026-03-06T13:29:59Z', false, 'Friday 8:29:59 EST'],
    ['2026-03-06T13:30:00Z', true, 'Friday 8:30 EST'],
    ['2026-03-06T21:59:59Z', true, 'Friday 16:59:59 EST'],
    ['2026-03-06T22:00:00Z', false, 'Friday 17:00 EST'],
    ['2026-03-09T12:29:00Z', false, 'Monday 8:29 EDT, the day after DST began'],
    ['2026-03-09T12:30:00Z', true, 'Monday 8:30 EDT'],
    ['2026-03-09T20:59:00Z', true, 'Monday 16:59 EDT'],
    ['2026-03-09T21:00:00Z', false, 'Monday 17:00 EDT'],
    ['2026-07-03T16:00:00Z', false, 'noon on the observed Independence Day'],
    ['2026-11-28T16:00:00Z', false, 'noon on a Saturday'],
    ['2026-11-30T03:00:00Z', false, 'Sunday night 22:00 EST, Monday in UTC'],
  ])('isWithinBusinessHours(%s) → %s (%s)', (iso, expected) => {
    expect(isWithinBusinessHours(at(iso))).toBe(expected);
  });
});

describe('dueDate: 5 p.m. Eastern on the 10th business day after the day the case became complete', () => {
  test.each([
    [
      '2026-03-02T15:00:00Z',
      '2026-03-16T21:00:00.000Z',
      'Monday 10:00 EST → Monday two weeks later 17:00 EDT (DST began between)',
    ],
    ['2026-03-02T13:00:00Z', '2026-03-16T21:00:00.000Z', 'Monday 8:00 EST, before opening, counts as Monday'],
    ['2026-03-02T21:59:59Z', '2026-03-16T21:00:00.000Z', 'Monday 16:59:59 EST counts as Monday'],
    ['2026-03-02T22:00:00Z', '2026-03-17T21:00:00.000Z', 'Monday 17:00 EST counts as Tuesday'],
    [
      '2026-07-02T22:00:00Z',
      '2026-07-20T21:00:00.000Z',
      'Thursday 18:00 EDT before the observed July 4th counts as Monday July 6',
    ],
    ['2026-11-28T15:00:00Z', '2026-12-14T22:00:00.000Z', 'Saturday counts as Monday'],
    ['2026-10-19T16:00:00Z', '2026-11-02T22:00:00.000Z', 'Monday noon EDT → 17:00 EST after DST ended'],
    [
      '2027-12-20T14:00:00Z',
      '2028-01-05T22:00:00.000Z',
      'over the observed Christmas and the observed New Year on Dec 31',
    ],
  ])('%s → %s (%s)', (completeAt, due) => {
    expect(dueDate(at(completeAt)).toISOString()).toBe(due);
  });

  test('completionBusinessDay is the day the count starts from', () => {
    expect(completionBusinessDay(at('2026-07-02T22:00:00Z'))).toBe('2026-07-06');
    expect(completionBusinessDay(at('2026-07-02T20:59:00Z'))).toBe('2026-07-02');
    expect(completionBusinessDay(at('2027-12-31T15:00:00Z'))).toBe('2028-01-03');
  });

  test('another number of business days, and refusals', () => {
    expect(dueDate(at('2026-03-02T15:00:00Z'), 1).toISOString()).toBe('2026-03-03T22:00:00.000Z');
    expect(() => dueDate(at('2026-03-02T15:00:00Z'), 0)).toThrow(RangeError);
    expect(() => dueDate(new Date(Number.NaN))).toThrow(/Invalid Date/);
  });
});

describe('reminderSchedule', () => {
  const iso = (dates: Date[]) => dates.map((date) => date.toISOString());

  test('2 business days before and on the due day at 8:30, escalation the next business morning', () => {
    const schedule = reminderSchedule(at('2026-03-16T21:00:00Z'));
    expect(iso(schedule.reminders)).toEqual(['2026-03-12T12:30:00.000Z', '2026-03-16T12:30:00.000Z']);
    expect(schedule.escalation.toISOString()).toBe('2026-03-17T12:30:00.000Z');
  });

  test('skips holidays both ways', () => {
    const schedule = reminderSchedule(at('2026-07-07T21:00:00Z'));
    expect(iso(schedule.reminders)).toEqual(['2026-07-02T12:30:00.000Z', '2026-07-07T12:30:00.000Z']);
    expect(reminderSchedule(at('2026-11-25T22:00:00Z')).escalation.toISOString()).toBe('2026-11-27T13:30:00.000Z');
    expect(reminderSchedule(at('2027-12-30T22:00:00Z')).escalation.toISOString()).toBe('2028-01-03T13:30:00.000Z');
  });

  test('a reminder crossing the DST change keeps 8:30 local time', () => {
    const schedule = reminderSchedule(at('2026-11-03T22:00:00Z'));
    expect(iso(schedule.reminders)).toEqual(['2026-10-30T12:30:00.000Z', '2026-11-03T13:30:00.000Z']);
  });

  test('another policy; reminders at or after the due moment are dropped; duplicates merge', () => {
    const schedule = reminderSchedule(at('2026-03-16T12:00:00Z'), {
      remindBusinessDaysBefore: [0, 5, 1, 1],
      escalateBusinessDaysAfter: 2,
    });
    expect(iso(schedule.reminders)).toEqual(['2026-03-09T12:30:00.000Z', '2026-03-13T12:30:00.000Z']);
    expect(schedule.escalation.toISOString()).toBe('2026-03-18T12:30:00.000Z');
  });

  test('refuses a policy that makes no sense', () => {
    const due = at('2026-03-16T21:00:00Z');
    expect(() => reminderSchedule(due, { remindBusinessDaysBefore: [-1], escalateBusinessDaysAfter: 1 })).toThrow(
      RangeError,
    );
    expect(() => reminderSchedule(due, { remindBusinessDaysBefore: [2], escalateBusinessDaysAfter: 0 })).toThrow(
      RangeError,
    );
  });
});

describe('dueAfterPause', () => {
  // Due Friday 18 December 2026, 17:00 New York (22:00 UTC).
  const due = new Date('2026-12-18T22:00:00.000Z');

  test('a question asked and answered on the same day moves nothing', () => {
    expect(dueAfterPause(due, new Date('2026-12-07T14:00:00Z'), new Date('2026-12-07T21:00:00Z'))).toEqual(due);
  });

  test('asked on Friday, answered on Monday: one business day, the same time of day', () => {
    expect(dueAfterPause(due, new Date('2026-12-04T15:00:00Z'), new Date('2026-12-07T15:00:00Z'))).toEqual(
      new Date('2026-12-21T22:00:00.000Z'),
    );
  });

  test('a pause across Christmas counts business days only, and the new date skips the holidays too', () => {
    // Asked Wednesday 23 December, answered Monday 28 December: the 24th (Thursday) and the 28th count,
    // Christmas (Friday 25th) and the weekend do not. Due Wednesday 30th moves two business days: to
    // Thursday 31st, then past New Year's Day and the weekend to Monday 4 January.
    expect(
      dueAfterPause(
        new Date('2026-12-30T22:00:00.000Z'),
        new Date('2026-12-23T16:00:00Z'),
        new Date('2026-12-28T16:00:00Z'),
      ),
    ).toEqual(new Date('2027-01-04T22:00:00.000Z'));
  });

  test('an answer dated before the question moves nothing', () => {
    expect(dueAfterPause(due, new Date('2026-12-09T15:00:00Z'), new Date('2026-12-08T15:00:00Z'))).toEqual(due);
  });
});
