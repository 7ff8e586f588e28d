/**
 * The FHIR store on PostgreSQL (or PGlite): the repository that @medplum/fhir-router's REST and
 * batch/transaction handling runs on. One instance per request; `withTransaction` hands out an
 * instance bound to the open transaction.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  OperationOutcomeError,
  allOk,
  badRequest,
  created,
  forbidden,
  deepEquals,
  formatSearchQuery,
  gone,
  isResourceType,
  multipleMatches,
  notFound,
  parseSearchRequest,
  preconditionFailed,
} from '@medplum/core';
import type { Operation, SearchRequest, WithId } from '@medplum/core';
import { FhirRepository, getExtraEntries } from '@medplum/fhir-router';
import type {
  CreateResourceOptions,
  DeleteResourceOptions,
  ReadHistoryOptions,
  RepositoryMode,
  SearchOptions,
  TransactionOptions,
  UpdateResourceOptions,
} from '@medplum/fhir-router';
import type {
  Binary,
  Bundle,
  BundleEntry,
  OperationOutcome,
  Parameters,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import { prepared, requiredRow } from '../db/database.ts';
import type { Database, Queryable } from '../db/database.ts';
import type { BlobStore, StoredBlob } from '../storage/blob-store.ts';
import { BlobTooLargeError } from '../storage/blob-store.ts';
import { recordOutboxEvent } from '../db/outbox.ts';
import { resourceChangeEvent } from './events.ts';
import { HUB_ACTOR_PREFIX } from '../auth/actor.ts';
import { newClaims } from '../auth/reference-claims.ts';
import type { ReferenceClaim } from '../auth/reference-claims.ts';
import {
  CASE_RESOURCE_SYSTEM,
  DRAFT_STATUSES,
  RESERVED_CASE_IDS,
  caseLinksOf,
  isConsultationReport,
  isDraft,
} from '../auth/case-links.ts';
import type { CaseLinkRows } from '../auth/case-links.ts';
import type { SearchIndexRows } from '../db/index-rows.ts';
import { extractSearchIndex } from './indexer.ts';
import { historyBundle } from './history.ts';
import type { HistoryRow } from './history.ts';
import { collectReferences, mapReferences } from './references.ts';
import { applyResourcePatch } from './patch.ts';
import { methodNotAllowed, payloadTooLarge } from './outcomes.ts';
import { runSearch, searchLinkQuery } from './search/search.ts';
import { subsetResource } from './subset.ts';
import { validateFhirResource } from './validation.ts';
import { checkCaseRecordWrite, checkCoordinatorMoves } from './coordinator-moves.ts';
import { checkCaseQuestionsWrite } from './case-questions.ts';
import { BINARY_JSON_INLINE_MAX_BYTES, binaryTooLargeToInline } from './binary-budget.ts';
import type { InlineBinaryBudget } from './binary-budget.ts';
import { INLINE_ATTACHMENT_MAX_BYTES, decodeBase64, takeInlineAttachments } from './inline-attachments.ts';
import type { MovedAttachment } from './inline-attachments.ts';
import { buildWriteStatement } from './write.ts';
import { toOutcomeError, withFhirErrors } from './db-errors.ts';
import { WritePipeline } from './write-pipeline.ts';
import type { AccessControl, AccessInteraction } from '../auth/access-policy.ts';
import type { Identity } from '../auth/access-tokens.ts';
import { scopesAllow } from '../auth/scopes.ts';
import { SqlParams } from '../db/sql-params.ts';
import type { OutboxEvent } from './write.ts';
import { writeAudit } from '../audit/auditor.ts';
import type { WriteAuditContext } from '../audit/auditor.ts';
import { readAuditEvent, searchAuditEvents } from './search/audit-search.ts';

/** The resources of a consultation report a physician's reading counts for (docs/access.md, "Release"). */
const REPORT_TYPES = new Set(['DiagnosticReport', 'DocumentReference', 'Composition', 'Binary']);
const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export interface RepositoryContext {
  db: Database;
  blobs: BlobStore;
  /** The hub's public base URL (without /fhir). */
  baseUrl: string;
  binaryMaxBytes: number;
  /** Prefer: handling=strict — unknown search parameters are errors. */
  strictSearch?: boolean;
  /** A person's access policy (auth/access-policy.ts): every read, search, history and write is filtered by it. */
  access?: AccessControl;
  /**
   * The person an operation writes for (fhir/operations/caller.ts), when `access` is left out so the
   * operation can write outside their cases: their conditional references are still resolved, and
   * the references they supplied still checked (checkReferenceClaims), within their own reach.
   */
  callerAccess?: AccessControl;
  /**
   * Who writes, as `urn:hub:actor:<role>:<id>` (authActor in auth/actor.ts): stamped on every version
   * as `meta.source`, so the workflow can tell who moved a case. Without it (anonymous requests on a
   * trusted network, the hub's own workers) no version may claim a hub actor.
   */
  actor?: string;
  /** Who is writing: each write stores its AuditEvent in its own statement (audit/auditor.ts). */
  audit?: WriteAuditContext;
  /** Who the request acts for (none: anonymous, or the hub itself); operations decide from it (fhir/operations/caller.ts). */
  identity?: Identity;
  /**
   * The Binary content the request may still put inline (binary-budget.ts), shared by every read it
   * makes; one per HTTP request (routes/fhir.ts). Without it (the hub's own jobs) only the cap per read applies.
   */
  inlineBinaryBudget?: InlineBinaryBudget;
}

/** Bytes a write moves into the blob store: where they are once stored, or where a row named them before. */
interface PendingBlob {
  bytes: Buffer;
  stored?: StoredBlob;
  promised?: StoredBlob;
}

interface CurrentRow {
  version: number;
  deleted: boolean;
  content: string | null;
}

export interface HistoryOptions {
  since?: string;
  count?: number;
  offset?: number;
}

function assertKnownType(resourceType: string | undefined): asserts resourceType is string {
  if (!resourceType || !isResourceType(resourceType)) {
    throw new OperationOutcomeError({
      ...notFound,
      issue: [{ severity: 'error', code: 'not-found', details: { text: `Unknown resource type "${resourceType}"` } }],
    });
  }
}

export class HubRepository extends FhirRepository {
  private readonly ctx: RepositoryContext;
  private readonly conn: Queryable;
  /** Set inside a transaction: writes go through it (see write-pipeline.ts). */
  private readonly pipeline: WritePipeline | undefined;
  /** Whether reads put a Binary's content in `data` (withBinaryData); false: readBinaryResource. */
  private inlineBinaryContent = true;

  constructor(ctx: RepositoryContext, conn?: Queryable, pipeline?: WritePipeline) {
    super();
    this.ctx = ctx;
    this.pipeline = pipeline;
    this.conn = pipeline ? pipeline.ordered() : withFhirErrors(conn ?? ctx.db);
  }

  private withBinaryContent(inline: boolean): HubRepository {
    const copy = new HubRepository(this.ctx, this.conn, this.pipeline);
    copy.inlineBinaryContent = inline;
    return copy;
  }

  /** The context it works in: who the request acts for, and how its writes are stamped and audited. */
  get context(): Readonly<RepositoryContext> {
    return this.ctx;
  }

  get fhirBase(): string {
    return `${this.ctx.baseUrl}/fhir`;
  }

  setMode(_mode: RepositoryMode): void {
    // One database for reads and writes; read replicas would be chosen here.
  }

  generateId(): string {
    return randomUUID();
  }

