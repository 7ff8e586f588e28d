/**
 * `hub dicom import PATH`: stores a patient's media (a folder, a DICOMDIR, a zip archive) through
 * the ingest path C-STORE uses (dicom/media-import.ts), on the hub's database and storage area,
 * with no network between: progress on stderr, then a summary and the refused files on stdout.
 *
 * Decisions:
 * - It writes where the hub does: the index in the hub's database and the files under DATA_DIR/blobs.
 *   A DATA_DIR that does not hold the blobs the database refers to is refused before anything is
 *   stored: the index would otherwise point at files the hub cannot read.
 * - While a hub runs on the embedded database it holds DATA_DIR alone: the import is refused, naming
 *   the alternatives (stop the hub; or send the files to it over DICOM or STOW-RS).
 * - Re-running is safe: an instance already stored with the same bytes is counted as such.
 * - The ImagingStudies are current when it ends, as after a C-STORE association's release.
 * - One Import AuditEvent (PS3.15) per run, like one per C-STORE association: the operating-system
 *   account and host, and the hub user named with --operator; never the path, which may name the patient.
 * - Files refused by a person's provisional claim of their study (another patient's identifiers) give the
 *   study the coordinators' Task to confirm the claim (workflow/imaging-claims.ts), as the hub does.
 * - Interrupted (Ctrl-C), it finishes the files in hand, brings their studies up to date, audits and
 *   reports, and exits 130; run it again to go on.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { insertAuditEvents, toStored } from '../audit/statement.ts';
import { dicomImportAuditEvent } from '../audit/dicom-audit-event.ts';
import type { MediaImporter } from '../audit/dicom-audit-event.ts';
import type { AuditOutcome } from '../audit/audit-event.ts';
import { UserStore, normalizeEmail } from '../auth/users.ts';
import type { HubConfig } from '../config.ts';
import type { Database } from '../db/database.ts';
import { readAuditedStudies } from '../dicom/dimse/audit-trail.ts';
import { DICOMWEB_ENDPOINT_ID, ensureDicomWebEndpoint } from '../dicom/ingest.ts';
import { importMedia } from '../dicom/media-import.ts';
import type { ImportProgress, ImportSummary } from '../dicom/media-import.ts';
import { MediaError, openMedia } from '../dicom/media-source.ts';
import type { Media } from '../dicom/media-source.ts';
import { StudyRefresher } from '../dicom/study-refresher.ts';
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { HubRepository } from '../fhir/repository.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import { createLogger } from '../logger.ts';
import { systemClock } from '../runtime/clock.ts';
import { BlobInstaller } from '../storage/blob-installer.ts';
import { FileBlobStore } from '../storage/blob-store.ts';
import { StagingBlobStore } from '../storage/staging-blob-store.ts';
import { ClaimRefusals } from '../workflow/imaging-claims.ts';
import type { CommandOutput } from './client-commands.ts';
import { CliError } from './cli-error.ts';
import { ProgressReporter, formatMegabytes } from './progress.ts';
import type { ProgressStream } from './progress.ts';

export const DICOM_USAGE = `  hub dicom import PATH [--operator EMAIL] [--json]
      Stores every DICOM file of a patient's media, through the same ingest as C-STORE: PATH is a
      folder (a mounted CD or DVD, a USB stick), a DICOMDIR, a zip archive or one file. Files the
      DICOMDIR does not list are imported too. Already stored instances are skipped and counted,
      so a re-run is safe; files that are not DICOM are counted; refused files are listed with the
      reason. Progress goes to stderr (a bar on a terminal). --operator names the hub user the
      import is audited for (the operating-system account is recorded in any case); --json prints
      the summary as JSON. Exit status 3: done, but some files were refused; 130: interrupted.`;

/** Exit status when the import ran to its end but refused some files. */
export const SOME_REFUSED = 3;
/** Exit status after an interrupt (128 + SIGINT). */
export const INTERRUPTED = 130;

