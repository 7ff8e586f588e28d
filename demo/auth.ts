/**
 * How the demo's parties get access tokens from the hub: SMART discovery, a Backend Services client
 * authenticating with a signed JWT (private_key_jwt, RFC 7523), and a person signing in through the
 * authorization endpoint (authorization code + PKCE S256, and for staff the TOTP code an authenticator app shows),
 * driven over HTTP as a browser would. Requests go to the URL the demo was given; the URLs the hub
 * advertises (its BASE_URL, perhaps a public address that does not reach it from here) are only used
 * as the names the protocol asks for (`aud` of the assertion and of the authorization request).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { totpCode } from '../src/auth/totp.ts';
import { SignJWT, importJWK } from 'jose';
import type { PersonCredentials, SystemClientCredentials } from './parties.ts';

/** Renew a token this long before it expires. */
const RENEW_MARGIN_MS = 60_000;
const TOTP_STEP_MS = 30_000;

export interface HubEndpoints {
  /** Where the demo sends its requests (the --url it was given). */
  reachBase: string;
  /** The token endpoint as the hub names it (the assertion's `aud`). */
  tokenUrl: string;
  authorizeUrl: string;
  revocationUrl: string;
  /** The FHIR base as the hub names it (the authorization request's `aud`). */
  fhirBaseUrl: string;
}

export interface TokenSource {
  accessToken(): Promise<string>;
}

async function reach(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { redirect: 'manual', ...init });
  } catch (err) {
    throw new Error(
      `the hub does not answer at ${new URL(url).origin} (${(err as Error).message}); start it with npm start`,
      { cause: err },
    );
  }
}

/** The advertised endpoint, at the address the demo can reach. */
const reachable = (endpoints: HubEndpoints, advertised: string): string =>
  `${endpoints.reachBase}${new URL(advertised).pathname}`;

/** SMART discovery: the hub's /.well-known/smart-configuration. */
export async function discover(reachBase: string): Promise<HubEndpoints> {
  const response = await reach(`${reachBase}/.well-known/smart-configuration`);
  if (response.status !== 200) {
    throw new Error(`GET /.well-known/smart-configuration: HTTP ${response.status}`);
  }
  const document = (await response.json()) as Record<string, unknown>;
  const field = (name: string): string => {
    const value = document[name];
    if (typeof value !== 'string') {
      throw new Error(`the hub's SMART configuration has no ${name}`);
    }
    return value;
  };
  return {
    reachBase,
    tokenUrl: field('token_endpoint'),
    authorizeUrl: field('authorization_endpoint'),
    revocationUrl: field('revocation_endpoint'),
    fhirBaseUrl: `${field('issuer').replace(/\/+$/, '')}/fhir`,
  };
}

interface TokenResponse {
  access_token: string;
  expires_in: number;
}