  async withTransaction<TResult>(
    callback: (txRepo: this) => Promise<TResult>,
    options?: TransactionOptions,
  ): Promise<TResult> {
    if (this.conn.inTransaction) {
      return callback(this);
    }
    try {
      return await this.ctx.db.transaction(
        async (tx) => {
          const pipeline = new WritePipeline(withFhirErrors(tx));
          let result: TResult;
          try {
            result = await callback(new HubRepository(this.ctx, undefined, pipeline) as this);
          } catch (err) {
            // Writes still queued must reach the server before ROLLBACK does, or one could run
            // after it, outside the transaction. A write that failed first is the real cause.
            await pipeline.settle();
            throw err;
          }
          await pipeline.settle();
          return result;
        },
        { serializable: options?.serializable },
      );
    } catch (err) {
      throw toOutcomeError(err);
    }
  }

  /**
   * This repository with Prefer: handling=strict, for the searches that pick the resource a write
   * acts on: a misspelt parameter must be an error, not a dropped criterion that matches anything.
   */
  private strictRepository(): HubRepository {
    return new HubRepository({ ...this.ctx, strictSearch: true }, this.conn, this.pipeline);
  }

  /** Where a write's conditional references are looked up: within the writer's reach, strictly. */
  private referenceLookup(): HubRepository {
    return new HubRepository(
      { ...this.ctx, access: this.ctx.callerAccess ?? this.ctx.access, strictSearch: true },
      this.conn,
      this.pipeline,
    );
  }

  /** Records an outbox event in this repository's transaction (or on its own). */
  async recordEvent(event: OutboxEvent): Promise<void> {
    await recordOutboxEvent(this.conn, event);
  }

  // ---- access (auth/access-policy.ts) ------------------------------------------------------

  /** A person's condition on a resource_version row (AccessControl.versionCondition); TRUE without a policy. */
  private versionCondition(params: SqlParams, alias: string): string {
    return this.ctx.access?.versionCondition(params, alias) ?? 'TRUE';
  }

  /** 404 unless the person may do `interaction` on this resource; nothing without an access policy. */
  private async assertVisible(resourceType: string, id: string, interaction: AccessInteraction): Promise<void> {
    const access = this.ctx.access;
    if (!access || access.require(resourceType, interaction) === 'all') {
      return;
    }
    const params = new SqlParams();
    const condition = access.condition(params, 'r', interaction, [resourceType]);
    const result = await this.conn.query(
      `SELECT 1 FROM resource r WHERE r.resource_type = ${params.add(resourceType)} AND r.id = ${params.add(id)} AND ${condition}`,
      params.values,
    );
    if (result.rows.length === 0) {
      throw new OperationOutcomeError(notFound);
    }
  }

  /**
   * A write under a person's access policy: the target, if it exists, must be visible to them (else
   * 404), and with a `case` scope what is written must be one of their cases' resources afterwards
   * (else 403, and the transaction rolls back).
   */
  private async guardedWrite<R>(
    resourceType: string,
    id: string,
    interaction: 'create' | 'update' | 'delete',
    write: (repo: HubRepository) => Promise<R>,
  ): Promise<R> {
    const access = this.ctx.access;
    const scope = access?.require(resourceType, interaction);
    if (!access || scope === 'all') {
      return write(this);
    }
    return this.withTransaction(async (tx) => {
      if (interaction !== 'create') {
        const current = ID_PATTERN.test(id) ? await tx.currentRow(resourceType, id, false) : undefined;
        if (current && !current.deleted) {
          await tx.assertVisible(resourceType, id, 'read');
        }
      }
      const result = await write(tx);
      if (scope === 'case' && interaction !== 'delete') {
        await tx.assertInCase(resourceType, id);
      }
      return result;
    });
  }

  /** 403 unless what was just written is one of the person's cases' resources (a `case` right's condition). */
  private async assertInCase(resourceType: string, id: string): Promise<void> {
    await this.assertVisible(resourceType, id, 'read').catch((err: unknown) => {
      // A write that failed before this check is the real cause (write-pipeline.ts), not the case.
      if (!(err instanceof OperationOutcomeError) || err.outcome.id !== notFound.id) {
        throw err;
      }
      throw new OperationOutcomeError({
        ...forbidden,
        issue: [
          {
            severity: 'error',
            code: 'forbidden',
            details: { text: `${resourceType} must belong to one of your cases` },
          },
        ],
      });
    });
  }

  // ---- reads -------------------------------------------------------------------------------

