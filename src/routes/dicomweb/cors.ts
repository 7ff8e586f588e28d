/**
 * CORS for browser viewers (OHIF and the like) on every /dicomweb route, and
 * `Cross-Origin-Resource-Policy: cross-origin` so that cross-origin-isolated viewer pages
 * (COEP require-corp, needed for SharedArrayBuffer decoders) may load our responses.
 */
import type { NextFunction, Request, Response } from 'express';

const ALLOWED_METHODS = 'GET, POST, OPTIONS';
const ALLOWED_HEADERS = 'Accept, Content-Type, Authorization';
/** Headers a viewer script may read beyond the CORS-safelisted ones. */
const EXPOSED_HEADERS = 'Content-Length, Content-Location, X-Request-Id';
const PREFLIGHT_MAX_AGE_SECONDS = '600';

export function dicomwebCors(req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== '') {
    // Any origin is echoed for now; the security issue restricts this to configured viewer origins.
    // No Allow-Credentials: viewers send a bearer token in Authorization, and cookies must not ride
    // along on requests from an arbitrary echoed origin.
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    res.append('Vary', 'Origin');
  }
  if (req.method === 'OPTIONS') {
    res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
    res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
    res.setHeader('Access-Control-Max-Age', PREFLIGHT_MAX_AGE_SECONDS);
    res.setHeader('Allow', ALLOWED_METHODS);
    res.locals.route = 'dicomweb-preflight';
    res.status(204).end();
    return;
  }
  next();
}
