/**
 * Signing in to the hub as its own public client (`hub-dashboard`, registered by the hub at start-up):
 * SMART's authorization code flow with PKCE S256 through the hub's login page (with the authenticator
 * code for staff). The endpoints come from the hub's SMART configuration; the redirect URI and the
 * token's audience from its issuer (BASE_URL).
 *
 * The access token lives in sessionStorage, so it survives a reload in this tab and nothing more; it
 * is never put in a URL. When it expires (or the hub refuses it) the app signs in again, which is
 * silent while the hub's login session lasts.
 */
const CLIENT_ID = 'hub-dashboard';
const SCOPE = 'openid fhirUser user/*.cruds';
const SESSION_KEY = 'hub-dashboard.session';
const PENDING_KEY = 'hub-dashboard.login';

export interface Session {
  accessToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** The person's role at the hub, from the token (what the app shows; the hub decides access). */
  role: string | undefined;
  fhirUser: string | undefined;
}

interface PendingLogin {
  state: string;
  verifier: string;
  returnTo: string;
  tokenEndpoint: string;
  redirectUri: string;
}

interface SmartConfiguration {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
}

/** Refresh a little before the token's end, so no request goes out with a token about to lapse. */
const EXPIRY_MARGIN_MS = 15_000;

function readJson<T>(key: string): T | undefined {
  const text = sessionStorage.getItem(key);
  if (text === null) {
    return undefined;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    sessionStorage.removeItem(key);
    return undefined;
  }
}

export function currentSession(): Session | undefined {
  const session = readJson<Session>(SESSION_KEY);
  if (session === undefined || session.expiresAt - EXPIRY_MARGIN_MS <= Date.now()) {
    return undefined;
  }
  return session;
}

export function forgetSession(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function smartConfiguration(): Promise<SmartConfiguration> {
  const response = await fetch('/.well-known/smart-configuration', { headers: { accept: 'application/json' } });
  if (!response.ok) {
    throw new Error(`The hub's sign-in configuration could not be read (HTTP ${response.status}).`);
  }
  return (await response.json()) as SmartConfiguration;
}

/** Sends the browser to the hub's login page; `returnTo` is the app path to come back to. */
export async function startLogin(returnTo: string): Promise<void> {
  const configuration = await smartConfiguration();
  const verifier = randomString();
  const challenge = base64url(
    new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))),
  );
  const pending: PendingLogin = {
    state: randomString(),
    verifier,
    returnTo,
    tokenEndpoint: configuration.token_endpoint,
    redirectUri: `${configuration.issuer}/dashboard/callback`,
  };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(configuration.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: pending.redirectUri,
    scope: SCOPE,
    state: pending.state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    aud: `${configuration.issuer}/fhir`,
  }).toString();
  window.location.assign(url.toString());
}

function claimsOf(token: string): Record<string, unknown> {
  const payload = token.split('.')[1];
  if (payload === undefined) {
    return {};
  }
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/**
 * Finishes the login on /dashboard/callback: checks the state, exchanges the code with the PKCE
 * verifier, keeps the token; returns the path to go back to.
 */
export async function completeLogin(parameters: URLSearchParams): Promise<string> {
  const pending = readJson<PendingLogin>(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const error = parameters.get('error');
  if (error !== null) {
    throw new Error(`The hub refused the sign-in: ${parameters.get('error_description') ?? error}.`);
  }
  const code = parameters.get('code');
  if (pending === undefined || code === null || parameters.get('state') !== pending.state) {
    throw new Error('This sign-in was not started here or has already been used. Sign in again.');
  }
  const response = await fetch(pending.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      code_verifier: pending.verifier,
      client_id: CLIENT_ID,
      redirect_uri: pending.redirectUri,
    }),
  });
  const body = (await response.json().catch(() => ({}))) as {
    access_token?: string;
    expires_in?: number;
    error?: string;
    error_description?: string;
  };
  if (!response.ok || body.access_token === undefined) {
    throw new Error(`The sign-in could not be completed: ${body.error_description ?? body.error ?? response.status}.`);
  }
  const claims = claimsOf(body.access_token);
  const session: Session = {
    accessToken: body.access_token,
    expiresAt: Date.now() + (body.expires_in ?? 300) * 1000,
    role: typeof claims.role === 'string' ? claims.role : undefined,
    fhirUser: typeof claims.fhirUser === 'string' ? claims.fhirUser : undefined,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return pending.returnTo.startsWith('/') ? pending.returnTo : '/';
}

/** Ends the hub's login session (its tokens stop working) and forgets the token here. */
export async function signOut(session: Session): Promise<void> {
  forgetSession();
  await fetch('/oauth2/logout', {
    method: 'POST',
    headers: { authorization: `Bearer ${session.accessToken}` },
  }).catch(() => undefined);
}
