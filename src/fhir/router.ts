/**
 * The FHIR interaction router: @medplum/fhir-router's routes (CRUD, search, batch/transaction)
 * plus the type- and system-level history it does not route.
 */
import { allOk, badRequest } from '@medplum/core';
import { BatchProcessor, FhirRouter } from '@medplum/fhir-router';
import type { BundlePreprocessInfo, FhirRequest, FhirRepository, FhirResponse, HttpMethod } from '@medplum/fhir-router';
import type { Resource } from '@medplum/fhirtypes';
import type { HubRepository } from './repository.ts';
import { registerOperations } from './operations/index.ts';
import type { OperationContext } from './operations/index.ts';

function historyOptions(req: FhirRequest): { since?: string; count?: number; offset?: number } {
  const single = (name: string): string | undefined => {
    const value = req.query[name];
    return Array.isArray(value) ? value[value.length - 1] : value;
  };
  const number = (name: string): number | undefined => {
    const text = single(name);
    return text === undefined ? undefined : Number.parseInt(text, 10) || 0;
  };
  return { since: single('_since'), count: number('_count'), offset: number('_offset') };
}

async function typeHistory(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  return [allOk, await (repo as HubRepository).readChanges(req.params.resourceType, historyOptions(req))];
}

async function systemHistory(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  return [allOk, await (repo as HubRepository).readChanges(undefined, historyOptions(req))];
}

const TYPE_MODIFIER = /^([a-z][a-z0-9-]*):([A-Z][A-Za-z]+)$/;

/**
 * Rewrites `subject:Patient=123` to `subject=Patient/123` in a URL's query. @medplum/core's parser
 * drops the type of a `:[type]` modifier, which would let `Group/123` match too.
 */
export function expandTypeModifiers(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart < 0 || !/(?::|%3[Aa])[A-Z]/.test(url.slice(queryStart))) {
    return url;
  }
  const params = new URLSearchParams(url.slice(queryStart + 1));
  const rewritten = new URLSearchParams();
  for (const [key, value] of params) {
    const [, code, type] = TYPE_MODIFIER.exec(key) ?? [];
    if (code === undefined || type === undefined) {
      rewritten.append(key, value);
      continue;
    }
    const typed = value
      .split(',')
      // A value naming another type (`subject:Group=Patient/1`) can match nothing: keep it unresolvable.
      .map((item) => (new RegExp(`(^|/)${type}/[^/]+$`).test(item) ? item : `${type}/${item}`))
      .join(',');
    rewritten.append(code, typed);
  }
  return `${url.slice(0, queryStart)}?${rewritten.toString()}`;
}

/**
 * The library refuses a transaction of more than 8 entries once one entry is conditional, because
 * its own servers make such transactions SERIALIZABLE. Ours need not be: conditional creates take an
 * advisory lock on their criteria (HubRepository.conditionalCreate), which makes them race-safe at
 * READ COMMITTED, so referral bundles with many `ifNoneExist` entries go through whole.
 */
class HubBatchProcessor extends BatchProcessor {}
const libraryPreprocess = (BatchProcessor.prototype as unknown as { preprocessBundle(): Promise<BundlePreprocessInfo> })
  .preprocessBundle;
Object.defineProperty(HubBatchProcessor.prototype, 'preprocessBundle', {
  value: async function preprocessBundle(this: BatchProcessor): Promise<BundlePreprocessInfo> {
    const info = await libraryPreprocess.call(this);
    return { ...info, requiresStrongTransaction: false };
  },
});

async function batch(req: FhirRequest, repo: FhirRepository, router: FhirRouter): Promise<FhirResponse> {
  const bundle = req.body as Resource | undefined;
  if (bundle?.resourceType !== 'Bundle') {
    return [badRequest('A batch or transaction must be a Bundle')];
  }
  return [allOk, await new HubBatchProcessor(router, repo, bundle, req).run()];
}

/**
 * The parameters of `POST [type]/_search`: those of the URL and of the form body together (a name in
 * both is AND-ed, not overwritten), with the same rewrites as a GET query.
 */
export function searchPostParameters(
  urlQuery: Record<string, unknown>,
  formBody: Record<string, unknown>,
): Record<string, string | string[]> {
  const combined = new URLSearchParams();
  for (const source of [urlQuery, formBody]) {
    for (const [name, value] of Object.entries(source)) {
      for (const item of [value].flat()) {
        combined.append(name, String(item));
      }
    }
  }
  const expanded = new URLSearchParams(expandTypeModifiers(`?${combined.toString()}`).slice(1));
  const result: Record<string, string | string[]> = {};
  for (const name of new Set(expanded.keys())) {
    // One value stays a string; a name given more than once is a list of values.
    const values = expanded.getAll(name);
    const [only, ...more] = values;
    result[name] = only !== undefined && more.length === 0 ? only : values;
  }
  return result;
}

/** A path segment naming an operation (`$name`, or percent-encoded `%24name`). */
function hasOperationSegment(url: string): boolean {
  const [path = url] = url.split('?');
  return path.split('/').some((segment) => /^(?:\$|%24)/i.test(segment));
}

/**
 * The router, with the query rewrites above applied to every request, batch entries included. A
 * path with an operation segment reaches operations only (never a read or search of a type or id
 * named `$…`): the scope guard lets such paths through to the operation's own check (operations/caller.ts).
 * The library's `$graphql` is not offered (routes/fhir.ts refuses it over HTTP): not as a batch
 * entry either, where it would be a read path of its own beside those docs/access.md lists.
 */
class HubFhirRouter extends FhirRouter {
  override find(method: HttpMethod, url: string): ReturnType<FhirRouter['find']> {
    const route = super.find(method, expandTypeModifiers(url));
    if (route && route.data?.interaction !== 'operation' && hasOperationSegment(url)) {
      return undefined;
    }
    if (route?.path === '$graphql') {
      return undefined;
    }
    return route?.data?.interaction === 'batch' ? { ...route, handler: batch } : route;
  }
}

/** The router; with an operation context, the hub's operations too (operations/index.ts). */
export function createFhirRouter(operations?: OperationContext): FhirRouter {
  const router = new HubFhirRouter();
  router.add('GET', ':resourceType/_history', typeHistory, 'history-type');
  router.add('GET', '_history', systemHistory, 'history-system');
  if (operations) {
    registerOperations(router, operations);
  }
  return router;
}
