/**
 * How the benchmark authenticates (AUTH_REQUIRED is on by default): a SMART Backend Services system
 * client registered in the bench database with an inline JWKS whose private key lives only in this
 * process, and a bearer token obtained with a signed client assertion, renewed well before its
 * five minutes run out. Every request of every workload carries it, audited or not.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey } from 'jose';
import pg from 'pg';
import { ClientRegistry } from '../../src/auth/clients.ts';
import { parseScopes } from '../../src/auth/scopes.ts';
import type { Queryable } from '../../src/db/database.ts';

export const BENCH_CLIENT_ID = 'bench-fhir';
const SCOPE = 'system/*.cruds';
const KEY_ID = 'bench-1';
/** Tokens live 300 s; a new one is fetched once this one is this old. */
const RENEW_AFTER_MS = 150_000;

export interface BenchCredentials {
  clientId: string;
  privateKey: CryptoKey;
}

/** Registers (or re-registers, with a new key) the bench's system client in the bench database. */
export async function registerBenchClient(databaseUrl: string): Promise<BenchCredentials> {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const db: Queryable = {
      inTransaction: false,
      query: async <R>(sql: string, params?: readonly unknown[]) => {
        const result = await client.query(sql, params as unknown[] | undefined);
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
      },
    };
    // The key of an earlier bench process is gone with it: replace the registration.
    await db.query('DELETE FROM auth_client WHERE id = $1', [BENCH_CLIENT_ID]);
    await new ClientRegistry(db).add({
      id: BENCH_CLIENT_ID,
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: KEY_ID, alg: 'ES384' }] },
      scopes: parseScopes(SCOPE),
    });
  } finally {
    await client.end();
  }
  return { clientId: BENCH_CLIENT_ID, privateKey };
}

/** Bearer tokens for one hub, renewed as they age. */
export class TokenSource {
  private readonly credentials: BenchCredentials;
  private readonly tokenUrl: string;
  private current: { token: string; at: number } | undefined;

  constructor(credentials: BenchCredentials, hubUrl: string) {
    this.credentials = credentials;
    this.tokenUrl = `${hubUrl}/oauth2/token`;
  }

  /** The `authorization` header value for the next few minutes of requests. */
  async authorization(): Promise<string> {
    if (this.current === undefined || Date.now() - this.current.at > RENEW_AFTER_MS) {
      this.current = { token: await this.fetchToken(), at: Date.now() };
    }
    return `Bearer ${this.current.token}`;
  }

  private async fetchToken(): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const { clientId, privateKey } = this.credentials;
    const assertion = await new SignJWT({ iss: clientId, sub: clientId, aud: this.tokenUrl, exp: now + 240, iat: now, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES384', kid: KEY_ID, typ: 'JWT' })
      .sign(privateKey);
    const response = await fetch(this.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: SCOPE,
      }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`The token endpoint answered HTTP ${response.status}: ${text.slice(0, 300)}`);
    }
    return (JSON.parse(text) as { access_token: string }).access_token;
  }
}
