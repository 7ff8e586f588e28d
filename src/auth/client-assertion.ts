/**
 * Client authentication with a signed JWT (RFC 7523 §2.2, SMART Backend Services "private_key_jwt"):
 * the assertion must be signed by a key of the client's registered JWKS, name the client as `iss` and
 * `sub`, the token endpoint as `aud`, expire within five minutes and carry a `jti` never used before.
 * Every failure is `invalid_client` (SMART: "the server SHALL respond with an invalid_client error").
 */
import { compactVerify, decodeJwt, decodeProtectedHeader, importJWK } from 'jose';
import type { JWTPayload, ProtectedHeaderParameters } from 'jose';
import { CLIENT_ID_PATTERN } from './clients.ts';
import type { ClientRegistry, RegisteredClient } from './clients.ts';
import { candidateKeys, isAssertionAlgorithm } from './jwks.ts';
import type { AssertionAlgorithm, PublicJwks } from './jwks.ts';
import type { JtiStore } from './jti-store.ts';
import type { JwksUrlCache } from './jwks-url-cache.ts';
import { OAuthError } from './oauth-error.ts';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** SMART Backend Services: `exp` no more than five minutes in the future. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
/** How far apart the client's clock and ours may be. */
export const CLOCK_SKEW_SECONDS = 60;
const MAX_ASSERTION_LENGTH = 16 * 1024;
const MAX_JTI_LENGTH = 256;

const refuse = (description: string): OAuthError => new OAuthError('invalid_client', description);

/**
 * The refusal of an assertion that named a registered, active client and did not prove to be it (a
 * bad signature, an expired or replayed assertion, …): the audit trail names the client it claimed.
 */
export class UnprovedClientAssertion extends OAuthError {
  readonly clientId: string;

  constructor(clientId: string, refusal: OAuthError) {
    super(refusal.code, refusal.message);
    this.clientId = clientId;
  }
}

/**
 * The time and audience checks of a verified assertion's claims (pure); returns the `jti` and the
 * time until which it must stay recorded.
 */
export function checkAssertionClaims(
  payload: JWTPayload,
  expected: { clientId: string; tokenUrl: string; nowSeconds: number },
): { jti: string; rememberUntil: number } {
  const { nowSeconds } = expected;
  if (payload.iss !== expected.clientId || payload.sub !== expected.clientId) {
    throw refuse('"iss" and "sub" must both be the client id');
  }
  const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!audiences.includes(expected.tokenUrl)) {
    throw refuse(`"aud" must be the token endpoint URL, ${expected.tokenUrl}`);
  }
  if (typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) {
    throw refuse('"exp" is required (a NumericDate)');
  }
  if (payload.exp + CLOCK_SKEW_SECONDS <= nowSeconds) {
    throw refuse('the client assertion has expired');
  }
  if (payload.exp > nowSeconds + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS) {
    throw refuse(`"exp" must be at most ${MAX_ASSERTION_LIFETIME_SECONDS} seconds in the future`);
  }
  for (const claim of ['nbf', 'iat'] as const) {
    const value = payload[claim];
    if (value === undefined) {
      continue;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw refuse(`"${claim}" must be a NumericDate`);
    }
    if (value > nowSeconds + CLOCK_SKEW_SECONDS) {
      throw refuse(`the client assertion is not valid yet ("${claim}" is in the future)`);
    }
  }
  if (typeof payload.jti !== 'string' || payload.jti === '' || payload.jti.length > MAX_JTI_LENGTH) {
    throw refuse(`"jti" is required (a string of at most ${MAX_JTI_LENGTH} characters)`);
  }
  return { jti: payload.jti, rememberUntil: payload.exp + CLOCK_SKEW_SECONDS };
}

function readHeader(assertion: string): ProtectedHeaderParameters & { alg: AssertionAlgorithm } {
  let header: ProtectedHeaderParameters;
  try {
    if (assertion.length > MAX_ASSERTION_LENGTH || assertion.split('.').length !== 3) {
      throw new Error('not a compact JWS');
    }
    header = decodeProtectedHeader(assertion);
  } catch {
    throw refuse('client_assertion is not a signed JWT');
  }
  const alg = header.alg;
  if (alg === undefined || alg.toLowerCase() === 'none') {
    throw refuse('unsigned client assertions (alg "none") are refused');
  }
  if (/^HS/i.test(alg)) {
    throw refuse('client assertions signed with a shared secret (HMAC) are refused; use RS384 or ES384');
  }
  if (!isAssertionAlgorithm(alg)) {
    throw refuse(`alg "${alg}" is not supported; use RS384 or ES384`);
  }
  return { ...header, alg };
}

