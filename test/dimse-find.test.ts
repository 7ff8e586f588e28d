/**
 * C-FIND SCP against a real hub, queried by dcmtk's findscu (Study Root and Patient Root), with
 * instances loaded by storescu: wildcard names, date ranges, UID lists, series of a study, images
 * of a series, no match, refused identifiers, both identifier transfer syntaxes, a UTF-8 name, and
 * agreement with QIDO-RS on the same index.
 */
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getString } from '../src/dicom/attributes.ts';
import { BufferSource } from '../src/dicom/byte-source.ts';
import { DEFAULT_PART10_LIMITS, DatasetReader } from '../src/dicom/dataset-reader.ts';
import { writeDataset } from '../src/dicom/dataset-writer.ts';
import type { WritableElement } from '../src/dicom/dataset-writer.ts';
import { createFindHandler } from '../src/dicom/dimse/find-handler.ts';
import { createLogger } from '../src/logger.ts';
import { parsePart10File } from '../src/dicom/part10.ts';
import { readPart10, runDcmtk, storescuProfile } from './support/dicom/test-peer.ts';
import { startTestHub } from './support/test-hub.ts';
import type { TestHub } from './support/test-hub.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

interface Fixture {
  path: string;
  study: string;
  series: string;
  sop: string;
}

interface FindOutcome {
  code: number | null;
  /** The final status as findscu names it: "Success", "Cancel: …", "Error: …". */
  final: string;
  /** Pending statuses in order, as hex. */
  pending: string[];
  /** Each response identifier: tag → value (our reader, from the files findscu wrote). */
  responses: Map<string, string>[];
  output: string;
}

