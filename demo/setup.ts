/**
 * `npm run demo:setup`: registers the demo's parties (parties.ts) in the hub's own database, so that
 * `npm run demo` can play the case with real identities against a hub that requires authentication:
 * the physician's EHR and the registration website as SMART Backend Services clients, with key pairs
 * generated here; the public client people sign in through; the coordinator's, the radiologist's
 * and each roster specialist's account, staff with a TOTP second factor, the reviewers linked to the
 * Practitioner ids the demo writes; and the referring physician's account (password only, as for
 * every non-staff account), linked to the Practitioner the demo writes with the NPI the EHR's
 * referral names. The private keys, passwords and TOTP secrets go to DATA_DIR/demo/credentials.json
 * (mode 0600), which `npm run demo` reads.
 *
 *   npm run demo:setup                 the embedded database under DATA_DIR (default ./data): hub stopped
 *   DATABASE_URL=postgres://… npm run demo:setup     PostgreSQL: also while the hub runs
 *
 * Same configuration as the hub (DATA_DIR, DATABASE_URL). Everything is registered in one transaction.
 * Run again, it changes nothing when the file and the database agree; when they agree but an account
 * of this demo is missing (a setup by an earlier demo with fewer people), it adds that account and
 * keeps the rest; it refuses when the database already has demo registrations whose secrets the file
 * does not hold. Exits 1 on failure.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { ClientRegistry } from '../src/auth/clients.ts';
import type { RegisteredClient } from '../src/auth/clients.ts';
import type { PublicJwks } from '../src/auth/jwks.ts';
import { parseScopes } from '../src/auth/scopes.ts';
import { parseUserScopes } from '../src/auth/user-scopes.ts';
import { UserStore, requiresTotp } from '../src/auth/users.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import type { Database, Queryable } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import {
  APP_CLIENT_ID,
  APP_REDIRECT_URI,
  APP_SCOPE,
  EHR_CLIENT_ID,
  PEOPLE,
  REGISTRATION_CLIENT_ID,
  SYSTEM_SCOPE,
  credentialsFile,
  readCredentials,
} from './parties.ts';
import type { DemoCredentials, DemoPerson, PersonCredentials, SystemClientCredentials } from './parties.ts';

const CLIENT_IDS = [EHR_CLIENT_ID, REGISTRATION_CLIENT_ID, APP_CLIENT_ID];

async function newKeyPair(clientId: string): Promise<{ credentials: SystemClientCredentials; publicJwks: PublicJwks }> {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    credentials: { clientId, alg: 'ES384', privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES384' } },
    publicJwks: { keys: [{ ...publicJwk, kid, alg: 'ES384', use: 'sig' }] },
  };
}

/** Registers the accounts of `people` in `tx` and returns their secrets. */
async function registerPeople(
  tx: Queryable,
  people: readonly DemoPerson[],
): Promise<Record<string, PersonCredentials>> {
  const users = new UserStore(tx);
  const registered: Record<string, PersonCredentials> = {};
  for (const person of people) {
    const password = randomBytes(24).toString('base64url');
    const fhirUser = person.practitionerId === undefined ? undefined : `Practitioner/${person.practitionerId}`;
    const { totpSecret } = await users.add({
      email: person.email,
      role: person.role,
      password,
      ...(fhirUser ? { fhirUser } : {}),
    });
    if (requiresTotp(person.role) && totpSecret === undefined) {
      throw new Error(`the hub gave the ${person.key}'s account no TOTP secret`);
    }
    registered[person.key] = {
      email: person.email,
      password,
      ...(totpSecret === undefined ? {} : { totpSecret }),
      role: person.role,
      ...(person.practitionerId ? { practitionerId: person.practitionerId } : {}),
    };
  }
  return registered;
}

/** Registers every party in `tx` and returns their secrets. */
async function register(tx: Queryable): Promise<DemoCredentials> {
  const clients = new ClientRegistry(tx);
  const systemClient = async (clientId: string): Promise<SystemClientCredentials> => {
    const { credentials, publicJwks } = await newKeyPair(clientId);
    await clients.add({ id: clientId, jwks: publicJwks, scopes: parseScopes(SYSTEM_SCOPE) });
    return credentials;
  };
  const ehr = await systemClient(EHR_CLIENT_ID);
  const registration = await systemClient(REGISTRATION_CLIENT_ID);
  await clients.addPublic({
    id: APP_CLIENT_ID,
    redirectUris: [APP_REDIRECT_URI],
    userScopes: parseUserScopes(APP_SCOPE),
  });
  return {
    ehr,
    registration,
    app: { clientId: APP_CLIENT_ID, redirectUri: APP_REDIRECT_URI, scope: APP_SCOPE },
    people: await registerPeople(tx, PEOPLE),
  };
}

/** Writes the file readable by its owner only, complete or not at all. */
async function writeCredentials(file: string, credentials: DemoCredentials): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const partial = `${file}.${process.pid}.tmp`;
  await writeFile(partial, `${JSON.stringify(credentials, undefined, 2)}\n`, { mode: 0o600 });
  await chmod(partial, 0o600);
  await rename(partial, file).catch(async (err: unknown) => {
    await rm(partial, { force: true });
    throw err;
  });
}

