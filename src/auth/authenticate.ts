/**
 * Bearer-token authentication (RFC 6750) for the FHIR and DICOMweb routes: a valid token's identity
 * goes to `res.locals.identity`; an invalid or expired one is 401 `invalid_token`; no token at all
 * is let through anonymously only while AUTH_REQUIRED is false. A person's token whose session was
 * revoked (logout) is refused like an expired one. The identity says who (a client, or a user with
 * role and FHIR resource) and what scopes; what each role may see is decided elsewhere.
 *
 * A refused token that this hub signed (expired, or of an ended session) leaves who it names in
 * `res.locals.claimedIdentity`, for the audit trail only: the refusal is recorded naming them.
 */
import type { Request, RequestHandler, Response } from 'express';
import { InvalidTokenError } from './access-tokens.ts';
import type { AccessTokens, Identity } from './access-tokens.ts';
import type { RevokedSessions } from './sessions.ts';

export interface AuthenticateOptions {
  tokens: AccessTokens;
  /** AUTH_REQUIRED: refuse requests without a token. */
  required: boolean;
  /** The sessions ended by logout; a person's token of such a session is refused. */
  revokedSessions?: RevokedSessions;
  /** Paths (relative to the mount point) served without authentication. */
  isOpen?: (req: Request) => boolean;
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The identity `authenticate` attached, when the request carried a valid token. */
export function requestIdentity(res: Response): Identity | undefined {
  return res.locals.identity as Identity | undefined;
}

/** Who a refused token of this hub named (expired, or its session ended): for the audit trail, never for access. */
export function claimedIdentity(res: Response): Identity | undefined {
  return res.locals.claimedIdentity as Identity | undefined;
}

function quoted(text: string): string {
  return text.replace(/["\\]/g, '');
}

function unauthorized(res: Response, challenge: string, text: string): void {
  res.setHeader('WWW-Authenticate', challenge);
  res.setHeader('Cache-Control', 'no-store');
  res
    .status(401)
    .type('application/fhir+json')
    .send(
      JSON.stringify({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'login', details: { text } }],
      }),
    );
}

export function authenticate(options: AuthenticateOptions): RequestHandler {
  return async (req, res, next) => {
    // CORS preflights carry no credentials (Fetch standard); the CORS layer answers them.
    if (req.method === 'OPTIONS' || options.isOpen?.(req)) {
      next();
      return;
    }
    const header = req.headers.authorization;
    if (header === undefined) {
      if (options.required) {
        unauthorized(
          res,
          'Bearer realm="hub"',
          'Authentication is required: send Authorization: Bearer <access token>',
        );
        return;
      }
      next();
      return;
    }
    const token = BEARER.exec(header)?.[1];
    if (token === undefined) {
      unauthorized(
        res,
        'Bearer realm="hub", error="invalid_token", error_description="expected a Bearer token"',
        'The Authorization header must be "Bearer <access token>"',
      );
      return;
    }
    try {
      const identity = await options.tokens.verify(token);
      if (identity.kind === 'user' && (await options.revokedSessions?.isRevoked(identity.sessionId))) {
        throw new InvalidTokenError('the session of this access token has ended (logged out)', identity);
      }
      res.locals.identity = identity;
    } catch (err) {
      if (!(err instanceof InvalidTokenError)) {
        next(err);
        return;
      }
      if (err.claimed !== undefined) {
        res.locals.claimedIdentity = err.claimed;
      }
      unauthorized(
        res,
        `Bearer realm="hub", error="invalid_token", error_description="${quoted(err.message)}"`,
        `Invalid access token: ${err.message}`,
      );
      return;
    }
    next();
  };
}
