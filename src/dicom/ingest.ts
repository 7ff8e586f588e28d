/**
 * The ingest path of one DICOM instance (C-STORE and STOW-RS): bounded parse, consistency check,
 * then one database statement with the index rows, their counts and a mark that the study's FHIR
 * ImagingStudy needs a refresh (study-refresher.ts rewrites it once per burst of instances; its
 * write records the outbox event). The Part 10 bytes become durable in that same commit when they
 * are staged (up to IngestContext.staging's size: they travel in the statement, and the installer
 * makes them a file afterwards, storage/blob-installer.ts), or before it, as a synced blob file,
 * when they are larger (their cost is bandwidth, not the flushes' latency).
 * A caller acknowledges the instance only when this resolves with `stored` or `duplicate`.
 *
 * Policies (docs/architecture.md, "DICOM ingest"):
 * - Meta and dataset disagree on the SOP Instance (or Class) UID: refused. Storing under either
 *   UID would make the instance unreachable, or wrong, by the other one.
 * - The same SOP Instance UID again with the same bytes: `duplicate`, an idempotent success that
 *   changes nothing (no new ImagingStudy version). With different bytes: `conflict`; the first
 *   stored instance stays, the new one is refused. Replacing an acknowledged instance silently
 *   (Orthanc's default) could change a study a specialist has already read.
 * - A Series Instance UID already stored under another study: refused.
 * - An instance of a study a person claimed for a case (dicom/case-claim.ts), arriving without that
 *   case, joins it only when its patient agrees with the study's (dicom_store_instance, migration
 *   031): `not-admitted` otherwise. A claim is a person's word, and a client's write must never
 *   decide what it may read.
 * - Stored into a named case (IngestOptions.intoCase), an instance refused because its series or its
 *   SOP Instance UID is held by a study not that case's is `not-admitted` too, like one whose study
 *   is: the person learns only that it was not stored into their case (docs/access.md).
 */
import type { Database } from '../db/database.ts';
import { isRetryableDbError, prepared } from '../db/database.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import type { BlobInstaller } from '../storage/blob-installer.ts';
import type { BlobStore, StagedBlob } from '../storage/blob-store.ts';
import { checkInstanceConsistency, readIndexedAttributes } from './attributes.ts';
import { toDicomJson } from './dicom-json.ts';
import { dicomWebEndpoint } from './imaging-study.ts';
import { parsePart10, parsePart10File } from './part10.ts';
import type { Part10Result } from './part10.ts';
import type { StudyRefresher } from './study-refresher.ts';

export interface IngestContext {
  db: Database;
  blobs: BlobStore;
  /** Brings the ImagingStudy of each study that got an instance up to date. */
  studies: StudyRefresher;
  /**
   * Instances held in memory and up to `maxBytes` are staged: their bytes committed with their index
   * rows (one WAL flush for both), then installed as files by `installer`. Without it, or above it,
   * the blob file is synced and installed before the statement.
   */
  staging?: { installer: BlobInstaller; maxBytes: number } | undefined;
  /**
   * Told when a person's provisional claim of the study refused an instance (its patient differs),
   * so that coordinators hear of it (workflow/imaging-claims.ts); it must not throw or wait.
   */
  onClaimRefused?: ((studyInstanceUid: string) => void) | undefined;
}

export interface StoredInstance {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  blobKey: string;
  size: number;
}

/** What an audit of the instance names of its study, as the store statement found it. */
export interface StudyAuditIds {
  imagingStudyId: string | undefined;
  patientId: string | undefined;
}

