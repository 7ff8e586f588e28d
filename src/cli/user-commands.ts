/**
 * `hub user …`: people's accounts on the hub's database: add (with a generated or given password,
 * and for staff the TOTP enrolment URI, each shown once), list, disable, enable, reset-totp, unlock.
 * Each command returns the lines to print; refusals throw a CliError. Nothing here is logged.
 * TOTP secrets are encrypted with the hub's key (AUTH_SECRETS_KEY, or the key file under DATA_DIR):
 * add and reset-totp first check that the key reads the secrets already stored.
 */
import fs from 'node:fs/promises';
import { PasswordPolicyError, checkPasswordPolicy, generatePassword } from '../auth/passwords.ts';
import { SecretKeyError } from '../auth/secret-box.ts';
import type { SecretBox } from '../auth/secret-box.ts';
import { otpauthUri } from '../auth/totp.ts';
import { USER_ROLES, UserStore, UserStoreError, isUserRole, requiresTotp } from '../auth/users.ts';
import type { User } from '../auth/users.ts';
import type { Database } from '../db/database.ts';
import { CliError } from './cli-error.ts';
import { formatTable } from './table.ts';
import type { CommandOutput } from './client-commands.ts';

/** The issuer authenticator apps show next to the code. */
export const TOTP_ISSUER = 'Second Opinion Hub';

export interface AddUserArguments {
  email: string;
  role: string;
  practitioner?: string;
  patient?: string;
  passwordFile?: string;
}

const RESOURCE_ID = /^[A-Za-z0-9\-.]{1,64}$/;

async function readPasswordFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(
      `--password-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  // One trailing line break is the file's, not the password's.
  const password = text.replace(/\r?\n$/, '');
  try {
    checkPasswordPolicy(password);
  } catch (err) {
    if (err instanceof PasswordPolicyError) {
      throw new CliError(`--password-file: ${err.message}`);
    }
    throw err;
  }
  return password;
}

/** The store with the hub's key, refused when the key cannot read the secrets stored already. */
async function keyedStore(db: Database, secrets: SecretBox): Promise<UserStore> {
  const users = new UserStore(db, secrets);
  try {
    await users.encryptStoredSecrets();
  } catch (err) {
    if (err instanceof SecretKeyError) {
      throw new CliError(`${err.message} (the CLI needs the hub's AUTH_SECRETS_KEY, or its DATA_DIR)`);
    }
    throw err;
  }
  return users;
}

function enrolmentLines(email: string, secret: string): string[] {
  return [
    'TOTP enrolment (shown once): scan or paste this into an authenticator app; staff sign in with its 6-digit codes:',
    `  ${otpauthUri(secret, email, TOTP_ISSUER)}`,
    `  (secret ${secret})`,
  ];
}

function lockedNow(user: User): boolean {
  return user.lockedUntil !== undefined && user.lockedUntil.getTime() > Date.now();
}

