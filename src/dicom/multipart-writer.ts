/**
 * Writes multipart/related bodies for WADO-RS responses (PS3.18 §8.6.1.2, RFC 2387): parts given as
 * Buffers or streams, emitted in order with backpressure, ending with the close delimiter.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { MultipartError, formatMultipartRelatedContentType, isValidBoundary } from './multipart-content-type.ts';

export interface OutgoingPart {
  body: Buffer | Readable | AsyncIterable<Uint8Array>;
  contentType?: string;
  /** Added automatically for Buffer bodies. */
  contentLength?: number;
  contentLocation?: string;
  contentId?: string;
  /** Further header fields, written as given after the ones above. */
  headers?: Readonly<Record<string, string>>;
}

export interface MultipartRelatedBody {
  boundary: string;
  /** The response's Content-Type header value. */
  contentType: string;
  body: Readable;
}

export interface WriteMultipartRelatedOptions {
  /** Media type of the parts (the `type` parameter), e.g. `application/dicom`. */
  type: string;
  boundary?: string;
  /** Source of randomness for the boundary; tests pass a deterministic one. */
  randomBytes?: (size: number) => Buffer;
}

const BOUNDARY_RANDOM_BYTES = 24;
const BOUNDARY_ATTEMPTS = 8;

/**
 * A multipart/related body of `parts`. When `parts` is an array of Buffers the boundary is checked
 * against every part and drawn again on a collision; with streamed parts a 192-bit random boundary
 * is trusted, and a Buffer part that happens to hold it fails the stream (`boundary-in-part`).
 */
export function writeMultipartRelated(
  parts: Iterable<OutgoingPart> | AsyncIterable<OutgoingPart>,
  options: WriteMultipartRelatedOptions,
): MultipartRelatedBody {
  const random = options.randomBytes ?? cryptoRandomBytes;
  let boundary = options.boundary;
  if (boundary !== undefined && !isValidBoundary(boundary)) {
    throw new MultipartError('invalid-boundary', 'boundary must be 1 to 70 characters of the RFC 2046 set');
  }
  if (boundary === undefined) {
    const buffered = Array.isArray(parts) && parts.every((part: OutgoingPart) => Buffer.isBuffer(part.body));
    for (let attempt = 0; ; attempt++) {
      const candidate = `dicomweb-${random(BOUNDARY_RANDOM_BYTES).toString('hex')}`;
      if (!buffered || !(parts as OutgoingPart[]).some((part) => containsDelimiter(part.body as Buffer, candidate))) {
        boundary = candidate;
        break;
      }
      if (attempt + 1 >= BOUNDARY_ATTEMPTS) {
        throw new MultipartError('boundary-in-part', 'no boundary absent from the parts');
      }
    }
  }
  return {
    boundary,
    contentType: formatMultipartRelatedContentType(boundary, options.type),
    body: Readable.from(emitParts(parts, boundary), { objectMode: false }),
  };
}

function containsDelimiter(body: Buffer, boundary: string): boolean {
  return body.includes(`--${boundary}`, 0, 'latin1');
}

async function* emitParts(
  parts: Iterable<OutgoingPart> | AsyncIterable<OutgoingPart>,
  boundary: string,
): AsyncGenerator<Buffer> {
  let emitted = 0;
  try {
    for await (const part of parts) {
      // RFC 2046 §5.1.1: the CRLF before "--boundary" belongs to the delimiter, not to the previous part.
      yield Buffer.from(`${emitted === 0 ? '' : '\r\n'}--${boundary}\r\n${formatPartHeaders(part)}\r\n`, 'latin1');
      emitted++;
      if (Buffer.isBuffer(part.body)) {
        if (containsDelimiter(part.body, boundary)) {
          throw new MultipartError('boundary-in-part', 'a part contains the boundary');
        }
        if (part.body.length > 0) {
          yield part.body;
        }
      } else {
        for await (const chunk of part.body as AsyncIterable<Uint8Array | string>) {
          yield typeof chunk === 'string'
            ? Buffer.from(chunk)
            : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        }
      }
    }
    yield Buffer.from(`${emitted === 0 ? '' : '\r\n'}--${boundary}--\r\n`, 'latin1');
  } finally {
    // A response cut short (client gone) must not leave the files of the parts not yet sent open.
    if (Array.isArray(parts)) {
      for (const part of (parts as OutgoingPart[]).slice(emitted)) {
        if (part.body instanceof Readable) {
          part.body.destroy();
        }
      }
    }
  }
}

function formatPartHeaders(part: OutgoingPart): string {
  const fields: [string, string | number | undefined][] = [
    ['Content-Type', part.contentType],
    ['Content-Length', part.contentLength ?? (Buffer.isBuffer(part.body) ? part.body.length : undefined)],
    ['Content-Location', part.contentLocation],
    ['Content-ID', part.contentId],
    ...Object.entries(part.headers ?? {}),
  ];
  let text = '';
  for (const [name, value] of fields) {
    if (value === undefined) {
      continue;
    }
    const line = `${name}: ${value}`;
    if (/[\r\n]/.test(line) || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      throw new TypeError(`part header ${JSON.stringify(name)} is not a valid header field`);
    }
    text += `${line}\r\n`;
  }
  return text;
}
