/**
 * C-FIND SCP for the Study Root and Patient Root Query/Retrieve Information Models – FIND (PS3.4
 * Annex C), answered from the index tables with the matching QIDO-RS uses (src/dicom/query.ts).
 *
 * Decisions:
 * - Hierarchical queries only (no relational extended negotiation): the unique keys of every level
 *   above the query level must be present with one value, else 0xA900. A key the index does not
 *   hold, a sequence, or a key of a level below the query level is not matched and comes back
 *   zero-length, with pending status 0xFF01 (PS3.4 §C.4.1.1.4) instead of 0xFF00; so is a value
 *   given for a return-only key (the Number of … Related … counts).
 * - A value that is only `*` is a universal match (PS3.4 §C.2.2.2.4), so it also returns rows
 *   whose attribute is empty.
 * - Responses carry the requested keys, the query level's unique key, QueryRetrieveLevel, and
 *   SpecificCharacterSet "ISO_IR 192" when a value is not ASCII (the index holds decoded text).
 *   RetrieveAETitle is our own AE title; InstanceAvailability is ONLINE.
 * - Matches are read a page at a time in unique-key order, so a query matching everything streams.
 * - Every study is searched: the peer's identity is its allowed calling AE title (audit-trail.ts), and
 *   no person's access policy applies. Each C-FIND is audited (a Query event naming the patients of
 *   the studies returned) before its final response goes out.
 */
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { getString } from '../attributes.ts';
import { BufferSource } from '../byte-source.ts';
import { DEFAULT_PART10_LIMITS, DatasetReader, MalformedDicomError } from '../dataset-reader.ts';
import type { DicomDataset } from '../dataset-reader.ts';
import { writeDataset } from '../dataset-writer.ts';
import type { WritableElement } from '../dataset-writer.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../part10.ts';
import { INDEX_ATTRIBUTE_BY_TAG, QueryError, matchCondition } from '../query.ts';
import type { IndexAttribute, IndexLevel, SqlQuery } from '../query.ts';
import type { AuditOutcome } from '../../audit/audit-event.ts';
import { auditQuery } from '../../audit/dicom-audit-event.ts';
import type { AuditQueryKey } from '../../audit/dicom-audit-event.ts';
import type { FindRequest, FindResponse, OnFind } from './association.ts';
import type { DimseAuditTrail } from './audit-trail.ts';
import { Status } from './command-set.ts';
import { PATIENT_ROOT_FIND, STUDY_ROOT_FIND } from './sop-classes.ts';
import { SqlParams } from '../../db/sql-params.ts';

/** PS3.4 §C.4.1.1.4 C-FIND statuses beyond the general ones. */
export const FindStatus = {
  pending: 0xff00,
  pendingWithUnsupportedKeys: 0xff01,
  cancelled: 0xfe00,
  identifierDoesNotMatchSopClass: 0xa900,
  unableToProcess: 0xc000,
} as const;

const QUERY_RETRIEVE_LEVEL = '00080052';
const SPECIFIC_CHARACTER_SET = '00080005';
const RETRIEVE_AE_TITLE = '00080054';
const INSTANCE_AVAILABILITY = '00080056';
const DEFAULT_PAGE_SIZE = 200;

const LEVEL_OF_KEYWORD: Readonly<Record<string, IndexLevel>> = {
  PATIENT: 'patient',
  STUDY: 'study',
  SERIES: 'series',
  IMAGE: 'instance',
};
const DEPTH: Readonly<Record<IndexLevel, number>> = { patient: 0, study: 1, series: 2, instance: 3 };

interface InformationModel {
  levels: readonly IndexLevel[];
  /** Study Root folds the patient attributes into the study level (PS3.4 §C.6.2). */
  patientAttributesAt: IndexLevel;
}

const MODELS: Readonly<Record<string, InformationModel>> = {
  [STUDY_ROOT_FIND]: { levels: ['study', 'series', 'instance'], patientAttributesAt: 'study' },
  [PATIENT_ROOT_FIND]: { levels: ['patient', 'study', 'series', 'instance'], patientAttributesAt: 'patient' },
};

/** The unique key of each level (PS3.4 §C.6.1.1, §C.6.2.1). */
const UNIQUE_KEY: Readonly<Record<IndexLevel, IndexAttribute>> = {
  patient: indexedAttribute('00100020'),
  study: indexedAttribute('0020000D'),
  series: indexedAttribute('0020000E'),
  instance: indexedAttribute('00080018'),
};

