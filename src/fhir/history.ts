/** History bundles (R4 http §3.1.0.9): one entry per stored version, newest first. */
import type { WithId } from '@medplum/core';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';

/** A row of resource_version. */
export interface HistoryRow {
  resource_type: string;
  id: string;
  version: number;
  last_updated: Date | string;
  method: string;
  deleted: boolean;
  content: string | null;
}

export interface HistoryPage {
  fhirBase: string;
  /** The history URL without query, e.g. `{base}/Patient/1/_history`. */
  url: string;
  count: number;
  offset: number;
  /** Total versions, when known; without it a `next` link is given only when `hasMore`. */
  total?: number;
  hasMore?: boolean;
}

export function historyBundle<T extends Resource>(rows: HistoryRow[], page: HistoryPage): Bundle<WithId<T>> {
  const entry: BundleEntry<WithId<T>>[] = rows.map((row) => {
    const lastModified = new Date(row.last_updated).toISOString();
    const path = `${row.resource_type}/${row.id}`;
    const status = row.method === 'POST' ? '201 Created' : row.deleted ? '204 No Content' : '200 OK';
    return {
      fullUrl: `${page.fhirBase}/${path}`,
      ...(row.content ? { resource: JSON.parse(row.content) as WithId<T> } : {}),
      request: { method: row.method as 'POST', url: row.method === 'POST' ? row.resource_type : path },
      response: { status, etag: `W/"${row.version}"`, lastModified },
    };
  });
  const { url, count, offset, total } = page;
  const link = [{ relation: 'self', url: `${url}?_count=${count}${offset ? `&_offset=${offset}` : ''}` }];
  const more = total !== undefined ? offset + count < total : Boolean(page.hasMore);
  if (more) {
    link.push({ relation: 'next', url: `${url}?_count=${count}&_offset=${offset + count}` });
  }
  return {
    resourceType: 'Bundle',
    type: 'history',
    ...(total !== undefined ? { total } : {}),
    link,
    ...(entry.length > 0 ? { entry } : {}),
  };
}
