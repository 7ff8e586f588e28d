/**
 * WADO-RS (PS3.18 §10.4): study, series and instance retrieval as multipart/related
 * application/dicom, streaming the stored Part 10 files byte for byte, and their `metadata`
 * as application/dicom+json from the index.
 *
 * Decisions:
 * - The hub never transcodes: each instance goes out in the transfer syntax it was stored in.
 *   `transfer-syntax=*`, or none, accepts that; an Accept that names only other syntaxes is
 *   answered 406 (PS3.18 §8.7.3.5.2) rather than with bytes the client did not ask for.
 * - Metadata is the DICOM JSON stored at ingest, with its relative BulkDataURIs
 *   (`bulkdata/<tag>`) made absolute under the instance's URL. The JSON text is rewritten, not
 *   re-parsed: a serialised JSON string value cannot contain the unescaped `"BulkDataURI":"`.
 * - Unknown study, series or instance: 404; so is a study the person's access policy hides (access.ts).
 * - Bulk data (PS3.18 §10.4.1.1.5) is bulkdata.ts.
 */
import express from 'express';
import type { Request, Response, Router } from 'express';
import { writeMultipartRelated } from '../../dicom/multipart.ts';
import type { OutgoingPart } from '../../dicom/multipart.ts';
import { parseMediaType } from '../../dicom/multipart.ts';
import type { DicomwebOptions } from './index.ts';
import { audited, auditedStudyOf, studyAccessOf } from './access.ts';
import { findInstanceRows } from './pixel-source.ts';
import type { InstanceRow } from './pixel-source.ts';

interface Scope {
  study: string;
  series?: string;
  instance?: string;
}

type StoredInstanceRow = InstanceRow;

/**
 * The transfer syntaxes an Accept header allows for multipart/related application/dicom:
 * '*' for any (including no transfer-syntax parameter), a set of UIDs, or null when the header
 * accepts no application/dicom parts at all.
 */
export function acceptedTransferSyntaxes(accept: string | undefined): '*' | Set<string> | null {
  if (accept === undefined || accept.trim() === '') {
    return '*';
  }
  const syntaxes = new Set<string>();
  for (const range of splitAcceptHeader(accept)) {
    let media;
    try {
      media = parseMediaType(range);
    } catch {
      continue;
    }
    const type = media.essence;
    if (type === '*/*' || type === 'multipart/*') {
      return '*';
    }
    if (type !== 'multipart/related') {
      continue;
    }
    const partType = media.parameters.get('type')?.toLowerCase();
    if (
      partType !== undefined &&
      partType !== 'application/dicom' &&
      partType !== '*/*' &&
      partType !== 'application/*'
    ) {
      continue;
    }
    const syntax = media.parameters.get('transfer-syntax');
    if (syntax === undefined || syntax === '*') {
      return '*';
    }
    syntaxes.add(syntax);
  }
  return syntaxes.size > 0 ? syntaxes : null;
}

/**
 * The media types a WADO-RS request accepts: PS3.18's `accept` query parameter when it is given (it
 * takes priority over the Accept header, for a client that cannot set headers, such as a link),
 * otherwise the Accept header.
 */
export function requestAccept(req: Pick<Request, 'query' | 'headers'>): string | undefined {
  const parameter = req.query.accept;
  const values = (Array.isArray(parameter) ? parameter : [parameter]).filter(
    (value): value is string => typeof value === 'string' && value.trim() !== '',
  );
  return values.length > 0 ? values.join(', ') : req.headers.accept;
}

/** Splits an Accept header on the commas that separate media ranges (not those inside quotes). */
export function splitAcceptHeader(accept: string): string[] {
  const ranges: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of accept) {
    if (char === '"') {
      quoted = !quoted;
    }
    if (char === ',' && !quoted) {
      ranges.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  ranges.push(current);
  return ranges.map((range) => range.trim()).filter((range) => range !== '');
}

function acceptsDicomJson(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '') {
    return true;
  }
  return splitAcceptHeader(accept).some((range) => {
    const [mediaType = ''] = range.split(';');
    const type = mediaType.trim().toLowerCase();
    return ['application/dicom+json', 'application/json', 'application/*', '*/*'].includes(type);
  });
}

function notAcceptable(res: Response, message: string): void {
  res
    .status(406)
    .type('application/json')
    .send(JSON.stringify({ error: message }));
}

