/**
 * Bull Board (@bull-board/express) at /admin/queues/board: the hub's queues and their jobs for an
 * admin to look into, beside the hub's own queue view (/admin/queues, admin-queues.ts), which stays
 * the place to retry a dead letter.
 *
 * Who reaches it. A browser navigation cannot send the bearer token the web app holds, so the app
 * trades it: an admin's POST /admin/queues/board/session with their token sets a board pass
 * (auth/board-pass.ts) as a cookie (`hub_board`) that only this path sees (HttpOnly,
 * SameSite=Strict, Secure on https), for the token's remaining life. The pass is not the token: it
 * opens this board and nothing else (not /fhir, /dicomweb or the admin API). Every request is then
 * checked (signature, expiry, the login session not ended), and only a person whose role is `admin`
 * is let in: not a coordinator, nor a system client with `hub:admin`. The board never writes: every
 * queue is read-only, and anything but GET or HEAD is refused, so the cookie cannot change a job.
 *
 * What it shows. Job data is ids only (queues/job-data.ts); a failure's reason and stack trace are
 * redacted like the dead-letter view's errors (an address a mail server quoted back becomes
 * `<address>`). Its page is our own (Bull Board's template loads Google's fonts and inline styles):
 * the same scripts and style sheet, under a CSP of its own for this path only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { AppViewRoute, ControllerHandlerReturnType } from '@bull-board/api/typings/app';
import { InvalidTokenError } from '../auth/access-tokens.ts';
import { requestIdentity } from '../auth/authenticate.ts';
import type { BoardPasses } from '../auth/board-pass.ts';
import { redactErrorMessage } from '../queues/job-data.ts';
import type { QueueProducer } from '../queues/queue-definitions.ts';

export const BULL_BOARD_PATH = '/admin/queues/board';
const BOARD_COOKIE = 'hub_board';
const BOARD_ROLE = 'admin';

/**
 * The one style element Bull Board's UI writes itself: its logo's, an inline SVG (9.10.1; the version
 * is pinned, and the browser test fails on a CSP violation should an upgrade change it).
 */
const LOGO_STYLE_HASH = "'sha256-r2N1TB/gHbBtBZFKg7ejmq1acVSREzucTAEw6ga4hoU='";

/** Bull Board's own scripts and style sheet, from this hub; nothing else loads from anywhere. */
export const BULL_BOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  `style-src 'self' ${LOGO_STYLE_HASH}`,
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface BullBoardOptions {
  producer: QueueProducer;
  /** Bearer authentication of a required token, as for /admin/queues (auth/index.ts `admin`). */
  authenticate: readonly RequestHandler[];
  /** The board's own credential, which the session hand-over issues and the cookie carries. */
  passes: BoardPasses;
  /** Secure cookies: BASE_URL is https. */
  secureCookies: boolean;
}

/** The scripts and style sheet Bull Board's own page names (their names carry their content's hash). */
function boardAssets(uiDir: string): { scripts: string[]; styles: string[] } {
  const template = fs.readFileSync(path.join(uiDir, 'dist/index.ejs'), 'utf8');
  const scripts = [...template.matchAll(/<script defer src="(static\/js\/[\w.-]+\.js)"><\/script>/g)].map((m) => m[1]);
  const styles = [...template.matchAll(/<link href="(static\/css\/[\w.-]+\.css)" rel="stylesheet">/g)].map((m) => m[1]);
  if (scripts.length === 0 || styles.length === 0) {
    throw new Error(`Bull Board's page at ${uiDir} names no scripts or style sheets: has its template changed?`);
  }
  return { scripts: scripts.filter((s) => s !== undefined), styles: styles.filter((s) => s !== undefined) };
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Bull Board's adapter, with the board's page written here instead of from its template. */
class HubBoardAdapter extends ExpressAdapter {
  private readonly assets: { scripts: string[]; styles: string[] };

  constructor(assets: { scripts: string[]; styles: string[] }) {
    super();
    this.assets = assets;
  }

  override setEntryRoute(route: AppViewRoute): this {
    const assets = this.assets;
    const page = (_req: Request, res: Response): void => {
      // The UI's configuration is JSON, escaped by Bull Board (`<` and `>` as \u003c, \u003e): data, not script.
      const { params } = route.handler({ basePath: this.basePath, uiConfig: this.uiConfig });
      const html = [
        '<!DOCTYPE html>',
        '<html lang="en" dir="ltr">',
        '<head>',
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        `<base href="${escapeHtml(params.basePath ?? '/')}">`,
        `<title>${escapeHtml(params.title ?? 'Queues')}</title>`,
        '<link rel="icon" type="image/svg+xml" href="static/images/logo.svg">',
        ...assets.styles.map((href) => `<link href="${href}" rel="stylesheet">`),
        '</head>',
        '<body class="preload">',
        `<script id="__UI_CONFIG__" type="application/json">${params.uiConfig ?? '{}'}</script>`,
        '<div id="root"></div>',
        ...assets.scripts.map((src) => `<script defer src="${src}"></script>`),
        '</body>',
        '</html>',
      ].join('\n');
      res.setHeader('Cache-Control', 'no-store');
      res.type('html').send(html);
    };
    for (const route_ of Array.isArray(route.route) ? route.route : [route.route]) {
      this.app.get(route_, page);
    }
    return this;
  }
}

/** Failure reasons and stack traces as the dead-letter view shows errors (queues/job-data.ts). */
export function redactFailures(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(redactFailures);
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (key === 'failedReason' && typeof child === 'string') {
      copy[key] = redactErrorMessage(child);
    } else if (key === 'stacktrace' && Array.isArray(child)) {
      // Line by line: the redaction folds whitespace, and a stack trace reads by its lines.
      copy[key] = child.map((trace) =>
        typeof trace === 'string'
          ? trace
              .split('\n')
              .map((line) => redactErrorMessage(line, 1000))
              .join('\n')
          : trace,
      );
    } else {
      copy[key] = redactFailures(child);
    }
  }
  return copy;
}

