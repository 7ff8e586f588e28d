/**
 * The hub's keys for signing access tokens, kept in the database (table auth_signing_key) rather than
 * under DATA_DIR: every API process must verify the tokens any other one issued, and the database is
 * the one thing they all share (and is backed up with the data). The first start generates an ES256
 * key; a `kid` (the key's RFC 7638 thumbprint) in every token lets a new key sign while the old
 * one still verifies.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import type { Database } from '../db/database.ts';

export const ACCESS_TOKEN_ALGORITHM = 'ES256';
// Any fixed 64-bit number, the same in every process: two first starts must not both generate a key.
const KEY_GENERATION_LOCK = 7_402_118_954;

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  createdAt: Date;
}

interface KeyRow {
  kid: string;
  private_jwk: JWK | string;
  public_jwk: JWK | string;
  created_at: Date | string;
}

const asJwk = (value: JWK | string): JWK => (typeof value === 'string' ? (JSON.parse(value) as JWK) : value);

export class SigningKeyStore {
  private readonly db: Database;

  constructor(db: Database) {
    this.db = db;
  }

  /** Generates the first key when there is none. */
  async ensureKey(): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEY_GENERATION_LOCK]);
      const existing = await tx.query('SELECT 1 FROM auth_signing_key WHERE retired_at IS NULL LIMIT 1');
      if (existing.rows.length > 0) {
        return;
      }
      const { privateKey, publicKey } = await generateKeyPair(ACCESS_TOKEN_ALGORITHM, { extractable: true });
      const publicJwk = { ...(await exportJWK(publicKey)), alg: ACCESS_TOKEN_ALGORITHM, use: 'sig' };
      const kid = await calculateJwkThumbprint(publicJwk);
      const privateJwk = { ...(await exportJWK(privateKey)), alg: ACCESS_TOKEN_ALGORITHM, kid };
      await tx.query('INSERT INTO auth_signing_key (kid, alg, private_jwk, public_jwk) VALUES ($1, $2, $3, $4)', [
        kid,
        ACCESS_TOKEN_ALGORITHM,
        JSON.stringify(privateJwk),
        JSON.stringify({ ...publicJwk, kid }),
      ]);
    });
  }

  /** The unretired keys, newest first (the first one signs). */
  async load(): Promise<SigningKey[]> {
    const result = await this.db.query<KeyRow>(
      'SELECT kid, private_jwk, public_jwk, created_at FROM auth_signing_key WHERE retired_at IS NULL ORDER BY created_at DESC, kid',
    );
    return Promise.all(
      result.rows.map(async (row) => ({
        kid: row.kid,
        privateKey: (await importJWK(asJwk(row.private_jwk), ACCESS_TOKEN_ALGORITHM)) as CryptoKey,
        publicKey: (await importJWK(asJwk(row.public_jwk), ACCESS_TOKEN_ALGORITHM)) as CryptoKey,
        createdAt: new Date(row.created_at),
      })),
    );
  }
}
