/**
 * The web app (web/, built into web/dist by `npm ci`) at /dashboard: the hashed files under
 * /dashboard/assets/ with a year's immutable caching, and index.html, revalidated on every load, for
 * /dashboard and every path below it that is not a file (the app's own routes, such as the
 * /dashboard/cases/<id> links the e-mails carry).
 *
 * The CSP replaces the API's `default-src 'none'` (security-headers.ts) on these paths only: the
 * app's scripts and styles come from the hub and nowhere else, no inline script or style element
 * runs, and the app may talk to the hub alone (its FHIR API and the OAuth endpoints). Images and
 * frames may also show blob: URLs: bytes the app itself fetched from the hub with the person's token
 * (a rendered DICOM frame, a records PDF), since an <img> or <iframe> cannot send that token.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Router } from 'express';

export const DASHBOARD_PATH = '/dashboard';
/** Where `npm run build:web` writes the app. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  // blob: for the images and PDFs the app fetches with the person's token and shows in place.
  "img-src 'self' data: blob:",
  "frame-src 'self' blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The hub's settings the app reads from /dashboard/settings.json (no secrets: it is served without a token). */
export interface DashboardSettings {
  /** OHIF_VIEWER_URL: the app links a study to this viewer, adding `StudyInstanceUIDs=<uid>`. */
  ohifViewerUrl?: string;
}

export function createDashboardRoutes(dir: string = DEFAULT_DASHBOARD_DIR, settings: DashboardSettings = {}): Router {
  const routes = express.Router();
  const indexFile = path.join(dir, 'index.html');
  routes.use(DASHBOARD_PATH, (_req, res, next) => {
    res.locals.route = 'dashboard';
    res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
    next();
  });
  // A file the app fetches, since the CSP lets no inline script hand it the settings.
  routes.get(`${DASHBOARD_PATH}/settings.json`, (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.json({ ohifViewerUrl: settings.ohifViewerUrl ?? null });
  });
  // Vite names every file under assets/ by the hash of its content: a new build has new names.
  routes.use(
    `${DASHBOARD_PATH}/assets`,
    express.static(path.join(dir, 'assets'), {
      index: false,
      redirect: false,
      etag: false,
      setHeaders: (res) => res.setHeader('Cache-Control', IMMUTABLE),
    }),
  );
  // An asset of another build is gone: a plain 404, never index.html under a script's name.
  routes.use(`${DASHBOARD_PATH}/assets`, (_req, res) => {
    res.status(404).type('text/plain').send('Not found\n');
  });
  routes.get([DASHBOARD_PATH, `${DASHBOARD_PATH}/{*rest}`], (_req, res) => {
    if (!fs.existsSync(indexFile)) {
      res
        .status(503)
        .type('text/plain')
        .send('The web app is not built: run `npm run build:web` (npm ci does it) and restart the hub.\n');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(indexFile, { etag: false, lastModified: true });
  });
  return routes;
}
