/**
 * A person's access token from a test hub, obtained the way a browser app gets one: an account and a
 * public client are registered in the hub's database, then the login flow runs over HTTP
 * (login-flow.ts) with the account's TOTP code.
 */
import { randomBytes } from 'node:crypto';
import { ClientRegistry } from '../../src/auth/clients.ts';
import { totpCode } from '../../src/auth/totp.ts';
import { parseUserScopes } from '../../src/auth/user-scopes.ts';
import { UserStore } from '../../src/auth/users.ts';
import type { UserRole } from '../../src/auth/users.ts';
import { Browser, logIn } from './login-flow.ts';
import type { TestHub } from './test-hub.ts';

const CLIENT_ID = 'test-user-token-app';
const REDIRECT_URI = 'http://127.0.0.1:5173/callback';
const PASSWORD = 'a long enough test password';

/** Logs in a new user of `role` and returns the access token (`scope`: user/ scopes, default user/*.cruds). */
export async function userToken(testHub: TestHub, role: UserRole, scope = 'user/*.cruds'): Promise<string> {
  const clients = new ClientRegistry(testHub.hub.db);
  if (!(await clients.get(CLIENT_ID))) {
    await clients.addPublic({
      id: CLIENT_ID,
      redirectUris: [REDIRECT_URI],
      userScopes: parseUserScopes('openid fhirUser user/*.cruds'),
    });
  }
  const email = `${role}-${randomBytes(6).toString('hex')}@example.org`;
  const { totpSecret } = await new UserStore(testHub.hub.db).add({ email, role, password: PASSWORD });
  // hub.url, not baseUrl: a test hub may have a public BASE_URL that does not reach it.
  const { token } = await logIn(
    new Browser(),
    testHub.hub.url,
    { clientId: CLIENT_ID, redirectUri: REDIRECT_URI, scope, extra: { aud: `${testHub.baseUrl}/fhir` } },
    {
      email,
      password: PASSWORD,
      totp: totpSecret === undefined ? undefined : totpCode(totpSecret, Date.now()),
    },
  );
  return token.access_token as string;
}
