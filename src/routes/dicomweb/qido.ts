/**
 * QIDO-RS (PS3.18 §10.6) answered from the index tables, never from the blobs: studies, series and
 * instances, of a study or of every study the request may see (All Series, All Instances).
 *
 * Decisions:
 * - No match answers 200 with `[]`. PS3.18 has allowed 204 for an empty result, but an empty array
 *   is what every client parses without a special case (OHIF's dicomweb-client reads both).
 * - Matching (PS3.4 §C.2.2.2): an empty value is a universal match; `*` and `?` are wildcards in
 *   PatientName, PatientID, AccessionNumber, StudyDescription and SeriesDescription; PatientName and
 *   the descriptions match case-insensitively; UID keys take lists (separated by commas or
 *   backslashes, or repeated);
 *   StudyDate takes `YYYYMMDD`, `A-B`, `-B` and `A-`.
 * - `fuzzymatching=true` is answered with literal matching and PS3.18 §8.3.4.2's Warning saying so;
 *   a value other than `true` or `false` answers 400.
 * - A query key the hub does not match on (unknown, or of a level below the query's) is ignored, as
 *   PS3.18 §8.3 requires, and named in a `Warning: 299` header; a malformed date, range or number
 *   of a key it does match on answers 400.
 * - A page that leaves matches out (limit, or MAX_LIMIT) says how many in a `Warning: 299` header
 *   (§8.3.4.4.1); they are counted only when there are some.
 * - `includefield` adds attributes from the DICOM JSON of one instance of the study or series
 *   (the index keeps it), so study and series results stay index-only; `all` adds every
 *   attribute of the level's modules we know.
 * - A person sees only the studies their access policy allows (access.ts): the condition is part of
 *   the SQL, so limit and offset page through what they may see.
 */
import express from 'express';
import type { Request, Response, Router } from 'express';
import type { DicomJsonAttribute, DicomJsonDataset } from '../../dicom/dicom-json.ts';
import { INDEX_ATTRIBUTE_BY_KEYWORD, QueryError, matchCondition, restrictToVisibleStudies } from '../../dicom/query.ts';
import type { IndexAttribute, SqlQuery } from '../../dicom/query.ts';
import { audited, studyAccessOf } from './access.ts';
import type { DicomwebOptions } from './index.ts';
import { SqlParams } from '../../db/sql-params.ts';

type Level = 'study' | 'series' | 'instance';

interface QueryKey extends IndexAttribute {
  /** QIDO-RS has no patient level: patient attributes are study keys. */
  level: Level;
}

const QIDO_KEYWORDS = [
  'StudyInstanceUID',
  'PatientName',
  'PatientID',
  'AccessionNumber',
  'StudyDescription',
  'ModalitiesInStudy',
  'StudyDate',
  'StudyTime',
  'ReferringPhysicianName',
  'PatientBirthDate',
  'PatientSex',
  'StudyID',
  'SeriesInstanceUID',
  'Modality',
  'SeriesNumber',
  'SeriesDescription',
  'SOPInstanceUID',
  'SOPClassUID',
  'InstanceNumber',
];

const QUERY_KEYS: Readonly<Record<string, QueryKey>> = Object.fromEntries(
  QIDO_KEYWORDS.map((keyword) => {
    const attribute = INDEX_ATTRIBUTE_BY_KEYWORD.get(keyword);
    if (!attribute) {
      // A QIDO keyword the index lacks is a mistake in this list or in query.ts, caught at load.
      throw new Error(`the DICOM index has no attribute ${keyword}`);
    }
    return [keyword, { ...attribute, level: attribute.level === 'patient' ? 'study' : attribute.level }];
  }),
);

const KEY_BY_TAG = new Map(Object.values(QUERY_KEYS).map((key) => [key.tag, key]));
const LEVEL_DEPTH: Readonly<Record<Level, number>> = { study: 0, series: 1, instance: 2 };
const RESERVED_PARAMETERS = new Set(['limit', 'offset', 'includefield', 'fuzzymatching']);
const MAX_LIMIT = 1000;
/** The results left out of a page are counted up to this many; beyond it the Warning says "more than". */
const REMAINING_COUNT_CAP = 10_000;