/**
 * The file's credentials, if its secrets are those of the registrations in the database (public
 * keys, accounts) for the clients and the accounts of `present`; otherwise undefined.
 */
async function matchingCredentials(
  db: Database,
  file: string,
  registered: Map<string, RegisteredClient>,
  present: readonly DemoPerson[],
): Promise<DemoCredentials | undefined> {
  if (!existsSync(file)) {
    return undefined;
  }
  const credentials = await readCredentials(file, present).catch(() => undefined);
  if (!credentials) {
    return undefined;
  }
  for (const client of [credentials.ehr, credentials.registration]) {
    const keys = registered.get(client.clientId)?.jwks?.keys ?? [];
    if (!keys.some((key) => key.x === client.privateJwk.x && key.y === client.privateJwk.y)) {
      return undefined;
    }
  }
  // list(): the accounts without their secrets, which the hub may have encrypted with a key this process lacks.
  const accounts = new Map((await new UserStore(db).list()).map((user) => [user.email.toLowerCase(), user]));
  for (const person of present) {
    const user = accounts.get(person.email.toLowerCase());
    const fhirUser = person.practitionerId === undefined ? undefined : `Practitioner/${person.practitionerId}`;
    if (
      !user ||
      user.role !== person.role ||
      user.fhirUser !== fhirUser ||
      credentials.people[person.key]?.email !== person.email
    ) {
      return undefined;
    }
  }
  return credentials;
}

async function setup(): Promise<void> {
  const config = loadConfig();
  const file = credentialsFile(config.dataDir);
  if (!config.databaseUrl && existsSync(path.join(config.dataDir, 'pgdata', 'postmaster.pid'))) {
    throw new Error(
      `the embedded database in ${config.dataDir} is open in a running hub: stop the hub, run the setup, start it again ` +
        '(or run the hub on PostgreSQL with DATABASE_URL, where the setup also works while it runs)',
    );
  }
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  let added: readonly DemoPerson[] = PEOPLE;
  try {
    await migrate(db);
    const registry = new ClientRegistry(db);
    const registered = new Map<string, RegisteredClient>();
    for (const id of CLIENT_IDS) {
      const client = await registry.get(id);
      if (client) {
        registered.set(id, client);
      }
    }
    const emails = new Set((await new UserStore(db).list()).map((user) => user.email.toLowerCase()));
    const present = PEOPLE.filter((person) => emails.has(person.email.toLowerCase()));
    if (registered.size > 0 || present.length > 0) {
      const credentials =
        registered.size === CLIENT_IDS.length ? await matchingCredentials(db, file, registered, present) : undefined;
      if (!credentials) {
        throw new Error(
          `the hub's database has ${registered.size} of the demo's ${CLIENT_IDS.length} clients and ${present.length} of its ${PEOPLE.length} accounts, ` +
            `but ${file} does not hold their secrets (the hub keeps only public keys and password hashes): set the demo up on a fresh database ` +
            '(another DATABASE_URL, or another DATA_DIR for the embedded one), or put back the credentials file of the setup that registered them',
        );
      }
      added = PEOPLE.filter((person) => !present.includes(person));
      if (added.length === 0) {
        console.log(`The demo's parties are registered already; their credentials are in ${file}.`);
        return;
      }
      // A setup of an earlier demo, which had fewer people: the missing accounts are added, the rest kept.
      await db.transaction(async (tx) =>
        writeCredentials(file, {
          ...credentials,
          people: { ...credentials.people, ...(await registerPeople(tx, added)) },
        }),
      );
    } else {
      // The file is written before the commit: a failed commit leaves a file no database matches, which the next run replaces.
      await db.transaction(async (tx) => writeCredentials(file, await register(tx)));
    }
  } finally {
    await db.close();
  }
  console.log(
    `Registered in the hub's database (${config.databaseUrl ? 'PostgreSQL at DATABASE_URL' : `embedded, ${config.dataDir}`}):`,
  );
  if (added === PEOPLE) {
    console.log(
      `  system clients (SMART Backend Services, private_key_jwt ES384): ${EHR_CLIENT_ID} (the physician's EHR), ${REGISTRATION_CLIENT_ID} (the registration website), scope ${SYSTEM_SCOPE}`,
    );
    console.log(
      `  public client ${APP_CLIENT_ID} (people's sign-in, PKCE), redirect URI ${APP_REDIRECT_URI}, scope "${APP_SCOPE}"`,
    );
  }
  for (const person of added) {
    console.log(
      `  ${person.role} account (${requiresTotp(person.role) ? 'TOTP' : 'password only'})${person.practitionerId ? ` linked to Practitioner/${person.practitionerId}` : ''}`,
    );
  }
  const secrets = added.some((person) => requiresTotp(person.role))
    ? 'Keys, passwords and TOTP secrets'
    : 'Keys and passwords';
  console.log(`${secrets}: ${file} (mode 0600). Next: npm start, then npm run demo.`);
}

setup().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`Demo setup failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
