/**
 * The authorization_code grant at POST /oauth2/token (RFC 6749 §4.1.3, RFC 7636 §4.5): a public
 * client exchanges a one-time code and its PKCE verifier for a person's access token (and, with
 * `openid`, an id_token). Every mismatch is `invalid_grant`, and the code is spent either way.
 */
import type { AccessTokens } from './access-tokens.ts';
import { pkceMatches } from './authorization-codes.ts';
import type { AuthorizationCodes } from './authorization-codes.ts';
import type { ClientRegistry } from './clients.ts';
import { OAuthError } from './oauth-error.ts';
import type { RevokedSessions, SessionStore } from './sessions.ts';
import { parseUserScopes } from './user-scopes.ts';
import type { UserStore } from './users.ts';

export interface CodeGrantOptions {
  codes: AuthorizationCodes;
  sessions: SessionStore;
  revokedSessions: RevokedSessions;
  users: UserStore;
  clients: ClientRegistry;
  tokens: AccessTokens;
  /** The FHIR base URL: `fhirUser` in the id_token is absolute. */
  fhirBaseUrl: string;
}

export interface UserTokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  id_token?: string;
  /** SMART App Launch: the patient context, with launch/patient, for a user who is a Patient. */
  patient?: string;
}

/** What the log may say about the exchange: ids only. */
export interface CodeGrantOutcome {
  response: UserTokenResponse;
  userId: string;
  sessionId: string;
}

/**
 * CORS for browser apps: a public client's scripts call the token and revoke endpoints from the
 * origins of its registered redirect URIs, and only those get `Access-Control-Allow-Origin`. Form
 * posts without an Authorization header need no preflight (Fetch: CORS-safelisted request).
 */
export async function allowClientOrigin(
  res: { setHeader(name: string, value: string): unknown; append(name: string, value: string): unknown },
  origin: string | undefined,
  clientId: string | undefined,
  clients: ClientRegistry,
): Promise<void> {
  if (origin === undefined || clientId === undefined || clientId === '') {
    return;
  }
  res.append('Vary', 'Origin');
  const client = await clients.get(clientId);
  if (!client?.public || client.status !== 'active') {
    return;
  }
  const origins = client.redirectUris.map((uri) => {
    try {
      return new URL(uri).origin;
    } catch {
      return undefined;
    }
  });
  if (origins.includes(origin)) {
    res.setHeader('Access-Control-Allow-Origin', origin);
  }
}

function required(parameters: Record<string, string>, name: string): string {
  const value = parameters[name];
  if (value === undefined || value === '') {
    throw new OAuthError('invalid_request', `the "${name}" parameter is required`);
  }
  return value;
}

export async function exchangeCode(
  options: CodeGrantOptions,
  parameters: Record<string, string>,
): Promise<CodeGrantOutcome> {
  const code = required(parameters, 'code');
  const clientId = required(parameters, 'client_id');
  const redirectUri = required(parameters, 'redirect_uri');
  const verifier = required(parameters, 'code_verifier');
  if (parameters.client_assertion !== undefined || parameters.client_secret !== undefined) {
    throw new OAuthError(
      'invalid_client',
      'the authorization code grant is for public clients, which send only client_id',
    );
  }
  const client = await options.clients.get(clientId);
  if (!client || !client.public || client.status !== 'active') {
    throw new OAuthError('invalid_client', 'unknown or disabled public client');
  }

  const redemption = await options.codes.redeem(code);
  if (redemption.status === 'reused') {
    // RFC 6749 §4.1.2: someone replays a code; whatever was issued from it is revoked.
    const end = await options.sessions.revoke(redemption.sessionId);
    if (end) {
      options.revokedSessions.add(redemption.sessionId, end);
    }
    throw new OAuthError(
      'invalid_grant',
      'the authorization code was used before; the login session it came from is revoked',
    );
  }
  if (redemption.status === 'unknown') {
    throw new OAuthError('invalid_grant', 'unknown authorization code');
  }
  if (redemption.status === 'expired') {
    throw new OAuthError('invalid_grant', 'the authorization code has expired');
  }
  const { grant } = redemption;
  if (grant.clientId !== client.id) {
    throw new OAuthError('invalid_grant', 'the authorization code was issued to another client');
  }
  if (grant.redirectUri !== redirectUri) {
    throw new OAuthError('invalid_grant', 'redirect_uri differs from the one in the authorization request');
  }
  if (!pkceMatches(verifier, grant.codeChallenge)) {
    throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
  }

  const session = await options.sessions.use(grant.sessionId);
  const user = session && (await options.users.get(session.userId));
  if (!session || !user || user.status !== 'active') {
    throw new OAuthError('invalid_grant', 'the login session has ended');
  }
  const scopes = parseUserScopes(grant.scope);
  const issued = await options.tokens.issueForUser({
    userId: user.id,
    role: user.role,
    fhirUser: user.fhirUser,
    clientId: client.id,
    sessionId: session.id,
    scope: grant.scope,
    notAfter: session.deadline,
    idToken: scopes.openid
      ? {
          nonce: grant.nonce,
          fhirUserUrl:
            scopes.fhirUser && user.fhirUser !== undefined ? `${options.fhirBaseUrl}/${user.fhirUser}` : undefined,
        }
      : undefined,
  });
  const patient =
    scopes.launchPatient && user.fhirUser?.startsWith('Patient/') ? user.fhirUser.slice('Patient/'.length) : undefined;
  return {
    response: {
      access_token: issued.accessToken,
      token_type: 'Bearer',
      expires_in: issued.expiresIn,
      scope: issued.scope,
      ...(issued.idToken !== undefined ? { id_token: issued.idToken } : {}),
      ...(patient !== undefined ? { patient } : {}),
    },
    userId: user.id,
    sessionId: session.id,
  };
}
