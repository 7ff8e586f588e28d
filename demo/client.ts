/**
 * A small FHIR client for the demo, one per party: JSON in and out with the party's access token,
 * errors with the OperationOutcome's text, polling.
 */
import type { TokenSource } from './auth.ts';

/** FHIR JSON as the demo reads it (it prints fields; it does not type-check the server's answers). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- arbitrary FHIR JSON from the server
export type Resource = Record<string, any>;

export interface Response {
  status: number;
  body: Resource | undefined;
}

export class DemoClient {
  readonly base: string;
  private readonly timeoutMs: number;
  private readonly tokens: TokenSource;

  constructor(base: string, timeoutMs: number, tokens: TokenSource) {
    this.base = base;
    this.timeoutMs = timeoutMs;
    this.tokens = tokens;
  }

  /** Obtains the party's access token now (the first request would otherwise). */
  async authenticate(): Promise<void> {
    await this.tokens.accessToken();
  }

  /** Any request to `/fhir/<path>`, whatever its status. */
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const authorization = `Bearer ${await this.tokens.accessToken()}`;
    let response: globalThis.Response;
    try {
      response = await fetch(`${this.base}/fhir${path ? `/${path}` : ''}`, {
        method,
        headers: {
          accept: 'application/fhir+json',
          authorization,
          ...(body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`the hub at ${this.base} does not answer (${(err as Error).message}); start it with npm start`, {
        cause: err,
      });
    }
    const text = await response.text();
    let parsed: Resource | undefined;
    try {
      parsed = text ? (JSON.parse(text) as Resource) : undefined;
    } catch {
      parsed = { text };
    }
    return { status: response.status, body: parsed };
  }

  /** GET `/fhir/<path>` as `accept` (a Binary's content): its status, type and bytes. */
  async download(path: string, accept: string): Promise<{ status: number; contentType: string; bytes: Buffer }> {
    const authorization = `Bearer ${await this.tokens.accessToken()}`;
    let response: globalThis.Response;
    try {
      response = await fetch(`${this.base}/fhir/${path}`, { headers: { accept, authorization } });
    } catch (err) {
      throw new Error(`the hub at ${this.base} does not answer (${(err as Error).message}); start it with npm start`, {
        cause: err,
      });
    }
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? '',
      bytes: Buffer.from(await response.arrayBuffer()),
    };
  }

  /** A request that must succeed; its body. */
  async fhir(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Resource> {
    const response = await this.request(method, path, body, headers);
    if (response.status >= 300) {
      const issues = (response.body?.issue ?? []).map(
        (issue: Resource) => issue.details?.text ?? issue.diagnostics ?? issue.code,
      );
      throw new Error(
        `${method} /fhir/${path}: HTTP ${response.status} ${issues.join('; ') || JSON.stringify(response.body)}`,
      );
    }
    return response.body ?? {};
  }

  async search(query: string): Promise<Resource[]> {
    const bundle = await this.fhir('GET', `${query}${query.includes('?') ? '&' : '?'}_count=1000`);
    return (bundle.entry ?? []).map((entry: Resource) => entry.resource);
  }

  /** Read, edit, PUT with If-Match, as a person's client does; retried when someone wrote in between. */
  async change(reference: string, edit: (resource: Resource) => Resource): Promise<Resource> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.fhir('GET', reference);
      const response = await this.request('PUT', reference, edit(structuredClone(current)), {
        'if-match': `W/"${current.meta.versionId}"`,
      });
      if (response.status < 300) {
        return response.body ?? {};
      }
      if (response.status !== 412 && response.status !== 409) {
        throw new Error(
          `PUT /fhir/${reference}: HTTP ${response.status} ${JSON.stringify(response.body?.issue ?? response.body)}`,
        );
      }
      if (attempt >= 10) {
        throw new Error(`PUT /fhir/${reference}: still conflicting after ${attempt + 1} tries`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Polls until `probe` returns something. */
  async until<T>(probe: () => Promise<T | undefined | false>, what: string): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const value = await probe();
      if (value) {
        return value;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${this.timeoutMs / 1000} s waiting for ${what} (are the hub's workers and Redis running?)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

export function parameter(parameters: Resource, name: string): Resource {
  return (parameters.parameter ?? []).find((candidate: Resource) => candidate.name === name);
}

/** The resource of a type carrying `urn:hub:case-resource|<value>`. */
export async function byCaseIdentifier(client: DemoClient, type: string, value: string): Promise<Resource | undefined> {
  return (await client.search(`${type}?identifier=${encodeURIComponent(`urn:hub:case-resource|${value}`)}`))[0];
}

export const stateOf = (task: Resource | undefined): string | undefined =>
  task?.businessStatus?.coding?.find((coding: Resource) => coding.system === 'urn:hub:case-state')?.code;

export const withTaskCode = (tasks: Resource[], code: string): Resource[] =>
  tasks.filter((task) =>
    task.code?.coding?.some((coding: Resource) => coding.system === 'urn:hub:task-code' && coding.code === code),
  );
