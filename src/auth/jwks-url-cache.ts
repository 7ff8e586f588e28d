/**
 * JWKS registered by URL (SMART Backend Services: the client hosts its public keys): fetched with a
 * timeout and a size limit, cached for the response's max-age (bounded), refetched early when an
 * assertion names a key the cached set lacks, but at most once a minute per URL, so that assertions
 * with made-up `kid`s cannot make the hub hammer the client's server.
 */
import { validateJwks } from './jwks.ts';
import type { PublicJwks } from './jwks.ts';

export class JwksFetchError extends Error {}

export interface JwksUrlCacheOptions {
  timeoutMs?: number;
  maxBytes?: number;
  /** Used when the response has no Cache-Control max-age. */
  defaultMaxAgeMs?: number;
  minMaxAgeMs?: number;
  maxMaxAgeMs?: number;
  /** The least time between two fetches forced by an unknown key. */
  refetchIntervalMs?: number;
  now?: () => number;
}

interface Entry {
  jwks: PublicJwks;
  /** When the set must be fetched again (also: when a failed fetch may be retried). */
  expiresAt: number;
  lastForcedFetchAt: number;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** A JWKS URL must be https (http only to this machine, for a local key server or a test). */
export function checkJwksUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new JwksFetchError(`"${text}" is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new JwksFetchError('a JWKS URL must use https (http is accepted for localhost only)');
  }
  if (url.username || url.password) {
    throw new JwksFetchError('a JWKS URL must not carry credentials');
  }
  return url;
}

/** The max-age of a Cache-Control header in ms, 0 for no-store/no-cache, undefined when absent. */
export function cacheMaxAgeMs(cacheControl: string | null): number | undefined {
  if (!cacheControl) {
    return undefined;
  }
  if (/(^|,)\s*(no-store|no-cache)\s*(,|$)/i.test(cacheControl)) {
    return 0;
  }
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl);
  return match ? Number(match[1]) * 1000 : undefined;
}

/** Fetches a JWKS document: no redirects, `timeoutMs` for the whole exchange, at most `maxBytes`. */
export async function fetchJwks(
  url: string,
  timeoutMs: number,
  maxBytes: number,
): Promise<{ jwks: PublicJwks; maxAgeMs: number | undefined }> {
  checkJwksUrl(url);
  let response: Response;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    response = await fetch(url, {
      signal,
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
  } catch (err) {
    throw new JwksFetchError(`fetching the JWKS failed: ${(err as Error).message}`, { cause: err });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new JwksFetchError(`fetching the JWKS failed: HTTP ${response.status}`);
  }
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body?.cancel();
    throw new JwksFetchError(`the JWKS is larger than ${maxBytes} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength;
      if (size > maxBytes) {
        // Leaving the loop cancels the stream.
        throw new JwksFetchError(`the JWKS is larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof JwksFetchError) {
      throw err;
    }
    throw new JwksFetchError(`reading the JWKS failed: ${(err as Error).message}`, { cause: err });
  }
  let document: unknown;
  try {
    document = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new JwksFetchError('the JWKS is not JSON');
  }
  try {
    return { jwks: await validateJwks(document), maxAgeMs: cacheMaxAgeMs(response.headers.get('cache-control')) };
  } catch (err) {
    throw new JwksFetchError(`the JWKS is not acceptable: ${(err as Error).message}`, { cause: err });
  }
}

export class JwksUrlCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<PublicJwks>>();
  /** The last failure of a URL never fetched successfully, repeated for a minute instead of fetching again. */
  private readonly failures = new Map<string, { at: number; error: unknown }>();
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly defaultMaxAgeMs: number;
  private readonly minMaxAgeMs: number;
  private readonly maxMaxAgeMs: number;
  private readonly refetchIntervalMs: number;
  private readonly now: () => number;
  /** How many fetches were started (for tests and metrics). */
  fetchCount = 0;

  constructor(options: JwksUrlCacheOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxBytes = options.maxBytes ?? 64 * 1024;
    this.defaultMaxAgeMs = options.defaultMaxAgeMs ?? 60 * 60 * 1000;
    this.minMaxAgeMs = options.minMaxAgeMs ?? 60 * 1000;
    this.maxMaxAgeMs = options.maxMaxAgeMs ?? 24 * 60 * 60 * 1000;
    this.refetchIntervalMs = options.refetchIntervalMs ?? 60 * 1000;
    this.now = options.now ?? Date.now;
  }

  /** The set at `url`: the cached one while fresh, else fetched (a stale copy stands in when the fetch fails). */
  async get(url: string): Promise<PublicJwks> {
    const entry = this.entries.get(url);
    if (entry && this.now() < entry.expiresAt) {
      return entry.jwks;
    }
    return this.load(url, false);
  }

  /**
   * Fetches the set again because an assertion names a key it lacks; undefined when the last such
   * fetch for this URL was less than a minute ago (the caller refuses the assertion).
   */
  async refresh(url: string): Promise<PublicJwks | undefined> {
    const entry = this.entries.get(url);
    if (entry && this.now() - entry.lastForcedFetchAt < this.refetchIntervalMs) {
      return undefined;
    }
    return this.load(url, true);
  }

  private load(url: string, forced: boolean): Promise<PublicJwks> {
    const running = this.inFlight.get(url);
    if (running) {
      return running;
    }
    const failure = this.failures.get(url);
    if (failure && this.now() - failure.at < this.refetchIntervalMs) {
      return Promise.reject(failure.error);
    }
    const loading = this.fetchAndStore(url, forced).finally(() => this.inFlight.delete(url));
    this.inFlight.set(url, loading);
    return loading;
  }

  private async fetchAndStore(url: string, forced: boolean): Promise<PublicJwks> {
    const previous = this.entries.get(url);
    const startedAt = this.now();
    const lastForcedFetchAt = forced ? startedAt : (previous?.lastForcedFetchAt ?? -Infinity);
    this.fetchCount++;
    try {
      const { jwks, maxAgeMs } = await fetchJwks(url, this.timeoutMs, this.maxBytes);
      const ageMs = Math.min(this.maxMaxAgeMs, Math.max(this.minMaxAgeMs, maxAgeMs ?? this.defaultMaxAgeMs));
      this.entries.set(url, { jwks, expiresAt: startedAt + ageMs, lastForcedFetchAt });
      this.failures.delete(url);
      return jwks;
    } catch (err) {
      if (!previous) {
        this.failures.set(url, { at: startedAt, error: err });
        throw err;
      }
      // The client's key server is down: keep the last good set, and try again after a minute.
      this.entries.set(url, { ...previous, expiresAt: startedAt + this.refetchIntervalMs, lastForcedFetchAt });
      return previous.jwks;
    }
  }
}
