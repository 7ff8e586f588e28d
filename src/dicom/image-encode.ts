/**
 * Encoders for rendered images: PNG (ISO/IEC 15948; 8-bit grayscale or RGB, scanlines with the
 * Up filter, zlib from node:zlib) and JPEG (baseline, via jpeg-js).
 */
import { crc32, deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import type { DisplayImage } from './render.ts';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(body.length, 0);
  header.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body, crc32(header.subarray(4))), 0);
  return Buffer.concat([header, body, crc]);
}

/** The image's bytes as a DataView: its reads are numbers, so the per-pixel loops need no check. */
const bytesOf = (image: DisplayImage): DataView =>
  new DataView(image.data.buffer, image.data.byteOffset, image.data.byteLength);

export function encodePng(image: DisplayImage): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(image.width, 0);
  header.writeUInt32BE(image.height, 4);
  header[8] = 8;
  header[9] = image.channels === 1 ? 0 : 2;
  // Bytes 10–12: deflate compression, adaptive filtering, no interlace.
  const stride = image.width * image.channels;
  const source = bytesOf(image);
  const filtered = Buffer.alloc((stride + 1) * image.height);
  for (let y = 0; y < image.height; y++) {
    const row = y * (stride + 1);
    filtered[row] = 2;
    for (let x = 0; x < stride; x++) {
      const above = y === 0 ? 0 : source.getUint8((y - 1) * stride + x);
      filtered[row + 1 + x] = (source.getUint8(y * stride + x) - above) & 0xff;
    }
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(filtered)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Baseline JPEG at `quality` (1–100). */
export function encodeJpeg(image: DisplayImage, quality: number): Buffer {
  const source = bytesOf(image);
  const rgba = Buffer.alloc(image.width * image.height * 4);
  for (let pixel = 0; pixel < image.width * image.height; pixel++) {
    for (let channel = 0; channel < 3; channel++) {
      rgba[pixel * 4 + channel] = source.getUint8(pixel * image.channels + (image.channels === 1 ? 0 : channel));
    }
    rgba[pixel * 4 + 3] = 255;
  }
  return jpeg.encode({ width: image.width, height: image.height, data: rgba }, quality).data;
}