function readBoardCookie(req: Request): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === BOARD_COOKIE) {
      const value = part.slice(index + 1).trim();
      // A board pass is a JWT: three base64url parts.
      return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(value) && value.length <= 4000 ? value : undefined;
    }
  }
  return undefined;
}

function cookieAttributes(secure: boolean): string {
  return `Path=${BULL_BOARD_PATH}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** A page in words for a browser that came here without an admin's visit (no script, no style). */
function refusal(res: Response, status: 401 | 403 | 405, text: string): void {
  res.setHeader('Cache-Control', 'no-store');
  res
    .status(status)
    .type('html')
    .send(
      `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Queues</title></head>` +
        `<body><main><h1>Bull Board</h1><p role="alert">${escapeHtml(text)}</p></main></body></html>\n`,
    );
}

const OPEN_FROM_APP =
  'Open Bull Board from the Queues screen of the web app (/dashboard/queues), signed in as an admin.';

/** Only a person whose role is admin goes on (after authentication, which answered 401 for a bad token). */
function adminOnly(req: Request, res: Response, next: NextFunction): void {
  const identity = requestIdentity(res);
  if (identity?.kind === 'user' && identity.role === BOARD_ROLE) {
    next();
    return;
  }
  const who = identity?.kind === 'user' ? `a ${identity.role.replace(/-/g, ' ')}` : 'a system client';
  if (req.method === 'POST') {
    res.setHeader('Cache-Control', 'no-store');
    res.status(403).json({ error: 'forbidden', error_description: `Bull Board is for admins only, not ${who}` });
    return;
  }
  refusal(res, 403, `Bull Board is for admins only; you are signed in as ${who}.`);
}

function runAll(handlers: readonly RequestHandler[]): RequestHandler {
  return (req, res, next) => {
    const step = (index: number): void => {
      const handler = handlers[index];
      if (handler === undefined) {
        next();
        return;
      }
      Promise.resolve(handler(req, res, (err?: unknown) => (err === undefined ? step(index + 1) : next(err)))).catch(
        next,
      );
    };
    step(0);
  };
}

export function createBullBoardRoutes(options: BullBoardOptions): Router {
  const uiDir = path.dirname(createRequire(import.meta.url).resolve('@bull-board/ui/package.json'));
  const adapter = new HubBoardAdapter(boardAssets(uiDir));
  adapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: options.producer.queueNames.map(
      (name) => new BullMQAdapter(options.producer.queue(name), { readOnlyMode: true, allowRetries: false }),
    ),
    serverAdapter: adapter,
    options: {
      uiBasePath: uiDir,
      uiConfig: { boardTitle: 'Hub queues' },
      handlerHooks: {
        after: (_context, result) => ({ ...result, body: redactFailures(result.body) }) as ControllerHandlerReturnType,
      },
    },
  });
  const authenticate = runAll(options.authenticate);
  const clearPass = (res: Response): void => {
    res.append('Set-Cookie', `${BOARD_COOKIE}=; ${cookieAttributes(options.secureCookies)}; Max-Age=0`);
  };
  const routes = express.Router();
  routes.use((_req, res, next) => {
    res.locals.route = 'admin-queues-board';
    res.setHeader('Content-Security-Policy', BULL_BOARD_CSP);
    next();
  });

  // The web app's hand-over: the admin's bearer token is traded for a board pass in the cookie.
  routes.post('/session', authenticate, adminOnly, async (_req, res, next) => {
    const identity = requestIdentity(res);
    if (identity?.kind !== 'user') {
      next(new Error('the board session was reached without a person'));
      return;
    }
    try {
      const { pass, expiresIn } = await options.passes.issue(identity);
      res.setHeader('Cache-Control', 'no-store');
      res.append(
        'Set-Cookie',
        `${BOARD_COOKIE}=${pass}; ${cookieAttributes(options.secureCookies)}; Max-Age=${expiresIn}`,
      );
      res.status(204).end();
    } catch (err) {
      next(err);
    }
  });
  routes.delete('/session', (_req, res) => {
    clearPass(res);
    res.status(204).end();
  });

  routes.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      refusal(res, 405, 'The board is read-only: retry dead letters from the Queues screen of the web app.');
      return;
    }
    // A bearer token (a script, a tool) is checked as on /admin/queues; a browser brings the pass.
    if (req.headers.authorization !== undefined) {
      authenticate(req, res, next);
      return;
    }
    const pass = readBoardCookie(req);
    if (pass === undefined) {
      refusal(res, 401, OPEN_FROM_APP);
      return;
    }
    options.passes.verify(pass).then(
      (identity) => {
        res.locals.identity = identity;
        next();
      },
      (err: unknown) => {
        if (!(err instanceof InvalidTokenError)) {
          next(err);
          return;
        }
        // Expired, or its session ended: the visit is over.
        clearPass(res);
        refusal(res, 401, OPEN_FROM_APP);
      },
    );
  });
  const board = adapter.getRouter() as express.Express;
  board.disable('x-powered-by');
  routes.use(adminOnly, board);
  routes.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found\n');
  });
  return routes;
}
