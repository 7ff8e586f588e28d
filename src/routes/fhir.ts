/**
 * The FHIR REST API over HTTP: content negotiation, the FHIR headers (ETag, Last-Modified,
 * Location, Prefer, conditional reads), raw Binary streaming, and the hand-off to the router.
 */
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import {
  OperationOutcomeError,
  badRequest,
  gone,
  normalizeOperationOutcome,
  notFound,
  isResourceType,
} from '@medplum/core';
import type { FhirRequest, FhirRouter, HttpMethod } from '@medplum/fhir-router';
import type { Bundle, CapabilityStatement, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { Logger } from 'pino';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { HubRepository } from '../fhir/repository.ts';
import { InlineBinaryBudget } from '../fhir/binary-budget.ts';
import { searchPostParameters } from '../fhir/router.ts';
import type { RepositoryContext } from '../fhir/repository.ts';
import {
  methodNotAllowed,
  notAcceptable,
  outcomeStatus,
  payloadTooLarge,
  unsupportedMediaType,
} from '../fhir/outcomes.ts';
import { BlobTooLargeError } from '../storage/blob-store.ts';
import { accessControlFor } from '../auth/access-policy.ts';
import { authActor } from '../auth/actor.ts';
import { requestIdentity } from '../auth/authenticate.ts';
import type { Auditor, RestAccess } from '../audit/auditor.ts';
import { createSubscriptionRoutes } from './subscriptions.ts';
import { Base64Encoder } from '../storage/base64-stream.ts';
import type { SubscriptionRoutesOptions } from './subscriptions.ts';

export const FHIR_JSON = 'application/fhir+json';
const JSON_TYPES = ['application/fhir+json', 'application/json', 'application/json-patch+json'];
const METHODS: HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

export interface FhirRoutesOptions {
  router: FhirRouter;
  repository: Omit<RepositoryContext, 'strictSearch'>;
  capabilityStatement: CapabilityStatement;
  maxBodyBytes: number;
  /** Called after every successful write (the outbox relay's kick). */
  onWrite?: () => void;
  /** Audits every access (audit/auditor.ts); writes are audited in their own statement. */
  auditor?: Auditor;
  /** `/Subscription` (routes/subscriptions.ts); without it, Subscription is an ordinary type of the store. */
  subscriptions?: Pick<SubscriptionRoutesOptions, 'db' | 'clock' | 'endpoints'>;
  /** Where failures that no response can report are logged (a Binary's content that cannot be read). */
  logger?: Pick<Logger, 'error'>;
}

function sendOutcome(res: Response, outcome: OperationOutcome, status = outcomeStatus(outcome)): void {
  let body = outcome;
  if (status >= 500) {
    // Internal details (SQL, stack, values) stay in the log under the request id, not in the reply.
    const requestId = String(res.locals.requestId ?? '');
    res.locals.errorOutcome = outcome;
    body = {
      resourceType: 'OperationOutcome',
      issue: [
        { severity: 'error', code: 'exception', details: { text: `Internal server error (request ${requestId})` } },
      ],
    };
  }
  res.status(status).type(FHIR_JSON).send(JSON.stringify(body));
}

/**
 * Answers a request whose body is refused before it was read to the end, and closes the connection
 * (RFC 9110 §15.5.14): reading on would cost the whole upload, and a client still sending a chunked
 * body cannot reuse the connection anyway.
 */
function refuseBody(req: Request, res: Response, outcome: OperationOutcome): void {
  res.setHeader('Connection', 'close');
  sendOutcome(res, outcome);
  req.resume();
}

/**
 * R4 Binary ("Serving Binary Resources using the RESTful API"): a read gets the resource only when
 * it names a FHIR format; any other Accept (a media type, a browser's list, *\/*, none) gets the content.
 */
function wantsBinaryResource(req: Request): boolean {
  const format = typeof req.query._format === 'string' ? req.query._format : undefined;
  if (format) {
    return /json/.test(format);
  }
  return /application\/(fhir\+)?json/.test(req.headers.accept ?? '');
}

const BINARY_READ_PATH = /^\/Binary\/[^/]+(\/_history\/[^/]+)?$/;

function refuseXml(req: Request): OperationOutcome | undefined {
  const format = typeof req.query._format === 'string' ? req.query._format : '';
  const accept = req.headers.accept ?? '';
  // XML content of a Binary (a CDA document) is not FHIR XML: only application/fhir+xml is refused there.
  const xml = req.method === 'GET' && BINARY_READ_PATH.test(req.path) ? /fhir\+xml/ : /xml/;
  if (/xml/.test(format) || (xml.test(accept) && !/json|\*\/\*/.test(accept))) {
    return notAcceptable('This server speaks FHIR JSON only (application/fhir+json)');
  }
  return undefined;
}

function preferences(req: Request): { returnPref?: string; strict: boolean } {
  const prefer = [req.headers.prefer ?? ''].flat().join(',');
  const returnPref = /return=(minimal|representation|OperationOutcome)/i.exec(prefer)?.[1];
  return { returnPref, strict: /handling=strict/i.test(prefer) };
}

function paramString(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

function setResourceHeaders(res: Response, resource: Resource, fhirBase: string, status: number): void {
  const versionId = resource.meta?.versionId;
  if (versionId) {
    res.setHeader('ETag', `W/"${versionId}"`);
  }
  if (resource.meta?.lastUpdated) {
    res.setHeader('Last-Modified', new Date(resource.meta.lastUpdated).toUTCString());
  }
  if (status === 201 && resource.id && resource.resourceType !== 'Bundle') {
    res.setHeader('Location', `${fhirBase}/${resource.resourceType}/${resource.id}/_history/${versionId}`);
  }
}

/**
 * R4 http, "Batch/Transaction" response: each entry carries the versioned location, ETag and
 * Last-Modified of the resource it wrote or read, and the status its outcome stands for (405, 413,
 * 415, 422 travel in the outcome's id, outcomes.ts), as the headers of a single request would.
 */
function completeEntryResponses(bundle: Bundle): void {
  for (const entry of bundle.entry ?? []) {
    if (entry.response?.outcome?.resourceType === 'OperationOutcome') {
      entry.response.status = String(outcomeStatus(entry.response.outcome));
    }
    const resource = entry.resource;
    const versionId = resource?.meta?.versionId;
    if (!entry.response || !resource?.id || !versionId) {
      continue;
    }
    entry.response.etag = `W/"${versionId}"`;
    entry.response.lastModified = resource.meta?.lastUpdated;
    if (entry.response.location) {
      entry.response.location = `${resource.resourceType}/${resource.id}/_history/${versionId}`;
    }
  }
}

/** If-None-Match / If-Modified-Since on a read: true when 304 Not Modified applies. */
function notModified(req: Request, resource: Resource): boolean {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch && resource.meta?.versionId) {
    const tags = ifNoneMatch.split(',').map((tag) => tag.trim().replace(/^W\//, '').replaceAll('"', ''));
    return tags.includes(resource.meta.versionId) || tags.includes('*');
  }
  const ifModifiedSince = req.headers['if-modified-since'];
  if (ifModifiedSince && resource.meta?.lastUpdated) {
    const since = Date.parse(ifModifiedSince);
    const modified = Math.floor(Date.parse(resource.meta.lastUpdated) / 1000) * 1000;
    return !Number.isNaN(since) && modified <= since;
  }
  return false;
}

function sendJson(req: Request, res: Response, status: number, body: unknown): void {
  const pretty = req.query._pretty === 'true';
  const accept = req.headers.accept ?? '';
  const type = /application\/json/.test(accept) && !/fhir\+json/.test(accept) ? 'application/json' : FHIR_JSON;
  res
    .status(status)
    .type(type)
    .send(JSON.stringify(body, undefined, pretty ? 2 : undefined));
}

export function createFhirRoutes(options: FhirRoutesOptions): Router {
  const routes = express.Router();
  const fhirBase = `${options.repository.baseUrl}/fhir`;
  const repoFor = (req: Request, res: Response): HubRepository => {
    const identity = requestIdentity(res);
    return new HubRepository({
      ...options.repository,
      strictSearch: preferences(req).strict,
      access: accessControlFor(identity),
      actor: authActor(identity),
      audit: options.auditor?.writeContext(req, res),
      identity,
      // One budget per request, shared by a batch's entries (binary-budget.ts).
      inlineBinaryBudget: new InlineBinaryBudget(),
    });
  };

  /**
   * Audits a read, search, history, batch or operation, or a refused request, before the response
   * goes out: a response is only sent once its AuditEvent is durable (audit/audit-log.ts). Successful
   * writes were audited by their own statement (unless `writesToo`: a write that bypasses the
   * repository); reads of AuditEvents themselves are not audited.
   * False when the audit failed and a 500 was sent instead.
   */
  const audited = async (req: Request, res: Response, access: RestAccess, writesToo = false): Promise<boolean> => {
    const auditor = options.auditor;
    const writeDone =
      !writesToo && access.status < 400 && ['create', 'update', 'patch', 'delete'].includes(access.interaction);
    if (!auditor?.enabled || writeDone || access.target?.resourceType === 'AuditEvent') {
      return true;
    }
    try {
      await auditor.rest(req, res, access);
      return true;
    } catch (err) {
      sendOutcome(res, normalizeOperationOutcome(err), 500);
      return false;
    }
  };

  routes.use((req, res, next) => {
    const refusal = refuseXml(req);
    if (refusal) {
      sendOutcome(res, refusal);
      return;
    }
    const type = req.path.split('/')[1];
    if (type === 'metadata' && req.method !== 'GET') {
      res.setHeader('Allow', 'GET');
      sendOutcome(res, methodNotAllowed(`${req.method} is not allowed on /metadata`));
      return;
    }
    if (
      type === 'AuditEvent' &&
      req.method !== 'GET' &&
      !(req.method === 'POST' && req.path === '/AuditEvent/_search')
    ) {
      // The audit trail is append-only and written by the hub alone; the attempt itself is audited.
      res.setHeader('Allow', 'GET');
      const interaction =
        { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[req.method] ?? 'operation';
      void options.auditor
        ?.rest(req, res, {
          interaction,
          status: 405,
          target: { resourceType: 'AuditEvent', id: req.path.split('/')[2] },
        })
        .catch(() => undefined);
      sendOutcome(
        res,
        methodNotAllowed('AuditEvents are recorded by the hub and cannot be created, changed or deleted'),
      );
      return;
    }
    if (type && !/^[$_]/.test(type) && type !== 'metadata' && !isResourceType(type)) {
      res.locals.route = 'fhir/unknown';
      sendOutcome(res, {
        ...notFound,
        issue: [{ severity: 'error', code: 'not-found', details: { text: `Unknown resource type "${type}"` } }],
      });
      return;
    }
    next();
  });

  routes.get('/metadata', (req, res) => {
    res.locals.route = 'fhir/metadata';
    sendJson(req, res, 200, options.capabilityStatement);
  });

  // Raw Binary content: any media type that is not FHIR JSON is the content itself (R4 Binary).
  const isRawBody = (req: Request): boolean => {
    const type = req.headers['content-type'];
    return type !== undefined && !JSON_TYPES.some((json) => type.startsWith(json));
  };
  const rawBinaryWrite = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (!isRawBody(req)) {
      next();
      return;
    }
    res.locals.route = 'fhir/Binary/raw';
    const repo = repoFor(req, res);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > options.repository.binaryMaxBytes) {
      refuseBody(req, res, payloadTooLarge(`Content exceeds the limit of ${options.repository.binaryMaxBytes} bytes`));
      return;
    }
    const id = req.params.id ? paramString(req.params.id) : undefined;
    try {
      await repo.checkBinaryWrite(id);
    } catch (err) {
      refuseBody(req, res, normalizeOperationOutcome(err));
      return;
    }
    try {
      const blob = await options.repository.blobs.put(req, options.repository.binaryMaxBytes);
      const securityContext = req.headers['x-security-context'];
      const [mediaType = ''] = (req.headers['content-type'] ?? '').split(';');
      const binary = await repo.writeBinary(
        id,
        mediaType.trim() || 'application/octet-stream',
        blob,
        typeof securityContext === 'string' ? { securityContext: { reference: securityContext } } : undefined,
      );
      const status = binary.meta?.versionId === '1' ? 201 : 200;
      setResourceHeaders(res, binary, fhirBase, status);
      options.onWrite?.();
      respondWithResource(req, res, status, binary);
    } catch (err) {
      if (err instanceof BlobTooLargeError) {
        refuseBody(req, res, payloadTooLarge(err.message));
        return;
      }
      sendOutcome(res, normalizeOperationOutcome(err));
    }
  };
  routes.post('/Binary', rawBinaryWrite);
  routes.put('/Binary/:id', rawBinaryWrite);

  /**
   * A Binary's read, raw or as FHIR JSON, streamed from the blob store: four parallel reads of a
   * 500 MB Binary hold a few chunks each, not the content (issue 11). A JSON read with _elements or
   * _summary goes to the router, which puts the content inline only up to
   * BINARY_JSON_INLINE_MAX_BYTES (repository.ts).
   */
  const binaryRead = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const asResource = wantsBinaryResource(req);
    // `/Binary/_history` is the type's history, for the router.
    const typeLevel = paramString(req.params.id).startsWith('_');
    if (typeLevel || (asResource && (req.query._elements !== undefined || req.query._summary !== undefined))) {
      next();
      return;
    }
    res.locals.route = asResource ? 'fhir/Binary/json' : 'fhir/Binary/raw';
    const repo = repoFor(req, res);
    try {
      const id = paramString(req.params.id);
      const vid = req.params.vid ? paramString(req.params.vid) : undefined;
      const resource = await repo.readBinaryResource(id, vid);
      const target = { resourceType: 'Binary', id, version: vid };
      if (!(await audited(req, res, { interaction: vid ? 'vread' : 'read', status: 200, target, resource }))) {
        return;
      }
      if (notModified(req, resource)) {
        res.status(304).end();
        return;
      }
      const blob = await repo.binaryContent(id, Number(resource.meta?.versionId));
      if (!blob) {
        sendOutcome(res, gone);
        return;
      }
      setResourceHeaders(res, resource, fhirBase, 200);
      const source = options.repository.blobs.open(blob.key);
      const failed = blobReadFailure(res, { logger: options.logger, binary: id, version: resource.meta?.versionId });
      // A reader that goes away stops the reading of the file.
      res.on('close', () => source.destroy());
      source.on('error', failed);
      if (!asResource) {
        res.status(200).type(resource.contentType);
        res.setHeader('Content-Length', String(blob.size));
        source.pipe(res);
        return;
      }
      // The resource's JSON with `data` last, its base64 written as the blob is read.
      const accept = req.headers.accept ?? '';
      res
        .status(200)
        .type(/application\/json/.test(accept) && !/fhir\+json/.test(accept) ? 'application/json' : FHIR_JSON);
      const head = `${JSON.stringify(resource).slice(0, -1)},"data":"`;
      const tail = '"}';
      res.setHeader('Content-Length', String(Buffer.byteLength(head) + Math.ceil(blob.size / 3) * 4 + tail.length));
      const encoder = new Base64Encoder();
      encoder.on('error', failed);
      // The head goes out with the first bytes read, so a blob that cannot be opened still gets a 500.
      source.pipe(encoder).pipe(new Framed(head, tail)).pipe(res);
    } catch (err) {
      const outcome = normalizeOperationOutcome(err);
      const access = {
        interaction: 'read',
        status: outcomeStatus(outcome),
        target: { resourceType: 'Binary', id: paramString(req.params.id) },
      };
      if (res.headersSent || (await audited(req, res, access))) {
        sendOutcome(res, outcome);
      }
    }
  };
  routes.get('/Binary/:id', binaryRead);
  routes.get('/Binary/:id/_history/:vid', binaryRead);

  routes.use(
    express.json({ type: JSON_TYPES, limit: options.maxBodyBytes, strict: true }),
    express.urlencoded({ type: 'application/x-www-form-urlencoded', extended: false, limit: options.maxBodyBytes }),
  );

  if (options.subscriptions) {
    routes.use(
      '/Subscription',
      createSubscriptionRoutes({
        ...options.subscriptions,
        fhirBase,
        onWrite: options.onWrite,
        sendOutcome,
        sendJson,
        // Subscriptions are not written through the repository, whose statements audit writes.
        audited: (req, res, access) => audited(req, res, access, true),
      }),
    );
  }

  routes.use(async (req, res) => {
    const method = req.method as HttpMethod;
    const { returnPref } = preferences(req);
    if (
      ['POST', 'PUT', 'PATCH'].includes(method) &&
      req.headers['content-type'] === undefined &&
      Number(req.headers['content-length'] ?? 0) > 0
    ) {
      sendOutcome(res, unsupportedMediaType('Content-Type is required (application/fhir+json)'));
      return;
    }
    const isSearchPost = method === 'POST' && req.path.endsWith('/_search');
    const formBody =
      typeof req.headers['content-type'] === 'string' &&
      req.headers['content-type'].startsWith('application/x-www-form-urlencoded');
    if (
      ['POST', 'PUT', 'PATCH'].includes(method) &&
      !isSearchPost &&
      req.headers['content-type'] &&
      !JSON_TYPES.some((t) => (req.headers['content-type'] as string).startsWith(t))
    ) {
      sendOutcome(
        res,
        unsupportedMediaType(`Unsupported Content-Type "${req.headers['content-type']}"; use application/fhir+json`),
      );
      return;
    }
    if (req.path.includes('$graphql')) {
      sendOutcome(res, {
        ...notFound,
        issue: [{ severity: 'error', code: 'not-supported', details: { text: 'GraphQL is not offered' } }],
      });
      return;
    }
    const url = req.originalUrl.slice(req.baseUrl.length).replace(/^\/+/, '');
    const route = options.router.find(method, url);
    if (!route) {
      const allowed = METHODS.filter((other) => other !== method && options.router.find(other, url));
      if (allowed.length > 0) {
        res.setHeader('Allow', allowed.join(', '));
        sendOutcome(res, methodNotAllowed(`${method} is not allowed here; allowed: ${allowed.join(', ')}`));
      } else {
        sendOutcome(res, notFound);
      }
      return;
    }
    res.locals.route = `fhir/${route.data?.interaction ?? 'operation'}`;
    const body =
      isSearchPost && formBody ? searchPostParameters(req.query, req.body as Record<string, unknown>) : req.body;
    const fhirRequest: FhirRequest = {
      method,
      url,
      pathname: '',
      params: {},
      query: {},
      body,
      headers: req.headers,
      config: { transactions: true },
    };
    const repo = repoFor(req, res);
    let result;
    try {
      result = await options.router.handleRequest(fhirRequest, repo);
    } catch (err) {
      result = [normalizeOperationOutcome(err)] as const;
    }
    const [outcome, resource] = result;
    if (route.data?.interaction === 'batch' && resource?.resourceType === 'Bundle') {
      completeEntryResponses(resource);
    }
    let status = outcomeStatus(outcome);
    if (method === 'PUT' && status === 200 && resource?.meta?.versionId === '1') {
      status = 201; // update as create (R4 http §3.1.0.4.1)
    }
    const interaction =
      route.data?.interaction === 'batch' && (body as Bundle | undefined)?.type === 'transaction'
        ? 'transaction'
        : (route.data?.interaction ?? 'operation');
    const target = route.params.resourceType
      ? { resourceType: route.params.resourceType, id: route.params.id, version: route.params.vid }
      : undefined;
    const query =
      isSearchPost && formBody ? new URLSearchParams(body as Record<string, string>).toString() : url.split('?')[1];
    if (!(await audited(req, res, { interaction, status, target, resource, query }))) {
      return;
    }
    if (status >= 400 || !resource) {
      if (status < 400 && method !== 'GET') {
        options.onWrite?.();
      }
      sendOutcome(res, outcome, status);
      return;
    }
    if (method !== 'GET') {
      options.onWrite?.();
    }
    setResourceHeaders(res, resource, fhirBase, status);
    if (method === 'GET' && notModified(req, resource)) {
      res.status(304).end();
      return;
    }
    respondWithResource(req, res, status, resource, returnPref, outcome);
  });

  return routes;
}

/**
 * Text before and after a stream's bytes, the first part only once bytes (or the end) arrive: until
 * then nothing is sent, and a failure can still be answered with a status of its own.
 */
class Framed extends Transform {
  private readonly head: string;
  private readonly tail: string;
  private started = false;

  constructor(head: string, tail: string) {
    super();
    this.head = head;
    this.tail = tail;
  }

  private start(): void {
    if (!this.started) {
      this.started = true;
      this.push(this.head);
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.start();
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.start();
    callback(null, this.tail);
  }
}

/**
 * What happens when a Binary's stored content cannot be read (its file missing or unreadable): the
 * failure is logged with the request id (ids only), and the reader gets a 500 OperationOutcome when
 * nothing was sent yet, else a connection closed before the announced length. Never an unhandled
 * stream error, which would end the process.
 */
function blobReadFailure(
  res: Response,
  context: { logger: Pick<Logger, 'error'> | undefined; binary: string; version: string | undefined },
): (err: Error) => void {
  let reported = false;
  return (err) => {
    if (reported) {
      return;
    }
    reported = true;
    const requestId = String(res.locals.requestId ?? '');
    context.logger?.error(
      // The error's code (ENOENT, EIO) rather than its message, which names the file.
      { requestId, binary: context.binary, version: context.version, err: errorCode(err), sent: res.headersSent },
      'Binary content could not be read',
    );
    if (res.headersSent) {
      // Fewer bytes than Content-Length announced, then the close: the reader knows it is cut short.
      res.destroy();
      return;
    }
    for (const header of ['Content-Length', 'ETag', 'Last-Modified']) {
      res.removeHeader(header);
    }
    sendOutcome(
      res,
      {
        resourceType: 'OperationOutcome',
        issue: [
          { severity: 'error', code: 'exception', details: { text: `Binary/${context.binary} could not be read` } },
        ],
      },
      500,
    );
  };
}

function errorCode(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' ? code : err.name;
}

function respondWithResource(
  req: Request,
  res: Response,
  status: number,
  resource: Resource,
  returnPref?: string,
  outcome?: OperationOutcome,
): void {
  const isWrite = req.method !== 'GET';
  if (isWrite && returnPref === 'minimal') {
    res.status(status).end();
    return;
  }
  if (isWrite && returnPref?.toLowerCase() === 'operationoutcome') {
    sendJson(
      req,
      res,
      status,
      outcome ?? { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational' }] },
    );
    return;
  }
  sendJson(req, res, status, resource);
}

/** Express-level failures (unparseable JSON, oversized bodies) as OperationOutcomes. */
export function fhirErrorHandler(err: unknown, req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) {
    next(err);
    return;
  }
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') {
    refuseBody(req, res, payloadTooLarge('Request body is too large'));
  } else if (type === 'entity.parse.failed') {
    sendOutcome(res, badRequest(`Request body is not valid JSON: ${(err as Error).message}`));
  } else if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    sendOutcome(res, unsupportedMediaType((err as Error).message));
  } else if (err instanceof OperationOutcomeError) {
    sendOutcome(res, err.outcome);
  } else {
    sendOutcome(res, normalizeOperationOutcome(err));
  }
}
