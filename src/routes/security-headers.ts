/**
 * Security headers on every response. Written here rather than taken from helmet: the hub serves
 * JSON, DICOM and one HTML page, so the set is short and fixed, and helmet's defaults (a CSP for
 * HTML sites, `Cross-Origin-Resource-Policy: same-origin` everywhere) would each need overriding.
 *
 * - The CSP forbids everything: no API response is meant to run or load anything. The login page
 *   replaces it with its own (src/auth/login-page.ts).
 * - `Cross-Origin-Resource-Policy: same-origin`, except under /dicomweb, where it is `cross-origin`
 *   so that cross-origin-isolated viewers (COEP require-corp, for SharedArrayBuffer decoders) may
 *   load our responses; CORS still decides which origins' scripts may read them.
 * - HSTS only when the hub's public URL is https: browsers ignore it over http anyway.
 */
import type { RequestHandler } from 'express';

export interface SecurityHeadersOptions {
  /** Send Strict-Transport-Security (BASE_URL is https). */
  hsts: boolean;
}

const HSTS = 'max-age=31536000; includeSubDomains';

export function securityHeaders(options: SecurityHeadersOptions): RequestHandler {
  return (req, res, next) => {
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    const dicomweb = req.path === '/dicomweb' || req.path.startsWith('/dicomweb/');
    res.setHeader('Cross-Origin-Resource-Policy', dicomweb ? 'cross-origin' : 'same-origin');
    res.setHeader('X-Permitted-Cross-Domain-Policies', 'none');
    if (options.hsts) {
      res.setHeader('Strict-Transport-Security', HSTS);
    }
    next();
  };
}
