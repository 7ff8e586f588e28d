/**
 * Test support for the DIMSE SCP: a minimal requestor over a raw socket (to send exact, even
 * malformed or byte-by-byte PDUs), dcmtk runners, and a File Meta Information reader for comparing
 * received data sets with pydicom's test files. Used only by `*.test.ts`.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { decodeCommandSet } from '../../../src/dicom/dimse/command-set.ts';
import type { CommandSet } from '../../../src/dicom/dimse/command-set.ts';
import { PduReader, PduType, parsePDataTf } from '../../../src/dicom/dimse/pdu.ts';
import type { Pdu } from '../../../src/dicom/dimse/pdu.ts';
import type { DataSetSink, StoreHandler, StoreRequest, StoreResult } from '../../../src/dicom/dimse/server.ts';
import { until } from '../until.ts';

export interface ToolResult {
  code: number | null;
  output: string;
}

/** Runs a dcmtk tool with TCP_NODELAY=1 (DCMTK leaves Nagle on otherwise) and a hard time limit. */
export function runDcmtk(command: string, args: string[], timeoutMs = 20_000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    // env(1) adds the variable to the inherited environment; configuration reads stay in config.ts.
    const child = spawn('env', ['TCP_NODELAY=1', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Starts a long-running dcmtk tool (storescp as a reference receiver); `stop()` ends it by its pid. */
export function startDcmtk(command: string, args: string[]): { stop: () => Promise<void>; output: () => string } {
  const child = spawn('env', ['TCP_NODELAY=1', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
      }
      await exited;
    },
  };
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForListener(port: number, timeoutMs = 5000): Promise<void> {
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      }),
    `a listener on port ${port}`,
    timeoutMs,
    50,
  );
}

export interface Part10File {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The bytes after the File Meta Information. */
  dataSet: Buffer;
}

