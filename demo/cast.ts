/** The demo's parties as clients of the hub: the system clients, and the people signing in. */
import { BackendServicesClient, PersonLogin } from './auth.ts';
import type { HubEndpoints } from './auth.ts';
import { DemoClient } from './client.ts';
import { SYSTEM_SCOPE } from './parties.ts';
import type { DemoCredentials } from './parties.ts';
import { show } from './print.ts';

/** The parties' clients; people sign in when they first act, and are signed out at the end. */
export class Cast {
  readonly ehr: DemoClient;
  readonly website: DemoClient;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly endpoints: HubEndpoints;
  private readonly credentials: DemoCredentials;
  private readonly people = new Map<string, { client: DemoClient; login: PersonLogin }>();

  constructor(base: string, timeoutMs: number, endpoints: HubEndpoints, credentials: DemoCredentials) {
    this.base = base;
    this.timeoutMs = timeoutMs;
    this.endpoints = endpoints;
    this.credentials = credentials;
    this.ehr = new DemoClient(base, timeoutMs, new BackendServicesClient(endpoints, credentials.ehr, SYSTEM_SCOPE));
    this.website = new DemoClient(
      base,
      timeoutMs,
      new BackendServicesClient(endpoints, credentials.registration, SYSTEM_SCOPE),
    );
  }

  /** The system clients' first tokens (client_credentials with a signed JWT assertion). */
  async connectSystems(): Promise<void> {
    for (const [client, title] of [
      [this.website, `the registration website (${this.credentials.registration.clientId})`],
      [this.ehr, `the physician's EHR (${this.credentials.ehr.clientId})`],
    ] as const) {
      await client.authenticate();
      show(`${title}: access token by client_credentials with a signed JWT assertion (${SYSTEM_SCOPE})`);
    }
  }

  /** The person of the credentials file's `key`, signed in. */
  async person(key: string, title: string): Promise<DemoClient> {
    const known = this.people.get(key);
    if (known) {
      return known.client;
    }
    const person = this.credentials.people[key];
    if (!person) {
      throw new Error(`the credentials file has no ${key}; run npm run demo:setup on a fresh database`);
    }
    const login = new PersonLogin(this.endpoints, this.credentials.app, person);
    await login.accessToken();
    show(
      `${title} signed in (authorization code + PKCE${person.totpSecret === undefined ? ', password only: not staff' : ', TOTP'}) through ${this.credentials.app.clientId}`,
    );
    const client = new DemoClient(this.base, this.timeoutMs, login);
    this.people.set(key, { client, login });
    return client;
  }

  /** The referring physician, signed in as themselves (not through their EHR). */
  physician(): Promise<DemoClient> {
    const person = this.credentials.people['referring-physician'];
    return this.person(
      'referring-physician',
      `the referring physician (Practitioner/${person?.practitionerId ?? '?'})`,
    );
  }

  /** The key of the specialist whose account is linked to `Practitioner/<id>`. */
  specialistKey(reference: string | undefined): string {
    const found = Object.entries(this.credentials.people).find(
      ([, person]) => person.role === 'specialist' && `Practitioner/${person.practitionerId}` === reference,
    );
    if (!found) {
      throw new Error(`the case was offered to ${reference ?? 'nobody'}, who has no account in the credentials file`);
    }
    return found[0];
  }

  async signOut(): Promise<void> {
    for (const { login } of this.people.values()) {
      await login.signOut();
    }
  }
}
