/**
 * A person's login driven over HTTP as a browser and a SMART app would: a cookie jar, the
 * authorization request with a PKCE S256 challenge, the login form posted back with its hidden fields
 * and CSRF token, the redirect with the code, and the code exchanged at the token endpoint.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ClientRegistry } from '../../src/auth/clients.ts';
import { totpCode } from '../../src/auth/totp.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import type { Clock } from '../../src/runtime/clock.ts';
import { parseUserScopes } from '../../src/auth/user-scopes.ts';
import { UserStore } from '../../src/auth/users.ts';
import type { UserRole } from '../../src/auth/users.ts';
import type { Database } from '../../src/db/database.ts';
import { clientToken } from './client-token.ts';
import type { TestHub } from './test-hub.ts';

/**
 * The cookies a browser keeps for the hub (all of them live under /oauth2). `from` sends every request
 * as if from that address (X-Forwarded-For, believed by a hub with TRUST_PROXY=loopback).
 */
export class Browser {
  readonly cookies = new Map<string, string>();
  private readonly from: string | undefined;

  constructor(from?: string) {
    this.from = from;
  }

  private remember(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      // split() always yields at least one part.
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
      const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (attributes.some((attribute) => /^max-age=0$/i.test(attribute)) || value === '') {
        this.cookies.delete(name);
      } else {
        this.cookies.set(name, value);
      }
    }
  }

  private cookieHeader(): Record<string, string> {
    return {
      ...(this.from === undefined ? {} : { 'x-forwarded-for': this.from }),
      ...(this.cookies.size === 0
        ? {}
        : { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') }),
    };
  }

  async get(url: string): Promise<Response> {
    const response = await fetch(url, { redirect: 'manual', headers: this.cookieHeader() });
    this.remember(response);
    return response;
  }

  async post(url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    const response = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...this.cookieHeader(), ...headers },
      body: new URLSearchParams(fields),
    });
    this.remember(response);
    return response;
  }
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

const unescapeHtml = (text: string): string =>
  text.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');

/** The hidden fields of the login form (the authorization request and the CSRF token). */
export function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    // Both groups are required by the pattern, so a match has them.
    fields[unescapeHtml(name!)] = unescapeHtml(value!);
  }
  return fields;
}

/** The text of the login page's error box, if any. */
export function pageError(html: string): string | undefined {
  const text = /<p class="error" role="alert">([^<]*)<\/p>/.exec(html)?.[1];
  return text === undefined ? undefined : unescapeHtml(text);
}

export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  scope: string;
  state?: string;
  nonce?: string;
  challenge?: string;
  method?: string;
  extra?: Record<string, string>;
}

export function authorizeUrl(baseUrl: string, request: AuthorizationRequest): string {
  const url = new URL(`${baseUrl}/oauth2/authorize`);
  const parameters: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: request.clientId,
    redirect_uri: request.redirectUri,
    scope: request.scope,
    state: request.state ?? randomBytes(8).toString('hex'),
    nonce: request.nonce,
    code_challenge: request.challenge,
    code_challenge_method: request.method ?? 'S256',
    aud: `${baseUrl}/fhir`,
    ...request.extra,
  };
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== undefined) {
      url.searchParams.set(name, value);
    }
  }
  return url.toString();
}

export interface LoginAttempt {
  /** The form post's answer: 303 to the redirect URI on success, 401 with the form again on refusal. */
  status: number;
  location?: URL;
  html: string;
}

/** Opens the login page for `request` and posts the form with the given credentials. */
export async function submitLogin(
  browser: Browser,
  baseUrl: string,
  request: AuthorizationRequest,
  credentials: { email: string; password: string; totp?: string },
): Promise<LoginAttempt> {
  const page = await browser.get(authorizeUrl(baseUrl, request));
  const pageHtml = await page.text();
  if (page.status !== 200) {
    throw new Error(`the login page answered ${page.status}: ${pageHtml.slice(0, 300)}`);
  }
  const response = await browser.post(`${baseUrl}/oauth2/authorize`, {
    ...hiddenFields(pageHtml),
    email: credentials.email,
    password: credentials.password,
    totp: credentials.totp ?? '',
  });
  const location = response.headers.get('location');
  return {
    status: response.status,
    location: location === null ? undefined : new URL(location),
    html: await response.text(),
  };
}