/** An attribute the index must have; a missing one is a mistake in query.ts, caught at load. */
function indexedAttribute(tag: string): IndexAttribute {
  const attribute = INDEX_ATTRIBUTE_BY_TAG.get(tag);
  if (!attribute) {
    throw new Error(`the DICOM index has no attribute ${tag}`);
  }
  return attribute;
}

/** Patient-level counts, known only when studies are grouped by patient. */
const PATIENT_COUNTS: Readonly<Record<string, string>> = {
  '00201200': 'count(*)',
  '00201202': 'sum(s.number_of_series)',
  '00201204': 'sum(s.number_of_instances)',
};

const FROM: Readonly<Record<IndexLevel, string>> = {
  patient: 'dicom_study s',
  study: 'dicom_study s',
  series: 'dicom_series se JOIN dicom_study s ON s.study_instance_uid = se.study_instance_uid',
  instance: `dicom_instance i JOIN dicom_series se ON se.series_instance_uid = i.series_instance_uid
    JOIN dicom_study s ON s.study_instance_uid = i.study_instance_uid`,
};

/** One key of the identifier: what to return, and the SQL expression it comes from. */
interface ReturnKey {
  tag: string;
  vr: string;
  /** SQL expression of the value; absent for keys returned zero-length or with a fixed value. */
  expression?: string | undefined;
  fixed?: string | undefined;
}

interface FindPlan {
  level: IndexLevel;
  keys: ReturnKey[];
  query: SqlQuery;
  /** Some key is not supported for matching or return: pending responses are 0xFF01. */
  unsupported: boolean;
}

class IdentifierError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface FindHandlerOptions {
  pageSize?: number | undefined;
  audit?: DimseAuditTrail | undefined;
}

/** What the audit of one C-FIND learns while it runs. */
interface FindAudit {
  outcome: AuditOutcome;
  outcomeDesc?: string;
  query: string;
  patientIds: Set<string>;
}

/** The FHIR Patient ids of a row's studies (one id, or an array at the patient level). */
const AUDIT_PATIENTS = 'audit_patients';

export function createFindHandler(db: Queryable, logger: Logger, options: FindHandlerOptions = {}): OnFind {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    throw new RangeError('pageSize must be a positive integer');
  }
  const audit = options.audit;
  return async function* find(request: FindRequest): AsyncGenerator<FindResponse, FindResponse, undefined> {
    const audited: FindAudit = { outcome: '0', query: '', patientIds: new Set() };
    try {
      return yield* answer(request, audited);
    } catch (error) {
      audited.outcome = '8';
      throw error;
    } finally {
      // Also when the peer cancels: what was sent until then was seen.
      await audit?.queried({ peer: request, sopClassUid: request.sopClassUid, ...audited });
    }
  };

  async function* answer(
    request: FindRequest,
    audited: FindAudit,
  ): AsyncGenerator<FindResponse, FindResponse, undefined> {
    let plan: FindPlan;
    try {
      plan = planFind(request, audited);
    } catch (error) {
      if (!(error instanceof IdentifierError)) {
        throw error;
      }
      // The message names attributes and levels, never values.
      logger.info({ status: error.status, reason: error.message }, 'C-FIND refused');
      audited.outcome = '4';
      audited.outcomeDesc = 'C-FIND refused: the identifier cannot be processed';
      return { status: error.status, comment: error.message };
    }
    const explicitVr = request.transferSyntaxUid === EXPLICIT_VR_LITTLE_ENDIAN;
    const unique = plan.level === 'patient' ? "coalesce(s.patient_id, '')" : UNIQUE_KEY[plan.level].column;
    const selected = plan.keys
      .map((key, index) => (key.expression ? `${key.expression} AS c${index}` : undefined))
      .filter(Boolean);
    selected.push(
      plan.level === 'patient'
        ? `array_remove(array_agg(DISTINCT s.matched_patient_id), NULL) AS ${AUDIT_PATIENTS}`
        : `s.matched_patient_id AS ${AUDIT_PATIENTS}`,
    );
    let cursor: string | undefined;
    let matches = 0;
    for (;;) {
      const params = plan.query.params.copy();
      const where = [...plan.query.where];
      if (cursor !== undefined) {
        where.push(`${unique} > ${params.add(cursor)}`);
      }
      const sql = `SELECT ${unique} AS unique_key${selected.length ? `, ${selected.join(', ')}` : ''}
        FROM ${FROM[plan.level]}
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ${plan.level === 'patient' ? 'GROUP BY 1' : ''}
        ORDER BY 1 LIMIT ${pageSize}`;
      const page = await db.query<Record<string, unknown>>(sql, params.values);
      for (const row of page.rows) {
        matches++;
        for (const id of [row[AUDIT_PATIENTS]].flat()) {
          if (typeof id === 'string') {
            audited.patientIds.add(id);
          }
        }
        yield {
          status: plan.unsupported ? FindStatus.pendingWithUnsupportedKeys : FindStatus.pending,
          identifier: encodeMatch(plan, row, explicitVr),
        };
      }
      const last = page.rows.at(-1);
      if (last === undefined || page.rows.length < pageSize) {
        break;
      }
      cursor = String(last.unique_key);
    }
    logger.info({ level: plan.level, matches, keys: plan.keys.map((key) => key.tag) }, 'C-FIND answered');
    return { status: Status.success };
  }
}

