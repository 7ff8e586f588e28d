/**
 * The ImagingStudy refresher (src/dicom/study-refresher.ts) waits while instances keep arriving,
 * refreshes studies that fall due together in one transaction, and a study whose refresh fails must
 * not keep the others in its batch stale.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { DICOMWEB_ENDPOINT_ID } from '../src/dicom/ingest.ts';
import { stow as stowFiles } from './support/stow.ts';
import { until } from './support/until.ts';
import { StudyRefresher } from '../src/dicom/study-refresher.ts';
import { workflowContextOf } from './support/case-fixtures.ts';
import { fhirFetch, startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

describe('ImagingStudy refresher', () => {
  let th: TestHub;

  beforeAll(async () => {
    th = await startTestHub({ db: 'postgres' });
  });

  afterAll(async () => {
    await th?.stop();
  });

  const studyUidOf = async (sopInstanceUid: string): Promise<string> =>
    (
      await th.hub.db.query<{ study_instance_uid: string }>(
        'SELECT study_instance_uid FROM dicom_instance WHERE sop_instance_uid = $1',
        [sopInstanceUid],
      )
    ).rows[0]!.study_instance_uid;
  const imagingStudy = async (
    studyUid: string,
  ): Promise<{ description?: string; meta: { versionId: string } } | undefined> => {
    const identifier = encodeURIComponent(`urn:dicom:uid|urn:oid:${studyUid}`);
    const bundle = await fhirFetch(`${th.fhir}/ImagingStudy?identifier=${identifier}`);
    return bundle.body.entry?.[0]?.resource;
  };
  const marked = async (): Promise<string[]> =>
    (
      await th.hub.db.query<{ study_instance_uid: string }>(
        'SELECT study_instance_uid FROM dicom_study_refresh ORDER BY 1',
      )
    ).rows.map((row) => row.study_instance_uid);

  /**
   * Two instances of two studies, stored by STOW-RS; once the hub's own refresher has written their
   * ImagingStudies and left no study marked, their study UIDs.
   */
  const storeTwoStudies = async (): Promise<{ ct: string; mr: string }> => {
    const stored = await stowFiles(
      th.baseUrl,
      await Promise.all(['CT_small.dcm', 'MR_small.dcm'].map((name) => readFile(join(TEST_FILES, name)))),
    );
    expect(stored.status).toBe(200);
    const ct = await studyUidOf('1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322');
    const mr = await studyUidOf('1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457');
    await until(
      async () =>
        (await imagingStudy(ct)) !== undefined &&
        (await imagingStudy(mr)) !== undefined &&
        (await marked()).length === 0,
      'both ImagingStudies, and no study left marked',
      5_000,
      50,
    );
    return { ct, mr };
  };

  test('refreshes wait while ingest goes on, until it pauses or a study has waited the longest delay', async () => {
    const { ct, mr } = await storeTwoStudies();
    // Both studies change, and are marked as ingest marks them.
    const change = async (uids: string[], description: string): Promise<void> => {
      await th.hub.db.query(
        'UPDATE dicom_study SET study_description = $2 WHERE study_instance_uid = ANY($1::text[])',
        [uids, description],
      );
      await th.hub.db.query(
        'INSERT INTO dicom_study_refresh (study_instance_uid) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING',
        [uids],
      );
    };
    await change([ct, mr], 'during the stream');
    const refresher = new StudyRefresher({
      db: th.hub.db,
      repository: workflowContextOf(th).repository,
      endpointId: DICOMWEB_ENDPOINT_ID,
      logger: pino({ level: 'silent' }),
      quietMs: 300,
      maxDelayMs: 3_000,
    });
    const described = async (uid: string): Promise<string | undefined> => (await imagingStudy(uid))?.description;
    try {
      const t0 = Date.now();
      refresher.touch(ct);
      // The MR keeps getting instances: this process's ingest never pauses.
      const stream = setInterval(() => refresher.touch(mr), 40);
      try {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        // The CT has had no instance for over a second, but ingest is busy: it waits.
        expect(await described(ct)).not.toBe('during the stream');
        // Once it has waited the longest delay, it is refreshed though the stream goes on.
        await until(async () => (await described(ct)) === 'during the stream', 'the CT refreshed', 10_000, 50);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(3_000);
      } finally {
        clearInterval(stream);
      }
      await until(async () => (await described(mr)) === 'during the stream', 'the MR refreshed', 10_000, 50);
      expect(await marked()).toEqual([]);

      // Once ingest pauses, a study touched alone is refreshed after the quiet time, not the delay.
      await change([ct], 'after the stream');
      const t1 = Date.now();
      refresher.touch(ct);
      await until(async () => (await described(ct)) === 'after the stream', 'the CT refreshed again', 10_000, 50);
      expect(Date.now() - t1).toBeLessThan(3_000);
    } finally {
      await refresher.stop();
    }
  });

  test('a study whose refresh fails keeps its mark; the other studies of its batch are refreshed', async () => {
    const { ct, mr } = await storeTwoStudies();
    const mrBefore = (await imagingStudy(mr))!;

    // Both studies change and are marked; the CT's ImagingStudy id is made unusable, so its write fails.
    await th.hub.db.query(
      "UPDATE dicom_study SET study_description = 'second look', imaging_study_id = CASE WHEN study_instance_uid = $1 THEN 'not an id!' ELSE imaging_study_id END WHERE study_instance_uid = ANY($2::text[])",
      [ct, [ct, mr]],
    );
    await th.hub.db.query('INSERT INTO dicom_study_refresh (study_instance_uid) SELECT unnest($1::text[])', [[ct, mr]]);

    const refresher = new StudyRefresher({
      db: th.hub.db,
      repository: workflowContextOf(th).repository,
      endpointId: DICOMWEB_ENDPOINT_ID,
      logger: pino({ level: 'silent' }),
    });
    await expect(refresher.flush([ct, mr])).rejects.toThrow();
    await refresher.stop();

    const mrAfter = (await imagingStudy(mr))!;
    expect(mrAfter.description).toBe('second look');
    expect(Number(mrAfter.meta.versionId)).toBe(Number(mrBefore.meta.versionId) + 1);
    expect(await marked()).toEqual([ct]);
  });
});