export async function addUser(db: Database, secrets: SecretBox, args: AddUserArguments): Promise<CommandOutput> {
  if (!isUserRole(args.role)) {
    throw new CliError(`--role must be one of ${USER_ROLES.join(', ')}`, 2);
  }
  if (args.practitioner !== undefined && args.patient !== undefined) {
    throw new CliError('give at most one of --practitioner ID and --patient ID', 2);
  }
  const linkId = args.practitioner ?? args.patient;
  if (linkId !== undefined && !RESOURCE_ID.test(linkId)) {
    throw new CliError('--practitioner/--patient: a FHIR id is 1-64 of A-Z a-z 0-9 - .', 2);
  }
  if (args.role === 'patient' && args.practitioner !== undefined) {
    throw new CliError('a patient links to --patient ID, not --practitioner', 2);
  }
  if (args.role !== 'patient' && args.patient !== undefined) {
    throw new CliError(`a ${args.role} links to --practitioner ID, not --patient`, 2);
  }
  const fhirUser =
    args.practitioner !== undefined
      ? `Practitioner/${args.practitioner}`
      : args.patient !== undefined
        ? `Patient/${args.patient}`
        : undefined;
  const generated = args.passwordFile === undefined;
  const password = generated ? generatePassword() : await readPasswordFile(args.passwordFile as string);
  let added: Awaited<ReturnType<UserStore['add']>>;
  try {
    added = await (await keyedStore(db, secrets)).add({ email: args.email, role: args.role, fhirUser, password });
  } catch (err) {
    if (err instanceof UserStoreError) {
      throw new CliError(err.message);
    }
    throw err;
  }
  const { user, totpSecret } = added;
  return {
    out: [
      `Added user ${user.email} (${user.role}, ${user.status}), id ${user.id}`,
      ...(user.fhirUser !== undefined ? [`  FHIR user: ${user.fhirUser}`] : []),
      ...(generated ? [`Password (shown once; hand it over securely): ${password}`] : ['Password: from the file']),
      ...(totpSecret !== undefined ? enrolmentLines(user.email, totpSecret) : []),
    ],
    warnings: [],
  };
}

export async function listUsers(db: Database, json: boolean): Promise<CommandOutput> {
  const users = await new UserStore(db).list();
  if (json) {
    const rows = users.map((user) => ({
      id: user.id,
      email: user.email,
      role: user.role,
      fhirUser: user.fhirUser ?? null,
      status: user.status,
      totp: user.totpEnrolled,
      locked: lockedNow(user),
      lockedUntil: lockedNow(user) ? (user.lockedUntil as Date).toISOString() : null,
      failedAttempts: user.failedAttempts,
      created: user.createdAt.toISOString(),
    }));
    return { out: [JSON.stringify(rows, undefined, 2)], warnings: [] };
  }
  if (users.length === 0) {
    return { out: ['No users.'], warnings: [] };
  }
  const table = [
    ['EMAIL', 'ROLE', 'STATUS', 'FHIR USER', 'TOTP', 'CREATED'],
    ...users.map((user) => [
      user.email,
      user.role,
      lockedNow(user) ? `${user.status}, locked until ${(user.lockedUntil as Date).toISOString()}` : user.status,
      user.fhirUser ?? '-',
      requiresTotp(user.role) ? (user.totpEnrolled ? 'yes' : 'missing') : 'n/a',
      user.createdAt.toISOString(),
    ]),
  ];
  return { out: formatTable(table), warnings: [] };
}

const noSuchUser = (email: string): CliError => new CliError(`no user with the e-mail "${email}"`);

export async function setUserStatus(
  db: Database,
  email: string,
  status: 'active' | 'disabled',
): Promise<CommandOutput> {
  const user = await new UserStore(db).setStatus(email, status);
  if (!user) {
    throw noSuchUser(email);
  }
  return {
    out: [
      status === 'active'
        ? `Enabled user ${user.email}`
        : `Disabled user ${user.email}: signed out everywhere; their access tokens stop working within seconds`,
    ],
    warnings: [],
  };
}

export async function resetUserTotp(db: Database, secrets: SecretBox, email: string): Promise<CommandOutput> {
  let reset;
  try {
    reset = await new UserStore(db, secrets).resetTotp(email);
  } catch (err) {
    if (err instanceof UserStoreError) {
      throw new CliError(err.message);
    }
    throw err;
  }
  if (!reset) {
    throw noSuchUser(email);
  }
  return {
    out: [
      `New TOTP secret for ${reset.user.email}; the old one no longer works.`,
      ...enrolmentLines(reset.user.email, reset.totpSecret),
    ],
    warnings: [],
  };
}

export async function unlockUser(db: Database, email: string): Promise<CommandOutput> {
  const user = await new UserStore(db).unlock(email);
  if (!user) {
    throw noSuchUser(email);
  }
  return { out: [`Unlocked user ${user.email}`], warnings: [] };
}
