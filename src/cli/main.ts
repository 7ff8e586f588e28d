/**
 * The operator's command-line tool, `npx hub …` (bin/hub.js). It acts on the hub's own database:
 * PostgreSQL at DATABASE_URL (also while the hub runs) or the embedded one under DATA_DIR (only
 * while the hub is stopped: the running hub holds it exclusively).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { tokenUrlFor } from '../auth/index.ts';
import { loadSecretBox } from '../auth/secret-box.ts';
import { ConfigError, loadConfig } from '../config.ts';
import type { HubConfig } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import type { Database } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { BLOB_USAGE, blobCommand } from './blob-commands.ts';
import { addClient, addPublicClient, listClients, setClientStatus } from './client-commands.ts';
import type { CommandOutput } from './client-commands.ts';
import { CliError } from './cli-error.ts';
import { DICOM_USAGE, dicomCommand } from './dicom-commands.ts';
import { addUser, listUsers, resetUserTotp, setUserStatus, unlockUser } from './user-commands.ts';
import type { ProgressStream } from './progress.ts';

const USAGE = `Usage: hub <command>

  hub client add --id ID (--jwks FILE | --jwks-url URL) --scope "SCOPES"
      Registers a SMART Backend Services client with its public keys (a JWKS file, or the https
      URL where the client publishes them; --jwks URL works too) and the system/ scopes it may
      be granted, e.g. --scope "system/ServiceRequest.cru system/Patient.rs". The hub's own scope
      hub:admin lets an operations tool or metrics scraper use /admin/queues and /metrics (no
      system/ scope implies it). Prints the token URL.
  hub client add --id ID --public --redirect-uri URI [--redirect-uri URI …] --scope "SCOPES"
      Registers a public client (the dashboard, a SMART app): no secret, people log in through
      the authorization endpoint with PKCE and are sent back to one of the redirect URIs (exact
      match). Scopes: openid fhirUser launch/patient user/<Type>.<cruds>, e.g.
      --scope "openid fhirUser user/*.rs". Prints the authorization and token URLs.
  hub client list [--json]
  hub client disable --id ID
  hub client enable --id ID

  hub user add --email E --role ROLE [--practitioner ID | --patient ID] [--password-file F]
      Adds a person's account. ROLE: coordinator, specialist, radiologist, pathologist,
      referring-physician, patient, admin. Without --password-file a password is generated and
      printed once. Staff (every role but patient and referring-physician) get a TOTP secret:
      the otpauth:// URI is printed once, for their authenticator app.
  hub user list [--json]
  hub user disable --email E      (also signs the user out everywhere)
  hub user enable --email E
  hub user reset-totp --email E   (prints a new otpauth:// URI once)
  hub user unlock --email E       (clears a lock-out after repeated failed logins)

${BLOB_USAGE}

${DICOM_USAGE}

The database is the hub's: DATABASE_URL, or the embedded one under DATA_DIR (stop the hub first).
TOTP secrets are encrypted with the hub's key: give the CLI the hub's AUTH_SECRETS_KEY, or its
DATA_DIR (which holds the key file when AUTH_SECRETS_KEY is unset).
Exit status: 0 done, 1 failed, 2 wrong usage.`;

type Options = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>): Options {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Options;
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${USAGE}`, 2);
  }
}

function required(options: Options, name: string): string {
  const value = options[name];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new CliError(`--${name} is required\n\n${USAGE}`, 2);
  }
  return value.trim();
}

/**
 * The embedded database refuses a second process only by convention: PGlite writes postmaster.pid while open.
 * `alternative` says what else the operator can do than stop the hub.
 */
function checkEmbeddedDatabaseFree(config: HubConfig, alternative?: string): void {
  const pidFile = path.join(config.dataDir, 'pgdata', 'postmaster.pid');
  if (fs.existsSync(pidFile)) {
    throw new CliError(
      `the embedded database in ${config.dataDir} is open in a running hub (${pidFile} exists). ` +
        `${alternative ?? 'Stop the hub and try again'} (or run the hub on PostgreSQL with DATABASE_URL). If no hub is running, it stopped uncleanly: remove that file.`,
    );
  }
}

async function withDatabase(
  config: HubConfig,
  work: (db: Database) => Promise<CommandOutput>,
  alternative?: string,
): Promise<CommandOutput> {
  if (!config.databaseUrl) {
    checkEmbeddedDatabaseFree(config, alternative);
  }
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(db);
    return await work(db);
  } finally {
    await db.close();
  }
}