/** What the operator can do instead while a hub holds the embedded database. */
export const EMBEDDED_DATABASE_ALTERNATIVE =
  'Stop the hub and run the import again, or send the files to the running hub: ' +
  'storescu +sd +r -aec <DIMSE_AE_TITLE> <host> <DIMSE_PORT> PATH (dcmtk), or STOW-RS to /dicomweb/studies.';

export interface DicomCommandIo {
  /** Where the progress goes (stderr). */
  progress: ProgressStream;
  /** Opens the hub's database for the work (main.ts), refusing an embedded one a hub holds. */
  withDatabase: (work: (db: Database) => Promise<CommandOutput>, alternative: string) => Promise<CommandOutput>;
  /** Told of an interrupt request (SIGINT); returns how to stop listening. */
  onInterrupt: (listener: () => void) => () => void;
}

function usageError(message: string): CliError {
  return new CliError(`${message}\n\n${DICOM_USAGE}`, 2);
}

/**
 * The DATA_DIR the command was given must hold the blobs the database already refers to: checked on
 * a few instances (none stored yet: nothing to check).
 */
async function checkBlobStore(db: Database, blobs: FileBlobStore, dataDir: string): Promise<void> {
  // A staged instance has no file until it is installed (storage/blob-installer.ts).
  const latest = await db.query<{ blob_key: string }>(
    'SELECT blob_key FROM dicom_instance i WHERE NOT EXISTS (SELECT 1 FROM blob_staging s WHERE s.blob_key = i.blob_key) LIMIT 5',
  );
  if (latest.rows.length === 0) {
    return;
  }
  const present = await Promise.all(
    latest.rows.map((row) =>
      blobs.size(row.blob_key).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (!present.some(Boolean)) {
    throw new CliError(
      `DATA_DIR ${dataDir} does not hold the DICOM files this database refers to: run the import with the hub's own DATA_DIR`,
    );
  }
}

async function importerOf(db: Database, operatorEmail: string | undefined): Promise<MediaImporter> {
  const importer: MediaImporter = { osAccount: os.userInfo().username, host: os.hostname() };
  if (operatorEmail === undefined) {
    return importer;
  }
  const email = normalizeEmail(operatorEmail);
  const user = (await new UserStore(db).list()).find((candidate) => normalizeEmail(candidate.email) === email);
  if (!user || user.status !== 'active') {
    throw new CliError(`--operator: no active hub user has the e-mail address ${operatorEmail}`, 2);
  }
  return { ...importer, user: { userId: user.id, fhirUser: user.fhirUser } };
}

/** The Endpoint every ImagingStudy names; written only when no hub has yet (its address is the hub's to set). */
async function endpointId(repository: RepositoryContext): Promise<string> {
  try {
    await new HubRepository(repository).readResource('Endpoint', DICOMWEB_ENDPOINT_ID);
    return DICOMWEB_ENDPOINT_ID;
  } catch {
    return ensureDicomWebEndpoint(repository);
  }
}

function auditOutcome(summary: ImportSummary): { outcome: AuditOutcome; outcomeDesc?: string } {
  if (summary.failure !== undefined) {
    return { outcome: '8', outcomeDesc: 'the import stopped: storage failed' };
  }
  if (summary.interrupted) {
    return { outcome: '4', outcomeDesc: 'the import was interrupted' };
  }
  if (summary.refused.length > 0) {
    return { outcome: '4', outcomeDesc: 'some files were not stored' };
  }
  return { outcome: '0' };
}

async function recordAudit(
  db: Database,
  config: HubConfig,
  importer: MediaImporter,
  media: Media,
  summary: ImportSummary,
): Promise<void> {
  if (!config.auditEnabled) {
    return;
  }
  const event = dicomImportAuditEvent(
    { baseUrl: config.baseUrl },
    {
      id: randomUUID(),
      recorded: new Date(),
      ...auditOutcome(summary),
      importer,
      mediaKind: media.kind,
      studies: await readAuditedStudies(db, summary.studies),
    },
  );
  await insertAuditEvents(db, [toStored(event)]);
}

/**
 * Gives each study whose provisional claim refused files its coordinators' Task; a warning when one
 * could not be written (the next refusal of the study, by the hub or an import, tries again).
 */
async function recordClaimRefusals(claims: ClaimRefusals, studies: ReadonlySet<string>): Promise<string | undefined> {
  let failed = 0;
  for (const studyInstanceUid of studies) {
    try {
      await claims.record(studyInstanceUid);
    } catch {
      failed++;
    }
  }
  return failed === 0
    ? undefined
    : `The coordinators' Task could not be written for ${plural(failed, 'study', 'studies')} whose claim refused files; the next refusal writes it.`;
}

const plural = (count: number, one: string, many: string): string => `${count} ${count === 1 ? one : many}`;

function summaryLines(
  input: string,
  media: Media,
  summary: ImportSummary,
  refusedByClaim: ReadonlySet<string>,
  warnings: (string | undefined)[],
): string[] {
  const dicomdirs = media.dicomdirs.filter((dicomdir) => dicomdir.problem === undefined);
  const listed = dicomdirs.reduce((sum, dicomdir) => sum + (dicomdir.references ?? 0), 0);
  const lines = [
    `${summary.interrupted ? 'Interrupted import' : 'Imported'} from ${input} (${media.kind}${
      dicomdirs.length > 0 ? `, DICOMDIR listing ${listed} files` : ''
    }):`,
    `  files:           ${summary.files}`,
    `  stored:          ${summary.stored} instances, ${formatMegabytes(summary.storedBytes)} MB, in ${plural(summary.newStudies.size, 'study', 'studies')}`,
    `  already stored:  ${summary.alreadyStored}`,
    `  not DICOM:       ${summary.notDicom}`,
    `  DICOMDIRs:       ${media.dicomdirs.length + summary.directories}`,
    `  refused:         ${summary.refused.length}`,
    `  studies:         ${summary.studies.size}`,
  ];
  if (summary.refused.length > 0) {
    lines.push('Refused:', ...summary.refused.map((file) => `  ${file.name}: ${file.reason}`));
  }
  if (summary.failure !== undefined) {
    lines.push(`Stopped: ${summary.failure}. Nothing after it was tried; run the import again once it is fixed.`);
  }
  if (summary.interrupted) {
    lines.push('Run the same import again to go on: what is stored is skipped.');
  }
  if (refusedByClaim.size > 0) {
    lines.push(
      `${plural(refusedByClaim.size, 'study', 'studies')} held for a case of another patient refused files: ` +
        "a coordinator can confirm the case's claim in the reconciliation inbox, and the import can then be run again.",
    );
  }
  lines.push(...warnings.filter((warning) => warning !== undefined));
  return lines;
}

function summaryJson(input: string, media: Media, summary: ImportSummary, refusedByClaim: ReadonlySet<string>): string {
  return JSON.stringify({
    path: input,
    media: media.kind,
    files: summary.files,
    stored: summary.stored,
    storedBytes: summary.storedBytes,
    alreadyStored: summary.alreadyStored,
    notDicom: summary.notDicom,
    dicomdirs: media.dicomdirs.length + summary.directories,
    refused: summary.refused,
    studies: [...summary.studies].sort(),
    refusedByClaim: [...refusedByClaim].sort(),
    interrupted: summary.interrupted,
    ...(summary.failure !== undefined ? { failure: summary.failure } : {}),
  });
}

function exitCodeOf(summary: ImportSummary): number {
  if (summary.failure !== undefined) {
    return 1;
  }
  if (summary.interrupted) {
    return INTERRUPTED;
  }
  return summary.refused.length > 0 ? SOME_REFUSED : 0;
}

async function runImport(
  db: Database,
  config: HubConfig,
  input: string,
  media: Media,
  options: { operator: string | undefined; json: boolean },
  io: DicomCommandIo,
): Promise<CommandOutput> {
  const blobFiles = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  await checkBlobStore(db, blobFiles, config.dataDir);
  // The same staging as the hub's ingest; whatever it staged is installed before the command ends.
  const installer = new BlobInstaller(db, blobFiles, { logger: createLogger('silent') });
  const blobs = new StagingBlobStore(blobFiles, installer);
  const staging = config.dicomStageMaxBytes > 0 ? { installer, maxBytes: config.dicomStageMaxBytes } : undefined;
  const importer = await importerOf(db, options.operator);
  loadFhirDefinitions();
  const repository: RepositoryContext = { db, blobs, baseUrl: config.baseUrl, binaryMaxBytes: config.binaryMaxBytes };
  // As in the hub: the ImagingStudy and Task writes are the hub's own, audited with the hub as the agent.
  const hubWrites = (application: string): RepositoryContext => ({
    ...repository,
    audit: config.auditEnabled
      ? { site: { baseUrl: config.baseUrl }, actor: { application, clientIsRequestor: true } }
      : undefined,
  });
  const studies = new StudyRefresher({
    db,
    repository: hubWrites('imaging-study'),
    endpointId: await endpointId(repository),
    logger: createLogger('silent'),
  });
  // A study a person stored into a case refused instances of another patient: the coordinators get
  // the hub's Task to confirm or keep refusing the claim (workflow/imaging-claims.ts), written here
  // before the command ends rather than in the background as the hub does.
  const claimRefusals = new ClaimRefusals({
    db,
    repository: hubWrites('imaging-claims'),
    logger: createLogger('silent'),
    now: () => systemClock.now(),
  });
  const refusedByClaim = new Set<string>();
  const progress = new ProgressReporter(io.progress);
  const abort = new AbortController();
  const stopListening = io.onInterrupt(() => {
    progress.interrupt();
    io.progress.write('hub: interrupted; finishing the files in hand (interrupt again to stop at once)\n');
    abort.abort();
  });
  let last: ImportProgress = {
    filesDone: 0,
    filesTotal: media.files.length,
    bytesDone: 0,
    bytesTotal: media.files.reduce((sum, file) => sum + file.size, 0),
  };
  let summary: ImportSummary;
  try {
    const onClaimRefused = (studyInstanceUid: string): void => void refusedByClaim.add(studyInstanceUid);
    summary = await importMedia({ db, blobs, studies, staging, onClaimRefused }, media, {
      signal: abort.signal,
      onProgress: (state) => {
        last = state;
        progress.update(state);
      },
    });
  } finally {
    stopListening();
  }
  progress.finish(last);
  let refreshWarning: string | undefined;
  try {
    await studies.flush(summary.newStudies);
  } catch {
    refreshWarning = `The FHIR ImagingStudy of ${summary.newStudies.size} studies could not be brought up to date now; the hub does it when it runs.`;
  } finally {
    await studies.stop();
  }
  const claimWarning = await recordClaimRefusals(claimRefusals, refusedByClaim);
  // Left staged (the installer failed), they are installed by the hub when it runs.
  await installer.drain();
  await installer.stop();
  await recordAudit(db, config, importer, media, summary);
  return {
    out: options.json
      ? [summaryJson(input, media, summary, refusedByClaim)]
      : summaryLines(input, media, summary, refusedByClaim, [refreshWarning, claimWarning]),
    warnings: [],
    exitCode: exitCodeOf(summary),
  };
}

/** `hub dicom <action> …`. */
export async function dicomCommand(config: HubConfig, args: string[], io: DicomCommandIo): Promise<CommandOutput> {
  const [action, ...rest] = args;
  if (action !== 'import') {
    throw usageError(action === undefined ? 'missing dicom command' : `unknown dicom command "${action}"`);
  }
  let parsed: { values: { operator?: string; json?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { operator: { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const [input, ...extra] = parsed.positionals;
  if (input === undefined || extra.length > 0) {
    throw usageError('give exactly one PATH: a folder, a DICOMDIR, a zip archive or a file');
  }
  let media: Media;
  try {
    media = await openMedia(path.resolve(input));
  } catch (error) {
    if (error instanceof MediaError) {
      throw new CliError(error.message);
    }
    throw error;
  }
  try {
    return await io.withDatabase(
      (db) =>
        runImport(
          db,
          config,
          input,
          media,
          { operator: parsed.values.operator, json: parsed.values.json === true },
          io,
        ),
      EMBEDDED_DATABASE_ALTERNATIVE,
    );
  } finally {
    await media.close();
  }
}
