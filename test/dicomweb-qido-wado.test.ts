/**
 * QIDO-RS and WADO-RS against a real hub, with instances loaded by dcmtk's storescu: every QIDO
 * match type and their combinations, paging, includefield, OHIF's study query; WADO-RS retrieval
 * split back into parts that are byte-identical to the stored blobs (and to the sent files),
 * metadata with absolute BulkDataURIs, 404s, 406s and the CORS headers browser viewers need.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPart10, runDcmtk, storescuProfile } from './support/dicom/test-peer.ts';
import type { Part10File } from './support/dicom/test-peer.ts';
import { FileBlobStore } from '../src/storage/blob-store.ts';
import { installedBlob } from './support/staged-blobs.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const JPEG2000 = '1.2.840.10008.1.2.4.91';

type Dataset = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

interface Fixture {
  path: string;
  part10: Part10File;
  study: string;
  series: string;
}

/** The parts of a multipart/related body, each with its headers (lower-cased names) and bytes. */
function splitMultipart(body: Buffer, contentType: string): { headers: Map<string, string>; body: Buffer }[] {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)![1]!;
  const parts: { headers: Map<string, string>; body: Buffer }[] = [];
  let position = body.indexOf(`--${boundary}\r\n`);
  while (position !== -1) {
    const headerStart = position + boundary.length + 4;
    const headerEnd = body.indexOf('\r\n\r\n', headerStart);
    const headers = new Map(
      body
        .toString('latin1', headerStart, headerEnd)
        .split('\r\n')
        .map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
        }),
    );
    const next = body.indexOf(`\r\n--${boundary}`, headerEnd + 4);
    const part = body.subarray(headerEnd + 4, next);
    expect(part.length).toBe(Number(headers.get('content-length')));
    parts.push({ headers, body: part });
    position = body.indexOf(`--${boundary}\r\n`, next + 2);
  }
  expect(body.toString('latin1', body.length - boundary.length - 6)).toBe(`--${boundary}--\r\n`);
  return parts;
}

const value = (dataset: Dataset, tag: string): unknown => dataset[tag]?.Value?.[0];
const uids = (datasets: Dataset[], tag: string): string[] =>
  datasets.map((dataset) => value(dataset, tag) as string).sort();

