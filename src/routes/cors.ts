/**
 * The hub's one CORS policy (Fetch standard, "CORS protocol"), mounted before authentication on
 * /fhir, /dicomweb, /oauth2 and /.well-known: only the origins in CORS_ALLOWED_ORIGINS, compared
 * exactly, get `Access-Control-Allow-Origin`; every other origin gets none, so browsers withhold the
 * response from its scripts. A preflight from an allowed origin is answered here (204) with the
 * methods and headers the API uses, Authorization included; from any other origin it is 403.
 *
 * No `Access-Control-Allow-Credentials`: browser apps send a bearer token in Authorization, and the
 * login cookies (under /oauth2) are for top-level navigation only, never for cross-origin scripts.
 * The token and revoke endpoints additionally answer the origins of the redirect URIs registered for
 * the public client named in the request (src/auth/code-grant.ts `allowClientOrigin`).
 */
import type { RequestHandler, Response } from 'express';

export interface CorsPolicy {
  /** Exact origins (`scheme://host[:port]`) as a browser sends them in `Origin`. */
  allowedOrigins: readonly string[];
}

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
const ALLOWED_HEADERS = [
  'Authorization',
  'Accept',
  'Content-Type',
  'If-Match',
  'If-None-Match',
  'If-None-Exist',
  'If-Modified-Since',
  'Prefer',
  'X-Request-Id',
].join(', ');
/** Response headers a script may read beyond the CORS-safelisted ones. */
const EXPOSED_HEADERS = [
  'Content-Length',
  'Content-Location',
  'Location',
  'ETag',
  'Last-Modified',
  'Retry-After',
  'Warning',
  'WWW-Authenticate',
  'X-Request-Id',
].join(', ');
const PREFLIGHT_MAX_AGE_SECONDS = '600';

function varyOnOrigin(res: Response): void {
  const vary = res.getHeader('Vary');
  const current = typeof vary === 'string' ? vary : Array.isArray(vary) ? vary.join(', ') : '';
  if (!current.split(',').some((name) => name.trim().toLowerCase() === 'origin')) {
    res.append('Vary', 'Origin');
  }
}

export function corsPolicy(policy: CorsPolicy): RequestHandler {
  const allowed = new Set(policy.allowedOrigins);
  return (req, res, next) => {
    // Whether or not this request carries Origin, caches must keep the answers per origin apart.
    varyOnOrigin(res);
    const origin = req.headers.origin;
    const permitted = typeof origin === 'string' && allowed.has(origin);
    const preflight =
      req.method === 'OPTIONS' &&
      typeof origin === 'string' &&
      req.headers['access-control-request-method'] !== undefined;
    if (preflight) {
      res.locals.route = 'cors-preflight';
      if (!permitted) {
        res
          .status(403)
          .json({ error: 'origin_not_allowed', error_description: 'this origin is not in CORS_ALLOWED_ORIGINS' });
        return;
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', PREFLIGHT_MAX_AGE_SECONDS);
      res.status(204).end();
      return;
    }
    if (permitted) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    }
    next();
  };
}
