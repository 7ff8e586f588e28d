/**
 * The hub's FHIR API as the signed-in person: every request carries their bearer token, so the hub's
 * access policy decides what comes back. An error becomes an ApiError whose message is the
 * OperationOutcome's text; a refused token starts a new sign-in.
 */
import type { Bundle, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { currentSession, forgetSession, startLogin } from './auth.ts';

export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Thrown while the browser is on its way to the login page. */
export class SigningIn extends Error {}

function outcomeText(outcome: OperationOutcome | undefined, status: number): string {
  const texts = (outcome?.issue ?? [])
    .map((issue) => issue.details?.text ?? issue.diagnostics)
    .filter((text): text is string => typeof text === 'string' && text !== '');
  return texts.length > 0 ? texts.join('; ') : `The hub answered HTTP ${status}.`;
}

async function relogin(): Promise<never> {
  forgetSession();
  await startLogin(window.location.pathname.replace(/^\/dashboard/, '') || '/');
  throw new SigningIn('Signing in again');
}

/**
 * GETs `path` under /fhir (e.g. `Task?code=…`), or a link the hub returned (a Bundle's next link):
 * only its path and query are used, so the request stays on the hub that served the app.
 */
export async function fhirGet<T extends Resource>(path: string): Promise<T> {
  const session = currentSession();
  if (session === undefined) {
    return relogin();
  }
  const url = /^https?:\/\//.test(path) ? new URL(path) : new URL(`/fhir/${path}`, window.location.origin);
  const response = await fetch(`${url.pathname}${url.search}`, {
    headers: { accept: 'application/fhir+json', authorization: `Bearer ${session.accessToken}` },
  });
  if (response.status === 401) {
    return relogin();
  }
  const body = (await response.json().catch(() => undefined)) as T | OperationOutcome | undefined;
  if (!response.ok) {
    throw new ApiError(
      response.status,
      outcomeText(body?.resourceType === 'OperationOutcome' ? body : undefined, response.status),
    );
  }
  if (body === undefined) {
    throw new ApiError(response.status, 'The hub sent an answer that is not FHIR JSON.');
  }
  return body as T;
}

export function searchEntries<T extends Resource>(bundle: Bundle, resourceType: T['resourceType']): T[] {
  return (bundle.entry ?? [])
    .map((entry) => entry.resource)
    .filter((resource): resource is T => resource?.resourceType === resourceType);
}

export function nextLink(bundle: Bundle): string | undefined {
  return bundle.link?.find((link) => link.relation === 'next')?.url;
}
