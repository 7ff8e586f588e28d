/** Matching (PS3.4 §C.2.2.2) as SQL, run on a real PostgreSQL against a few rows. */
import pg from 'pg';
import { ADMIN_DATABASE_URL } from './support/test-hub.ts';
import { INDEX_ATTRIBUTE_BY_KEYWORD, QueryError, matchCondition } from '../src/dicom/query.ts';
import type { SqlQuery } from '../src/dicom/query.ts';
import { SqlParams } from '../src/db/sql-params.ts';

const ROWS = [
  {
    id: 'a',
    patient_name: 'Doe^Jane',
    study_date: '20200315',
    study_time: '101500',
    accession_number: 'ACC_1',
    study_instance_uid: '1.2.1',
    modalities: ['CT'],
    series_number: 1,
  },
  {
    id: 'b',
    patient_name: 'DOE^JOHN',
    study_date: '20201231',
    study_time: '120059.5',
    accession_number: 'ACC%2',
    study_instance_uid: '1.2.2',
    modalities: ['MR', 'PT'],
    series_number: 2,
  },
  {
    id: 'c',
    patient_name: 'Roe^Richard',
    study_date: null,
    study_time: '1201',
    accession_number: 'BCC12',
    study_instance_uid: '1.2.3',
    modalities: [],
    series_number: null,
  },
];

describe('query matching', () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await client.connect();
    await client.query(`CREATE TEMP TABLE query_rows (id text, patient_name text, patient_name_search text, study_date text, study_time text,
      accession_number text, study_instance_uid text, modalities text[], series_number integer)`);
    for (const row of ROWS) {
      await client.query('INSERT INTO query_rows VALUES ($1, $2, upper($2), $3, $4, $5, $6, $7, $8)', [
        row.id,
        row.patient_name,
        row.study_date,
        row.study_time,
        row.accession_number,
        row.study_instance_uid,
        row.modalities,
        row.series_number,
      ]);
    }
  });
  afterAll(async () => client.end());

  /** Ids of the rows matching a keyword against values; the table alias `s` and `se` both name the test table. */
  const matching = async (keyword: string, values: string[]): Promise<string[]> => {
    const query: SqlQuery = { where: [], params: new SqlParams() };
    const condition = matchCondition(query, INDEX_ATTRIBUTE_BY_KEYWORD.get(keyword)!, values);
    const result = await client.query<{ id: string }>(
      `SELECT s.id FROM query_rows s WHERE ${condition.replace(/\bse\./g, 's.')} ORDER BY s.id`,
      query.params.values,
    );
    return result.rows.map((row) => row.id);
  };

  test('text: exact, wildcards, case-insensitive names, LIKE metacharacters taken literally', async () => {
    expect(await matching('PatientName', ['doe*'])).toEqual(['a', 'b']);
    expect(await matching('PatientName', ['D?E^J*'])).toEqual(['a', 'b']);
    expect(await matching('PatientName', ['Doe^Jane'])).toEqual(['a']);
    expect(await matching('PatientName', ['Doe'])).toEqual([]);
    expect(await matching('AccessionNumber', ['ACC_1'])).toEqual(['a']);
    expect(await matching('AccessionNumber', ['ACC%*'])).toEqual(['b']);
    expect(await matching('AccessionNumber', ['?CC*'])).toEqual(['a', 'b', 'c']);
    expect(await matching('AccessionNumber', ['acc_1'])).toEqual([]);
  });

  test('dates: single, closed, open ranges; malformed values refused', async () => {
    expect(await matching('StudyDate', ['20200315'])).toEqual(['a']);
    expect(await matching('StudyDate', ['20200101-20200630'])).toEqual(['a']);
    expect(await matching('StudyDate', ['20200401-'])).toEqual(['b']);
    expect(await matching('StudyDate', ['-20201231'])).toEqual(['a', 'b']);
    expect(() =>
      matchCondition({ where: [], params: new SqlParams() }, INDEX_ATTRIBUTE_BY_KEYWORD.get('StudyDate')!, [
        '2020-03-15',
      ]),
    ).toThrow(QueryError);
    expect(() =>
      matchCondition({ where: [], params: new SqlParams() }, INDEX_ATTRIBUTE_BY_KEYWORD.get('StudyDate')!, [
        '20201231-20200101',
      ]),
    ).toThrow(QueryError);
  });

  test('times: bounds compared at their own precision', async () => {
    expect(await matching('StudyTime', ['1200'])).toEqual(['b']);
    expect(await matching('StudyTime', ['-1200'])).toEqual(['a', 'b']);
    expect(await matching('StudyTime', ['1200-'])).toEqual(['b', 'c']);
    expect(await matching('StudyTime', ['10-11'])).toEqual(['a']);
    expect(await matching('StudyTime', ['12:01'])).toEqual(['c']);
    expect(() =>
      matchCondition({ where: [], params: new SqlParams() }, INDEX_ATTRIBUTE_BY_KEYWORD.get('StudyTime')!, ['25x']),
    ).toThrow(QueryError);
  });

  test('UID lists, modalities, integers', async () => {
    expect(await matching('StudyInstanceUID', ['1.2.1', '1.2.3', '9.9'])).toEqual(['a', 'c']);
    expect(await matching('ModalitiesInStudy', ['PT', 'US'])).toEqual(['b']);
    expect(await matching('SeriesNumber', ['2', '+1'])).toEqual(['a', 'b']);
    expect(() =>
      matchCondition({ where: [], params: new SqlParams() }, INDEX_ATTRIBUTE_BY_KEYWORD.get('SeriesNumber')!, ['two']),
    ).toThrow(/SeriesNumber must be an integer/);
  });
});
