/** The worklist's URL and the FHIR search it makes (npm run test:unit). */
import { describe, expect, test } from '@jest/globals';
import { endOfWeek, filtersOf, mineParameter, withFilters, worklistSearch } from './search.ts';

const COORDINATOR = { role: 'coordinator', fhirUser: 'Practitioner/cora' };
const search = (url: string, person = COORDINATOR, now = new Date(2026, 11, 2, 10, 30)) =>
  new URLSearchParams(worklistSearch(filtersOf(new URLSearchParams(url)), person, now).replace(/^Task\?/, ''));

describe('the worklist search', () => {
  test('by default: coordination Tasks, newest change first, with their Tasks and people', () => {
    const query = search('');
    expect(query.get('code')).toBe('urn:hub:task-code|coordination');
    expect(query.get('_sort')).toBe('-_lastUpdated');
    expect(query.get('_count')).toBe('20');
    expect(query.getAll('_revinclude')).toEqual(['Task:part-of']);
    expect(query.getAll('_include')).toEqual(['Task:owner', 'Task:requester']);
    expect(query.getAll('_include:iterate')).toEqual(['Task:owner']);
    expect(query.get('_elements')?.split(',')).toEqual(
      expect.arrayContaining(['restriction', 'performerType', 'name']),
    );
    for (const name of ['business-status', 'due', 'performer', 'owner']) {
      expect(query.has(name)).toBe(false);
    }
  });

  test('each filter is a search parameter', () => {
    const now = new Date(2026, 11, 2, 10, 30); // a Wednesday
    expect(search('state=report-review').get('business-status')).toBe('urn:hub:case-state|report-review');
    const overdue = search('due=overdue', COORDINATOR, now);
    expect(overdue.getAll('due')).toEqual([`lt${now.toISOString()}`]);
    expect(overdue.get('business-status:not')).toBe('urn:hub:case-state|awaiting-information');
    expect(search('due=week', COORDINATOR, now).getAll('due')).toEqual([
      `ge${now.toISOString()}`,
      `lt${new Date(2026, 11, 7).toISOString()}`,
    ]);
    expect(search('specialty=207RX0202X').get('performer')).toBe('http://nucc.org/provider-taxonomy|207RX0202X');
    expect(search('mine=1').get('owner')).toBe('Practitioner/cora');
    expect(search('count=5').get('_count')).toBe('5');
    expect(search('count=5000').get('_count')).toBe('20');
  });

  test('sorting by each key in both directions', () => {
    expect(search('sort=due').get('_sort')).toBe('due');
    expect(search('sort=due&order=desc').get('_sort')).toBe('-due');
    expect(search('sort=reference').get('_sort')).toBe('group-identifier');
    expect(search('sort=reference&order=desc').get('_sort')).toBe('-group-identifier');
    expect(search('order=asc').get('_sort')).toBe('_lastUpdated');
    expect(search('sort=nonsense').get('_sort')).toBe('-_lastUpdated');
  });

  test('"mine" by role, and nothing for a person without a Practitioner or a patient', () => {
    expect(mineParameter({ role: 'admin', fhirUser: 'Practitioner/a' })).toEqual(['owner', 'Practitioner/a']);
    expect(mineParameter({ role: 'referring-physician', fhirUser: 'Practitioner/p' })).toEqual([
      'focus:ServiceRequest.requester',
      'Practitioner/p',
    ]);
    for (const role of ['specialist', 'radiologist', 'pathologist']) {
      expect(mineParameter({ role, fhirUser: 'Practitioner/s' })).toEqual([
        '_has:Task:part-of:owner',
        'Practitioner/s',
      ]);
    }
    expect(mineParameter({ role: 'patient', fhirUser: 'Patient/x' })).toBeUndefined();
    expect(mineParameter({ role: 'coordinator', fhirUser: undefined })).toBeUndefined();
    expect(mineParameter({ role: 'coordinator', fhirUser: 'Practitioner/a&owner=x' })).toBeUndefined();
    expect(search('mine=1', { role: 'patient', fhirUser: 'Patient/x' }).has('owner')).toBe(false);
  });

  test('the URL keeps the filters, leaves defaults out and keeps other parameters', () => {
    const url = new URLSearchParams('count=5&other=1');
    const filters = {
      ...filtersOf(url),
      state: 'matching',
      deadline: 'week' as const,
      mine: true,
      sort: 'due' as const,
      descending: false,
    };
    const written = withFilters(url, filters);
    expect(written.toString()).toBe('count=5&other=1&state=matching&due=week&mine=1&sort=due');
    expect(filtersOf(written)).toEqual(filters);
    expect(withFilters(written, filtersOf(new URLSearchParams())).toString()).toBe('other=1');
    expect(
      withFilters(new URLSearchParams(), { ...filtersOf(new URLSearchParams()), descending: false }).get('order'),
    ).toBe('asc');
  });

  test('the week ends at the next Monday’s midnight, from any day', () => {
    expect(endOfWeek(new Date(2026, 11, 7, 9))).toEqual(new Date(2026, 11, 14)); // Monday
    expect(endOfWeek(new Date(2026, 11, 12, 23))).toEqual(new Date(2026, 11, 14)); // Saturday
    expect(endOfWeek(new Date(2026, 11, 13, 23, 59))).toEqual(new Date(2026, 11, 14)); // Sunday
  });
});
