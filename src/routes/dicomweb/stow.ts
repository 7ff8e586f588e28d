/**
 * STOW-RS (PS3.18 §10.5): `POST /studies` and `POST /studies/{StudyInstanceUID}` with a
 * multipart/related body of application/dicom parts. Each part streams into a blob writer (held in
 * memory while small, spilled to a temp file beyond that, so nothing holds a large part whole) and
 * goes through the same ingest path as C-STORE, several parts at once. The studies' ImagingStudies
 * follow through the refresher (study-refresher.ts) once the study has been quiet for a moment: the
 * answer does not wait for them, since a viewer or PACS sending one instance per request would
 * otherwise pay for an ImagingStudy rewrite per instance.
 *
 * Answers (PS3.18 §10.5.3, Store Instances Response Module, application/dicom+json):
 * - 200 every instance stored (an identical instance stored before counts as stored);
 * - 202 some stored, some failed;
 * - 409 none stored (a study UID mismatch, a conflicting duplicate, unreadable data, or a mixture);
 *   503 instead when every failure was the hub running out of resources, which a client should retry;
 * - 400 malformed request (bad multipart framing, no parts, invalid study UID in the path),
 *   413 more parts than the limit; 415 not multipart/related, or a `type` other than application/dicom;
 * - 429 a person at their daily quota (DICOM_PERSON_DAILY_BYTES, stow-quota.ts): before the body is
 *   read, with an OperationOutcome; or after it, when every part was refused for the quota. With
 *   Retry-After: when enough of their bytes leave the 24 hours. A part that would take the person over
 *   the quota fails alone (0xA700); a later, smaller part that still fits is stored.
 *
 * FailureReason (0008,1197), from PS3.18 Table I.2-2 where it has a code:
 * - 0xA700 out of resources: the spool or blob write, or the database, failed; or a part over the size
 *   limit, or over what is left of the person's daily quota;
 * - 0xA900 the instance does not belong to the study named in the path (Table I.2-2 has no code for
 *   this; A9xx "data set does not match" is the closest, and the request's target is what it fails);
 * - 0xC000 cannot understand: not DICOM Part 10, truncated, inconsistent UIDs, a part of another
 *   media type, a malformed part;
 * - 0x0111 (PS3.7 "duplicate SOP Instance", allowed as an additional code): the SOP Instance UID is
 *   already stored with other bytes; the stored instance stays (ingest.ts duplicate policy);
 * - 0x0124 (PS3.7 Annex C "Refused: Not authorized"): stored into a named case (`?case=`,
 *   stow-case.ts), the instance is held at the hub outside that case: its study, its series or its SOP
 *   Instance UID, for another case or for a coordinator. One code for every such cause, so a person
 *   learns only that it was not stored into their case; the log says which. Without a case: the
 *   instance's study was stored into a case by a person and its patient differs (dicom/case-claim.ts).
 * An instance is listed in ReferencedSOPSequence only once ingest has synced its blob and committed its rows.
 *
 * Each request that reached its parts is audited (one DICOM Instances Transferred event naming the
 * studies stored, access.ts) before the answer; a person needs ImagingStudy create in their access
 * policy to get here at all, or, naming one of their cases, a policy that stores into a case
 * (auth/dicomweb-scope-guard.ts, stow-case.ts).
 */
import { open } from 'node:fs/promises';
import type { Request, Response, Router } from 'express';
import { ingestInstance } from '../../dicom/ingest.ts';
import type { IngestOptions, IngestOutcome } from '../../dicom/ingest.ts';
import {
  MultipartError,
  parseMediaType,
  parseMultipartRelatedContentType,
  readMultipart,
} from '../../dicom/multipart.ts';
import type { ReceivedPart } from '../../dicom/multipart.ts';
import { isValidUid } from '../../dicom/part10.ts';
import type { StagedBlob } from '../../storage/blob-store.ts';
import { LONG_LENGTH_VRS } from '../../dicom/vr.ts';
import { outcomeForStatus } from '../../audit/audit-event.ts';
import type { AuditedStudy } from '../../audit/dicom-audit-event.ts';
import { audited } from './access.ts';
import type { DicomwebOptions } from './index.ts';
import type { QuotaReservation } from './stow-quota.ts';
import { CaseClaims, resolveStowCase } from './stow-case.ts';
import { requestIdentity } from '../../auth/authenticate.ts';

