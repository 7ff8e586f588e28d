/**
 * Job payloads carry ids only (architecture.md): a queue declares each field as one of these id
 * kinds, and anything else, an extra key, a name, free text, is refused before it reaches Redis
 * and again when a worker takes the job (a relayed outbox event never passed the producer's check).
 */
import { z } from 'zod';

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** The kinds of value a job payload may hold. */
export const JOB_DATA_FIELD_KINDS = {
  /** A UUID, e.g. a notification id. */
  uuid: z.uuid(),
  /** A FHIR logical id. */
  fhirId: z.string().regex(FHIR_ID),
  /** A FHIR resource type name. */
  resourceType: z.string().regex(/^[A-Z][A-Za-z]{1,63}$/),
  /** A relative FHIR reference, `Type/id`. */
  reference: z.string().regex(/^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}$/),
  /** A FHIR versionId or another counter written as digits. */
  versionId: z.string().regex(/^[0-9]{1,18}$/),
  /** A database row number. */
  rowId: z.number().int().positive(),
  /** A lower-case keyword from a fixed vocabulary of ours (e.g. `create`, `report-ready`). */
  keyword: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/),
} as const;

export type JobDataFieldKind = keyof typeof JOB_DATA_FIELD_KINDS;

type FieldValue<K extends JobDataFieldKind> = z.infer<(typeof JOB_DATA_FIELD_KINDS)[K]>;

/** The payload type declared by a field list: `{ notificationId: 'uuid' }` → `{ notificationId: string }`. */
export type JobDataOf<F extends Record<string, JobDataFieldKind>> = { [P in keyof F]: FieldValue<F[P]> };

/** A strict schema for a field list: every field required, no other key allowed. */
export function jobDataSchema<F extends Record<string, JobDataFieldKind>>(fields: F): z.ZodType<JobDataOf<F>> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, kind] of Object.entries(fields)) {
    shape[name] = JOB_DATA_FIELD_KINDS[kind];
  }
  return z.strictObject(shape) as unknown as z.ZodType<JobDataOf<F>>;
}

/** Refused job data; the message names the offending keys, never their values. */
export class JobDataError extends Error {
  constructor(queue: string, error: z.ZodError) {
    super(`job data for queue "${queue}" refused: ${describeIssues(error)}`);
    this.name = 'JobDataError';
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return `unexpected key(s) ${issue.keys.map((key) => JSON.stringify(key)).join(', ')}`;
      }
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(payload)';
      return `${where} is not a valid ${issue.code === 'invalid_type' ? `value (expected ${issue.expected})` : 'id'}`;
    })
    .join('; ');
}

/** Validates `data` against a queue's schema; throws a JobDataError naming the bad keys. */
export function parseJobData<T>(queue: string, schema: z.ZodType<T>, data: unknown): T {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new JobDataError(queue, parsed.error);
  }
  return parsed.data;
}

const EMAIL_ADDRESS = /[^\s<>()@,;:"]+@[^\s<>()@,;:"]+/g;

/**
 * An error message fit for logs, the dead-letter view and the notification table: e-mail
 * addresses (an SMTP server's 550 reply names the mailbox) are masked, and the length is bounded.
 */
export function redactErrorMessage(message: string, maxLength = 500): string {
  // Bounded before the pattern runs: it scans from every position, so its cost grows with the square
  // of a long address-free text. Only the first maxLength characters are kept anyway.
  const masked = message
    .slice(0, maxLength * 4)
    .replace(EMAIL_ADDRESS, '<address>')
    .replace(/\s+/g, ' ')
    .trim();
  return masked.length > maxLength ? `${masked.slice(0, maxLength - 1)}…` : masked;
}
