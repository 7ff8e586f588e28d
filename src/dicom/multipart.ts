/**
 * A streaming reader of multipart/related bodies (RFC 2387 over RFC 2046 §5.1) as STOW-RS receives
 * them (PS3.18 §10.5). Each part's body is handed over as a Readable the consumer pipes somewhere;
 * the reader pulls from the source only as fast as the consumer reads, and holds at most one source
 * chunk plus the delimiter length (or one header block) at a time, whatever the part size.
 *
 * Decisions:
 * - Line ends: CRLF is what RFC 2046 requires and what we write; a bare LF is accepted too, in
 *   delimiter lines and part headers, because some hand-rolled clients send it. The cost: with a
 *   bare-LF sender, a part body ending in CR loses that CR. A random boundary makes a false match
 *   inside DICOM bytes as unlikely with LF as with CRLF.
 * - A delimiter followed by anything but transport padding (spaces, tabs) and a line end, or `--`,
 *   is malformed and aborts the body: RFC 2046 forbids the delimiter inside a part.
 * - One part's trouble stays in that part: when the consumer's handler rejects, returns without
 *   reading the body, or the part is too large or shorter/longer than its Content-Length, the reader
 *   skips the rest of that part, records a PartFailure and goes on with the next part (or rejects,
 *   with `onPartFailure: 'abort'`). Framing errors (truncated body, no close delimiter, header block
 *   too large, too many parts) reject the whole read.
 * - On a rejection the source is left as it is (a Readable is not destroyed), so the route can still
 *   answer 400/413 before it drains or closes the connection.
 */
import type { Readable } from 'node:stream';
import { MultipartError } from './multipart-content-type.ts';
import { ActivePart, describePart, parsePartHeaders, type PartHandler, type ReceivedPart } from './multipart-part.ts';

export {
  MultipartError,
  formatMultipartRelatedContentType,
  isValidBoundary,
  parseMediaType,
  parseMultipartRelatedContentType,
  type MediaType,
  type MultipartErrorCode,
  type MultipartRelatedContentType,
} from './multipart-content-type.ts';
export { BODY_HIGH_WATER_MARK, type PartHandler, type ReceivedPart } from './multipart-part.ts';
export { writeMultipartRelated, type MultipartRelatedBody, type OutgoingPart } from './multipart-writer.ts';

export interface MultipartLimits {
  /** Bytes of one part's header block. */
  maxHeaderBytes: number;
  maxParts: number;
  /** Bytes of one part's body; a larger part fails alone with `part-too-large`. */
  maxPartBytes: number;
}

export const DEFAULT_MULTIPART_LIMITS: Readonly<MultipartLimits> = {
  maxHeaderBytes: 16 * 1024,
  maxParts: 10_000,
  maxPartBytes: 4 * 1024 ** 3,
};

export interface PartFailure {
  index: number;
  headers: ReadonlyMap<string, string>;
  error: unknown;
}

export interface MultipartReadResult {
  partCount: number;
  failures: PartFailure[];
}

export interface ReadMultipartOptions {
  boundary: string;
  limits?: Partial<MultipartLimits>;
  /** What a failing part does to the rest of the body; `continue` by default. */
  onPartFailure?: 'continue' | 'abort';
}

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const SPACE = 0x20;
const TAB = 0x09;
/** Transport padding allowed after a delimiter (RFC 2046 §5.1.1 sets no bound; we do). */
const MAX_TRANSPORT_PADDING = 1024;

/** Reads a multipart body, calling `onPart` for each part in order, one at a time. */
export async function readMultipart(
  source: AsyncIterable<Uint8Array | string> | Readable,
  options: ReadMultipartOptions,
  onPart: PartHandler,
): Promise<MultipartReadResult> {
  const parser = new MultipartParser(options, onPart);
  const iterator = (source as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) {
        break;
      }
      const chunk = next.value;
      await parser.write(
        typeof chunk === 'string'
          ? Buffer.from(chunk, 'latin1')
          : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      );
    }
    return await parser.end();
  } catch (error) {
    await parser.abort(error);
    throw error;
  }
}

type ParserState = 'preamble' | 'headers' | 'body' | 'epilogue';

class MultipartParser {
  private readonly delimiter: Buffer;
  private readonly limits: MultipartLimits;
  private readonly abortOnPartFailure: boolean;
  private readonly onPart: PartHandler;
  // RFC 2046: the delimiter is CRLF "--" boundary; a virtual line end lets the first one match at offset 0.
  private pending: Buffer = Buffer.from([LF]);
  private state: ParserState = 'preamble';
  private part: ActivePart | undefined;
  private partCount = 0;
  private readonly failures: PartFailure[] = [];