export type IngestOutcome =
  | ({ status: 'stored' } & StoredInstance & StudyAuditIds)
  /** Already stored with the same bytes: nothing changed. */
  | ({ status: 'duplicate' } & StoredInstance & StudyAuditIds)
  /** Already stored with other bytes: the stored instance stays, this one is refused. */
  | { status: 'conflict'; sopInstanceUid: string; reason: string }
  /** Cannot be parsed, or inconsistent: refused. The reason names tags, never values. */
  | { status: 'refused'; reason: string }
  /** Belongs to another study than the one the caller requires (STOW-RS to /studies/{uid}). */
  | { status: 'wrong-study'; reason: string; sopClassUid: string | undefined; sopInstanceUid: string | undefined }
  /**
   * Its study may not take it (IngestOptions.admitStudy said why, or its patient does not agree with
   * a study a person claimed), or, stored into a case, it is held elsewhere: refused, nothing
   * stored. The reason names the cause for the log, with ids only.
   */
  | {
      status: 'not-admitted';
      reason: string;
      studyInstanceUid: string | undefined;
      sopClassUid: string | undefined;
      sopInstanceUid: string | undefined;
    };

export interface IngestOptions {
  /** Refuse the instance unless its StudyInstanceUID is this one. */
  studyInstanceUid?: string | undefined;
  /**
   * Asked once the instance has been read and before anything is stored: undefined admits it into
   * its study, a reason refuses it (a study stored into a named case, dicom/case-claim.ts).
   */
  admitStudy?: ((studyInstanceUid: string) => Promise<string | undefined>) | undefined;
  /** The ServiceRequest id of the case the request stores into (STOW-RS `?case=`), whose claims admitStudy made. */
  intoCase?: string | undefined;
}

/** Why an instance was not stored into the case, by cause (the log's words: a person sees one answer). */
export const NOT_INTO_CASE = {
  series: "the series is held under a study not this case's",
  instance: "the SOP Instance UID is held in a study not this case's",
} as const;
/** C-STORE Error Comment (LO, 64 characters) and log text of an instance refused by a person's claim. */
export const PATIENT_MISMATCH = 'the study is held for a case of another patient';

/** The fixed id of the one DICOMweb Endpoint. */
export const DICOMWEB_ENDPOINT_ID = 'dicomweb';
const ENDPOINT_LOCK = 'dicom:endpoint';
/** Retries of the store statement when a concurrent instance of the same UIDs raced it. */
const STORE_ATTEMPTS = 4;

/**
 * Creates the DICOMweb Endpoint, or brings its address up to date; several hubs starting at once
 * take turns on an advisory lock, and an unchanged Endpoint gets no new version.
 */
export async function ensureDicomWebEndpoint(repository: RepositoryContext): Promise<string> {
  await repository.db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [ENDPOINT_LOCK]);
    await new HubRepository(repository, tx).updateResource(dicomWebEndpoint(DICOMWEB_ENDPOINT_ID, repository.baseUrl));
  });
  return DICOMWEB_ENDPOINT_ID;
}

/** Parses a staged blob from memory, or from its spill file when it was too large to hold. */
function parseStaged(staged: StagedBlob): Part10Result {
  if (staged.bytes !== undefined) {
    return parsePart10(staged.bytes);
  }
  if (staged.file === undefined) {
    throw new Error('a staged blob holds neither bytes nor a file');
  }
  return parsePart10File(staged.file);
}

/**
 * Stores one staged Part 10 file (its bytes are hashed and held in memory or in a spill file; this
 * commits them to the blob store or leaves them for the caller to discard, which it must). Resolves with the
 * outcome; rejects only when storage fails (blob store or database), which the caller reports as
 * out of resources.
 */
