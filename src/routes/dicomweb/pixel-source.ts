/**
 * A stored instance opened for its pixel data or other bulk values: the Part 10 header parsed
 * through the bounded file reader (bulk values are located, never loaded), and their bytes read on
 * demand by offset.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Database } from '../../db/database.ts';
import { PixelDataError, describePixels } from '../../dicom/frames.ts';
import type { PixelDescription, RangeReader } from '../../dicom/frames.ts';
import { parsePart10File } from '../../dicom/part10.ts';
import { restrictToVisibleStudies } from '../../dicom/query.ts';
import type { SqlQuery, StudyAccess } from '../../dicom/query.ts';
import type { ByteRange, DicomDataset } from '../../dicom/part10.ts';
import type { BlobStore } from '../../storage/blob-store.ts';
import { AUDITED_STUDY_COLUMNS } from './access.ts';
import type { AuditedStudyRow } from './access.ts';
import { SqlParams } from '../../db/sql-params.ts';

export interface InstanceScope {
  study: string;
  series?: string | undefined;
  instance?: string | undefined;
}

export interface InstanceRow extends AuditedStudyRow {
  study_instance_uid: string;
  series_instance_uid: string;
  sop_instance_uid: string;
  transfer_syntax_uid: string;
  blob_key: string;
  size: string;
  /** Only when asked for (`withJson`). */
  dicom_json?: string;
}

/** A row read with `withJson`: dicom_json is a NOT NULL column, so it is always there. */
export interface InstanceRowWithJson extends InstanceRow {
  dicom_json: string;
}

/**
 * The instances of a study, series or instance that the request may see (`access`, access.ts;
 * undefined: every study), in series then instance order; with their DICOM JSON when `withJson`.
 * Every WADO-RS lookup goes through here, so a study hidden from a person is as absent as a missing one.
 */
export async function findInstanceRows(
  db: Database,
  scope: InstanceScope,
  access: StudyAccess | undefined,
  withJson: true,
): Promise<InstanceRowWithJson[]>;
export async function findInstanceRows(
  db: Database,
  scope: InstanceScope,
  access: StudyAccess | undefined,
  withJson?: false,
): Promise<InstanceRow[]>;
export async function findInstanceRows(
  db: Database,
  scope: InstanceScope,
  access: StudyAccess | undefined,
  withJson = false,
): Promise<InstanceRow[]> {
  const query: SqlQuery = { where: [], params: new SqlParams() };
  query.where.push(`i.study_instance_uid = ${query.params.add(scope.study)}`);
  if (scope.series !== undefined) {
    query.where.push(`i.series_instance_uid = ${query.params.add(scope.series)}`);
  }
  if (scope.instance !== undefined) {
    query.where.push(`i.sop_instance_uid = ${query.params.add(scope.instance)}`);
  }
  restrictToVisibleStudies(query, access);
  const result = await db.query<InstanceRow>(
    `SELECT i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid, i.transfer_syntax_uid, i.blob_key, i.size,
       ${AUDITED_STUDY_COLUMNS('s')}${withJson ? ', i.dicom_json' : ''}
     FROM dicom_instance i JOIN dicom_series se ON se.series_instance_uid = i.series_instance_uid
       JOIN dicom_study s ON s.study_instance_uid = i.study_instance_uid
     WHERE ${query.where.join(' AND ')}
     ORDER BY se.series_number NULLS LAST, i.series_instance_uid, i.instance_number NULLS LAST, i.sop_instance_uid`,
    query.params.values,
  );
  return result.rows;
}

/** A stored instance's parsed header, its values read on demand by offset. */
export interface StoredDataset {
  readonly transferSyntaxUid: string;
  readonly dataset: DicomDataset;
  readonly read: RangeReader;
  /** Reads ranges that together make one frame, refusing more than maxBytes. */
  readFrame(ranges: readonly ByteRange[], maxBytes: number): Promise<Buffer>;
  /** Closes the file; safe to call more than once. */
  close(): Promise<void>;
}