export async function exchangeCode(
  baseUrl: string,
  parameters: { code: string; verifier: string; clientId: string; redirectUri: string },
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${baseUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: parameters.code,
      code_verifier: parameters.verifier,
      client_id: parameters.clientId,
      redirect_uri: parameters.redirectUri,
    }),
  });
  return { status: response.status, body: await response.json() };
}

/** The whole flow for a user; returns the token response (throws when any step fails). */
export async function logIn(
  browser: Browser,
  baseUrl: string,
  request: Omit<AuthorizationRequest, 'challenge'>,
  credentials: { email: string; password: string; totp?: string },
): Promise<{ token: any; state: string }> {
  const { verifier, challenge } = pkcePair();
  const state = request.state ?? randomBytes(8).toString('hex');
  const attempt = await submitLogin(browser, baseUrl, { ...request, challenge, state }, credentials);
  const code = attempt.location?.searchParams.get('code');
  if (attempt.status !== 303 || !code) {
    throw new Error(`login failed: ${attempt.status} ${pageError(attempt.html) ?? attempt.location?.toString() ?? ''}`);
  }
  const token = await exchangeCode(baseUrl, {
    code,
    verifier,
    clientId: request.clientId,
    redirectUri: request.redirectUri,
  });
  if (token.status !== 200) {
    throw new Error(`code exchange failed: ${JSON.stringify(token.body)}`);
  }
  return { token: token.body, state };
}

/**
 * Registers a public app and an account per person on a test hub, then signs each in through the
 * real authorization-code flow (login page, PKCE, TOTP for staff). Returns each person's access token.
 */
export async function signInPeople<Who extends string>(
  testHub: { baseUrl: string; hub: { db: Database }; clock?: Clock },
  people: Record<Who, { role: UserRole; fhirUser: string }>,
  app: { clientId: string; redirectUri: string; scope: string },
): Promise<Record<Who, string>> {
  const password = 'a long enough password';
  await new ClientRegistry(testHub.hub.db).addPublic({
    id: app.clientId,
    redirectUris: [app.redirectUri],
    userScopes: parseUserScopes(app.scope),
  });
  const users = new UserStore(testHub.hub.db);
  const tokens = {} as Record<Who, string>;
  for (const [who, person] of Object.entries(people) as [Who, { role: UserRole; fhirUser: string }][]) {
    const email = `${who.toLowerCase()}@example.org`;
    const { totpSecret } = await users.add({ email, role: person.role, fhirUser: person.fhirUser, password });
    const { token } = await logIn(
      new Browser(),
      testHub.baseUrl,
      { clientId: app.clientId, redirectUri: app.redirectUri, scope: app.scope },
      // The hub checks the code on its own clock, which a test may have moved.
      {
        email,
        password,
        totp: totpSecret ? totpCode(totpSecret, (testHub.clock ?? systemClock).now().getTime()) : undefined,
      },
    );
    tokens[who] = token.access_token as string;
  }
  return tokens;
}

/**
 * Signs in each of `people` through the app (asking for `user/*.cruds`), then a system client named
 * `systemClient` (with `system/*.cruds`): everyone's access token, the system client's as `system`.
 */
export async function signInWithSystem<Who extends string>(
  testHub: TestHub,
  people: Record<Who, { role: UserRole; fhirUser: string }>,
  app: { clientId: string; redirectUri: string },
  systemClient: string,
): Promise<Record<Who | 'system', string>> {
  const tokens = await signInPeople(testHub, people, { ...app, scope: 'openid fhirUser user/*.cruds' });
  return { ...tokens, system: await clientToken(testHub, systemClient, 'system/*.cruds') };
}
