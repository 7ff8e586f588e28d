/**
 * The files of a patient's media for `hub dicom import` (media-import.ts): a folder (a mounted CD
 * or DVD, a USB stick, a copy), a DICOMDIR (its folder), a zip archive, or one file.
 *
 * Every file found is offered, whether a DICOMDIR refers to it or not: discs whose DICOMDIR lists
 * only some of their images are common. The DICOMDIRs found are read for their Referenced File IDs
 * (dicomdir.ts): a referenced file is always tried as DICOM (so a broken one is reported with its
 * reason rather than passed over as "not DICOM"), and a referenced file that is missing is reported.
 * File IDs are matched without regard to case or to the ISO 9660 version suffix (`IM1.;1`), as
 * discs are mounted in either form.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { openPromise } from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { readDicomdir } from './dicomdir.ts';

export type MediaKind = 'folder' | 'DICOMDIR' | 'zip archive' | 'file';

export interface MediaFile {
  /** Relative to the media's root, with `/` between folders: how reports name it. */
  readonly name: string;
  readonly size: number;
  /** A DICOMDIR of the media refers to it. */
  referenced: boolean;
  open(): Promise<Readable>;
}

export interface DicomdirRead {
  readonly name: string;
  /** Files it refers to; undefined when it could not be read. */
  readonly references?: number;
  /** Why it could not be read. */
  readonly problem?: string;
}

export interface Media {
  readonly kind: MediaKind;
  /** Every file but the DICOMDIRs, in name order. */
  readonly files: MediaFile[];
  readonly dicomdirs: DicomdirRead[];
  /** Files a DICOMDIR refers to that the media does not hold, as `<DICOMDIR's folder>/<File ID>`. */
  readonly missing: string[];
  close(): Promise<void>;
}

/** The media cannot be opened at all (no such path, an unreadable archive). */
export class MediaError extends Error {}

const isDicomdirName = (name: string): boolean => path.posix.basename(name).toUpperCase() === 'DICOMDIR';

/** A name as ISO 9660 discs may show it: any case, with or without `;1` and a bare trailing dot. */
function fileIdKey(name: string): string {
  return name
    .split('/')
    .map((component) => component.replace(/;\d+$/, '').replace(/\.$/, '').toLowerCase())
    .join('/');
}

async function walk(root: string, relative = ''): Promise<{ name: string; size: number }[]> {
  const found: { name: string; size: number }[] = [];
  const entries = await fsp.readdir(path.join(root, relative), { withFileTypes: true });
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const name = relative === '' ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory()) {
      found.push(...(await walk(root, name)));
    } else if (entry.isFile() || entry.isSymbolicLink()) {
      // A link is followed to a file, never to a folder (no loops).
      const stat = await fsp.stat(path.join(root, name)).catch(() => undefined);
      if (stat?.isFile()) {
        found.push({ name, size: stat.size });
      }
    }
  }
  return found;
}

/** Marks the referenced files and lists the missing ones. */
function resolveReferences(files: MediaFile[], dicomdirs: { name: string; referencedFiles: string[] }[]): string[] {
  const byKey = new Map(files.map((file) => [fileIdKey(file.name), file]));
  const missing: string[] = [];
  for (const dicomdir of dicomdirs) {
    const folder = path.posix.dirname(dicomdir.name);
    for (const fileId of dicomdir.referencedFiles) {
      const name = folder === '.' ? fileId : `${folder}/${fileId}`;
      const file = byKey.get(fileIdKey(name));
      if (file) {
        file.referenced = true;
      } else {
        missing.push(name);
      }
    }
  }
  return missing;
}

async function openFolder(root: string, kind: MediaKind): Promise<Media> {
  const found = await walk(root);
  const files: MediaFile[] = [];
  const dicomdirs: DicomdirRead[] = [];
  const references: { name: string; referencedFiles: string[] }[] = [];
  for (const { name, size } of found) {
    if (!isDicomdirName(name)) {
      const file = path.join(root, name);
      files.push({ name, size, referenced: false, open: () => Promise.resolve(fs.createReadStream(file)) });
      continue;
    }
    const read = readDicomdir(path.join(root, name));
    if (read.ok) {
      dicomdirs.push({ name, references: read.referencedFiles.length });
      references.push({ name, referencedFiles: read.referencedFiles });
    } else {
      dicomdirs.push({ name, problem: read.reason });
    }
  }
  const missing = resolveReferences(files, references);
  return { kind, files, dicomdirs, missing, close: () => Promise.resolve() };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function openZip(file: string): Promise<Media> {
  let zip: ZipFile;
  try {
    zip = await openPromise(file, { lazyEntries: true, autoClose: false });
  } catch (error) {
    throw new MediaError(`the zip archive cannot be read: ${(error as Error).message}`);
  }
  try {
    const entries: Entry[] = [];
    for await (const entry of zip.eachEntry()) {
      if (!entry.fileName.endsWith('/')) {
        entries.push(entry);
      }
    }
    entries.sort((a, b) => (a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0));
    const open = async (entry: Entry): Promise<Readable> => {
      if (entry.isEncrypted()) {
        throw new MediaError('the zip entry is encrypted');
      }
      return zip.openReadStreamPromise(entry);
    };
    const files: MediaFile[] = [];
    const dicomdirs: DicomdirRead[] = [];
    const references: { name: string; referencedFiles: string[] }[] = [];
    for (const entry of entries) {
      const name = entry.fileName;
      if (!isDicomdirName(name)) {
        files.push({ name, size: entry.uncompressedSize, referenced: false, open: () => open(entry) });
        continue;
      }
      const read = await open(entry)
        .then(readAll)
        .then(readDicomdir)
        .catch((error: unknown) => ({ ok: false as const, reason: (error as Error).message }));
      if (read.ok) {
        dicomdirs.push({ name, references: read.referencedFiles.length });
        references.push({ name, referencedFiles: read.referencedFiles });
      } else {
        dicomdirs.push({ name, problem: read.reason });
      }
    }
    const missing = resolveReferences(files, references);
    return { kind: 'zip archive', files, dicomdirs, missing, close: () => Promise.resolve(zip.close()) };
  } catch (error) {
    zip.close();
    throw error instanceof MediaError
      ? error
      : new MediaError(`the zip archive cannot be read: ${(error as Error).message}`);
  }
}

/** `PK\3\4` (a file entry) or `PK\5\6` (an empty archive) open a zip archive. */
async function looksLikeZip(file: string): Promise<boolean> {
  const handle = await fsp.open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.readUInt16BE(0) === 0x504b && [0x0304, 0x0506].includes(head.readUInt16BE(2));
  } finally {
    await handle.close();
  }
}

/** Opens what `input` names: a folder, a DICOMDIR (its folder is the media), a zip archive, or one file. */
export async function openMedia(input: string): Promise<Media> {
  const stat = await fsp.stat(input).catch(() => undefined);
  if (!stat) {
    throw new MediaError(`${input}: no such file or folder`);
  }
  if (stat.isDirectory()) {
    return openFolder(input, 'folder');
  }
  if (!stat.isFile()) {
    throw new MediaError(`${input}: not a file or folder`);
  }
  if (isDicomdirName(input)) {
    return openFolder(path.dirname(input), 'DICOMDIR');
  }
  if (await looksLikeZip(input)) {
    return openZip(input);
  }
  const name = path.basename(input);
  const files: MediaFile[] = [
    { name, size: stat.size, referenced: false, open: () => Promise.resolve(fs.createReadStream(input)) },
  ];
  return { kind: 'file', files, dicomdirs: [], missing: [], close: () => Promise.resolve() };
}
