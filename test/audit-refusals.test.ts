/**
 * Unauthenticated traffic must not grow the audit store without bound (issue 11, item 4): requests
 * refused before the caller was identified (FHIR or DICOMweb without a token, the token endpoint
 * for a client that did not authenticate) are recorded one by one up to a budget per address and
 * minute, and in all; the rest are counted into one Security Alert per minute naming the busiest
 * addresses. An identified caller's refusals are always recorded whole.
 */
import { DEFAULT_REFUSAL_LIMITS } from '../src/audit/refusal-throttle.ts';
import type { Clock } from '../src/runtime/clock.ts';
import { clientToken } from './support/client-token.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

const { perSource, total } = DEFAULT_REFUSAL_LIMITS;
const SUMMARIZED = 'urn:second-opinion-hub:audit-subtype|refusals-summarized';

describe('refusals of unidentified callers are audited within a budget, the rest summarized', () => {
  let testHub: TestHub;
  /** The hub's clock: the test moves it past the minute. */
  let now = Date.now();
  const clock: Clock = { now: () => new Date(now) };

  const anonymous = (from: string, path = '/dicomweb/studies') =>
    fetch(`${testHub.baseUrl}${path}`, { headers: { 'x-forwarded-for': from } }).then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    });
  const refusalsStored = async (): Promise<number> =>
    (
      await testHub.hub.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_event WHERE outcome = '4' AND NOT ($1 = ANY (subtype))`,
        [SUMMARIZED],
      )
    ).rows[0]?.n ?? 0;
  const summaries = async () =>
    (
      await testHub.hub.db.query<{ content: string }>(
        `SELECT content FROM audit_event WHERE $1 = ANY (subtype) ORDER BY recorded`,
        [SUMMARIZED],
      )
    ).rows.map((row) => JSON.parse(row.content));

  beforeAll(async () => {
    testHub = await startTestHub({
      db: 'postgres',
      env: { AUTH_REQUIRED: 'true', TRUST_PROXY: 'loopback', AUDIT_FLUSH_MS: '20' },
      clock,
    });
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('a flood of 401s from many addresses: each address and the whole get their budget, the rest one summary', async () => {
    const before = await refusalsStored();
    // Two busy addresses, then many addresses that send a few each.
    const flood: string[] = [
      ...Array<string>(perSource + 10).fill('203.0.113.1'),
      ...Array<string>(perSource + 10).fill('203.0.113.2'),
    ];
    for (let host = 0; host < 40; host++) {
      flood.push(...Array<string>(5).fill(`198.51.100.${host}`));
    }
    expect(flood.length).toBeGreaterThan(total);
    for (let start = 0; start < flood.length; start += 20) {
      // FHIR and DICOMweb refusals alike, against one budget.
      const statuses = await Promise.all(
        flood
          .slice(start, start + 20)
          .map((from, index) => anonymous(from, index % 2 === 0 ? '/fhir/Patient' : '/dicomweb/studies')),
      );
      expect(new Set(statuses)).toEqual(new Set([401]));
    }
    // The token endpoint's refusals of callers it could not identify count against the same budget.
    const tokenRefused = await fetch(`${testHub.baseUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '203.0.113.1' },
      body: 'grant_type=client_credentials',
    });
    expect(tokenRefused.status).toBe(401);
    await until(async () => (await refusalsStored()) - before >= total, `${total} refusals stored`);
    expect((await refusalsStored()) - before).toBe(total);
    const perAddress = await testHub.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event WHERE outcome = '4' AND content LIKE '%"203.0.113.1"%'`,
    );
    expect(perAddress.rows[0]?.n).toBe(perSource);
    expect(await summaries()).toEqual([]);

    // The minute ends: the next refusal brings its summary.
    now += 61_000;
    expect(await anonymous('192.0.2.9')).toBe(401);
    await until(async () => (await summaries()).length === 1, 'the summary of the minute');
    const [summary] = await summaries();
    const skipped = flood.length + 1 - total;
    expect(summary).toMatchObject({ type: { code: '110113' }, outcome: '4' });
    expect(summary.outcomeDesc).toMatch(
      new RegExp(
        `^${skipped} more requests refused before the caller was identified, from \\d+ addresses, were not recorded one by one$`,
      ),
    );
    const busiest = summary.entity.map((entity: { what: { display: string }; detail: { valueString: string }[] }) => [
      entity.what.display,
      Number(entity.detail[0]?.valueString),
    ]);
    expect(busiest.slice(0, 2)).toEqual([
      ['203.0.113.1', 11],
      ['203.0.113.2', 10],
    ]);
    expect(busiest.reduce((sum: number, [, count]: [string, number]) => sum + count, 0)).toBe(skipped);
  }, 180_000);

  test('an identified caller’s refusals are all recorded, beyond any budget', async () => {
    now += 61_000;
    const token = await clientToken(testHub, 'refused-client', 'system/Observation.rs');
    const before = await refusalsStored();
    for (let i = 0; i < perSource + 5; i++) {
      const response = await fetch(`${testHub.baseUrl}${i % 2 === 0 ? '/fhir/Patient' : '/dicomweb/studies'}`, {
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': '203.0.113.1' },
      });
      expect(response.status).toBe(403);
    }
    await until(async () => (await refusalsStored()) - before >= perSource + 5, 'every refusal stored');
    expect((await refusalsStored()) - before).toBe(perSource + 5);
  }, 120_000);
});