function notFound(res: Response, scope: Scope): void {
  const level = scope.instance !== undefined ? 'instance' : scope.series !== undefined ? 'series' : 'study';
  res
    .status(404)
    .type('application/json')
    .send(JSON.stringify({ error: `no such ${level}` }));
}

function scopeOf(req: Request): Scope {
  const { study, series, instance } = req.params as Record<string, string | undefined>;
  if (study === undefined) {
    // Every route of this router has a :study segment.
    throw new Error('a WADO-RS route without a study');
  }
  return { study, series, instance };
}

export function createWadoRoutes(options: DicomwebOptions): Router {
  const routes = express.Router();
  const db = options.ingest.db;
  const blobs = options.ingest.blobs;
  const instanceUrl = (row: StoredInstanceRow): string =>
    `${options.baseUrl}/dicomweb/studies/${row.study_instance_uid}/series/${row.series_instance_uid}/instances/${row.sop_instance_uid}`;

  const findInstances = (res: Response, scope: Scope): Promise<StoredInstanceRow[]> =>
    findInstanceRows(db, scope, studyAccessOf(res, 'read'));
  const auditedRetrieval = (req: Request, res: Response, row: StoredInstanceRow): Promise<boolean> =>
    audited(
      options.auditor,
      req,
      res,
      { service: 'wado-rs', outcome: '0', studies: [auditedStudyOf(row)] },
      options.logger,
    );

  const retrieve = async (req: Request, res: Response) => {
    res.locals.route = 'wado-retrieve';
    const scope = scopeOf(req);
    const accepted = acceptedTransferSyntaxes(requestAccept(req));
    if (accepted === null) {
      notAcceptable(res, 'retrieval is offered as multipart/related; type="application/dicom"');
      return;
    }
    const rows = await findInstances(res, scope);
    const [first] = rows;
    if (first === undefined) {
      notFound(res, scope);
      return;
    }
    if (accepted !== '*' && rows.some((row) => !accepted.has(row.transfer_syntax_uid))) {
      notAcceptable(
        res,
        'an instance is stored in a transfer syntax the Accept header does not allow, and the hub does not transcode',
      );
      return;
    }
    if (!(await auditedRetrieval(req, res, first))) {
      return;
    }
    // Files are opened one at a time as the multipart writer reaches them, not all up front.
    async function* parts(): AsyncGenerator<OutgoingPart> {
      for (const row of rows) {
        yield {
          body: blobs.open(row.blob_key),
          contentType: `application/dicom; transfer-syntax=${row.transfer_syntax_uid}`,
          contentLength: Number(row.size),
          contentLocation: instanceUrl(row),
        };
      }
    }
    const multipart = writeMultipartRelated(parts(), { type: 'application/dicom' });
    res.status(200).setHeader('Content-Type', multipart.contentType);
    multipart.body.on('error', (error) => {
      options.logger.error(
        { requestId: res.locals.requestId, error: error.message },
        'WADO-RS retrieval failed mid-stream',
      );
      res.destroy(error);
    });
    multipart.body.pipe(res);
  };

  const metadata = async (req: Request, res: Response) => {
    res.locals.route = 'wado-metadata';
    const scope = scopeOf(req);
    if (!acceptsDicomJson(requestAccept(req))) {
      notAcceptable(res, 'metadata is offered as application/dicom+json');
      return;
    }
    const rows = await findInstanceRows(db, scope, studyAccessOf(res, 'read'), true);
    const [first] = rows;
    if (first === undefined) {
      notFound(res, scope);
      return;
    }
    if (!(await auditedRetrieval(req, res, first))) {
      return;
    }
    const datasets = rows.map((row) =>
      row.dicom_json.replaceAll(
        '"BulkDataURI":"bulkdata/',
        `"BulkDataURI":${JSON.stringify(`${instanceUrl(row)}/bulkdata/`).slice(0, -1)}`,
      ),
    );
    res
      .status(200)
      .type('application/dicom+json')
      .send(`[${datasets.join(',')}]`);
  };

  routes.get('/studies/:study', retrieve);
  routes.get('/studies/:study/series/:series', retrieve);
  routes.get('/studies/:study/series/:series/instances/:instance', retrieve);
  routes.get('/studies/:study/metadata', metadata);
  routes.get('/studies/:study/series/:series/metadata', metadata);
  routes.get('/studies/:study/series/:series/instances/:instance/metadata', metadata);
  return routes;
}
