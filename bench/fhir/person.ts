/**
 * The person of `--person-compare`: a referring physician's account (role `referring-physician`,
 * fhirUser `Practitioner/<id>`) and a public client to sign in through, registered in the bench
 * database with the hub's own stores, and the person's access tokens, obtained over HTTP as a
 * browser app gets them: the authorization request with a PKCE S256 challenge, the hub's login form
 * posted back with its hidden fields and CSRF cookie, and the code from the redirect exchanged at the
 * token endpoint. A referring physician signs in without an authenticator code.
 *
 * A person's token lives at most 10 minutes and never past the login session, so the person signs
 * in again (a new session) when the token nears its end, as TokenSource renews the client's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ClientRegistry } from '../../src/auth/clients.ts';
import { parseUserScopes } from '../../src/auth/user-scopes.ts';
import { UserStore } from '../../src/auth/users.ts';
import { discover } from '../../demo/auth.ts';
import type { HubEndpoints } from '../../demo/auth.ts';
import { withBenchDatabase } from './auth.ts';

export const BENCH_APP_ID = 'bench-fhir-app';
/** Loopback http is allowed for a public client; the bench reads the code from the redirect, it never follows it. */
const REDIRECT_URI = 'http://127.0.0.1/bench-fhir/callback';
const SCOPE = 'openid fhirUser user/*.cruds';
const EMAIL = 'referring-physician@bench-fhir.example.org';
/** Sign in again when the token has less than this left, so no measured slice outlives its token. */
const RENEW_MARGIN_MS = 60_000;

export interface PersonAccount {
  email: string;
  password: string;
  /** `Practitioner/<id>`. */
  fhirUser: string;
  clientId: string;
  redirectUri: string;
  scope: string;
}

/**
 * Registers (or re-registers, with a new password) the referring physician linked to the
 * Practitioner `practitionerId`, and the public client the bench signs them in through.
 */
export async function registerBenchPerson(databaseUrl: string, practitionerId: string): Promise<PersonAccount> {
  const password = randomBytes(24).toString('base64url');
  const fhirUser = `Practitioner/${practitionerId}`;
  await withBenchDatabase(databaseUrl, async (db) => {
    // The password of an earlier bench process is gone with it: replace both (their sessions and codes go with them).
    await db.query('DELETE FROM auth_user WHERE lower(email) = lower($1)', [EMAIL]);
    await db.query('DELETE FROM auth_client WHERE id = $1', [BENCH_APP_ID]);
    await new ClientRegistry(db).addPublic({
      id: BENCH_APP_ID,
      redirectUris: [REDIRECT_URI],
      userScopes: parseUserScopes(SCOPE),
    });
    await new UserStore(db).add({ email: EMAIL, role: 'referring-physician', fhirUser, password });
  });
  return { email: EMAIL, password, fhirUser, clientId: BENCH_APP_ID, redirectUri: REDIRECT_URI, scope: SCOPE };
}

/** The cookies the hub sets during one sign-in (the CSRF cookie of its login form, the session's). */
class SignInCookies {
  private readonly values = new Map<string, string>();

  keep(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';', 1);
      const equals = pair.indexOf('=');
      if (equals > 0) {
        this.values.set(pair.slice(0, equals).trim(), pair.slice(equals + 1).trim());
      }
    }
  }

  header(): Record<string, string> {
    return this.values.size === 0
      ? {}
      : { cookie: [...this.values].map(([name, value]) => `${name}=${value}`).join('; ') };
  }
}

/** The login form's hidden inputs (the authorization request and the CSRF token); the hub escapes their text as `&#N;`. */
function hiddenInputs(html: string): Record<string, string> {
  const unescape = (text: string): string =>
    text
      .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
      .replace(/&(amp|quot|lt|gt);/g, (_, name: string) => ({ amp: '&', quot: '"', lt: '<', gt: '>' })[name] ?? '');
  const fields: Record<string, string> = {};
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    // Both groups are required by the pattern, so a match has them.
    fields[unescape(name!)] = unescape(value!);
  }
  return fields;
}