  private async currentRow(resourceType: string, id: string, lock: boolean): Promise<CurrentRow | undefined> {
    const result = await this.conn.query<CurrentRow>(
      `SELECT version, deleted, content FROM resource WHERE resource_type = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
      [resourceType, id],
    );
    return result.rows[0];
  }

  /**
   * The current row and whether the person may read it, in one prepared statement: the access
   * condition's text depends only on the role and the type, so each connection plans it once.
   */
  private async currentRowFor(
    resourceType: string,
    id: string,
  ): Promise<(CurrentRow & { visible: boolean }) | undefined> {
    const access = this.ctx.access;
    if (!access || access.require(resourceType, 'read') === 'all') {
      const row = await this.currentRow(resourceType, id, false);
      return row && { ...row, visible: true };
    }
    const params = new SqlParams();
    const type = params.add(resourceType);
    const key = params.add(id);
    const condition = access.condition(params, 'r', 'read', [resourceType]);
    const result = await this.conn.query<CurrentRow & { visible: boolean }>(
      prepared(
        `SELECT r.version, r.deleted, r.content, ${condition} AS visible FROM resource r WHERE r.resource_type = ${type} AND r.id = ${key}`,
      ),
      params.values,
    );
    return result.rows[0];
  }

  async readResource<T extends Resource>(resourceType: string, id: string): Promise<WithId<T>> {
    assertKnownType(resourceType);
    if (!ID_PATTERN.test(id)) {
      throw new OperationOutcomeError(notFound);
    }
    if (resourceType === 'AuditEvent') {
      return this.readAuditEvent(id) as Promise<WithId<T>>;
    }
    const row = await this.currentRowFor(resourceType, id);
    // Hidden before 410: a deleted resource is in no one's case, and 410 would tell that it existed.
    if (!row?.visible) {
      throw new OperationOutcomeError(notFound);
    }
    if (row.deleted || !row.content) {
      throw new OperationOutcomeError(gone);
    }
    await this.noteReportRead([{ resourceType, id }]);
    return this.withBinaryData(JSON.parse(row.content) as WithId<T>);
  }

  /**
   * A Binary as it is stored, without its content (read or vread, with every check of a read): the
   * raw read streams the blob, the FHIR JSON read streams its base64 (routes/fhir.ts), so neither
   * holds the content in memory.
   */
  async readBinaryResource(id: string, vid?: string): Promise<WithId<Binary>> {
    const withoutData = this.withBinaryContent(false);
    return vid === undefined
      ? withoutData.readResource<Binary>('Binary', id)
      : withoutData.readVersion<Binary>('Binary', id, vid);
  }

  /**
   * The referring physician's first reading of a released consultation report (the report, its
   * letter, its DocumentReference or its PDF) is recorded once per case, with an event that lets the
   * case move to report-accessed and the patient be told. Only a physician of the case counts (by
   * their Practitioner, or an organisation they work for that referred it), on any path that gave
   * them the content (a read, a vread, a search or its includes, a history): a system client's
   * prefetch, a coordinator or a reviewer reading it does not. One statement, and none for other
   * readers or when nothing read is a report's.
   */
  private async noteReportRead(read: readonly { resourceType: string; id: string }[]): Promise<void> {
    const access = this.ctx.access;
    const reader = access?.referringPhysician();
    const reports = read.filter((target) => REPORT_TYPES.has(target.resourceType));
    if (!access || !reader || reports.length === 0) {
      return;
    }
    const params = new SqlParams();
    const types = params.add(reports.map((target) => target.resourceType));
    const ids = params.add(reports.map((target) => target.id));
    const who = params.add(reader);
    const at = params.add(new Date().toISOString());
    const theirs = access.memberCases(params);
    await this.conn.query(
      prepared(
        `WITH read AS (
           INSERT INTO report_read (case_id, reader, read_at)
           SELECT DISTINCT cr.case_id, ${who}, ${at}::timestamptz FROM case_resource cr
           JOIN unnest(${types}::text[], ${ids}::text[]) AS t (resource_type, resource_id)
             ON cr.resource_type = t.resource_type AND cr.resource_id = t.resource_id
           WHERE cr.report AND cr.draft_author IS NULL AND cr.case_id IN (${theirs})
             AND NOT EXISTS (SELECT 1 FROM case_release rel WHERE rel.case_id = cr.case_id)
             -- Only once the opinion is approved and released (a consultation note read as material
             -- during intake is not the opinion).
             AND EXISTS (SELECT 1 FROM sp_token b JOIN sp_token i ON i.resource_type = 'Task' AND i.resource_id = b.resource_id
               AND i.param = 'identifier' AND i.system = 'urn:hub:case-resource' AND i.value = cr.case_id || '/coordination'
               WHERE b.resource_type = 'Task' AND b.param = 'business-status' AND b.system = 'urn:hub:case-state'
                 AND b.value = 'report-released')
           ON CONFLICT (case_id) DO NOTHING
           RETURNING case_id)
         INSERT INTO outbox (queue, name, payload)
         SELECT 'case-progression', 'report-read', jsonb_build_object('serviceRequestId', case_id) FROM read`,
      ),
      params.values,
    );
  }

  async readReference<T extends Resource>(reference: Reference<T>): Promise<WithId<T>> {
    const [resourceType, id] = (reference.reference ?? '').split('/');
    if (!resourceType || !id) {
      throw new OperationOutcomeError(badRequest('Invalid reference'));
    }
    return this.readResource<T>(resourceType, id);
  }

  async readReferences<T extends Resource>(references: readonly Reference<T>[]): Promise<(T | Error)[]> {
    const keys = references.map((ref) => {
      const text = (ref.reference ?? '').startsWith(this.fhirBase + '/')
        ? (ref.reference ?? '').slice(this.fhirBase.length + 1)
        : (ref.reference ?? '');
      const [type, id] = text.split('/');
      return { type, id };
    });
    const valid = keys.filter((k) => k.type && k.id && ID_PATTERN.test(k.id));
    const found = new Map<string, Resource>();
    if (valid.length > 0) {
      const params = new SqlParams();
      const keyParams = [params.add(valid.map((k) => k.type)), params.add(valid.map((k) => k.id))];
      const access = this.ctx.access ? this.ctx.access.condition(params, 'r', 'read') : 'TRUE';
      const result = await this.conn.query<{ resource_type: string; id: string; content: string }>(
        `SELECT r.resource_type, r.id, r.content FROM resource r
         JOIN unnest(${keyParams[0]}::text[], ${keyParams[1]}::text[]) AS k(t, i) ON r.resource_type = k.t AND r.id = k.i
         WHERE NOT r.deleted AND ${access}`,
        params.values,
      );
      for (const row of result.rows) {
        found.set(`${row.resource_type}/${row.id}`, JSON.parse(row.content) as Resource);
      }
    }
    return keys.map(({ type, id }) => (found.get(`${type}/${id}`) as T) ?? new OperationOutcomeError(notFound));
  }

  async readVersion<T extends Resource>(resourceType: string, id: string, vid: string): Promise<WithId<T>> {
    assertKnownType(resourceType);
    if (!ID_PATTERN.test(id) || !/^\d{1,9}$/.test(vid)) {
      throw new OperationOutcomeError(notFound);
    }
    if (resourceType === 'AuditEvent') {
      // An AuditEvent has one version, never changed.
      const event = await this.readAuditEvent(id);
      if (vid !== '1') {
        throw new OperationOutcomeError(notFound);
      }
      return event as WithId<T>;
    }
    await this.assertVisible(resourceType, id, 'read');
    const params = new SqlParams();
    const where = `v.resource_type = ${params.add(resourceType)} AND v.id = ${params.add(id)} AND v.version = ${params.add(Number(vid))}`;
    const result = await this.conn.query<{ deleted: boolean; content: string | null }>(
      `SELECT v.deleted, v.content FROM resource_version v WHERE ${where} AND ${this.versionCondition(params, 'v')}`,
      params.values,
    );
    const row = result.rows[0];
    if (!row) {
      throw new OperationOutcomeError(notFound);
    }
    if (row.deleted || !row.content) {
      throw new OperationOutcomeError(gone);
    }
    await this.noteReportRead([{ resourceType, id }]);
    return this.withBinaryData(JSON.parse(row.content) as WithId<T>, Number(vid));
  }

  async readHistory<T extends Resource>(
    resourceType: string,
    id: string,
    options?: ReadHistoryOptions,
  ): Promise<Bundle<WithId<T>>> {
    assertKnownType(resourceType);
    if (!ID_PATTERN.test(id)) {
      throw new OperationOutcomeError(notFound);
    }
    const count = Math.min(Math.max(options?.limit ?? 100, 1), 1000);
    const offset = Math.max(options?.offset ?? 0, 0);
    await this.assertVisible(resourceType, id, 'history');
    const params = new SqlParams();
    const where = `resource_type = ${params.add(resourceType)} AND id = ${params.add(id)} AND ${this.versionCondition(params, 'resource_version')}`;
    const { n: total } = requiredRow(
      await this.conn.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM resource_version WHERE ${where}`,
        params.values,
      ),
      'the history count',
    );
    if (total === 0) {
      throw new OperationOutcomeError(notFound);
    }
    const rows = await this.conn.query<HistoryRow>(
      `SELECT resource_type, id, version, last_updated, method, deleted, content FROM resource_version
       WHERE ${where} ORDER BY version DESC LIMIT ${params.add(count)} OFFSET ${params.add(offset)}`,
      params.values,
    );
    const bundle = historyBundle<T>(rows.rows, {
      fhirBase: this.fhirBase,
      url: `${this.fhirBase}/${resourceType}/${id}/_history`,
      count,
      offset,
      total,
    });
    await this.noteReportRead(contentOf(bundle.entry));
    return bundle;
  }

  /** Type-level (`Patient/_history`) or system-level (`/_history`) history, newest first. */
  async readChanges(resourceType: string | undefined, options: HistoryOptions): Promise<Bundle> {
    if (resourceType !== undefined) {
      assertKnownType(resourceType);
    }
    const count = Math.min(Math.max(options.count ?? 100, 1), 1000);
    const offset = Math.max(options.offset ?? 0, 0);
    const where: string[] = [];
    const params = new SqlParams();
    if (resourceType) {
      where.push(`resource_type = ${params.add(resourceType)}`);
    }
    if (options.since) {
      where.push(`last_updated >= ${params.add(options.since)}::timestamptz`);
    }
    if (this.ctx.access) {
      // A person sees the history of the resources they may see now (deleted ones are no one's case).
      if (resourceType) {
        this.ctx.access.require(resourceType, 'history');
      }
      const condition = this.ctx.access.condition(params, 'r', 'history', resourceType ? [resourceType] : undefined);
      if (condition !== 'TRUE') {
        where.push(
          `EXISTS (SELECT 1 FROM resource r WHERE r.resource_type = resource_version.resource_type AND r.id = resource_version.id AND NOT r.deleted AND ${condition})`,
        );
        where.push(this.versionCondition(params, 'resource_version'));
      }
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const rows = await this.conn.query<HistoryRow>(
      `SELECT resource_type, id, version, last_updated, method, deleted, content FROM resource_version ${clause}
       ORDER BY last_updated DESC, resource_type, id, version DESC LIMIT ${count + 1} OFFSET ${offset}`,
      params.values,
    );
    const url = `${this.fhirBase}${resourceType ? '/' + resourceType : ''}/_history`;
    const bundle = historyBundle(rows.rows.slice(0, count), {
      fhirBase: this.fhirBase,
      url,
      count,
      offset,
      hasMore: rows.rows.length > count,
    });
    await this.noteReportRead(contentOf(bundle.entry));
    return bundle;
  }

  // ---- search ------------------------------------------------------------------------------

  async search<T extends Resource>(request: SearchRequest<T>, options?: SearchOptions): Promise<Bundle<WithId<T>>> {
    const types = request.types && request.types.length > 0 ? request.types : [request.resourceType];
    types.forEach((type) => assertKnownType(type));
    const access = this.ctx.access;
    types.forEach((type) => access?.require(type, 'search'));
    const page = types.includes('AuditEvent')
      ? await this.searchAuditEvents(request, types)
      : await runSearch(this.conn, request, {
          baseUrl: this.ctx.baseUrl,
          strict: Boolean(this.ctx.strictSearch),
          restrict: access && ((params, alias) => access.condition(params, alias, 'search', types)),
          visible: access && ((params, alias) => access.condition(params, alias, 'search')),
        });
    const subset = { summary: request.summary, elements: request.fields };
    const entry: BundleEntry<WithId<T>>[] = page.resources.map((resource) => ({
      fullUrl: `${this.fhirBase}/${resource.resourceType}/${resource.id}`,
      resource: subsetResource(resource, subset) as WithId<T>,
      search: { mode: 'match' },
    }));
    if (page.resources.length > 0 && (request.include || request.revInclude)) {
      const extra: BundleEntry[] = [];
      await getExtraEntries(this, request as SearchRequest, page.resources, extra, {
        fullUrl: (type, id) => `${this.fhirBase}/${type}/${id}`,
      });
      for (const item of extra) {
        entry.push({ ...item, resource: item.resource && (subsetResource(item.resource, subset) as WithId<T>) });
      }
    }
    // A page that gives the report whole (not a summary, nor chosen elements) is a reading of it,
    // with its includes, once (the searches a write or an include makes inside return resources only).
    if (
      !options?.resourceOnly &&
      !request.fields?.length &&
      (request.summary === undefined || request.summary === 'data')
    ) {
      await this.noteReportRead(contentOf(entry));
    }
    // FHIR JSON has no empty arrays: an empty page has no entry element at all.
    const bundle: Bundle<WithId<T>> = {
      resourceType: 'Bundle',
      type: 'searchset',
      ...(entry.length > 0 ? { entry } : {}),
    };
    if (page.total !== undefined) {
      bundle.total = page.total;
    }
    if (!options?.resourceOnly) {
      const path = request.types ? this.fhirBase : `${this.fhirBase}/${request.resourceType}`;
      const ignored = new Set(page.ignored);
      const used: SearchRequest = {
        ...request,
        filters: request.filters?.filter((f) => !ignored.has(f)),
        sortRules: page.sortRules,
        cursor: undefined,
      };
      bundle.link = [
        { relation: 'self', url: `${path}${searchLinkQuery({ ...used, cursor: request.cursor })}` },
        { relation: 'first', url: `${path}${searchLinkQuery({ ...used, offset: undefined })}` },
      ];
      if (page.nextCursor) {
        bundle.link.push({
          relation: 'next',
          url: `${path}${searchLinkQuery({ ...used, offset: undefined, cursor: page.nextCursor })}`,
        });
      }
    }
    return bundle;
  }

  // ---- the audit store (audit/audit-search.ts) ----------------------------------------------

  /** AuditEvents are for those who may see every one (admin, coordinator, system clients); never per case. */
  private assertAuditAccess(interaction: 'read' | 'search'): void {
    const scope = this.ctx.access?.require('AuditEvent', interaction);
    if (scope !== undefined && scope !== 'all') {
      throw new OperationOutcomeError(interaction === 'read' ? notFound : forbidden);
    }
  }

  private async readAuditEvent(id: string): Promise<WithId<Resource>> {
    this.assertAuditAccess('read');
    const event = await readAuditEvent(this.conn, id);
    if (!event) {
      throw new OperationOutcomeError(notFound);
    }
    return event;
  }

  private searchAuditEvents(request: SearchRequest, types: string[]): ReturnType<typeof searchAuditEvents> {
    if (types.length > 1) {
      throw new OperationOutcomeError(
        badRequest('AuditEvents are searched on their own (GET /AuditEvent?…), not with other types', '_type'),
      );
    }
    this.assertAuditAccess('search');
    return searchAuditEvents(this.conn, request, { baseUrl: this.ctx.baseUrl, strict: Boolean(this.ctx.strictSearch) });
  }

  async searchByReference<T extends Resource>(
    request: SearchRequest<T>,
    referenceField: string,
    references: string[],
  ): Promise<Record<string, WithId<T>[]>> {
    const result: Record<string, WithId<T>[]> = {};
    for (const reference of references) {
      result[reference] = await this.searchResources<T>({
        ...request,
        filters: [...(request.filters ?? []), { code: referenceField, operator: 'eq', value: reference }],
      });
    }
    return result;
  }

  // The inherited conditional update, patch and delete find their target through this repository's
  // search; they run on the strict one for the reason given at strictRepository.
  override conditionalUpdate<T extends Resource>(
    resource: T,
    search: SearchRequest,
    options?: CreateResourceOptions & UpdateResourceOptions,
  ): Promise<{ resource: WithId<T>; outcome: OperationOutcome }> {
    return this.ctx.strictSearch
      ? super.conditionalUpdate(resource, search, options)
      : this.strictRepository().conditionalUpdate(resource, search, options);
  }

  override conditionalPatch(
    search: SearchRequest,
    patch: Operation[],
    options?: UpdateResourceOptions,
  ): Promise<WithId<Resource>> {
    return this.ctx.strictSearch
      ? super.conditionalPatch(search, patch, options)
      : this.strictRepository().conditionalPatch(search, patch, options);
  }

  override conditionalDelete(search: SearchRequest): Promise<void> {
    return this.ctx.strictSearch ? super.conditionalDelete(search) : this.strictRepository().conditionalDelete(search);
  }

  /** If-None-Exist: one resource however many clients race (an advisory lock on the criteria). */
  async conditionalCreate<T extends Resource>(
    resource: T,
    search: SearchRequest<T>,
    options?: CreateResourceOptions,
  ): Promise<{ resource: WithId<T>; outcome: OperationOutcome }> {
    if (search.resourceType !== resource.resourceType) {
      throw new OperationOutcomeError(badRequest('If-None-Exist criteria must be for the type being created'));
    }
    const criteria = { ...search, count: 2, sortRules: undefined };
    return this.withTransaction(async (tx) => {
      const lockKey = `${resource.resourceType}?${formatSearchQuery(criteria)}`;
      await tx.conn.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey]);
      const matches = await tx.strictRepository().searchResources<T>(criteria);
      const [match, ...others] = matches;
      if (others.length > 0) {
        throw new OperationOutcomeError(multipleMatches);
      }
      if (match !== undefined) {
        return { resource: match, outcome: allOk };
      }
      return { resource: await tx.createResource(resource, options), outcome: created };
    });
  }

  // ---- writes ------------------------------------------------------------------------------

  async createResource<T extends Resource>(resource: T, options?: CreateResourceOptions): Promise<WithId<T>> {
    assertKnownType(resource.resourceType);
    const id = options?.assignedId && resource.id ? resource.id : this.generateId();
    return this.guardedWrite(resource.resourceType, id, 'create', (repo) =>
      repo.writeVersion<T>({ ...resource, id }, undefined, 'POST'),
    );
  }

  async updateResource<T extends Resource>(resource: T, options?: UpdateResourceOptions): Promise<WithId<T>> {
    return this.update(resource, options, true);
  }

  /**
   * An update of a resource our own code derives from trusted data (the ImagingStudy of a DICOM
   * study, rebuilt on every stored instance): the same write, index and outbox event, without the
   * R4 validator, which costs more than the rest of the write. Its builder is validated in tests
   * (imaging-study.test.ts); never use this for content that came from a client.
   */
  async updateDerivedResource<T extends Resource>(resource: T): Promise<WithId<T>> {
    return this.update(resource, undefined, false);
  }

  private async update<T extends Resource>(
    resource: T,
    options: UpdateResourceOptions | undefined,
    validate: boolean,
  ): Promise<WithId<T>> {
    assertKnownType(resource.resourceType);
    const id = resource.id;
    if (!id || !ID_PATTERN.test(id)) {
      throw new OperationOutcomeError(badRequest('Resource id is missing or invalid', `${resource.resourceType}.id`));
    }
    return this.guardedWrite(resource.resourceType, id, 'update', (guarded) =>
      guarded.withTransaction(async (tx) => {
        const current = await tx.currentRow(resource.resourceType, id, true);
        if (!current || current.deleted) {
          this.assertMayChooseId(resource.resourceType, id);
        }
        checkIfMatch(current, options?.ifMatch);
        if (
          current &&
          !current.deleted &&
          current.content &&
          unchanged(JSON.parse(current.content) as Resource, resource)
        ) {
          return tx.withBinaryData(JSON.parse(current.content) as WithId<T>);
        }
        return tx.writeVersion<T>(resource, current, 'PUT', validate);
      }),
    );
  }

  async patchResource<T extends Resource>(
    resourceType: T['resourceType'],
    id: string,
    patch: Operation[] | Parameters,
    options?: UpdateResourceOptions,
  ): Promise<WithId<T>> {
    assertKnownType(resourceType);
    return this.guardedWrite(resourceType, id, 'update', (guarded) =>
      guarded.withTransaction(async (tx) => {
        const current = ID_PATTERN.test(id) ? await tx.currentRow(resourceType, id, true) : undefined;
        if (!current) {
          throw new OperationOutcomeError(notFound);
        }
        if (current.deleted || !current.content) {
          throw new OperationOutcomeError(gone);
        }
        checkIfMatch(current, options?.ifMatch);
        const patched = JSON.parse(current.content) as Resource;
        applyResourcePatch(patched, patch);
        if (patched.resourceType !== resourceType || patched.id !== id) {
          throw new OperationOutcomeError(badRequest('A patch may not change resourceType or id'));
        }
        if (unchanged(JSON.parse(current.content) as Resource, patched)) {
          return JSON.parse(current.content) as WithId<T>;
        }
        try {
          validateFhirResource(patched);
        } catch (err) {
          // R4 http §3.1.0.5 (patch): a patch that yields an invalid resource is 422, not 400.
          if (err instanceof OperationOutcomeError) {
            throw new OperationOutcomeError({ ...err.outcome, id: 'unprocessable' });
          }
          throw err;
        }
        return tx.writeVersion<T>(patched as T, current, 'PATCH');
      }),
    );
  }

  async deleteResource(resourceType: string, id: string, options?: DeleteResourceOptions): Promise<void> {
    assertKnownType(resourceType);
    assertNotAudit(resourceType);
    await this.guardedWrite(resourceType, id, 'delete', (guarded) =>
      guarded.withTransaction(async (tx) => {
        const current = ID_PATTERN.test(id) ? await tx.currentRow(resourceType, id, true) : undefined;
        if (!current) {
          throw new OperationOutcomeError(notFound);
        }
        checkIfMatch(current, options?.ifMatch);
        if (current.deleted) {
          return;
        }
        await checkCaseQuestionsWrite(tx.conn, resourceType, id, this.ctx.access ?? this.ctx.callerAccess);
        const version = current.version + 1;
        const statement = buildWriteStatement({
          resourceType,
          id,
          version,
          lastUpdated: new Date().toISOString(),
          method: 'DELETE',
          replacing: true,
          // A deleted resource gives no case links, members or releases any more.
          caseLinks: { resources: [], members: [], releases: resourceType === 'Task' ? [] : undefined },
          event: resourceChangeEvent(resourceType, id, version, 'DELETE'),
          audit: writeAudit(this.ctx.audit, {
            method: 'DELETE',
            resourceType,
            id,
            version,
            resource: current.content ? (JSON.parse(current.content) as Resource) : undefined,
          }),
        });
        await tx.conn.query(statement.sql, statement.values);
      }),
    );
  }

  /**
   * Validates, indexes and stores the next version of a resource. Every check that can refuse it runs
   * before any byte of its content (a Binary's `data`, moved inline attachments) reaches the blob
   * store; with a `case` right, the case guard too (the write is sent first, in the transaction, and
   * checked), so a refused write leaves no file behind. What a later failure of the transaction
   * leaves is the orphan sweep's (storage/orphan-sweep.ts).
   */
  private async writeVersion<T extends Resource>(
    resource: T,
    current: CurrentRow | undefined,
    method: 'POST' | 'PUT' | 'PATCH',
    validate = true,
  ): Promise<WithId<T>> {
    assertNotAudit(resource.resourceType);
    const id = resource.id as string;
    const version = (current?.version ?? 0) + 1;
    const lastUpdated = new Date().toISOString();
    // A coordinator's moves on the quote are theirs alone (coordinator-moves.ts).
    const previousContent =
      current && !current.deleted && current.content ? (JSON.parse(current.content) as Resource) : undefined;
    const literal = checkCoordinatorMoves(await this.resolveConditionalReferences(resource), previousContent, this.ctx);
    // The physician's questions are theirs and the staff's alone (case-questions.ts).
    await checkCaseQuestionsWrite(this.conn, literal.resourceType, id, this.ctx.access ?? this.ctx.callerAccess);
    await this.checkReferenceClaims(literal, current);
    checkCaseRecordWrite(literal, previousContent, this.ctx);
    // Large inline attachments become Binaries of their own (inline-attachments.ts); the ids are
    // the hub's, so the URLs it writes are not the writer's claims.
    const { resource: slim, moved } = takeInlineAttachments(literal);
    const [firstMoved] = moved;
    if (firstMoved) {
      this.assertMayCreateBinary(firstMoved);
    }
    for (const piece of moved) {
      piece.attachment.url = `Binary/${this.generateId()}`;
    }
    const candidate = {
      ...slim,
      meta: stampActor({ ...slim.meta, versionId: String(version), lastUpdated }, this.ctx.actor),
    } as WithId<T>;
    let content: PendingBlob | undefined;
    let stored: WithId<T> = candidate;
    if (candidate.resourceType === 'Binary' && (candidate as Binary).data !== undefined) {
      // The bytes go to the blob store, whatever their size up to BINARY_MAX_BYTES: the validator's
      // 1 MiB cap on a base64Binary value is for data kept inside resources.
      const { data, ...rest } = candidate as unknown as Binary;
      stored = rest as unknown as WithId<T>;
      if (validate) {
        validateFhirResource(stored);
      }
      content = this.pendingBlob(decodeBase64(data as string, 'Binary.data'));
    } else if (validate) {
      validateFhirResource(candidate);
    }
    const attachments = moved.map((piece) => ({ piece, blob: this.pendingBlob(piece.bytes) }));
    const index = extractSearchIndex(stored, this.fhirBase);
    this.assertMayPublish(candidate.resourceType, index, current);
    const caseLinks = caseLinksOf(stored, index, this.ctx.actor, this.fhirBase);
    await this.assertReviewerReport(candidate.resourceType, index, caseLinks);
    const blobs = [...(content ? [content] : []), ...attachments.map(({ blob }) => blob)];
    // With a `case` right the write must leave the resource in one of the person's cases (guardedWrite
    // checks it after the write): checked here too, before the bytes are stored, when there are any.
    // guardedWrite runs such a write in a transaction, so its rows are not seen before the bytes are.
    const interaction = method === 'POST' ? 'create' : 'update';
    const guardFirst =
      blobs.length > 0 &&
      this.conn.inTransaction &&
      this.ctx.access?.scopeOf(candidate.resourceType, interaction) === 'case';
    if (!guardFirst) {
      await this.storeBlobs(blobs);
    }
    for (const { piece, blob } of attachments) {
      await this.writeAttachmentBinary(piece, `${candidate.resourceType}/${id}`, blob);
    }
    const statement = buildWriteStatement({
      resourceType: candidate.resourceType,
      id,
      version,
      lastUpdated,
      method: current ? method : 'POST',
      content: JSON.stringify(stored),
      replacing: current !== undefined,
      index,
      caseLinks,
      binary: content && this.blobOf(content),
      event: resourceChangeEvent(candidate.resourceType, id, version, current ? method : 'POST'),
      audit: writeAudit(this.ctx.audit, {
        method,
        resourceType: candidate.resourceType,
        id,
        version,
        resource: stored,
      }),
    });
    await this.sendWrite(statement);
    if (guardFirst) {
      await this.assertInCase(candidate.resourceType, id);
      await this.storeBlobs(blobs);
    }
    return candidate;
  }

  /**
   * Moving an attachment's bytes into a Binary creates one: the writer needs that right, by their
   * role's policy and their token's scopes, as for a Binary they would post (403 otherwise, before
   * any byte is stored). System clients' scopes are checked the same way; the hub's own writes pass.
   */
  private assertMayCreateBinary(piece: MovedAttachment): void {
    const access = this.ctx.access ?? this.ctx.callerAccess;
    const identity = this.ctx.identity;
    const allowed =
      (access === undefined || access.scopeOf('Binary', 'create') !== undefined) &&
      (identity === undefined || scopesAllow(identity.scopes, 'Binary', 'c'));
    if (!allowed) {
      throw new OperationOutcomeError({
        ...forbidden,
        issue: [
          {
            severity: 'error',
            code: 'forbidden',
            details: {
              text: `${piece.path}.data holds ${piece.bytes.length} bytes: an attachment over ${INLINE_ATTACHMENT_MAX_BYTES} bytes is stored as a Binary, which you may not create`,
            },
            expression: [`${piece.path}.data`],
          },
        ],
      });
    }
  }

  /** Bytes to store, refused (413) at once over BINARY_MAX_BYTES: before anything is written. */
  private pendingBlob(bytes: Buffer): PendingBlob {
    if (bytes.length > this.ctx.binaryMaxBytes) {
      throw new OperationOutcomeError(payloadTooLarge(new BlobTooLargeError(this.ctx.binaryMaxBytes).message));
    }
    return { bytes };
  }

  /**
   * Where pending bytes are, or will be once stored: the store addresses blobs by the SHA-256 of their
   * bytes (storage/blob-store.ts), so a row can name them before they are stored.
   */
  private blobOf(blob: PendingBlob): StoredBlob {
    if (blob.stored) {
      return blob.stored;
    }
    blob.promised ??= { key: createHash('sha256').update(blob.bytes).digest('hex'), size: blob.bytes.length };
    return blob.promised;
  }

  private async storeBlobs(blobs: readonly PendingBlob[]): Promise<void> {
    for (const blob of blobs) {
      const stored = await this.storeBlob(blob.bytes);
      if (blob.promised && blob.promised.key !== stored.key) {
        // The transaction rolls back: no row may name bytes the store keeps under another key.
        throw new Error(`the blob store keyed ${blob.promised.size} bytes otherwise than their SHA-256`);
      }
      blob.stored = stored;
    }
  }

  private async sendWrite(statement: { sql: string; values: unknown[] }): Promise<void> {
    if (this.pipeline) {
      this.pipeline.send(statement.sql, statement.values);
    } else {
      await this.conn.query(statement.sql, statement.values);
    }
  }

  /**
   * The Binary of an attachment moved out of the resource that carries it (`owner`), written in the
   * same transaction. The owner's write is what the person was allowed: the Binary is part of it,
   * names it as its securityContext, and belongs to the owner's cases through the attachment's URL
   * (auth/case-links.ts), so it is seen by exactly those who see the owner.
   */
  private async writeAttachmentBinary(piece: MovedAttachment, owner: string, content: PendingBlob): Promise<void> {
    const binaryId = (piece.attachment.url ?? '').slice('Binary/'.length);
    const blob = this.blobOf(content);
    const lastUpdated = new Date().toISOString();
    const stored = {
      resourceType: 'Binary',
      id: binaryId,
      contentType: piece.contentType ?? 'application/octet-stream',
      securityContext: { reference: owner },
      meta: stampActor({ versionId: '1', lastUpdated }, this.ctx.actor),
    } as WithId<Binary>;
    await this.sendWrite(
      buildWriteStatement({
        resourceType: 'Binary',
        id: binaryId,
        version: 1,
        lastUpdated,
        method: 'POST',
        content: JSON.stringify(stored),
        replacing: false,
        index: extractSearchIndex(stored, this.fhirBase),
        binary: blob,
        audit: writeAudit(this.ctx.audit, { method: 'POST', resourceType: 'Binary', id: binaryId, version: 1 }),
      }),
    );
  }

  /**
   * R4 http, "Transaction Processing Rules": a conditional reference (`Patient?identifier=sys|val`)
   * becomes a literal reference to its one match; no match is 404, several are 412, and either fails
   * the write.
   */
  /**
   * A person's write may add only references to resources they may read, or created themselves
   * (auth/reference-claims.ts); a target that is hidden and one that does not exist get the same
   * 403. Nothing to check for system clients, the hub's own writes, and roles that may write every
   * resource of the type.
   */
  private async checkReferenceClaims(resource: Resource, current: CurrentRow | undefined): Promise<void> {
    const access = this.ctx.callerAccess ?? this.ctx.access;
    if (!access || access.scopeOf(resource.resourceType, current && !current.deleted ? 'update' : 'create') === 'all') {
      return;
    }
    const previous =
      current && !current.deleted && current.content ? (JSON.parse(current.content) as Resource) : undefined;
    const claims = newClaims(resource, previous, this.fhirBase);
    const notYours = (key: string): string =>
      `${key} is not a resource you may reference: a reference must name something you may read`;
    const refuse = (path: string, text: string): never => {
      throw new OperationOutcomeError({
        ...forbidden,
        issue: [{ severity: 'error', code: 'forbidden', details: { text }, expression: [path] }],
      });
    };
    const [identifier] = claims.caseIdentifiers;
    if (identifier) {
      refuse(identifier.path, 'Identifiers of the system urn:hub:case-resource are written by the hub only');
    }
    // Every target the policy does not open to the whole role, checked in one statement.
    const pending = new Map<string, ReferenceClaim>();
    for (const claim of claims.references) {
      const key = `${claim.resourceType}/${claim.id}`;
      const scope = access.scopeOf(claim.resourceType, 'read');
      if (scope === 'all' || pending.has(key)) {
        continue;
      }
      if (!scope || !isResourceType(claim.resourceType)) {
        refuse(claim.path, notYours(key));
      }
      pending.set(key, claim);
    }
    if (pending.size === 0) {
      return;
    }
    const targets = [...pending.values()];
    const params = new SqlParams();
    const createdByWriter = this.ctx.actor
      ? ` OR EXISTS (SELECT 1 FROM resource_version v WHERE v.resource_type = r.resource_type AND v.id = r.id AND v.version = 1 ` +
        `AND v.content::jsonb -> 'meta' ->> 'source' = ${params.add(this.ctx.actor)})`
      : '';
    const found = await this.conn.query<{ resource_type: string; id: string }>(
      `SELECT r.resource_type, r.id FROM resource r ` +
        `JOIN unnest(${params.add(targets.map((t) => t.resourceType))}::text[], ${params.add(targets.map((t) => t.id))}::text[]) AS t (resource_type, id) ` +
        `ON r.resource_type = t.resource_type AND r.id = t.id ` +
        `WHERE NOT r.deleted AND (${access.condition(params, 'r', 'read')}${createdByWriter})`,
      params.values,
    );
    const reachable = new Set(found.rows.map((row) => `${row.resource_type}/${row.id}`));
    const refused = targets.find((claim) => !reachable.has(`${claim.resourceType}/${claim.id}`));
    if (refused) {
      refuse(refused.path, notYours(`${refused.resourceType}/${refused.id}`));
    }
  }

  private async resolveConditionalReferences<T extends Resource>(resource: T): Promise<T> {
    const queries = [...collectReferences(resource)].filter((reference) => CONDITIONAL_REFERENCE.test(reference));
    if (queries.length === 0) {
      return resource;
    }
    const strict = this.referenceLookup();
    const literals = new Map<string, string>();
    for (const query of queries) {
      const search = parseSearchRequest(query);
      assertKnownType(search.resourceType);
      if (!search.filters?.length) {
        throw new OperationOutcomeError(badRequest(`Conditional reference ${query} has no search criteria`));
      }
      const matches = await strict.searchResources({ ...search, count: 2, offset: 0, sortRules: undefined });
      const [match, ...others] = matches;
      if (match === undefined || others.length > 0) {
        const outcome = match === undefined ? notFound : multipleMatches;
        const text = `Conditional reference ${query} matched ${match === undefined ? 'no resource' : 'more than one resource'}`;
        throw new OperationOutcomeError({
          ...outcome,
          issue: outcome.issue.map((issue) => ({ ...issue, details: { text } })),
        });
      }
      literals.set(query, `${match.resourceType}/${match.id}`);
    }
    return mapReferences(resource, (reference) => literals.get(reference) ?? reference);
  }

  /**
   * An update that would create `type/id` (update as create, or re-creating a deleted resource): 405
   * (R4 http §3.1.0.4) for the ids the hub keeps for itself, and for people outside their policy's
   * `chooseIds`; system clients choose any other id.
   */
  /**
   * A reviewer writes the opinion as a draft; only its approval (the staff, or the hub) makes a
   * consultation report final, and only the approval files the letter's DocumentReference.
   */
  private assertMayPublish(resourceType: string, index: SearchIndexRows, current: CurrentRow | undefined): void {
    if (!this.ctx.access || this.ctx.access.mayPublishReports()) {
      return;
    }
    const released = (rows: SearchIndexRows) =>
      isConsultationReport(resourceType, rows) && !isDraft(resourceType, rows);
    // A released report changes only by an amendment: made a draft again, it would vanish from its readers.
    const before = current && !current.deleted && current.content ? JSON.parse(current.content) : undefined;
    if (before && released(extractSearchIndex(before as Resource, this.fhirBase))) {
      throw new OperationOutcomeError({
        ...forbidden,
        issue: [
          {
            severity: 'error',
            code: 'forbidden',
            details: { text: `a released consultation report changes only by an amendment (docs/case-workflow.md)` },
            expression: [`${resourceType}.status`],
          },
        ],
      });
    }
    if (released(index)) {
      throw new OperationOutcomeError({
        ...forbidden,
        issue: [
          {
            severity: 'error',
            code: 'forbidden',
            details: {
              text:
                resourceType === 'DocumentReference'
                  ? 'the consultation letter is filed by its approval; write the opinion as a DiagnosticReport and Composition'
                  : `a consultation report is final only once approved; write the ${resourceType} as preliminary`,
            },
            expression: [`${resourceType}.status`],
          },
        ],
      });
    }
  }

  /**
   * A reviewer's DiagnosticReport or Composition that is not a draft would reach the case's physician
   * at once, whatever its code: the one such report the workflow expects from a reviewer is a
   * radiologist's or pathologist's pre-review report, a DiagnosticReport of cases whose pre-review
   * Task of their kind they own. Anything else a reviewer writes as a draft, which its approval
   * makes final (403 otherwise). The consultation report itself is assertMayPublish's.
   */
  private async assertReviewerReport(resourceType: string, index: SearchIndexRows, links: CaseLinkRows): Promise<void> {
    const access = this.ctx.access;
    if (
      !access ||
      access.mayPublishReports() ||
      !DRAFT_STATUSES[resourceType] ||
      isDraft(resourceType, index) ||
      isConsultationReport(resourceType, index)
    ) {
      return;
    }
    const preReviewer = resourceType === 'DiagnosticReport' ? access.preReviewer() : null;
    const cases = [...new Set(links.resources.filter(([type]) => type === resourceType).map(([, , caseId]) => caseId))];
    if (preReviewer && cases.length > 0) {
      const [, practitionerId] = preReviewer.practitioner.split('/');
      const others = await this.conn.query(
        prepared(
          `SELECT 1 FROM unnest($1::text[]) AS c (case_id) WHERE NOT EXISTS (
             SELECT 1 FROM sp_token i JOIN sp_reference o ON o.resource_type = 'Task' AND o.resource_id = i.resource_id
               AND o.param = 'owner' AND o.target_type = 'Practitioner' AND o.target_id = $2
             WHERE i.resource_type = 'Task' AND i.param = 'identifier' AND i.system = '${CASE_RESOURCE_SYSTEM}'
               AND i.value = c.case_id || '/' || $3)`,
        ),
        [cases, practitionerId, preReviewer.taskCode],
      );
      if (others.rows.length === 0) {
        return;
      }
    }
    throw new OperationOutcomeError({
      ...forbidden,
      issue: [
        {
          severity: 'error',
          code: 'forbidden',
          details: {
            text: `a reviewer's ${resourceType} is final only once approved (a pre-review report excepted); write it as ${DRAFT_STATUSES[resourceType]?.at(-1)}`,
          },
          expression: [`${resourceType}.status`],
        },
      ],
    });
  }

  private assertMayChooseId(resourceType: string, id: string): void {
    if (resourceType === 'ServiceRequest' && RESERVED_CASE_IDS.includes(id)) {
      throw new OperationOutcomeError(methodNotAllowed(`ServiceRequest/${id} is an id the hub keeps for itself`));
    }
    if (this.ctx.access && !this.ctx.access.mayChooseId(resourceType)) {
      throw new OperationOutcomeError(
        methodNotAllowed(
          `${resourceType}/${id} does not exist; people create resources with POST, and the hub chooses the id`,
        ),
      );
    }
  }

  /**
   * Whether a person may write raw Binary content at all (create, or update `id`), asked before the
   * content is read: bytes the hub would refuse never reach the blob store. writeBinary checks again.
   */
  async checkBinaryWrite(id: string | undefined): Promise<void> {
    const access = this.ctx.access;
    if (!access) {
      return;
    }
    if (id === undefined) {
      access.require('Binary', 'create');
      return;
    }
    const scope = access.require('Binary', 'update');
    const current = ID_PATTERN.test(id) ? await this.currentRow('Binary', id, false) : undefined;
    if (!current || current.deleted) {
      this.assertMayChooseId('Binary', id);
    } else if (scope !== 'all') {
      await this.assertVisible('Binary', id, 'read');
    }
  }

  /** Stores raw Binary content and creates or updates its Binary resource. */
  async writeBinary(
    id: string | undefined,
    contentType: string,
    blob: { key: string; size: number },
    extra?: Partial<Binary>,
  ): Promise<WithId<Binary>> {
    const resource: Binary = { ...extra, resourceType: 'Binary', contentType, ...(id ? { id } : {}) };
    const write = async (tx: HubRepository): Promise<WithId<Binary>> => {
      const current = id ? await tx.currentRow('Binary', id, true) : undefined;
      if (id && (!current || current.deleted)) {
        tx.assertMayChooseId('Binary', id);
      }
      const binaryId = id ?? tx.generateId();
      const version = (current?.version ?? 0) + 1;
      const lastUpdated = new Date().toISOString();
      const stored = {
        ...resource,
        id: binaryId,
        meta: stampActor({ ...resource.meta, versionId: String(version), lastUpdated }, this.ctx.actor),
      } as WithId<Binary>;
      validateFhirResource({ ...stored, data: '' });
      const statement = buildWriteStatement({
        resourceType: 'Binary',
        id: binaryId,
        version,
        lastUpdated,
        method: current ? 'PUT' : 'POST',
        content: JSON.stringify(stored),
        replacing: current !== undefined,
        index: extractSearchIndex(stored, this.fhirBase),
        binary: blob,
        audit: writeAudit(this.ctx.audit, {
          method: current ? 'PUT' : 'POST',
          resourceType: 'Binary',
          id: binaryId,
          version,
        }),
      });
      await tx.conn.query(statement.sql, statement.values);
      return stored;
    };
    if (id) {
      return this.guardedWrite('Binary', id, 'update', (guarded) => guarded.withTransaction(write));
    }
    this.ctx.access?.require('Binary', 'create');
    return this.withTransaction(write);
  }

  /** The blob behind a Binary version, for streaming its raw content. */
  async binaryContent(id: string, version: number): Promise<{ key: string; size: number } | undefined> {
    const result = await this.conn.query<{ blob_key: string; size: number }>(
      'SELECT blob_key, size FROM binary_content WHERE id = $1 AND version = $2',
      [id, version],
    );
    const row = result.rows[0];
    return row && { key: row.blob_key, size: Number(row.size) };
  }

  private async storeBlob(bytes: Buffer): Promise<{ key: string; size: number }> {
    try {
      return await this.ctx.blobs.put(bytes, this.ctx.binaryMaxBytes);
    } catch (err) {
      if (err instanceof BlobTooLargeError) {
        throw new OperationOutcomeError(payloadTooLarge(err.message));
      }
      throw err;
    }
  }

  /**
   * Puts a Binary's content back as base64 `data` when it is read as a FHIR resource, up to
   * BINARY_JSON_INLINE_MAX_BYTES, for one read and for all of the request's reads together
   * (binary-budget.ts): beyond, the read is refused (413) rather than held in memory. The
   * plain FHIR JSON read of a Binary never comes here (readBinaryResource, streamed whatever its size);
   * this serves the rest (a read with _elements or _summary, an unchanged update's answer).
   */
  private async withBinaryData<T extends Resource>(resource: WithId<T>, version?: number): Promise<WithId<T>> {
    if (resource.resourceType !== 'Binary' || !this.inlineBinaryContent) {
      return resource;
    }
    const blob = await this.binaryContent(resource.id, version ?? Number(resource.meta?.versionId));
    if (!blob) {
      return resource;
    }
    if (blob.size > BINARY_JSON_INLINE_MAX_BYTES) {
      throw binaryTooLargeToInline(resource.id, blob.size);
    }
    // One request's reads share a budget (binary-budget.ts): a batch of reads is not a way round the cap.
    this.ctx.inlineBinaryBudget?.take(resource.id, blob.size);
    const data = (await this.ctx.blobs.read(blob.key)).toString('base64');
    return { ...resource, data } as WithId<T>;
  }
}

