/**
 * Who takes part in the demo and how each one proves it: the ids and roles that setup.ts registers in
 * the hub's database and demo.ts acts as, and the credentials file that passes the secrets from the
 * one to the other (DATA_DIR/demo/credentials.json, readable by its owner only).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { JWK } from 'jose';
import { RADIOLOGIST_PRACTITIONER_ID, REFERRING_PHYSICIAN, ROSTER, practitionerIdOf } from './roster.ts';

/** The physician's EHR: SMART Backend Services, private_key_jwt. */
export const EHR_CLIENT_ID = 'demo-ehr';
/**
 * The service's public registration website, through which an applicant checks eligibility and
 * registers before having any account: also a backend service. Both get system/*.cruds: the EHR's
 * transaction Bundle needs every right on every type, and so does a system-level operation such as
 * $check-eligibility where the route layer checks operations by their path alone.
 */
export const REGISTRATION_CLIENT_ID = 'demo-registration';
export const SYSTEM_SCOPE = 'system/*.cruds';

/** The app the people sign in through (a public client: PKCE, no secret). */
export const APP_CLIENT_ID = 'demo-app';
/** A native app's private-use scheme (RFC 8252 §7.1): the demo reads the code from the redirect, it never follows it. */
export const APP_REDIRECT_URI = 'org.example.hub-demo:/callback';
/** What each person's login asks for; the access policy of their role narrows it on the hub. */
export const APP_SCOPE = 'openid fhirUser user/*.cruds';

export type PersonRole = 'coordinator' | 'radiologist' | 'specialist' | 'referring-physician';

export interface DemoPerson {
  /** The key in the credentials file. */
  key: string;
  role: PersonRole;
  email: string;
  /** The Practitioner the account is linked to (fhirUser), created by the demo with this id. */
  practitionerId?: string;
}

/** The coordinator, the radiologist, every specialist of the roster, and the physician who referred the case. */
export const PEOPLE: readonly DemoPerson[] = [
  { key: 'coordinator', role: 'coordinator', email: 'coordinator@staff.hub-demo.example.org' },
  {
    key: 'radiologist',
    role: 'radiologist',
    email: 'radiologist@staff.hub-demo.example.org',
    practitionerId: RADIOLOGIST_PRACTITIONER_ID,
  },
  ...ROSTER.map((entry): DemoPerson => ({
    key: entry.key,
    role: 'specialist',
    email: `${entry.key}@specialists.hub-demo.example.org`,
    practitionerId: practitionerIdOf(entry),
  })),
  // Not staff: signs in without a TOTP code, and sees only the cases they referred.
  {
    key: 'referring-physician',
    role: 'referring-physician',
    email: REFERRING_PHYSICIAN.email,
    practitionerId: REFERRING_PHYSICIAN.id,
  },
];

export interface SystemClientCredentials {
  clientId: string;
  alg: 'ES384';
  /** The private key, with its `kid`; the hub holds the public half. */
  privateJwk: JWK;
}

export interface PersonCredentials {
  email: string;
  password: string;
  /**
   * RFC 4648 base32, as an authenticator app would read it from the otpauth:// URI; staff only (the
   * referring physician signs in with the password alone).
   */
  totpSecret?: string;
  role: PersonRole;
  practitionerId?: string;
}

export interface DemoCredentials {
  ehr: SystemClientCredentials;
  registration: SystemClientCredentials;
  app: { clientId: string; redirectUri: string; scope: string };
  people: Record<string, PersonCredentials>;
}

export function credentialsFile(dataDir: string): string {
  return path.join(dataDir, 'demo', 'credentials.json');
}

/** The credentials in `file`, which must hold those of `people` (by default everyone's). */
export async function readCredentials(file: string, people: readonly DemoPerson[] = PEOPLE): Promise<DemoCredentials> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot read the demo's credentials at ${file} (${code ?? (err as Error).message}); register the demo's parties first with ` +
        '`npm run demo:setup` (same DATA_DIR and DATABASE_URL as the hub), or pass --credentials FILE',
      { cause: err },
    );
  }
  let credentials: DemoCredentials;
  try {
    credentials = JSON.parse(text) as DemoCredentials;
  } catch {
    throw new Error(`${file} is not JSON; run \`npm run demo:setup\` again on a fresh database`);
  }
  for (const person of people) {
    if (!credentials.people?.[person.key]) {
      throw new Error(
        `${file} has no credentials for the ${person.key}; run \`npm run demo:setup\` again (with the hub's DATA_DIR and DATABASE_URL)`,
      );
    }
  }
  return credentials;
}
