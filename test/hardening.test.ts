/**
 * Hardening, against a real hub with AUTH_REQUIRED=true and one configured CORS origin: security
 * headers on every API, CORS only for configured origins (preflights with Authorization included),
 * the operator views (/admin/queues, /metrics) only for admins, coordinators and system clients granted
 * hub:admin (which no SMART scope implies), DICOMweb scope
 * checks, request body limits, and a CSRF comparison that does not fall over on multi-byte input.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stowBody } from './support/stow.ts';
import { clientToken } from './support/client-token.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';
import { userToken } from './support/user-token.ts';

const VIEWER = 'https://viewer.example.org';
const STRANGER = 'https://evil.example';
const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const FHIR_MAX_BODY_BYTES = 64 * 1024;

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

const stowBodyOf = async (file: string): Promise<{ contentType: string; bytes: Uint8Array }> =>
  stowBody([await readFile(join(TEST_FILES, file))]);

describe('hardening', () => {
  let testHub: TestHub;
  let admin: string;
  let coordinator: string;
  let specialist: string;
  /** A person's token that may read and search ImagingStudy, and nothing else. */
  let imagingReader: string;
  /** A person's token that may also create ImagingStudy (STOW). */
  let imagingWriter: string;

  beforeAll(async () => {
    testHub = await startTestHub({
      db: 'postgres',
      env: {
        AUTH_REQUIRED: 'true',
        CORS_ALLOWED_ORIGINS: `${VIEWER}, http://localhost:3000`,
        FHIR_MAX_BODY_BYTES: String(FHIR_MAX_BODY_BYTES),
      },
    });
    admin = await userToken(testHub, 'admin');
    coordinator = await userToken(testHub, 'coordinator');
    specialist = await userToken(testHub, 'specialist');
    imagingReader = await userToken(testHub, 'radiologist', 'user/ImagingStudy.rs');
    imagingWriter = await userToken(testHub, 'coordinator', 'user/ImagingStudy.crs');
  });
  afterAll(async () => {
    await testHub?.stop();
  });

  describe('security headers', () => {
    test('on /fhir, /dicomweb, /oauth2 and /.well-known answers, whatever their status', async () => {
      const responses = {
        fhir: await fetch(`${testHub.fhir}/metadata`),
        fhirUnauthorized: await fetch(`${testHub.fhir}/Patient`),
        dicomweb: await fetch(`${testHub.baseUrl}/dicomweb/studies`, { headers: bearer(imagingReader) }),
        token: await fetch(`${testHub.baseUrl}/oauth2/token`),
        discovery: await fetch(`${testHub.baseUrl}/.well-known/smart-configuration`),
      };
      expect(responses.fhir.status).toBe(200);
      expect(responses.fhirUnauthorized.status).toBe(401);
      expect(responses.dicomweb.status).toBe(200);
      expect(responses.token.status).toBe(405);
      for (const [name, response] of Object.entries(responses)) {
        await response.arrayBuffer();
        expect({
          name,
          headers: {
            csp: response.headers.get('content-security-policy'),
            nosniff: response.headers.get('x-content-type-options'),
            frame: response.headers.get('x-frame-options'),
            referrer: response.headers.get('referrer-policy'),
            coop: response.headers.get('cross-origin-opener-policy'),
            corp: response.headers.get('cross-origin-resource-policy'),
            poweredBy: response.headers.get('x-powered-by'),
          },
        }).toEqual({
          name,
          headers: {
            csp: expect.stringContaining("default-src 'none'"),
            nosniff: 'nosniff',
            frame: 'DENY',
            referrer: 'no-referrer',
            coop: 'same-origin',
            // Cross-origin-isolated viewers load DICOMweb responses; nothing else is for other sites.
            corp: name === 'dicomweb' ? 'cross-origin' : 'same-origin',
            poweredBy: null,
          },
        });
      }
      // HSTS only for an https BASE_URL; this hub is http.
      expect(responses.fhir.headers.get('strict-transport-security')).toBeNull();
    });

    test('the login page keeps its own CSP, which allows its stylesheet and its form', async () => {
      const response = await fetch(
        `${testHub.baseUrl}/oauth2/authorize?${new URLSearchParams({
          response_type: 'code',
          client_id: 'test-user-token-app',
          redirect_uri: 'http://127.0.0.1:5173/callback',
          scope: 'openid',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          state: 's',
        })}`,
      );
      expect(response.status).toBe(200);
      await response.text();
      expect(response.headers.get('content-security-policy')).toMatch(/style-src 'sha256-[^']+'; form-action /);
      expect(response.headers.get('x-frame-options')).toBe('DENY');
    });
  });

  describe('CORS: only configured origins', () => {
    const preflight = (url: string, origin: string, method = 'GET'): Promise<Response> =>
      fetch(url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': method,
          'access-control-request-headers': 'authorization, content-type',
        },
      });

    test('a preflight from a configured origin is allowed with Authorization; from another origin it is refused', async () => {
      const targets: [string, string][] = [
        [`${testHub.fhir}/Patient`, 'POST'],
        [`${testHub.baseUrl}/dicomweb/studies`, 'GET'],
        [`${testHub.baseUrl}/oauth2/token`, 'POST'],
        [`${testHub.baseUrl}/.well-known/smart-configuration`, 'GET'],
      ];
      for (const [url, method] of targets) {
        const allowed = await preflight(url, VIEWER, method);
        expect({ url, status: allowed.status }).toEqual({ url, status: 204 });
        expect(allowed.headers.get('access-control-allow-origin')).toBe(VIEWER);
        expect(allowed.headers.get('access-control-allow-methods')).toContain(method);
        expect(allowed.headers.get('access-control-allow-headers')).toMatch(/\bAuthorization\b/);
        expect(allowed.headers.get('access-control-allow-headers')).toMatch(/\bContent-Type\b/);
        expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();
        expect(allowed.headers.get('vary')).toMatch(/\bOrigin\b/);

        const refused = await preflight(url, STRANGER, method);
        await refused.arrayBuffer();
        expect({ url, status: refused.status }).toEqual({ url, status: 403 });
        expect(refused.headers.get('access-control-allow-origin')).toBeNull();
        expect(refused.headers.get('access-control-allow-methods')).toBeNull();
        expect(refused.headers.get('vary')).toMatch(/\bOrigin\b/);
      }
      // The second configured origin is allowed too; an origin differing only in scheme or port is not.
      expect(
        (await preflight(`${testHub.fhir}/Patient`, 'http://localhost:3000')).headers.get(
          'access-control-allow-origin',
        ),
      ).toBe('http://localhost:3000');
      for (const near of [
        'http://viewer.example.org',
        'https://viewer.example.org:8443',
        'http://localhost:3001',
        'null',
      ]) {
        expect({
          near,
          acao: (await preflight(`${testHub.fhir}/Patient`, near)).headers.get('access-control-allow-origin'),
        }).toEqual({ near, acao: null });
      }
    });

    test('actual requests: the configured origin may read answers, refusals included; another origin gets no ACAO', async () => {
      const read = await fetch(`${testHub.baseUrl}/dicomweb/studies`, {
        headers: { origin: VIEWER, ...bearer(imagingReader) },
      });
      await read.arrayBuffer();
      expect(read.status).toBe(200);
      expect(read.headers.get('access-control-allow-origin')).toBe(VIEWER);
      expect(read.headers.get('access-control-expose-headers')).toMatch(/\bX-Request-Id\b/);
      // A 401 from authentication still carries ACAO, so the viewer's script can see it must log in.
      const anonymous = await fetch(`${testHub.fhir}/Patient`, { headers: { origin: VIEWER } });
      await anonymous.arrayBuffer();
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('access-control-allow-origin')).toBe(VIEWER);
      for (const url of [
        `${testHub.fhir}/metadata`,
        `${testHub.baseUrl}/dicomweb/studies`,
        `${testHub.baseUrl}/.well-known/smart-configuration`,
      ]) {
        const response = await fetch(url, { headers: { origin: STRANGER, ...bearer(imagingReader) } });
        await response.arrayBuffer();
        expect({ url, acao: response.headers.get('access-control-allow-origin') }).toEqual({ url, acao: null });
      }
      const token = await fetch(`${testHub.baseUrl}/oauth2/token`, {
        method: 'POST',
        headers: { origin: STRANGER, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials' }),
      });
      await token.arrayBuffer();
      expect(token.status).toBe(401);
      expect(token.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('operator views: /admin/queues and /metrics', () => {
    const views = (): string[] => [
      `${testHub.baseUrl}/admin/queues`,
      `${testHub.baseUrl}/admin/queues/dead-letter`,
      `${testHub.baseUrl}/metrics`,
    ];

    test('refuse anonymous requests (401) and invalid tokens (401), even though they are not under /fhir', async () => {
      for (const url of views()) {
        const anonymous = await fetch(url);
        expect({ url, status: anonymous.status, challenge: anonymous.headers.get('www-authenticate') }).toEqual({
          url,
          status: 401,
          challenge: expect.stringMatching(/^Bearer/),
        });
        expect(await anonymous.text()).not.toMatch(/hub_http_request|queues/);
        const forged = await fetch(url, { headers: bearer(`${admin.slice(0, -4)}AAAA`) });
        expect({ url, status: forged.status }).toEqual({ url, status: 401 });
      }
      const retry = await fetch(`${testHub.baseUrl}/admin/queues/dead-letter/x/retry`, { method: 'POST' });
      expect(retry.status).toBe(401);
    });

    test('refuse a valid token of a role other than admin or coordinator (403)', async () => {
      for (const token of [specialist, imagingReader]) {
        for (const url of views()) {
          const response = await fetch(url, { headers: bearer(token) });
          expect({ url, status: response.status }).toEqual({ url, status: 403 });
          expect(((await response.json()) as { error: string }).error).toBe('forbidden');
        }
      }
      const retry = await fetch(`${testHub.baseUrl}/admin/queues/dead-letter/x/retry`, {
        method: 'POST',
        headers: bearer(specialist),
      });
      expect(retry.status).toBe(403);
    });

    test('serve an admin and a coordinator', async () => {
      for (const token of [admin, coordinator]) {
        const queues = await fetch(`${testHub.baseUrl}/admin/queues`, { headers: bearer(token) });
        expect(queues.status).toBe(200);
        expect(await queues.json()).toMatchObject({
          queues: expect.any(Array),
          deadLetter: { total: expect.any(Number) },
        });
        const metrics = await fetch(`${testHub.baseUrl}/metrics`, { headers: bearer(token) });
        expect(metrics.status).toBe(200);
        expect(await metrics.text()).toContain('# TYPE hub_http_request_duration_seconds histogram');
      }
    });

    test('serve a system client granted hub:admin; SMART scopes, system/*.* included, do not imply it', async () => {
      const operations = await clientToken(testHub, 'ops-tool', 'hub:admin');
      const scraper = await clientToken(testHub, 'scraper', 'hub:admin system/Patient.rs', 'hub:admin');
      for (const token of [operations, scraper]) {
        for (const url of views()) {
          const response = await fetch(url, { headers: bearer(token) });
          expect({ url, status: response.status }).toEqual({ url, status: 200 });
          await response.arrayBuffer();
        }
      }
      // hub:admin gives no FHIR rights.
      const fhir = await fetch(`${testHub.fhir}/Patient`, { headers: bearer(operations) });
      expect(fhir.status).toBe(403);
      await fhir.arrayBuffer();

      const everything = await clientToken(testHub, 'ehr-everything', 'system/*.*');
      // Allowed hub:admin, but the token was asked for resource scopes only.
      const withoutAdmin = await clientToken(testHub, 'ehr-with-admin', 'hub:admin system/*.rs', 'system/*.rs');
      for (const token of [everything, withoutAdmin]) {
        for (const url of views()) {
          const response = await fetch(url, { headers: bearer(token) });
          expect({ url, status: response.status }).toEqual({ url, status: 403 });
          await response.arrayBuffer();
        }
      }
      // A client not allowed hub:admin does not get it by asking.
      await expect(clientToken(testHub, 'ehr-asking', 'system/*.*', 'hub:admin')).rejects.toThrow(
        /400 none of the requested scopes/,
      );
      const configuration = (await (await fetch(`${testHub.baseUrl}/.well-known/smart-configuration`)).json()) as {
        scopes_supported: string[];
      };
      expect(configuration.scopes_supported).toContain('hub:admin');
    });

    test('METRICS_PUBLIC=true serves /metrics without a token; /admin/queues still needs one', async () => {
      const open = await startTestHub({ env: { AUTH_REQUIRED: 'true', METRICS_PUBLIC: 'true' } });
      try {
        const metrics = await fetch(`${open.baseUrl}/metrics`);
        expect(metrics.status).toBe(200);
        expect(await metrics.text()).toContain('hub_http_request_duration_seconds');
        expect((await fetch(`${open.baseUrl}/admin/queues`)).status).toBe(401);
      } finally {
        await open.stop();
      }
    });
  });

  describe('DICOMweb scopes (ImagingStudy: STOW c, QIDO s, WADO r)', () => {
    const dicomweb = (path: string): string => `${testHub.baseUrl}/dicomweb${path}`;

    test('a read-only token may search and retrieve but not store (403 before the body is read)', async () => {
      const { contentType, bytes } = await stowBodyOf('CT_small.dcm');
      const refused = await fetch(dicomweb('/studies'), {
        method: 'POST',
        headers: { 'content-type': contentType, accept: 'application/dicom+json', ...bearer(imagingReader) },
        body: bytes,
      });
      expect(refused.status).toBe(403);
      expect(JSON.stringify(await refused.json())).toMatch(/ImagingStudy\.c/);
      const search = await fetch(dicomweb('/studies'), {
        headers: { accept: 'application/dicom+json', ...bearer(imagingReader) },
      });
      expect(search.status).toBe(200);
      await search.arrayBuffer();
      const retrieve = await fetch(dicomweb('/studies/1.2.3/metadata'), {
        headers: { accept: 'application/dicom+json', ...bearer(imagingReader) },
      });
      await retrieve.arrayBuffer();
      expect(retrieve.status).toBe(404);
    });

    test('a token with ImagingStudy.c stores; the read-only token then finds and retrieves the study', async () => {
      // A coordinator's read-only token: the radiologist's would see no study outside their cases
      // (dicom-access.test.ts), whatever its scopes.
      const imagingViewer = await userToken(testHub, 'coordinator', 'user/ImagingStudy.rs');
      const { contentType, bytes } = await stowBodyOf('CT_small.dcm');
      const stored = await fetch(dicomweb('/studies'), {
        method: 'POST',
        headers: { 'content-type': contentType, accept: 'application/dicom+json', ...bearer(imagingWriter) },
        body: bytes,
      });
      expect(stored.status).toBe(200);
      const study = ((await stored.json()) as Record<string, { Value?: unknown[] }>)['00081190']?.Value?.[0] as string;
      const studyUid = study.split('/studies/')[1];
      const search = await fetch(dicomweb(`/studies?StudyInstanceUID=${studyUid}`), {
        headers: { accept: 'application/dicom+json', ...bearer(imagingViewer) },
      });
      expect(search.status).toBe(200);
      expect(await search.json()).toHaveLength(1);
      const metadata = await fetch(dicomweb(`/studies/${studyUid}/metadata`), {
        headers: { accept: 'application/dicom+json', ...bearer(imagingViewer) },
      });
      expect(metadata.status).toBe(200);
      await metadata.arrayBuffer();
    });

    test('a token without ImagingStudy rights is refused search and retrieval (403)', async () => {
      const patientsOnly = await userToken(testHub, 'coordinator', 'user/Patient.rs');
      for (const path of ['/studies', '/studies/1.2.3/series', '/studies/1.2.3/metadata', '/studies/1.2.3/thumbnail']) {
        const response = await fetch(dicomweb(path), { headers: bearer(patientsOnly) });
        expect({ path, status: response.status }).toEqual({ path, status: 403 });
        const text = ((await response.json()) as { issue: { details: { text: string } }[] }).issue[0]?.details.text;
        expect({ path, text }).toEqual({
          path,
          text: expect.stringContaining(
            path.endsWith('/studies') || path.endsWith('/series') ? 'needs "s"' : 'needs "r"',
          ),
        });
      }
    });
  });

  describe('request body limits', () => {
    test('an oversized /oauth2/token form is 413 invalid_request', async () => {
      const response = await fetch(`${testHub.baseUrl}/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=client_credentials&client_assertion=${'A'.repeat(64 * 1024)}`,
      });
      expect(response.status).toBe(413);
      expect(await response.json()).toMatchObject({ error: 'invalid_request' });
    });

    test('oversized /oauth2/authorize and /oauth2/logout forms are 413', async () => {
      for (const path of ['/oauth2/authorize', '/oauth2/logout']) {
        const response = await fetch(`${testHub.baseUrl}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `csrf=${'A'.repeat(256 * 1024)}`,
        });
        await response.arrayBuffer();
        expect({ path, status: response.status }).toEqual({ path, status: 413 });
      }
    });

    test('STOW-RS streams with its own limits: more than 10,000 parts is 413, a part header block over 16 KiB is 400', async () => {
      const boundary = 'hardening-boundary';
      const contentType = `multipart/related; type="application/dicom"; boundary=${boundary}`;
      const post = async (body: string): Promise<number> => {
        const response = await fetch(`${testHub.baseUrl}/dicomweb/studies`, {
          method: 'POST',
          headers: { 'content-type': contentType, accept: 'application/dicom+json', ...bearer(imagingWriter) },
          body,
        });
        await response.arrayBuffer();
        return response.status;
      };
      // Parts of another type are refused one by one without being parsed; the 10,001st ends the body.
      const tinyPart = `--${boundary}\r\nContent-Type: text/plain\r\n\r\nx\r\n`;
      expect(await post(`${tinyPart.repeat(10_001)}--${boundary}--\r\n`)).toBe(413);
      const hugeHeader = `--${boundary}\r\nContent-Type: application/dicom\r\nX-Padding: ${'p'.repeat(17 * 1024)}\r\n\r\nx\r\n--${boundary}--\r\n`;
      expect(await post(hugeHeader)).toBe(400);
    });

    test('a FHIR JSON body over FHIR_MAX_BODY_BYTES is 413', async () => {
      const response = await fetch(`${testHub.fhir}/Patient`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', ...bearer(admin) },
        body: JSON.stringify({
          resourceType: 'Patient',
          text: {
            status: 'generated',
            div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(FHIR_MAX_BODY_BYTES)}</div>`,
          },
        }),
      });
      await response.arrayBuffer();
      expect(response.status).toBe(413);
    });
  });

  test("logout: a CSRF value of the cookie's length in characters but not in bytes is refused, not a server error", async () => {
    const response = await fetch(`${testHub.baseUrl}/oauth2/logout`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: 'hub_session=some-session; hub_csrf=abcd',
      },
      body: new URLSearchParams({ csrf: 'abcé' }),
    });
    expect(response.status).toBe(200);
    // The session cookie is not cleared: the CSRF token did not match.
    expect(response.headers.getSetCookie().some((line) => line.startsWith('hub_session='))).toBe(false);
  });
});
