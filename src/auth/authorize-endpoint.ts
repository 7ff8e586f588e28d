/**
 * The authorization endpoint (RFC 6749 §4.1 with PKCE, RFC 7636; SMART App Launch "standalone launch"):
 * GET /oauth2/authorize checks the request and shows the login page, or, when the browser already
 * has a usable session, answers at once with a code; POST /oauth2/authorize checks the credentials.
 * A request naming an unknown client or a redirect URI not registered for it is answered with an
 * error page, never redirected (RFC 6749 §4.1.2.1); other errors go back to the client.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { Request, Response, Router } from 'express';
import type { Logger } from 'pino';
import type { AuthorizationCodes } from './authorization-codes.ts';
import { CODE_CHALLENGE_PATTERN } from './authorization-codes.ts';
import type { ClientRegistry, RegisteredClient } from './clients.ts';
import { CSRF_COOKIE, SESSION_COOKIE, readCookie, setCookie } from './cookies.ts';
import { LOGIN_REFUSED, checkCredentials } from './login.ts';
import { sendErrorPage, sendLoginPage } from './login-page.ts';
import { DEVICE_COOKIE, DEVICE_DAYS } from './devices.ts';
import type { LoginGuard } from './login-guard.ts';
import type { Auditor } from '../audit/auditor.ts';
import { ScopeSyntaxError } from './scopes.ts';
import type { SessionStore } from './sessions.ts';
import { formatUserScopes, grantUserScopes, parseUserScopes } from './user-scopes.ts';
import type { UserScopes } from './user-scopes.ts';
import type { User, UserStore } from './users.ts';
import type { Clock } from '../runtime/clock.ts';

export const AUTHORIZE_PATH = '/oauth2/authorize';
const MAX_FORM_BYTES = 16 * 1024;
/** The authorization request's parameters, carried through the login form. */
const REQUEST_PARAMETERS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'code_challenge',
  'code_challenge_method',
  'nonce',
  'aud',
  'prompt',
] as const;

export interface AuthorizeEndpointOptions {
  /** The hub's clock: lock-outs and TOTP steps are judged on it. */
  clock?: Clock;
  clients: ClientRegistry;
  users: UserStore;
  sessions: SessionStore;
  codes: AuthorizationCodes;
  /** The issuer (BASE_URL), sent back as `iss` (RFC 9207). */
  issuer: string;
  /** The FHIR base URL: SMART's `aud` parameter must name it. */
  fhirBaseUrl: string;
  secureCookies: boolean;
  /** The sign-in limits and lock-outs (login-guard.ts). */
  loginGuard: LoginGuard;
  logger: Logger;
  /** Every login and refused login is audited before the answer (audit/auditor.ts). */
  auditor?: Auditor;
}

interface AuthorizationRequest {
  client: RegisteredClient;
  redirectUri: string;
  state: string | undefined;
  codeChallenge: string;
  nonce: string | undefined;
  prompt: string | undefined;
  scopes: UserScopes;
  parameters: Record<string, string>;
}

/** Shown on a page: the client cannot be trusted with a redirect. */
class PageError extends Error {}

/** Sent back to the client's redirect URI (RFC 6749 §4.1.2.1). */
class RedirectError extends Error {
  readonly code: string;
  constructor(code: string, description: string) {
    super(description);
    this.code = code;
  }
}

function single(source: Record<string, unknown>, name: string): string | undefined {
  const value = source[name];
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== 'string') {
    throw new RedirectError('invalid_request', `the parameter "${name}" is given more than once`);
  }
  return value;
}

async function readRequest(
  source: Record<string, unknown>,
  options: AuthorizeEndpointOptions,
): Promise<AuthorizationRequest> {
  const clientId = source.client_id;
  const client = typeof clientId === 'string' && clientId !== '' ? await options.clients.get(clientId) : undefined;
  if (!client || !client.public || client.status !== 'active') {
    throw new PageError(
      'The application that sent you here is not registered with the hub (unknown or disabled client_id).',
    );
  }
  const redirectUri = source.redirect_uri;
  if (typeof redirectUri !== 'string' || !client.redirectUris.includes(redirectUri)) {
    throw new PageError('The application that sent you here gave a redirect_uri that is not registered for it.');
  }
  const parameters: Record<string, string> = {};
  for (const name of REQUEST_PARAMETERS) {
    const value = single(source, name);
    if (value !== undefined) {
      parameters[name] = value;
    }
  }
  return { ...checkParameters(parameters, client, options), client, redirectUri, parameters };
}