export const FailureReason = {
  outOfResources: 0xa700,
  studyMismatch: 0xa900,
  cannotUnderstand: 0xc000,
  duplicateSopInstance: 0x0111,
  notAuthorized: 0x0124,
} as const;

const DICOM = 'application/dicom';
/**
 * Instances in ingest at once per request, and the bytes they may hold: overlaps parts' commits
 * with each other and with the upload of the next parts, and lets the parts that wait for a commit
 * go together in the next one (ingest.ts), so a request of small instances costs few WAL flushes.
 * A part is read only while fewer than this many parts and bytes are held (a part over the blob
 * writer's in-memory size spills to a file), which bounds a request's memory near the byte limit.
 */
const INGEST_CONCURRENCY = 32;
const INGEST_BYTES = 16 * 1024 * 1024;

interface SopReference {
  sopClassUid?: string;
  sopInstanceUid?: string;
}

type PartResult =
  | {
      index: number;
      stored: true;
      sopClassUid: string | undefined;
      sopInstanceUid: string;
      studyInstanceUid: string;
      seriesInstanceUid: string;
      /** New bytes stored, not an identical instance stored before: counted in the person's quota. */
      added: boolean;
      /** The study's ids as its store found them, for the audit. */
      imagingStudyId: string | undefined;
      patientId: string | undefined;
    }
  | ({
      index: number;
      stored: false;
      failureReason: number;
      why: string;
      /** For a refusal by the study's case: the study the instance named (ids go to the log). */
      studyInstanceUid?: string | undefined;
      /** For a refusal by the person's daily quota: the person (stow-quota.ts). */
      overQuotaOf?: string | undefined;
    } & SopReference);

/** Registers the STOW-RS routes on the DICOMweb router. */
export function registerStowRoutes(routes: Router, options: DicomwebOptions): void {
  const handler = (req: Request, res: Response): Promise<void> => storeInstances(req, res, options);
  routes.post('/studies', handler);
  routes.post('/studies/:study', handler);
}

