/**
 * WADO-RS frames, rendered and thumbnail resources (PS3.18 §10.4.1.1.3, §10.4.1.1.4, §10.4.1.1.6).
 *
 * Decisions:
 * - Frames go out in their stored encoding (native ones as little-endian octets, Explicit VR
 *   Little Endian, whatever the stored byte order or deflation); uncompressed is also offered for
 *   RLE Lossless and JPEG Baseline 8-bit, which are decoded exactly or by jpeg-js. Anything else
 *   asked for is a 406 naming what is available.
 * - A malformed frame list is a 400; a frame past Number of Frames a 404.
 * - Rendered and thumbnail images are image/jpeg (default) or image/png. An instance renders its
 *   first frame; a frame URL renders one frame. Study and series thumbnails use the middle
 *   instance of the first series, or the next instance that can be rendered.
 * - A study the person's access policy hides answers 404, like a missing one (access.ts).
 * - Frames over MAX_DECODED_PIXELS are not decoded or rendered (413), so memory stays bounded;
 *   retrieving stored frames streams them from the file without that limit.
 */
import express from 'express';
import type { Request, Response, Router } from 'express';
import {
  JPEG_BASELINE,
  NATIVE_TRANSFER_SYNTAXES,
  PixelDataError,
  RLE_LOSSLESS,
  checkFramesExist,
  locateFrames,
  parseFrameList,
} from '../../dicom/frames.ts';
import type { PixelDescription } from '../../dicom/frames.ts';
import { encodeJpeg, encodePng } from '../../dicom/image-encode.ts';
import type { ByteRange } from '../../dicom/part10.ts';
import { EXPLICIT_VR_BIG_ENDIAN } from '../../dicom/part10.ts';
import {
  MAX_DECODED_PIXELS,
  checkDecodedSize,
  decodeJpegBaseline,
  decodeRle,
  swapToLittleEndian,
} from '../../dicom/pixel-decode.ts';
import { fitWithin, parseRenderParameters, renderFrame, renderRefusal, resize } from '../../dicom/render.ts';
import type { DisplayImage, VoiWindow } from '../../dicom/render.ts';
import { audited, auditedStudyOf, studyAccessOf } from './access.ts';
import type { DicomwebOptions } from './index.ts';
import { MAX_FRAME_READ_BYTES, prepareFrameParts, streamParts } from './frame-parts.ts';
import { negotiateRenderedType } from './pixel-accept.ts';
import { findInstanceRows, openStoredPixels } from './pixel-source.ts';
import { requestAccept } from './wado.ts';
import type { InstanceRow, InstanceScope, StoredPixels } from './pixel-source.ts';

/** Thumbnails fit in this square unless a viewport is given. */
export const DEFAULT_THUMBNAIL_SIZE = 128;
/** Instances tried for a study or series thumbnail before giving up. */
const THUMBNAIL_CANDIDATES = 8;
const JPEG_DEFAULT_QUALITY = 90;

function scopeOf(req: Request): InstanceScope {
  const { study, series, instance } = req.params as Record<string, string | undefined>;
  if (study === undefined) {
    // Every route of this router has a :study segment.
    throw new Error('a WADO-RS pixel route without a study');
  }
  return { study, series, instance };
}

function sendError(res: Response, status: number, message: string): void {
  res
    .status(status)
    .type('application/json')
    .send(JSON.stringify({ error: message }));
}

/** Runs a handler, answering PixelDataErrors with their status; other errors go to the central handler. */
function handled(handler: (req: Request, res: Response) => Promise<void>) {
  return async (req: Request, res: Response): Promise<void> => {
    try {
      await handler(req, res);
    } catch (error) {
      if (!(error instanceof PixelDataError) || res.headersSent) {
        throw error;
      }
      sendError(res, error.status, error.message);
    }
  };
}

/** The frame as native little-endian samples for rendering, with the layout those samples have. */
async function nativeFrameForRendering(
  stored: StoredPixels,
  ranges: ByteRange[],
): Promise<{ frame: Buffer; pixels: PixelDescription }> {
  const { transferSyntaxUid: syntax, pixels } = stored;
  checkDecodedSize(pixels);
  if (NATIVE_TRANSFER_SYNTAXES.has(syntax)) {
    const frame = await stored.readFrame(ranges, MAX_FRAME_READ_BYTES);
    return {
      frame: syntax === EXPLICIT_VR_BIG_ENDIAN ? swapToLittleEndian(frame, pixels, stored.wordSize) : frame,
      pixels,
    };
  }
  if (syntax === RLE_LOSSLESS && pixels.bitsAllocated % 8 === 0) {
    return { frame: decodeRle(await stored.readFrame(ranges, MAX_FRAME_READ_BYTES), pixels), pixels };
  }
  if (syntax === JPEG_BASELINE && pixels.bitsAllocated === 8) {
    const frame = decodeJpegBaseline(await stored.readFrame(ranges, MAX_FRAME_READ_BYTES), pixels);
    // jpeg-js upsamples chroma, so YBR_FULL_422 comes out as full-resolution YBR_FULL, colour-by-pixel.
    const photometric =
      pixels.photometricInterpretation === 'YBR_FULL_422' ? 'YBR_FULL' : pixels.photometricInterpretation;
    return { frame, pixels: { ...pixels, photometricInterpretation: photometric, planarConfiguration: 0 } };
  }
  throw new PixelDataError(
    406,
    `the frame cannot be rendered: the server has no decoder for transfer syntax ${syntax}`,
  );
}

