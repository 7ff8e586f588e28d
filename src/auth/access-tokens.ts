/**
 * Access tokens: JWTs (RFC 9068 `at+jwt`) signed with the hub's ES256 key, verified in-process with
 * no database round trip, so that the FHIR API's read rate is not bound to a token table. A verified
 * token is remembered until it expires: an ECDSA verification costs ~0.15 ms, a Map lookup nothing.
 * The cost of self-contained tokens is revocation: a disabled client's tokens run out on their own,
 * within the 5-minute lifetime; a person's tokens name their session (`sid`), which authenticate.ts
 * checks against the revoked sessions (sessions.ts).
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, errors, exportJWK, jwtVerify } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import { ACCESS_TOKEN_ALGORITHM } from './signing-keys.ts';
import type { SigningKey, SigningKeyStore } from './signing-keys.ts';
import { formatClientScopes, parseClientScopes } from './scopes.ts';
import type { SystemScope } from './scopes.ts';
import { resourceScopesOf } from './user-scopes.ts';
import type { UserRole } from './users.ts';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';

/** SMART Backend Services: access tokens live at most five minutes. */
export const ACCESS_TOKEN_LIFETIME_SECONDS = 300;
/** A person's access tokens: ten minutes, and never beyond the end of their session. */
export const USER_ACCESS_TOKEN_LIFETIME_SECONDS = 600;
const VERIFIED_CACHE_SIZE = 10_000;
const KEY_RELOAD_INTERVAL_MS = 10_000;
const CLOCK_TOLERANCE_SECONDS = 5;

/** A system client acting for itself (SMART Backend Services). */
export interface ClientIdentity {
  kind: 'client';
  clientId: string;
  scopes: SystemScope[];
  /** Granted `hub:admin`: may use the operator views (admin-guard.ts). */
  hubAdmin?: boolean;
  /** Seconds since the epoch. */
  expiresAt: number;
}

/** A person, logged in through a (public) client. */
export interface UserIdentity {
  kind: 'user';
  userId: string;
  role: UserRole;
  /** The FHIR resource the person is, `Practitioner/<id>` or `Patient/<id>`. */
  fhirUser: string | undefined;
  /** The client the person logged in through. */
  clientId: string;
  sessionId: string;
  /** The user/ resource scopes granted, in the same shape as system scopes. */
  scopes: SystemScope[];
  /** Seconds since the epoch. */
  expiresAt: number;
}

/** Who a request acts for. */
export type Identity = ClientIdentity | UserIdentity;

export interface UserTokenRequest {
  userId: string;
  role: UserRole;
  fhirUser: string | undefined;
  clientId: string;
  sessionId: string;
  /** The whole granted scope string (openid, fhirUser, launch/patient, user/…). */
  scope: string;
  /** The token ends no later than this (the session's deadline). */
  notAfter: Date;
  /** OpenID Connect: also an id_token for the client, with this nonce. */
  idToken?: { nonce: string | undefined; fhirUserUrl: string | undefined };
}

export class InvalidTokenError extends Error {
  /**
   * Who a token this hub did sign names, when it is no longer valid (expired, or its session ended):
   * for the audit trail to name them (audit/auditor.ts), never to act for them.
   */
  readonly claimed: Identity | undefined;

  constructor(message: string, claimed?: Identity) {
    super(message);
    this.claimed = claimed;
  }
}

export interface IssuedToken {
  accessToken: string;
  expiresIn: number;
  scope: string;
}

export class AccessTokens {
  private readonly store: SigningKeyStore;
  private readonly issuer: string;
  private keys: SigningKey[] = [];
  private lastKeyLoad = 0;
  private readonly verified = new Map<string, Identity>();

  /** Tokens are issued and checked on the hub's clock (runtime/clock.ts). */
  private readonly clock: Clock;

  constructor(store: SigningKeyStore, issuer: string, clock: Clock = systemClock) {
    this.store = store;
    this.issuer = issuer;
    this.clock = clock;
  }

  /** Generates the first signing key if needed and loads the keys. */
  async start(): Promise<void> {
    await this.store.ensureKey();
    await this.reloadKeys();
  }

  private async reloadKeys(): Promise<void> {
    this.lastKeyLoad = this.clock.now().getTime();
    this.keys = await this.store.load();
  }