/** Keywords `includefield` may name besides the query keys, and the attributes `all` adds per level. */
const INCLUDABLE: Readonly<Record<string, string>> = {
  SpecificCharacterSet: '00080005',
  StudyTime: '00080030',
  ReferringPhysicianName: '00080090',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  PatientAge: '00101010',
  PatientWeight: '00101030',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  SeriesDate: '00080021',
  SeriesTime: '00080031',
  BodyPartExamined: '00180015',
  Manufacturer: '00080070',
  InstitutionName: '00080080',
  ProtocolName: '00181030',
  Laterality: '00200060',
  PerformedProcedureStepStartDate: '00400244',
  PerformedProcedureStepStartTime: '00400245',
  Rows: '00280010',
  Columns: '00280011',
  NumberOfFrames: '00280008',
  ContentDate: '00080023',
  ContentTime: '00080033',
  RetrieveURL: '00081190',
};
const STUDY_MODULE_TAGS = new Set([
  '00080020',
  '00080030',
  '00080050',
  '00080090',
  '00081030',
  '00081032',
  '00081060',
  '0020000D',
  '00200010',
  '00101010',
  '00101020',
  '00101030',
  '00102180',
  '001021B0',
]);
const SERIES_MODULE_TAGS = new Set([
  '00080021',
  '00080031',
  '00080060',
  '00080070',
  '00080080',
  '00081010',
  '0008103E',
  '00081090',
  '00180015',
  '00181030',
  '0020000E',
  '00200011',
  '00200060',
  '00400244',
  '00400245',
  '00400275',
]);

function values(raw: unknown): string[] {
  return (Array.isArray(raw) ? raw : [raw]).filter((value): value is string => typeof value === 'string');
}

function addMatch(query: SqlQuery, name: string, key: QueryKey, raw: string[]): void {
  // PS3.18 §8.3.4.1: a UID list is separated by commas or backslashes (%5C); the other list keys
  // (numbers, modalities, dates) take both too, as a C-FIND identifier's backslashes do.
  const list = raw
    .flatMap((value) => value.split(/[,\\]/))
    .map((value) => value.trim())
    .filter((value) => value !== '');
  if (list.length === 0) {
    return;
  }
  // Text keys are single-valued; a comma is part of the value.
  const text = key.match === 'text' || key.match === 'text-ci';
  query.where.push(matchCondition(query, key, text ? [raw.join(',').trim()] : list, name));
}

function pagination(raw: unknown, name: string, fallback: number, max: number): number {
  const [value] = values(raw);
  if (value === undefined || value === '') {
    return fallback;
  }
  if (!/^\d{1,9}$/.test(value)) {
    throw new QueryError(`${name} must be a non-negative integer`);
  }
  return Math.min(Number(value), max);
}

interface QueryPlan extends SqlQuery {
  limit: number;
  offset: number;
  /** Query keys left out of the matching (unsupported at this level), for the Warning header. */
  ignored: string[];
  /** `fuzzymatching=true` was asked for (and literal matching done). */
  fuzzy: boolean;
  /** Tags to add from the representative DICOM JSON; `all` for the level's whole set. */
  include: Set<string> | 'all';
}

