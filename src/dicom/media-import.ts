/**
 * Stores the DICOM files of a patient's media (media-source.ts) through the ingest path C-STORE and
 * STOW-RS use (ingest.ts): each file's bytes, as they are, into a blob writer, then `ingestInstance`.
 * A file is stored, already stored (the same SOP Instance with the same bytes: a re-run, or the same
 * image twice on a disc), refused with the ingest's reason, or not DICOM (no `DICM` at byte 128, and
 * no DICOMDIR refers to it: viewers, autorun files, PDFs); only refusals are the operator's concern.
 *
 * A few files are stored at once, so that one file's sync overlaps the next one's read. A storage
 * failure (disk, database) stops the import: every following file would fail the same way.
 */
import { Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readDicomdir } from './dicomdir.ts';
import { ingestInstance } from './ingest.ts';
import type { IngestContext, IngestOutcome } from './ingest.ts';
import type { Media, MediaFile } from './media-source.ts';

/** Part 10 (PS3.10 §7.1): a 128-byte preamble, then `DICM`. */
const PREFIX_END = 132;
const FILES_AT_ONCE = 4;

export interface ImportProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface RefusedFile {
  name: string;
  reason: string;
}

export interface ImportSummary {
  files: number;
  stored: number;
  storedBytes: number;
  alreadyStored: number;
  notDicom: number;
  /** DICOMDIRs found by their content under another name (those named DICOMDIR are not in `files`). */
  directories: number;
  refused: RefusedFile[];
  /** Studies that now hold instances of this media (stored or already stored). */
  studies: Set<string>;
  /** Studies that got a new instance. */
  newStudies: Set<string>;
  /** Why the import stopped before the end: a storage failure. */
  failure?: string;
  /** Stopped by the operator (interrupt) before the end. */
  interrupted: boolean;
}

export interface ImportOptions {
  onProgress?: (progress: ImportProgress) => void;
  /** Aborted: no new file is started; the files being stored finish. */
  signal?: AbortSignal;
}

type FileOutcome =
  | { kind: 'ingested'; outcome: IngestOutcome }
  | { kind: 'not-dicom' }
  | { kind: 'directory' }
  | { kind: 'refused'; reason: string };

/** Passes the bytes on, after checking the Part 10 prefix; a file without it ends the read early. */
class PrefixCheck extends Transform {
  private head: Buffer[] = [];
  private headLength = 0;
  /** Set once the first 132 bytes are in: true when they end with `DICM`. */
  isPart10: boolean | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.isPart10 !== undefined) {
      done(null, chunk);
      return;
    }
    this.head.push(chunk);
    this.headLength += chunk.length;
    if (this.headLength < PREFIX_END) {
      done();
      return;
    }
    const head = Buffer.concat(this.head);
    this.head = [];
    this.isPart10 = head.toString('latin1', 128, PREFIX_END) === 'DICM';
    if (!this.isPart10) {
      done(new NotPart10());
      return;
    }
    done(null, head);
  }

  override _flush(done: TransformCallback): void {
    if (this.isPart10 === undefined) {
      this.isPart10 = false;
      done(new NotPart10());
      return;
    }
    done();
  }
}

class NotPart10 extends Error {
  constructor() {
    super('not a DICOM Part 10 file (no DICM prefix)');
  }
}

/** A reason that stops the import rather than one file (the blob store or the database failed). */
class StorageFailure extends Error {}

async function importFile(ctx: IngestContext, file: MediaFile): Promise<FileOutcome> {
  let source: Readable;
  try {
    source = await file.open();
  } catch (error) {
    return { kind: 'refused', reason: `cannot be read: ${(error as Error).message}` };
  }
  const writer = ctx.blobs.createWriter();
  const check = new PrefixCheck();
  try {
    await pipeline(source, check, async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        await writer.write(chunk);
      }
    });
  } catch (error) {
    await writer.abort();
    if (error instanceof NotPart10) {
      return file.referenced
        ? { kind: 'refused', reason: `listed in the DICOMDIR but ${error.message}` }
        : { kind: 'not-dicom' };
    }
    return { kind: 'refused', reason: `cannot be read: ${(error as Error).message}` };
  }
  let staged;
  try {
    staged = await writer.stage();
  } catch (error) {
    throw new StorageFailure(`the blob store failed: ${(error as Error).message}`);
  }
  try {
    const outcome = await ingestInstance(ctx, staged);
    // A DICOMDIR under another name (a copy, DICOMDIR.BAK) is no instance, and no fault either.
    if (outcome.status === 'refused' && readDicomdir(staged.bytes ?? staged.file ?? '').ok) {
      return { kind: 'directory' };
    }
    return { kind: 'ingested', outcome };
  } catch (error) {
    // ingestInstance rejects only when storage fails; its messages name files or SQL, never values.
    throw new StorageFailure(`storage failed: ${(error as Error).message}`);
  } finally {
    await staged.discard();
  }
}

/** Imports every file of the media; resolves with what became of them. */
export async function importMedia(
  ctx: IngestContext,
  media: Media,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  const summary: ImportSummary = {
    files: media.files.length,
    stored: 0,
    storedBytes: 0,
    alreadyStored: 0,
    notDicom: 0,
    directories: 0,
    refused: [
      ...media.dicomdirs.flatMap((dicomdir) =>
        dicomdir.problem === undefined
          ? []
          : [{ name: dicomdir.name, reason: `DICOMDIR cannot be read: ${dicomdir.problem}` }],
      ),
      ...media.missing.map((name) => ({ name, reason: 'listed in the DICOMDIR but not on the media' })),
    ],
    studies: new Set(),
    newStudies: new Set(),
    interrupted: false,
  };
  const progress: ImportProgress = {
    filesDone: 0,
    filesTotal: media.files.length,
    bytesDone: 0,
    bytesTotal: media.files.reduce((sum, file) => sum + file.size, 0),
  };
  const record = (file: MediaFile, result: FileOutcome): void => {
    if (result.kind === 'not-dicom') {
      summary.notDicom++;
      return;
    }
    if (result.kind === 'directory') {
      summary.directories++;
      return;
    }
    if (result.kind === 'refused') {
      summary.refused.push({ name: file.name, reason: result.reason });
      return;
    }
    const outcome = result.outcome;
    switch (outcome.status) {
      case 'stored':
        summary.stored++;
        summary.storedBytes += outcome.size;
        summary.studies.add(outcome.studyInstanceUid);
        summary.newStudies.add(outcome.studyInstanceUid);
        return;
      case 'duplicate':
        summary.alreadyStored++;
        summary.studies.add(outcome.studyInstanceUid);
        return;
      case 'conflict':
        summary.refused.push({ name: file.name, reason: `${outcome.reason}, with other content` });
        return;
      default:
        summary.refused.push({ name: file.name, reason: outcome.reason });
    }
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    while (summary.failure === undefined) {
      if (options.signal?.aborted) {
        summary.interrupted = next < media.files.length;
        return;
      }
      const file = media.files[next++];
      if (file === undefined) {
        return;
      }
      try {
        record(file, await importFile(ctx, file));
      } catch (error) {
        if (!(error instanceof StorageFailure)) {
          throw error;
        }
        summary.failure ??= error.message;
        summary.refused.push({ name: file.name, reason: 'not stored: the import stopped (see below)' });
      }
      progress.filesDone++;
      progress.bytesDone += file.size;
      options.onProgress?.({ ...progress });
    }
  };
  await Promise.all(Array.from({ length: FILES_AT_ONCE }, worker));
  return summary;
}
