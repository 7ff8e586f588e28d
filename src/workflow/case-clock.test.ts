import type { Task } from '@medplum/fhirtypes';
import { caseDeadline, withCaseClock } from './case-clock.ts';

const OFFER = { dueAt: '2026-12-18T22:00:00.000Z' };
const APPROVAL = { dueAt: '2026-12-21T22:00:00.000Z' };
const NOW = new Date('2026-12-01T12:00:00.000Z');

const coordination = (extra: Partial<Task> = {}): Task => ({
  resourceType: 'Task',
  id: 'coord-1',
  meta: { versionId: '3', source: 'urn:hub:actor:coordinator:Practitioner/c' },
  status: 'in-progress',
  intent: 'order',
  owner: { reference: 'Practitioner/c' },
  ...extra,
});

describe('caseDeadline', () => {
  test('the open approval first, then the offer while the opinion is awaited', () => {
    expect(caseDeadline('report-review', OFFER, APPROVAL)).toBe(APPROVAL.dueAt);
    expect(caseDeadline('report-released', undefined, APPROVAL)).toBe(APPROVAL.dueAt);
    expect(caseDeadline('matching', OFFER, undefined)).toBe(OFFER.dueAt);
    expect(caseDeadline('specialist-review', OFFER, undefined)).toBe(OFFER.dueAt);
    expect(caseDeadline('awaiting-information', OFFER, undefined)).toBe(OFFER.dueAt);
  });

  test('no deadline in states that wait for nobody’s opinion, whatever Task is left open', () => {
    for (const state of ['pre-review', 'report-review', 'report-accessed', 'cancelled', 'failed'] as const) {
      expect(caseDeadline(state, OFFER, undefined)).toBeUndefined();
    }
    expect(caseDeadline('matching', undefined, undefined)).toBeUndefined();
  });
});

describe('withCaseClock', () => {
  test('sets the deadline and the specialties, keeps what others wrote, and drops meta', () => {
    const task = withCaseClock(coordination(), { due: OFFER.dueAt, specialties: ['oncology'] }, NOW);
    expect(task).toEqual({
      resourceType: 'Task',
      id: 'coord-1',
      status: 'in-progress',
      intent: 'order',
      owner: { reference: 'Practitioner/c' },
      restriction: { period: { end: OFFER.dueAt } },
      performerType: [
        {
          coding: [{ system: 'http://nucc.org/provider-taxonomy', code: '207RX0202X', display: 'Medical Oncology' }],
          text: 'Medical Oncology',
        },
      ],
      lastModified: NOW.toISOString(),
    });
  });

  test('nothing to write when the Task already says so (the same instant written otherwise counts as the same)', () => {
    const clocked = coordination({
      restriction: { period: { end: '2026-12-18T17:00:00-05:00' } },
      performerType: [{ coding: [{ system: 'x', code: 'y' }] }],
    });
    expect(withCaseClock(clocked, { due: OFFER.dueAt }, NOW)).toBeUndefined();
    expect(withCaseClock(coordination(), { due: undefined }, NOW)).toBeUndefined();
  });

  test('no deadline removes it, keeping the rest of the restriction; specialties not given stay', () => {
    const clocked = coordination({
      restriction: { repetitions: 1, period: { start: '2026-11-01T00:00:00Z', end: OFFER.dueAt } },
      performerType: [{ text: 'Neurology' }],
    });
    expect(withCaseClock(clocked, { due: undefined }, NOW)).toMatchObject({
      restriction: { repetitions: 1, period: { start: '2026-11-01T00:00:00Z' } },
      performerType: [{ text: 'Neurology' }],
    });
    const bare = withCaseClock(
      coordination({ restriction: { period: { end: OFFER.dueAt } } }),
      { due: undefined },
      NOW,
    );
    expect(bare).toBeDefined();
    expect(bare?.restriction).toBeUndefined();
  });

  test('a matching that could tell no specialty clears the earlier ones', () => {
    const task = withCaseClock(
      coordination({ performerType: [{ text: 'Neurology' }] }),
      { due: undefined, specialties: [] },
      NOW,
    );
    expect(task?.performerType).toBeUndefined();
  });
});
