/**
 * The web app's client (web/, served at /dashboard): a public client the hub registers for itself at
 * start-up, so that people sign in to the app through the authorization endpoint with PKCE like any
 * SMART app, and get no more than their role's access policy gives them. Its one redirect URI is
 * `<BASE_URL>/dashboard/callback`; a changed BASE_URL updates it at the next start. The id is the
 * hub's own (`hub-dashboard`), apart from any `dashboard` client an operator registered earlier.
 */
import type { Logger } from 'pino';
import { ClientRegistryError } from './clients.ts';
import type { ClientRegistry } from './clients.ts';
import { parseUserScopes } from './user-scopes.ts';

export const DASHBOARD_CLIENT_ID = 'hub-dashboard';
/** What the app asks for; the person's access policy narrows every request further. */
export const DASHBOARD_SCOPES = 'openid fhirUser user/*.cruds';

export function dashboardRedirectUri(baseUrl: string): string {
  return `${baseUrl}/dashboard/callback`;
}

/**
 * Registers the app's client, or brings it up to date. A BASE_URL that no redirect URI may use (plain
 * http off loopback) or an operator's confidential client under the same id leaves the app unable to
 * sign anyone in, which is logged; the hub still starts.
 */
export async function registerDashboardClient(clients: ClientRegistry, baseUrl: string, logger: Logger): Promise<void> {
  try {
    await clients.ensurePublic({
      id: DASHBOARD_CLIENT_ID,
      redirectUris: [dashboardRedirectUri(baseUrl)],
      userScopes: parseUserScopes(DASHBOARD_SCOPES),
    });
  } catch (err) {
    if (!(err instanceof ClientRegistryError)) {
      throw err;
    }
    logger.warn({ clientId: DASHBOARD_CLIENT_ID, reason: err.message }, 'the web app cannot sign people in');
  }
}