  /** The newest unretired key, the one that signs; the first key is generated when there is none. */
  private async signingKey(): Promise<SigningKey> {
    if (this.keys.length === 0) {
      await this.start();
    }
    const key = this.keys[0];
    if (key === undefined) {
      // start() generates a key when none is left, so only a retirement racing it gets here.
      throw new Error('there is no unretired signing key');
    }
    return key;
  }

  async issue(clientId: string, scopes: readonly SystemScope[], hubAdmin = false): Promise<IssuedToken> {
    const key = await this.signingKey();
    const scope = formatClientScopes({ resources: [...scopes], hubAdmin });
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const accessToken = await new SignJWT({ client_id: clientId, scope })
      .setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(this.issuer)
      .setAudience(this.issuer)
      .setSubject(clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + ACCESS_TOKEN_LIFETIME_SECONDS)
      .setJti(randomUUID())
      .sign(key.privateKey);
    return { accessToken, expiresIn: ACCESS_TOKEN_LIFETIME_SECONDS, scope };
  }

  /** A person's access token (and id_token when asked for), in the same format as the clients'. */
  async issueForUser(request: UserTokenRequest): Promise<IssuedToken & { idToken?: string }> {
    const key = await this.signingKey();
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const expiresAt = Math.min(now + USER_ACCESS_TOKEN_LIFETIME_SECONDS, Math.floor(request.notAfter.getTime() / 1000));
    const claims = {
      client_id: request.clientId,
      scope: request.scope,
      role: request.role,
      sid: request.sessionId,
      ...(request.fhirUser ? { fhirUser: request.fhirUser } : {}),
    };
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(this.issuer)
      .setAudience(this.issuer)
      .setSubject(request.userId)
      .setIssuedAt(now)
      .setExpirationTime(expiresAt)
      .setJti(randomUUID())
      .sign(key.privateKey);
    let idToken: string | undefined;
    if (request.idToken) {
      // OpenID Connect Core §2; SMART App Launch: `fhirUser` is the absolute URL of the user's resource.
      idToken = await new SignJWT({
        ...(request.idToken.nonce !== undefined ? { nonce: request.idToken.nonce } : {}),
        ...(request.idToken.fhirUserUrl !== undefined ? { fhirUser: request.idToken.fhirUserUrl } : {}),
        auth_time: now,
        sid: request.sessionId,
      })
        .setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid: key.kid, typ: 'JWT' })
        .setIssuer(this.issuer)
        .setAudience(request.clientId)
        .setSubject(request.userId)
        .setIssuedAt(now)
        .setExpirationTime(expiresAt)
        .sign(key.privateKey);
    }
    return {
      accessToken,
      expiresIn: Math.max(0, expiresAt - now),
      scope: request.scope,
      ...(idToken ? { idToken } : {}),
    };
  }

  /**
   * A credential of another kind signed with the hub's key (board-pass.ts). Its own `typ` and
   * audience are what keep verify() from taking it for an access token: give it neither `at+jwt` nor
   * the issuer as audience.
   */
  async signCredential(
    claims: JWTPayload,
    kind: { typ: string; audience: string; subject: string; expiresAt: number },
  ): Promise<string> {
    if (kind.typ === 'at+jwt' || kind.audience === this.issuer) {
      throw new Error('a credential of another kind must have a type and audience of its own');
    }
    const key = await this.signingKey();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid: key.kid, typ: kind.typ })
      .setIssuer(this.issuer)
      .setAudience(kind.audience)
      .setSubject(kind.subject)
      .setIssuedAt(Math.floor(this.clock.now().getTime() / 1000))
      .setExpirationTime(kind.expiresAt)
      .sign(key.privateKey);
  }

  /** The claims of a credential signCredential() made of this kind; throws InvalidTokenError otherwise, or expired. */
  async verifyCredential(token: string, kind: { typ: string; audience: string }): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, async (header) => this.publicKeyFor(header.kid), {
        algorithms: [ACCESS_TOKEN_ALGORITHM],
        issuer: this.issuer,
        audience: kind.audience,
        typ: kind.typ,
        requiredClaims: ['exp', 'sub'],
        currentDate: this.clock.now(),
      });
      return payload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) {
        throw new InvalidTokenError('the credential has expired');
      }
      throw err instanceof InvalidTokenError ? err : new InvalidTokenError('the credential is not valid');
    }
  }

  /** The public keys that verify the hub's tokens, for /.well-known/jwks.json. */
  async publicJwks(): Promise<{ keys: JWK[] }> {
    if (this.keys.length === 0 || this.clock.now().getTime() - this.lastKeyLoad >= KEY_RELOAD_INTERVAL_MS) {
      await this.reloadKeys();
    }
    return {
      keys: await Promise.all(
        this.keys.map(async (key) => ({
          ...(await exportJWK(key.publicKey)),
          kid: key.kid,
          alg: ACCESS_TOKEN_ALGORITHM,
          use: 'sig',
        })),
      ),
    };
  }

  /** The identity a token carries; throws InvalidTokenError when it is not one of ours, or expired. */
  async verify(token: string): Promise<Identity> {
    const nowSeconds = this.clock.now().getTime() / 1000;
    const known = this.verified.get(token);
    if (known) {
      if (known.expiresAt + CLOCK_TOLERANCE_SECONDS > nowSeconds) {
        return known;
      }
      this.verified.delete(token);
      throw new InvalidTokenError('the access token has expired', known);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, async (header) => this.publicKeyFor(header.kid), {
        algorithms: [ACCESS_TOKEN_ALGORITHM],
        issuer: this.issuer,
        audience: this.issuer,
        typ: 'at+jwt',
        requiredClaims: ['exp', 'sub', 'scope'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: this.clock.now(),
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) {
        // jose checks `exp` after the signature, `typ`, `iss` and `aud`: the token is ours, only expired.
        throw new InvalidTokenError('the access token has expired', expiredIdentity(err.payload));
      }
      if (err instanceof InvalidTokenError) {
        throw err;
      }
      throw new InvalidTokenError('the access token is not valid');
    }
    if (typeof payload.sub !== 'string' || typeof payload.scope !== 'string' || typeof payload.exp !== 'number') {
      throw new InvalidTokenError('the access token is not valid');
    }
    const identity = identityOf({ ...payload, sub: payload.sub, scope: payload.scope, exp: payload.exp });
    this.remember(token, identity);
    return identity;
  }

  private async publicKeyFor(kid: string | undefined): Promise<SigningKey['publicKey']> {
    let key = this.keys.find((candidate) => candidate.kid === kid);
    // Another process may have added a key since we loaded ours.
    if (!key && this.clock.now().getTime() - this.lastKeyLoad >= KEY_RELOAD_INTERVAL_MS) {
      await this.reloadKeys();
      key = this.keys.find((candidate) => candidate.kid === kid);
    }
    if (!key) {
      throw new InvalidTokenError('the access token was not signed by this hub');
    }
    return key.publicKey;
  }

  private remember(token: string, identity: Identity): void {
    if (this.verified.size >= VERIFIED_CACHE_SIZE) {
      const nowSeconds = this.clock.now().getTime() / 1000;
      for (const [cached, entry] of this.verified) {
        if (entry.expiresAt < nowSeconds) {
          this.verified.delete(cached);
        }
      }
      // Still full of live tokens: forget the oldest (Map keeps insertion order).
      if (this.verified.size >= VERIFIED_CACHE_SIZE) {
        this.verified.delete(this.verified.keys().next().value as string);
      }
    }
    this.verified.set(token, identity);
  }
}