export async function ingestInstance(
  ctx: IngestContext,
  staged: StagedBlob,
  options: IngestOptions = {},
): Promise<IngestOutcome> {
  const staging = ctx.staging;
  const stagedBytes = staging !== undefined && staged.size <= staging.maxBytes ? staged.bytes : undefined;
  if (stagedBytes === undefined) {
    // The blob's sync runs in the thread pool while the parse runs here; a refused instance's synced
    // temp file goes with the caller's discard.
    staged.prepare();
  }
  const parsed = parseStaged(staged);
  if (!parsed.ok) {
    return { status: 'refused', reason: parsed.reason };
  }
  const consistency = checkInstanceConsistency(parsed.meta, parsed.dataset);
  if (!consistency.ok) {
    return { status: 'refused', reason: consistency.reason };
  }
  const a = readIndexedAttributes(parsed.dataset);
  if (options.studyInstanceUid !== undefined && a.StudyInstanceUID !== options.studyInstanceUid) {
    return {
      status: 'wrong-study',
      reason: 'StudyInstanceUID (0020,000D) differs from the study in the request path',
      sopClassUid: a.SOPClassUID,
      sopInstanceUid: a.SOPInstanceUID,
    };
  }
  const refusal = await options.admitStudy?.(a.StudyInstanceUID as string);
  const notAdmitted = (reason: string): IngestOutcome => ({
    status: 'not-admitted',
    reason,
    studyInstanceUid: a.StudyInstanceUID,
    sopClassUid: a.SOPClassUID,
    sopInstanceUid: a.SOPInstanceUID,
  });
  if (refusal !== undefined) {
    return notAdmitted(refusal);
  }
  const dicomJson = JSON.stringify(
    toDicomJson(parsed.dataset, {
      bulkDataUri: (tag, path) => `bulkdata/${[...path, tag].join('/')}`,
    }),
  );
  const blob = stagedBytes === undefined ? await staged.commit() : { key: staged.key, size: staged.size };
  const instance: StoredInstance = {
    studyInstanceUid: a.StudyInstanceUID as string,
    seriesInstanceUid: a.SeriesInstanceUID as string,
    sopInstanceUid: a.SOPInstanceUID as string,
    blobKey: blob.key,
    size: blob.size,
  };
  const params = [
    instance.studyInstanceUid,
    instance.seriesInstanceUid,
    instance.sopInstanceUid,
    a.SOPClassUID,
    parsed.meta.transferSyntaxUid,
    integer(a.InstanceNumber),
    integer(a.Rows),
    integer(a.Columns),
    integer(a.NumberOfFrames),
    instance.blobKey,
    instance.size,
    dicomJson,
    text(a.PatientID),
    text(a.PatientName),
    text(a.PatientBirthDate),
    text(a.PatientSex),
    text(a.StudyDate),
    text(a.StudyTime),
    text(a.AccessionNumber),
    text(a.StudyDescription),
    text(a.ReferringPhysicianName),
    text(a.StudyID),
    text(a.Modality),
    integer(a.SeriesNumber),
    text(a.SeriesDescription),
    text(a.BodyPartExamined),
    options.intoCase ?? null,
  ];
  const result = await storerOf(ctx.db).store(params, stagedBytes ?? null);
  const auditIds: StudyAuditIds = {
    imagingStudyId: result.audit_imaging_study_id ?? undefined,
    patientId: result.audit_patient_id ?? undefined,
  };
  switch (result.outcome) {
    case 'stored':
      if (stagedBytes !== undefined) {
        staging?.installer.committed(instance.blobKey, stagedBytes.length);
      }
      ctx.studies.touch(instance.studyInstanceUid);
      return { status: 'stored', ...instance, ...auditIds };
    case 'duplicate':
      return { status: 'duplicate', ...instance, ...auditIds };
    case 'conflict':
      if (options.intoCase !== undefined && !(await heldByCase(ctx.db, 'instance', instance, options.intoCase))) {
        return notAdmitted(NOT_INTO_CASE.instance);
      }
      return {
        status: 'conflict',
        sopInstanceUid: instance.sopInstanceUid,
        reason: 'another instance with this SOP Instance UID is already stored',
      };
    case 'patient-mismatch':
      ctx.onClaimRefused?.(instance.studyInstanceUid);
      return notAdmitted(PATIENT_MISMATCH);
    default:
      if (options.intoCase !== undefined && !(await heldByCase(ctx.db, 'series', instance, options.intoCase))) {
        return notAdmitted(NOT_INTO_CASE.series);
      }
      return { status: 'refused', reason: 'SeriesInstanceUID is already stored under another StudyInstanceUID' };
  }
}

