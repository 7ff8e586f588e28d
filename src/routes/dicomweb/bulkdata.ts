/**
 * WADO-RS bulk data (PS3.18 §10.4.1.1.5): the value behind each BulkDataURI of the metadata,
 * `…/instances/{uid}/bulkdata/{tag}` or `…/bulkdata/{sequence}/{item}/…/{tag}`.
 *
 * Decisions:
 * - A native value is one application/octet-stream part, little-endian as §8.7.3.4 requires
 *   (values of the retired big-endian syntax are swapped), streamed from the file.
 * - Encapsulated pixel data (the instance's, or an icon's in a sequence item) goes out a frame per
 *   part, as §8.7.3.3.2 asks of compressed bulk data and as the frames resource does (frame-parts.ts):
 *   `transfer-syntax=*`, `*\/*` or no Accept give the frames as stored, labelled with their
 *   transfer syntax; uncompressed (`application/octet-stream` without a transfer syntax, or
 *   1.2.840.10008.1.2.1) is decoded where the hub can (RLE, 8-bit JPEG Baseline), else 406 with the
 *   reason. Where the fragments cannot be told apart as frames (offset tables that disagree with
 *   Number of Frames, no usable Image Pixel attributes), the fragments go out as stored in one part.
 * - Elements that have no BulkDataURI, and paths that name nothing, are 404; a study the person's
 *   access policy hides is 404 like a missing one (access.ts).
 */
import express from 'express';
import type { Request, Response, Router } from 'express';
import { PixelDataError, locateFrames } from '../../dicom/frames.ts';
import type { ByteRange, DicomDataset, DicomElement } from '../../dicom/part10.ts';
import { BULK_TAGS, BULK_VRS } from '../../dicom/vr.ts';
import { studyAccessOf } from './access.ts';
import { prepareFrameParts, streamParts, streamRanges } from './frame-parts.ts';
import type { PreparedParts } from './frame-parts.ts';
import type { DicomwebOptions } from './index.ts';
import { negotiateFrameEncoding } from './pixel-accept.ts';
import { findInstanceRows, openStoredDataset, storedPixelsOf } from './pixel-source.ts';
import type { InstanceRow, StoredDataset, StoredPixels } from './pixel-source.ts';
import { requestAccept, splitAcceptHeader } from './wado.ts';

/** Bytes per number of the binary VRs whose values are byte-swapped between endiannesses. */
const SWAP_SIZES: Readonly<Record<string, number>> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };

interface FoundElement {
  element: DicomElement;
  /** The dataset holding the element: the instance's, or a sequence item. */
  holder: DicomDataset;
}

/** The element a relative bulk data path names: `<tag>` or `<seq>/<item>/…/<tag>`. */
function elementAt(dataset: DicomDataset, path: readonly string[]): FoundElement | undefined {
  let current = dataset;
  // The path alternates tag and item number, and ends on a tag.
  for (let index = 0; ; index += 2) {
    const tag = path[index];
    const element = tag === undefined ? undefined : current.elements.get(tag.toUpperCase());
    if (!element) {
      return undefined;
    }
    const itemNumber = path[index + 1];
    if (itemNumber === undefined) {
      return { element, holder: current };
    }
    const item = /^\d{1,6}$/.test(itemNumber) ? element.items?.[Number(itemNumber)] : undefined;
    if (!item) {
      return undefined;
    }
    current = item;
  }
}

/** A copy of `value` with each number's bytes reversed (the stored buffer may be shared). */
function swapped(value: Buffer, size: number): Buffer {
  const copy = Buffer.from(value);
  if (size === 2) {
    copy.swap16();
  } else if (size === 4) {
    copy.swap32();
  } else {
    copy.swap64();
  }
  return copy;
}