export interface StoredPixels extends StoredDataset {
  /** The dataset holding the Pixel Data: the instance's, or a sequence item's (an icon). */
  readonly dataset: DicomDataset;
  readonly pixels: PixelDescription;
  /** Byte size of the numbers of the Pixel Data VR (2 for OW, 1 for OB), for byte swapping. */
  readonly wordSize: number;
}

/**
 * The file of a blob: the store's own file when it keeps blobs on the local file system, else a
 * copy spooled to tempDir that release() removes.
 */
async function blobFile(
  blobs: BlobStore,
  key: string,
  tempDir: string,
): Promise<{ path: string; release: () => Promise<void> }> {
  const local = blobs.localPath?.(key);
  if (local !== undefined) {
    return { path: local, release: async () => undefined };
  }
  await mkdir(tempDir, { recursive: true });
  const path = join(tempDir, `pixels-${randomUUID()}.dcm`);
  await pipeline(blobs.open(key), createWriteStream(path));
  return { path, release: () => rm(path, { force: true }) };
}

/** Opens a stored instance for reading its values by offset; the caller closes it. */
export async function openStoredDataset(blobs: BlobStore, row: InstanceRow, tempDir: string): Promise<StoredDataset> {
  const file = await blobFile(blobs, row.blob_key, tempDir);
  let handle: FileHandle | undefined;
  try {
    const parsed = parsePart10File(file.path);
    if (!parsed.ok) {
      throw new PixelDataError(500, `the stored instance cannot be parsed: ${parsed.reason}`);
    }
    const inflated = parsed.inflatedDataset;
    handle = await open(file.path, 'r');
    const fileHandle = handle;
    const read: RangeReader = async (range) => {
      if (inflated) {
        return inflated.subarray(range.offset, range.offset + range.length);
      }
      const buffer = Buffer.alloc(range.length);
      const { bytesRead } = await fileHandle.read(buffer, 0, range.length, range.offset);
      if (bytesRead !== range.length) {
        throw new PixelDataError(500, 'the stored instance is shorter than its values');
      }
      return buffer;
    };
    let closing: Promise<void> | undefined;
    return {
      transferSyntaxUid: parsed.meta.transferSyntaxUid,
      dataset: parsed.dataset,
      read,
      async readFrame(ranges, maxBytes) {
        const total = ranges.reduce((sum, range) => sum + range.length, 0);
        if (total > maxBytes) {
          throw new PixelDataError(
            413,
            `the frame is ${total} bytes, over this server's limit of ${maxBytes} for this operation`,
          );
        }
        const parts = [];
        for (const range of ranges) {
          parts.push(await read(range));
        }
        const [only] = parts;
        return parts.length === 1 && only !== undefined ? only : Buffer.concat(parts);
      },
      close() {
        closing ??= fileHandle.close().then(file.release);
        return closing;
      },
    };
  } catch (error) {
    await handle?.close();
    await file.release();
    throw error;
  }
}

/**
 * The pixels of `dataset` (the instance's by default, or a sequence item's) in an opened instance;
 * a 406 when it has no pixel data or its Image Pixel attributes are missing.
 */
export function storedPixelsOf(stored: StoredDataset, dataset: DicomDataset = stored.dataset): StoredPixels {
  const pixels = describePixels(dataset);
  // describePixels above refused a dataset without Pixel Data (7FE0,0010).
  const pixelVr = dataset.elements.get('7FE00010')?.vr;
  return { ...stored, dataset, pixels, wordSize: pixelVr === 'OB' ? 1 : 2 };
}

/** Opens a stored instance for frame access; a 406 when it has no pixel data. */
export async function openStoredPixels(blobs: BlobStore, row: InstanceRow, tempDir: string): Promise<StoredPixels> {
  const stored = await openStoredDataset(blobs, row, tempDir);
  try {
    return storedPixelsOf(stored);
  } catch (error) {
    await stored.close();
    throw error;
  }
}
