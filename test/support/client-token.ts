/**
 * A system client's access token from a test hub, obtained as SMART Backend Services do: the client
 * is registered in the hub's database with a key generated here, and a signed client assertion is
 * exchanged at the token endpoint over HTTP. Also the hub's AuditEvents since a moment, read as such
 * a client.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { ClientRegistry } from '../../src/auth/clients.ts';
import { parseClientScopes } from '../../src/auth/scopes.ts';
import { fhirFetch } from './test-hub.ts';
import type { TestHub } from './test-hub.ts';

/**
 * Registers `clientId` allowed `allowed` (system/ scopes and/or hub:admin) and returns a token for
 * `requested` (default: all of `allowed`).
 */
export async function clientToken(
  testHub: TestHub,
  clientId: string,
  allowed: string,
  requested = allowed,
): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  const scopes = parseClientScopes(allowed);
  await new ClientRegistry(testHub.hub.db).add({
    id: clientId,
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES384' }] },
    scopes: scopes.resources,
    hubAdmin: scopes.hubAdmin,
  });
  const tokenUrl = `${testHub.baseUrl}/oauth2/token`;
  // The hub checks the assertion's times on its own clock, which a test may have moved.
  const now = Math.floor(testHub.clock.now().getTime() / 1000);
  const assertion = await new SignJWT({
    iss: clientId,
    sub: clientId,
    aud: tokenUrl,
    exp: now + 240,
    iat: now,
    jti: randomUUID(),
  })
    .setProtectedHeader({ alg: 'ES384', kid: 'k1', typ: 'JWT' })
    .sign(privateKey);
  const response = await fetch(`${testHub.hub.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      scope: requested,
    }),
  });
  const body = (await response.json()) as { access_token?: string; error_description?: string };
  if (response.status !== 200 || body.access_token === undefined) {
    throw new Error(`token for ${clientId}: ${response.status} ${body.error_description}`);
  }
  return body.access_token;
}

/** Every AuditEvent recorded since `since` (ISO), read with `token` (which needs AuditEvent rs). */
export async function auditEventsSince(testHub: TestHub, token: string, since: string): Promise<any[]> {
  const events: any[] = [];
  let url: string | undefined = `${testHub.fhir}/AuditEvent?date=ge${encodeURIComponent(since)}&_count=200`;
  while (url) {
    const page = await fhirFetch(url, { headers: { authorization: `Bearer ${token}` } });
    if (page.status !== 200) {
      throw new Error(`AuditEvent search: ${page.status} ${JSON.stringify(page.body)}`);
    }
    events.push(...(page.body.entry ?? []).map((entry: { resource: unknown }) => entry.resource));
    url = page.body.link?.find((link: { relation: string; url: string }) => link.relation === 'next')?.url;
  }
  return events;
}
