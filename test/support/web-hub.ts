/**
 * A hub for the browser tests: a fresh PostgreSQL database and data folder, a hub process with
 * AUTH_REQUIRED=true serving the web app under test (on a queue prefix of its own, its workers
 * running), the suite's accounts, an EHR's system token and Chromium; and a person signed in through
 * the hub's login page in a browser context of their own. stop() tears all of it down.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page, ViewportSize } from 'playwright-core';
import { totpCode } from '../../src/auth/totp.ts';
import { UserStore } from '../../src/auth/users.ts';
import type { UserRole } from '../../src/auth/users.ts';
import { openDatabase } from '../../src/db/database.ts';
import type { Database } from '../../src/db/database.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { workflowSettled } from './case-fixtures.ts';
import { clientToken } from './client-token.ts';
import { startHubProcess } from './hub-process.ts';
import { Browser as HttpBrowser, logIn } from './login-flow.ts';
import { TEST_REDIS_URL, createTestDatabase, putTransaction } from './test-hub.ts';
import type { TestHub, fhirFetch } from './test-hub.ts';
import { dashboardEnvironment, launchChromium, signIn, watchPage } from './web-app.ts';

/** Every account's password in the browser suites. */
const PASSWORD = 'a long enough password';

export interface WebAccount {
  email: string;
  role: UserRole;
  /** None for an account that acts as no resource (a second coordinator, an admin). */
  fhirUser?: string;
}

/** The suites' people's accounts (practitioners() gives their Practitioner resources). */
export const ACCOUNTS = {
  cora: { email: 'cora@hub.example.org', role: 'coordinator', fhirUser: 'Practitioner/prac-c' },
  paul: { email: 'paul@clinic.example.org', role: 'referring-physician', fhirUser: 'Practitioner/prac-phys' },
  amelia: { email: 'amelia@specialists.example.org', role: 'specialist', fhirUser: 'Practitioner/prac-s' },
  rita: { email: 'rita@radiology.example.org', role: 'radiologist', fhirUser: 'Practitioner/prac-r' },
} as const satisfies Record<string, WebAccount>;

export interface WebHubOptions {
  /** Names the suite's queue prefix and data folder (`test-web-<name>-…`, `hub-web-<name>-…`). */
  name: string;
  /** The client id of the EHR whose system/*.cruds token the handle holds. */
  ehrClientId: string;
  /** Accounts to create, each with PASSWORD; staff get an authenticator secret, which signIn uses. */
  accounts?: readonly WebAccount[];
  /** More of the hub's configuration (SMTP_URL, OHIF_VIEWER_URL…). */
  env?: Record<string, string>;
}

export interface SignedIn {
  context: BrowserContext;
  page: Page;
  /** The page's CSP violations and uncaught errors (watchPage). */
  problems: string[];
}

