/** The JWKS URL cache against a real local HTTP server, with a clock the test moves. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { JwksFetchError, JwksUrlCache, cacheMaxAgeMs, checkJwksUrl } from './jwks-url-cache.ts';

async function key(kid: string) {
  const { publicKey } = await generateKeyPair('ES384', { extractable: true });
  return { ...(await exportJWK(publicKey)), kid };
}

describe('JwksUrlCache', () => {
  let server: http.Server;
  let url: string;
  let body: string;
  let headers: Record<string, string>;
  let hits = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits++;
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/jwks' }).end();
        return;
      }
      if (req.url === '/huge') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"keys":[],"padding":"${'x'.repeat(200_000)}"}`);
        return;
      }
      if (req.url === '/slow') {
        // Time, not an event: a server slower than the cache's timeout (500 ms below); nobody waits for it.
        setTimeout(() => res.end(body), 2000);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('cached for the max-age (bounded below by a minute), refetched after', async () => {
    body = JSON.stringify({ keys: [await key('k1')] });
    headers = { 'cache-control': 'public, max-age=120' };
    let now = 1_000_000;
    const cache = new JwksUrlCache({ now: () => now });
    hits = 0;
    expect((await cache.get(`${url}/jwks`)).keys[0]?.kid).toBe('k1');
    body = JSON.stringify({ keys: [await key('k2')] });
    now += 119_000;
    expect((await cache.get(`${url}/jwks`)).keys[0]?.kid).toBe('k1');
    expect(hits).toBe(1);
    now += 2_000;
    expect((await cache.get(`${url}/jwks`)).keys[0]?.kid).toBe('k2');
    expect(hits).toBe(2);
  });

  test('a refresh forced by an unknown kid happens at most once a minute', async () => {
    body = JSON.stringify({ keys: [await key('k1')] });
    headers = {};
    let now = 5_000_000;
    const cache = new JwksUrlCache({ now: () => now });
    await cache.get(`${url}/jwks`);
    body = JSON.stringify({ keys: [await key('k2')] });
    expect((await cache.refresh(`${url}/jwks`))?.keys[0]?.kid).toBe('k2');
    body = JSON.stringify({ keys: [await key('k3')] });
    now += 30_000;
    expect(await cache.refresh(`${url}/jwks`)).toBeUndefined();
    expect((await cache.get(`${url}/jwks`)).keys[0]?.kid).toBe('k2');
    now += 31_000;
    expect((await cache.refresh(`${url}/jwks`))?.keys[0]?.kid).toBe('k3');
  });

  test('a failed refetch keeps the last good set', async () => {
    body = JSON.stringify({ keys: [await key('k1')] });
    headers = {};
    let now = 9_000_000;
    const cache = new JwksUrlCache({ now: () => now });
    await cache.get(`${url}/jwks`);
    body = 'not json';
    now += 2 * 60 * 60 * 1000;
    expect((await cache.get(`${url}/jwks`)).keys[0]?.kid).toBe('k1');
  });

  test('bounded: size, time, no redirects, valid content, https or localhost', async () => {
    const cache = new JwksUrlCache({ timeoutMs: 500 });
    await expect(cache.get(`${url}/huge`)).rejects.toThrow(/larger than 65536 bytes/);
    await expect(cache.get(`${url}/slow`)).rejects.toThrow(JwksFetchError);
    await expect(cache.get(`${url}/redirect`)).rejects.toThrow(JwksFetchError);
    body = JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] });
    await expect(cache.get(`${url}/private`)).rejects.toThrow(/private key material/);
    expect(() => checkJwksUrl('http://keys.example.org/jwks')).toThrow(/https/);
    expect(checkJwksUrl('https://keys.example.org/jwks').hostname).toBe('keys.example.org');
  });

  test('a URL that fails is not fetched again within a minute', async () => {
    let now = 20_000_000;
    const cache = new JwksUrlCache({ now: () => now });
    body = 'not json';
    headers = {};
    hits = 0;
    await expect(cache.get(`${url}/jwks`)).rejects.toThrow(/not JSON/);
    await expect(cache.get(`${url}/jwks`)).rejects.toThrow(/not JSON/);
    expect(hits).toBe(1);
    body = JSON.stringify({ keys: [await key('k1')] });
    now += 60_000;
    expect((await cache.get(`${url}/jwks`)).keys[0]?.kid).toBe('k1');
    expect(hits).toBe(2);
  });

  test('Cache-Control max-age', () => {
    expect(cacheMaxAgeMs('public, max-age=300')).toBe(300_000);
    expect(cacheMaxAgeMs('no-store')).toBe(0);
    expect(cacheMaxAgeMs(null)).toBeUndefined();
  });
});
