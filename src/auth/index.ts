/**
 * The authentication layer assembled for one hub process: the client registry, the token endpoint,
 * people's login (authorization endpoint, sessions, logout), SMART discovery, bearer-token
 * authentication and the FHIR scope guard.
 */
import express from 'express';
import type { RequestHandler, Router } from 'express';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import type { Auditor } from '../audit/auditor.ts';
import { AccessTokens } from './access-tokens.ts';
import { adminGuard } from './admin-guard.ts';
import { authenticate } from './authenticate.ts';
import { BoardPasses } from './board-pass.ts';
import { AuthorizationCodes } from './authorization-codes.ts';
import { AUTHORIZE_PATH, createAuthorizeRoutes } from './authorize-endpoint.ts';
import { ClientAssertionVerifier } from './client-assertion.ts';
import { ClientRegistry } from './clients.ts';
import { registerDashboardClient } from './dashboard-client.ts';
import { dicomwebScopeGuard } from './dicomweb-scope-guard.ts';
import { fhirScopeGuard } from './fhir-scope-guard.ts';
import { JtiStore } from './jti-store.ts';
import { JwksUrlCache } from './jwks-url-cache.ts';
import { createLogoutRoutes } from './logout-endpoint.ts';
import { decoyPasswordHash } from './passwords.ts';
import {
  LOGIN_FAILURES_PER_PLACE,
  LOGIN_PER_PLACE,
  SharedRateLimits,
  TOKEN_PER_IP,
  localFailureLock,
  localRateLimit,
} from './rate-limit.ts';
import { DeviceStore } from './devices.ts';
import { LoginGuard } from './login-guard.ts';
import type { RateLimit, RateLimitOptions } from './rate-limit.ts';
import { loadSecretBox } from './secret-box.ts';
import { RevokedSessions, SessionStore } from './sessions.ts';
import type { SessionLimits } from './sessions.ts';
import { SigningKeyStore } from './signing-keys.ts';
import { JWKS_PATH, createSmartConfigurationRoutes } from './smart-configuration.ts';
import { TOKEN_PATH, createTokenRoutes } from './token-endpoint.ts';
import { UserStore } from './users.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';

export type { Identity } from './access-tokens.ts';
export { requestIdentity } from './authenticate.ts';

