/**
 * What the browser tests of the web app share: where the built app is, Debian's Chromium driven by
 * playwright-core, the hub's login page filled in as a person would, and a watch on the page for
 * CSP violations and uncaught errors.
 *
 * The app is the one `npm ci` built (web/dist). `TEST_DASHBOARD_DIR` points the tests at another
 * build (`npx vite build web --outDir DIR`), which the hub then serves through DASHBOARD_DIR: two
 * people can build and test different versions at once without overwriting each other's files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { REPO_ROOT } from './hub-process.ts';

/** Debian's chromium package (.ci/run installs it). */
export const CHROMIUM = '/usr/bin/chromium';
/** Waits on the page: the hub and the browser share two cores with other suites. */
export const UI_TIMEOUT_MS = 15_000;

/** The built app's folder; throws with the command to run when it is not built. */
export function dashboardDir(): string {
  const dir = process.env.TEST_DASHBOARD_DIR ?? path.join(REPO_ROOT, 'web/dist');
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    throw new Error(`${dir} holds no built web app: run \`npm run build:web\` (npm ci does it)`);
  }
  return dir;
}

/** The hub's environment for serving the app under test. */
export function dashboardEnvironment(): Record<string, string> {
  return { DASHBOARD_DIR: dashboardDir() };
}

/**
 * Debian's Chromium. Under test/shifted-clock.sh (libfaketime preloaded) the browser itself runs
 * unfaked, as Chromium stalls with libfaketime loaded, and each of its contexts gets Playwright's clock
 * set to the test's moved one, so the app, the hub and the test agree on the date.
 */
export async function launchChromium(): Promise<Browser> {
  const shifted = process.env.FAKETIME !== undefined;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root in CI: no sandbox; and no calls home, which this network refuses.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    ...(shifted ? { env: unfakedEnvironment() } : {}),
  });
  if (shifted) {
    const newContext = browser.newContext.bind(browser);
    browser.newContext = async (options) => {
      const context = await newContext(options);
      await context.clock.install({ time: Date.now() });
      return context;
    };
  }
  return browser;
}

function unfakedEnvironment(): Record<string, string> {
  const kept = Object.entries(process.env).filter(
    (entry): entry is [string, string] =>
      entry[1] !== undefined && entry[0] !== 'LD_PRELOAD' && !entry[0].startsWith('FAKETIME'),
  );
  return Object.fromEntries(kept);
}

/** Fills in the hub's login page (the authenticator code for staff) and submits it. */
export async function signIn(page: Page, email: string, password: string, totp?: string): Promise<void> {
  await page.locator('#email').waitFor({ timeout: UI_TIMEOUT_MS });
  await page.fill('#email', email);
  await page.fill('#password', password);
  if (totp !== undefined) {
    await page.fill('#totp', totp);
  }
  await page.click('button[type=submit]');
}

/**
 * Collects what must never happen on a page of the app: a script or style the CSP blocked, and an
 * uncaught error. A test ends with `expect(problems).toEqual([])`.
 */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) {
      problems.push(message.text());
    }
  });
  page.on('pageerror', (error) => problems.push(error.message));
  return problems;
}

/** The access token the app holds for the signed-in person (to show the API gives no more). */
export async function appToken(page: Page): Promise<string> {
  return page.evaluate(() => JSON.parse(sessionStorage.getItem('hub-dashboard.session') ?? '{}').accessToken);
}

export interface AxeFinding {
  id: string;
  impact: string;
  help: string;
  nodes: string[];
}

/**
 * axe-core's serious and critical findings on the page as it is now (the bar: none on any
 * screen). axe runs through the DevTools protocol, which the page's CSP does not govern, so the
 * page keeps its real CSP while it is checked.
 */
export async function axeFindings(page: Page): Promise<AxeFinding[]> {
  const source = await fs.promises.readFile(path.join(REPO_ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  // A string, evaluated in the page: this file is compiled without the DOM's types.
  const findings = await page.evaluate<
    AxeFinding[]
  >(`axe.run(document, { resultTypes: ['violations'] }).then((result) =>
    result.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact || 'unknown',
      help: violation.help,
      nodes: violation.nodes.map((node) => node.target.map(String).join(' ')),
    })))`);
  return findings.filter((finding) => finding.impact === 'serious' || finding.impact === 'critical');
}