async function storeInstances(req: Request, res: Response, options: DicomwebOptions): Promise<void> {
  res.locals.route = 'dicomweb.stow';
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  const study = typeof req.params.study === 'string' ? req.params.study : undefined;
  if (study !== undefined && !isValidUid(study)) {
    refuseRequest(req, res, 400, 'the StudyInstanceUID in the path is not a valid UID');
    return;
  }
  const named = await resolveStowCase(options.ingest.db, req, res);
  if (named.kind === 'refused') {
    refuseWithOutcome(req, res, named.status, named.code, named.text);
    return;
  }
  const claims = named.kind === 'case' ? new CaseClaims(options.ingest.db, named.target) : undefined;
  // A person's token is held to the daily quota; a system client's, or none (the trusted network), is not.
  const identity = requestIdentity(res);
  const person = identity?.kind === 'user' ? identity.userId : undefined;
  const quota = person === undefined ? undefined : options.personQuota;
  const intoCase = named.kind === 'case' ? named.target.serviceRequestId : undefined;
  let boundary: string;
  try {
    const contentType = parseMultipartRelatedContentType(req.headers['content-type']);
    // PS3.18 §10.5.1.2: the `type` parameter names the parts' media type; without it each part's own Content-Type decides.
    if (contentType.type !== undefined && parseMediaType(contentType.type).essence !== DICOM) {
      throw new MultipartError(
        'unsupported-media-type',
        `type=${contentType.type} is not supported; only application/dicom`,
      );
    }
    boundary = contentType.boundary;
  } catch (error) {
    if (!(error instanceof MultipartError)) {
      throw error;
    }
    refuseRequest(req, res, error.status, error.message);
    return;
  }
  if (quota !== undefined && person !== undefined) {
    // 429, not 413: no body of any size would be taken now, and the same request will be later.
    const { reached, retryAfterSeconds } = await quota.reached(person);
    if (reached) {
      options.logger.warn({ userId: person }, 'STOW-RS refused: the daily limit of the person is reached');
      if (retryAfterSeconds !== undefined) {
        res.setHeader('Retry-After', String(retryAfterSeconds));
      }
      refuseWithOutcome(req, res, 429, 'throttled', quotaText(quota.dailyBytes));
      return;
    }
  }

  const results: PartResult[] = [];
  const ingests = new Set<Promise<void>>();
  let heldBytes = 0;
  const ingestPart = async (index: number, staged: StagedBlob): Promise<void> => {
    try {
      let reservation: QuotaReservation | undefined;
      if (quota !== undefined && person !== undefined) {
        reservation = await quota.reserve(person, staged.size);
        // An instance the hub holds already, byte for byte, takes no room: it is stored (as a
        // duplicate) even when its size is more than the room left.
        if (reservation === undefined && !(await storedAlready(options, staged))) {
          results.push({
            index,
            stored: false,
            failureReason: FailureReason.outOfResources,
            why: 'the daily limit of the person would be exceeded',
            overQuotaOf: person,
            ...(await readMetaUids(staged)),
          });
          return;
        }
      }
      let result: PartResult | undefined;
      try {
        result = await ingestStaged(options, index, staged, {
          studyInstanceUid: study,
          admitStudy: claims?.admit,
          intoCase,
        });
      } finally {
        if (reservation !== undefined && !(result?.stored === true && result.added)) {
          await quota?.release(reservation).catch((error: unknown) => {
            // The reservation stays counted: the person loses that room for a day, never gains any.
            options.logger.error(
              { err: error instanceof Error ? error.message : String(error) },
              'STOW-RS quota reservation could not be released',
            );
          });
        }
      }
      results.push(result);
    } catch (error) {
      options.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'STOW-RS spooled part could not be read',
      );
      results.push({
        index,
        stored: false,
        failureReason: FailureReason.outOfResources,
        why: 'the spooled part could not be read',
      });
    } finally {
      await staged.discard();
    }
  };

  const onPart = async (part: ReceivedPart): Promise<void> => {
    if (part.contentType !== undefined && !isDicomPart(part.contentType)) {
      part.body.resume();
      results.push({
        index: part.index,
        stored: false,
        failureReason: FailureReason.cannotUnderstand,
        why: 'part is not application/dicom',
      });
      return;
    }
    // Wait before reading the part, so that at most INGEST_CONCURRENCY parts and about INGEST_BYTES are held at once.
    while (ingests.size >= INGEST_CONCURRENCY || heldBytes >= INGEST_BYTES) {
      await Promise.race(ingests);
    }
    const writer = options.ingest.blobs.createWriter();
    let staged: StagedBlob;
    try {
      for await (const chunk of part.body) {
        await writer.write(chunk as Buffer);
      }
      staged = await writer.stage();
    } catch (error) {
      await writer.abort();
      results.push(partFailure(part.index, error));
      return;
    }
    const held = staged.bytes?.length ?? 0;
    heldBytes += held;
    const ingest = ingestPart(part.index, staged).finally(() => {
      heldBytes -= held;
      ingests.delete(ingest);
    });
    ingests.add(ingest);
  };

  let framingError: MultipartError | undefined;
  let partCount = 0;
  try {
    const read = await readMultipart(req, { boundary }, onPart);
    partCount = read.partCount;
    const answered = new Set(results.map((result) => result.index));
    for (const failure of read.failures) {
      if (!answered.has(failure.index)) {
        results.push(partFailure(failure.index, failure.error));
      }
    }
  } catch (error) {
    if (error instanceof MultipartError) {
      framingError = error;
    } else if (!req.complete) {
      // The client went away mid-upload: finish what was received, answer nobody.
      await Promise.all(ingests);
      await claims?.release();
      options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'STOW-RS upload aborted');
      return;
    } else {
      await Promise.all(ingests);
      await claims?.release();
      throw error;
    }
  }
  await Promise.all(ingests);
  await claims?.release();
  results.sort((a, b) => a.index - b.index);
  logFailures(options, results);

  const stored = results.filter((result) => result.stored).length;
  if (framingError !== undefined || partCount === 0) {
    const message = framingError?.message ?? 'the multipart body has no parts';
    if (stored === 0) {
      refuseRequest(req, res, framingError?.status ?? 400, message);
      return;
    }
    // Instances before the framing error are committed; say so, with the request's error status.
    res.setHeader('Warning', `299 - "${message.replace(/["\\]/g, '')}"`);
    if (!(await auditedStore(req, res, options, framingError?.status ?? 400, results))) {
      return;
    }
    sendStoreResponse(req, res, framingError?.status ?? 400, options.baseUrl, study, results);
    return;
  }
  const failures = results.filter((result) => !result.stored);
  let status = 200;
  if (failures.length > 0) {
    if (stored > 0) {
      status = 202;
    } else if (quota !== undefined && person !== undefined && failures.every((failure) => failure.overQuotaOf)) {
      // Nothing stored for the person's quota alone: not the hub's trouble (503), theirs until bytes leave the day.
      status = 429;
      const { retryAfterSeconds } = await quota.reached(person);
      if (retryAfterSeconds !== undefined) {
        res.setHeader('Retry-After', String(retryAfterSeconds));
      }
    } else {
      status = failures.every((failure) => failure.failureReason === FailureReason.outOfResources) ? 503 : 409;
    }
  }
  if (!(await auditedStore(req, res, options, status, results))) {
    return;
  }
  sendStoreResponse(req, res, status, options.baseUrl, study, results);
}

