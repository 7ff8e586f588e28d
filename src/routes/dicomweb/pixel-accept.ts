/**
 * Accept negotiation for frames (PS3.18 §8.7.3.3, Tables 8.7.3-4/-5) and rendered images
 * (§8.7.4). Ranges are tried in the order given (q=0 excludes one); wildcards take the stored
 * encoding, since the hub does not transcode beyond the exact conversions of pixel-decode.ts.
 */
import { COMPRESSED_FRAME_MEDIA_TYPES, NATIVE_TRANSFER_SYNTAXES } from '../../dicom/frames.ts';
import { parseMediaType } from '../../dicom/multipart.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN } from '../../dicom/part10.ts';
import { splitAcceptHeader } from './wado.ts';

export interface FrameEncoding {
  /** Media type of the parts. */
  readonly mediaType: string;
  /** transfer-syntax parameter of the parts. */
  readonly transferSyntaxUid: string;
  /** True when the stored frame must be converted to native little-endian samples. */
  readonly toNative: boolean;
}

export type Negotiation<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

interface AcceptRange {
  essence: string;
  parameters: ReadonlyMap<string, string>;
}

function acceptRanges(accept: string | undefined): AcceptRange[] {
  if (accept === undefined || accept.trim() === '') {
    return [{ essence: '*/*', parameters: new Map() }];
  }
  const ranges: AcceptRange[] = [];
  for (const text of splitAcceptHeader(accept)) {
    try {
      const media = parseMediaType(text);
      if (Number(media.parameters.get('q') ?? '1') === 0) {
        continue;
      }
      ranges.push(media);
    } catch {
      // An unparseable range is skipped like an unsupported one.
    }
  }
  return ranges;
}

/**
 * The encoding of the frames: the stored one (native frames as little-endian octets), or native
 * samples decoded from a compressed frame when the client asks for uncompressed and there is no
 * `decodeRefusal` (the reason the hub cannot decode this syntax).
 */
export function negotiateFrameEncoding(
  accept: string | undefined,
  storedSyntax: string,
  decodeRefusal: string | undefined,
): Negotiation<FrameEncoding> {
  const native = NATIVE_TRANSFER_SYNTAXES.has(storedSyntax);
  const storedMedia = native
    ? 'application/octet-stream'
    : (COMPRESSED_FRAME_MEDIA_TYPES[storedSyntax] ?? 'application/octet-stream');
  const stored: FrameEncoding = {
    mediaType: storedMedia,
    transferSyntaxUid: native ? EXPLICIT_VR_LITTLE_ENDIAN : storedSyntax,
    toNative: native,
  };
  let uncompressed: FrameEncoding | undefined;
  if (native) {
    uncompressed = stored;
  } else if (decodeRefusal === undefined) {
    uncompressed = {
      mediaType: 'application/octet-stream',
      transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN,
      toNative: true,
    };
  }
  let wantedUncompressed = false;
  for (const range of acceptRanges(accept)) {
    if (range.essence === '*/*' || range.essence === 'multipart/*') {
      return { ok: true, value: stored };
    }
    if (range.essence !== 'multipart/related') {
      continue;
    }
    const type = (range.parameters.get('type') ?? '*/*').toLowerCase();
    const syntax = range.parameters.get('transfer-syntax');
    if (type === '*/*') {
      if (syntax === undefined || syntax === '*' || syntax === stored.transferSyntaxUid) {
        return { ok: true, value: stored };
      }
      continue;
    }
    if (type === 'application/octet-stream') {
      // transfer-syntax=* (what OHIF sends) takes the stored bytes, labelled with their syntax.
      if (syntax === '*' || (syntax === storedSyntax && !native)) {
        return { ok: true, value: { ...stored, mediaType: type } };
      }
      if (syntax === undefined || syntax === EXPLICIT_VR_LITTLE_ENDIAN) {
        if (uncompressed) {
          return { ok: true, value: uncompressed };
        }
        wantedUncompressed = true;
      }
      continue;
    }
    const family = type === 'image/*' || type === storedMedia;
    if (!native && family && (syntax === undefined || syntax === '*' || syntax === storedSyntax)) {
      return { ok: true, value: { ...stored, mediaType: storedMedia } };
    }
  }
  if (wantedUncompressed) {
    return {
      ok: false,
      message: `the frames are stored compressed (${storedSyntax}) and cannot be returned uncompressed: ${decodeRefusal}`,
    };
  }
  return {
    ok: false,
    message:
      `the frames are available as multipart/related; type="${stored.mediaType}"; transfer-syntax=${stored.transferSyntaxUid}` +
      (uncompressed && uncompressed !== stored
        ? ` or type="application/octet-stream"; transfer-syntax=${EXPLICIT_VR_LITTLE_ENDIAN}`
        : ''),
  };
}

export type RenderedMediaType = 'image/jpeg' | 'image/png';

/** PS3.18 §8.7.4: rendered images as image/jpeg (the default) or image/png, single part. */
export function negotiateRenderedType(accept: string | undefined): Negotiation<RenderedMediaType> {
  for (const range of acceptRanges(accept)) {
    if (range.essence === 'image/jpeg' || range.essence === 'image/png') {
      return { ok: true, value: range.essence };
    }
    if (range.essence === '*/*' || range.essence === 'image/*') {
      return { ok: true, value: 'image/jpeg' };
    }
  }
  return { ok: false, message: 'rendered images are offered as image/jpeg or image/png' };
}
