/**
 * How the benchmark authenticates (AUTH_REQUIRED is on by default): a SMART Backend Services system
 * client registered in the bench database with an inline JWKS whose private key lives only in this
 * process, and a bearer token obtained with a signed client assertion, renewed well before its
 * five minutes run out. Every request of every workload carries it, audited or not. A person's
 * token (`--person-compare`) comes from person.ts.
 */
import { exportJWK, generateKeyPair } from 'jose';
import pg from 'pg';
import { ClientRegistry } from '../../src/auth/clients.ts';
import { parseScopes } from '../../src/auth/scopes.ts';
import type { Queryable } from '../../src/db/database.ts';
import { BackendServicesClient } from '../../demo/auth.ts';
import type { SystemClientCredentials } from '../../demo/parties.ts';

export const BENCH_CLIENT_ID = 'bench-fhir';
const SCOPE = 'system/*.cruds';
const KEY_ID = 'bench-1';

/** The bench client's private key (with its `kid`), as the demo's parties hold theirs. */
export type BenchCredentials = SystemClientCredentials;

/** Runs `work` on one connection to the bench database, as the hub's stores (ClientRegistry, UserStore) expect it. */
export async function withBenchDatabase<T>(databaseUrl: string, work: (db: Queryable) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await work({
      inTransaction: false,
      query: async <R>(sql: string, params?: readonly unknown[]) => {
        const result = await client.query(sql, params as unknown[] | undefined);
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
      },
    });
  } finally {
    await client.end();
  }
}

/** Registers (or re-registers, with a new key) the bench's system client in the bench database. */
export async function registerBenchClient(databaseUrl: string): Promise<BenchCredentials> {
  return withBenchDatabase(databaseUrl, registerBenchClientIn);
}

/** The same in an open database (the embedded one, while no hub has it). */
export async function registerBenchClientIn(db: Queryable): Promise<BenchCredentials> {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  // The key of an earlier bench process is gone with it: replace the registration.
  await db.query('DELETE FROM auth_client WHERE id = $1', [BENCH_CLIENT_ID]);
  await new ClientRegistry(db).add({
    id: BENCH_CLIENT_ID,
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: KEY_ID, alg: 'ES384' }] },
    scopes: parseScopes(SCOPE),
  });
  return { clientId: BENCH_CLIENT_ID, alg: 'ES384', privateJwk: { ...(await exportJWK(privateKey)), kid: KEY_ID } };
}

/**
 * Bearer tokens for one hub, renewed before they expire: the demo's SMART Backend Services client
 * (demo/auth.ts), pointed at the hub's token endpoint.
 */
export class TokenSource {
  private readonly client: BackendServicesClient;

  constructor(credentials: BenchCredentials, hubUrl: string) {
    const tokenUrl = `${hubUrl}/oauth2/token`;
    // Only the token endpoint is used; the bench signs no one in.
    const endpoints = {
      reachBase: hubUrl,
      tokenUrl,
      authorizeUrl: '',
      revocationUrl: '',
      fhirBaseUrl: `${hubUrl}/fhir`,
    };
    this.client = new BackendServicesClient(endpoints, credentials, SCOPE);
  }

  /** The `authorization` header value for the next few minutes of requests. */
  async authorization(): Promise<string> {
    return `Bearer ${await this.client.accessToken()}`;
  }
}
