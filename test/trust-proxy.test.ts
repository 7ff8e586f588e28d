/**
 * Rate limits behind a reverse proxy (issue 11, item 4): with TRUST_PROXY naming the proxy, the token
 * endpoint's budget per address is the client's (X-Forwarded-For), so one client spending its budget
 * leaves the others theirs; without it, the header is the client's own claim and is ignored, so
 * nobody escapes the limit by inventing addresses. With a hop count, a forwarded "address" that is
 * no IP address is not taken for one: the limits and the audit record use the socket's.
 */
import { auditEventsSince, clientToken } from './support/client-token.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { until } from './support/until.ts';

/** The token endpoint's budget per address per minute (auth/rate-limit.ts TOKEN_PER_IP). */
const TOKEN_BUDGET = 60;

async function tokenRequest(hub: TestHub, forwardedFor: string): Promise<number> {
  const response = await fetch(`${hub.hub.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': forwardedFor },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  await response.arrayBuffer();
  return response.status;
}

/** Spends one address's budget; returns the statuses of the requests past it. */
async function spend(hub: TestHub, forwardedFor: string | ((n: number) => string)): Promise<number[]> {
  const statuses: number[] = [];
  for (let n = 0; n < TOKEN_BUDGET + 2; n++) {
    statuses.push(await tokenRequest(hub, typeof forwardedFor === 'string' ? forwardedFor : forwardedFor(n)));
  }
  return statuses.slice(TOKEN_BUDGET);
}

describe('TRUST_PROXY', () => {
  test('behind a trusted proxy, each forwarded client has its own budget', async () => {
    const hub = await startTestHub({ env: { AUTH_REQUIRED: 'true', TRUST_PROXY: 'loopback' } });
    try {
      expect(await spend(hub, '203.0.113.10')).toEqual([429, 429]);
      // Another client behind the same proxy is not limited by the first.
      expect(await tokenRequest(hub, '203.0.113.11')).not.toBe(429);
    } finally {
      await hub.stop();
    }
  });

  test('with a hop count, a forged X-Forwarded-For that is no IP address is not the client’s address', async () => {
    const hub = await startTestHub({ env: { AUTH_REQUIRED: 'true', TRUST_PROXY: '1' } });
    try {
      const since = new Date(Date.now() - 1000).toISOString();
      const token = await clientToken(hub, 'xff-ehr', 'system/*.cruds');
      const forged = 'not-an-ip <b>x</b>';
      const created = await fhirFetch(`${hub.fhir}/Patient`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': forged },
        body: { resourceType: 'Patient', name: [{ family: 'Forwarded' }] },
      });
      expect(created.status).toBe(201);
      const reference = `Patient/${created.body.id}/_history/1`;
      const event = await until(
        async () =>
          (await auditEventsSince(hub, token, since)).find((e) =>
            (e.entity ?? []).some((entity: any) => entity.what?.reference === reference),
          ),
        'the create’s AuditEvent',
      );
      const requestor = event.agent.find((agent: any) => agent.requestor === true);
      expect(requestor.network.address).toMatch(/^(::ffff:)?127\.0\.0\.1$|^::1$/);
      // A new made-up "address" per request is one budget all the same: the socket's.
      expect(await spend(hub, (n) => `${forged} ${n}`)).toEqual([429, 429]);
    } finally {
      await hub.stop();
    }
  });

  test('without it, X-Forwarded-For is ignored: inventing addresses does not escape the limit', async () => {
    const hub = await startTestHub({ env: { AUTH_REQUIRED: 'true' } });
    try {
      expect(await spend(hub, (n) => `198.51.100.${n}`)).toEqual([429, 429]);
    } finally {
      await hub.stop();
    }
  });
});
