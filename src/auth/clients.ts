/**
 * The registry of clients (table auth_client, migrations 007 and 009): confidential SMART Backend
 * Services clients with their keys and system/ scopes, and public clients (the dashboard, SMART apps)
 * that log people in through the authorization endpoint, with their redirect URIs and user scopes.
 */
import type { Queryable } from '../db/database.ts';
import type { PublicJwks } from './jwks.ts';
import { formatClientScopes, parseClientScopes } from './scopes.ts';
import type { SystemScope } from './scopes.ts';
import { formatUserScopes, parseUserScopes } from './user-scopes.ts';
import type { UserScopes } from './user-scopes.ts';

export const CLIENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._~:-]{0,127}$/;

export type ClientStatus = 'active' | 'disabled';

export interface RegisteredClient {
  id: string;
  /** The public keys, when registered inline. */
  jwks: PublicJwks | undefined;
  /** Where the client publishes its keys, when registered by URL. */
  jwksUrl: string | undefined;
  /** The system/ scopes a confidential client may be granted (none for a public client). */
  scopes: SystemScope[];
  /** The hub's `hub:admin` scope may be granted: the operator views (admin-guard.ts). */
  hubAdmin: boolean;
  /** RFC 6749 §2.1: a public client has no credentials and logs people in with PKCE. */
  public: boolean;
  /** Where the authorization endpoint may send a public client's codes (exact match). */
  redirectUris: string[];
  /** The scopes a public client's logins may be granted. */
  userScopes: UserScopes | undefined;
  status: ClientStatus;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewClient {
  id: string;
  jwks?: PublicJwks;
  jwksUrl?: string;
  scopes: readonly SystemScope[];
  /** May be granted `hub:admin`. */
  hubAdmin?: boolean;
}

export interface NewPublicClient {
  id: string;
  redirectUris: readonly string[];
  userScopes: UserScopes;
}

export class ClientRegistryError extends Error {}

interface ClientRow {
  id: string;
  jwks: PublicJwks | string | null;
  jwks_url: string | null;
  scopes: string;
  public: boolean;
  redirect_uris: string[] | string;
  status: ClientStatus;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS = 'id, jwks, jwks_url, scopes, public, redirect_uris, status, created_at, updated_at';

function fromRow(row: ClientRow): RegisteredClient {
  const granted = row.public ? { resources: [], hubAdmin: false } : parseClientScopes(row.scopes);
  return {
    id: row.id,
    jwks:
      row.jwks === null ? undefined : typeof row.jwks === 'string' ? (JSON.parse(row.jwks) as PublicJwks) : row.jwks,
    jwksUrl: row.jwks_url ?? undefined,
    scopes: granted.resources,
    hubAdmin: granted.hubAdmin,
    public: row.public,
    redirectUris:
      typeof row.redirect_uris === 'string' ? (JSON.parse(row.redirect_uris) as string[]) : row.redirect_uris,
    userScopes: row.public ? parseUserScopes(row.scopes) : undefined,
    status: row.status,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * A redirect URI the authorization endpoint may send codes to: absolute, no fragment (RFC 6749
 * §3.1.2), https, or http on the loopback interface, or a native app's private-use scheme with a dot
 * (RFC 8252 §7.1, §7.3).
 */
export function checkRedirectUri(uri: string): void {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new ClientRegistryError(`redirect URI "${uri}" is not an absolute URI`);
  }
  if (url.hash !== '' || uri.includes('#')) {
    throw new ClientRegistryError(`redirect URI "${uri}" must not have a fragment`);
  }
  const scheme = url.protocol.slice(0, -1);
  const acceptable =
    scheme === 'https' ||
    (scheme === 'http' && LOOPBACK_HOSTS.has(url.hostname)) ||
    (scheme.includes('.') && scheme !== 'http' && scheme !== 'https');
  if (!acceptable) {
    throw new ClientRegistryError(
      `redirect URI "${uri}" must be https (http only on 127.0.0.1, [::1] or localhost), or a private-use scheme such as com.example.app:/callback`,
    );
  }
}

/** Checks a public client's registration; returns its scopes as stored. */
function checkPublicClient(client: NewPublicClient): string {
  if (!CLIENT_ID_PATTERN.test(client.id)) {
    throw new ClientRegistryError('a client id is 1-128 of A-Z a-z 0-9 . _ ~ : - and starts with a letter or digit');
  }
  if (client.redirectUris.length === 0) {
    throw new ClientRegistryError('a public client needs at least one redirect URI');
  }
  for (const uri of client.redirectUris) {
    checkRedirectUri(uri);
  }
  const scope = formatUserScopes(client.userScopes);
  if (scope === '') {
    throw new ClientRegistryError('a client needs at least one scope');
  }
  return scope;
}

export class ClientRegistry {
  private readonly db: Queryable;

  constructor(db: Queryable) {
    this.db = db;
  }

  /** Registers a client; throws ClientRegistryError when the id is taken or the registration is incomplete. */
  async add(client: NewClient): Promise<RegisteredClient> {
    if (!CLIENT_ID_PATTERN.test(client.id)) {
      throw new ClientRegistryError('a client id is 1-128 of A-Z a-z 0-9 . _ ~ : - and starts with a letter or digit');
    }
    if ((client.jwks === undefined) === (client.jwksUrl === undefined)) {
      throw new ClientRegistryError('a client has either an inline JWKS or a JWKS URL');
    }
    if (client.scopes.length === 0 && client.hubAdmin !== true) {
      throw new ClientRegistryError('a client needs at least one scope');
    }
    const result = await this.db.query<ClientRow>(
      `INSERT INTO auth_client (id, jwks, jwks_url, scopes) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}`,
      [
        client.id,
        client.jwks === undefined ? null : JSON.stringify(client.jwks),
        client.jwksUrl ?? null,
        formatClientScopes({ resources: [...client.scopes], hubAdmin: client.hubAdmin === true }),
      ],
    );
    const row = result.rows[0];
    if (row === undefined) {
      throw new ClientRegistryError(`a client with id "${client.id}" is already registered`);
    }
    return fromRow(row);
  }

  /** Registers a public client; throws ClientRegistryError when the id is taken or a redirect URI is not acceptable. */
  async addPublic(client: NewPublicClient): Promise<RegisteredClient> {
    const scope = checkPublicClient(client);
    const result = await this.db.query<ClientRow>(
      `INSERT INTO auth_client (id, scopes, public, redirect_uris) VALUES ($1, $2, true, $3)
       ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}`,
      [client.id, scope, JSON.stringify(client.redirectUris)],
    );
    const row = result.rows[0];
    if (row === undefined) {
      throw new ClientRegistryError(`a client with id "${client.id}" is already registered`);
    }
    return fromRow(row);
  }

  /**
   * Registers a public client the hub itself owns (the web app, auth/dashboard-client.ts), or brings
   * its redirect URIs and scopes up to date: idempotent, and safe when several processes start at
   * once. Its status is left alone, so an operator may disable it. Throws ClientRegistryError when
   * the registration is not acceptable or the id belongs to a confidential client.
   */
  async ensurePublic(client: NewPublicClient): Promise<RegisteredClient> {
    const scope = checkPublicClient(client);
    const result = await this.db.query<ClientRow>(
      `INSERT INTO auth_client (id, scopes, public, redirect_uris) VALUES ($1, $2, true, $3)
       ON CONFLICT (id) DO UPDATE SET scopes = EXCLUDED.scopes, redirect_uris = EXCLUDED.redirect_uris, updated_at = now()
         WHERE auth_client.public
           AND (auth_client.scopes <> EXCLUDED.scopes OR auth_client.redirect_uris <> EXCLUDED.redirect_uris)
       RETURNING ${COLUMNS}`,
      [client.id, scope, JSON.stringify(client.redirectUris)],
    );
    const registered = result.rows[0] ? fromRow(result.rows[0]) : await this.get(client.id);
    if (!registered?.public) {
      throw new ClientRegistryError(`the client id "${client.id}" belongs to a confidential client`);
    }
    return registered;
  }

  async get(id: string): Promise<RegisteredClient | undefined> {
    const result = await this.db.query<ClientRow>(`SELECT ${COLUMNS} FROM auth_client WHERE id = $1`, [id]);
    return result.rows[0] && fromRow(result.rows[0]);
  }

  async list(): Promise<RegisteredClient[]> {
    const result = await this.db.query<ClientRow>(`SELECT ${COLUMNS} FROM auth_client ORDER BY id`);
    return result.rows.map(fromRow);
  }

  /** Sets a client's status; false when there is no such client. */
  async setStatus(id: string, status: ClientStatus): Promise<boolean> {
    const result = await this.db.query('UPDATE auth_client SET status = $2, updated_at = now() WHERE id = $1', [
      id,
      status,
    ]);
    return result.rowCount > 0;
  }
}