/** Reads a Part 10 file's group 0002 (always Explicit VR Little Endian) and splits off the data set. */
export async function readPart10(path: string): Promise<Part10File> {
  const bytes = await readFile(path);
  if (bytes.toString('latin1', 128, 132) !== 'DICM') {
    throw new Error(`${path} is not a Part 10 file`);
  }
  const values = new Map<number, string>();
  let position = 132;
  while (position + 8 <= bytes.length && bytes.readUInt16LE(position) === 0x0002) {
    const element = bytes.readUInt16LE(position + 2);
    const vr = bytes.toString('latin1', position + 4, position + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
    const length = long ? bytes.readUInt32LE(position + 8) : bytes.readUInt16LE(position + 6);
    const start = position + (long ? 12 : 8);
    values.set(element, bytes.toString('latin1', start, start + length).replace(/[\0 ]+$/, ''));
    position = start + length;
  }
  return {
    sopClassUid: values.get(0x0002) ?? '',
    sopInstanceUid: values.get(0x0003) ?? '',
    transferSyntaxUid: values.get(0x0010) ?? '',
    dataSet: bytes.subarray(position),
  };
}

/** A requestor that sends raw bytes and reads whole PDUs back. */
export class RawPeer {
  readonly socket: Socket;
  readonly received: Pdu[] = [];
  closed = false;
  private readonly reader = new PduReader(0xffffffff);
  private waiters: Array<() => void> = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.received.push(...this.reader.push(chunk));
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port }, () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  /**
   * Writes bytes in one go, or one byte per write when `byteByByte`: each write is flushed and the
   * event loop turns once (so a server in this process reads it) before the next.
   */
  async send(bytes: Buffer, byteByByte = false): Promise<void> {
    if (!byteByByte) {
      await new Promise<void>((resolve, reject) =>
        this.socket.write(bytes, (error) => (error ? reject(error) : resolve())),
      );
      return;
    }
    for (let index = 0; index < bytes.length; index++) {
      await new Promise<void>((resolve, reject) =>
        this.socket.write(bytes.subarray(index, index + 1), (error) => (error ? reject(error) : resolve())),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** The next PDU from the SCP, or undefined when the connection closes first. */
  async nextPdu(timeoutMs = 5000): Promise<Pdu | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length === 0) {
      if (this.closed) {
        return undefined;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error('timed out waiting for a PDU');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received.shift();
  }

  /** Reads P-DATA-TF PDUs until a complete command set has arrived. */
  async nextCommand(
    timeoutMs = 5000,
  ): Promise<{ command: CommandSet; presentationContextId: number; pduLengths: number[] }> {
    const fragments: Buffer[] = [];
    const pduLengths: number[] = [];
    for (;;) {
      const pdu = await this.nextPdu(timeoutMs);
      if (!pdu) {
        throw new Error('connection closed while waiting for a command');
      }
      if (pdu.type !== PduType.pDataTf) {
        throw new Error(`expected P-DATA-TF, got PDU type ${pdu.type}`);
      }
      pduLengths.push(pdu.body.length);
      for (const pdv of parsePDataTf(pdu.body)) {
        fragments.push(pdv.data);
        if (pdv.isLast) {
          return {
            command: decodeCommandSet(Buffer.concat(fragments)),
            presentationContextId: pdv.presentationContextId,
            pduLengths,
          };
        }
      }
    }
  }

  /** Resolves once the SCP has closed the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) {
        throw new Error('connection still open');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) {
      wake();
    }
  }
}

export interface AcceptedAssociation {
  contexts: Map<number, { result: number; transferSyntaxUid: string }>;
  maxPduLength: number;
  implementationClassUid: string;
}

/** Reads the presentation context results and user information of an A-ASSOCIATE-AC body. */
export function parseAssociateAc(body: Buffer): AcceptedAssociation {
  const accepted: AcceptedAssociation = { contexts: new Map(), maxPduLength: 0, implementationClassUid: '' };
  const walk = (buffer: Buffer, from: number, visit: (type: number, value: Buffer) => void) => {
    for (let position = from; position + 4 <= buffer.length;) {
      const length = buffer.readUInt16BE(position + 2);
      visit(buffer[position]!, buffer.subarray(position + 4, position + 4 + length));
      position += 4 + length;
    }
  };
  walk(body, 68, (type, value) => {
    if (type === 0x21) {
      let transferSyntaxUid = '';
      walk(value, 4, (subType, subValue) => {
        if (subType === 0x40) {
          transferSyntaxUid = subValue.toString('latin1');
        }
      });
      accepted.contexts.set(value[0]!, { result: value[2]!, transferSyntaxUid });
    } else if (type === 0x50) {
      walk(value, 0, (subType, subValue) => {
        if (subType === 0x51) {
          accepted.maxPduLength = subValue.readUInt32BE(0);
        }
        if (subType === 0x52) {
          accepted.implementationClassUid = subValue.toString('latin1');
        }
      });
    }
  });
  return accepted;
}

/**
 * A storescu configuration file (`-xf FILE PROFILE`) with one presentation context per SOP class
 * and transfer syntax of the files, so that each is sent as it is stored (no conversion).
 */
export function storescuProfile(
  files: readonly { sopClassUid: string; transferSyntaxUid: string }[],
  profile: string,
): string {
  const syntaxes = [...new Set(files.map((file) => file.transferSyntaxUid))];
  const contexts = [
    ...new Set(files.map((file) => `${file.sopClassUid}\\TS${syntaxes.indexOf(file.transferSyntaxUid)}`)),
  ];
  return [
    '[[TransferSyntaxes]]',
    ...syntaxes.flatMap((uid, index) => [`[TS${index}]`, `TransferSyntax1 = ${uid}`]),
    '[[PresentationContexts]]',
    `[${profile}Contexts]`,
    ...contexts.map((context, index) => `PresentationContext${index + 1} = ${context}`),
    '[[Profiles]]',
    `[${profile}]`,
    `PresentationContexts = ${profile}Contexts`,
    '',
  ].join('\n');
}

export interface FileStoreRequest extends StoreRequest {
  /** The data set exactly as received (no File Meta Information); deleted after the callback settles. */
  datasetFile: string;
  byteLength: number;
}

/**
 * A store handler that streams each data set to a file in `tempDir` and hands it to `onStore` once
 * complete, deleting it afterwards (tests check that nothing is left behind).
 */
export function fileStoreHandler(
  tempDir: string,
  onStore: (request: FileStoreRequest) => Promise<StoreResult> | StoreResult,
): StoreHandler<FileSink> {
  return {
    async begin() {
      const path = join(tempDir, `${randomUUID()}.dataset`);
      const handle = await open(path, 'wx');
      let closed = false;
      const close = async () => {
        if (!closed) {
          await handle.close();
        }
        closed = true;
      };
      return {
        path,
        close,
        write: async (chunk) => {
          await handle.write(chunk);
        },
        abort: async () => {
          await close();
          await rm(path, { force: true });
        },
      };
    },
    async complete(request, sink, byteLength) {
      try {
        await sink.close();
        return await onStore({ ...request, datasetFile: sink.path, byteLength });
      } finally {
        await rm(sink.path, { force: true });
      }
    },
  };
}

interface FileSink extends DataSetSink {
  path: string;
  close(): Promise<void>;
}
