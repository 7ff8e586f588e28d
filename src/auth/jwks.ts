/**
 * A client's JSON Web Key Set (RFC 7517): validation of what an operator registers (public RSA and
 * EC signing keys only) and the choice of the keys that may have signed an assertion.
 */
import { importJWK } from 'jose';
import type { JWK } from 'jose';

/** Algorithms accepted for client assertions: SMART requires RS384 and ES384; RS256/ES256 are as strong for a 5-minute assertion. */
export const ASSERTION_ALGORITHMS = ['RS384', 'ES384', 'RS256', 'ES256'] as const;
export type AssertionAlgorithm = (typeof ASSERTION_ALGORITHMS)[number];

export interface PublicJwks {
  keys: JWK[];
}

export class JwksError extends Error {}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const EC_CURVES: Record<string, string> = { ES256: 'P-256', ES384: 'P-384' };
const MAX_KEYS = 20;
const MIN_RSA_BITS = 2048;

export function isAssertionAlgorithm(alg: unknown): alg is AssertionAlgorithm {
  return typeof alg === 'string' && (ASSERTION_ALGORITHMS as readonly string[]).includes(alg);
}

function rsaModulusBits(n: string): number {
  const bytes = Buffer.from(n, 'base64url');
  let leading = 0;
  while (leading < bytes.length && bytes[leading] === 0) {
    leading++;
  }
  return (bytes.length - leading) * 8;
}

/**
 * Checks a parsed JWKS document and returns its keys: public RSA (≥ 2048 bits) or EC P-256/P-384
 * signing keys, each importable; private key material anywhere is refused.
 */
export async function validateJwks(document: unknown): Promise<PublicJwks> {
  if (typeof document !== 'object' || document === null || !Array.isArray((document as { keys?: unknown }).keys)) {
    throw new JwksError('a JWKS must be a JSON object with a "keys" array');
  }
  const keys = (document as { keys: unknown[] }).keys;
  if (keys.length === 0 || keys.length > MAX_KEYS) {
    throw new JwksError(`a JWKS must hold 1 to ${MAX_KEYS} keys`);
  }
  const kids = new Set<string>();
  const result: JWK[] = [];
  for (const [index, entry] of keys.entries()) {
    const name = `key ${index + 1}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new JwksError(`${name} is not a JSON object`);
    }
    const key = entry as JWK & Record<string, unknown>;
    const secret = PRIVATE_MEMBERS.find((member) => member in key);
    if (secret !== undefined) {
      throw new JwksError(`${name} holds private key material ("${secret}"); register the public keys only`);
    }
    if (key.kid !== undefined) {
      if (typeof key.kid !== 'string' || key.kid === '') {
        throw new JwksError(`${name}: "kid" must be a non-empty string`);
      }
      if (kids.has(key.kid)) {
        throw new JwksError(`${name}: "kid" ${JSON.stringify(key.kid)} is used twice`);
      }
      kids.add(key.kid);
    }
    if (key.use !== undefined && key.use !== 'sig') {
      throw new JwksError(`${name}: "use" is ${JSON.stringify(key.use)}; client assertion keys are for "sig"`);
    }
    if (key.kty === 'RSA') {
      if (typeof key.n !== 'string' || typeof key.e !== 'string') {
        throw new JwksError(`${name}: an RSA key needs "n" and "e"`);
      }
      if (rsaModulusBits(key.n) < MIN_RSA_BITS) {
        throw new JwksError(`${name}: RSA keys must have at least ${MIN_RSA_BITS} bits`);
      }
    } else if (key.kty === 'EC') {
      if (!Object.values(EC_CURVES).includes(key.crv as string)) {
        throw new JwksError(`${name}: EC keys must be on P-256 or P-384`);
      }
      if (typeof key.x !== 'string' || typeof key.y !== 'string') {
        throw new JwksError(`${name}: an EC key needs "x" and "y"`);
      }
    } else {
      throw new JwksError(`${name}: "kty" must be RSA or EC (got ${JSON.stringify(key.kty)})`);
    }
    if (key.alg !== undefined && !isAssertionAlgorithm(key.alg)) {
      throw new JwksError(`${name}: "alg" ${JSON.stringify(key.alg)} is not one of ${ASSERTION_ALGORITHMS.join(', ')}`);
    }
    try {
      await importJWK(key, key.alg ?? (key.kty === 'RSA' ? 'RS384' : key.crv === 'P-256' ? 'ES256' : 'ES384'));
    } catch (err) {
      throw new JwksError(`${name} cannot be used: ${(err as Error).message}`, { cause: err });
    }
    result.push(key);
  }
  return { keys: result };
}

/**
 * The keys of `jwks` that may have produced a signature with `alg` (and `kid`, when the header names
 * one): the key type and curve must match the algorithm (RFC 7518 §3), and a key's own `alg`,
 * `use` and `key_ops`, when present, must allow it.
 */
export function candidateKeys(jwks: PublicJwks, alg: AssertionAlgorithm, kid: string | undefined): JWK[] {
  return jwks.keys.filter((key) => {
    if (kid !== undefined && key.kid !== kid) {
      return false;
    }
    if (key.alg !== undefined && key.alg !== alg) {
      return false;
    }
    if (key.use !== undefined && key.use !== 'sig') {
      return false;
    }
    if (key.key_ops !== undefined && !key.key_ops.includes('verify')) {
      return false;
    }
    return alg.startsWith('RS') ? key.kty === 'RSA' : key.kty === 'EC' && key.crv === EC_CURVES[alg];
  });
}