function readIdentifier(request: FindRequest): DicomDataset {
  if (
    request.transferSyntaxUid !== IMPLICIT_VR_LITTLE_ENDIAN &&
    request.transferSyntaxUid !== EXPLICIT_VR_LITTLE_ENDIAN
  ) {
    throw new IdentifierError(FindStatus.unableToProcess, 'identifier transfer syntax not supported');
  }
  const explicitVr = request.transferSyntaxUid === EXPLICIT_VR_LITTLE_ENDIAN;
  try {
    return new DatasetReader(new BufferSource(request.identifier), DEFAULT_PART10_LIMITS).readTopLevel(0, {
      explicitVr,
      bigEndian: false,
    });
  } catch (error) {
    if (error instanceof MalformedDicomError || error instanceof RangeError) {
      throw new IdentifierError(FindStatus.unableToProcess, 'identifier unreadable');
    }
    throw error;
  }
}

/** Validates the identifier against the information model and turns it into SQL and return keys. */
function planFind(request: FindRequest, audited: FindAudit): FindPlan {
  const model = MODELS[request.sopClassUid];
  if (!model) {
    throw new IdentifierError(Status.sopClassNotSupported, 'SOP class not supported');
  }
  const identifier = readIdentifier(request);
  audited.query = findAuditQuery(identifier);
  const levelName = getString(identifier, QUERY_RETRIEVE_LEVEL)?.trim() ?? '';
  const level = LEVEL_OF_KEYWORD[levelName];
  if (!level || !model.levels.includes(level)) {
    throw new IdentifierError(
      FindStatus.identifierDoesNotMatchSopClass,
      levelName === '' ? 'QueryRetrieveLevel missing' : 'QueryRetrieveLevel not valid for this SOP class',
    );
  }
  const levelOf = (attribute: IndexAttribute): IndexLevel =>
    attribute.level === 'patient' ? model.patientAttributesAt : attribute.level;
  const plan: FindPlan = { level, keys: [], query: { where: [], params: new SqlParams() }, unsupported: false };

  // PS3.4 §C.4.1.2.1: a hierarchical query names one entity at each level above its own.
  for (const above of model.levels.slice(0, model.levels.indexOf(level))) {
    const key = UNIQUE_KEY[above];
    const value = getString(identifier, key.tag);
    if (value === undefined || value === '') {
      throw new IdentifierError(
        FindStatus.identifierDoesNotMatchSopClass,
        `${key.keyword} required at ${levelName} level`,
      );
    }
    if (/[\\*?]/.test(value)) {
      throw new IdentifierError(FindStatus.identifierDoesNotMatchSopClass, `${key.keyword} must be a single value`);
    }
  }

  let characterSetRequested = false;
  for (const [tag, element] of identifier.elements) {
    if (tag.endsWith('0000') || tag === QUERY_RETRIEVE_LEVEL) {
      continue;
    }
    if (tag === SPECIFIC_CHARACTER_SET) {
      characterSetRequested = true;
      continue;
    }
    if (tag === RETRIEVE_AE_TITLE || tag === INSTANCE_AVAILABILITY) {
      plan.keys.push({
        tag,
        vr: element.vr === 'UN' ? (tag === RETRIEVE_AE_TITLE ? 'AE' : 'CS') : element.vr,
        fixed: tag === RETRIEVE_AE_TITLE ? request.calledAeTitle : 'ONLINE',
      });
      continue;
    }
    const attribute = INDEX_ATTRIBUTE_BY_TAG.get(tag);
    if (level === 'patient' && PATIENT_COUNTS[tag]) {
      plan.keys.push({ tag, vr: 'IS', expression: PATIENT_COUNTS[tag] });
      continue;
    }
    if (!attribute || element.items || DEPTH[levelOf(attribute)] > DEPTH[level]) {
      plan.unsupported = true;
      plan.keys.push({ tag, vr: element.vr === 'UN' && attribute ? attribute.vr : element.vr });
      continue;
    }
    plan.keys.push({
      tag,
      vr: attribute.vr,
      expression: level === 'patient' ? `min(${attribute.column})` : attribute.column,
    });
    const value = getString(identifier, tag) ?? '';
    // The Number of … Related … counts are return keys only here: a value for them is not matched.
    if (!attribute.match) {
      if (value !== '') {
        plan.unsupported = true;
      }
      continue;
    }
    addMatch(plan.query, attribute, value);
  }
  const unique = UNIQUE_KEY[level];
  if (!plan.keys.some((key) => key.tag === unique.tag)) {
    plan.keys.push({
      tag: unique.tag,
      vr: unique.vr,
      expression: level === 'patient' ? 'min(s.patient_id)' : unique.column,
    });
  }
  if (characterSetRequested) {
    plan.keys.push({ tag: SPECIFIC_CHARACTER_SET, vr: 'CS' });
  }
  plan.keys.push({ tag: QUERY_RETRIEVE_LEVEL, vr: 'CS', fixed: levelName });
  return plan;
}

