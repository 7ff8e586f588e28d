/**
 * A patient's CD as the tests' physician uploads it: small CT and MR instances (Explicit VR Little
 * Endian, 16×16 MONOCHROME2 pixels, so they render), a DICOMDIR at the root, and the files a disc
 * carries besides (a README, a viewer's files), laid out as discs are (`DICOM/ST…/SE…/IM…`, no
 * extensions). UIDs are fresh `2.25.` UIDs on every call.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { explicitElement, part10File, textElement } from './part10-fixtures.ts';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const SOP_CLASS = { CT: '1.2.840.10008.5.1.4.1.1.2', MR: '1.2.840.10008.5.1.4.1.1.4' } as const;
/** PS3.4 Media Storage Directory Storage: the DICOMDIR's SOP Class. */
export const DICOMDIR_SOP_CLASS = '1.2.840.10008.1.3.10';

/** A new UID under 2.25 (PS3.5 Annex B.2: a UUID as a decimal integer). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

export interface InstanceSpec {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  modality: 'CT' | 'MR';
  patientId: string;
  /** Issuer of Patient ID (0010,0021), when the instance carries one. */
  issuerOfPatientId?: string;
  patientName: string;
  birthDate: string;
  accessionNumber?: string;
  studyDescription?: string;
  seriesNumber: number;
  instanceNumber: number;
  /** The File Meta Information's SOP Instance UID, when it should disagree with the dataset's. */
  metaSopUid?: string;
}

const us = (tag: number, value: number): Buffer => {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16LE(value);
  return explicitElement(tag, 'US', bytes);
};

/** One Part 10 instance with a 16×16 gradient of 12-bit pixels. */
export function dicomInstance(spec: InstanceSpec): Buffer {
  const pixels = Buffer.alloc(16 * 16 * 2);
  for (let i = 0; i < 256; i++) {
    pixels.writeUInt16LE((i * 16 + spec.instanceNumber * 7) % 4096, i * 2);
  }
  const dataset = Buffer.concat([
    textElement(0x00080016, 'UI', SOP_CLASS[spec.modality]),
    textElement(0x00080018, 'UI', spec.sopUid),
    textElement(0x00080020, 'DA', '20240115'),
    textElement(0x00080050, 'SH', spec.accessionNumber ?? ''),
    textElement(0x00080060, 'CS', spec.modality),
    textElement(0x00081030, 'LO', spec.studyDescription ?? `${spec.modality} study`),
    textElement(0x00100010, 'PN', spec.patientName),
    textElement(0x00100020, 'LO', spec.patientId),
    ...(spec.issuerOfPatientId === undefined ? [] : [textElement(0x00100021, 'LO', spec.issuerOfPatientId)]),
    textElement(0x00100030, 'DA', spec.birthDate),
    textElement(0x0020000d, 'UI', spec.studyUid),
    textElement(0x0020000e, 'UI', spec.seriesUid),
    textElement(0x00200011, 'IS', String(spec.seriesNumber)),
    textElement(0x00200013, 'IS', String(spec.instanceNumber)),
    us(0x00280002, 1),
    textElement(0x00280004, 'CS', 'MONOCHROME2'),
    us(0x00280010, 16),
    us(0x00280011, 16),
    us(0x00280100, 16),
    us(0x00280101, 12),
    us(0x00280102, 11),
    us(0x00280103, 0),
    explicitElement(0x7fe00010, 'OW', pixels),
  ]);
  return part10File(EXPLICIT_LE, dataset, {
    sopClass: SOP_CLASS[spec.modality],
    sopInstance: spec.metaSopUid ?? spec.sopUid,
  });
}

