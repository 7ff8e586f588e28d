/**
 * POST /oauth2/token: the client_credentials grant of SMART Backend Services (RFC 6749 §4.4 with a
 * JWT client assertion, RFC 7523), and the authorization_code grant of people's logins (code-grant.ts).
 * Rate-limited per client address (rate-limit.ts). Answers `{ access_token, token_type, expires_in, scope }` or an
 * RFC 6749 §5.2 error. Nothing of the assertion is logged, only the client id and the outcome.
 */
import express from 'express';
import type { Request, Response, Router } from 'express';
import type { Logger } from 'pino';
import type { AccessTokens } from './access-tokens.ts';
import { JWT_BEARER_ASSERTION_TYPE, UnprovedClientAssertion, claimedClientId } from './client-assertion.ts';
import type { ClientAssertionVerifier } from './client-assertion.ts';
import { CLIENT_ID_PATTERN } from './clients.ts';
import { allowClientOrigin, exchangeCode } from './code-grant.ts';
import type { CodeGrantOptions } from './code-grant.ts';
import type { RateLimit } from './rate-limit.ts';
import type { Auditor } from '../audit/auditor.ts';
import { clientAddress } from '../audit/client-address.ts';
import { OAuthError } from './oauth-error.ts';
import { ScopeSyntaxError, formatClientScopes, grantScopes, parseClientScopes } from './scopes.ts';
import type { ClientScopes } from './scopes.ts';

export const TOKEN_PATH = '/oauth2/token';
const MAX_FORM_BYTES = 32 * 1024;

export interface TokenEndpointOptions {
  verifier: ClientAssertionVerifier;
  tokens: AccessTokens;
  logger: Logger;
  /** The authorization_code grant; without it only client_credentials is served. */
  codeGrant?: CodeGrantOptions;
  /** Requests per client address. */
  limiter?: RateLimit;
  /** Every token issued, and every refusal, is audited before the answer (audit/auditor.ts). */
  auditor?: Auditor;
}

/** The refusal text of the audit trail: the same for every reason (the reason is in the log). */
export const TOKEN_REFUSED_AUDIT_TEXT = 'The token request was refused.';

function noStore(res: Response): void {
  // RFC 6749 §5.1: token responses must not be cached.
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
}

/** The form's parameters; RFC 6749 §3.2: none may be given twice. */
function formParameters(req: Request): Record<string, string> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new OAuthError('invalid_request', 'the request must be application/x-www-form-urlencoded');
  }
  const body = (req.body ?? {}) as Record<string, unknown>;
  const parameters: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== 'string') {
      throw new OAuthError('invalid_request', `the parameter "${name}" is given more than once`);
    }
    parameters[name] = value;
  }
  return parameters;
}

function requestedScopes(text: string | undefined): ClientScopes {
  if (text === undefined || text.trim() === '') {
    throw new OAuthError('invalid_request', 'the "scope" parameter is required');
  }
  try {
    return parseClientScopes(text);
  } catch (err) {
    if (err instanceof ScopeSyntaxError) {
      throw new OAuthError('invalid_scope', err.message);
    }
    throw err;
  }
}

