/**
 * Unauthenticated traffic must not grow the audit store without bound (issue 11, item 4): requests
 * refused before the caller was identified (FHIR or DICOMweb without a token, the token endpoint
 * for a client that did not authenticate) are recorded one by one up to a budget per address and
 * minute, and in all; the rest are counted into one Security Alert per minute naming the
 * addresses. An identified caller's refusals are always recorded whole.
 *
 * Nor may the budgets hide anyone (security finding F7): decoys that spend the shared budget leave
 * every other address its first refusals recorded; a flood from more addresses than the hub tells
 * apart is counted in the summary; and a caller naming a registered client or presenting a token of
 * this hub that is no longer valid is recorded naming who it claimed to be, within a budget per name.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { CLAIMED_TOKEN_REFUSED } from '../src/audit/audit-event.ts';
import { DEFAULT_REFUSAL_LIMITS } from '../src/audit/refusal-throttle.ts';
import { ClientRegistry } from '../src/auth/clients.ts';
import { parseClientScopes } from '../src/auth/scopes.ts';
import type { Clock } from '../src/runtime/clock.ts';
import { clientToken } from './support/client-token.ts';
import { signInPeople } from './support/login-flow.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

const { perSource, total, floor, floorSources, trackedSources, perClaimed } = DEFAULT_REFUSAL_LIMITS;
const SUMMARIZED = 'urn:second-opinion-hub:audit-subtype|refusals-summarized';

interface SummaryEntity {
  what: { display?: string; identifier?: { system: string; value: string } };
  detail: { type: string; valueString: string }[];
}
const tallyOf = (entity: SummaryEntity | undefined) =>
  entity && Object.fromEntries(entity.detail.map((detail) => [detail.type, Number(detail.valueString)]));

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
  /** The refusals recorded one by one whose JSON has this text (an address, in quotes). */
  const recordedWith = async (text: string): Promise<number> =>
    (
      await testHub.hub.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_event WHERE outcome = '4' AND NOT ($1 = ANY (subtype)) AND strpos(content, $2) > 0`,
        [SUMMARIZED, text],
      )
    ).rows[0]?.n ?? 0;
  /** The refusals recorded one by one that name this agent (`<BASE_URL>/users|id`, `…/clients|id`). */
  const recordedNaming = async (agentIdentifier: string) =>
    (
      await testHub.hub.db.query<{ content: string }>(
        `SELECT content FROM audit_event WHERE outcome = '4' AND NOT ($1 = ANY (subtype)) AND $2 = ANY (agent_identifier)`,
        [SUMMARIZED, agentIdentifier],
      )
    ).rows.map((row) => JSON.parse(row.content));
  /** Starts a new minute on the hub's clock; returns its start. */
  const nextMinute = (): number => {
    now += 61_000;
    return now;
  };
  /** Ends the minute that started at `start` and returns its summary (a refusal in the next brings it). */
  const summaryOf = async (start: number) => {
    nextMinute();
    expect(await anonymous('192.0.2.250')).toBe(401);
    const period = new Date(start).toISOString();
    return until(
      async () => (await summaries()).find((summary) => summary.period.start === period),
      'the summary of the minute',
    );
  };
  const entityNamed = (summary: { entity?: SummaryEntity[] }, name: string) =>
    summary.entity?.find((entity) => entity.what.display === name || entity.what.identifier?.value === name);

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
    // The hosts that come after the shared budget is spent: each still has its first `floor` recorded.
    const beyondBudget = 40 - (total - 2 * perSource) / 5;
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
    const stored = total + beyondBudget * floor;
    await until(async () => (await refusalsStored()) - before >= stored, `${stored} refusals stored`);
    expect((await refusalsStored()) - before).toBe(stored);
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
    const skipped = flood.length + 1 - stored;
    expect(summary).toMatchObject({ type: { code: '110113' }, outcome: '4' });
    expect(summary.outcomeDesc).toMatch(
      new RegExp(
        `^${skipped} more requests refused before the caller was identified, from \\d+ addresses, were not recorded one by one$`,
      ),
    );
    const busiest = summary.entity.map((entity: SummaryEntity) => [entity.what.display, tallyOf(entity)?.refusals]);
    expect(busiest.slice(0, 2)).toEqual([
      ['203.0.113.1', 11],
      ['203.0.113.2', 10],
    ]);
    // Every address with refusals not recorded is named, with how many were.
    expect(busiest).toHaveLength(2 + beyondBudget);
    expect(busiest.reduce((sum: number, [, count]: [string, number]) => sum + count, 0)).toBe(skipped);
    expect(tallyOf(entityNamed(summary, '198.51.100.39'))).toEqual({ refusals: 5 - floor, recorded: floor });
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

  test('eleven decoys that spend the shared budget do not hide a twelfth address: its first refusals are recorded', async () => {
    const minute = nextMinute();
    const decoys = Array.from({ length: 11 }, (_, index) => `203.0.113.${100 + index}`);
    for (const decoy of decoys) {
      const statuses = await Promise.all(Array.from({ length: perSource + 1 }, () => anonymous(decoy)));
      expect(new Set(statuses)).toEqual(new Set([401]));
    }
    const victim = '198.51.100.200';
    for (let i = 0; i < floor + 2; i++) {
      expect(await anonymous(victim, i % 2 === 0 ? '/fhir/Patient' : '/dicomweb/studies')).toBe(401);
    }
    await until(async () => (await recordedWith(`"${victim}"`)) >= floor, 'the twelfth address’s first refusals');
    expect(await recordedWith(`"${victim}"`)).toBe(floor);
    // The rest, its own and the decoys’, are named in the minute’s summary.
    const summary = await summaryOf(minute);
    expect(tallyOf(entityNamed(summary, victim))).toEqual({ refusals: 2, recorded: floor });
    expect(tallyOf(entityNamed(summary, decoys[0] as string))).toEqual({ refusals: 1, recorded: perSource });
    expect(tallyOf(entityNamed(summary, decoys[10] as string))).toEqual({
      refusals: perSource + 1 - floor,
      recorded: floor,
    });
  }, 120_000);

  test('a flood from more addresses than are told apart: the first get the floor, the overflow is counted', async () => {
    const minute = nextMinute();
    const before = await refusalsStored();
    // One refusal each from many IPv6 addresses, more than the throttle keeps apart in a minute.
    const addresses = Array.from({ length: trackedSources + 50 }, (_, index) => `2001:db8:f7::${index.toString(16)}`);
    for (let start = 0; start < addresses.length; start += 25) {
      const statuses = await Promise.all(addresses.slice(start, start + 25).map((address) => anonymous(address)));
      expect(new Set(statuses)).toEqual(new Set([401]));
    }
    // The shared budget, then the floor (one each here) for `floorSources` more addresses.
    const stored = total + floorSources;
    await until(async () => (await refusalsStored()) - before >= stored, `${stored} refusals stored`);
    expect((await refusalsStored()) - before).toBe(stored);
    const summary = await summaryOf(minute);
    const told = trackedSources - stored;
    expect(summary.outcomeDesc).toBe(
      `${addresses.length - stored} more requests refused before the caller was identified, from ${told} addresses ` +
        `and 50 from further addresses not told apart, were not recorded one by one`,
    );
    expect(summary.entity).toHaveLength(told);
    expect(tallyOf(entityNamed(summary, addresses[stored] as string))).toEqual({ refusals: 1, recorded: 0 });
    expect(entityNamed(summary, addresses[trackedSources] as string)).toBeUndefined();
  }, 180_000);

  test('forged client assertions naming a registered client: recorded naming it, within a budget per client', async () => {
    const minute = nextMinute();
    const { publicKey } = await generateKeyPair('ES384', { extractable: true });
    await new ClientRegistry(testHub.hub.db).add({
      id: 'impersonated-ehr',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES384' }] },
      scopes: parseClientScopes('system/Patient.rs').resources,
      hubAdmin: false,
    });
    // The attacker's own key, under the client's key id.
    const { privateKey: forgersKey } = await generateKeyPair('ES384');
    const tokenUrl = `${testHub.baseUrl}/oauth2/token`;
    const forged = async (from: string): Promise<number> => {
      const nowSeconds = Math.floor(now / 1000);
      const assertion = await new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES384', kid: 'k1', typ: 'JWT' })
        .setIssuer('impersonated-ehr')
        .setSubject('impersonated-ehr')
        .setAudience(tokenUrl)
        .setIssuedAt(nowSeconds)
        .setExpirationTime(nowSeconds + 240)
        .sign(forgersKey);
      const response = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
          scope: 'system/Patient.rs',
        }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    // From a new address each time: the addresses do not matter, the client named does.
    const sent = perClaimed + 5;
    for (let i = 0; i < sent; i++) {
      expect(await forged(`192.0.2.${100 + i}`)).toBe(401);
    }
    const client = `${testHub.baseUrl}/clients|impersonated-ehr`;
    await until(async () => (await recordedNaming(client)).length >= perClaimed, 'the refusals naming the client');
    const recorded = await recordedNaming(client);
    expect(recorded).toHaveLength(perClaimed);
    expect(recorded[0]).toMatchObject({ type: { code: '110114' }, outcome: '4' });
    const summary = await summaryOf(minute);
    expect(summary.outcomeDesc).toContain(
      `${sent - perClaimed} more refused requests that named a client or person without proving it, naming 1 identity`,
    );
    expect(entityNamed(summary, 'impersonated-ehr')?.what.identifier?.system).toBe(`${testHub.baseUrl}/clients`);
    expect(tallyOf(entityNamed(summary, 'impersonated-ehr'))).toEqual({
      refusals: sent - perClaimed,
      recorded: perClaimed,
    });
  }, 120_000);

  test('tokens of an ended session, or expired: refusals name the person and the session, within a budget', async () => {
    const tokens = await signInPeople(
      testHub,
      {
        Leaver: { role: 'coordinator', fhirUser: 'Practitioner/prac-leaver' },
        Sleeper: { role: 'coordinator', fhirUser: 'Practitioner/prac-sleeper' },
      },
      { clientId: 'refusals-app', redirectUri: 'http://127.0.0.1:5173/callback', scope: 'openid fhirUser user/*.rs' },
    );
    const leaver = decodeJwt(tokens.Leaver);
    const logout = await fetch(`${testHub.baseUrl}/oauth2/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.Leaver}` },
    });
    expect(logout.status).toBe(200);
    const minute = nextMinute();
    const sent = perClaimed + 3;
    for (let i = 0; i < sent; i++) {
      const response = await fetch(`${testHub.baseUrl}${i % 2 === 0 ? '/fhir/Patient' : '/dicomweb/studies'}`, {
        headers: { authorization: `Bearer ${tokens.Leaver}`, 'x-forwarded-for': `192.0.2.${150 + i}` },
      });
      await response.arrayBuffer();
      expect(response.status).toBe(401);
    }
    const person = `${testHub.baseUrl}/users|${String(leaver.sub)}`;
    await until(async () => (await recordedNaming(person)).length >= perClaimed, 'the refusals naming the person');
    const recorded = await recordedNaming(person);
    expect(recorded).toHaveLength(perClaimed);
    for (const event of recorded) {
      expect(event.outcomeDesc).toBe(CLAIMED_TOKEN_REFUSED);
      expect(event.agent[0]).toMatchObject({
        who: { reference: 'Practitioner/prac-leaver' },
        policy: [`${testHub.baseUrl}/sessions/${String(leaver.sid)}`],
      });
    }
    const summary = await summaryOf(minute);
    expect(entityNamed(summary, String(leaver.sub))?.what.identifier?.system).toBe(`${testHub.baseUrl}/users`);
    expect(tallyOf(entityNamed(summary, String(leaver.sub)))).toEqual({
      refusals: sent - perClaimed,
      recorded: perClaimed,
    });

    // A token that has expired names its person too.
    now += 11 * 60_000;
    const sleeper = decodeJwt(tokens.Sleeper);
    const expired = await fetch(`${testHub.baseUrl}/fhir/Patient`, {
      headers: { authorization: `Bearer ${tokens.Sleeper}`, 'x-forwarded-for': '192.0.2.199' },
    });
    await expired.arrayBuffer();
    expect(expired.status).toBe(401);
    const named = await until(async () => {
      const events = await recordedNaming(`${testHub.baseUrl}/users|${String(sleeper.sub)}`);
      return events.length > 0 && events;
    }, 'the expired token’s refusal');
    expect(named).toHaveLength(1);
    expect(named[0].outcomeDesc).toBe(CLAIMED_TOKEN_REFUSED);
    expect(named[0].agent[0].policy).toEqual([`${testHub.baseUrl}/sessions/${String(sleeper.sid)}`]);
  }, 120_000);
});