/**
 * Whether the stored instance (or series) that refused this one is in a study of the case: then the
 * person may know of it, and hears the particular reason; otherwise only that it was not stored.
 */
async function heldByCase(
  db: Database,
  held: 'instance' | 'series',
  instance: StoredInstance,
  serviceRequestId: string,
): Promise<boolean> {
  const found = await db.query<{ matched_service_request_id: string | null }>(
    held === 'instance'
      ? `SELECT s.matched_service_request_id FROM dicom_instance i JOIN dicom_study s USING (study_instance_uid)
         WHERE i.sop_instance_uid = $1`
      : `SELECT s.matched_service_request_id FROM dicom_series se JOIN dicom_study s USING (study_instance_uid)
         WHERE se.series_instance_uid = $1`,
    [held === 'instance' ? instance.sopInstanceUid : instance.seriesInstanceUid],
  );
  return found.rows[0]?.matched_service_request_id === serviceRequestId;
}

/** The store statement's answer per instance (dicom_store_instance_audited, migration 033). */
interface StoreRow {
  outcome: string;
  audit_imaging_study_id: string | null;
  audit_patient_id: string | null;
}
const STORE_PARAMETERS = 28;
/** One instance: the 27 values and its staged bytes (a binary parameter), or null. */
const STORE_STATEMENT = prepared(
  `SELECT outcome, audit_imaging_study_id, audit_patient_id FROM dicom_store_instance_audited(${Array.from({ length: STORE_PARAMETERS }, (_unused, i) => `$${i + 1}`).join(', ')})`,
);
/** The SQL types of dicom_store_instance's first 27 parameters, in order (migrations 004, 025 and 031). */
const STORE_TYPES = [
  'text',
  'text',
  'text',
  'text',
  'text',
  'integer',
  'integer',
  'integer',
  'integer',
  'text',
  'bigint',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'integer',
  'text',
  'text',
  'text',
];
const columns = STORE_TYPES.map((_type, i) => `c${i + 1}`);
const BYTES_PARAMETER = STORE_TYPES.length + 3;
/**
 * Many instances in one statement: one row (and one function call) per instance, in array order.
 * Their staged bytes go as one binary parameter, each instance's a slice of it by offset and length
 * (node-postgres would send an array of byte strings as hex text: twice the bytes, and encoding).
 */
const STORE_MANY_STATEMENT = prepared(
  `SELECT u.n, r.outcome, r.audit_imaging_study_id, r.audit_patient_id ` +
    `FROM unnest(${STORE_TYPES.map((type, i) => `$${i + 1}::${type}[]`).join(', ')}, ` +
    `$${STORE_TYPES.length + 1}::integer[], $${STORE_TYPES.length + 2}::integer[]) ` +
    `WITH ORDINALITY AS u(${columns.join(', ')}, off, len, n) ` +
    `CROSS JOIN LATERAL dicom_store_instance_audited(${columns.map((c) => `u.${c}`).join(', ')}, ` +
    `CASE WHEN u.len IS NULL THEN NULL ELSE substring($${BYTES_PARAMETER}::bytea FROM u.off FOR u.len) END) AS r ` +
    `ORDER BY u.n`,
);
/** Store statements running at once per database: while they run, the next instances gather into one. */
const STORES_IN_FLIGHT = 2;
/** Most instances per statement. */
const STORE_BATCH = 32;

interface PendingStore {
  params: unknown[];
  bytes: Buffer | null;
  resolve: (row: StoreRow) => void;
  reject: (error: unknown) => void;
}

