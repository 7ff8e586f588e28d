/**
 * Base64 of a byte stream, chunk by chunk: each chunk is encoded up to a multiple of three bytes and
 * the rest carried into the next, so the text is the same as encoding the whole at once while only
 * one chunk is ever in memory (a Binary read as FHIR JSON, whatever its size).
 */
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

export class Base64Encoder extends Transform {
  private carry: Buffer = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const bytes = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    const whole = bytes.length - (bytes.length % 3);
    this.carry = Buffer.from(bytes.subarray(whole));
    done(null, whole === 0 ? undefined : bytes.subarray(0, whole).toString('base64'));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.carry.length === 0 ? undefined : this.carry.toString('base64'));
  }
}
