/**
 * `npx hub client …` as an operator runs it: a real process on the hub's database, PostgreSQL while
 * the hub runs, and the embedded PGlite database while it is stopped (and refused while it runs).
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { runHubCli as hub } from './support/hub-cli.ts';

async function keyPair(
  alg: 'RS384' | 'ES384',
  kid: string,
): Promise<{ privateKey: CryptoKey; publicJwk: JWK; privateJwk: JWK; alg: string; kid: string }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    privateKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid },
    privateJwk: { ...(await exportJWK(privateKey)), kid },
    alg,
    kid,
  };
}

async function requestToken(
  baseUrl: string,
  clientId: string,
  key: { privateKey: CryptoKey; alg: string; kid: string },
  scope: string,
) {
  const tokenUrl = `${baseUrl}/oauth2/token`;
  const now = Math.floor(Date.now() / 1000);
  const clientAssertion = await new SignJWT({
    iss: clientId,
    sub: clientId,
    aud: tokenUrl,
    exp: now + 240,
    iat: now,
    jti: randomUUID(),
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .sign(key.privateKey);
  const response = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
      scope,
    }),
  });
  return { status: response.status, body: (await response.json()) as any };
}

describe('hub client … on PostgreSQL, while the hub runs', () => {
  let testHub: TestHub;
  let env: Record<string, string>;
  let workDir: string;
  let jwksServer: http.Server;
  let jwksUrl: string;
  let servedKeys: JWK[] = [];

  beforeAll(async () => {
    testHub = await startTestHub({ db: 'postgres' });
    env = { DATABASE_URL: testHub.databaseUrl as string, BASE_URL: testHub.baseUrl };
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-cli-'));
    jwksServer = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: servedKeys })),
    );
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(async () => {
    await testHub?.stop();
    await fs.rm(workDir, { recursive: true, force: true });
    jwksServer?.closeAllConnections();
    await new Promise((resolve) => jwksServer?.close(resolve));
  });

  test('add (JWKS file and JWKS URL), list, disable, enable', async () => {
    const rsa = await keyPair('RS384', 'rsa-1');
    const jwksFile = path.join(workDir, 'ehr.jwks.json');
    await fs.writeFile(jwksFile, JSON.stringify({ keys: [rsa.publicJwk] }));
    const added = await hub(
      [
        'client',
        'add',
        '--id',
        'ehr-file',
        '--jwks',
        jwksFile,
        '--scope',
        'system/Patient.rs system/ServiceRequest.cru',
      ],
      env,
      // As an operator types it, once: the other calls run the same bin/hub.js without npx.
      { viaNpx: true },
    );
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toContain('Registered client ehr-file (active)');
    expect(added.stdout).toContain(`Token endpoint: ${testHub.baseUrl}/oauth2/token`);

    const token = await requestToken(testHub.baseUrl, 'ehr-file', rsa, 'system/Patient.rs');
    expect(token.status).toBe(200);
    expect(
      (await fhirFetch(`${testHub.fhir}/Patient`, { headers: { authorization: `Bearer ${token.body.access_token}` } }))
        .status,
    ).toBe(200);

    const ec = await keyPair('ES384', 'ec-1');
    servedKeys = [ec.publicJwk];
    const byUrl = await hub(
      ['client', 'add', '--id', 'ehr-url', '--jwks-url', jwksUrl, '--scope', 'system/*.read'],
      env,
    );
    expect(byUrl.code).toBe(0);
    expect(byUrl.stdout).toContain(`JWKS URL ${jwksUrl}`);
    expect(byUrl.stdout).toContain('scopes: system/*.rs');
    expect((await requestToken(testHub.baseUrl, 'ehr-url', ec, 'system/Observation.rs')).status).toBe(200);
    // The spelling, --jwks URL, registers by URL too.
    const urlAsJwks = await hub(
      ['client', 'add', '--id', 'ehr-url-2', '--jwks', jwksUrl, '--scope', 'system/Observation.rs'],
      env,
    );
    expect(urlAsJwks.code).toBe(0);
    expect(urlAsJwks.stdout).toContain(`JWKS URL ${jwksUrl}`);

    const list = await hub(['client', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      /^ehr-file\s+active\s+system\/Patient\.rs system\/ServiceRequest\.cru\s+inline JWKS, 1 key \(kid rsa-1\)/m,
    );
    expect(list.stdout).toMatch(/^ehr-url\s+active\s+system\/\*\.rs\s+JWKS URL/m);
    const json = JSON.parse((await hub(['client', 'list', '--json'], env)).stdout);
    // hub-dashboard: the web app's client, which the hub registers for itself.
    expect(json.map((client: { id: string }) => client.id)).toEqual([
      'ehr-file',
      'ehr-url',
      'ehr-url-2',
      'hub-dashboard',
    ]);

    const disabled = await hub(['client', 'disable', '--id', 'ehr-file'], env);
    expect(disabled).toMatchObject({ code: 0 });
    expect(disabled.stdout).toContain('Disabled client ehr-file');
    expect(await requestToken(testHub.baseUrl, 'ehr-file', rsa, 'system/Patient.rs')).toMatchObject({
      status: 401,
      body: { error: 'invalid_client' },
    });
    expect((await hub(['client', 'enable', '--id', 'ehr-file'], env)).code).toBe(0);
    expect((await requestToken(testHub.baseUrl, 'ehr-file', rsa, 'system/Patient.rs')).status).toBe(200);
  }, 180_000);

  test('--scope accepts hub:admin, alone or beside system/ scopes; its token opens /admin/queues and /metrics', async () => {
    const key = await keyPair('ES384', 'ops-1');
    const jwksFile = path.join(workDir, 'ops.jwks.json');
    await fs.writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
    const added = await hub(
      ['client', 'add', '--id', 'ops-tool', '--jwks', jwksFile, '--scope', 'hub:admin system/Patient.rs'],
      env,
    );
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toContain('scopes: system/Patient.rs hub:admin');
    expect(
      (await hub(['client', 'add', '--id', 'scraper', '--jwks', jwksFile, '--scope', 'hub:admin'], env)).code,
    ).toBe(0);
    const list = await hub(['client', 'list'], env);
    expect(list.stdout).toMatch(/^scraper\s+active\s+hub:admin\s+inline JWKS/m);
    const bad = await hub(['client', 'add', '--id', 'x', '--jwks', jwksFile, '--scope', 'hub:root'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/"hub:root" is not a SMART scope.*hub:admin/);

    const token = await requestToken(testHub.baseUrl, 'scraper', key, 'hub:admin');
    expect(token).toMatchObject({ status: 200, body: { scope: 'hub:admin' } });
    const metrics = await fetch(`${testHub.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${token.body.access_token}` },
    });
    expect(metrics.status).toBe(200);
    await metrics.arrayBuffer();
  }, 120_000);

  test('refusals: clear messages and exit status 1 (failed) or 2 (wrong usage)', async () => {
    const key = await keyPair('ES384', 'k');
    const publicFile = path.join(workDir, 'public.json');
    const privateFile = path.join(workDir, 'private.json');
    await fs.writeFile(publicFile, JSON.stringify({ keys: [key.publicJwk] }));
    await fs.writeFile(privateFile, JSON.stringify({ keys: [key.privateJwk] }));
    const cases: [string[], number, RegExp][] = [
      [['client', 'add', '--id', 'x', '--jwks', privateFile, '--scope', 'system/*.rs'], 1, /private key material/],
      [
        ['client', 'add', '--id', 'x', '--jwks', path.join(workDir, 'missing.json'), '--scope', 'system/*.rs'],
        1,
        /cannot read .*ENOENT/,
      ],
      [
        ['client', 'add', '--id', 'x', '--jwks', publicFile, '--scope', 'system/Patinet.rs'],
        2,
        /"Patinet" is not a FHIR R4 resource type/,
      ],
      [['client', 'add', '--id', 'x', '--jwks', publicFile, '--scope', 'patient/*.rs'], 2, /only system\//],
      [['client', 'add', '--id', 'x', '--jwks', publicFile], 2, /--scope is required/],
      [
        ['client', 'add', '--id', 'x', '--jwks', publicFile, '--jwks-url', jwksUrl, '--scope', 'system/*.rs'],
        2,
        /exactly one of --jwks/,
      ],
      [
        ['client', 'add', '--id', 'x', '--jwks', jwksUrl, '--jwks-url', jwksUrl, '--scope', 'system/*.rs'],
        2,
        /exactly one of --jwks/,
      ],
      [
        ['client', 'add', '--id', 'x', '--jwks-url', 'http://keys.example.org/jwks', '--scope', 'system/*.rs'],
        2,
        /https/,
      ],
      [['client', 'add', '--id', 'bad id', '--jwks', publicFile, '--scope', 'system/*.rs'], 1, /client id/],
      [['client', 'disable', '--id', 'nobody'], 1, /no client with id "nobody"/],
      [['client', 'remove', '--id', 'x'], 2, /unknown client command "remove"/],
      [['client', 'list', '--bogus'], 2, /Unknown option '--bogus'/],
      [['frobnicate'], 2, /unknown command "frobnicate"/],
    ];
    for (const [args, code, message] of cases) {
      const result = await hub(args, env);
      expect({ args, code: result.code }).toEqual({ args, code });
      expect(result.stderr).toMatch(message);
    }
    expect(
      (await hub(['client', 'add', '--id', 'dup', '--jwks', publicFile, '--scope', 'system/*.rs'], env)).code,
    ).toBe(0);
    const duplicate = await hub(['client', 'add', '--id', 'dup', '--jwks', publicFile, '--scope', 'system/*.rs'], env);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/already registered/);
  }, 240_000);
});

describe('hub client … on the embedded database', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-cli-pglite-'));
  });
  afterAll(async () => {
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('works while the hub is stopped, is refused while it runs', async () => {
    const key = await keyPair('ES384', 'k');
    const jwksFile = path.join(dataDir, 'client.jwks.json');
    await fs.writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
    const env = { DATA_DIR: dataDir };
    const added = await hub(
      ['client', 'add', '--id', 'pacs', '--jwks', jwksFile, '--scope', 'system/ImagingStudy.rs'],
      env,
    );
    expect(added.code).toBe(0);

    const testHub = await startTestHub({ db: 'pglite', env: { DATA_DIR: dataDir } });
    try {
      const token = await requestToken(testHub.baseUrl, 'pacs', key, 'system/ImagingStudy.rs');
      expect(token).toMatchObject({ status: 200, body: { scope: 'system/ImagingStudy.rs' } });
      const refused = await hub(['client', 'list'], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/open in a running hub/);
    } finally {
      await testHub.stop();
    }
    const list = await hub(['client', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^pacs\s+active\s+system\/ImagingStudy\.rs/m);
  }, 240_000);
});
