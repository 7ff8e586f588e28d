/**
 * The shape of a resource's rows in the search index tables (sp_token, sp_string, sp_reference,
 * sp_date, sp_number, sp_uri) and how a reference is split for sp_reference. The FHIR indexer
 * computes them, the write statement stores them, and the access model and the audit store read
 * references the same way.
 */

export interface SearchIndexRows {
  token: [param: string, system: string | null, value: string | null, display: string | null][];
  string: [param: string, normalized: string, exact: string][];
  reference: [param: string, targetType: string | null, targetId: string | null, reference: string][];
  date: [param: string, low: string | null, high: string | null][];
  number: [param: string, low: number | null, high: number | null, system: string | null, code: string | null][];
  uri: [param: string, value: string][];
}

/** Splits `Type/id`, `Type/id/_history/v` or `base/Type/id` into type and id. */
export function parseReference(reference: string): { targetType: string | null; targetId: string | null } {
  const withoutHistory = reference.replace(/\/_history\/[^/]+$/, '');
  const [, targetType, targetId] = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(withoutHistory) ?? [];
  // Both groups are required, so a match has both and anything else has neither.
  return targetType !== undefined && targetId !== undefined
    ? { targetType, targetId }
    : { targetType: null, targetId: null };
}
