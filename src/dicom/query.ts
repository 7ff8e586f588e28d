/**
 * Query keys of the DICOM index and their matching (PS3.4 §C.2.2.2) as SQL conditions, shared by
 * QIDO-RS and the C-FIND SCP, and the access condition that filters QIDO-RS and WADO-RS for a person.
 * Pure: builds SQL text and parameters, never runs them.
 *
 * Matching:
 * - single value; `*` and `?` wildcards on text keys (LIKE, with LIKE's own metacharacters escaped);
 * - PatientName, StudyDescription and SeriesDescription match case-insensitively;
 * - UID keys, SeriesNumber and InstanceNumber take lists; ModalitiesInStudy matches any listed value;
 * - dates take `A`, `A-B`, `-B`, `A-`; times the same, a bound compared at its own precision
 *   (`-1200` includes 12:00:59.9). Date and time are matched independently, never combined.
 * The index stores DICOM dates and times as their text, which sorts and compares correctly.
 */
import type { SqlParams } from '../db/sql-params.ts';

export type IndexLevel = 'patient' | 'study' | 'series' | 'instance';
export type MatchKind = 'uid' | 'text' | 'text-ci' | 'date' | 'time' | 'modalities' | 'integer';

export interface IndexAttribute {
  keyword: string;
  /** 'GGGGEEEE' upper-case hex. */
  tag: string;
  vr: string;
  level: IndexLevel;
  /** The SQL expression holding the value, with its table alias (s = study, se = series, i = instance). */
  column: string;
  /** How the attribute can be matched; absent when it can only be returned. */
  match?: MatchKind | undefined;
  /** The column matched against when it differs from `column` (the upper-cased patient name). */
  matchColumn?: string | undefined;
}

