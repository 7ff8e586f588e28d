/**
 * QIDO-RS over an index larger than a page: PS3.18 §8.3.4.4.1's Warning says how many results a page
 * leaves out, the hub's own cap of 1,000 results per answer included, and counts them only up to
 * 10,000 (beyond that it says "more than"), so that paging through a large archive never costs a
 * count of all of it. The index rows are written straight into the database: what is measured here
 * is the query, not ingest.
 */
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const STUDIES = 10_100;

describe('QIDO-RS paging over a large index', () => {
  let th: TestHub;

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres', env: { AUTH_REQUIRED: 'false' } });
    // One series of one instance per study; UIDs sort in the order of n.
    await th.hub.db.query(
      `WITH n AS (SELECT generate_series(1, $1::integer) AS n)
       INSERT INTO dicom_study (study_instance_uid, imaging_study_id, number_of_series, number_of_instances, study_date)
       SELECT '2.25.1.' || lpad(n::text, 6, '0'), 'bulk-' || n, 1, 1, '20200101' FROM n`,
      [STUDIES],
    );
    await th.hub.db.query(
      `INSERT INTO dicom_series (series_instance_uid, study_instance_uid, modality, number_of_instances)
       SELECT '2.25.2.' || substr(study_instance_uid, 8), study_instance_uid, 'CT', 1 FROM dicom_study`,
    );
    await th.hub.db.query(
      `INSERT INTO dicom_instance (sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid,
         transfer_syntax_uid, blob_key, size, sha256, dicom_json)
       SELECT '2.25.3.' || substr(study_instance_uid, 8), series_instance_uid, study_instance_uid,
         '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', 'none', 0, 'none', '{}' FROM dicom_series`,
    );
  }, 60_000);

  afterAll(async () => {
    await th?.stop();
  });

  const query = async (path: string): Promise<{ results: number; warning: string | null }> => {
    const response = await fetch(`${th.baseUrl}/dicomweb${path}`, { headers: { accept: 'application/dicom+json' } });
    expect(response.status).toBe(200);
    return { results: ((await response.json()) as unknown[]).length, warning: response.headers.get('warning') };
  };
  const leftOut = (text: string) =>
    expect.stringMatching(
      new RegExp(`^299 \\S+/dicomweb: There are ${text} additional results that can be requested$`),
    );

  test('a page says how many results it leaves out, up to 10,000; beyond, “more than”', async () => {
    for (const level of ['/studies', '/series', '/instances']) {
      expect(await query(`${level}?limit=10`)).toEqual({ results: 10, warning: leftOut('more than 10000') });
      expect(await query(`${level}?limit=10&offset=200`)).toEqual({ results: 10, warning: leftOut('9890') });
      expect(await query(`${level}?offset=10090`)).toEqual({ results: 10, warning: null });
    }
    // The hub's own cap of 1,000 results per answer is not silent either.
    expect(await query('/studies')).toEqual({ results: 1000, warning: leftOut('9100') });
    expect(await query('/instances?offset=9000')).toEqual({ results: 1000, warning: leftOut('100') });
  });

  test('All Instances pages in the order of their UIDs, each once', async () => {
    const uids = async (offset: number): Promise<string[]> => {
      const response = await fetch(`${th.baseUrl}/dicomweb/instances?limit=1000&offset=${offset}`);
      return ((await response.json()) as Record<string, { Value: string[] }>[]).map(
        (item) => item['00080018']!.Value[0]!,
      );
    };
    const first = [...(await uids(0)), ...(await uids(1000))];
    expect(first).toEqual([...first].sort());
    expect(new Set(first).size).toBe(2000);
  });
});