/** The resources (not Binaries, listed without their content) a search or history page gives whole. */
function contentOf(entries: readonly BundleEntry[] | undefined): { resourceType: string; id: string }[] {
  return (entries ?? []).flatMap(({ resource }) =>
    resource?.id !== undefined && resource.resourceType !== 'Binary'
      ? [{ resourceType: resource.resourceType, id: resource.id }]
      : [],
  );
}

/** AuditEvents are written only by the hub itself (audit/), never through the API or a Bundle. */
function assertNotAudit(resourceType: string): void {
  if (resourceType === 'AuditEvent') {
    throw new OperationOutcomeError(
      methodNotAllowed('AuditEvents are recorded by the hub and cannot be created, changed or deleted'),
    );
  }
  if (resourceType === 'Subscription') {
    // The hub keeps subscriptions itself (routes/subscriptions.ts): a batch or transaction cannot write one.
    throw new OperationOutcomeError(
      methodNotAllowed('Subscriptions are written with a request of their own to /Subscription'),
    );
  }
}

// `Type?criteria`: a search in place of a literal reference (R4 http, conditional references).
const CONDITIONAL_REFERENCE = /^[A-Z][A-Za-z]+\?/;

function checkIfMatch(current: CurrentRow | undefined, ifMatch: string | undefined): void {
  if (ifMatch === undefined) {
    return;
  }
  if (!current || String(current.version) !== ifMatch.replace(/^W\//, '').replaceAll('"', '')) {
    throw new OperationOutcomeError({
      ...preconditionFailed,
      issue: [
        {
          severity: 'error',
          code: 'conflict',
          details: { text: `If-Match ${ifMatch} does not match the current version ${current?.version ?? '(none)'}` },
        },
      ],
    });
  }
}

/** Same content, ignoring the server-managed meta fields. */
function unchanged(before: Resource, after: Resource): boolean {
  const strip = (r: Resource): Resource => {
    const { meta, ...rest } = r;
    const { versionId: _v, lastUpdated: _l, ...otherMeta } = meta ?? {};
    return Object.keys(otherMeta).length > 0 ? { ...rest, meta: otherMeta } : rest;
  };
  return deepEquals(strip(before), strip(after));
}

/** `meta.source` names the writer when one is known; a client can never claim to be a hub actor. */
function stampActor(meta: NonNullable<Resource['meta']>, actor: string | undefined): NonNullable<Resource['meta']> {
  if (actor !== undefined) {
    return { ...meta, source: actor };
  }
  if (!meta.source?.startsWith(HUB_ACTOR_PREFIX)) {
    return meta;
  }
  const { source: _claimed, ...rest } = meta;
  return rest;
}