function planQuery(req: Request, level: Level): QueryPlan {
  const plan: QueryPlan = {
    where: [],
    params: new SqlParams(),
    limit: MAX_LIMIT,
    offset: 0,
    include: new Set(),
    ignored: [],
    fuzzy: false,
  };
  for (const fuzzy of values(req.query.fuzzymatching)) {
    if (fuzzy !== 'true' && fuzzy !== 'false') {
      throw new QueryError('fuzzymatching must be true or false');
    }
    plan.fuzzy ||= fuzzy === 'true';
  }
  plan.limit = pagination(req.query.limit, 'limit', MAX_LIMIT, MAX_LIMIT);
  plan.offset = pagination(req.query.offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
  for (const field of values(req.query.includefield).flatMap((value) => value.split(','))) {
    const name = field.trim();
    if (name === '') {
      continue;
    }
    if (name === 'all') {
      plan.include = 'all';
      continue;
    }
    const tag = /^[0-9A-Fa-f]{8}$/.test(name) ? name.toUpperCase() : (QUERY_KEYS[name]?.tag ?? INCLUDABLE[name]);
    if (!tag) {
      throw new QueryError(`unknown attribute "${name}" in includefield`);
    }
    if (plan.include !== 'all') {
      plan.include.add(tag);
    }
  }
  for (const [name, raw] of Object.entries(req.query)) {
    if (RESERVED_PARAMETERS.has(name)) {
      continue;
    }
    const key = QUERY_KEYS[name] ?? KEY_BY_TAG.get(name.toUpperCase());
    if (!key || LEVEL_DEPTH[key.level] > LEVEL_DEPTH[level]) {
      plan.ignored.push(name);
      continue;
    }
    addMatch(plan, name, key, values(raw));
  }
  return plan;
}

/** PS3.18 §8.3: what the answer leaves out of the query, as `Warning: 299 <service>: <text>` values. */
function queryWarnings(service: string, plan: QueryPlan, remaining: number): string[] {
  const warnings: string[] = [];
  if (remaining > 0) {
    // §8.3.4.4.1: a page that leaves matches out says how many (so does the hub's own cap, MAX_LIMIT).
    warnings.push(
      remaining > REMAINING_COUNT_CAP
        ? `299 ${service}: There are more than ${REMAINING_COUNT_CAP} additional results that can be requested`
        : `299 ${service}: There are ${remaining} additional results that can be requested`,
    );
  }
  if (plan.fuzzy) {
    warnings.push(
      `299 ${service}: The fuzzymatching parameter is not supported. Only literal matching has been performed.`,
    );
  }
  if (plan.ignored.length > 0) {
    // The names as the client sent them, cut to what a header may hold (no control characters).
    const names = [...new Set(plan.ignored)].map((name) => name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64));
    warnings.push(
      `299 ${service}: The following query parameters are not supported and were ignored: ${names.slice(0, 20).join(', ')}`,
    );
  }
  return warnings;
}

const empty = (vr: string): DicomJsonAttribute => ({ vr });
function text(vr: string, value: string | null | undefined): DicomJsonAttribute {
  return value === null || value === undefined || value === '' ? empty(vr) : { vr, Value: [value] };
}
function integer(vr: string, value: number | null | undefined): DicomJsonAttribute {
  return value === null || value === undefined ? empty(vr) : { vr, Value: [value] };
}
function personName(value: string | null): DicomJsonAttribute {
  return value ? { vr: 'PN', Value: [{ Alphabetic: value }] } : empty('PN');
}

/** Adds the requested attributes present in one instance's stored DICOM JSON; bulk data never. */
function addIncluded(
  result: DicomJsonDataset,
  representativeJson: string | null,
  include: Set<string> | 'all',
  level: Level,
): void {
  if (!representativeJson || (include !== 'all' && include.size === 0)) {
    return;
  }
  const stored = JSON.parse(representativeJson) as DicomJsonDataset;
  const wanted = (tag: string): boolean => {
    if (include !== 'all') {
      return include.has(tag);
    }
    if (level === 'study') {
      return STUDY_MODULE_TAGS.has(tag) || tag.startsWith('0010');
    }
    if (level === 'series') {
      return SERIES_MODULE_TAGS.has(tag);
    }
    return true;
  };
  for (const [tag, attribute] of Object.entries(stored)) {
    if (tag in result || !wanted(tag) || attribute.BulkDataURI !== undefined || attribute.InlineBinary !== undefined) {
      continue;
    }
    result[tag] = attribute;
  }
}