/**
 * The request's one DICOM Instances Transferred event, naming the studies stored with the ids their
 * stores found (the last part of each study's); before the answer.
 */
async function auditedStore(
  req: Request,
  res: Response,
  options: DicomwebOptions,
  status: number,
  results: readonly PartResult[],
): Promise<boolean> {
  if (!options.auditor?.enabled) {
    return true;
  }
  const byStudy = new Map<string, AuditedStudy>();
  for (const result of results) {
    if (result.stored) {
      byStudy.set(result.studyInstanceUid, {
        studyInstanceUid: result.studyInstanceUid,
        imagingStudyId: result.imagingStudyId,
        patientId: result.patientId,
      });
    }
  }
  const studies = [...byStudy.values()];
  const outcome = status === 202 ? '4' : outcomeForStatus(status);
  const outcomeDesc = outcome === '0' ? undefined : 'some or all instances were not stored';
  return audited(options.auditor, req, res, { service: 'stow-rs', outcome, outcomeDesc, studies }, options.logger);
}

function isDicomPart(contentType: string): boolean {
  try {
    return parseMediaType(contentType).essence === DICOM;
  } catch {
    return false;
  }
}

function partFailure(index: number, error: unknown): PartResult {
  if (error instanceof MultipartError && error.code === 'part-too-large') {
    return { index, stored: false, failureReason: FailureReason.outOfResources, why: error.message };
  }
  if (error instanceof MultipartError) {
    return { index, stored: false, failureReason: FailureReason.cannotUnderstand, why: error.message };
  }
  return { index, stored: false, failureReason: FailureReason.outOfResources, why: 'the part could not be spooled' };
}