/** Every attribute the index can match or return. Patient attributes live on dicom_study. */
export const INDEX_ATTRIBUTES: readonly IndexAttribute[] = [
  {
    keyword: 'PatientName',
    tag: '00100010',
    vr: 'PN',
    level: 'patient',
    column: 's.patient_name',
    match: 'text-ci',
    matchColumn: 's.patient_name_search',
  },
  { keyword: 'PatientID', tag: '00100020', vr: 'LO', level: 'patient', column: 's.patient_id', match: 'text' },
  {
    keyword: 'PatientBirthDate',
    tag: '00100030',
    vr: 'DA',
    level: 'patient',
    column: 's.patient_birth_date',
    match: 'date',
  },
  { keyword: 'PatientSex', tag: '00100040', vr: 'CS', level: 'patient', column: 's.patient_sex', match: 'text' },
  {
    keyword: 'StudyInstanceUID',
    tag: '0020000D',
    vr: 'UI',
    level: 'study',
    column: 's.study_instance_uid',
    match: 'uid',
  },
  { keyword: 'StudyDate', tag: '00080020', vr: 'DA', level: 'study', column: 's.study_date', match: 'date' },
  { keyword: 'StudyTime', tag: '00080030', vr: 'TM', level: 'study', column: 's.study_time', match: 'time' },
  {
    keyword: 'AccessionNumber',
    tag: '00080050',
    vr: 'SH',
    level: 'study',
    column: 's.accession_number',
    match: 'text',
  },
  {
    keyword: 'ModalitiesInStudy',
    tag: '00080061',
    vr: 'CS',
    level: 'study',
    column: 's.modalities',
    match: 'modalities',
  },
  {
    keyword: 'ReferringPhysicianName',
    tag: '00080090',
    vr: 'PN',
    level: 'study',
    column: 's.referring_physician_name',
    match: 'text',
  },
  {
    keyword: 'StudyDescription',
    tag: '00081030',
    vr: 'LO',
    level: 'study',
    column: 's.study_description',
    match: 'text-ci',
  },
  { keyword: 'StudyID', tag: '00200010', vr: 'SH', level: 'study', column: 's.study_id', match: 'text' },
  { keyword: 'NumberOfStudyRelatedSeries', tag: '00201206', vr: 'IS', level: 'study', column: 's.number_of_series' },
  {
    keyword: 'NumberOfStudyRelatedInstances',
    tag: '00201208',
    vr: 'IS',
    level: 'study',
    column: 's.number_of_instances',
  },
  {
    keyword: 'SeriesInstanceUID',
    tag: '0020000E',
    vr: 'UI',
    level: 'series',
    column: 'se.series_instance_uid',
    match: 'uid',
  },
  { keyword: 'Modality', tag: '00080060', vr: 'CS', level: 'series', column: 'se.modality', match: 'text' },
  {
    keyword: 'SeriesDescription',
    tag: '0008103E',
    vr: 'LO',
    level: 'series',
    column: 'se.series_description',
    match: 'text-ci',
  },
  {
    keyword: 'BodyPartExamined',
    tag: '00180015',
    vr: 'CS',
    level: 'series',
    column: 'se.body_part_examined',
    match: 'text',
  },
  { keyword: 'SeriesNumber', tag: '00200011', vr: 'IS', level: 'series', column: 'se.series_number', match: 'integer' },
  {
    keyword: 'NumberOfSeriesRelatedInstances',
    tag: '00201209',
    vr: 'IS',
    level: 'series',
    column: 'se.number_of_instances',
  },
  { keyword: 'SOPClassUID', tag: '00080016', vr: 'UI', level: 'instance', column: 'i.sop_class_uid', match: 'uid' },
  {
    keyword: 'SOPInstanceUID',
    tag: '00080018',
    vr: 'UI',
    level: 'instance',
    column: 'i.sop_instance_uid',
    match: 'uid',
  },
  {
    keyword: 'InstanceNumber',
    tag: '00200013',
    vr: 'IS',
    level: 'instance',
    column: 'i.instance_number',
    match: 'integer',
  },
  {
    keyword: 'NumberOfFrames',
    tag: '00280008',
    vr: 'IS',
    level: 'instance',
    column: 'i.number_of_frames',
    match: 'integer',
  },
  { keyword: 'Rows', tag: '00280010', vr: 'US', level: 'instance', column: 'i.rows', match: 'integer' },
  { keyword: 'Columns', tag: '00280011', vr: 'US', level: 'instance', column: 'i.columns', match: 'integer' },
];

export const INDEX_ATTRIBUTE_BY_TAG: ReadonlyMap<string, IndexAttribute> = new Map(
  INDEX_ATTRIBUTES.map((attribute) => [attribute.tag, attribute]),
);
export const INDEX_ATTRIBUTE_BY_KEYWORD: ReadonlyMap<string, IndexAttribute> = new Map(
  INDEX_ATTRIBUTES.map((attribute) => [attribute.keyword, attribute]),
);

/** A query key value the index cannot match (malformed date, range or number). */
export class QueryError extends Error {}

export interface SqlQuery {
  where: string[];
  params: SqlParams;
}

/** DICOM wildcards to a LIKE pattern, escaping LIKE's own metacharacters. */
export function likePattern(value: string): string {
  return value
    .replace(/[\\%_]/g, '\\$&')
    .replace(/\*/g, '%')
    .replace(/\?/g, '_');
}

export function textCondition(query: SqlQuery, column: string, value: string, caseInsensitive: boolean): string {
  const operand = caseInsensitive ? value.toUpperCase() : value;
  const target = caseInsensitive && !column.endsWith('_search') ? `upper(${column})` : column;
  if (/[*?]/.test(operand)) {
    return `${target} LIKE ${query.params.add(likePattern(operand))}`;
  }
  return `${target} = ${query.params.add(operand)}`;
}

