/**
 * Bull Board's own credential (routes/bull-board.ts). A browser tab cannot send the web app's bearer
 * token, so the app exchanges an admin's access token for a board pass, which the board keeps in a
 * cookie only its path sees. The pass must not be an access token: a copy of the cookie would then
 * open /fhir, /dicomweb and the admin API for its remaining life.
 *
 * It is a JWT signed with the hub's key (self-contained, so any hub process checks it, like the
 * access tokens) with a type (`typ` hub-board+jwt) and audience (`<BASE_URL>/admin/queues/board`)
 * of its own, and no scopes: AccessTokens.verify, which every other route's authentication uses,
 * refuses it for its type and audience. It names the admin and their login session, ends when the
 * access token it came from ends (at most ten minutes), and ends with the session: each check looks
 * the session up in the revoked ones (sessions.ts), so signing out ends the board's visit too.
 */
import type { AccessTokens, UserIdentity } from './access-tokens.ts';
import { InvalidTokenError } from './access-tokens.ts';
import type { RevokedSessions } from './sessions.ts';
import type { UserRole } from './users.ts';
import type { Clock } from '../runtime/clock.ts';

const BOARD_PASS_TYPE = 'hub-board+jwt';

export class BoardPasses {
  private readonly tokens: AccessTokens;
  private readonly revokedSessions: RevokedSessions;
  private readonly audience: string;
  private readonly clock: Clock;

  /** `audience`: the board's URL, `<BASE_URL>/admin/queues/board`; `clock`: the tokens' (the hub's). */
  constructor(tokens: AccessTokens, revokedSessions: RevokedSessions, audience: string, clock: Clock) {
    this.tokens = tokens;
    this.revokedSessions = revokedSessions;
    this.audience = audience;
    this.clock = clock;
  }

  /** A pass for a person's verified access token, ending when the token does; `expiresIn` in seconds. */
  async issue(identity: UserIdentity): Promise<{ pass: string; expiresIn: number }> {
    const pass = await this.tokens.signCredential(
      {
        sid: identity.sessionId,
        role: identity.role,
        client_id: identity.clientId,
        ...(identity.fhirUser ? { fhirUser: identity.fhirUser } : {}),
      },
      { typ: BOARD_PASS_TYPE, audience: this.audience, subject: identity.userId, expiresAt: identity.expiresAt },
    );
    return { pass, expiresIn: Math.max(0, identity.expiresAt - Math.floor(this.clock.now().getTime() / 1000)) };
  }

  /** The person a pass names; InvalidTokenError when it is not a pass, has expired or its session ended. */
  async verify(pass: string): Promise<UserIdentity> {
    const claims = await this.tokens.verifyCredential(pass, { typ: BOARD_PASS_TYPE, audience: this.audience });
    const { sub, exp, sid, role, client_id: clientId, fhirUser } = claims as Record<string, unknown>;
    if (
      typeof sub !== 'string' ||
      typeof exp !== 'number' ||
      typeof sid !== 'string' ||
      typeof role !== 'string' ||
      typeof clientId !== 'string' ||
      (fhirUser !== undefined && typeof fhirUser !== 'string')
    ) {
      throw new InvalidTokenError('the board pass is not valid');
    }
    if (await this.revokedSessions.isRevoked(sid)) {
      throw new InvalidTokenError('the session of this board pass has ended (logged out)');
    }
    // No scopes: the pass opens the board, and nothing that reads scopes.
    return {
      kind: 'user',
      userId: sub,
      role: role as UserRole,
      fhirUser,
      clientId,
      sessionId: sid,
      scopes: [],
      expiresAt: exp,
    };
  }
}