  constructor(options: ReadMultipartOptions, onPart: PartHandler) {
    this.delimiter = Buffer.from(`\n--${options.boundary}`, 'latin1');
    this.limits = { ...DEFAULT_MULTIPART_LIMITS, ...options.limits };
    this.abortOnPartFailure = options.onPartFailure === 'abort';
    this.onPart = onPart;
  }

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) {
      return;
    }
    if (this.state === 'epilogue') {
      return;
    }
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    await this.consume();
  }

  async end(): Promise<MultipartReadResult> {
    if (this.state !== 'epilogue') {
      throw new MultipartError(
        'truncated',
        this.partCount === 0
          ? 'multipart body has no delimiter'
          : 'multipart body ends without its close delimiter (truncated upload)',
      );
    }
    return { partCount: this.partCount, failures: this.failures };
  }

  async abort(error: unknown): Promise<void> {
    const part = this.part;
    if (part === undefined) {
      return;
    }
    this.part = undefined;
    part.stop(error);
    await part.outcome;
  }

  private async consume(): Promise<void> {
    for (;;) {
      if (this.state === 'epilogue') {
        this.pending = Buffer.alloc(0);
        return;
      }
      if (this.state === 'headers') {
        if (!this.readHeaders()) {
          return;
        }
        continue;
      }
      const at = this.pending.indexOf(this.delimiter);
      if (at === -1) {
        // Keep what could be the start of a delimiter split across chunks, with the CR before it.
        const keep = this.delimiter.length;
        if (this.pending.length > keep) {
          await this.emit(this.pending.subarray(0, this.pending.length - keep));
          this.pending = this.pending.subarray(this.pending.length - keep);
        }
        return;
      }
      const bodyEnd = at > 0 && this.pending[at - 1] === CR ? at - 1 : at;
      const line = this.delimiterLine(at + this.delimiter.length);
      await this.emit(this.pending.subarray(0, bodyEnd));
      if (line === undefined) {
        this.pending = this.pending.subarray(bodyEnd);
        return;
      }
      await this.finishPart();
      this.pending = this.pending.subarray(line.end);
      this.state = line.close ? 'epilogue' : 'headers';
    }
  }

  /** Where the line after a delimiter ends, or undefined when more bytes are needed. */
  private delimiterLine(pos: number): { close: boolean; end: number } | undefined {
    const bytes = this.pending;
    if (pos >= bytes.length) {
      return undefined;
    }
    if (bytes[pos] === DASH) {
      if (pos + 1 >= bytes.length) {
        return undefined;
      }
      if (bytes[pos + 1] === DASH) {
        return { close: true, end: pos + 2 };
      }
      throw new MultipartError('malformed-delimiter', 'a delimiter is followed by other characters');
    }
    let end = pos;
    while (end < bytes.length && (bytes[end] === SPACE || bytes[end] === TAB)) {
      end++;
    }
    if (end - pos > MAX_TRANSPORT_PADDING) {
      throw new MultipartError('malformed-delimiter', 'too much transport padding');
    }
    if (end >= bytes.length) {
      return undefined;
    }
    if (bytes[end] === LF) {
      return { close: false, end: end + 1 };
    }
    if (bytes[end] === CR) {
      if (end + 1 >= bytes.length) {
        return undefined;
      }
      if (bytes[end + 1] === LF) {
        return { close: false, end: end + 2 };
      }
    }
    throw new MultipartError('malformed-delimiter', 'a delimiter is followed by other characters');
  }

  private async emit(bytes: Buffer): Promise<void> {
    if (bytes.length === 0 || this.part === undefined) {
      return;
    } // the preamble is discarded
    await this.part.deliver(bytes, this.limits.maxPartBytes);
  }

  private async finishPart(): Promise<void> {
    const part = this.part;
    if (part === undefined) {
      return;
    }
    part.finish();
    await part.outcome;
    this.part = undefined;
    if (part.error !== undefined) {
      this.failures.push({ index: part.index, headers: part.headers, error: part.error });
      if (this.abortOnPartFailure) {
        throw part.error;
      }
    }
  }

  private refuseEarly(received: Omit<ReceivedPart, 'body'>): MultipartError | undefined {
    if (received.contentLength !== undefined && received.contentLength > this.limits.maxPartBytes) {
      return new MultipartError(
        'part-too-large',
        `part ${received.index} declares more than ${this.limits.maxPartBytes} bytes`,
      );
    }
    return undefined;
  }

  /** Parses a complete header block and starts its part; false when more bytes are needed. */
  private readHeaders(): boolean {
    const bytes = this.pending;
    const window = bytes.subarray(0, this.limits.maxHeaderBytes + 3);
    let headerEnd: number;
    let bodyStart: number;
    if (window[0] === LF) {
      [headerEnd, bodyStart] = [0, 1];
    } else if (window[0] === CR && window[1] === LF) {
      [headerEnd, bodyStart] = [0, 2];
    } else {
      const crlf = window.indexOf('\n\r\n', 0, 'latin1');
      const lf = window.indexOf('\n\n', 0, 'latin1');
      const blank = crlf === -1 ? lf : lf === -1 ? crlf : Math.min(crlf, lf);
      if (blank === -1 || blank + 1 > this.limits.maxHeaderBytes) {
        if (bytes.length > this.limits.maxHeaderBytes) {
          throw new MultipartError(
            'header-too-large',
            `a part header block exceeds ${this.limits.maxHeaderBytes} bytes`,
          );
        }
        return false;
      }
      headerEnd = blank + 1;
      bodyStart = blank === crlf ? blank + 3 : blank + 2;
    }
    if (this.partCount >= this.limits.maxParts) {
      throw new MultipartError('too-many-parts', `more than ${this.limits.maxParts} parts`);
    }
    const index = this.partCount++;
    const text = bytes.subarray(0, headerEnd).toString('latin1');
    this.pending = bytes.subarray(bodyStart);
    this.state = 'body';
    const headers = parsePartHeaders(text);
    const received = headers instanceof MultipartError ? headers : describePart(index, headers);
    const refusal = received instanceof MultipartError ? received : this.refuseEarly(received);
    if (refusal !== undefined) {
      // A part refused from its headers fails alone, without reaching the handler; its body is skipped.
      const part = new ActivePart(
        { index, headers: headers instanceof MultipartError ? new Map() : headers },
        () => undefined,
      );
      part.stop(refusal);
      this.part = part;
      return true;
    }
    this.part = new ActivePart(received as Omit<ReceivedPart, 'body'>, this.onPart);
    return true;
  }
}