export function dateCondition(query: SqlQuery, column: string, value: string): string {
  const range = /^(\d{8})?(-)?(\d{8})?$/.exec(value);
  if (!range || (!range[1] && !range[3]) || (!range[2] && range[3])) {
    throw new QueryError(`invalid date or date range "${value}"`);
  }
  const [, from, dash, to] = range;
  if (!dash) {
    return `${column} = ${query.params.add(from)}`;
  }
  if (from && to && from > to) {
    throw new QueryError(`date range "${value}" ends before it starts`);
  }
  const bounds: string[] = [];
  if (from) {
    bounds.push(`${column} >= ${query.params.add(from)}`);
  }
  if (to) {
    bounds.push(`${column} <= ${query.params.add(to)}`);
  }
  return bounds.join(' AND ');
}

const TIME = '(\\d{2}(?:\\d{2}(?:\\d{2}(?:\\.\\d{1,6})?)?)?)';
const TIME_RANGE = new RegExp(`^${TIME}?(-)?${TIME}?$`);

/**
 * PS3.4 §C.2.2.2.5 range matching on TM. A bound is compared at its own precision: `1200` is the
 * whole minute, so `-1200` includes 120059 and `1200` alone matches 1200 through 120059.999999.
 */
export function timeCondition(query: SqlQuery, column: string, value: string): string {
  const range = TIME_RANGE.exec(value.replace(/:/g, ''));
  const invalid = () => new QueryError(`invalid time or time range "${value}"`);
  if (!range) {
    throw invalid();
  }
  const [, from, dash, to] = range;
  const prefix = (bound: string): string => `left(${column}, ${bound.length})`;
  if (!dash) {
    // A single time: one bound and no second one.
    if (!from || to) {
      throw invalid();
    }
    return `${prefix(from)} = ${query.params.add(from)}`;
  }
  if (!from && !to) {
    throw invalid();
  }
  if (from && to && from.slice(0, Math.min(from.length, to.length)) > to.slice(0, Math.min(from.length, to.length))) {
    throw new QueryError(`time range "${value}" ends before it starts`);
  }
  const bounds: string[] = [];
  if (from) {
    bounds.push(`${column} >= ${query.params.add(from)}`);
  }
  if (to) {
    bounds.push(`${prefix(to)} <= ${query.params.add(to)}`);
  }
  return bounds.join(' AND ');
}

/**
 * The SQL condition matching an attribute against its values: a list for UIDs, integers and
 * modalities (any value matches), one value otherwise. `label` names the key in error messages.
 */
export function matchCondition(
  query: SqlQuery,
  attribute: IndexAttribute,
  values: readonly string[],
  label = attribute.keyword,
): string {
  const column = attribute.matchColumn ?? attribute.column;
  switch (attribute.match) {
    case 'uid':
      return `${column} = ANY (${query.params.add(values)}::text[])`;
    case 'modalities':
      return `${column} && ${query.params.add(values)}::text[]`;
    case 'integer':
      if (!values.every((value) => /^[+-]?\d{1,9}$/.test(value))) {
        throw new QueryError(`${label} must be an integer`);
      }
      return `${column} = ANY (${query.params.add(values.map(Number))}::integer[])`;
    case 'date':
      return `(${values.map((value) => dateCondition(query, column, value)).join(') OR (')})`;
    case 'time':
      return `(${values.map((value) => timeCondition(query, column, value)).join(') OR (')})`;
    case 'text':
    case 'text-ci':
      return textCondition(query, column, values.join('\\'), attribute.match === 'text-ci');
    default:
      throw new QueryError(`${label} cannot be matched`);
  }
}

/**
 * Which studies a request may see, as a condition on a `dicom_study` alias (AccessControl.studyCondition
 * for a person). Absent: every study (a system client, an anonymous request, a DIMSE peer).
 */
export interface StudyAccess {
  condition(binder: { add(value: unknown): string }, alias: string): string;
}

/** Adds the access condition on the `dicom_study` alias to the query's WHERE (in SQL, so paging stays right). */
export function restrictToVisibleStudies(query: SqlQuery, access: StudyAccess | undefined, alias = 's'): void {
  if (!access) {
    return;
  }
  const condition = access.condition(query.params, alias);
  if (condition !== 'TRUE') {
    query.where.push(condition);
  }
}