async function clientCommand(config: HubConfig, args: string[]): Promise<CommandOutput> {
  const [action, ...rest] = args;
  switch (action) {
    case 'add': {
      const options = parse(rest, {
        id: { type: 'string' },
        jwks: { type: 'string' },
        'jwks-url': { type: 'string' },
        scope: { type: 'string' },
        public: { type: 'boolean' },
        'redirect-uri': { type: 'string', multiple: true },
      });
      const id = required(options, 'id');
      const scope = required(options, 'scope');
      const redirectUris = (options['redirect-uri'] as string[] | undefined) ?? [];
      if (options.public === true) {
        if (options.jwks !== undefined || options['jwks-url'] !== undefined) {
          throw new CliError('a --public client has no keys: leave out --jwks and --jwks-url', 2);
        }
        loadFhirDefinitions();
        return withDatabase(config, (db) =>
          addPublicClient(
            db,
            { id, scope, redirectUris },
            `${config.baseUrl}/oauth2/authorize`,
            tokenUrlFor(config.baseUrl),
          ),
        );
      }
      if (redirectUris.length > 0) {
        throw new CliError("--redirect-uri is for --public clients (people's logins)", 2);
      }
      // The issue's form `--jwks FILE|URL` is accepted too: a value that is an http(s) URL is one.
      const jwksIsUrl = typeof options.jwks === 'string' && /^https?:\/\//i.test(options.jwks);
      if (jwksIsUrl && options['jwks-url'] !== undefined) {
        throw new CliError('give exactly one of --jwks FILE and --jwks-url URL', 2);
      }
      const jwksFile = typeof options.jwks === 'string' && !jwksIsUrl ? path.resolve(options.jwks) : undefined;
      const jwksUrl =
        typeof options['jwks-url'] === 'string'
          ? options['jwks-url']
          : jwksIsUrl
            ? (options.jwks as string)
            : undefined;
      loadFhirDefinitions();
      return withDatabase(config, (db) => addClient(db, { id, scope, jwksFile, jwksUrl }, tokenUrlFor(config.baseUrl)));
    }
    case 'list': {
      const options = parse(rest, { json: { type: 'boolean' } });
      return withDatabase(config, (db) => listClients(db, options.json === true));
    }
    case 'disable':
    case 'enable': {
      const id = required(parse(rest, { id: { type: 'string' } }), 'id');
      return withDatabase(config, (db) => setClientStatus(db, id, action === 'enable' ? 'active' : 'disabled'));
    }
    default:
      throw new CliError(
        `${action === undefined ? 'missing' : `unknown`} client command${action === undefined ? '' : ` "${action}"`}\n\n${USAGE}`,
        2,
      );
  }
}

function secretBox(config: HubConfig): ReturnType<typeof loadSecretBox> {
  return loadSecretBox({ key: config.authSecretsKey, dataDir: config.dataDir });
}

async function userCommand(config: HubConfig, args: string[]): Promise<CommandOutput> {
  const [action, ...rest] = args;
  switch (action) {
    case 'add': {
      const options = parse(rest, {
        email: { type: 'string' },
        role: { type: 'string' },
        practitioner: { type: 'string' },
        patient: { type: 'string' },
        'password-file': { type: 'string' },
      });
      const email = required(options, 'email');
      const role = required(options, 'role');
      const passwordFile =
        typeof options['password-file'] === 'string' ? path.resolve(options['password-file']) : undefined;
      const practitioner = options.practitioner as string | undefined;
      const patient = options.patient as string | undefined;
      return withDatabase(config, async (db) =>
        addUser(db, await secretBox(config), { email, role, practitioner, patient, passwordFile }),
      );
    }
    case 'list': {
      const options = parse(rest, { json: { type: 'boolean' } });
      return withDatabase(config, (db) => listUsers(db, options.json === true));
    }
    case 'disable':
    case 'enable':
    case 'reset-totp':
    case 'unlock': {
      const email = required(parse(rest, { email: { type: 'string' } }), 'email');
      return withDatabase(config, async (db) => {
        if (action === 'reset-totp') {
          return resetUserTotp(db, await secretBox(config), email);
        }
        if (action === 'unlock') {
          return unlockUser(db, email);
        }
        return setUserStatus(db, email, action === 'enable' ? 'active' : 'disabled');
      });
    }
    default:
      throw new CliError(
        `${action === undefined ? 'missing' : 'unknown'} user command${action === undefined ? '' : ` "${action}"`}\n\n${USAGE}`,
        2,
      );
  }
}

/** Where a command line's output goes; a long command also reports progress and hears interrupts. */
export interface CliOutput {
  out: (line: string) => void;
  err: (line: string) => void;
  /** The terminal (or pipe) progress is drawn on; without it, progress goes to `err` as lines. */
  progress?: ProgressStream;
  /** Subscribes to interrupt requests (SIGINT); returns how to unsubscribe. */
  onInterrupt?: (listener: () => void) => () => void;
}

/** Runs one command line; returns the exit status. */
export async function runCli(argv: string[], output: CliOutput): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      output.out(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command !== 'client' && command !== 'user' && command !== 'blobs' && command !== 'dicom') {
      throw new CliError(`unknown command "${command}"\n\n${USAGE}`, 2);
    }
    const config = loadConfig();
    const result =
      command === 'blobs'
        ? await blobCommand(config, rest, (work) => withDatabase(config, work))
        : command === 'dicom'
          ? await dicomCommand(config, rest, {
              progress: output.progress ?? { write: (text: string) => output.err(text.replace(/\n$/, '')) },
              withDatabase: (work, alternative) => withDatabase(config, work, alternative),
              onInterrupt: output.onInterrupt ?? (() => () => undefined),
            })
          : command === 'client'
            ? await clientCommand(config, rest)
            : await userCommand(config, rest);
    for (const warning of result.warnings) {
      output.err(warning);
    }
    for (const line of result.out) {
      output.out(line);
    }
    return result.exitCode ?? 0;
  } catch (err) {
    if (err instanceof CliError) {
      output.err(`hub: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      output.err(`hub: ${err.message}`);
      return 1;
    }
    output.err(`hub: ${(err as Error).message}`);
    return 1;
  }
}

/** A second interrupt stops at once; one within a second of the first is the same keypress (bin/hub.js forwards it too). */
const SAME_INTERRUPT_MS = 1000;

function interruptListener(listener: () => void): () => void {
  let first: number | undefined;
  const onSigint = (): void => {
    const now = Date.now();
    if (first === undefined) {
      first = now;
      listener();
    } else if (now - first > SAME_INTERRUPT_MS) {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  return () => process.off('SIGINT', onSigint);
}

const isEntryPoint =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename);
if (isEntryPoint) {
  const status = await runCli(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    progress: process.stderr,
    onInterrupt: interruptListener,
  });
  process.exitCode = status;
}
