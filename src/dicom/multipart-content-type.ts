/**
 * Media types with parameters (RFC 2045 §5.1) and the multipart/related header of DICOMweb requests
 * (RFC 2387, PS3.18 §8.6.1.2): the route answers 415 or 400 from the error's status.
 */

export type MultipartErrorCode =
  | 'unsupported-media-type'
  | 'invalid-content-type'
  | 'invalid-boundary'
  | 'truncated'
  | 'malformed-delimiter'
  | 'header-too-large'
  | 'malformed-part-header'
  | 'too-many-parts'
  | 'part-too-large'
  | 'part-length-mismatch'
  | 'boundary-in-part';

const STATUS_BY_CODE: Record<MultipartErrorCode, number> = {
  'unsupported-media-type': 415,
  'invalid-content-type': 400,
  'invalid-boundary': 400,
  truncated: 400,
  'malformed-delimiter': 400,
  'header-too-large': 400,
  'malformed-part-header': 400,
  'too-many-parts': 413,
  'part-too-large': 413,
  'part-length-mismatch': 400,
  'boundary-in-part': 500,
};

/** A refusal of a multipart body or header; `status` is the HTTP status the route should answer. */
export class MultipartError extends Error {
  readonly code: MultipartErrorCode;
  readonly status: number;

  constructor(code: MultipartErrorCode, message: string) {
    super(message);
    this.name = 'MultipartError';
    this.code = code;
    this.status = STATUS_BY_CODE[code];
  }
}

export interface MediaType {
  /** Lower-case `type/subtype`. */
  essence: string;
  /** Parameter names lower-cased, values unquoted (values stay case-sensitive). */
  parameters: ReadonlyMap<string, string>;
}

export interface MultipartRelatedContentType {
  boundary: string;
  /** The root part's media type (RFC 2387 §3.1), e.g. `application/dicom`. */
  type?: string;
  /** Content-ID of the root part (RFC 2387 §3.2). */
  start?: string;
  startInfo?: string;
  transferSyntax?: string;
  parameters: ReadonlyMap<string, string>;
}

// RFC 2045 §5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 2046 §5.1.1: bcharsnospace plus inner spaces, 1 to 70 characters, not ending in a space.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** True when `boundary` is a valid RFC 2046 boundary (1–70 characters from the allowed set). */
export function isValidBoundary(boundary: string): boolean {
  return BOUNDARY.test(boundary);
}

/**
 * Parses `type/subtype *(; name=value)`. Unquoted values may also contain `/`, `=`, `:` and `?`
 * (tspecials a token may not hold): DICOMweb clients commonly send `type=application/dicom`
 * unquoted, and refusing them would only turn away working uploads.
 */
export function parseMediaType(header: string): MediaType {
  const invalid = (why: string): MultipartError => new MultipartError('invalid-content-type', `Content-Type ${why}`);
  const slash = header.indexOf('/');
  const firstSemicolon = header.indexOf(';');
  const essenceEnd = firstSemicolon === -1 ? header.length : firstSemicolon;
  if (slash === -1 || slash > essenceEnd) {
    throw invalid('has no type/subtype');
  }
  const type = header.slice(0, slash).trim();
  const subtype = header.slice(slash + 1, essenceEnd).trim();
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) {
    throw invalid('has an invalid type/subtype');
  }

  const parameters = new Map<string, string>();
  let pos = essenceEnd;
  while (pos < header.length) {
    pos = skipWhitespace(header, pos);
    if (pos >= header.length) {
      break;
    }
    if (header[pos] !== ';') {
      throw invalid(`has an unexpected character at ${pos}`);
    }
    pos = skipWhitespace(header, pos + 1);
    if (pos >= header.length) {
      break;
    } // a trailing ';' is common and harmless
    const equals = header.indexOf('=', pos);
    if (equals === -1) {
      throw invalid('has a parameter without a value');
    }
    const name = header.slice(pos, equals).trim().toLowerCase();
    if (!TOKEN.test(name)) {
      throw invalid('has an invalid parameter name');
    }
    pos = skipWhitespace(header, equals + 1);
    let value: string;
    if (header[pos] === '"') {
      // RFC 822 quoted-string: a backslash quotes the next character.
      value = '';
      pos++;
      for (;;) {
        if (pos >= header.length) {
          throw invalid('has an unterminated quoted string');
        }
        const char = header[pos++];
        if (char === '"') {
          break;
        }
        if (char === '\\' && pos < header.length) {
          value += header[pos++];
        } else {
          value += char;
        }
      }
    } else {
      const start = pos;
      while (pos < header.length && header[pos] !== ';' && !/\s/.test(header[pos] ?? '')) {
        pos++;
      }
      value = header.slice(start, pos);
      if (value === '' || [...value].some(isForbiddenInToken)) {
        throw invalid(`has an invalid value for ${name}`);
      }
    }
    if (parameters.has(name)) {
      throw invalid(`repeats the parameter ${name}`);
    }
    parameters.set(name, value);
  }
  return { essence: `${type}/${subtype}`.toLowerCase(), parameters };
}

function isForbiddenInToken(char: string): boolean {
  const code = char.charCodeAt(0);
  return char === '"' || char === '\\' || code < 0x20 || code === 0x7f;
}

function skipWhitespace(text: string, pos: number): number {
  while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t')) {
    pos++;
  }
  return pos;
}

/** Parses a STOW-RS request's Content-Type; throws 415 for another media type, 400 for a bad boundary. */
export function parseMultipartRelatedContentType(header: string | undefined): MultipartRelatedContentType {
  if (header === undefined || header.trim() === '') {
    throw new MultipartError('unsupported-media-type', 'Content-Type is missing; expected multipart/related');
  }
  let media: MediaType;
  try {
    media = parseMediaType(header);
  } catch (error) {
    // Without a readable media type we cannot tell it is multipart/related at all.
    if (/^\s*multipart\/related\s*(;|$)/i.test(header)) {
      throw error;
    }
    throw new MultipartError('unsupported-media-type', 'Content-Type is not multipart/related');
  }
  if (media.essence !== 'multipart/related') {
    throw new MultipartError('unsupported-media-type', `Content-Type ${media.essence} is not multipart/related`);
  }
  const boundary = media.parameters.get('boundary');
  if (boundary === undefined) {
    throw new MultipartError('invalid-boundary', 'multipart/related without a boundary');
  }
  if (!isValidBoundary(boundary)) {
    throw new MultipartError('invalid-boundary', 'boundary must be 1 to 70 characters of the RFC 2046 set');
  }
  const result: MultipartRelatedContentType = { boundary, parameters: media.parameters };
  const type = media.parameters.get('type');
  if (type !== undefined) {
    result.type = type.toLowerCase();
  }
  const start = media.parameters.get('start');
  if (start !== undefined) {
    result.start = start;
  }
  const startInfo = media.parameters.get('start-info');
  if (startInfo !== undefined) {
    result.startInfo = startInfo;
  }
  const transferSyntax = media.parameters.get('transfer-syntax');
  if (transferSyntax !== undefined) {
    result.transferSyntax = transferSyntax;
  }
  return result;
}

/** The Content-Type value of a multipart/related body; quotes only what a token cannot hold. */
export function formatMultipartRelatedContentType(boundary: string, type: string): string {
  const quote = (value: string): string => (TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`);
  return `multipart/related; type=${quote(type)}; boundary=${quote(boundary)}`;
}