const AUDIT_KEYWORDS: Readonly<Record<string, string>> = {
  [QUERY_RETRIEVE_LEVEL]: 'QueryRetrieveLevel',
  [SPECIFIC_CHARACTER_SET]: 'SpecificCharacterSet',
  [RETRIEVE_AE_TITLE]: 'RetrieveAETitle',
  [INSTANCE_AVAILABILITY]: 'InstanceAvailability',
};

/** The identifier as the audit keeps it (auditQuery: keywords, and only UIDs, codes and numbers as values). */
function findAuditQuery(identifier: DicomDataset): string {
  const keys: AuditQueryKey[] = [];
  for (const [tag, element] of identifier.elements) {
    if (tag.endsWith('0000')) {
      continue;
    }
    const attribute = INDEX_ATTRIBUTE_BY_TAG.get(tag);
    const vr = element.vr === 'UN' ? attribute?.vr : element.vr;
    keys.push({
      name: attribute?.keyword ?? AUDIT_KEYWORDS[tag] ?? tag,
      vr,
      value: element.items ? '' : (getString(identifier, tag) ?? ''),
    });
  }
  return auditQuery(keys);
}

function addMatch(query: SqlQuery, attribute: IndexAttribute, value: string): void {
  // PS3.4 §C.2.2.2.4: only asterisks is the same as universal matching.
  if (value === '' || /^\*+$/.test(value)) {
    return;
  }
  const multiple =
    attribute.match === 'uid' ||
    attribute.match === 'integer' ||
    attribute.match === 'modalities' ||
    attribute.match === 'date' ||
    attribute.match === 'time';
  const values = multiple
    ? value
        .split('\\')
        .map((part) => part.trim())
        .filter((part) => part !== '')
    : [value];
  if (values.length === 0) {
    return;
  }
  try {
    query.where.push(matchCondition(query, attribute, values));
  } catch (error) {
    if (error instanceof QueryError) {
      throw new IdentifierError(FindStatus.unableToProcess, `${attribute.keyword}: value cannot be matched`);
    }
    throw error;
  }
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (Array.isArray(value)) {
    return value.map(valueText).join('\\');
  }
  return String(value);
}

function encodeMatch(plan: FindPlan, row: Record<string, unknown>, explicitVr: boolean): Buffer {
  const elements: WritableElement[] = [];
  let nonAscii = false;
  plan.keys.forEach((key, index) => {
    const value = key.fixed ?? (key.expression ? valueText(row[`c${index}`]) : '');
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\x7f]/.test(value)) {
      nonAscii = true;
    }
    elements.push({ tag: key.tag, vr: key.vr, value });
  });
  if (nonAscii) {
    const withCharset = elements.filter((element) => element.tag !== SPECIFIC_CHARACTER_SET);
    withCharset.push({ tag: SPECIFIC_CHARACTER_SET, vr: 'CS', value: 'ISO_IR 192' });
    return writeDataset(withCharset, { explicitVr, textEncoding: 'utf-8' });
  }
  return writeDataset(elements, { explicitVr, textEncoding: 'latin1' });
}
