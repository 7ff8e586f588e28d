/**
 * `hub client …`: register SMART Backend Services clients and public clients (the dashboard, SMART
 * apps that log people in), and enable or disable them, on the hub's database. Each command returns the lines to print; refusals throw a CliError.
 */
import fs from 'node:fs/promises';
import { isResourceType } from '@medplum/core';
import { ClientRegistry, ClientRegistryError } from '../auth/clients.ts';
import type { RegisteredClient } from '../auth/clients.ts';
import { JwksError, validateJwks } from '../auth/jwks.ts';
import type { PublicJwks } from '../auth/jwks.ts';
import { JwksFetchError, checkJwksUrl, fetchJwks } from '../auth/jwks-url-cache.ts';
import { HUB_ADMIN_SCOPE, ScopeSyntaxError, formatClientScopes, parseClientScopes } from '../auth/scopes.ts';
import type { ClientScopes } from '../auth/scopes.ts';
import { formatUserScopes, parseUserScopes } from '../auth/user-scopes.ts';
import type { UserScopes } from '../auth/user-scopes.ts';
import type { Database } from '../db/database.ts';
import { CliError } from './cli-error.ts';
import { formatTable } from './table.ts';

export interface CommandOutput {
  /** Lines for stdout. */
  out: string[];
  /** Warnings for stderr (the command still succeeded). */
  warnings: string[];
  /** The exit status when it is not 0 although the command ran (`hub dicom import` refused some files). */
  exitCode?: number;
}

export interface AddClientArguments {
  id: string;
  jwksFile?: string;
  jwksUrl?: string;
  scope: string;
}

export interface AddPublicClientArguments {
  id: string;
  redirectUris: string[];
  scope: string;
}

function checkScopes(text: string): ClientScopes {
  let scopes: ClientScopes;
  try {
    scopes = parseClientScopes(text);
  } catch (err) {
    if (err instanceof ScopeSyntaxError) {
      throw new CliError(`--scope: ${err.message} (or ${HUB_ADMIN_SCOPE} for the operator views)`, 2);
    }
    throw err;
  }
  if (scopes.resources.length === 0 && !scopes.hubAdmin) {
    throw new CliError(
      `--scope: give at least one scope, e.g. "system/Patient.rs system/ServiceRequest.cru" or "${HUB_ADMIN_SCOPE}"`,
      2,
    );
  }
  const unknown = scopes.resources.find((scope) => scope.resourceType !== '*' && !isResourceType(scope.resourceType));
  if (unknown) {
    throw new CliError(`--scope: "${unknown.resourceType}" is not a FHIR R4 resource type`, 2);
  }
  return scopes;
}

