/**
 * Attachments as EHRs send them: a PDF as base64 `data` inside a DocumentReference (or any other
 * resource with an Attachment). Above INLINE_ATTACHMENT_MAX_BYTES the hub moves the bytes into the
 * blob store as a Binary of their own, in the same transaction as the resource, and the attachment
 * keeps `url` (`Binary/<id>`), `size` and `hash` (R4: SHA-1, base64) instead of `data`. The resource
 * stays small in the database, in search results and in every notification; the bytes come back
 * unchanged from the Binary. Smaller data stays inline, as sent.
 *
 * Pure: finds the attachments and rewrites the resource; storing the bytes is the repository's.
 */
import { createHash } from 'node:crypto';
import type { Attachment, Resource } from '@medplum/fhirtypes';
import { OperationOutcomeError, badRequest } from '@medplum/core';

/** Inline data up to this size (decoded) stays in the resource. */
export const INLINE_ATTACHMENT_MAX_BYTES = 64 * 1024;

/** base64 as R4 defines base64Binary: the alphabet, padding, and whitespace (XML-era wrapping). */
const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

export interface MovedAttachment {
  /** The element's FHIRPath-like location, for error messages. */
  path: string;
  bytes: Buffer;
  contentType: string | undefined;
  /** Where the Binary's id goes once the repository has chosen it. */
  attachment: Attachment;
}

/** The decoded bytes of base64Binary `data`, or a 400 naming the element. */
export function decodeBase64(data: string, path: string): Buffer {
  if (!BASE64.test(data)) {
    throw new OperationOutcomeError(badRequest(`${path} is not base64`, path));
  }
  return Buffer.from(data, 'base64');
}

/**
 * An Attachment has `data` of type base64Binary; the other R4 elements with a `data` property are
 * SampledData (decimal values as text, with `origin`) and Signature (with `who`), left alone.
 */
function isAttachment(
  value: Record<string, unknown>,
): value is Attachment & { data: string } & Record<string, unknown> {
  return typeof value.data === 'string' && !('origin' in value) && !('who' in value) && !('resourceType' in value);
}

/** SHA-1 of the bytes, base64: Attachment.hash as R4 defines it. */
export function attachmentHash(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('base64');
}

/**
 * A copy of `resource` whose large inline attachments are set aside: each loses `data` and gets
 * `size` and `hash` (a `size` or `hash` the sender gave must agree with the data, or the write is
 * refused). The repository sets each one's `url` once it has stored the bytes.
 */
export function takeInlineAttachments<T extends Resource>(resource: T): { resource: T; moved: MovedAttachment[] } {
  if (resource.resourceType === 'Binary') {
    return { resource, moved: [] };
  }
  const moved: MovedAttachment[] = [];
  const visit = (value: unknown, path: string): unknown => {
    if (Array.isArray(value)) {
      return value.map((item, index) => visit(item, `${path}[${index}]`));
    }
    if (value === null || typeof value !== 'object') {
      return value;
    }
    const object = value as Record<string, unknown>;
    if (path !== resource.resourceType && 'resourceType' in object) {
      // A contained resource is written as part of this one and keeps what it was sent with.
      return value;
    }
    if (isAttachment(object) && object.data.length > (INLINE_ATTACHMENT_MAX_BYTES * 4) / 3 + 4) {
      const bytes = decodeBase64(object.data, `${path}.data`);
      if (bytes.length > INLINE_ATTACHMENT_MAX_BYTES) {
        const hash = attachmentHash(bytes);
        if (object.size !== undefined && object.size !== bytes.length) {
          throw new OperationOutcomeError(
            badRequest(`${path}.size is ${object.size} but the data holds ${bytes.length} bytes`, `${path}.size`),
          );
        }
        if (object.hash !== undefined && object.hash !== hash) {
          throw new OperationOutcomeError(
            badRequest(`${path}.hash is not the SHA-1 of the data (R4 Attachment.hash)`, `${path}.hash`),
          );
        }
        const { data: _data, url: _url, ...rest } = object;
        const attachment = { ...rest, size: bytes.length, hash } as Attachment;
        moved.push({ path, bytes, contentType: object.contentType, attachment });
        return attachment;
      }
    }
    const copy: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(object)) {
      copy[key] = visit(child, `${path}.${key}`);
    }
    return copy;
  };
  const rewritten =
    moved.length === 0 && !mayHoldLargeData(resource) ? resource : (visit(resource, resource.resourceType) as T);
  return { resource: rewritten, moved };
}

/** A quick look before the copy: most writes hold no string long enough to be moved. */
function mayHoldLargeData(resource: Resource): boolean {
  let found = false;
  const look = (value: unknown): void => {
    if (found || value === null || typeof value !== 'object') {
      return;
    }
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      if (key === 'data' && typeof child === 'string' && child.length > (INLINE_ATTACHMENT_MAX_BYTES * 4) / 3 + 4) {
        found = true;
        return;
      }
      look(child);
    }
  };
  look(resource);
  return found;
}