/** Ingests one staged part; storage errors become out-of-resources failures of this part alone. */
async function ingestStaged(
  options: DicomwebOptions,
  index: number,
  staged: StagedBlob,
  ingestOptions: IngestOptions,
): Promise<PartResult> {
  const meta = await readMetaUids(staged);
  let outcome: IngestOutcome;
  try {
    outcome = await ingestInstance(options.ingest, staged, ingestOptions);
  } catch (error) {
    options.logger.error(
      { err: error instanceof Error ? error.message : String(error) },
      'STOW-RS instance could not be stored',
    );
    return {
      index,
      stored: false,
      failureReason: FailureReason.outOfResources,
      why: 'the instance could not be stored',
      ...meta,
    };
  }
  switch (outcome.status) {
    case 'stored':
    case 'duplicate':
      // Ingest refuses an instance whose meta SOP Class UID differs from its dataset's, so the meta one is the instance's.
      return {
        index,
        stored: true,
        sopClassUid: meta.sopClassUid,
        sopInstanceUid: outcome.sopInstanceUid,
        studyInstanceUid: outcome.studyInstanceUid,
        seriesInstanceUid: outcome.seriesInstanceUid,
        added: outcome.status === 'stored',
        imagingStudyId: outcome.imagingStudyId,
        patientId: outcome.patientId,
      };
    case 'conflict':
      return { index, stored: false, failureReason: FailureReason.duplicateSopInstance, why: outcome.reason, ...meta };
    case 'refused':
      return { index, stored: false, failureReason: FailureReason.cannotUnderstand, why: outcome.reason, ...meta };
    case 'not-admitted':
      return {
        index,
        stored: false,
        failureReason: FailureReason.notAuthorized,
        why: outcome.reason,
        studyInstanceUid: outcome.studyInstanceUid,
        sopClassUid: outcome.sopClassUid ?? meta.sopClassUid,
        sopInstanceUid: outcome.sopInstanceUid ?? meta.sopInstanceUid,
      };
    case 'wrong-study':
      return {
        index,
        stored: false,
        failureReason: FailureReason.studyMismatch,
        why: outcome.reason,
        sopClassUid: outcome.sopClassUid ?? meta.sopClassUid,
        sopInstanceUid: outcome.sopInstanceUid ?? meta.sopInstanceUid,
      };
  }
}

/** Whether an instance with this part's SOP Instance UID (from its File Meta Information) and bytes is stored. */
async function storedAlready(options: DicomwebOptions, staged: StagedBlob): Promise<boolean> {
  const { sopInstanceUid } = await readMetaUids(staged);
  if (sopInstanceUid === undefined) {
    return false;
  }
  const found = await options.ingest.db.query(
    'SELECT 1 FROM dicom_instance WHERE sop_instance_uid = $1 AND sha256 = $2',
    [sopInstanceUid, staged.key],
  );
  return found.rows.length > 0;
}

/** Bytes read for the File Meta Information: the preamble, "DICM" and a generous group 0002. */
const META_WINDOW = 132 + 64 * 1024;

/**
 * The SOP Class and Instance UIDs of the File Meta Information (PS3.10 §7.1, always Explicit VR
 * Little Endian), best effort: whatever can be read before the first problem.
 */
