/**
 * Logout: POST /oauth2/logout (and POST /oauth2/revoke, RFC 7009's form) ends the login session of a
 * person's access token, given as `Authorization: Bearer` or as the form parameter `token`; or, from
 * the browser, the session of the session cookie, with the CSRF token of the login page. Every token
 * of the session stops working at once in this process and within REVOCATION_REFRESH_MS in the others.
 * Clients' (Backend Services) tokens cannot be revoked: they expire within five minutes.
 *
 * Every request is audited before the answer (DICOM 110114 User Authentication, subtype 110123
 * Logout): a success when it ended a session, a refusal (outcome 4, a fixed text) when it ended none.
 */
import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { Request, Response, Router } from 'express';
import type { Logger } from 'pino';
import type { AuditActor } from '../audit/audit-event.ts';
import type { Auditor } from '../audit/auditor.ts';
import { InvalidTokenError } from './access-tokens.ts';
import type { AccessTokens, Identity } from './access-tokens.ts';
import type { ClientRegistry } from './clients.ts';
import { allowClientOrigin } from './code-grant.ts';
import { CSRF_COOKIE, SESSION_COOKIE, clearCookie, readCookie } from './cookies.ts';
import type { RevokedSessions, SessionStore } from './sessions.ts';

export const LOGOUT_PATHS = ['/oauth2/logout', '/oauth2/revoke'];

export interface LogoutOptions {
  tokens: AccessTokens;
  clients: ClientRegistry;
  sessions: SessionStore;
  revokedSessions: RevokedSessions;
  secureCookies: boolean;
  logger: Logger;
  auditor?: Auditor;
}

/** The audit trail's texts for a logout that ended no session: fixed, whatever the details. */
export const LOGOUT_REFUSED_AUDIT_TEXT =
  'No session was ended: no valid access token of a person, and no session cookie with its CSRF token.';
export const CLIENT_REVOKE_REFUSED_AUDIT_TEXT = "A client's access token cannot be revoked.";

function bearer(req: Request): string | undefined {
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

function sameSecret(a: string | undefined, b: unknown): boolean {
  if (a === undefined || typeof b !== 'string') {
    return false;
  }
  // Byte lengths: equal string lengths can differ in UTF-8, and timingSafeEqual throws on unequal sizes.
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createLogoutRoutes(options: LogoutOptions): Router {
  const routes = express.Router();
  const form = express.urlencoded({ extended: false, limit: 16 * 1024, parameterLimit: 10 });

  async function revoke(sessionId: string, res: Response): Promise<void> {
    const end = await options.sessions.revoke(sessionId);
    if (end) {
      options.revokedSessions.add(sessionId, end);
    }
    options.logger.info({ requestId: res.locals.requestId, sessionId }, 'logout');
  }

  async function audit(
    req: Request,
    actor: Omit<AuditActor, 'address'>,
    failureText: string | undefined,
  ): Promise<void> {
    await options.auditor?.authentication(req, {
      event: 'logout',
      actor,
      success: failureText === undefined,
      failureText,
    });
  }

  routes.post(LOGOUT_PATHS, form, async (req, res, next) => {
    res.locals.route = 'oauth2/logout';
    res.setHeader('Cache-Control', 'no-store');
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      const token = bearer(req) ?? (typeof body.token === 'string' ? body.token : undefined);
      let identity: Identity | undefined;
      if (token !== undefined) {
        try {
          identity = await options.tokens.verify(token);
        } catch (err) {
          if (!(err instanceof InvalidTokenError)) {
            throw err;
          }
          // RFC 7009 §2.2: an invalid or expired token is no error; there is nothing to revoke.
        }
      }
      if (identity?.kind === 'client') {
        await audit(req, { clientId: identity.clientId, clientIsRequestor: true }, CLIENT_REVOKE_REFUSED_AUDIT_TEXT);
        res.status(400).json({
          error: 'unsupported_token_type',
          error_description: "a client's access tokens cannot be revoked; they expire within five minutes",
        });
        return;
      }
      let actor: Omit<AuditActor, 'address'> = { clientIsRequestor: true };
      let ended = 0;
      if (identity?.kind === 'user') {
        actor = {
          userId: identity.userId,
          fhirUser: identity.fhirUser,
          clientId: identity.clientId,
          clientIsRequestor: false,
        };
        await allowClientOrigin(res, req.headers.origin, identity.clientId, options.clients);
        await revoke(identity.sessionId, res);
        ended++;
      }
      const cookie = readCookie(req, SESSION_COOKIE);
      // Without a token, a cookie alone could be sent by any site: the page's CSRF token must come along.
      if (cookie !== undefined && (identity !== undefined || sameSecret(readCookie(req, CSRF_COOKIE), body.csrf))) {
        const session = await options.sessions.forCookie(cookie);
        if (session !== undefined && session.id !== identity?.sessionId) {
          await revoke(session.id, res);
          ended++;
          if (identity === undefined) {
            actor = { userId: session.userId, fhirUser: session.fhirUser, clientIsRequestor: false };
          }
        }
        clearCookie(res, SESSION_COOKIE, options.secureCookies);
      }
      await audit(req, actor, ended > 0 ? undefined : LOGOUT_REFUSED_AUDIT_TEXT);
      res.status(200).end();
    } catch (err) {
      next(err);
    }
  });

  routes.all(LOGOUT_PATHS, (_req, res) => {
    res.setHeader('Allow', 'POST');
    res.status(405).json({ error: 'invalid_request', error_description: 'use POST' });
  });

  routes.use(LOGOUT_PATHS, (err: unknown, _req: Request, res: Response, next: (err?: unknown) => void) => {
    const status = (err as { status?: number }).status;
    if (res.headersSent || status === undefined || status >= 500) {
      next(err);
      return;
    }
    res.status(status).json({ error: 'invalid_request', error_description: (err as Error).message });
  });

  return routes;
}