describe('DICOMweb QIDO-RS and WADO-RS', () => {
  let th: TestHub;
  let workDir: string;
  let dicomweb: string;
  let blobs: FileBlobStore;
  const fixtures = new Map<string, Fixture>();
  const fixture = (name: string): Fixture => fixtures.get(name)!;

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${dicomweb}${path}`, { headers });
  const qido = async (path: string): Promise<Dataset[]> => {
    const response = await get(path, { accept: 'application/dicom+json' });
    expect({ path, status: response.status }).toEqual({ path, status: 200 });
    expect(response.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
    return (await response.json()) as Dataset[];
  };
  const studiesMatching = async (query: string): Promise<string[]> => uids(await qido(`/studies?${query}`), '0020000D');
  const storedBlob = async (sop: string): Promise<Buffer> => {
    const row = await th.hub.db.query<{ blob_key: string }>(
      'SELECT blob_key FROM dicom_instance WHERE sop_instance_uid = $1',
      [sop],
    );
    return installedBlob(th.hub.db, blobs, row.rows[0]!.blob_key);
  };

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dicomweb-qido-wado-'));
    th = await startTestHub({
      env: { DIMSE_PORT: '0', DIMSE_AE_TITLE: 'HUB', CORS_ALLOWED_ORIGINS: 'https://viewer.example.org' },
    });
    dicomweb = `${th.baseUrl}/dicomweb`;
    blobs = new FileBlobStore(join(th.config.dataDir, 'blobs'));

    // Originals, plus copies with fresh UIDs and other patients; `ct-pt` adds a second (PT) series to CT_small's study.
    const plan: { name: string; source: string; regenerate: string[]; set: string[] }[] = [
      { name: 'ct', source: 'CT_small.dcm', regenerate: [], set: [] },
      { name: 'mr', source: 'MR_small.dcm', regenerate: [], set: [] },
      { name: 'nm', source: 'JPEG2000.dcm', regenerate: [], set: [] },
      { name: 'ct-pt', source: 'CT_small.dcm', regenerate: ['-gse', '-gin'], set: ['(0008,0060)=PT', '(0020,0011)=2'] },
      {
        name: 'jane',
        source: 'CT_small.dcm',
        regenerate: ['-gst', '-gse', '-gin'],
        set: [
          '(0010,0010)=Doe^Jane',
          '(0010,0020)=DOE-1',
          '(0008,0050)=ACC-1',
          '(0008,0020)=20200315',
          '(0008,1030)=Chest CT',
          '(0008,0090)=Welby^Marcus',
          '(0010,0030)=19700101',
        ],
      },
      {
        name: 'john',
        source: 'MR_small.dcm',
        regenerate: ['-gst', '-gse', '-gin'],
        set: [
          '(0010,0010)=DOE^JOHN',
          '(0010,0020)=DOE-2',
          '(0008,0050)=ACC-2',
          '(0008,0020)=20201231',
          '(0008,1030)=Brain MR',
        ],
      },
    ];
    for (const entry of plan) {
      let path = join(TEST_FILES, entry.source);
      if (entry.regenerate.length > 0) {
        const copy = join(workDir, `${entry.name}.dcm`);
        await copyFile(path, copy);
        const modified = await runDcmtk('dcmodify', [
          '-nb',
          ...entry.regenerate,
          ...entry.set.flatMap((set) => ['-i', set]),
          copy,
        ]);
        expect({ code: modified.code, output: modified.output }).toEqual({ code: 0, output: '' });
        path = copy;
      }
      const dump = await runDcmtk('dcmdump', ['-s', '+P', '0020,000d', '+P', '0020,000e', path]);
      const [study, series] = [...dump.output.matchAll(/\[([\d.]+)\]/g)].map((match) => match[1]!);
      fixtures.set(entry.name, { path, part10: await readPart10(path), study: study!, series: series! });
    }
    const files = [...fixtures.values()];
    const profile = join(workDir, 'load.cfg');
    await writeFile(
      profile,
      storescuProfile(
        files.map((file) => file.part10),
        'Load',
      ),
    );
    const stored = await runDcmtk(
      'storescu',
      [
        '-nh',
        '-xf',
        profile,
        'Load',
        '-aet',
        'STORESCU',
        '-aec',
        'HUB',
        '127.0.0.1',
        String(th.hub.dimsePort),
        ...files.map((file) => file.path),
      ],
      30_000,
    );
    expect(stored.code).toBe(0);
    const count = await th.hub.db.query<{ count: string }>('SELECT count(*) FROM dicom_instance');
    expect(Number(count.rows[0]!.count)).toBe(files.length);
  }, 30_000);

  afterAll(async () => {
    await th?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  test('QIDO /studies answers every study with the attributes OHIF reads and a working RetrieveURL', async () => {
    const studies = await qido('/studies');
    expect(studies).toHaveLength(5);
    const ct = studies.find((study) => value(study, '0020000D') === fixture('ct').study)!;
    expect(ct).toMatchObject({
      '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
      '00080020': { vr: 'DA', Value: ['20040119'] },
      '00080030': { vr: 'TM', Value: ['072730'] },
      '00080050': { vr: 'SH' },
      '00080061': { vr: 'CS', Value: ['CT', 'PT'] },
      '00081030': { vr: 'LO', Value: ['e+1'] },
      '00081190': { vr: 'UR', Value: [`${dicomweb}/studies/${fixture('ct').study}`] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'CompressedSamples^CT1' }] },
      '00100020': { vr: 'LO', Value: ['1CT1'] },
      '00200010': { vr: 'SH' },
      '00201206': { vr: 'IS', Value: [2] },
      '00201208': { vr: 'IS', Value: [2] },
    });
    expect(ct['00080050']!.Value).toBeUndefined();
    expect(ct['00080090']).toBeDefined();
    // Ordered newest first.
    expect(studies.map((study) => value(study, '00080020'))).toEqual([
      '20201231',
      '20200315',
      '20040826',
      '20040826',
      '20040119',
    ]);
    const retrieved = await get(new URL(value(ct, '00081190') as string).pathname.replace('/dicomweb', ''));
    expect(retrieved.status).toBe(200);
    expect(
      splitMultipart(Buffer.from(await retrieved.arrayBuffer()), retrieved.headers.get('content-type')!),
    ).toHaveLength(2);
  });

  test('QIDO study matching: names with wildcards, ids, dates and ranges, modalities, UID lists, combinations', async () => {
    const [ct, mr, nm, jane, john] = ['ct', 'mr', 'nm', 'jane', 'john'].map((name) => fixture(name).study);
    const expectMatch = async (query: string, expected: string[]) =>
      expect({ query, studies: await studiesMatching(query) }).toEqual({ query, studies: [...expected].sort() });
    await expectMatch('PatientName=doe*', [jane!, john!]);
    await expectMatch('PatientName=doe%5Ejane', [jane!]);
    await expectMatch('PatientName=*%5EJ%3FHN', [john!]);
    await expectMatch('PatientName=*samples*', [ct!, mr!, nm!]);
    await expectMatch('PatientName=Doe', []);
    await expectMatch('PatientID=DOE-1', [jane!]);
    await expectMatch('00100020=DOE-2', [john!]);
    await expectMatch('PatientID=*MR1', [mr!]);
    await expectMatch('AccessionNumber=ACC-2', [john!]);
    await expectMatch('00080050=ACC-*', [jane!, john!]);
    await expectMatch('StudyDescription=*bone*', [nm!]);
    await expectMatch('StudyDescription=chest%20ct', [jane!]);
    await expectMatch('ModalitiesInStudy=PT', [ct!]);
    await expectMatch('ModalitiesInStudy=MR,NM', [mr!, nm!, john!]);
    await expectMatch('ModalitiesInStudy=MR&ModalitiesInStudy=NM', [mr!, nm!, john!]);
    await expectMatch('StudyDate=20040826', [mr!, nm!]);
    await expectMatch('00080020=20200101-20201231', [jane!, john!]);
    await expectMatch('StudyDate=-20041231', [ct!, mr!, nm!]);
    await expectMatch('StudyDate=20200401-', [john!]);
    await expectMatch(`StudyInstanceUID=${ct},${john}`, [ct!, john!]);
    await expectMatch(`StudyInstanceUID=${ct}&StudyInstanceUID=${nm}`, [ct!, nm!]);
    await expectMatch(`0020000D=${mr}`, [mr!]);
    // PS3.18 §8.3.4.1: a UID list may be separated by backslashes (%5C) as well as by commas.
    await expectMatch(`StudyInstanceUID=${ct}%5C${john}`, [ct!, john!]);
    await expectMatch(`0020000D=${ct}%5C${mr},${nm}`, [ct!, mr!, nm!]);
    await expectMatch(`StudyInstanceUID=${jane}%5C1.2.3.4`, [jane!]);
    await expectMatch('PatientName=doe*&StudyDate=20200101-20200630', [jane!]);
    await expectMatch('ModalitiesInStudy=CT&StudyDate=20200101-', [jane!]);
    await expectMatch('PatientName=&PatientID=', [ct!, mr!, nm!, jane!, john!]);
    await expectMatch('PatientID=nobody', []);
    // PS3.18 Table 10.6.1-5's other study keys, and the patient's the index keeps.
    await expectMatch('StudyTime=180000-190000', [mr!, nm!, john!]);
    await expectMatch('00080030=-0800', [ct!, jane!]);
    await expectMatch('StudyDate=20040826&StudyTime=185059', [mr!, nm!]);
    await expectMatch('ReferringPhysicianName=Welby*', [jane!]);
    await expectMatch('00080090=Welby%5EMarcus', [jane!]);
    await expectMatch('PatientBirthDate=19600101-19801231', [jane!]);
    await expectMatch('PatientSex=F', [mr!, john!]);
  });

  test('QIDO ignores the query keys it does not match on, and says so; fuzzymatching gets literal matching and a Warning', async () => {
    const everyStudy = await studiesMatching('');
    expect(everyStudy).toHaveLength(5);
    // PS3.18 §8.3: unsupported query parameters are ignored, here named in a Warning header.
    for (const query of ['Foo=1', 'SOPInstanceUID=1.2.3', '00991001=x&PatientID=DOE-1']) {
      const response = await get(`/studies?${query}`, { accept: 'application/dicom+json' });
      expect({ query, status: response.status }).toEqual({ query, status: 200 });
      const warning = response.headers.get('warning') ?? '';
      expect(warning).toMatch(
        /^299 http:\/\/\S+\/dicomweb: The following query parameters are not supported and were ignored: /,
      );
      expect(warning).toContain(query.split('=')[0]);
    }
    expect(await studiesMatching('Foo=1')).toEqual(everyStudy);
    expect(await studiesMatching('00991001=x&PatientID=DOE-1')).toEqual([fixture('jane').study]);
    const series = await get(`/studies/${fixture('ct').study}/series?SOPInstanceUID=1.2`);
    expect([series.status, series.headers.get('warning')]).toEqual([200, expect.stringContaining('SOPInstanceUID')]);
    // Keys it matches on get no Warning.
    expect((await get('/studies?PatientID=DOE-1')).headers.get('warning')).toBeNull();

    const fuzzy = await get('/studies?PatientName=doe%5Ejane&fuzzymatching=true');
    expect(fuzzy.status).toBe(200);
    expect(fuzzy.headers.get('warning')).toMatch(
      /^299 \S+: The fuzzymatching parameter is not supported\. Only literal matching has been performed\.$/,
    );
    expect(uids((await fuzzy.json()) as Dataset[], '0020000D')).toEqual([fixture('jane').study]);
    expect((await get('/studies?fuzzymatching=false')).headers.get('warning')).toBeNull();
    expect((await get('/studies?fuzzymatching=maybe')).status).toBe(400);
  });

  test('QIDO refuses bad dates and ranges, bad numbers and unknown includefields (400)', async () => {
    for (const query of [
      'StudyDate=20201231-20200101',
      'StudyDate=2020-01-01',
      'StudyDate=-',
      'includefield=NoSuchKeyword',
      'StudyTime=12ab',
      'limit=-1',
      'offset=x',
    ]) {
      const response = await get(`/studies?${query}`);
      expect({ query, status: response.status }).toEqual({ query, status: 400 });
    }
    expect((await get(`/studies/${fixture('ct').study}/series?SeriesNumber=two`)).status).toBe(400);
  });

  test('QIDO limit and offset page through the studies; OHIF query with includefield; includefield=all', async () => {
    const all = (await qido('/studies')).map((study) => value(study, '0020000D'));
    const pages = [
      await qido('/studies?limit=2'),
      await qido('/studies?limit=2&offset=2'),
      await qido('/studies?offset=4&limit=2'),
    ];
    expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
    expect(pages.flat().map((study) => value(study, '0020000D'))).toEqual(all);
    expect(await qido('/studies?offset=10')).toEqual([]);
    // PS3.18 §8.3.4.4.1: a page that leaves matches out says how many, in a Warning.
    const remaining = async (query: string): Promise<string | null> =>
      (await get(`/studies?${query}`, { accept: 'application/dicom+json' })).headers.get('warning');
    expect(await remaining('limit=2')).toMatch(
      /^299 \S+\/dicomweb: There are 3 additional results that can be requested$/,
    );
    expect(await remaining('limit=2&offset=2')).toMatch(/There are 1 additional results/);
    expect(await remaining('limit=2&offset=3')).toBeNull();
    expect(await remaining('limit=1&PatientName=doe*')).toMatch(/There are 1 additional results/);
    expect(await remaining('')).toBeNull();
    const seriesPage = await get('/series?limit=4&offset=1');
    expect([((await seriesPage.json()) as Dataset[]).length, seriesPage.headers.get('warning')]).toEqual([
      4,
      expect.stringMatching(/There are 1 additional results/),
    ]);

    const ohif = await qido('/studies?limit=25&offset=0&fuzzymatching=false&includefield=00081030%2C00080060');
    expect(ohif).toHaveLength(5);
    for (const study of ohif) {
      for (const tag of [
        '0020000D',
        '00080020',
        '00080030',
        '00080050',
        '00100010',
        '00100020',
        '00201208',
        '00080061',
        '00081030',
      ]) {
        expect(study[tag]).toBeDefined();
      }
    }

    const [plain] = await qido(`/studies?StudyInstanceUID=${fixture('ct').study}`);
    const [everything] = await qido(`/studies?StudyInstanceUID=${fixture('ct').study}&includefield=all`);
    expect(everything).toMatchObject(plain!);
    expect(Object.keys(everything!).length).toBeGreaterThan(Object.keys(plain!).length);
    expect(Object.keys(everything!).every((tag) => !tag.startsWith('7FE0') && !tag.startsWith('0028'))).toBe(true);
    const [birth] = await qido(
      `/studies?StudyInstanceUID=${fixture('ct').study}&includefield=PatientBirthDate&includefield=00180050`,
    );
    expect(birth!['00180050']).toEqual({ vr: 'DS', Value: [5] });
    const [instance] = await qido(
      `/studies/${fixture('ct').study}/series/${fixture('ct').series}/instances?includefield=all`,
    );
    expect(instance!['00180050']).toBeDefined();
    expect(instance!['7FE00010']).toBeUndefined();
  });

  test('QIDO All Series and All Instances, with their study’s attributes; a study’s instances carry their series’', async () => {
    const [ct, ctPt, jane] = [fixture('ct'), fixture('ct-pt'), fixture('jane')];
    // PS3.18 Table 10.6.1-1: /series and /instances, across studies, matched on any level above.
    const pt = await qido('/series?Modality=PT');
    expect(uids(pt, '0020000E')).toEqual([ctPt.series]);
    expect(pt[0]).toMatchObject({
      '00080020': { vr: 'DA', Value: ['20040119'] },
      '00080060': { vr: 'CS', Value: ['PT'] },
      '0020000D': { vr: 'UI', Value: [ct.study] },
      '00200011': { vr: 'IS', Value: [2] },
    });
    expect(value(pt[0]!, '00100020')).toBeDefined();
    expect(uids(await qido('/series'), '0020000E')).toHaveLength(6);
    expect(uids(await qido('/series?PatientID=DOE-1'), '0020000E')).toEqual([jane.series]);

    const janes = await qido('/instances?PatientID=DOE-1');
    expect(uids(janes, '00080018')).toEqual([jane.part10.sopInstanceUid]);
    expect(janes[0]).toMatchObject({
      '00080050': { vr: 'SH', Value: ['ACC-1'] },
      '00080060': { vr: 'CS', Value: ['CT'] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] },
      '0020000D': { vr: 'UI', Value: [jane.study] },
      '0020000E': { vr: 'UI', Value: [jane.series] },
    });
    expect(uids(await qido('/instances?Modality=PT'), '00080018')).toEqual([ctPt.part10.sopInstanceUid]);
    expect(uids(await qido(`/instances?SOPInstanceUID=${ct.part10.sopInstanceUid}`), '00080018')).toEqual([
      ct.part10.sopInstanceUid,
    ]);
    expect(await qido('/instances?limit=2&offset=5')).toHaveLength(1);
    expect((await get('/series?StudyDate=2020-01-01')).status).toBe(400);

    // PS3.18 §10.6.3.3.3: a study's instances carry the series-level attributes, but not the study's.
    const ofStudy = await qido(`/studies/${ct.study}/instances?Modality=PT`);
    expect(uids(ofStudy, '00080018')).toEqual([ctPt.part10.sopInstanceUid]);
    expect(ofStudy[0]).toMatchObject({ '00080060': { vr: 'CS', Value: ['PT'] }, '00200011': { vr: 'IS', Value: [2] } });
    expect(ofStudy[0]!['00100020']).toBeUndefined();
  });

  test('QIDO series and instances of a study, with Modality, SeriesInstanceUID, SOPInstanceUID matching', async () => {
    const ct = fixture('ct');
    const ctPt = fixture('ct-pt');
    const series = await qido(`/studies/${ct.study}/series`);
    expect(series.map((entry) => value(entry, '0020000E'))).toEqual([ct.series, ctPt.series]);
    expect(series[1]).toMatchObject({
      '00080060': { vr: 'CS', Value: ['PT'] },
      '0008103E': { vr: 'LO' },
      '00081190': { vr: 'UR', Value: [`${dicomweb}/studies/${ct.study}/series/${ctPt.series}`] },
      '0020000E': { vr: 'UI', Value: [ctPt.series] },
      '00200011': { vr: 'IS', Value: [2] },
      '00201209': { vr: 'IS', Value: [1] },
    });
    expect(uids(await qido(`/studies/${ct.study}/series?Modality=PT`), '0020000E')).toEqual([ctPt.series]);
    expect(uids(await qido(`/studies/${ct.study}/series?0020000E=${ct.series}`), '0020000E')).toEqual([ct.series]);
    expect(
      uids(await qido(`/studies/${ct.study}/series?SeriesInstanceUID=${ct.series}%5C${ctPt.series}`), '0020000E'),
    ).toEqual([ct.series, ctPt.series].sort());
    expect(uids(await qido(`/studies/${ct.study}/series?0020000E=1.2.3%5C${ctPt.series}`), '0020000E')).toEqual([
      ctPt.series,
    ]);
    expect(await qido(`/studies/${ct.study}/series?Modality=MR`)).toEqual([]);
    expect(await qido('/studies/1.2.3.4/series')).toEqual([]);

    const instances = await qido(`/studies/${ct.study}/instances`);
    expect(uids(instances, '00080018')).toEqual([ct.part10.sopInstanceUid, ctPt.part10.sopInstanceUid].sort());
    const [one] = await qido(`/studies/${ct.study}/series/${ct.series}/instances`);
    expect(one).toMatchObject({
      '00080016': { vr: 'UI', Value: [ct.part10.sopClassUid] },
      '00080018': { vr: 'UI', Value: [ct.part10.sopInstanceUid] },
      '00081190': {
        vr: 'UR',
        Value: [`${dicomweb}/studies/${ct.study}/series/${ct.series}/instances/${ct.part10.sopInstanceUid}`],
      },
      '00200013': { vr: 'IS', Value: [1] },
      '00280010': { vr: 'US', Value: [128] },
      '00280011': { vr: 'US', Value: [128] },
      '00280008': { vr: 'IS' },
    });
    const bySop = await qido(`/studies/${ct.study}/instances?SOPInstanceUID=${ctPt.part10.sopInstanceUid}`);
    expect(uids(bySop, '00080018')).toEqual([ctPt.part10.sopInstanceUid]);
    const bothSops = `${ct.part10.sopInstanceUid}%5C${ctPt.part10.sopInstanceUid}`;
    for (const path of [`/studies/${ct.study}/instances`, `/studies/${ct.study}/series/${ct.series}/instances`]) {
      expect(uids(await qido(`${path}?SOPInstanceUID=${bothSops}`), '00080018')).toEqual(
        path.includes('/series/')
          ? [ct.part10.sopInstanceUid]
          : [ct.part10.sopInstanceUid, ctPt.part10.sopInstanceUid].sort(),
      );
    }
    expect(
      await qido(
        `/studies/${ct.study}/instances?SOPClassUID=1.2.3%5C${ct.part10.sopClassUid}&SeriesInstanceUID=${ct.series}%5C1.2.3`,
      ),
    ).toHaveLength(1);
    expect(await qido(`/studies/${ct.study}/instances?Modality=PT&InstanceNumber=1`)).toHaveLength(1);
    const nm = fixture('nm');
    const [jpeg] = await qido(`/studies/${nm.study}/series/${nm.series}/instances`);
    expect(value(jpeg!, '00280010')).toBe(1024);
  });

  test('WADO-RS retrieves instances, series and studies byte for byte as stored (and as sent)', async () => {
    const sameAsSent: Record<string, boolean> = {};
    for (const name of ['ct', 'mr', 'nm', 'jane', 'john']) {
      const { study, series, part10 } = fixture(name);
      const response = await get(`/studies/${study}/series/${series}/instances/${part10.sopInstanceUid}`, {
        accept: 'multipart/related; type="application/dicom"; transfer-syntax=*',
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^multipart\/related;.*type="?application\/dicom"?/);
      const [part, ...rest] = splitMultipart(
        Buffer.from(await response.arrayBuffer()),
        response.headers.get('content-type')!,
      );
      expect(rest).toHaveLength(0);
      expect(part!.headers.get('content-type')).toBe(`application/dicom; transfer-syntax=${part10.transferSyntaxUid}`);
      expect(part!.body.equals(await storedBlob(part10.sopInstanceUid))).toBe(true);
      // The hub writes its own meta header, so the data sets are compared.
      const retrieved = (await readPart10Buffer(part!.body, workDir, name)).dataSet;
      sameAsSent[name] = retrieved.equals(part10.dataSet);
    }
    // storescu re-encodes pydicom's originals as it sends them (dicom-ingest.test.ts checks those
    // against a bit-preserving storescp); the files dcmodify wrote go over the wire unchanged.
    expect(sameAsSent).toEqual({ ct: false, mr: false, nm: false, jane: true, john: true });

    const ct = fixture('ct');
    const ctPt = fixture('ct-pt');
    const studyResponse = await get(`/studies/${ct.study}`, { accept: 'multipart/related; type="application/dicom"' });
    const studyParts = splitMultipart(
      Buffer.from(await studyResponse.arrayBuffer()),
      studyResponse.headers.get('content-type')!,
    );
    expect(studyParts.map((part) => part.headers.get('content-location'))).toEqual(
      [ct, ctPt].map(
        (entry) => `${dicomweb}/studies/${ct.study}/series/${entry.series}/instances/${entry.part10.sopInstanceUid}`,
      ),
    );
    expect(studyParts[0]!.body.equals(await storedBlob(ct.part10.sopInstanceUid))).toBe(true);
    expect(studyParts[1]!.body.equals(await storedBlob(ctPt.part10.sopInstanceUid))).toBe(true);

    const seriesResponse = await get(`/studies/${ct.study}/series/${ctPt.series}`);
    expect(seriesResponse.status).toBe(200);
    const seriesParts = splitMultipart(
      Buffer.from(await seriesResponse.arrayBuffer()),
      seriesResponse.headers.get('content-type')!,
    );
    expect(seriesParts).toHaveLength(1);
    expect(seriesParts[0]!.body.equals(await storedBlob(ctPt.part10.sopInstanceUid))).toBe(true);
  });

  test('WADO-RS answers 406 for a transfer syntax it would have to transcode to, or a media type it does not offer', async () => {
    const nm = fixture('nm');
    const ct = fixture('ct');
    const explicit = `multipart/related; type="application/dicom"; transfer-syntax=${EXPLICIT_LE}`;
    expect((await get(`/studies/${ct.study}/series/${ct.series}`, { accept: explicit })).status).toBe(200);
    expect((await get(`/studies/${nm.study}`, { accept: explicit })).status).toBe(406);
    expect(
      (
        await get(`/studies/${nm.study}`, {
          accept: `${explicit}, multipart/related; type="application/dicom"; transfer-syntax=${JPEG2000}`,
        })
      ).status,
    ).toBe(200);
    expect((await get(`/studies/${nm.study}`, { accept: 'application/dicom+json' })).status).toBe(406);
    expect(
      (await get(`/studies/${nm.study}/metadata`, { accept: 'multipart/related; type="application/dicom"' })).status,
    ).toBe(406);
    expect((await get(`/studies/${nm.study}`, { accept: '*/*' })).status).toBe(200);
  });

  test('WADO-RS metadata: the stored header with absolute BulkDataURIs, agreeing with QIDO', async () => {
    const ct = fixture('ct');
    const ctPt = fixture('ct-pt');
    const instanceUrl = `${dicomweb}/studies/${ct.study}/series/${ct.series}/instances/${ct.part10.sopInstanceUid}`;
    const response = await get(
      `/studies/${ct.study}/series/${ct.series}/instances/${ct.part10.sopInstanceUid}/metadata`,
      { accept: 'application/dicom+json' },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
    const [metadata, ...rest] = (await response.json()) as Dataset[];
    expect(rest).toHaveLength(0);
    expect(metadata!['7FE00010']).toEqual({ vr: 'OW', BulkDataURI: `${instanceUrl}/bulkdata/7FE00010` });
    const [study] = await qido(`/studies?StudyInstanceUID=${ct.study}`);
    for (const tag of ['0020000D', '00080020', '00080030', '00100010', '00100020', '00081030']) {
      expect({ tag, value: metadata![tag]!.Value }).toEqual({ tag, value: study![tag]!.Value });
    }
    const [instance] = await qido(`/studies/${ct.study}/series/${ct.series}/instances`);
    for (const tag of ['00080016', '00080018', '0020000E', '00200013', '00280010', '00280011']) {
      expect({ tag, value: metadata![tag]!.Value }).toEqual({ tag, value: instance![tag]!.Value });
    }

    const studyMetadata = (await (await get(`/studies/${ct.study}/metadata`)).json()) as Dataset[];
    expect(studyMetadata.map((dataset) => value(dataset, '00080018'))).toEqual([
      ct.part10.sopInstanceUid,
      ctPt.part10.sopInstanceUid,
    ]);
    expect(studyMetadata[1]!['7FE00010']!.BulkDataURI).toBe(
      `${dicomweb}/studies/${ct.study}/series/${ctPt.series}/instances/${ctPt.part10.sopInstanceUid}/bulkdata/7FE00010`,
    );
    const seriesMetadata = (await (
      await get(`/studies/${ct.study}/series/${ctPt.series}/metadata`)
    ).json()) as Dataset[];
    expect(seriesMetadata.map((dataset) => value(dataset, '00080060'))).toEqual(['PT']);
  });

  test('WADO-RS bulkdata: a native value as application/octet-stream; 404 and 406 where it cannot answer', async () => {
    const ct = fixture('ct');
    const instancePath = `/studies/${ct.study}/series/${ct.series}/instances/${ct.part10.sopInstanceUid}`;
    const [metadata] = (await (await get(`${instancePath}/metadata`)).json()) as Dataset[];
    const response = await fetch(metadata!['7FE00010']!.BulkDataURI!, {
      headers: { accept: 'multipart/related; type="application/octet-stream"' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/type="?application\/octet-stream/);
    const [part, ...rest] = splitMultipart(
      Buffer.from(await response.arrayBuffer()),
      response.headers.get('content-type')!,
    );
    expect(rest).toHaveLength(0);
    expect(part!.headers.get('content-type')).toBe('application/octet-stream');
    // CT_small's 128 x 128 16-bit pixels are the last element of the file.
    const stored = await storedBlob(ct.part10.sopInstanceUid);
    expect(part!.body.length).toBe(128 * 128 * 2);
    expect(part!.body.equals(stored.subarray(stored.length - part!.body.length))).toBe(true);

    expect((await get(`${instancePath}/bulkdata/7FE00010`, { accept: 'application/dicom+json' })).status).toBe(406);
    expect((await get(`${instancePath}/bulkdata/00100010`)).status).toBe(404);
    expect((await get(`${instancePath}/bulkdata/7FE10010`)).status).toBe(404);
    expect((await get(`${instancePath}/bulkdata/00081140/0/7FE00010`)).status).toBe(404);
    expect((await get(`/studies/${ct.study}/series/${ct.series}/instances/1.2.3/bulkdata/7FE00010`)).status).toBe(404);
    // Encapsulated pixel data: its frames as stored, or 406 naming why when asked for uncompressed.
    const nm = fixture('nm');
    const nmPixels = `/studies/${nm.study}/series/${nm.series}/instances/${nm.part10.sopInstanceUid}/bulkdata/7FE00010`;
    const encapsulated = await get(nmPixels, {
      accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    });
    expect(encapsulated.status).toBe(200);
    const [frame] = splitMultipart(
      Buffer.from(await encapsulated.arrayBuffer()),
      encapsulated.headers.get('content-type')!,
    );
    expect(frame!.headers.get('content-type')).toBe(`application/octet-stream; transfer-syntax=${JPEG2000}`);
    const uncompressed = await get(nmPixels, { accept: 'multipart/related; type="application/octet-stream"' });
    expect(uncompressed.status).toBe(406);
    expect(((await uncompressed.json()) as { error: string }).error).toContain(JPEG2000);
  });

  test('unknown studies, series and instances are 404 for retrieval and metadata', async () => {
    const ct = fixture('ct');
    const paths = [
      '/studies/1.2.3',
      '/studies/1.2.3/metadata',
      `/studies/${ct.study}/series/1.2.3`,
      `/studies/${ct.study}/series/1.2.3/metadata`,
      `/studies/${ct.study}/series/${ct.series}/instances/1.2.3`,
      `/studies/${ct.study}/series/${ct.series}/instances/1.2.3/metadata`,
      // A real series under another study is not found there either.
      `/studies/${fixture('mr').study}/series/${ct.series}`,
    ];
    for (const path of paths) {
      expect({ path, status: (await get(path)).status }).toEqual({ path, status: 404 });
    }
  });

  test('CORS: preflight answered, the configured origin echoed, Cross-Origin-Resource-Policy on every response', async () => {
    const origin = 'https://viewer.example.org';
    const preflight = await fetch(`${dicomweb}/studies`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'accept, authorization',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
    expect(preflight.headers.get('access-control-allow-methods')).toMatch(/^(?=.*\bGET\b)(?=.*\bPOST\b)/);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(
      /^(?=.*\bAccept\b)(?=.*\bContent-Type\b)(?=.*\bAuthorization\b)/,
    );
    expect(preflight.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    for (const path of ['/studies', `/studies/${fixture('mr').study}/metadata`, '/studies/1.2.3', '/studies?Foo=1']) {
      const response = await get(path, { origin });
      await response.arrayBuffer();
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
      expect(response.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
      expect(response.headers.get('vary')).toMatch(/Origin/);
    }
    expect((await get('/studies')).headers.get('access-control-allow-origin')).toBeNull();
    // An origin not in CORS_ALLOWED_ORIGINS is not echoed.
    expect(
      (await get('/studies', { origin: 'https://other.example.org' })).headers.get('access-control-allow-origin'),
    ).toBeNull();
  });
});

/** The data set of a Part 10 file held in memory (readPart10 reads from disk). */
async function readPart10Buffer(bytes: Buffer, dir: string, name: string): Promise<Part10File> {
  const path = join(dir, `retrieved-${name}.dcm`);
  await writeFile(path, bytes);
  return readPart10(path);
}
