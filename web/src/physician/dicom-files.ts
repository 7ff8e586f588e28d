/**
 * What the browser does with a folder from a patient's CD before anything is sent: which files are
 * DICOM Part 10 instances (PS3.10 §7.1: a 128-byte preamble, "DICM", then the File Meta
 * Information in Explicit VR Little Endian), which are the disc's index (DICOMDIR) or something else,
 * and the instance's SOP Instance UID, by which the hub's STOW-RS answer names it. Then the batches,
 * the multipart/related body of one batch (PS3.18 §10.5), and the answer read back per file.
 */

/** PS3.4 Media Storage Directory Storage: a DICOMDIR's SOP Class. */
const DICOMDIR_SOP_CLASS = '1.2.840.10008.1.3.10';
/** The File Meta Information is read from this window; a real one is a few hundred bytes. */
const META_WINDOW = 132 + 64 * 1024;
const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export interface DicomFile {
  file: File;
  /** The path under the chosen folder (or the file's name). */
  path: string;
  sopInstanceUid: string;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface Selection {
  instances: DicomFile[];
  skipped: SkippedFile[];
  bytes: number;
}

export function pathOf(file: File): string {
  // Empty when the file was chosen alone (and absent outside browsers).
  return file.webkitRelativePath ? file.webkitRelativePath : file.name;
}

interface MetaUids {
  sopClassUid?: string;
  sopInstanceUid?: string;
}

/** The SOP Class and Instance UIDs of a Part 10 header, or undefined when the bytes are not one. */
export function readMeta(head: Uint8Array): MetaUids | undefined {
  if (head.length < 132 || String.fromCharCode(...head.subarray(128, 132)) !== 'DICM') {
    return undefined;
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const uids: MetaUids = {};
  let pos = 132;
  while (pos + 8 <= head.length && view.getUint16(pos, true) === 0x0002) {
    const element = view.getUint16(pos + 2, true);
    const vr = String.fromCharCode(head[pos + 4] ?? 0, head[pos + 5] ?? 0);
    const long = LONG_LENGTH_VRS.has(vr);
    if (long && pos + 12 > head.length) {
      break;
    }
    const length = long ? view.getUint32(pos + 8, true) : view.getUint16(pos + 6, true);
    const start = pos + (long ? 12 : 8);
    if (start + length > head.length) {
      break;
    }
    if (vr === 'UI' && (element === 0x0002 || element === 0x0003)) {
      const uid = String.fromCharCode(...head.subarray(start, start + length)).replace(/[\0 ]+$/, '');
      if (element === 0x0002) {
        uids.sopClassUid = uid;
      } else {
        uids.sopInstanceUid = uid;
      }
    }
    pos = start + length;
  }
  return uids;
}

const isDicomdirName = (path: string): boolean => /(^|\/)DICOMDIR$/i.test(path);

/** Sorts the chosen files into instances to send and files left out, each with its reason. */
export async function selectInstances(files: readonly File[]): Promise<Selection> {
  const instances: DicomFile[] = [];
  const skipped: SkippedFile[] = [];
  const seen = new Map<string, string>();
  const sorted = [...files].sort((a, b) => pathOf(a).localeCompare(pathOf(b)));
  for (const file of sorted) {
    const path = pathOf(file);
    const meta = readMeta(new Uint8Array(await file.slice(0, META_WINDOW).arrayBuffer()));
    if (meta === undefined) {
      skipped.push({
        path,
        reason: isDicomdirName(path)
          ? 'Named DICOMDIR but not a DICOM file'
          : 'Not a DICOM file (no “DICM” marker after the 128-byte preamble)',
      });
    } else if (meta.sopClassUid === DICOMDIR_SOP_CLASS || isDicomdirName(path)) {
      skipped.push({ path, reason: 'The disc’s index (DICOMDIR), not an image: not needed' });
    } else if (meta.sopInstanceUid === undefined || meta.sopInstanceUid === '') {
      skipped.push({ path, reason: 'A DICOM file without a SOP Instance UID in its header' });
    } else if (seen.has(meta.sopInstanceUid)) {
      skipped.push({ path, reason: `The same instance as ${seen.get(meta.sopInstanceUid) ?? 'another file'}` });
    } else {
      seen.set(meta.sopInstanceUid, path);
      instances.push({ file, path, sopInstanceUid: meta.sopInstanceUid });
    }
  }
  return { instances, skipped, bytes: instances.reduce((sum, instance) => sum + instance.file.size, 0) };
}

/** At most this many files, or about this many bytes, per STOW-RS request (a larger file goes alone). */
export const BATCH_FILES = 10;
export const BATCH_BYTES = 8 * 1024 * 1024;

export function batchesOf(instances: readonly DicomFile[]): DicomFile[][] {
  const batches: DicomFile[][] = [];
  let current: DicomFile[] = [];
  let bytes = 0;
  for (const instance of instances) {
    if (current.length > 0 && (current.length >= BATCH_FILES || bytes + instance.file.size > BATCH_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(instance);
    bytes += instance.file.size;
  }
  if (current.length > 0) {
    batches.push(current);
  }
  return batches;
}

/** A batch as a multipart/related body of application/dicom parts; the files are streamed, not copied. */
export function multipartBody(batch: readonly DicomFile[]): { body: Blob; contentType: string } {
  const boundary = `dicom-${crypto.randomUUID()}`;
  const parts: BlobPart[] = [];
  for (const instance of batch) {
    parts.push(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, instance.file, '\r\n');
  }
  parts.push(`--${boundary}--\r\n`);
  return {
    body: new Blob(parts),
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
  };
}

/** PS3.18 Table I.2-2 and PS3.7 Annex C failure reasons, in words. */
export function failureReasonText(code: number): string {
  if (code === 0x0124) {
    // One text for every cause (its study, series or instance held outside the case): the hub says no more.
    return 'Not stored into this case: the coordinators can sort it out';
  }
  if (code === 0x0111) {
    return 'An instance with the same identifier and other content is already stored';
  }
  if (code === 0x0122) {
    return 'The hub does not store this kind of DICOM object';
  }
  if (code >> 8 === 0xa7) {
    return 'The hub could not store it just now (out of resources): send the folder again later';
  }
  if (code >> 8 === 0xa9) {
    return 'It does not belong to the study it was sent to';
  }
  if (code >> 12 === 0xc) {
    return 'The hub could not read it as DICOM (damaged, or its identifiers disagree)';
  }
  return `Refused by the hub (failure reason ${code.toString(16).toUpperCase().padStart(4, '0')})`;
}

type DicomJson = Record<string, { Value?: unknown[] } | undefined>;

/** The stored SOP Instance UIDs and the failed ones with their reasons, from a Store Instances Response. */
export function readStoreResponse(response: unknown): { stored: Set<string>; failed: Map<string, string> } {
  const module = (typeof response === 'object' && response !== null ? response : {}) as DicomJson;
  const uidOf = (item: unknown): string | undefined => {
    const value = (item as DicomJson)['00081155']?.Value?.[0];
    return typeof value === 'string' ? value : undefined;
  };
  const stored = new Set<string>();
  for (const item of module['00081199']?.Value ?? []) {
    const uid = uidOf(item);
    if (uid !== undefined) {
      stored.add(uid);
    }
  }
  const failed = new Map<string, string>();
  for (const item of module['00081198']?.Value ?? []) {
    const uid = uidOf(item);
    const reason = (item as DicomJson)['00081197']?.Value?.[0];
    if (uid !== undefined) {
      failed.set(uid, typeof reason === 'number' ? failureReasonText(reason) : 'Refused by the hub');
    }
  }
  return { stored, failed };
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) {
    return `${Math.max(bytes / 1024, bytes === 0 ? 0 : 0.1).toFixed(1)} KB`;
  }
  if (bytes < 1024 * 1024 * 1024) {
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }
  return `${(bytes / (1024 * 1024 * 1024)).toFixed(2)} GB`;
}