export interface WebHub {
  /** The hub's URL (the app is at /dashboard, the FHIR API at /fhir). */
  url: string;
  db: Database;
  /** The hub's DATA_DIR, removed by stop(): a test may put its files there too. */
  dataDir: string;
  queuePrefix: string;
  /**
   * The hub as clientToken and signInPeople need it. They read only its base URL, database and clock,
   * which a hub process has as much as an in-process test hub.
   */
  place: TestHub;
  /** The EHR's system/*.cruds token. */
  ehr: string;
  browser: Browser;
  /** PUTs `resources` in one transaction Bundle with `token`. */
  load(token: string, resources: Record<string, unknown>[]): ReturnType<typeof fhirFetch>;
  /** Waits until the hub's workflow jobs have run on what was written. */
  settled(timeoutMs?: number): Promise<void>;
  /**
   * `email` signed in at /dashboard`path` in a new browser context: password, and the authenticator
   * code when the account has one. What the page shows next is the caller's to wait for.
   */
  signIn(email: string, path?: string, options?: { viewport?: ViewportSize }): Promise<SignedIn>;
  /** `email`'s token from the hub's login, as the web app gets one (to try the API directly). */
  token(email: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startWebHub(options: WebHubOptions): Promise<WebHub> {
  // What is started is stopped in reverse, by stop() or here when a later step fails.
  const stops: (() => Promise<unknown>)[] = [];
  const stop = async (): Promise<void> => {
    while (stops.length > 0) {
      await stops.pop()?.();
    }
  };
  try {
    const database = await createTestDatabase();
    stops.push(() => database.drop());
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), `hub-web-${options.name}-`));
    stops.push(() => fsp.rm(dataDir, { recursive: true, force: true }));
    const queuePrefix = `test-web-${options.name}-${process.pid}-${Date.now()}`;
    const api = await startHubProcess(
      {
        DATABASE_URL: database.url,
        DATA_DIR: dataDir,
        AUTH_REQUIRED: 'true',
        OUTBOX_POLL_MS: '100',
        QUEUE_PREFIX: queuePrefix,
        ...options.env,
        ...dashboardEnvironment(),
      },
      60_000,
    );
    stops.push(() => api.stop());
    const db = await openDatabase({ databaseUrl: database.url });
    stops.push(() => db.close());
    const users = new UserStore(db);
    const totps = new Map<string, string>();
    for (const account of options.accounts ?? []) {
      const { totpSecret } = await users.add({ ...account, password: PASSWORD });
      if (totpSecret !== undefined) {
        totps.set(account.email, totpSecret);
      }
    }
    const place = { baseUrl: api.url, hub: { db, url: api.url }, clock: systemClock } as unknown as TestHub;
    const ehr = await clientToken(place, options.ehrClientId, 'system/*.cruds');
    const browser = await launchChromium();
    stops.push(() => browser.close());

    return {
      url: api.url,
      db,
      dataDir,
      queuePrefix,
      place,
      ehr,
      browser,
      load: (token, resources) => putTransaction(`${api.url}/fhir`, token, resources),
      settled: (timeoutMs = 60_000) => workflowSettled({ db, redisUrl: TEST_REDIS_URL, queuePrefix }, timeoutMs),
      signIn: async (email, at = '', { viewport } = {}) => {
        const context = await browser.newContext(viewport === undefined ? undefined : { viewport });
        const page = await context.newPage();
        const problems = watchPage(page);
        await page.goto(`${api.url}/dashboard${at}`);
        const secret = totps.get(email);
        await signIn(page, email, PASSWORD, secret === undefined ? undefined : totpCode(secret, Date.now()));
        return { context, page, problems };
      },
      token: async (email) => {
        const secret = totps.get(email);
        const { token } = await logIn(
          new HttpBrowser(),
          api.url,
          {
            clientId: 'hub-dashboard',
            redirectUri: `${api.url}/dashboard/callback`,
            scope: 'openid fhirUser user/*.cruds',
            extra: { aud: `${api.url}/fhir` },
          },
          { email, password: PASSWORD, totp: secret === undefined ? undefined : totpCode(secret, Date.now()) },
        );
        return token.access_token as string;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

const PRACTITIONERS = {
  'prac-c': { resourceType: 'Practitioner', id: 'prac-c', name: [{ given: ['Cora'], family: 'Coordinator' }] },
  'prac-phys': {
    resourceType: 'Practitioner',
    id: 'prac-phys',
    name: [{ prefix: ['Dr.'], given: ['Paul'], family: 'Physick' }],
  },
  'prac-other': {
    resourceType: 'Practitioner',
    id: 'prac-other',
    name: [{ prefix: ['Dr.'], given: ['Olga'], family: 'Other' }],
  },
  'prac-s': {
    resourceType: 'Practitioner',
    id: 'prac-s',
    name: [{ prefix: ['Dr.'], given: ['Amelia'], family: 'Abernathy' }],
  },
} as const;

/**
 * The suites' people as the EHR knows them: Cora the coordinator, Dr. Paul Physick the referring
 * physician, Dr. Olga Other another physician, Dr. Amelia Abernathy the specialist.
 */
export function practitioners(...ids: (keyof typeof PRACTITIONERS)[]): Record<string, unknown>[] {
  return ids.map((id) => structuredClone(PRACTITIONERS[id]) as Record<string, unknown>);
}