export interface AuthOptions {
  db: Database;
  /** The hub's public base URL (BASE_URL); the token endpoint is `${baseUrl}/oauth2/token`. */
  baseUrl: string;
  /** AUTH_REQUIRED */
  required: boolean;
  logger: Logger;
  /** AUTH_SESSION_IDLE_SECONDS and AUTH_SESSION_MAX_SECONDS. */
  sessions?: SessionLimits;
  /** Audits logins, logouts and issued tokens (audit/auditor.ts). */
  auditor?: Auditor;
  /** DATA_DIR: where the TOTP secrets key file is kept when AUTH_SECRETS_KEY is unset. */
  dataDir: string;
  /** AUTH_SECRETS_KEY */
  secretsKey?: string;
  /** Redis and QUEUE_PREFIX: the token and login rate limits are shared by every process on them. */
  rateLimits?: { redis: Redis; prefix: string };
  /** The hub's clock (runtime/clock.ts): token, session, code and lock-out times; the system clock by default. */
  clock?: Clock;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { idleSeconds: 30 * 60, maxSeconds: 12 * 60 * 60 };

/** What the CapabilityStatement says about security (capability.ts). */
export interface CapabilitySecurity {
  tokenEndpoint: string;
  authorizeEndpoint: string;
  revokeEndpoint: string;
  authRequired: boolean;
}

export interface Auth {
  readonly tokenUrl: string;
  readonly security: CapabilitySecurity;
  /** POST /oauth2/token and the SMART configuration documents; mounted at the root. */
  readonly routes: Router;
  /** For /fhir: bearer authentication (the CapabilityStatement stays open), then the scope guard. */
  readonly fhir: RequestHandler[];
  /** For /dicomweb: bearer authentication, then the ImagingStudy scope guard (dicomweb-scope-guard.ts). */
  readonly dicomweb: RequestHandler[];
  /** For /admin/queues and /metrics: a token is always required, of an admin or coordinator, or a client with hub:admin (admin-guard.ts). */
  readonly admin: RequestHandler[];
  /** Bull Board's own credential, which nothing else accepts (board-pass.ts). */
  readonly boardPasses: BoardPasses;
}

export function tokenUrlFor(baseUrl: string): string {
  return `${baseUrl}${TOKEN_PATH}`;
}

/** Loads (or, on the first start, generates) the signing key and assembles the routes. */
export async function startAuth(options: AuthOptions): Promise<Auth> {
  const tokenUrl = tokenUrlFor(options.baseUrl);
  const urls = {
    issuer: options.baseUrl,
    tokenUrl,
    authorizeUrl: `${options.baseUrl}${AUTHORIZE_PATH}`,
    revokeUrl: `${options.baseUrl}/oauth2/revoke`,
    jwksUrl: `${options.baseUrl}${JWKS_PATH}`,
  };
  const fhirBaseUrl = `${options.baseUrl}/fhir`;
  const logger = options.logger.child({ role: 'auth' });
  const secureCookies = options.baseUrl.startsWith('https:');
  const clock = options.clock ?? systemClock;
  const tokens = new AccessTokens(new SigningKeyStore(options.db), options.baseUrl, clock);
  await tokens.start();
  // Computed now, so that the first login with an unknown e-mail is not slower than the others.
  await decoyPasswordHash();
  const clients = new ClientRegistry(options.db);
  await registerDashboardClient(clients, options.baseUrl, logger);
  const users = new UserStore(
    options.db,
    await loadSecretBox({ key: options.secretsKey, dataDir: options.dataDir }),
    clock,
  );
  // A key that cannot read the stored secrets stops start-up here, naming both key ids.
  const encrypted = await users.encryptStoredSecrets();
  if (encrypted > 0) {
    logger.info({ count: encrypted }, 'TOTP secrets stored in plaintext were encrypted');
  }
  const shared = options.rateLimits && new SharedRateLimits({ ...options.rateLimits, logger });
  const rateLimit = (name: string, limits: RateLimitOptions): RateLimit =>
    shared?.limiter(name, limits) ?? localRateLimit(limits);
  const sessions = new SessionStore(options.db, options.sessions ?? DEFAULT_SESSION_LIMITS, clock);
  const revokedSessions = new RevokedSessions(options.db, clock);
  const codes = new AuthorizationCodes(options.db, clock);
  const verifier = new ClientAssertionVerifier({
    clients,
    jwksUrls: new JwksUrlCache(),
    jtis: new JtiStore(options.db),
    tokenUrl,
    now: () => clock.now().getTime(),
  });
  const routes = express.Router();
  routes.use(createSmartConfigurationRoutes(urls, tokens));
  routes.use(
    createTokenRoutes({
      verifier,
      tokens,
      logger,
      codeGrant: { codes, sessions, revokedSessions, users, clients, tokens, fhirBaseUrl },
      limiter: rateLimit('token-ip', TOKEN_PER_IP),
      auditor: options.auditor,
    }),
  );
  routes.use(
    createAuthorizeRoutes({
      clients,
      users,
      sessions,
      codes,
      issuer: options.baseUrl,
      fhirBaseUrl,
      secureCookies,
      loginGuard: new LoginGuard({
        attempts: rateLimit('login-place', LOGIN_PER_PLACE),
        failures:
          shared?.failureLock('login-failures', LOGIN_FAILURES_PER_PLACE) ?? localFailureLock(LOGIN_FAILURES_PER_PLACE),
        devices: new DeviceStore(options.db),
        users,
        clock,
      }),
      logger,
      auditor: options.auditor,
      clock,
    }),
  );
  routes.use(
    createLogoutRoutes({ tokens, clients, sessions, revokedSessions, secureCookies, logger, auditor: options.auditor }),
  );
  const isCapabilityStatement = (req: express.Request): boolean =>
    req.path === '/metadata' || req.path.startsWith('/.well-known/');
  return {
    tokenUrl,
    security: {
      tokenEndpoint: tokenUrl,
      authorizeEndpoint: urls.authorizeUrl,
      revokeEndpoint: urls.revokeUrl,
      authRequired: options.required,
    },
    routes,
    fhir: [
      authenticate({ tokens, required: options.required, revokedSessions, isOpen: isCapabilityStatement }),
      fhirScopeGuard(),
    ],
    dicomweb: [authenticate({ tokens, required: options.required, revokedSessions }), dicomwebScopeGuard()],
    admin: [authenticate({ tokens, required: true, revokedSessions }), adminGuard()],
    boardPasses: new BoardPasses(tokens, revokedSessions, `${options.baseUrl}/admin/queues/board`, clock),
  };
}