async function readMetaUids(staged: StagedBlob): Promise<SopReference> {
  let head: Buffer;
  if (staged.bytes !== undefined) {
    head = staged.bytes.subarray(0, META_WINDOW);
  } else if (staged.file === undefined) {
    // A staged blob is in memory or in a spill file; with neither there is nothing to read.
    return {};
  } else {
    const handle = await open(staged.file, 'r');
    try {
      const buffer = Buffer.alloc(META_WINDOW);
      const { bytesRead } = await handle.read(buffer, 0, META_WINDOW, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }
  const uids: SopReference = {};
  if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') {
    return uids;
  }
  let pos = 132;
  while (pos + 8 <= head.length && head.readUInt16LE(pos) === 0x0002) {
    const element = head.readUInt16LE(pos + 2);
    const vr = head.toString('latin1', pos + 4, pos + 6);
    const long = LONG_LENGTH_VRS.has(vr);
    if (long && pos + 12 > head.length) {
      break;
    }
    const length = long ? head.readUInt32LE(pos + 8) : head.readUInt16LE(pos + 6);
    const start = pos + (long ? 12 : 8);
    if (start + length > head.length) {
      break;
    }
    if (vr === 'UI' && (element === 0x0002 || element === 0x0003)) {
      const uid = head.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
      if (isValidUid(uid)) {
        if (element === 0x0002) {
          uids.sopClassUid = uid;
        } else {
          uids.sopInstanceUid = uid;
        }
      }
    }
    pos = start + length;
  }
  return uids;
}

function logFailures(options: DicomwebOptions, results: readonly PartResult[]): void {
  for (const result of results) {
    // The reasons name tags and offsets, never values; a refusal by a case names the UIDs.
    if (!result.stored) {
      const uids =
        result.studyInstanceUid === undefined
          ? {}
          : { studyInstanceUid: result.studyInstanceUid, sopInstanceUid: result.sopInstanceUid };
      const person =
        result.overQuotaOf === undefined ? {} : { userId: result.overQuotaOf, sopInstanceUid: result.sopInstanceUid };
      options.logger.warn(
        { part: result.index, failureReason: result.failureReason, reason: result.why, ...uids, ...person },
        'STOW-RS instance refused',
      );
    }
  }
}

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

function uidElement(uid: string | undefined): { vr: string; Value?: unknown[] } {
  return uid === undefined ? { vr: 'UI' } : { vr: 'UI', Value: [uid] };
}

/** PS3.18 §10.5.3 Store Instances Response Module as DICOM JSON (PS3.18 Annex F). */
function storeResponse(baseUrl: string, study: string | undefined, results: readonly PartResult[]): DicomJson {
  const studiesUrl = `${baseUrl}/dicomweb/studies`;
  const referenced: DicomJson[] = [];
  const failed: DicomJson[] = [];
  const studies = new Set<string>();
  for (const result of results) {
    if (result.stored) {
      studies.add(result.studyInstanceUid);
      referenced.push({
        '00081150': uidElement(result.sopClassUid),
        '00081155': uidElement(result.sopInstanceUid),
        '00081190': {
          vr: 'UR',
          Value: [
            `${studiesUrl}/${result.studyInstanceUid}/series/${result.seriesInstanceUid}/instances/${result.sopInstanceUid}`,
          ],
        },
      });
    } else {
      failed.push({
        '00081150': uidElement(result.sopClassUid),
        '00081155': uidElement(result.sopInstanceUid),
        '00081197': { vr: 'US', Value: [result.failureReason] },
      });
    }
  }
  // RetrieveURL is Type 2: the study's URL when the request had one study, empty otherwise.
  const studyUid = study ?? (studies.size === 1 ? [...studies][0] : undefined);
  const response: DicomJson = {
    '00081190': studyUid === undefined ? { vr: 'UR' } : { vr: 'UR', Value: [`${studiesUrl}/${studyUid}`] },
  };
  if (failed.length > 0) {
    response['00081198'] = { vr: 'SQ', Value: failed };
  }
  if (referenced.length > 0) {
    response['00081199'] = { vr: 'SQ', Value: referenced };
  }
  return response;
}

function sendStoreResponse(
  req: Request,
  res: Response,
  status: number,
  baseUrl: string,
  study: string | undefined,
  results: readonly PartResult[],
): void {
  closeIfUnread(req, res);
  res
    .status(status)
    .type('application/dicom+json')
    .send(JSON.stringify(storeResponse(baseUrl, study, results)));
}

/** The OperationOutcome's words for a person at their daily quota: the limit, nothing about what they stored. */
function quotaText(dailyBytes: number): string {
  return `The daily limit of DICOM a person may store through STOW-RS (${dailyBytes} bytes in any 24 hours) is reached`;
}

/** Answers a request refused before its body was read with an OperationOutcome (the case it names, the quota). */
function refuseWithOutcome(req: Request, res: Response, status: number, code: string, text: string): void {
  closeIfUnread(req, res);
  res
    .status(status)
    .type('application/fhir+json')
    .send(
      JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] }),
    );
}

/** Answers a request refused as a whole, before or while its body was read. */
function refuseRequest(req: Request, res: Response, status: number, message: string): void {
  closeIfUnread(req, res);
  res.status(status).type('text/plain').send(`${message}\n`);
}

/**
 * A body not read to its end (refused early, or a framing error mid-upload) could be gigabytes:
 * the connection closes after the answer instead of reading it all to keep the connection alive.
 * What is already on its way is discarded so the client can read the answer before the close.
 */
function closeIfUnread(req: Request, res: Response): void {
  if (req.complete) {
    return;
  }
  res.setHeader('Connection', 'close');
  req.resume();
}
