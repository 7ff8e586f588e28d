/** What a study says about whose it is, from its QIDO-RS answer (DICOM JSON, PS3.18 Annex F). */

type DicomJsonValue = string | number | { Alphabetic?: string };
export type DicomJsonDataset = Record<string, { vr: string; Value?: DicomJsonValue[] } | undefined>;

export interface StudyIdentity {
  studyInstanceUid: string;
  patientName?: string;
  patientId?: string;
  birthDate?: string;
  sex?: string;
  accessionNumber?: string;
  studyDate?: string;
  modalities: string[];
  description?: string;
  referringPhysician?: string;
  seriesCount?: number;
  instanceCount?: number;
}

const TAG = {
  StudyDate: '00080020',
  AccessionNumber: '00080050',
  ModalitiesInStudy: '00080061',
  ReferringPhysicianName: '00080090',
  StudyDescription: '00081030',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  StudyInstanceUID: '0020000D',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
} as const;

function values(dataset: DicomJsonDataset, tag: string): DicomJsonValue[] {
  return dataset[tag]?.Value ?? [];
}

function text(dataset: DicomJsonDataset, tag: string): string | undefined {
  const value = values(dataset, tag)[0];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function count(dataset: DicomJsonDataset, tag: string): number | undefined {
  const value = Number(values(dataset, tag)[0]);
  return Number.isFinite(value) ? value : undefined;
}

/** A DICOM PN (`Family^Given^Middle^Prefix^Suffix`) as people write it: "Family, Given Middle". */
export function personName(dataset: DicomJsonDataset, tag: string): string | undefined {
  const value = values(dataset, tag)[0];
  const alphabetic = typeof value === 'object' ? value.Alphabetic : undefined;
  if (alphabetic === undefined || alphabetic.trim() === '') {
    return undefined;
  }
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = alphabetic.split('^').map((p) => p.trim());
  const first = [prefix, given, middle].filter((part) => part !== '').join(' ');
  const name = [family, first].filter((part) => part !== '').join(', ');
  return suffix === '' ? name : `${name} ${suffix}`;
}

/** A DICOM DA (YYYYMMDD) as an ISO date, or the value as it was when it is not one. */
export function isoDate(value: string | undefined): string | undefined {
  const match = value === undefined ? null : /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  return match ? `${match[1]}-${match[2]}-${match[3]}` : value;
}

const SEX: Readonly<Record<string, string>> = { M: 'male', F: 'female', O: 'other' };

export function studyIdentity(dataset: DicomJsonDataset): StudyIdentity | undefined {
  const studyInstanceUid = text(dataset, TAG.StudyInstanceUID);
  if (studyInstanceUid === undefined) {
    return undefined;
  }
  const sex = text(dataset, TAG.PatientSex);
  return {
    studyInstanceUid,
    patientName: personName(dataset, TAG.PatientName),
    patientId: text(dataset, TAG.PatientID),
    birthDate: isoDate(text(dataset, TAG.PatientBirthDate)),
    sex: sex === undefined ? undefined : (SEX[sex] ?? sex),
    accessionNumber: text(dataset, TAG.AccessionNumber),
    studyDate: isoDate(text(dataset, TAG.StudyDate)),
    modalities: values(dataset, TAG.ModalitiesInStudy).filter((v): v is string => typeof v === 'string'),
    description: text(dataset, TAG.StudyDescription),
    referringPhysician: personName(dataset, TAG.ReferringPhysicianName),
    seriesCount: count(dataset, TAG.NumberOfStudyRelatedSeries),
    instanceCount: count(dataset, TAG.NumberOfStudyRelatedInstances),
  };
}
