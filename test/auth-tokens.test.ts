/**
 * SMART Backend Services against a real hub: client assertions signed with keys generated here,
 * the token endpoint's refusals, bearer tokens on /fhir and /dicomweb, JWKS by URL, discovery.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { ClientRegistry } from '../src/auth/clients.ts';
import { parseScopes } from '../src/auth/scopes.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { defined } from './support/defined.ts';

interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  alg: 'RS384' | 'ES384' | 'ES256';
  kid: string;
}

async function keyPair(alg: KeyPair['alg'], kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid }, alg, kid };
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

async function postForm(
  url: string,
  form: Record<string, string>,
): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

describe('SMART Backend Services', () => {
  let testHub: TestHub;
  let tokenUrl: string;
  let rsa: KeyPair;
  let ec: KeyPair;
  let stranger: KeyPair;
  let jwksServer: http.Server;
  let jwksUrl: string;
  let servedKeys: JWK[] = [];
  let jwksHits = 0;

  /** A client assertion as SMART Backend Services describes it, with `claims` and `header` overriding. */
  async function assertion(
    clientId: string,
    key: KeyPair,
    claims: Record<string, unknown> = {},
    header: Record<string, unknown> = {},
  ): Promise<string> {
    const now = nowSeconds();
    return new SignJWT({
      iss: clientId,
      sub: clientId,
      aud: tokenUrl,
      exp: now + 240,
      iat: now,
      jti: randomUUID(),
      ...claims,
    })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
      .sign(key.privateKey);
  }

  function requestToken(
    clientAssertion: string,
    scope = 'system/Patient.rs',
  ): Promise<{ status: number; headers: Headers; body: any }> {
    return postForm(tokenUrl, {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
      scope,
    });
  }

  async function accessToken(clientId: string, key: KeyPair, scope: string): Promise<string> {
    const response = await requestToken(await assertion(clientId, key), scope);
    expect(response.status).toBe(200);
    return response.body.access_token;
  }

  async function expectRefused(response: { status: number; body: any }, error: string, reason: RegExp): Promise<void> {
    expect({ status: response.status, error: response.body.error }).toEqual({
      status: error === 'invalid_client' ? 401 : 400,
      error,
    });
    expect(response.body.error_description).toMatch(reason);
    expect(response.body.access_token).toBeUndefined();
  }

  beforeAll(async () => {
    jwksServer = http.createServer((_req, res) => {
      jwksHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: servedKeys }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    testHub = await startTestHub();
    tokenUrl = `${testHub.baseUrl}/oauth2/token`;
    [rsa, ec, stranger] = await Promise.all([
      keyPair('RS384', 'rsa-1'),
      keyPair('ES384', 'ec-1'),
      keyPair('ES384', 'ec-1'),
    ]);
    const clients = new ClientRegistry(testHub.hub.db);
    await clients.add({
      id: 'ehr-rsa',
      jwks: { keys: [rsa.publicJwk] },
      scopes: parseScopes('system/Patient.rs system/ServiceRequest.cru'),
    });
    await clients.add({ id: 'ehr-ec', jwks: { keys: [ec.publicJwk] }, scopes: parseScopes('system/*.rs') });
    await clients.add({ id: 'ehr-off', jwks: { keys: [ec.publicJwk] }, scopes: parseScopes('system/*.rs') });
    await clients.setStatus('ehr-off', 'disabled');
    await clients.add({ id: 'ehr-admin', jwks: { keys: [ec.publicJwk] }, scopes: parseScopes('system/*.*') });
  });

  afterAll(async () => {
    await testHub?.stop();
    jwksServer?.closeAllConnections();
    await new Promise((resolve) => jwksServer?.close(resolve));
  });

  test('a valid RS384 assertion gets a 5-minute bearer token that reads /fhir/Patient', async () => {
    const response = await requestToken(await assertion('ehr-rsa', rsa), 'system/Patient.rs');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.body).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: 300,
      scope: 'system/Patient.rs',
    });
    expect(response.body.refresh_token).toBeUndefined();
    const patients = await fhirFetch(`${testHub.fhir}/Patient`, {
      headers: { authorization: `Bearer ${response.body.access_token}` },
    });
    expect(patients.status).toBe(200);
    expect(patients.body.resourceType).toBe('Bundle');
  });

  test('a valid ES384 assertion, v1 scopes mapped to v2', async () => {
    const response = await requestToken(await assertion('ehr-ec', ec), 'system/Patient.read system/Observation.read');
    expect(response.status).toBe(200);
    expect(response.body.scope).toBe('system/Observation.rs system/Patient.rs');
  });

  test('requested scopes are narrowed to the allowed ones; none allowed is invalid_scope', async () => {
    const narrowed = await requestToken(
      await assertion('ehr-rsa', rsa),
      'system/Patient.cruds system/Observation.rs system/ServiceRequest.*',
    );
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.scope).toBe('system/Patient.rs system/ServiceRequest.cru');
    await expectRefused(
      await requestToken(await assertion('ehr-rsa', rsa), 'system/Observation.rs'),
      'invalid_scope',
      /none of the requested scopes/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-rsa', rsa), 'patient/*.rs'),
      'invalid_scope',
      /only system\//,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-rsa', rsa), 'system/Patient.rs?gender=female'),
      'invalid_scope',
      /query parameters/,
    );
  });

  test('refused: expired, not yet valid, wrong aud, lifetime over 5 minutes', async () => {
    const now = nowSeconds();
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { exp: now - 120, iat: now - 400 })),
      'invalid_client',
      /expired/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { nbf: now + 200, exp: now + 290 })),
      'invalid_client',
      /not valid yet/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { iat: now + 200, exp: now + 290 })),
      'invalid_client',
      /not valid yet/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { aud: `${testHub.fhir}` })),
      'invalid_client',
      /"aud" must be the token endpoint/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { exp: now + 600 })),
      'invalid_client',
      /at most 300 seconds/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { exp: undefined })),
      'invalid_client',
      /"exp" is required/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { jti: undefined })),
      'invalid_client',
      /"jti" is required/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec, { sub: 'someone-else' })),
      'invalid_client',
      /"iss" and "sub"/,
    );
  });

  test('refused: a key not in the JWKS, alg none, HS256 keyed with the public key, a tampered signature', async () => {
    // Same kid as the registered key, other key material.
    await expectRefused(
      await requestToken(await assertion('ehr-ec', stranger)),
      'invalid_client',
      /signature does not verify/,
    );
    await expectRefused(
      await requestToken(await assertion('ehr-ec', stranger, {}, { kid: 'unknown-kid' })),
      'invalid_client',
      /no registered key/,
    );
    // An ES384 key's signature presented as RS384: the algorithm must match the key type.
    await expectRefused(
      await requestToken(await assertion('ehr-ec', { ...rsa, kid: 'ec-1' })),
      'invalid_client',
      /no registered key/,
    );

    const now = nowSeconds();
    const claims = { iss: 'ehr-ec', sub: 'ehr-ec', aud: tokenUrl, exp: now + 240, jti: randomUUID() };
    await expectRefused(await requestToken(new UnsecuredJWT(claims).encode()), 'invalid_client', /alg "none"/);
    const publicPem = await exportSPKI(ec.publicKey);
    const hmac = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: 'ec-1' })
      .sign(new TextEncoder().encode(publicPem));
    await expectRefused(await requestToken(hmac), 'invalid_client', /HMAC/);

    const parts = (await assertion('ehr-ec', ec)).split('.');
    expect(parts).toHaveLength(3);
    const [header, payload, signature] = parts as [string, string, string];
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    await expectRefused(
      await requestToken([header, payload, flipped].join('.')),
      'invalid_client',
      /signature does not verify/,
    );
    const otherPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), jti: randomUUID() }),
    ).toString('base64url');
    await expectRefused(
      await requestToken([header, otherPayload, signature].join('.')),
      'invalid_client',
      /signature does not verify/,
    );
  });

  test('refused: a replayed jti, a disabled client, an unknown client', async () => {
    const once = await assertion('ehr-ec', ec);
    expect((await requestToken(once)).status).toBe(200);
    await expectRefused(await requestToken(once), 'invalid_client', /replayed/);
    await expectRefused(
      await requestToken(await assertion('ehr-off', ec)),
      'invalid_client',
      /unknown or disabled client/,
    );
    await expectRefused(
      await requestToken(await assertion('nobody', ec)),
      'invalid_client',
      /unknown or disabled client/,
    );
  });

  test('malformed token requests', async () => {
    await expectRefused(
      await postForm(tokenUrl, { grant_type: 'password', username: 'x' }),
      'unsupported_grant_type',
      /client_credentials/,
    );
    // authorization_code is people's login (auth-login.test.ts); without its parameters it is malformed.
    await expectRefused(
      await postForm(tokenUrl, { grant_type: 'authorization_code', code: 'x' }),
      'invalid_request',
      /"client_id" parameter is required/,
    );
    await expectRefused(await postForm(tokenUrl, { scope: 'system/*.rs' }), 'invalid_request', /grant_type/);
    await expectRefused(
      await postForm(tokenUrl, { grant_type: 'client_credentials', client_secret: 'x' }),
      'invalid_client',
      /client_assertion/,
    );
    await expectRefused(await requestToken('not-a-jwt'), 'invalid_client', /not a signed JWT/);
    await expectRefused(
      await requestToken(await assertion('ehr-ec', ec), ''),
      'invalid_request',
      /"scope" parameter is required/,
    );
    const json = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect({ status: json.status, body: await json.json() }).toMatchObject({
      status: 400,
      body: { error: 'invalid_request' },
    });
    const get = await fetch(tokenUrl);
    expect(get.status).toBe(405);
  });

  test('bearer tokens on /fhir: expired or foreign → 401 invalid_token; scopes enforced with 403', async () => {
    // An access token signed with the hub's own key, but expired.
    const row = defined(
      (await testHub.hub.db.query<{ kid: string; private_jwk: JWK }>('SELECT kid, private_jwk FROM auth_signing_key'))
        .rows[0],
      "the hub's signing key",
    );
    const hubKey = await importJWK(
      typeof row.private_jwk === 'string' ? JSON.parse(row.private_jwk) : row.private_jwk,
      'ES256',
    );
    const now = nowSeconds();
    const expired = await new SignJWT({ client_id: 'ehr-ec', scope: 'system/*.rs' })
      .setProtectedHeader({ alg: 'ES256', kid: row.kid, typ: 'at+jwt' })
      .setIssuer(testHub.baseUrl)
      .setAudience(testHub.baseUrl)
      .setSubject('ehr-ec')
      .setIssuedAt(now - 900)
      .setExpirationTime(now - 600)
      .setJti(randomUUID())
      .sign(hubKey);
    const refused = await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: `Bearer ${expired}` } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
    expect(refused.body).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ code: 'login', details: { text: expect.stringMatching(/expired/) } }],
    });

    // A token signed by anyone else (a client's own key) is not ours.
    const forged = await new SignJWT({ scope: 'system/*.cruds' })
      .setProtectedHeader({ alg: 'ES384', kid: row.kid, typ: 'at+jwt' })
      .setIssuer(testHub.baseUrl)
      .setAudience(testHub.baseUrl)
      .setSubject('ehr-ec')
      .setExpirationTime(now + 60)
      .sign(ec.privateKey);
    expect(
      (await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: `Bearer ${forged}` } })).status,
    ).toBe(401);
    expect(
      (await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).status,
    ).toBe(401);
    expect(
      (await fhirFetch(`${testHub.baseUrl}/dicomweb/studies`, { headers: { authorization: `Bearer ${expired}` } }))
        .status,
    ).toBe(401);

    const token = await accessToken('ehr-rsa', rsa, 'system/Patient.rs system/ServiceRequest.cru');
    const auth = { authorization: `Bearer ${token}` };
    const observations = await fhirFetch(`${testHub.fhir}/Observation`, { headers: auth });
    expect(observations.status).toBe(403);
    expect(observations.body).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ code: 'forbidden', details: { text: expect.stringMatching(/search on Observation/) } }],
    });
    expect(
      (await fhirFetch(`${testHub.fhir}/Patient`, { method: 'POST', headers: auth, body: { resourceType: 'Patient' } }))
        .status,
    ).toBe(403);
    // ServiceRequest.cru: read passes the guard (404: there is none), search does not.
    expect((await fhirFetch(`${testHub.fhir}/ServiceRequest/none`, { headers: auth })).status).toBe(404);
    expect((await fhirFetch(`${testHub.fhir}/ServiceRequest?status=active`, { headers: auth })).status).toBe(403);
    const transaction = await fhirFetch(`${testHub.fhir}`, {
      method: 'POST',
      headers: auth,
      body: { resourceType: 'Bundle', type: 'transaction', entry: [] },
    });
    expect(transaction.status).toBe(403);
    expect(transaction.body.issue[0].details.text).toMatch(/Batch and transaction/);
    // The CapabilityStatement needs no token.
    expect(
      (await fhirFetch(`${testHub.fhir}/metadata`, { headers: { authorization: `Bearer ${expired}` } })).status,
    ).toBe(200);

    // A client with every right may create, and send a transaction.
    const adminAuth = { authorization: `Bearer ${await accessToken('ehr-admin', ec, 'system/*.cruds')}` };
    const created = await fhirFetch(`${testHub.fhir}/Patient`, {
      method: 'POST',
      headers: adminAuth,
      body: { resourceType: 'Patient', active: true },
    });
    expect(created.status).toBe(201);
    expect((await fhirFetch(`${testHub.fhir}/Patient/${created.body.id}`, { headers: auth })).status).toBe(200);
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }],
    };
    expect((await fhirFetch(`${testHub.fhir}`, { method: 'POST', headers: adminAuth, body: bundle })).status).toBe(200);
  });

  test('anonymous requests are served while AUTH_REQUIRED is false', async () => {
    expect((await fhirFetch(`${testHub.fhir}/Patient`)).status).toBe(200);
  });

  test('a JWKS by URL: fetched, cached, refetched once for a new kid, not again within a minute', async () => {
    const [first, second, third] = await Promise.all([
      keyPair('ES384', 'url-1'),
      keyPair('RS384', 'url-2'),
      keyPair('ES384', 'url-3'),
    ]);
    servedKeys = [first.publicJwk];
    await new ClientRegistry(testHub.hub.db).add({ id: 'ehr-url', jwksUrl, scopes: parseScopes('system/*.rs') });
    jwksHits = 0;
    expect((await requestToken(await assertion('ehr-url', first))).status).toBe(200);
    expect((await requestToken(await assertion('ehr-url', first))).status).toBe(200);
    expect(jwksHits).toBe(1);

    // The client rotates: a key the cached set lacks makes the hub fetch again.
    servedKeys = [first.publicJwk, second.publicJwk];
    expect((await requestToken(await assertion('ehr-url', second))).status).toBe(200);
    expect(jwksHits).toBe(2);
    expect((await requestToken(await assertion('ehr-url', second))).status).toBe(200);
    expect(jwksHits).toBe(2);

    // Another new kid within the minute: no fetch, refused.
    servedKeys = [first.publicJwk, second.publicJwk, third.publicJwk];
    await expectRefused(await requestToken(await assertion('ehr-url', third)), 'invalid_client', /no registered key/);
    expect(jwksHits).toBe(2);
  });

  test('/.well-known/smart-configuration, at the root and under /fhir, and the CapabilityStatement', async () => {
    for (const url of [
      `${testHub.baseUrl}/.well-known/smart-configuration`,
      `${testHub.fhir}/.well-known/smart-configuration`,
    ]) {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      const configuration = (await response.json()) as any;
      // People's login (authorization_endpoint, PKCE, user/ scopes) is checked in auth-login.test.ts.
      expect(configuration).toMatchObject({
        token_endpoint: tokenUrl,
        token_endpoint_auth_methods_supported: expect.arrayContaining(['private_key_jwt']),
        token_endpoint_auth_signing_alg_values_supported: expect.arrayContaining(['RS384', 'ES384']),
        grant_types_supported: expect.arrayContaining(['client_credentials']),
        scopes_supported: expect.arrayContaining(['system/*.rs']),
        capabilities: expect.arrayContaining(['client-confidential-asymmetric', 'permission-v2', 'permission-v1']),
      });
    }
    const metadata = await fhirFetch(`${testHub.fhir}/metadata`);
    const security = metadata.body.rest[0].security;
    expect(security.service[0].coding[0]).toEqual({
      system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
      code: 'SMART-on-FHIR',
    });
    expect(security.extension[0]).toEqual({
      url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
      extension: expect.arrayContaining([{ url: 'token', valueUri: tokenUrl }]),
    });
    expect(security.description).toMatch(/does not require a token/);
  });
});

describe('AUTH_REQUIRED=true', () => {
  let testHub: TestHub;

  beforeAll(async () => {
    testHub = await startTestHub({ env: { AUTH_REQUIRED: 'true' } });
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  test('anonymous requests to /fhir and /dicomweb are refused; health, discovery and metadata stay open', async () => {
    const anonymous = await fhirFetch(`${testHub.fhir}/Patient`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(anonymous.body.resourceType).toBe('OperationOutcome');
    expect((await fetch(`${testHub.baseUrl}/dicomweb/studies`)).status).toBe(401);
    for (const path of [
      '/healthz',
      '/livez',
      '/.well-known/smart-configuration',
      '/fhir/.well-known/smart-configuration',
      '/fhir/metadata',
    ]) {
      expect({ path, status: (await fetch(`${testHub.baseUrl}${path}`)).status }).toEqual({ path, status: 200 });
    }
    const metadata = await fhirFetch(`${testHub.fhir}/metadata`);
    expect(metadata.body.rest[0].security.description).toMatch(/needs a Bearer access token/);

    const key = await keyPair('ES384', 'k');
    await new ClientRegistry(testHub.hub.db).add({
      id: 'ehr',
      jwks: { keys: [key.publicJwk] },
      scopes: parseScopes('system/*.rs'),
    });
    const now = nowSeconds();
    const tokenUrl = `${testHub.baseUrl}/oauth2/token`;
    const clientAssertion = await new SignJWT({
      iss: 'ehr',
      sub: 'ehr',
      aud: tokenUrl,
      exp: now + 120,
      jti: randomUUID(),
    })
      .setProtectedHeader({ alg: 'ES384', kid: 'k' })
      .sign(key.privateKey);
    const token = await postForm(tokenUrl, {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
      scope: 'system/*.rs',
    });
    expect(token.status).toBe(200);
    expect(
      (await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: `Bearer ${token.body.access_token}` } }))
        .status,
    ).toBe(200);
  });
});

describe('two hub processes on one database, behind one BASE_URL', () => {
  let first: TestHub;
  let second: TestHub;
  const baseUrl = 'https://hub.example.org';

  beforeAll(async () => {
    first = await startTestHub({ db: 'postgres', env: { BASE_URL: baseUrl } });
    second = await startTestHub({
      db: 'postgres',
      env: { BASE_URL: baseUrl, DATABASE_URL: first.databaseUrl as string },
    });
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
  });

  test('a token issued by one is accepted by the other; a jti used at one is refused at the other', async () => {
    const key = await keyPair('ES384', 'k');
    await new ClientRegistry(first.hub.db).add({
      id: 'ehr',
      jwks: { keys: [key.publicJwk] },
      scopes: parseScopes('system/*.rs'),
    });
    const now = nowSeconds();
    const clientAssertion = await new SignJWT({
      iss: 'ehr',
      sub: 'ehr',
      aud: `${baseUrl}/oauth2/token`,
      exp: now + 120,
      jti: randomUUID(),
    })
      .setProtectedHeader({ alg: 'ES384', kid: 'k' })
      .sign(key.privateKey);
    const form = {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
      scope: 'system/Patient.rs',
    };
    const token = await postForm(`${first.hub.url}/oauth2/token`, form);
    expect(token.status).toBe(200);
    const replay = await postForm(`${second.hub.url}/oauth2/token`, form);
    expect({ status: replay.status, error: replay.body.error }).toEqual({ status: 401, error: 'invalid_client' });
    expect(replay.body.error_description).toMatch(/replayed/);
    const read = await fhirFetch(`${second.hub.url}/fhir/Patient`, {
      headers: { authorization: `Bearer ${token.body.access_token}` },
    });
    expect(read.status).toBe(200);
  });
});