/** Who an expired token of ours names, when its claims are whole. */
function expiredIdentity(payload: JWTPayload): Identity | undefined {
  if (typeof payload.sub !== 'string' || typeof payload.scope !== 'string' || typeof payload.exp !== 'number') {
    return undefined;
  }
  try {
    return identityOf({ ...payload, sub: payload.sub, scope: payload.scope, exp: payload.exp });
  } catch {
    return undefined;
  }
}

function identityOf(payload: JWTPayload & { sub: string; scope: string; exp: number }): Identity {
  if (payload.sid === undefined) {
    const granted = parseClientScopes(payload.scope);
    return {
      kind: 'client',
      clientId: payload.sub,
      scopes: granted.resources,
      hubAdmin: granted.hubAdmin,
      expiresAt: payload.exp,
    };
  }
  const { sid, role, client_id: clientId, fhirUser } = payload as Record<string, unknown>;
  if (
    typeof sid !== 'string' ||
    typeof role !== 'string' ||
    typeof clientId !== 'string' ||
    (fhirUser !== undefined && typeof fhirUser !== 'string')
  ) {
    throw new InvalidTokenError('the access token is not valid');
  }
  return {
    kind: 'user',
    userId: payload.sub,
    role: role as UserRole,
    fhirUser,
    clientId,
    sessionId: sid,
    scopes: resourceScopesOf(payload.scope),
    expiresAt: payload.exp,
  };
}
