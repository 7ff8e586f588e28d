/**
 * Frames of a stored instance as multipart/related parts, shared by the frames resource
 * (PS3.18 §10.4.1.1.3) and the bulk data of encapsulated pixel data (§10.4.1.1.5, one part per
 * frame as §8.7.3.3.2 asks of compressed bulk data): the encoding negotiated from the Accept header,
 * frames located and, when asked for uncompressed, decoded; then audited and streamed.
 */
import { pipeline } from 'node:stream';
import type { Request, Response } from 'express';
import { EXPLICIT_VR_BIG_ENDIAN } from '../../dicom/part10.ts';
import type { ByteRange } from '../../dicom/part10.ts';
import { NATIVE_TRANSFER_SYNTAXES, PixelDataError, checkFramesExist, locateFrames } from '../../dicom/frames.ts';
import type { RangeReader } from '../../dicom/frames.ts';
import { writeMultipartRelated } from '../../dicom/multipart.ts';
import type { OutgoingPart } from '../../dicom/multipart.ts';
import { canDecodeToNative, checkDecodedSize, decodeToNative, swapToLittleEndian } from '../../dicom/pixel-decode.ts';
import { audited, auditedStudyOf } from './access.ts';
import type { DicomwebOptions } from './index.ts';
import { negotiateFrameEncoding } from './pixel-accept.ts';
import type { InstanceRow, StoredDataset, StoredPixels } from './pixel-source.ts';

/** Largest stored frame read whole into memory (to decode or render). */
export const MAX_FRAME_READ_BYTES = 256 * 1024 * 1024;
/** Chunk size when streaming stored values; a multiple of every word size, so chunks stay word-aligned. */
const STREAM_CHUNK_BYTES = 1024 * 1024;

/** Stored ranges read in bounded chunks, each passed through `transform` (a byte swap) when given. */
export async function* streamRanges(
  read: RangeReader,
  ranges: readonly ByteRange[],
  transform?: (chunk: Buffer) => Buffer,
): AsyncGenerator<Buffer> {
  for (const range of ranges) {
    for (let at = 0; at < range.length; at += STREAM_CHUNK_BYTES) {
      const chunk = await read({ offset: range.offset + at, length: Math.min(STREAM_CHUNK_BYTES, range.length - at) });
      yield transform ? transform(chunk) : chunk;
    }
  }
}

/** Parts ready to stream: nothing has been sent, and every refusal (4xx) has already been thrown. */
export interface PreparedParts {
  /** The multipart `type` parameter. */
  mediaType: string;
  parts: AsyncGenerator<OutgoingPart>;
}

/**
 * The parts of the frames asked for, in the encoding the Accept header allows. Throws a
 * PixelDataError (404 no such frame, 406 not offered, 413 too large, 422 frames that cannot be told
 * apart or decoded) before any part is produced; the first frame to decode is decoded here for that
 * reason.
 */
export async function prepareFrameParts(
  stored: StoredPixels,
  frameNumbers: readonly number[],
  accept: string | undefined,
  contentLocation: (frameNumber: number) => string,
  /** The frames' ranges when the caller has located them already. */
  located?: ByteRange[][],
): Promise<PreparedParts> {
  const { pixels, transferSyntaxUid: syntax } = stored;
  checkFramesExist(frameNumbers, pixels);
  const negotiation = negotiateFrameEncoding(accept, syntax, canDecodeToNative(syntax, pixels));
  if (!negotiation.ok) {
    throw new PixelDataError(406, negotiation.message);
  }
  const encoding = negotiation.value;
  const decode = encoding.toNative && !NATIVE_TRANSFER_SYNTAXES.has(syntax);
  if (decode) {
    checkDecodedSize(pixels);
  }
  const locations = located ?? (await locateFrames(stored.dataset, pixels, frameNumbers, stored.read));
  const contentType = `${encoding.mediaType}; transfer-syntax=${encoding.transferSyntaxUid}`;
  const decodeFrame = async (ranges: ByteRange[]) =>
    decodeToNative(await stored.readFrame(ranges, MAX_FRAME_READ_BYTES), syntax, pixels, stored.wordSize);
  const [firstRanges] = locations;
  let firstDecoded = decode && firstRanges !== undefined ? await decodeFrame(firstRanges) : undefined;
  const swap =
    encoding.toNative && syntax === EXPLICIT_VR_BIG_ENDIAN
      ? (chunk: Buffer) => swapToLittleEndian(chunk, pixels, stored.wordSize)
      : undefined;
  async function* parts(): AsyncGenerator<OutgoingPart> {
    for (const [index, ranges] of locations.entries()) {
      // locateFrames answers one location per frame number asked for.
      const location = contentLocation(frameNumbers[index] ?? index + 1);
      if (decode) {
        const native = firstDecoded ?? (await decodeFrame(ranges));
        firstDecoded = undefined;
        yield { body: native, contentType, contentLocation: location };
      } else {
        const contentLength = ranges.reduce((sum, range) => sum + range.length, 0);
        yield { body: streamRanges(stored.read, ranges, swap), contentType, contentLength, contentLocation: location };
      }
    }
  }
  return { mediaType: encoding.mediaType, parts: parts() };
}

/**
 * Audits the retrieval and streams the parts; the stored file is closed when the stream ends or the
 * client goes away. Answers false when nothing was streamed (the audit refused and answered), in
 * which case the caller still owns the file.
 */
export async function streamParts(
  options: DicomwebOptions,
  req: Request,
  res: Response,
  row: InstanceRow,
  stored: StoredDataset,
  prepared: PreparedParts,
): Promise<boolean> {
  if (
    !(await audited(
      options.auditor,
      req,
      res,
      { service: 'wado-rs', outcome: '0', studies: [auditedStudyOf(row)] },
      options.logger,
    ))
  ) {
    return false;
  }
  async function* closing(): AsyncGenerator<OutgoingPart> {
    try {
      yield* prepared.parts;
    } finally {
      await stored.close();
    }
  }
  const multipart = writeMultipartRelated(closing(), { type: prepared.mediaType });
  res.status(200).setHeader('Content-Type', multipart.contentType);
  // The parts' generator closes the file when it ends; a client gone before it started is caught here.
  res.once('close', () => void stored.close());
  // pipeline, unlike pipe, destroys the body when the client goes away, which closes the file.
  pipeline(multipart.body, res, (error) => {
    if (error && error.code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      options.logger.error(
        { requestId: res.locals.requestId, route: res.locals.route, error: error.message },
        'WADO-RS multipart failed mid-stream',
      );
    }
  });
  return true;
}
