/**
 * Where the reader gets its bytes: a buffer already in memory (values are zero-copy views), or a
 * file read through a small window (values are copies, large bulk values are never read at all).
 */
import { readSync } from 'node:fs';
import { MalformedDicomError } from './errors.ts';

export interface ByteSource {
  readonly length: number;
  /** True when bytes() costs nothing (a view), so bulk values may be kept too. */
  readonly zeroCopy: boolean;
  byte(pos: number): number;
  u16(pos: number, bigEndian: boolean): number;
  u32(pos: number, bigEndian: boolean): number;
  /** Bytes [pos, pos + length), which the caller has checked lie within the source. */
  bytes(pos: number, length: number): Buffer;
}

export class BufferSource implements ByteSource {
  readonly zeroCopy = true;
  private readonly buffer: Buffer;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  get length(): number {
    return this.buffer.length;
  }

  byte(pos: number): number {
    return this.buffer[pos] ?? 0;
  }

  u16(pos: number, bigEndian: boolean): number {
    return bigEndian ? this.buffer.readUInt16BE(pos) : this.buffer.readUInt16LE(pos);
  }

  u32(pos: number, bigEndian: boolean): number {
    return bigEndian ? this.buffer.readUInt32BE(pos) : this.buffer.readUInt32LE(pos);
  }

  bytes(pos: number, length: number): Buffer {
    return this.buffer.subarray(pos, pos + length);
  }
}

/** Size of the read window of FileSource; element headers and small values are served from it. */
export const FILE_WINDOW_BYTES = 64 * 1024;

/** A file descriptor read with positioned, synchronous reads through one window. */
export class FileSource implements ByteSource {
  readonly zeroCopy = false;
  readonly length: number;
  private readonly fd: number;
  private readonly window = Buffer.alloc(FILE_WINDOW_BYTES);
  private windowStart = 0;
  private windowEnd = 0;

  constructor(fd: number, length: number) {
    this.fd = fd;
    this.length = length;
  }

  byte(pos: number): number {
    return this.window[this.ensure(pos, 1)] ?? 0;
  }

  u16(pos: number, bigEndian: boolean): number {
    const at = this.ensure(pos, 2);
    return bigEndian ? this.window.readUInt16BE(at) : this.window.readUInt16LE(at);
  }

  u32(pos: number, bigEndian: boolean): number {
    const at = this.ensure(pos, 4);
    return bigEndian ? this.window.readUInt32BE(at) : this.window.readUInt32LE(at);
  }

  bytes(pos: number, length: number): Buffer {
    if (length <= FILE_WINDOW_BYTES) {
      const at = this.ensure(pos, length);
      return Buffer.from(this.window.subarray(at, at + length));
    }
    const copy = Buffer.alloc(length);
    if (readSync(this.fd, copy, 0, length, pos) !== length) {
      throw new MalformedDicomError(`truncated at offset ${pos}: the file is shorter than it was`);
    }
    return copy;
  }

  /** Makes [pos, pos + n) available in the window and returns its index there. */
  private ensure(pos: number, n: number): number {
    if (pos >= this.windowStart && pos + n <= this.windowEnd) {
      return pos - this.windowStart;
    }
    const read = readSync(this.fd, this.window, 0, FILE_WINDOW_BYTES, pos);
    this.windowStart = pos;
    this.windowEnd = pos + read;
    if (pos + n > this.windowEnd) {
      throw new MalformedDicomError(`truncated at offset ${pos}: the file is shorter than it was`);
    }
    return 0;
  }
}