describe('C-FIND SCP with findscu', () => {
  let th: TestHub;
  let workDir: string;
  const fixtures = new Map<string, Fixture>();
  const fixture = (name: string): Fixture => fixtures.get(name)!;

  /** Runs findscu with -X into a fresh directory and reads back every response it extracted. */
  const findscu = async (model: '-S' | '-P', keys: string[], extra: string[] = []): Promise<FindOutcome> => {
    const outDir = await mkdtemp(join(workDir, 'find-'));
    const result = await runDcmtk(
      'findscu',
      [
        '-v',
        model,
        ...extra,
        '-X',
        '-od',
        outDir,
        '-aet',
        'FINDSCU',
        '-aec',
        'HUB',
        '127.0.0.1',
        String(th.hub.dimsePort),
        ...keys.flatMap((key) => ['-k', key]),
      ],
      30_000,
    );
    const files = (await readdir(outDir)).filter((name) => name.startsWith('rsp')).sort();
    const responses = files.map((name) => {
      const parsed = parsePart10File(join(outDir, name));
      if (!parsed.ok) {
        throw new Error(`findscu wrote an unreadable response: ${parsed.reason}`);
      }
      return new Map([...parsed.dataset.elements.keys()].map((tag) => [tag, getString(parsed.dataset, tag) ?? '']));
    });
    const final = /Received Final Find Response \(([^)]*)\)/.exec(result.output)?.[1] ?? '';
    const pending = [...result.output.matchAll(/Received Find Response \d+ \((Pending[^)]*)\)/g)].map(
      (match) => match[1]!,
    );
    return { code: result.code, final, pending, responses, output: result.output };
  };
  const column = (outcome: FindOutcome, tag: string): string[] =>
    outcome.responses.map((response) => response.get(tag) ?? '<absent>').sort();

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dimse-find-'));
    th = await startTestHub({ env: { DIMSE_PORT: '0', DIMSE_AE_TITLE: 'HUB' } });

    // Originals, plus copies with fresh UIDs and other patients; `ct-pt` adds a second (PT) series to CT_small's study.
    const plan: { name: string; source: string; regenerate: string[]; set: string[] }[] = [
      { name: 'ct', source: 'CT_small.dcm', regenerate: [], set: [] },
      { name: 'mr', source: 'MR_small.dcm', regenerate: [], set: [] },
      { name: 'ct-pt', source: 'CT_small.dcm', regenerate: ['-gse', '-gin'], set: ['(0008,0060)=PT', '(0020,0011)=2'] },
      // A second instance in ct-pt's series (its UID is filled in below, once ct-pt exists).
      {
        name: 'ct-pt-2',
        source: 'CT_small.dcm',
        regenerate: ['-gin'],
        set: ['(0008,0060)=PT', '(0020,0011)=2', '(0020,0013)=2'],
      },
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
      {
        name: 'jane-2',
        source: 'MR_small.dcm',
        regenerate: ['-gst', '-gse', '-gin'],
        set: ['(0010,0010)=Doe^Jane', '(0010,0020)=DOE-1', '(0008,0050)=ACC-3', '(0008,0020)=20210101'],
      },
      {
        name: 'mueller',
        source: 'CT_small.dcm',
        regenerate: ['-gst', '-gse', '-gin'],
        set: ['(0008,0005)=ISO_IR 192', '(0010,0010)=Müller^Jürgen', '(0010,0020)=MUE-1', '(0008,0020)=20190704'],
      },
    ];
    for (const entry of plan) {
      const copy = join(workDir, `${entry.name}.dcm`);
      await copyFile(join(TEST_FILES, entry.source), copy);
      const set = entry.name === 'ct-pt-2' ? [...entry.set, `(0020,000E)=${fixture('ct-pt').series}`] : entry.set;
      if (entry.regenerate.length > 0 || set.length > 0) {
        const modified = await runDcmtk('dcmodify', [
          '-nb',
          ...entry.regenerate,
          ...set.flatMap((value) => ['-i', value]),
          copy,
        ]);
        expect({ code: modified.code, output: modified.output }).toEqual({ code: 0, output: '' });
      }
      const dump = await runDcmtk('dcmdump', ['-s', '+P', '0020,000d', '+P', '0020,000e', '+P', '0008,0018', copy]);
      const printed = [...dump.output.matchAll(/\((\w{4},\w{4})\) UI \[([\d.]+)\]/g)];
      const uid = (tag: string) => printed.find((match) => match[1]!.toLowerCase() === tag)![2]!;
      fixtures.set(entry.name, {
        path: copy,
        study: uid('0020,000d'),
        series: uid('0020,000e'),
        sop: uid('0008,0018'),
      });
    }
    const files = [...fixtures.values()];
    const part10 = await Promise.all(files.map((file) => readPart10(file.path)));
    const profile = join(workDir, 'load.cfg');
    await writeFile(profile, storescuProfile(part10, 'Load'));
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
  }, 60_000);

  afterAll(async () => {
    await th?.stop();
    if (workDir) {
      await rm(workDir, { recursive: true, force: true });
    }
  });

  test('study level: every study, with exactly the requested keys, the unique key and QueryRetrieveLevel', async () => {
    const outcome = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      'PatientName',
      'StudyDate',
      'ModalitiesInStudy',
      'NumberOfStudyRelatedInstances',
    ]);
    expect(outcome.final).toBe('Success');
    expect(outcome.code).toBe(0);
    expect(outcome.pending).toEqual(Array(6).fill('Pending'));
    const studies = new Set([...fixtures.values()].map((entry) => entry.study));
    expect(column(outcome, '0020000D')).toEqual([...studies].sort());
    for (const response of outcome.responses) {
      expect([...response.keys()].filter((tag) => tag !== '00080005').sort()).toEqual([
        '00080020',
        '00080052',
        '00080061',
        '00100010',
        '0020000D',
        '00201208',
      ]);
      expect(response.get('00080052')).toBe('STUDY');
    }
    const ct = outcome.responses.find((response) => response.get('0020000D') === fixture('ct').study)!;
    expect(ct.get('00100010')).toBe('CompressedSamples^CT1');
    expect(ct.get('00080020')).toBe('20040119');
    expect(ct.get('00080061')).toBe('CT\\PT');
    expect(ct.get('00201208')).toBe('3');
  });

  test('study level matching: wildcard names, date ranges, UID lists, combinations, no match', async () => {
    const studiesOf = async (keys: string[]) =>
      column(await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', ...keys]), '0020000D');
    const sorted = (...names: string[]) => names.map((name) => fixture(name).study).sort();
    expect(await studiesOf(['PatientName=Doe*'])).toEqual(sorted('jane', 'john', 'jane-2'));
    expect(await studiesOf(['PatientName=doe^j?ne'])).toEqual(sorted('jane', 'jane-2'));
    expect(await studiesOf(['PatientName=*'])).toHaveLength(6);
    expect(await studiesOf(['StudyDate=20200101-20201231'])).toEqual(sorted('jane', 'john'));
    expect(await studiesOf(['StudyDate=20200101-'])).toEqual(sorted('jane', 'john', 'jane-2'));
    expect(await studiesOf(['StudyDate=-20041231'])).toEqual(sorted('ct', 'mr'));
    expect(await studiesOf(['StudyDate=20040826'])).toEqual(sorted('mr'));
    expect(await studiesOf([`StudyInstanceUID=${fixture('ct').study}\\${fixture('john').study}\\1.2.3.999`])).toEqual(
      sorted('ct', 'john'),
    );
    expect(await studiesOf(['PatientID=DOE-1', 'StudyDate=20210101'])).toEqual(sorted('jane-2'));
    expect(await studiesOf(['AccessionNumber=ACC-?'])).toEqual(sorted('jane', 'john', 'jane-2'));
    expect(await studiesOf(['ModalitiesInStudy=PT'])).toEqual(sorted('ct'));
    expect(await studiesOf(['StudyDescription=chest*'])).toEqual(sorted('jane'));
    const none = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=Nobody*']);
    expect({ final: none.final, responses: none.responses.length }).toEqual({ final: 'Success', responses: 0 });
  });

  test('series of a study and images of a series (hierarchical unique keys)', async () => {
    const series = await findscu('-S', [
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${fixture('ct').study}`,
      'SeriesInstanceUID',
      'Modality',
      'SeriesNumber',
      'NumberOfSeriesRelatedInstances',
    ]);
    expect(series.final).toBe('Success');
    expect(column(series, '0020000E')).toEqual([fixture('ct').series, fixture('ct-pt').series].sort());
    const pt = series.responses.find((response) => response.get('00080060') === 'PT')!;
    expect({
      number: pt.get('00200011'),
      instances: pt.get('00201209'),
      study: pt.get('0020000D'),
      level: pt.get('00080052'),
    }).toEqual({ number: '2', instances: '2', study: fixture('ct').study, level: 'SERIES' });

    const ptOnly = await findscu('-S', [
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${fixture('ct').study}`,
      'Modality=PT',
    ]);
    expect(column(ptOnly, '0020000E')).toEqual([fixture('ct-pt').series]);

    const images = await findscu('-S', [
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${fixture('ct').study}`,
      `SeriesInstanceUID=${fixture('ct-pt').series}`,
      'SOPInstanceUID',
      'InstanceNumber',
      'SOPClassUID',
      'Rows',
    ]);
    expect(images.final).toBe('Success');
    expect(column(images, '00080018')).toEqual([fixture('ct-pt').sop, fixture('ct-pt-2').sop].sort());
    expect(column(images, '00200013')).toEqual(['1', '2']);
    expect(column(images, '00280010')).toEqual(['128', '128']);
    expect(column(images, '00080016')).toEqual(['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.2']);
    const second = await findscu('-S', [
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${fixture('ct').study}`,
      `SeriesInstanceUID=${fixture('ct-pt').series}`,
      'InstanceNumber=2',
    ]);
    expect(column(second, '00080018')).toEqual([fixture('ct-pt-2').sop]);
  });

  test('Patient Root: patients, their studies, series and images', async () => {
    const patients = await findscu('-P', [
      'QueryRetrieveLevel=PATIENT',
      'PatientName=Doe*',
      'PatientID',
      'NumberOfPatientRelatedStudies',
    ]);
    expect(patients.final).toBe('Success');
    expect(patients.responses.map((response) => [response.get('00100020'), response.get('00201200')]).sort()).toEqual([
      ['DOE-1', '2'],
      ['DOE-2', '1'],
    ]);
    const studies = await findscu('-P', [
      'QueryRetrieveLevel=STUDY',
      'PatientID=DOE-1',
      'StudyInstanceUID',
      'StudyDate',
    ]);
    expect(column(studies, '0020000D')).toEqual([fixture('jane').study, fixture('jane-2').study].sort());
    const series = await findscu('-P', [
      'QueryRetrieveLevel=SERIES',
      'PatientID=DOE-1',
      `StudyInstanceUID=${fixture('jane').study}`,
      'Modality',
    ]);
    expect(column(series, '0020000E')).toEqual([fixture('jane').series]);
    const images = await findscu('-P', [
      'QueryRetrieveLevel=IMAGE',
      'PatientID=DOE-1',
      `StudyInstanceUID=${fixture('jane').study}`,
      `SeriesInstanceUID=${fixture('jane').series}`,
    ]);
    expect(column(images, '00080018')).toEqual([fixture('jane').sop]);
    const missingPatient = await findscu('-P', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID']);
    expect(missingPatient.final).toMatch(/^Error: DataSetDoesNotMatchSOPClass$/);
  });

  test('refused identifiers: wrong or missing level, missing or multi-valued unique keys above the level, bad date', async () => {
    const refusals: [string, '-S' | '-P', string[], RegExp][] = [
      [
        'PATIENT level in Study Root',
        '-S',
        ['QueryRetrieveLevel=PATIENT', 'PatientID'],
        /^Error: DataSetDoesNotMatchSOPClass$/,
      ],
      ['no level', '-S', ['PatientName=Doe*'], /^Error: DataSetDoesNotMatchSOPClass$/],
      ['unknown level', '-S', ['QueryRetrieveLevel=FRAME'], /^Error: DataSetDoesNotMatchSOPClass$/],
      [
        'series without its study',
        '-S',
        ['QueryRetrieveLevel=SERIES', 'SeriesInstanceUID'],
        /^Error: DataSetDoesNotMatchSOPClass$/,
      ],
      [
        'image without its series',
        '-S',
        ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${fixture('ct').study}`],
        /^Error: DataSetDoesNotMatchSOPClass$/,
      ],
      [
        'study list above the level',
        '-S',
        ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${fixture('ct').study}\\${fixture('mr').study}`],
        /^Error: DataSetDoesNotMatchSOPClass$/,
      ],
      ['malformed date', '-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=2020-01-01'], /^Failed: UnableToProcess$/],
    ];
    for (const [label, model, keys, status] of refusals) {
      const outcome = await findscu(model, keys);
      expect({ label, final: outcome.final, responses: outcome.responses.length }).toEqual({
        label,
        final: expect.stringMatching(status),
        responses: 0,
      });
    }
  });

  test('unsupported keys (and values for return-only keys) come back with pending status 0xFF01; implicit VR identifiers work too', async () => {
    const outcome = await findscu(
      '-S',
      [
        'QueryRetrieveLevel=STUDY',
        `StudyInstanceUID=${fixture('mr').study}`,
        'PatientName',
        'InstitutionName=Somewhere',
        'RetrieveAETitle',
        'NumberOfStudyRelatedSeries=99',
      ],
      ['-xi'],
    );
    expect(outcome.final).toBe('Success');
    expect(outcome.pending).toEqual(['Pending: WarningUnsupportedOptionalKeys']);
    expect(outcome.responses).toHaveLength(1);
    expect(Object.fromEntries(outcome.responses[0]!)).toEqual({
      '00080052': 'STUDY',
      '00080054': 'HUB',
      '00080080': '',
      '00100010': 'CompressedSamples^MR1',
      '0020000D': fixture('mr').study,
      '00201206': '1',
    });
    // Every key supported and matched: plain pending.
    const plain = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      `StudyInstanceUID=${fixture('mr').study}`,
      'PatientName',
      'NumberOfStudyRelatedSeries',
    ]);
    expect(plain.pending).toEqual(['Pending']);
  });

  test('a non-ASCII name is matched and returned in UTF-8 with SpecificCharacterSet ISO_IR 192', async () => {
    const outcome = await findscu('-S', [
      'QueryRetrieveLevel=STUDY',
      'PatientName=MÜLLER*',
      'PatientID',
      'SpecificCharacterSet=ISO_IR 192',
    ]);
    expect(outcome.final).toBe('Success');
    expect(outcome.responses).toHaveLength(1);
    expect(outcome.responses[0]!.get('00080005')).toBe('ISO_IR 192');
    expect(outcome.responses[0]!.get('00100010')).toBe('Müller^Jürgen');
    expect(outcome.responses[0]!.get('00100020')).toBe('MUE-1');
  });

  test('the handler pages through the index: pages of two give what one page gives, in unique-key order', async () => {
    const run = async (pageSize: number, level: string, keys: WritableElement[]) => {
      const find = createFindHandler(th.hub.db, createLogger('silent'), { pageSize });
      const identifier = writeDataset([{ tag: '00080052', vr: 'CS', value: level }, ...keys], { explicitVr: true });
      const sopClassUid = level === 'PATIENT' ? '1.2.840.10008.5.1.4.1.2.1.1' : '1.2.840.10008.5.1.4.1.2.2.1';
      const responses = find({
        callingAeTitle: 'TEST',
        calledAeTitle: 'HUB',
        sopClassUid,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        identifier,
      });
      const found: string[] = [];
      for (;;) {
        const next = await responses.next();
        if (next.done) {
          expect(next.value.status).toBe(0);
          return found;
        }
        expect(next.value.status).toBe(0xff00);
        const dataset = new DatasetReader(new BufferSource(next.value.identifier!), DEFAULT_PART10_LIMITS).readTopLevel(
          0,
          { explicitVr: true, bigEndian: false },
        );
        found.push(getString(dataset, level === 'PATIENT' ? '00100020' : '0020000D')!);
      }
    };
    const studies = await run(2, 'STUDY', [{ tag: '00100020', vr: 'LO', value: '' }]);
    expect([...studies].sort()).toEqual([...new Set([...fixtures.values()].map((entry) => entry.study))].sort());
    expect(await run(200, 'STUDY', [{ tag: '00100020', vr: 'LO', value: '' }])).toEqual(studies);
    const patients = await run(2, 'PATIENT', [{ tag: '00100010', vr: 'PN', value: '' }]);
    expect(patients).toEqual(['1CT1', '4MR1', 'DOE-1', 'DOE-2', 'MUE-1']);
    expect(await run(1, 'PATIENT', [])).toEqual(patients);
  });

  test('C-FIND and QIDO-RS answer the same study query from the same index', async () => {
    const response = await fetch(`${th.baseUrl}/dicomweb/studies?PatientName=doe*&StudyDate=20200101-`, {
      headers: { accept: 'application/dicom+json' },
    });
    const qido = ((await response.json()) as Record<string, { Value?: string[] }>[])
      .map((study) => study['0020000D']!.Value![0]!)
      .sort();
    const find = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=doe*', 'StudyDate=20200101-']);
    expect(column(find, '0020000D')).toEqual(qido);
    expect(qido).toHaveLength(3);
  });

  test('C-FIND and QIDO-RS match backslash-separated UID lists alike at the series and image levels', async () => {
    const ct = fixture('ct');
    const qidoUids = async (path: string, tag: string): Promise<string[]> => {
      const answer = await fetch(`${th.baseUrl}/dicomweb${path}`, { headers: { accept: 'application/dicom+json' } });
      expect(answer.status).toBe(200);
      return ((await answer.json()) as Record<string, { Value?: string[] }>[])
        .map((dataset) => dataset[tag]!.Value![0]!)
        .sort();
    };
    const seriesList = [ct.series, fixture('ct-pt').series, '1.2.3.999'];
    const series = await findscu('-S', [
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${ct.study}`,
      `SeriesInstanceUID=${seriesList.join('\\')}`,
    ]);
    expect(column(series, '0020000E')).toEqual([ct.series, fixture('ct-pt').series].sort());
    expect(
      await qidoUids(`/studies/${ct.study}/series?SeriesInstanceUID=${seriesList.join('%5C')}`, '0020000E'),
    ).toEqual(column(series, '0020000E'));

    const sopList = [fixture('ct-pt-2').sop, '1.2.3.999', fixture('ct-pt').sop];
    const images = await findscu('-S', [
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${ct.study}`,
      `SeriesInstanceUID=${fixture('ct-pt').series}`,
      `SOPInstanceUID=${sopList.join('\\')}`,
    ]);
    expect(column(images, '00080018')).toEqual([fixture('ct-pt').sop, fixture('ct-pt-2').sop].sort());
    expect(
      await qidoUids(
        `/studies/${ct.study}/series/${fixture('ct-pt').series}/instances?SOPInstanceUID=${sopList.join('%5C')}`,
        '00080018',
      ),
    ).toEqual(column(images, '00080018'));
  });
});
