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

/** The hub's own path and query of a link it returned (a Bundle's next link), or of a relative path. */
function hubPath(path: string, base: string): string {
  const url = /^https?:\/\//.test(path) ? new URL(path) : new URL(`${base}${path}`, window.location.origin);
  return `${url.pathname}${url.search}`;
}

/**
 * A request to the hub as the signed-in person (their bearer token; a refused token starts a new
 * sign-in). `path` is absolute on the hub (`/dicomweb/studies?…`, `/admin/queues`) or a full link the
 * hub returned, of which only the path and query are used, so the request stays on this hub.
 */
export async function hubFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const session = currentSession();
  if (session === undefined) {
    return relogin();
  }
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${session.accessToken}`);
  const response = await fetch(hubPath(path, ''), { ...init, headers });
  if (response.status === 401) {
    return relogin();
  }
  return response;
}

/** A failed answer in words: the OperationOutcome's text when the hub sent one. */
export async function apiErrorOf(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => undefined)) as OperationOutcome | undefined;
  return new ApiError(
    response.status,
    outcomeText(body?.resourceType === 'OperationOutcome' ? body : undefined, response.status),
  );
}

/**
 * A FHIR interaction under /fhir (`Task?code=…`, `Task/1`, `Task/1/$operation`) or at a link the hub
 * returned. A body is sent as FHIR JSON; `headers` adds e.g. If-Match. Answers with no body (204)
 * resolve to undefined.
 */
export async function fhirRequest<T extends Resource>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const response = await hubFetch(hubPath(path, '/fhir/'), {
    method,
    headers: {
      accept: 'application/fhir+json',
      ...(body === undefined
        ? {}
        : { 'content-type': method === 'PATCH' ? 'application/json-patch+json' : 'application/fhir+json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    throw await apiErrorOf(response);
  }
  if (response.status === 204) {
    return undefined as unknown as T;
  }
  const text = await response.text();
  if (text === '' && method !== 'GET') {
    return undefined as unknown as T;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, 'The hub sent an answer that is not FHIR JSON.');
  }
}

/** GETs `path` under /fhir (e.g. `Task?code=…`), or a link the hub returned (a Bundle's next link). */
export async function fhirGet<T extends Resource>(path: string): Promise<T> {
  return fhirRequest<T>('GET', path);
}

/**
 * Bytes from the hub (a Binary, a rendered DICOM frame) as an object URL for an <img> or <iframe>
 * (the page's CSP allows blob: there); the caller revokes it with URL.revokeObjectURL when done.
 */
export async function blobUrl(path: string, accept: string): Promise<string> {
  const response = await hubFetch(path, { headers: { accept } });
  if (!response.ok) {
    throw await apiErrorOf(response);
  }
  return URL.createObjectURL(await response.blob());
}

export function searchEntries<T extends Resource>(bundle: Bundle, resourceType: T['resourceType']): T[] {
  return (bundle.entry ?? [])
    .map((entry) => entry.resource)
    .filter((resource): resource is T => resource?.resourceType === resourceType);
}

export function nextLink(bundle: Bundle): string | undefined {
  return bundle.link?.find((link) => link.relation === 'next')?.url;
}