export function createTokenRoutes(options: TokenEndpointOptions): Router {
  const routes = express.Router();
  const form = express.urlencoded({ extended: false, limit: MAX_FORM_BYTES, type: () => true, parameterLimit: 20 });

  routes.post(TOKEN_PATH, form, async (req, res) => {
    res.locals.route = 'oauth2/token';
    noStore(res);
    let clientId: string | undefined;
    const wait = (await options.limiter?.take(`ip:${clientAddress(req) ?? ''}`)) ?? 0;
    if (wait > 0) {
      res.setHeader('Retry-After', String(wait));
      options.logger.warn({ requestId: res.locals.requestId }, 'token request rate-limited');
      res.status(429).json({
        error: 'invalid_request',
        error_description: `too many token requests from this address; retry after ${wait} s`,
      });
      return;
    }
    try {
      const parameters = formParameters(req);
      if (parameters.grant_type === undefined) {
        throw new OAuthError('invalid_request', 'the "grant_type" parameter is required');
      }
      if (parameters.grant_type === 'authorization_code' && options.codeGrant) {
        clientId = CLIENT_ID_PATTERN.test(parameters.client_id ?? '') ? parameters.client_id : undefined;
        await allowClientOrigin(res, req.headers.origin, clientId, options.codeGrant.clients);
        const outcome = await exchangeCode(options.codeGrant, parameters);
        await options.auditor?.authentication(req, {
          event: 'token',
          actor: { userId: outcome.userId, clientId, clientIsRequestor: false },
          success: true,
          scope: outcome.response.scope,
        });
        options.logger.info(
          {
            requestId: res.locals.requestId,
            clientId,
            userId: outcome.userId,
            sessionId: outcome.sessionId,
            scope: outcome.response.scope,
          },
          'access token issued',
        );
        res.status(200).json(outcome.response);
        return;
      }
      if (parameters.grant_type !== 'client_credentials') {
        throw new OAuthError(
          'unsupported_grant_type',
          `only grant_type=client_credentials${options.codeGrant ? ' and authorization_code are' : ' is'} supported`,
        );
      }
      if (parameters.client_assertion_type !== JWT_BEARER_ASSERTION_TYPE || parameters.client_assertion === undefined) {
        throw new OAuthError(
          'invalid_client',
          `client authentication requires client_assertion_type=${JWT_BEARER_ASSERTION_TYPE} and a client_assertion`,
        );
      }
      clientId = claimedClientId(parameters.client_assertion);
      const client = await options.verifier.verify(parameters.client_assertion);
      if (parameters.client_id !== undefined && parameters.client_id !== client.id) {
        throw new OAuthError('invalid_client', '"client_id" does not match the client assertion');
      }
      const requested = requestedScopes(parameters.scope);
      // Requested rights beyond the registration are left out (RFC 6749 §3.3); none left is an error.
      const granted = grantScopes(requested.resources, client.scopes);
      const hubAdmin = requested.hubAdmin && client.hubAdmin;
      if (granted.length === 0 && !hubAdmin) {
        const allowed = formatClientScopes({ resources: client.scopes, hubAdmin: client.hubAdmin });
        throw new OAuthError(
          'invalid_scope',
          `none of the requested scopes is allowed for this client (allowed: ${allowed})`,
        );
      }
      const issued = await options.tokens.issue(client.id, granted, hubAdmin);
      await options.auditor?.authentication(req, {
        event: 'token',
        actor: { clientId: client.id, clientIsRequestor: true },
        success: true,
        scope: issued.scope,
      });
      options.logger.info(
        { requestId: res.locals.requestId, clientId: client.id, scope: issued.scope },
        'access token issued',
      );
      res.status(200).json({
        access_token: issued.accessToken,
        token_type: 'bearer',
        expires_in: issued.expiresIn,
        scope: issued.scope,
      });
    } catch (err) {
      if (err instanceof OAuthError) {
        options.logger.info(
          { requestId: res.locals.requestId, clientId, error: err.code, reason: err.message },
          'token request refused',
        );
        try {
          // An assertion naming a registered client is recorded naming it, within a budget per client.
          await options.auditor?.authentication(req, {
            event: 'token',
            actor:
              err instanceof UnprovedClientAssertion
                ? { clientId: err.clientId, clientIsRequestor: true, claimed: true }
                : { clientId, clientIsRequestor: true },
            success: false,
            failureText: TOKEN_REFUSED_AUDIT_TEXT,
          });
        } catch (auditError) {
          options.logger.error(
            { requestId: res.locals.requestId, err: (auditError as Error).message },
            'token refusal not audited',
          );
        }
        res.status(err.status).json(err.toJSON());
        return;
      }
      options.logger.error(
        { requestId: res.locals.requestId, clientId, err: (err as Error).message },
        'token request failed',
      );
      res.status(500).json({
        error: 'server_error',
        error_description: `internal error (request ${String(res.locals.requestId ?? '')})`,
      });
    }
  });

  routes.all(TOKEN_PATH, (_req, res) => {
    res.locals.route = 'oauth2/token';
    res.setHeader('Allow', 'POST');
    res.status(405).json({ error: 'invalid_request', error_description: 'use POST' });
  });

  // A body the form parser refuses (too large, bad charset) is an invalid_request, not a FHIR error.
  routes.use(TOKEN_PATH, (err: unknown, _req: Request, res: Response, next: (err?: unknown) => void) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    noStore(res);
    const status = (err as { status?: number }).status ?? 400;
    res
      .status(status >= 400 && status < 500 ? status : 400)
      .json({ error: 'invalid_request', error_description: (err as Error).message });
  });

  return routes;
}