export interface PersonToken {
  accessToken: string;
  expiresInSeconds: number;
  /** The scopes granted. */
  scope: string;
}

/** Bearer tokens of the referring physician on one hub, signing in again before each one runs out. */
export class PersonTokenSource {
  private readonly account: PersonAccount;
  private readonly hubUrl: string;
  private endpoints: HubEndpoints | undefined;
  private token: PersonToken | undefined;
  private renewAt = 0;
  /** Sign-ins so far: the first, then one per renewal. */
  signIns = 0;

  constructor(account: PersonAccount, hubUrl: string) {
    this.account = account;
    this.hubUrl = hubUrl;
  }

  /** The `authorization` header value for the next minute of requests at least. */
  async authorization(): Promise<string> {
    return `Bearer ${(await this.current()).accessToken}`;
  }

  /** The token in use, after a sign-in when there is none or it nears its end. */
  async current(): Promise<PersonToken> {
    if (this.token === undefined || Date.now() >= this.renewAt) {
      const started = Date.now();
      this.token = await this.signIn();
      this.signIns++;
      const lifetimeMs = this.token.expiresInSeconds * 1000;
      this.renewAt = started + Math.max(lifetimeMs / 2, lifetimeMs - RENEW_MARGIN_MS);
    }
    return this.token;
  }

  private async signIn(): Promise<PersonToken> {
    this.endpoints ??= await discover(this.hubUrl);
    const { clientId, redirectUri, scope, email, password } = this.account;
    // The advertised endpoints name the hub's BASE_URL; the requests go to the address the bench started it on.
    const at = (advertised: string): string => `${this.hubUrl}${new URL(advertised).pathname}`;
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(12).toString('base64url');
    const authorize = new URL(at(this.endpoints.authorizeUrl));
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      aud: this.endpoints.fhirBaseUrl,
    }).toString();

    const cookies = new SignInCookies();
    const page = await fetch(authorize, { redirect: 'manual', signal: AbortSignal.timeout(30_000) });
    cookies.keep(page);
    const html = await page.text();
    if (page.status !== 200) {
      throw new Error(`the login page answered HTTP ${page.status}: ${html.slice(0, 300)}`);
    }
    const form = await fetch(`${authorize.origin}${authorize.pathname}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...cookies.header() },
      // A referring physician has no authenticator: the code field stays empty, as a browser would send it.
      body: new URLSearchParams({ ...hiddenInputs(html), email, password, totp: '' }),
      signal: AbortSignal.timeout(30_000),
    });
    await form.arrayBuffer();
    const location = form.headers.get('location');
    if (form.status !== 303 || location === null) {
      throw new Error(`the hub refused the referring physician's login: HTTP ${form.status}`);
    }
    const redirect = new URL(location);
    if (redirect.searchParams.get('state') !== state) {
      throw new Error("the authorization response does not carry the request's state");
    }
    const code = redirect.searchParams.get('code');
    if (code === null) {
      throw new Error(
        `the login ended without a code: ${redirect.searchParams.get('error') ?? ''} ${redirect.searchParams.get('error_description') ?? ''}`.trim(),
      );
    }

    const response = await fetch(at(this.endpoints.tokenUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        client_id: clientId,
        redirect_uri: redirectUri,
      }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json().catch(() => ({}))) as {
      access_token?: unknown;
      expires_in?: unknown;
      scope?: unknown;
      error?: string;
      error_description?: string;
    };
    if (response.status !== 200 || typeof body.access_token !== 'string') {
      throw new Error(
        `the token endpoint refused the referring physician's code: HTTP ${response.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim(),
      );
    }
    return {
      accessToken: body.access_token,
      expiresInSeconds: Number(body.expires_in) || 60,
      scope: typeof body.scope === 'string' ? body.scope : '',
    };
  }
}