/** A DICOMDIR (PS3.10 §7.2, PS3.3 F.3): its File-set ID and one IMAGE record per file, enough to be one. */
export function dicomdirFile(files: readonly { path: string; spec: InstanceSpec }[]): Buffer {
  const records = files.map(({ path: filePath, spec }) =>
    Buffer.concat([
      explicitElement(0x00041400, 'UL', Buffer.alloc(4)),
      us(0x00041410, 0xffff),
      explicitElement(0x00041420, 'UL', Buffer.alloc(4)),
      textElement(0x00041430, 'CS', 'IMAGE'),
      textElement(0x00041500, 'CS', filePath.split('/').join('\\')),
      textElement(0x00041510, 'UI', SOP_CLASS[spec.modality]),
      textElement(0x00041511, 'UI', spec.sopUid),
      textElement(0x00041512, 'UI', EXPLICIT_LE),
    ]),
  );
  const items = records.flatMap((record) => {
    const header = Buffer.alloc(8);
    header.writeUInt16LE(0xfffe, 0);
    header.writeUInt16LE(0xe000, 2);
    header.writeUInt32LE(record.length, 4);
    return [header, record];
  });
  const sequence = Buffer.concat(items);
  const dataset = Buffer.concat([
    textElement(0x00041130, 'CS', 'PATIENT_CD'),
    explicitElement(0x00041200, 'UL', Buffer.alloc(4)),
    explicitElement(0x00041202, 'UL', Buffer.alloc(4)),
    us(0x00041212, 0),
    explicitElement(0x00041220, 'SQ', sequence),
  ]);
  return part10File(EXPLICIT_LE, dataset, { sopClass: DICOMDIR_SOP_CLASS, sopInstance: newUid() });
}

export interface PatientCd {
  dir: string;
  /** Every instance the hub should store: its path under `dir`, and what it is. */
  instances: { path: string; spec: InstanceSpec }[];
  /** A DICOM file the hub refuses: its File Meta SOP Instance UID disagrees with its dataset's. */
  inconsistent: { path: string; metaSopUid: string };
  /** The files that are not DICOM at all. */
  notDicom: string[];
  studyUids: string[];
}

/**
 * Writes a disc under `dir`: `ctCount` CT instances in two series of one study and `mrCount` MR
 * instances of another, all of the hospital's patient `patientId` (which matches no case by the
 * hub's rules), one inconsistent instance, a DICOMDIR, and non-DICOM files.
 */
export async function writePatientCd(
  dir: string,
  options: { ctCount: number; mrCount: number; patientId: string; patientName: string; birthDate: string },
): Promise<PatientCd> {
  const ct = newUid();
  const mr = newUid();
  const series = [newUid(), newUid(), newUid()];
  const instances: { path: string; spec: InstanceSpec }[] = [];
  const add = (studyIndex: number, seriesIndex: number, number: number, modality: 'CT' | 'MR', studyUid: string) => {
    instances.push({
      path: `DICOM/ST00000${studyIndex}/SE00000${seriesIndex}/IM${String(number).padStart(6, '0')}`,
      spec: {
        studyUid,
        seriesUid: series[seriesIndex - 1] as string,
        sopUid: newUid(),
        modality,
        patientId: options.patientId,
        patientName: options.patientName,
        birthDate: options.birthDate,
        studyDescription: modality === 'CT' ? 'CT CHEST' : 'MR BRAIN',
        seriesNumber: seriesIndex,
        instanceNumber: number,
      },
    });
  };
  for (let n = 1; n <= options.ctCount; n++) {
    add(1, n <= options.ctCount / 2 ? 1 : 2, n, 'CT', ct);
  }
  for (let n = 1; n <= options.mrCount; n++) {
    add(2, 3, n, 'MR', mr);
  }
  const inconsistentSpec: InstanceSpec = {
    ...(instances[0] as { spec: InstanceSpec }).spec,
    sopUid: newUid(),
    metaSopUid: newUid(),
    instanceNumber: 999,
  };
  const inconsistent = { path: 'DICOM/ST000001/SE000001/IM000999', metaSopUid: inconsistentSpec.metaSopUid as string };
  const notDicom = ['README.TXT', 'VIEWER/AUTORUN.INF'];
  const writes: [string, Buffer][] = [
    ...instances.map(({ path: filePath, spec }): [string, Buffer] => [filePath, dicomInstance(spec)]),
    [inconsistent.path, dicomInstance(inconsistentSpec)],
    ['DICOMDIR', dicomdirFile(instances)],
    [
      'README.TXT',
      Buffer.from('This disc holds images of your examination. Insert it in a computer to view them.\r\n'),
    ],
    ['VIEWER/AUTORUN.INF', Buffer.from('[autorun]\r\nopen=VIEWER.EXE\r\n')],
  ];
  for (const [filePath, bytes] of writes) {
    await mkdir(path.dirname(path.join(dir, filePath)), { recursive: true });
    await writeFile(path.join(dir, filePath), bytes);
  }
  return { dir, instances, inconsistent, notDicom, studyUids: [ct, mr] };
}
