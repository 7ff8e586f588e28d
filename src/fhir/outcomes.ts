/**
 * OperationOutcomes for the statuses @medplum/core has no ready-made outcome for. The HTTP status
 * travels in the outcome's id, so an error keeps its status through the router and batch code.
 */
import { getStatus } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

const STATUS_BY_ID: Record<string, number> = {
  'not-acceptable': 406,
  'method-not-allowed': 405,
  'payload-too-large': 413,
  'unsupported-media-type': 415,
  // a PATCH whose result is invalid (repository.patchResource)
  unprocessable: 422,
};

function outcome(id: string, code: OperationOutcomeIssue['code'], text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', id, issue: [{ severity: 'error', code, details: { text } }] };
}

export const methodNotAllowed = (text: string): OperationOutcome =>
  outcome('method-not-allowed', 'not-supported', text);
export const notAcceptable = (text: string): OperationOutcome => outcome('not-acceptable', 'not-supported', text);
export const payloadTooLarge = (text: string): OperationOutcome => outcome('payload-too-large', 'too-long', text);
export const unsupportedMediaType = (text: string): OperationOutcome =>
  outcome('unsupported-media-type', 'not-supported', text);
/** 422: well-formed, but against the server's business rules (R4 http, "Create"). */
export const unprocessable = (text: string): OperationOutcome => outcome('unprocessable', 'business-rule', text);

/** The HTTP status an OperationOutcome stands for. */
export function outcomeStatus(result: OperationOutcome): number {
  return (result.id && STATUS_BY_ID[result.id]) || getStatus(result);
}
