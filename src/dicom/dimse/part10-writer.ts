/**
 * PS3.10 §7.1: the File Meta Information that turns a data set received by C-STORE into a Part 10
 * file. Always Explicit VR Little Endian, whatever the data set's transfer syntax; the received data
 * set follows it byte for byte.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './implementation.ts';

export interface FileMetaInformation {
  mediaStorageSopClassUid: string;
  mediaStorageSopInstanceUid: string;
  transferSyntaxUid: string;
  /** (0002,0016): the AE that sent the instance. */
  sourceApplicationEntityTitle?: string | undefined;
}

/** The 128-byte preamble, "DICM", and the group 0002 elements with their group length. */
export function buildPart10Header(meta: FileMetaInformation): Buffer {
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), buildFileMetaInformation(meta)]);
}

/** The group 0002 elements alone, starting with (0002,0000) File Meta Information Group Length. */
export function buildFileMetaInformation(meta: FileMetaInformation): Buffer {
  const elements = [
    // (0002,0001) File Meta Information Version: OB 00 01 (PS3.10 §7.1).
    longElement(0x0001, 'OB', Buffer.from([0x00, 0x01])),
    shortElement(0x0002, 'UI', uid(meta.mediaStorageSopClassUid)),
    shortElement(0x0003, 'UI', uid(meta.mediaStorageSopInstanceUid)),
    shortElement(0x0010, 'UI', uid(meta.transferSyntaxUid)),
    shortElement(0x0012, 'UI', uid(IMPLEMENTATION_CLASS_UID)),
    shortElement(0x0013, 'SH', text(IMPLEMENTATION_VERSION_NAME)),
  ];
  if (meta.sourceApplicationEntityTitle) {
    elements.push(shortElement(0x0016, 'AE', text(meta.sourceApplicationEntityTitle.slice(0, 16))));
  }
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  return Buffer.concat([shortElement(0x0000, 'UL', groupLength), body]);
}

/** Streams `datasetFile` behind a Part 10 header into `destination` (never holding the data set in memory). */
export async function writePart10File(
  datasetFile: string,
  destination: string,
  meta: FileMetaInformation,
): Promise<void> {
  const output = createWriteStream(destination, { flags: 'wx' });
  output.write(buildPart10Header(meta));
  await pipeline(createReadStream(datasetFile), output);
}

/** PS3.5 §7.1.2: explicit VR with a 2-byte length. */
function shortElement(element: number, vr: string, value: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(0x0002, 0);
  header.writeUInt16LE(element, 2);
  header.write(vr, 4, 'latin1');
  header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

/** PS3.5 §7.1.2: OB and friends have 2 reserved bytes and a 4-byte length. */
function longElement(element: number, vr: string, value: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16LE(0x0002, 0);
  header.writeUInt16LE(element, 2);
  header.write(vr, 4, 'latin1');
  header.writeUInt32LE(value.length, 8);
  return Buffer.concat([header, value]);
}

/** UI values are padded to even length with NUL, other strings with a space (PS3.5 §6.2). */
function uid(value: string): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : `${value}\0`, 'latin1');
}

function text(value: string): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : `${value} `, 'latin1');
}
