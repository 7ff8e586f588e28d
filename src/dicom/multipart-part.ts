/**
 * One part of a multipart body as the reader hands it over: its headers, and a body Readable fed
 * with backpressure, whose consumer's handler decides whether the part failed.
 */
import { Readable } from 'node:stream';
import { MultipartError } from './multipart-content-type.ts';

export interface ReceivedPart {
  /** 0-based position of the part in the body. */
  index: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: ReadonlyMap<string, string>;
  contentType?: string;
  contentLength?: number;
  contentLocation?: string;
  contentId?: string;
  body: Readable;
}

/** Handles one part; it should consume `part.body` (or reject) before its promise settles. */
export type PartHandler = (part: ReceivedPart) => Promise<void> | void;

/** Bytes a part body buffers before the reader waits for its consumer. */
export const BODY_HIGH_WATER_MARK = 64 * 1024;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The part being received, with the consumer's demand and its handler's outcome. */
export class ActivePart {
  readonly index: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly declaredLength: number | undefined;
  readonly body: Readable;
  readonly outcome: Promise<void>;
  bytes = 0;
  /** Set once the body's remaining bytes are to be thrown away. */
  skipping = false;
  error: unknown = undefined;
  private handlerSettled = false;
  private wake: (() => void) | undefined;

  constructor(received: Omit<ReceivedPart, 'body'>, onPart: PartHandler) {
    this.index = received.index;
    this.headers = received.headers;
    this.declaredLength = received.contentLength;
    this.body = new Readable({ highWaterMark: BODY_HIGH_WATER_MARK, read: () => this.signal() });
    // Errors we inject reach the consumer through its own listeners; this one keeps an ignored body from crashing.
    this.body.on('error', () => undefined);
    this.body.once('close', () => this.signal());
    this.outcome = Promise.resolve()
      .then(() => onPart({ ...received, body: this.body }))
      .then(
        () => {
          this.handlerSettled = true;
        },
        (error: unknown) => {
          this.handlerSettled = true;
          this.error ??= error;
        },
      )
      .then(() => {
        if (!this.body.readableEnded) {
          this.stop(undefined);
        }
        this.signal();
      });
  }

  /** Hands bytes to the consumer, waiting while its buffer is full. */
  async deliver(bytes: Buffer, maxPartBytes: number): Promise<void> {
    if (this.skipping) {
      return;
    }
    this.bytes += bytes.length;
    if (this.bytes > maxPartBytes) {
      this.stop(new MultipartError('part-too-large', `part ${this.index} is larger than ${maxPartBytes} bytes`));
      return;
    }
    if (this.body.push(bytes)) {
      return;
    }
    while (
      !this.skipping &&
      !this.handlerSettled &&
      !this.body.destroyed &&
      this.body.readableLength >= BODY_HIGH_WATER_MARK
    ) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.body.destroyed || this.handlerSettled) {
      this.skipping = true;
    }
  }

  /** Ends the body at the delimiter, or fails it when it disagrees with its Content-Length. */
  finish(): void {
    if (this.skipping) {
      return;
    }
    if (this.declaredLength !== undefined && this.declaredLength !== this.bytes) {
      this.stop(
        new MultipartError(
          'part-length-mismatch',
          `part ${this.index} has ${this.bytes} bytes, Content-Length says ${this.declaredLength}`,
        ),
      );
      return;
    }
    this.body.push(null);
  }

  /** Gives up on the body: the consumer sees `error` (if any) and the rest of the bytes are skipped. */
  stop(error: unknown): void {
    this.skipping = true;
    if (error !== undefined) {
      this.error = error;
    }
    if (!this.body.destroyed) {
      this.body.destroy(error instanceof Error ? error : undefined);
    }
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** RFC 822 header fields with folded lines; a MultipartError when a line is not a field. */
export function parsePartHeaders(text: string): Map<string, string> | MultipartError {
  const headers = new Map<string, string>();
  const lines: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') {
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && lines.length > 0) {
      lines[lines.length - 1] += ` ${line.trim()}`;
    } else {
      lines.push(line);
    }
  }
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon).trim().toLowerCase();
    if (!HEADER_NAME.test(name)) {
      return new MultipartError('malformed-part-header', 'a part header line is not a header field');
    }
    const value = line.slice(colon + 1).trim();
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  return headers;
}

export function describePart(index: number, headers: Map<string, string>): Omit<ReceivedPart, 'body'> | MultipartError {
  const part: Omit<ReceivedPart, 'body'> = { index, headers };
  const contentType = headers.get('content-type');
  if (contentType !== undefined) {
    part.contentType = contentType;
  }
  const contentLength = headers.get('content-length');
  if (contentLength !== undefined) {
    if (!/^\d{1,15}$/.test(contentLength)) {
      return new MultipartError('malformed-part-header', `part ${index} has an invalid Content-Length`);
    }
    part.contentLength = Number(contentLength);
  }
  const contentLocation = headers.get('content-location');
  if (contentLocation !== undefined) {
    part.contentLocation = contentLocation;
  }
  const contentId = headers.get('content-id');
  if (contentId !== undefined) {
    part.contentId = contentId;
  }
  return part;
}