function acceptsOctets(accept: string | undefined): boolean {
  if (accept === undefined) {
    return true;
  }
  return splitAcceptHeader(accept).some((range) => {
    const lower = range.toLowerCase();
    if (lower.startsWith('*/*')) {
      return true;
    }
    return (
      lower.startsWith('multipart/') &&
      (!lower.includes('type=') || /type="?(application\/octet-stream|\*\/\*)/.test(lower))
    );
  });
}

function nativeParts(stored: StoredDataset, found: FoundElement, location: string): PreparedParts {
  const { element, holder } = found;
  const size = holder.bigEndian ? SWAP_SIZES[element.vr] : undefined;
  const toLittleEndian = size === undefined ? undefined : (chunk: Buffer) => swapped(chunk, size);
  // Small values were read with the header; larger ones are streamed from the file.
  const body = element.value
    ? (toLittleEndian?.(element.value) ?? element.value)
    : streamRanges(stored.read, [{ offset: element.offset, length: element.length }], toLittleEndian);
  async function* parts() {
    yield { body, contentType: 'application/octet-stream', contentLength: element.length, contentLocation: location };
  }
  return { mediaType: 'application/octet-stream', parts: parts() };
}

async function encapsulatedParts(
  stored: StoredDataset,
  found: FoundElement,
  accept: string | undefined,
  location: string,
  frameLocation: (frame: number) => string,
): Promise<PreparedParts> {
  let pixels: StoredPixels | undefined;
  let frameless: string | undefined;
  try {
    pixels = storedPixelsOf(stored, found.holder);
  } catch (error) {
    if (!(error instanceof PixelDataError)) {
      throw error;
    }
    frameless = error.message;
  }
  if (pixels) {
    const frames = Array.from({ length: pixels.pixels.numberOfFrames }, (_unused, index) => index + 1);
    let located: ByteRange[][] | undefined;
    try {
      located = await locateFrames(pixels.dataset, pixels.pixels, frames, pixels.read);
    } catch (error) {
      // The fragments do not make Number of Frames frames (404: fewer, 422: the tables disagree).
      if (!(error instanceof PixelDataError)) {
        throw error;
      }
      frameless = error.message;
    }
    if (located) {
      return prepareFrameParts(pixels, frames, accept, frameLocation, located);
    }
  }
  // Without frames nothing can be decoded: the stored fragments are all the hub can offer.
  const negotiation = negotiateFrameEncoding(accept, stored.transferSyntaxUid, frameless);
  if (!negotiation.ok) {
    throw new PixelDataError(406, negotiation.message);
  }
  const fragments = found.element.fragments ?? [];
  const { mediaType, transferSyntaxUid } = negotiation.value;
  async function* parts() {
    yield {
      body: streamRanges(stored.read, fragments),
      contentType: `${mediaType}; transfer-syntax=${transferSyntaxUid}`,
      contentLength: fragments.reduce((sum, fragment) => sum + fragment.length, 0),
      contentLocation: location,
    };
  }
  return { mediaType, parts: parts() };
}

function sendError(res: Response, status: number, message: string): void {
  res
    .status(status)
    .type('application/json')
    .send(JSON.stringify({ error: message }));
}

export function createBulkdataRoutes(options: DicomwebOptions): Router {
  const routes = express.Router();
  const { db, blobs } = options.ingest;
  const instanceUrl = (row: InstanceRow): string =>
    `${options.baseUrl}/dicomweb/studies/${row.study_instance_uid}/series/${row.series_instance_uid}/instances/${row.sop_instance_uid}`;

  const bulkdata = async (req: Request, res: Response): Promise<void> => {
    res.locals.route = 'wado-bulkdata';
    const { study, series, instance } = req.params as Record<string, string | undefined>;
    if (study === undefined) {
      // The route has a :study segment.
      throw new Error('a WADO-RS bulk data route without a study');
    }
    const [row] = await findInstanceRows(db, { study, series, instance }, studyAccessOf(res, 'read'));
    if (!row) {
      sendError(res, 404, 'no such instance');
      return;
    }
    const stored = await openStoredDataset(blobs, row, options.tempDir);
    let streaming = false;
    try {
      const path = (req.params as Record<string, string[] | undefined>).path ?? [];
      const found = elementAt(stored.dataset, path);
      // Only the elements the metadata gives a BulkDataURI; other values are in the metadata itself.
      if (!found || found.element.items || !(BULK_VRS.has(found.element.vr) || BULK_TAGS.has(found.element.tag))) {
        sendError(res, 404, 'no such bulk data element');
        return;
      }
      const location = `${instanceUrl(row)}/bulkdata/${path.join('/')}`;
      let prepared: PreparedParts;
      if (found.element.fragments) {
        // The instance's own Pixel Data: each part is also a frame resource.
        const frameLocation =
          path.length === 1 ? (frame: number) => `${instanceUrl(row)}/frames/${frame}` : () => location;
        prepared = await encapsulatedParts(stored, found, requestAccept(req), location, frameLocation);
      } else if (acceptsOctets(requestAccept(req))) {
        prepared = nativeParts(stored, found, location);
      } else {
        sendError(res, 406, 'bulk data is offered as multipart/related; type="application/octet-stream"');
        return;
      }
      streaming = await streamParts(options, req, res, row, stored, prepared);
    } catch (error) {
      if (!(error instanceof PixelDataError) || res.headersSent) {
        throw error;
      }
      sendError(res, error.status, error.message);
    } finally {
      if (!streaming) {
        await stored.close();
      }
    }
  };

  routes.get('/studies/:study/series/:series/instances/:instance/bulkdata/*path', bulkdata);
  return routes;
}