function sortedByTag(dataset: DicomJsonDataset): DicomJsonDataset {
  return Object.fromEntries(Object.entries(dataset).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A level's results, the FHIR Patients of their studies' cases (for the audit), and how many more match. */
interface Matches {
  datasets: DicomJsonDataset[];
  patientIds: (string | null)[];
  remaining: number;
}

/** One page of rows, and how many match beyond it. */
interface Page<Row> {
  rows: Row[];
  remaining: number;
}

const withPatients = <Row extends { matched_patient_id: string | null }>(
  page: Page<Row>,
  map: (row: Row) => DicomJsonDataset,
): Matches => ({
  datasets: page.rows.map(map),
  patientIds: page.rows.map((row) => row.matched_patient_id),
  remaining: page.remaining,
});

/** A study's attributes as the index keeps them (All Series and All Instances return them too). */
interface StudyOfRow {
  patient_name: string | null;
  patient_id: string | null;
  patient_birth_date: string | null;
  patient_sex: string | null;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_description: string | null;
  referring_physician_name: string | null;
  study_id: string | null;
}
interface StudyRow extends StudyOfRow {
  study_instance_uid: string;
  modalities: string[];
  number_of_series: number;
  number_of_instances: number;
  representative_json?: string | null;
  matched_patient_id: string | null;
}
interface SeriesRow {
  study_instance_uid: string;
  series_instance_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  body_part_examined: string | null;
  number_of_instances: number;
  representative_json?: string | null;
  matched_patient_id: string | null;
}
/** The series-level attributes every series and instance result carries. */
function seriesAttributes(row: {
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
}): DicomJsonDataset {
  return {
    '00080060': text('CS', row.modality),
    '0008103E': text('LO', row.series_description),
    '00200011': integer('IS', row.series_number),
  };
}
interface InstanceRow {
  study_instance_uid: string;
  series_instance_uid: string;
  sop_instance_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  sop_class_uid: string;
  instance_number: number | null;
  rows: number | null;
  columns: number | null;
  number_of_frames: number | null;
  dicom_json?: string;
  matched_patient_id: string | null;
}

const STUDY_COLUMNS = `s.study_instance_uid, s.patient_id, s.patient_name, s.patient_birth_date, s.patient_sex, s.study_date,
  s.study_time, s.accession_number, s.study_description, s.referring_physician_name, s.study_id, s.modalities,
  s.number_of_series, s.number_of_instances, s.matched_patient_id`;

export function createQidoRoutes(options: DicomwebOptions): Router {
  const routes = express.Router();
  const db = options.ingest.db;
  const studyUrl = (study: string): string => `${options.baseUrl}/dicomweb/studies/${study}`;

  const respond = async (req: Request, res: Response, level: Level, run: (plan: QueryPlan) => Promise<Matches>) => {
    res.locals.route = `qido-${level}`;
    let plan: QueryPlan;
    try {
      plan = planQuery(req, level);
    } catch (error) {
      if (!(error instanceof QueryError)) {
        throw error;
      }
      res
        .status(400)
        .type('application/json')
        .send(JSON.stringify({ error: error.message }));
      return;
    }
    restrictToVisibleStudies(plan, studyAccessOf(res, 'search'));
    const matches = await run(plan);
    const warnings = queryWarnings(`${options.baseUrl}/dicomweb`, plan, matches.remaining);
    if (warnings.length > 0) {
      res.setHeader('Warning', warnings);
    }
    if (
      !(await audited(
        options.auditor,
        req,
        res,
        { service: 'qido-rs', outcome: '0', patientIds: matches.patientIds },
        options.logger,
      ))
    ) {
      return;
    }
    res
      .status(200)
      .type('application/dicom+json')
      .send(JSON.stringify(matches.datasets.map(sortedByTag)));
  };

  const wantsRepresentative = (plan: QueryPlan): boolean => plan.include === 'all' || plan.include.size > 0;

  /**
   * One page of a level's rows: one row more than the page is read, and only when it is there are
   * the matches counted, for the Warning that says how many the page left out.
   */
  const page = async <Row>(
    plan: QueryPlan,
    query: { select: string; from: string; where: string[]; order: string },
  ): Promise<Page<Row>> => {
    const where = query.where.length > 0 ? `WHERE ${query.where.join(' AND ')}` : '';
    const result = await db.query<Row>(
      `SELECT ${query.select} FROM ${query.from} ${where} ORDER BY ${query.order}
       LIMIT ${plan.limit + 1} OFFSET ${plan.offset}`,
      plan.params.values,
    );
    if (result.rows.length <= plan.limit) {
      return { rows: result.rows, remaining: 0 };
    }
    // Counted up to a cap, so that a page of a large archive never costs a count of all of it.
    const counted = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT 1 FROM ${query.from} ${where}
       OFFSET ${plan.offset + plan.limit} LIMIT ${REMAINING_COUNT_CAP + 1}) AS left_out`,
      plan.params.values,
    );
    return { rows: result.rows.slice(0, plan.limit), remaining: Number(counted.rows[0]?.n ?? 0) };
  };

  routes.get('/studies', (req, res) =>
    respond(req, res, 'study', async (plan) => {
      const representative = wantsRepresentative(plan)
        ? ', (SELECT r.dicom_json FROM dicom_instance r WHERE r.study_instance_uid = s.study_instance_uid LIMIT 1) AS representative_json'
        : '';
      const rows = await page<StudyRow>(plan, {
        select: `${STUDY_COLUMNS}${representative}`,
        from: 'dicom_study s',
        where: plan.where,
        order: 's.study_date DESC NULLS LAST, s.study_time DESC NULLS LAST, s.study_instance_uid',
      });
      return withPatients(rows, (row) => {
        const result: DicomJsonDataset = {
          // The index holds decoded text, which goes out as UTF-8.
          '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
          '00080020': text('DA', row.study_date),
          '00080030': text('TM', row.study_time),
          '00080050': text('SH', row.accession_number),
          '00080061': row.modalities.length ? { vr: 'CS', Value: row.modalities } : empty('CS'),
          '00080090': personName(row.referring_physician_name),
          '00081030': text('LO', row.study_description),
          '00081190': { vr: 'UR', Value: [studyUrl(row.study_instance_uid)] },
          '00100010': personName(row.patient_name),
          '00100020': text('LO', row.patient_id),
          '00100030': text('DA', row.patient_birth_date),
          '00100040': text('CS', row.patient_sex),
          '0020000D': { vr: 'UI', Value: [row.study_instance_uid] },
          '00200010': text('SH', row.study_id),
          '00201206': integer('IS', row.number_of_series),
          '00201208': integer('IS', row.number_of_instances),
        };
        addIncluded(result, row.representative_json ?? null, plan.include, 'study');
        return result;
      });
    }),
  );

  /** All Series and All Instances (PS3.18 Table 10.6.1-1) carry their study's attributes. */
  const STUDY_OF_ROW_COLUMNS = `s.patient_name, s.patient_id, s.patient_birth_date, s.patient_sex, s.study_date,
    s.study_time, s.accession_number, s.study_description, s.referring_physician_name, s.study_id`;
  const studyAttributes = (row: StudyOfRow): DicomJsonDataset => ({
    '00080020': text('DA', row.study_date),
    '00080030': text('TM', row.study_time),
    '00080050': text('SH', row.accession_number),
    '00080090': personName(row.referring_physician_name),
    '00081030': text('LO', row.study_description),
    '00100010': personName(row.patient_name),
    '00100020': text('LO', row.patient_id),
    '00100030': text('DA', row.patient_birth_date),
    '00100040': text('CS', row.patient_sex),
    '00200010': text('SH', row.study_id),
  });

  /** Study's Series (`study` given) or All Series. */
  const series = (req: Request, res: Response, studyUid: string | undefined) =>
    respond(req, res, 'series', async (plan) => {
      const scope = studyUid === undefined ? [] : [`se.study_instance_uid = ${plan.params.add(studyUid)}`];
      const representative = wantsRepresentative(plan)
        ? ', (SELECT r.dicom_json FROM dicom_instance r WHERE r.series_instance_uid = se.series_instance_uid LIMIT 1) AS representative_json'
        : '';
      const rows = await page<SeriesRow & Partial<StudyOfRow>>(plan, {
        select: `se.study_instance_uid, se.series_instance_uid, se.modality, se.series_number, se.series_description,
         se.body_part_examined, se.number_of_instances, s.matched_patient_id${
           studyUid === undefined ? `, ${STUDY_OF_ROW_COLUMNS}` : ''
         }${representative}`,
        from: 'dicom_series se JOIN dicom_study s ON s.study_instance_uid = se.study_instance_uid',
        where: [...scope, ...plan.where],
        // All Series: in the order of their key, which an index gives without sorting the whole archive.
        order:
          studyUid === undefined
            ? 'se.series_instance_uid'
            : 'se.series_number NULLS LAST, se.created_at, se.series_instance_uid',
      });
      return withPatients(rows, (row) => {
        const result: DicomJsonDataset = {
          ...(studyUid === undefined ? studyAttributes(row as StudyOfRow) : {}),
          '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
          ...seriesAttributes(row),
          '00081190': { vr: 'UR', Value: [`${studyUrl(row.study_instance_uid)}/series/${row.series_instance_uid}`] },
          '00180015': text('CS', row.body_part_examined),
          '0020000D': { vr: 'UI', Value: [row.study_instance_uid] },
          '0020000E': { vr: 'UI', Value: [row.series_instance_uid] },
          '00201209': integer('IS', row.number_of_instances),
        };
        addIncluded(result, row.representative_json ?? null, plan.include, 'series');
        return result;
      });
    });

  /**
   * Series' Instances, Study's Instances or All Instances. Each carries its series' attributes
   * (PS3.18 §10.6.3.3.3), and for All Instances its study's too.
   */
  const instances = (req: Request, res: Response, studyUid: string | undefined, seriesUid: string | undefined) =>
    respond(req, res, 'instance', async (plan) => {
      const scope: string[] = [];
      if (studyUid !== undefined) {
        scope.push(`i.study_instance_uid = ${plan.params.add(studyUid)}`);
      }
      if (seriesUid !== undefined) {
        scope.push(`i.series_instance_uid = ${plan.params.add(seriesUid)}`);
      }
      const rows = await page<InstanceRow & Partial<StudyOfRow>>(plan, {
        select: `i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid, i.sop_class_uid, i.instance_number, i.rows,
         i.columns, i.number_of_frames, s.matched_patient_id, se.modality, se.series_number, se.series_description${
           studyUid === undefined ? `, ${STUDY_OF_ROW_COLUMNS}` : ''
         }${wantsRepresentative(plan) ? ', i.dicom_json' : ''}`,
        from: `dicom_instance i JOIN dicom_series se ON se.series_instance_uid = i.series_instance_uid
         JOIN dicom_study s ON s.study_instance_uid = i.study_instance_uid`,
        where: [...scope, ...plan.where],
        // All Instances: in the order of their key, likewise.
        order:
          studyUid === undefined
            ? 'i.sop_instance_uid'
            : 'se.series_number NULLS LAST, i.series_instance_uid, i.instance_number NULLS LAST, i.sop_instance_uid',
      });
      return withPatients(rows, (row) => {
        const result: DicomJsonDataset = {
          ...(studyUid === undefined ? studyAttributes(row as StudyOfRow) : {}),
          '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
          ...seriesAttributes(row),
          '00080016': { vr: 'UI', Value: [row.sop_class_uid] },
          '00080018': { vr: 'UI', Value: [row.sop_instance_uid] },
          '00081190': {
            vr: 'UR',
            Value: [
              `${studyUrl(row.study_instance_uid)}/series/${row.series_instance_uid}/instances/${row.sop_instance_uid}`,
            ],
          },
          '0020000D': { vr: 'UI', Value: [row.study_instance_uid] },
          '0020000E': { vr: 'UI', Value: [row.series_instance_uid] },
          '00200013': integer('IS', row.instance_number),
          '00280008': integer('IS', row.number_of_frames),
          '00280010': integer('US', row.rows),
          '00280011': integer('US', row.columns),
        };
        addIncluded(result, row.dicom_json ?? null, plan.include, 'instance');
        return result;
      });
    });

  routes.get('/series', (req, res) => series(req, res, undefined));
  routes.get('/studies/:study/series', (req, res) => series(req, res, req.params.study));
  routes.get('/instances', (req, res) => instances(req, res, undefined, undefined));
  routes.get('/studies/:study/instances', (req, res) => instances(req, res, req.params.study, undefined));
  routes.get('/studies/:study/series/:series/instances', (req, res) =>
    instances(req, res, req.params.study, req.params.series),
  );
  return routes;
}