function checkParameters(
  parameters: Record<string, string>,
  client: RegisteredClient,
  options: AuthorizeEndpointOptions,
) {
  if (parameters.response_type !== 'code') {
    throw new RedirectError('unsupported_response_type', 'only response_type=code is supported');
  }
  if (parameters.code_challenge === undefined) {
    throw new RedirectError('invalid_request', 'PKCE is required: send code_challenge and code_challenge_method=S256');
  }
  if (parameters.code_challenge_method !== 'S256') {
    throw new RedirectError('invalid_request', 'code_challenge_method must be S256 (plain is not accepted)');
  }
  if (!CODE_CHALLENGE_PATTERN.test(parameters.code_challenge)) {
    throw new RedirectError(
      'invalid_request',
      'code_challenge must be the base64url SHA-256 of the code verifier (43 characters)',
    );
  }
  if (parameters.aud !== undefined && parameters.aud.replace(/\/+$/, '') !== options.fhirBaseUrl) {
    throw new RedirectError('invalid_request', `aud must be this hub's FHIR base URL, ${options.fhirBaseUrl}`);
  }
  if ((parameters.state?.length ?? 0) > 1024 || (parameters.nonce?.length ?? 0) > 256) {
    throw new RedirectError('invalid_request', 'state (1024) or nonce (256 characters) is too long');
  }
  let scopes: UserScopes;
  try {
    scopes = grantUserScopes(parseUserScopes(parameters.scope ?? ''), client.userScopes as UserScopes);
  } catch (err) {
    if (err instanceof ScopeSyntaxError) {
      throw new RedirectError('invalid_scope', err.message);
    }
    throw err;
  }
  if (formatUserScopes(scopes) === '') {
    throw new RedirectError(
      'invalid_scope',
      `none of the requested scopes is allowed for this client (allowed: ${formatUserScopes(client.userScopes as UserScopes)})`,
    );
  }
  return {
    state: parameters.state,
    codeChallenge: parameters.code_challenge,
    nonce: parameters.nonce,
    prompt: parameters.prompt,
    scopes,
  };
}

/** The grant narrowed to the person: a patient context only for a Patient, `fhirUser` only when linked. */
function scopesForUser(scopes: UserScopes, user: User): string {
  return formatUserScopes({
    ...scopes,
    fhirUser: scopes.fhirUser && user.fhirUser !== undefined,
    launchPatient: scopes.launchPatient && user.fhirUser?.startsWith('Patient/') === true,
  });
}

function redirectTo(redirectUri: string, values: Record<string, string | undefined>): string {
  const url = new URL(redirectUri);
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) {
      url.searchParams.set(name, value);
    }
  }
  return url.toString();
}

function redirectOrigin(redirectUri: string): string {
  const url = new URL(redirectUri);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}