async function requestToken(
  endpoints: HubEndpoints,
  form: Record<string, string>,
  who: string,
): Promise<TokenResponse> {
  const response = await reach(reachable(endpoints, endpoints.tokenUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form),
  });
  const body = (await response.json().catch(() => ({}))) as Partial<TokenResponse> & {
    error?: string;
    error_description?: string;
  };
  if (response.status !== 200 || typeof body.access_token !== 'string') {
    throw new Error(
      `the token endpoint refused ${who}: HTTP ${response.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim(),
    );
  }
  return { access_token: body.access_token, expires_in: Number(body.expires_in) || 300 };
}

/** A token kept until shortly before it expires, then obtained anew. */
class CachedToken {
  private token: string | undefined;
  private renewAt = 0;

  async get(obtain: () => Promise<TokenResponse>): Promise<string> {
    if (this.token === undefined || Date.now() >= this.renewAt) {
      const response = await obtain();
      this.token = response.access_token;
      this.renewAt = Date.now() + Math.max(0, response.expires_in * 1000 - RENEW_MARGIN_MS);
    }
    return this.token;
  }

  get current(): string | undefined {
    return this.token;
  }
}

/** SMART Backend Services: client_credentials with a client assertion signed by the client's private key. */
export class BackendServicesClient implements TokenSource {
  private readonly endpoints: HubEndpoints;
  private readonly credentials: SystemClientCredentials;
  private readonly scope: string;
  private readonly cache = new CachedToken();

  constructor(endpoints: HubEndpoints, credentials: SystemClientCredentials, scope: string) {
    this.endpoints = endpoints;
    this.credentials = credentials;
    this.scope = scope;
  }

  accessToken(): Promise<string> {
    return this.cache.get(async () => {
      const { clientId, alg, privateJwk } = this.credentials;
      const key = await importJWK(privateJwk, alg);
      const nowSeconds = Math.floor(Date.now() / 1000);
      // SMART Backend Services: iss = sub = client id, aud = token endpoint, exp ≤ 5 minutes, a fresh jti.
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg, typ: 'JWT', ...(privateJwk.kid ? { kid: privateJwk.kid } : {}) })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(this.endpoints.tokenUrl)
        .setIssuedAt(nowSeconds)
        .setExpirationTime(nowSeconds + 240)
        .setJti(randomUUID())
        .sign(key);
      return requestToken(
        this.endpoints,
        {
          grant_type: 'client_credentials',
          scope: this.scope,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        },
        `client ${clientId}`,
      );
    });
  }
}

/** The cookies the hub sets on its sign-in pages, kept as a browser would for the one sign-in. */
class CookieJar {
  private readonly cookies = new Map<string, string>();

  keep(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const equals = pair.indexOf('=');
      if (equals > 0) {
        this.cookies.set(pair.slice(0, equals).trim(), pair.slice(equals + 1).trim());
      }
    }
  }

  header(): Record<string, string> {
    return this.cookies.size === 0
      ? {}
      : { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') };
  }
}

const decodeHtml = (text: string): string =>
  text
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"');

/** The login form's hidden fields: the authorization request carried through it, and the CSRF token. */
function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    // Both groups are required by the pattern, so a match has them.
    fields[decodeHtml(name!)] = decodeHtml(value!);
  }
  return fields;
}

/** A person signing in through the demo's public client. */
export class PersonLogin implements TokenSource {
  private readonly endpoints: HubEndpoints;
  private readonly app: { clientId: string; redirectUri: string; scope: string };
  private readonly person: PersonCredentials;
  private readonly cache = new CachedToken();

  constructor(
    endpoints: HubEndpoints,
    app: { clientId: string; redirectUri: string; scope: string },
    person: PersonCredentials,
  ) {
    this.endpoints = endpoints;
    this.app = app;
    this.person = person;
  }

  accessToken(): Promise<string> {
    return this.cache.get(() => this.signIn());
  }

  /** Ends the session of the current token (RFC 7009 revocation, which the hub treats as logout). */
  async signOut(): Promise<void> {
    const token = this.cache.current;
    if (token === undefined) {
      return;
    }
    const response = await reach(reachable(this.endpoints, this.endpoints.revocationUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: this.app.clientId }),
    });
    if (response.status !== 200) {
      throw new Error(`signing the ${this.person.role} out: HTTP ${response.status}`);
    }
  }

  private async signIn(): Promise<TokenResponse> {
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(12).toString('base64url');
    const jar = new CookieJar();
    const authorize = new URL(reachable(this.endpoints, this.endpoints.authorizeUrl));
    const parameters = {
      response_type: 'code',
      client_id: this.app.clientId,
      redirect_uri: this.app.redirectUri,
      scope: this.app.scope,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      aud: this.endpoints.fhirBaseUrl,
    };
    for (const [name, value] of Object.entries(parameters)) {
      authorize.searchParams.set(name, value);
    }

    let redirect = await this.submitLogin(authorize, jar, Date.now());
    if (redirect === 'refused' && this.person.totpSecret !== undefined) {
      // A code is good once: a sign-in of this account moments ago (an earlier run) used this one. Wait for the next.
      await new Promise((resolve) => setTimeout(resolve, TOTP_STEP_MS - (Date.now() % TOTP_STEP_MS) + 1000));
      redirect = await this.submitLogin(authorize, jar, Date.now());
    }
    if (redirect === 'refused') {
      throw new Error(
        `the hub refused the ${this.person.role}'s sign-in; are the credentials from this hub's database?`,
      );
    }
    const location = new URL(redirect);
    if (location.searchParams.get('state') !== state) {
      throw new Error("the authorization response does not carry the request's state");
    }
    const code = location.searchParams.get('code');
    if (!code) {
      throw new Error(
        `the ${this.person.role}'s sign-in ended without a code: ${location.searchParams.get('error') ?? ''} ${location.searchParams.get('error_description') ?? ''}`,
      );
    }
    return requestToken(
      this.endpoints,
      {
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        client_id: this.app.clientId,
        redirect_uri: this.app.redirectUri,
      },
      `the ${this.person.role}'s code`,
    );
  }

  /** Opens the login page and posts the form: the redirect's Location, or 'refused'. */
  private async submitLogin(authorize: URL, jar: CookieJar, nowMs: number): Promise<string | 'refused'> {
    const page = await reach(authorize.toString(), { headers: jar.header() });
    jar.keep(page);
    const html = await page.text();
    if (page.status !== 200) {
      throw new Error(`the sign-in page answered HTTP ${page.status}`);
    }
    const response = await reach(authorize.origin + authorize.pathname, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...jar.header() },
      body: new URLSearchParams({
        ...hiddenFields(html),
        email: this.person.email,
        password: this.person.password,
        // Staff give the code their authenticator shows; a physician or patient has none.
        totp: this.person.totpSecret === undefined ? '' : totpCode(this.person.totpSecret, nowMs),
      }),
    });
    jar.keep(response);
    await response.arrayBuffer();
    if (response.status === 401) {
      return 'refused';
    }
    const location = response.headers.get('location');
    if (response.status !== 303 || !location) {
      throw new Error(`the sign-in form answered HTTP ${response.status}`);
    }
    return location;
  }
}