/**
 * Coalesces the store statements of instances that arrive while others are being stored (the parts
 * of a STOW-RS request, several associations) into one statement: one round trip, one transaction
 * and one WAL flush for all of them, instead of one each. An instance that arrives while nothing is
 * being stored (one association sending one instance at a time) goes at once, alone. Each instance
 * keeps its own outcome. A statement fails whole (a race raises 40001 inside the function, or one
 * instance cannot be stored): its instances are then stored one by one, each with its own retries. Instances go in order of their
 * study UID, so two statements running at once take the study rows' locks in the same order.
 */
class InstanceStorer {
  private readonly db: Database;
  private readonly pending: PendingStore[] = [];
  private running = 0;

  constructor(db: Database) {
    this.db = db;
  }

  store(params: unknown[], bytes: Buffer | null): Promise<StoreRow> {
    return new Promise((resolve, reject) => {
      this.pending.push({ params, bytes, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < STORES_IN_FLIGHT && this.pending.length > 0) {
      const batch = this.pending.splice(0, STORE_BATCH);
      this.running++;
      void this.run(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async run(batch: PendingStore[]): Promise<void> {
    if (batch.length > 1) {
      batch.sort((a, b) => compareText(a.params[0] as string, b.params[0] as string));
      try {
        const arrays = STORE_TYPES.map((_type, c) => batch.map((entry) => entry.params[c]));
        const offsets: (number | null)[] = [];
        const lengths: (number | null)[] = [];
        const staged: Buffer[] = [];
        let offset = 1;
        for (const entry of batch) {
          offsets.push(entry.bytes === null ? null : offset);
          lengths.push(entry.bytes?.length ?? null);
          if (entry.bytes !== null) {
            staged.push(entry.bytes);
            offset += entry.bytes.length;
          }
        }
        const result = await this.db.query<StoreRow & { n: string }>(STORE_MANY_STATEMENT, [
          ...arrays,
          offsets,
          lengths,
          staged.length === 0 ? null : Buffer.concat(staged, offset - 1),
        ]);
        // One row per instance, in the batch's order (WITH ORDINALITY … ORDER BY u.n).
        for (const [i, entry] of batch.entries()) {
          const row = result.rows[i];
          if (row === undefined) {
            throw new Error(`the batched store answered ${result.rows.length} rows for ${batch.length} instances`);
          }
          entry.resolve(row);
        }
        return;
      } catch {
        // One instance raced another, or one cannot be stored: store them one by one, so that only
        // the instance at fault fails.
      }
    }
    await Promise.all(
      batch.map(async (entry) => {
        try {
          entry.resolve(await storeOne(this.db, [...entry.params, entry.bytes]));
        } catch (error) {
          entry.reject(error);
        }
      }),
    );
  }
}

const storers = new WeakMap<Database, InstanceStorer>();

function storerOf(db: Database): InstanceStorer {
  let storer = storers.get(db);
  if (!storer) {
    storers.set(db, (storer = new InstanceStorer(db)));
  }
  return storer;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function storeOne(db: Database, params: unknown[]): Promise<StoreRow> {
  for (let attempt = 1; ; attempt++) {
    try {
      const [row] = (await db.query<StoreRow>(STORE_STATEMENT, params)).rows;
      if (row === undefined) {
        throw new Error('dicom_store_instance answered no row');
      }
      return row;
    } catch (error) {
      if (attempt >= STORE_ATTEMPTS || !isRetryableDbError(error)) {
        throw error;
      }
    }
  }
}

/** PostgreSQL text cannot hold NUL, which a hostile or broken value may contain. */
function text(value: string | undefined): string | null {
  const cleaned = value?.replace(/\0/g, '').trim();
  return cleaned === undefined || cleaned === '' ? null : cleaned;
}

/** IS/US values as an integer column; the first of several values; anything unusable is null. */
function integer(value: string | undefined): number | null {
  const first = value?.split('\\')[0]?.trim();
  if (!first || !/^[+-]?\d{1,10}$/.test(first)) {
    return null;
  }
  const number = Number(first);
  return number >= -2147483648 && number <= 2147483647 ? number : null;
}