/** The claimed client id of an assertion, when it looks like one (for logs); no verification. */
export function claimedClientId(assertion: string): string | undefined {
  try {
    const iss = decodeJwt(assertion).iss;
    return typeof iss === 'string' && CLIENT_ID_PATTERN.test(iss) ? iss : undefined;
  } catch {
    return undefined;
  }
}

export interface ClientAssertionVerifierOptions {
  clients: ClientRegistry;
  jwksUrls: JwksUrlCache;
  jtis: JtiStore;
  tokenUrl: string;
  now?: () => number;
}

export class ClientAssertionVerifier {
  private readonly options: ClientAssertionVerifierOptions;

  constructor(options: ClientAssertionVerifierOptions) {
    this.options = options;
  }

  /** The client the assertion authenticates; throws OAuthError('invalid_client') otherwise. */
  async verify(assertion: string): Promise<RegisteredClient> {
    const header = readHeader(assertion);
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(assertion);
    } catch {
      throw refuse('client_assertion is not a signed JWT');
    }
    if (typeof unverified.iss !== 'string' || unverified.iss !== unverified.sub) {
      throw refuse('"iss" and "sub" must both be the client id');
    }
    const client = CLIENT_ID_PATTERN.test(unverified.iss) ? await this.options.clients.get(unverified.iss) : undefined;
    if (!client || client.status !== 'active' || client.public) {
      throw refuse('unknown or disabled client');
    }
    try {
      const payload = await this.verifySignature(assertion, header, client);
      const nowMs = this.options.now?.() ?? Date.now();
      const nowSeconds = Math.floor(nowMs / 1000);
      const { jti, rememberUntil } = checkAssertionClaims(payload, {
        clientId: client.id,
        tokenUrl: this.options.tokenUrl,
        nowSeconds,
      });
      if (!(await this.options.jtis.claim(client.id, jti, new Date(rememberUntil * 1000), new Date(nowMs)))) {
        throw refuse('this client assertion was used before ("jti" replayed)');
      }
      return client;
    } catch (err) {
      throw err instanceof OAuthError ? new UnprovedClientAssertion(client.id, err) : err;
    }
  }

  private async verifySignature(
    assertion: string,
    header: { alg: AssertionAlgorithm; kid?: string },
    client: RegisteredClient,
  ): Promise<JWTPayload> {
    const jwks = await this.clientKeys(client);
    let candidates = candidateKeys(jwks, header.alg, header.kid);
    if (candidates.length === 0 && client.jwksUrl !== undefined) {
      // A key the cached set lacks: the client may have rotated (rate-limited, see JwksUrlCache).
      const refreshed = await this.options.jwksUrls.refresh(client.jwksUrl).catch(() => undefined);
      if (refreshed) {
        candidates = candidateKeys(refreshed, header.alg, header.kid);
      }
    }
    if (candidates.length === 0) {
      throw refuse(
        `no registered key of the client matches alg "${header.alg}"${header.kid === undefined ? '' : ` and kid "${header.kid}"`}`,
      );
    }
    for (const jwk of candidates) {
      try {
        const key = await importJWK(jwk, header.alg);
        const { payload } = await compactVerify(assertion, key, { algorithms: [header.alg] });
        const claims: unknown = JSON.parse(new TextDecoder().decode(payload));
        if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
          throw refuse("the client assertion's payload is not a JSON object");
        }
        return claims as JWTPayload;
      } catch (err) {
        if (err instanceof OAuthError) {
          throw err;
        }
        // Try the next candidate key.
      }
    }
    throw refuse("the client assertion's signature does not verify with the client's registered keys");
  }

  private async clientKeys(client: RegisteredClient): Promise<PublicJwks> {
    if (client.jwks) {
      return client.jwks;
    }
    try {
      return await this.options.jwksUrls.get(client.jwksUrl as string);
    } catch {
      throw refuse("the client's JWKS URL could not be fetched or holds no usable keys");
    }
  }
}
