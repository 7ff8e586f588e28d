/**
 * How much Binary content one request may put inline, as base64 `data` in the resources it answers
 * (HubRepository.withBinaryData: a read with _elements or _summary, a batch's GET Binary/<id>
 * entries, an unchanged update's answer). Each such read holds the content, its base64 and the
 * answer's JSON in memory at once, so a cap per read is not enough: twenty 2 MiB reads in one batch
 * made a 56 MB answer. The budget is per request and shared by every read of it, batch entries and
 * the reads inside a transaction included; past it a read is refused with 413, and the client reads
 * the Binary raw, or alone as FHIR JSON (both streamed from the blob store, routes/fhir.ts).
 */
import { OperationOutcomeError } from '@medplum/core';
import { payloadTooLarge } from './outcomes.ts';

/** The largest Binary content one read puts inline in `data`, and all of one request's reads together. */
export const BINARY_JSON_INLINE_MAX_BYTES = 32 * 1024 * 1024;

const HOW_TO_READ = 'read it raw (any Accept but FHIR JSON), or on its own as FHIR JSON without _elements or _summary';

export class InlineBinaryBudget {
  readonly limit: number;
  private remaining: number;

  constructor(limit: number = BINARY_JSON_INLINE_MAX_BYTES) {
    this.limit = limit;
    this.remaining = limit;
  }

  /** Counts `size` bytes of `Binary/<id>` against the budget, or refuses the read (413) without counting it. */
  take(id: string, size: number): void {
    if (size > this.remaining) {
      throw new OperationOutcomeError(
        payloadTooLarge(
          `Binary/${id} holds ${size} bytes, more than the ${this.remaining} of the ${this.limit} bytes of Binary content one request may put inline that are left: ${HOW_TO_READ}`,
        ),
      );
    }
    this.remaining -= size;
  }
}

/** The refusal of one read over the cap by itself, whatever the budget. */
export function binaryTooLargeToInline(id: string, size: number): OperationOutcomeError {
  return new OperationOutcomeError(
    payloadTooLarge(
      `Binary/${id} holds ${size} bytes, more than the ${BINARY_JSON_INLINE_MAX_BYTES} a read puts inline: ${HOW_TO_READ}`,
    ),
  );
}