async function readJwksFile(file: string): Promise<PublicJwks> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`--jwks: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new CliError(`--jwks: ${file} is not JSON`);
  }
  try {
    return await validateJwks(document);
  } catch (err) {
    if (err instanceof JwksError) {
      throw new CliError(`--jwks: ${file}: ${err.message}`);
    }
    throw err;
  }
}

/** Checks the URL, and the set it serves when it can be fetched now (it may legitimately not be up yet). */
async function checkJwksUrlArgument(url: string, warnings: string[]): Promise<string> {
  try {
    checkJwksUrl(url);
  } catch (err) {
    throw new CliError(`--jwks-url: ${(err as Error).message}`, 2);
  }
  try {
    await fetchJwks(url, 5000, 64 * 1024);
  } catch (err) {
    if (err instanceof JwksFetchError && err.cause instanceof JwksError) {
      throw new CliError(`--jwks-url: ${err.message}`);
    }
    warnings.push(
      `warning: ${(err as Error).message}; the client is registered, and the hub fetches the JWKS when the client first asks for a token`,
    );
  }
  return url;
}

function checkUserScopes(text: string): UserScopes {
  let scopes;
  try {
    scopes = parseUserScopes(text);
  } catch (err) {
    if (err instanceof ScopeSyntaxError) {
      throw new CliError(`--scope: ${err.message}`, 2);
    }
    throw err;
  }
  if (scopes.unsupported.length > 0) {
    throw new CliError(
      `--scope: a public client may have openid, fhirUser, launch/patient and user/<Type>.<cruds> scopes; not ${scopes.unsupported.join(', ')}` +
        ' (no patient/ scopes before the access policies, no refresh tokens, system/ scopes are for Backend Services clients)',
      2,
    );
  }
  const unknown = scopes.resources.find((scope) => scope.resourceType !== '*' && !isResourceType(scope.resourceType));
  if (unknown) {
    throw new CliError(`--scope: "${unknown.resourceType}" is not a FHIR R4 resource type`, 2);
  }
  if (formatUserScopes(scopes) === '') {
    throw new CliError('--scope: give at least one scope, e.g. "openid fhirUser user/*.rs"', 2);
  }
  return scopes;
}

export async function addPublicClient(
  db: Database,
  args: AddPublicClientArguments,
  authorizeUrl: string,
  tokenUrl: string,
): Promise<CommandOutput> {
  if (args.redirectUris.length === 0) {
    throw new CliError('a public client needs --redirect-uri URI (repeat it for several)', 2);
  }
  const userScopes = checkUserScopes(args.scope);
  let client: RegisteredClient;
  try {
    client = await new ClientRegistry(db).addPublic({ id: args.id, redirectUris: args.redirectUris, userScopes });
  } catch (err) {
    if (err instanceof ClientRegistryError) {
      throw new CliError(err.message);
    }
    throw err;
  }
  return {
    out: [
      `Registered public client ${client.id} (${client.status})`,
      `  redirect URIs: ${client.redirectUris.join(' ')}`,
      `  scopes:        ${formatUserScopes(client.userScopes as UserScopes)}`,
      `Authorization endpoint: ${authorizeUrl} (PKCE S256)`,
      `Token endpoint: ${tokenUrl}`,
    ],
    warnings: [],
  };
}

function scopeText(client: RegisteredClient): string {
  return client.public
    ? formatUserScopes(client.userScopes as UserScopes)
    : formatClientScopes({ resources: client.scopes, hubAdmin: client.hubAdmin });
}

function keysDescription(client: RegisteredClient): string {
  if (client.public) {
    return `public, redirect ${client.redirectUris.join(' ')}`;
  }
  if (client.jwksUrl !== undefined) {
    return `JWKS URL ${client.jwksUrl}`;
  }
  const keys = client.jwks?.keys ?? [];
  const kids = keys.map((key) => key.kid).filter((kid) => kid !== undefined);
  return `inline JWKS, ${keys.length} key${keys.length === 1 ? '' : 's'}${kids.length > 0 ? ` (kid ${kids.join(', ')})` : ''}`;
}

export async function addClient(db: Database, args: AddClientArguments, tokenUrl: string): Promise<CommandOutput> {
  const warnings: string[] = [];
  if ((args.jwksFile === undefined) === (args.jwksUrl === undefined)) {
    throw new CliError('give exactly one of --jwks FILE and --jwks-url URL', 2);
  }
  const scopes = checkScopes(args.scope);
  const jwks = args.jwksFile === undefined ? undefined : await readJwksFile(args.jwksFile);
  const jwksUrl = args.jwksUrl === undefined ? undefined : await checkJwksUrlArgument(args.jwksUrl, warnings);
  let client: RegisteredClient;
  try {
    client = await new ClientRegistry(db).add({
      id: args.id,
      jwks,
      jwksUrl,
      scopes: scopes.resources,
      hubAdmin: scopes.hubAdmin,
    });
  } catch (err) {
    if (err instanceof ClientRegistryError) {
      throw new CliError(err.message);
    }
    throw err;
  }
  return {
    out: [
      `Registered client ${client.id} (${client.status})`,
      `  keys:   ${keysDescription(client)}`,
      `  scopes: ${scopeText(client)}`,
      `Token endpoint: ${tokenUrl}`,
    ],
    warnings,
  };
}

export async function listClients(db: Database, json: boolean): Promise<CommandOutput> {
  const clients = await new ClientRegistry(db).list();
  if (json) {
    const rows = clients.map((client) => ({
      id: client.id,
      status: client.status,
      scope: scopeText(client),
      ...(client.public
        ? { public: true, redirectUris: client.redirectUris }
        : client.jwksUrl !== undefined
          ? { jwksUrl: client.jwksUrl }
          : { jwks: client.jwks }),
      created: client.createdAt.toISOString(),
      updated: client.updatedAt.toISOString(),
    }));
    return { out: [JSON.stringify(rows, undefined, 2)], warnings: [] };
  }
  if (clients.length === 0) {
    return { out: ['No clients registered.'], warnings: [] };
  }
  const table = [
    ['ID', 'STATUS', 'SCOPES', 'KEYS', 'CREATED'],
    ...clients.map((client) => [
      client.id,
      client.status,
      scopeText(client),
      keysDescription(client),
      client.createdAt.toISOString(),
    ]),
  ];
  return { out: formatTable(table), warnings: [] };
}

export async function setClientStatus(db: Database, id: string, status: 'active' | 'disabled'): Promise<CommandOutput> {
  if (!(await new ClientRegistry(db).setStatus(id, status))) {
    throw new CliError(`no client with id "${id}" is registered`);
  }
  return {
    out: [
      status === 'active'
        ? `Enabled client ${id}`
        : `Disabled client ${id}: it gets no new tokens; tokens already issued expire within 5 minutes`,
    ],
    warnings: [],
  };
}