export function createRenderedRoutes(options: DicomwebOptions): Router {
  const routes = express.Router();
  const { db, blobs } = options.ingest;
  const instanceUrl = (row: InstanceRow): string =>
    `${options.baseUrl}/dicomweb/studies/${row.study_instance_uid}/series/${row.series_instance_uid}/instances/${row.sop_instance_uid}`;

  const frames = handled(async (req, res) => {
    res.locals.route = 'wado-frames';
    const frameNumbers = parseFrameList(String(req.params.frames));
    const [row] = await findInstanceRows(db, scopeOf(req), studyAccessOf(res, 'read'));
    if (!row) {
      sendError(res, 404, 'no such instance');
      return;
    }
    const stored = await openStoredPixels(blobs, row, options.tempDir);
    let streaming = false;
    try {
      const url = instanceUrl(row);
      const prepared = await prepareFrameParts(
        stored,
        frameNumbers,
        requestAccept(req),
        (frame) => `${url}/frames/${frame}`,
      );
      streaming = await streamParts(options, req, res, row, stored, prepared);
    } finally {
      if (!streaming) {
        await stored.close();
      }
    }
  });

  /** Renders one frame of one instance to display pixels. */
  const renderInstance = async (
    row: InstanceRow,
    frameNumber: number,
    window: VoiWindow | undefined,
  ): Promise<DisplayImage> => {
    const stored = await openStoredPixels(blobs, row, options.tempDir);
    try {
      checkFramesExist([frameNumber], stored.pixels);
      const refusal = renderRefusal(stored.pixels);
      if (refusal) {
        throw new PixelDataError(406, `the frame cannot be rendered: ${refusal}`);
      }
      checkDecodedSize(stored.pixels);
      const [ranges] = await locateFrames(stored.dataset, stored.pixels, [frameNumber], stored.read);
      if (ranges === undefined) {
        throw new Error('locateFrames answered no ranges for the one frame asked for');
      }
      const { frame, pixels } = await nativeFrameForRendering(stored, ranges);
      return renderFrame(frame, pixels, window);
    } finally {
      await stored.close();
    }
  };

  const render = (kind: 'rendered' | 'thumbnail') =>
    handled(async (req, res) => {
      res.locals.route = `wado-${kind}`;
      const parameters = parseRenderParameters(req.query);
      const negotiation = negotiateRenderedType(requestAccept(req));
      if (!negotiation.ok) {
        sendError(res, 406, negotiation.message);
        return;
      }
      let frameNumber = 1;
      if (req.params.frames !== undefined) {
        const list = parseFrameList(String(req.params.frames));
        const [only] = list;
        if (list.length !== 1 || only === undefined) {
          throw new PixelDataError(400, `${kind} frames are retrieved one frame at a time`);
        }
        frameNumber = only;
      }
      const scope = scopeOf(req);
      const rows = await findInstanceRows(db, scope, studyAccessOf(res, 'read'));
      const [first] = rows;
      if (first === undefined) {
        sendError(
          res,
          404,
          `no such ${scope.instance !== undefined ? 'instance' : scope.series !== undefined ? 'series' : 'study'}`,
        );
        return;
      }
      let image: DisplayImage | undefined;
      let refusal: PixelDataError | undefined;
      for (const row of representativeOrder(rows).slice(0, THUMBNAIL_CANDIDATES)) {
        try {
          image = await renderInstance(row, frameNumber, parameters.window);
          break;
        } catch (error) {
          // A study or series thumbnail moves on past instances that cannot be rendered (an SR, say).
          if (!(error instanceof PixelDataError) || error.status !== 406 || scope.instance !== undefined) {
            throw error;
          }
          refusal = error;
        }
      }
      if (!image) {
        throw refusal ?? new PixelDataError(406, 'no instance here can be rendered');
      }
      const viewport =
        parameters.viewport ??
        (kind === 'thumbnail' ? { width: DEFAULT_THUMBNAIL_SIZE, height: DEFAULT_THUMBNAIL_SIZE } : undefined);
      if (viewport) {
        const size = fitWithin(image.width, image.height, viewport);
        if (size.width * size.height > MAX_DECODED_PIXELS) {
          throw new PixelDataError(413, 'the requested viewport is larger than this server renders');
        }
        image = resize(image, size.width, size.height);
      }
      const body =
        negotiation.value === 'image/png'
          ? encodePng(image)
          : encodeJpeg(image, parameters.quality ?? JPEG_DEFAULT_QUALITY);
      if (
        !(await audited(
          options.auditor,
          req,
          res,
          { service: 'wado-rs', outcome: '0', studies: [auditedStudyOf(first)] },
          options.logger,
        ))
      ) {
        return;
      }
      res.status(200).type(negotiation.value).send(body);
    });

  const instance = '/studies/:study/series/:series/instances/:instance';
  routes.get(`${instance}/frames/:frames`, frames);
  routes.get(`${instance}/rendered`, render('rendered'));
  routes.get(`${instance}/frames/:frames/rendered`, render('rendered'));
  routes.get('/studies/:study/thumbnail', render('thumbnail'));
  routes.get('/studies/:study/series/:series/thumbnail', render('thumbnail'));
  routes.get(`${instance}/thumbnail`, render('thumbnail'));
  routes.get(`${instance}/frames/:frames/thumbnail`, render('thumbnail'));
  return routes;
}

/** The middle instance of the first series first, then the rest in order. */
function representativeOrder(rows: readonly InstanceRow[]): InstanceRow[] {
  const [first] = rows;
  if (first === undefined || rows.length === 1) {
    return [...rows];
  }
  const firstSeries = rows.filter((row) => row.series_instance_uid === first.series_instance_uid);
  // firstSeries holds at least `first`.
  const middle = firstSeries[Math.floor((firstSeries.length - 1) / 2)] ?? first;
  return [middle, ...rows.filter((row) => row !== middle)];
}