function sameSecret(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) {
    return false;
  }
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createAuthorizeRoutes(options: AuthorizeEndpointOptions): Router {
  const routes = express.Router();
  const form = express.urlencoded({ extended: false, limit: MAX_FORM_BYTES, parameterLimit: 30 });
  const log = options.logger;

  async function completeWithCode(
    res: Response,
    request: AuthorizationRequest,
    sessionId: string,
    user: User,
  ): Promise<void> {
    const code = await options.codes.issue({
      clientId: request.client.id,
      redirectUri: request.redirectUri,
      codeChallenge: request.codeChallenge,
      scope: scopesForUser(request.scopes, user),
      nonce: request.nonce,
      sessionId,
    });
    res.setHeader('Cache-Control', 'no-store');
    res.redirect(303, redirectTo(request.redirectUri, { code, state: request.state, iss: options.issuer }));
  }

  function showLogin(
    res: Response,
    status: number,
    request: AuthorizationRequest,
    csrfToken: string,
    extra: { email?: string; error?: string } = {},
  ): void {
    sendLoginPage(res, status, {
      action: AUTHORIZE_PATH,
      clientId: request.client.id,
      parameters: request.parameters,
      csrfToken,
      redirectOrigin: redirectOrigin(request.redirectUri),
      ...extra,
    });
  }

  function refuse(res: Response, err: unknown, request: { redirectUri?: string; state?: string }): void {
    if (err instanceof PageError) {
      sendErrorPage(res, 400, err.message);
      return;
    }
    if (err instanceof RedirectError && request.redirectUri !== undefined) {
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(
        303,
        redirectTo(request.redirectUri, {
          error: err.code,
          error_description: err.message,
          state: request.state,
          iss: options.issuer,
        }),
      );
      return;
    }
    throw err;
  }

  /** Where errors may be sent: the redirect URI, when it is registered for an active public client. */
  async function registeredRedirect(
    source: Record<string, unknown>,
  ): Promise<{ redirectUri?: string; state?: string }> {
    const clientId = source.client_id;
    const client = typeof clientId === 'string' && clientId !== '' ? await options.clients.get(clientId) : undefined;
    if (
      client?.public &&
      client.status === 'active' &&
      typeof source.redirect_uri === 'string' &&
      client.redirectUris.includes(source.redirect_uri)
    ) {
      return { redirectUri: source.redirect_uri, state: typeof source.state === 'string' ? source.state : undefined };
    }
    return {};
  }

  routes.get(AUTHORIZE_PATH, async (req, res, next) => {
    res.locals.route = 'oauth2/authorize';
    const query = req.query as Record<string, unknown>;
    try {
      const request = await readRequest(query, options);
      const cookie = readCookie(req, SESSION_COOKIE);
      if (cookie !== undefined && request.prompt !== 'login') {
        const session = await options.sessions.useCookie(cookie);
        const user = session && (await options.users.get(session.userId));
        if (session && user) {
          log.info(
            { requestId: res.locals.requestId, userId: user.id, clientId: request.client.id },
            'authorization from an existing session',
          );
          await completeWithCode(res, request, session.id, user);
          return;
        }
      }
      if (request.prompt === 'none') {
        throw new RedirectError('login_required', 'the person is not logged in (prompt=none)');
      }
      const csrfToken = randomBytes(24).toString('base64url');
      setCookie(res, CSRF_COOKIE, csrfToken, { secure: options.secureCookies, sameSite: 'Strict' });
      showLogin(res, 200, request, csrfToken);
    } catch (err) {
      try {
        refuse(res, err, await registeredRedirect(query));
      } catch (unexpected) {
        next(unexpected);
      }
    }
  });

  routes.post(AUTHORIZE_PATH, form, async (req, res, next) => {
    res.locals.route = 'oauth2/authorize';
    const body = (req.body ?? {}) as Record<string, unknown>;
    let request: AuthorizationRequest;
    try {
      request = await readRequest(body, options);
    } catch (err) {
      try {
        refuse(res, err, await registeredRedirect(body));
      } catch (unexpected) {
        next(unexpected);
      }
      return;
    }
    try {
      const csrfCookie = readCookie(req, CSRF_COOKIE);
      const csrfToken = typeof body.csrf === 'string' ? body.csrf : undefined;
      if (!sameSecret(csrfCookie, csrfToken)) {
        sendErrorPage(
          res,
          403,
          'This sign-in form has expired or was not sent by this hub. Go back to the application and start again.',
        );
        return;
      }
      const email = typeof body.email === 'string' ? body.email.trim() : '';
      const password = typeof body.password === 'string' ? body.password : '';
      const totp = typeof body.totp === 'string' ? body.totp : '';
      const place = await options.loginGuard.placeOf(req, email);
      const wait = await options.loginGuard.waitFor(place, email);
      if (wait.seconds > 0) {
        res.setHeader('Retry-After', String(wait.seconds));
        log.warn(
          {
            requestId: res.locals.requestId,
            clientId: request.client.id,
            limit: wait.why,
            place: place.knownDevice ? 'known-device' : 'address',
          },
          'login rate-limited',
        );
        showLogin(res, 429, request, csrfToken as string, {
          email,
          error:
            wait.why === 'attempts'
              ? 'Too many sign-in attempts. Wait a minute and try again.'
              : `Too many failed sign-ins for this account from here. Try again in ${Math.ceil(wait.seconds / 60)} minutes.`,
        });
        return;
      }
      const result = await checkCredentials(options.users, { email, password, totp }, options.clock, place.knownDevice);
      if (!result.ok) {
        log.info(
          {
            requestId: res.locals.requestId,
            clientId: request.client.id,
            userId: result.userId,
            reason: result.reason,
            lockedNow: result.lockedNow,
          },
          'login refused',
        );
        await options.loginGuard.failed(place, email);
        // The trail names the account when there is one, never the e-mail, and only the shown text.
        await options.auditor?.authentication(req, {
          event: 'login',
          actor: { userId: result.userId, clientId: request.client.id, clientIsRequestor: false },
          success: false,
          failureText: LOGIN_REFUSED,
        });
        showLogin(res, 401, request, csrfToken as string, { email, error: LOGIN_REFUSED });
        return;
      }
      await options.auditor?.authentication(req, {
        event: 'login',
        actor: {
          userId: result.user.id,
          fhirUser: result.user.fhirUser,
          clientId: request.client.id,
          clientIsRequestor: false,
        },
        success: true,
      });
      const device = await options.loginGuard.succeeded(place, email, result.user.id);
      setCookie(res, DEVICE_COOKIE, device, {
        secure: options.secureCookies,
        sameSite: 'Strict',
        maxAgeSeconds: DEVICE_DAYS * 86_400,
      });
      const { session, cookie } = await options.sessions.create(result.user.id);
      setCookie(res, SESSION_COOKIE, cookie, { secure: options.secureCookies, sameSite: 'Lax' });
      log.info(
        { requestId: res.locals.requestId, clientId: request.client.id, userId: result.user.id, sessionId: session.id },
        'login',
      );
      await completeWithCode(res, request, session.id, result.user);
    } catch (err) {
      next(err);
    }
  });

  routes.all(AUTHORIZE_PATH, (_req, res) => {
    res.setHeader('Allow', 'GET, POST');
    sendErrorPage(res, 405, 'Use GET or POST.');
  });

  // A form the parser refuses (too large) gets a page, not a FHIR error.
  routes.use(AUTHORIZE_PATH, (err: unknown, _req: Request, res: Response, next: (err?: unknown) => void) => {
    const status = (err as { status?: number }).status;
    if (res.headersSent || status === undefined || status >= 500) {
      next(err);
      return;
    }
    sendErrorPage(res, status, 'The sign-in request could not be read.');
  });

  return routes;
}
