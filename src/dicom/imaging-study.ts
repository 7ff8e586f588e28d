/**
 * The FHIR ImagingStudy of a stored study, derived from the DICOM index rows (shared/fhir-model.md,
 * "imaging"). Pure: the ingest path reads the rows and writes the result in its transaction.
 */
import type { Coding, Endpoint, ImagingStudy, ImagingStudySeries, Patient, Reference } from '@medplum/fhirtypes';

export const DICOM_UID_SYSTEM = 'urn:dicom:uid';
export const DICOM_DCM_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';
const SOP_CLASS_SYSTEM = 'urn:ietf:rfc:3986';
const SNOMED = 'http://snomed.info/sct';

export interface StudyRow {
  study_instance_uid: string;
  patient_id: string | null;
  study_date: string | null;
  accession_number: string | null;
  study_description: string | null;
  modalities: string[];
  number_of_series: number;
  number_of_instances: number;
  /** The case the study was matched to (src/workflow/imaging-match.ts); absent or null while unmatched. */
  matched_service_request_id?: string | null;
  /** The matched case's Patient; set together with the ServiceRequest. */
  matched_patient_id?: string | null;
}

export interface SeriesRow {
  series_instance_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  body_part_examined: string | null;
  number_of_instances: number;
}

export interface InstanceRow {
  sop_instance_uid: string;
  series_instance_uid: string;
  sop_class_uid: string;
  instance_number: number | null;
}

/**
 * PS3.16 Annex L: the Body Part Examined defined terms that second opinions see most, to SNOMED CT.
 * Others keep the DICOM term as the code, with no system.
 */
const BODY_PARTS: Readonly<Record<string, { code: string; display: string }>> = {
  HEAD: { code: '69536005', display: 'Head' },
  BRAIN: { code: '12738006', display: 'Brain' },
  NECK: { code: '45048000', display: 'Neck' },
  CHEST: { code: '51185008', display: 'Thorax' },
  BREAST: { code: '76752008', display: 'Breast' },
  ABDOMEN: { code: '113345001', display: 'Abdomen' },
  PELVIS: { code: '12921003', display: 'Pelvis' },
  SPINE: { code: '421060004', display: 'Spine' },
  KNEE: { code: '72696002', display: 'Knee' },
  HEART: { code: '80891009', display: 'Heart' },
};

export function bodySiteCoding(bodyPartExamined: string): Coding {
  const term = bodyPartExamined.trim().toUpperCase();
  const known = BODY_PARTS[term];
  return known ? { system: SNOMED, code: known.code, display: known.display } : { code: term, display: term };
}

function modalityCoding(modality: string | null): Coding {
  // ImagingStudy.series.modality is 1..1; PS3.3 C.7.3.1.1.1 "OT" is the DICOM term for "other".
  return { system: DICOM_DCM_SYSTEM, code: modality && modality.trim() !== '' ? modality.trim() : 'OT' };
}

/**
 * ImagingStudy.subject is 1..1 but DICOM carries no FHIR Patient. Once the study is matched to a
 * case, the case's Patient; until then a logical reference by the DICOM Patient ID (no display: the
 * name stays out of the resource), or, without a Patient ID, a reference that says why it is empty.
 */
function subjectReference(patientId: string | null, matchedPatientId: string | null | undefined): Reference<Patient> {
  if (matchedPatientId) {
    return { reference: `Patient/${matchedPatientId}` };
  }
  if (patientId && patientId.trim() !== '') {
    return { type: 'Patient', identifier: { value: patientId.trim() } };
  }
  return {
    type: 'Patient',
    extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }],
  };
}

/** DICOM DA (YYYYMMDD) to a FHIR date; anything else is left out rather than guessed. */
function fhirDate(value: string | null): string | undefined {
  const match = value ? /^(\d{4})(\d{2})(\d{2})$/.exec(value.trim()) : null;
  if (!match) {
    return undefined;
  }
  const [, year, month, day] = match;
  const date = new Date(`${year}-${month}-${day}T00:00:00Z`);
  return Number.isNaN(date.getTime()) || date.getUTCDate() !== Number(day) ? undefined : `${year}-${month}-${day}`;
}

export function deriveImagingStudy(
  id: string,
  endpointId: string,
  study: StudyRow,
  series: readonly SeriesRow[],
  instances: readonly InstanceRow[],
): ImagingStudy {
  const bySeries = new Map<string, InstanceRow[]>();
  for (const instance of instances) {
    const list = bySeries.get(instance.series_instance_uid) ?? [];
    list.push(instance);
    bySeries.set(instance.series_instance_uid, list);
  }
  const started = fhirDate(study.study_date);
  const identifier: ImagingStudy['identifier'] = [
    { system: DICOM_UID_SYSTEM, value: `urn:oid:${study.study_instance_uid}` },
  ];
  if (study.accession_number && study.accession_number.trim() !== '') {
    identifier.push({
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] },
      value: study.accession_number.trim(),
    });
  }
  return {
    resourceType: 'ImagingStudy',
    id,
    identifier,
    status: 'available',
    ...(study.modalities.length > 0 ? { modality: study.modalities.map((modality) => modalityCoding(modality)) } : {}),
    subject: subjectReference(study.patient_id, study.matched_patient_id),
    ...(study.matched_service_request_id
      ? { basedOn: [{ reference: `ServiceRequest/${study.matched_service_request_id}` }] }
      : {}),
    ...(started ? { started } : {}),
    endpoint: [{ reference: `Endpoint/${endpointId}` }],
    numberOfSeries: study.number_of_series,
    numberOfInstances: study.number_of_instances,
    ...(study.study_description && study.study_description.trim() !== ''
      ? { description: study.study_description.trim() }
      : {}),
    series: series.map((row): ImagingStudySeries => ({
      uid: row.series_instance_uid,
      ...(row.series_number !== null ? { number: row.series_number } : {}),
      modality: modalityCoding(row.modality),
      ...(row.series_description && row.series_description.trim() !== ''
        ? { description: row.series_description.trim() }
        : {}),
      numberOfInstances: row.number_of_instances,
      ...(row.body_part_examined && row.body_part_examined.trim() !== ''
        ? { bodySite: bodySiteCoding(row.body_part_examined) }
        : {}),
      instance: (bySeries.get(row.series_instance_uid) ?? []).map((instance) => ({
        uid: instance.sop_instance_uid,
        sopClass: { system: SOP_CLASS_SYSTEM, code: `urn:oid:${instance.sop_class_uid}` },
        ...(instance.instance_number !== null ? { number: instance.instance_number } : {}),
      })),
    })),
  };
}

/** The one Endpoint every ImagingStudy points at: our DICOMweb base (PS3.18 WADO-RS). */
export function dicomWebEndpoint(id: string, baseUrl: string): Endpoint {
  return {
    resourceType: 'Endpoint',
    id,
    status: 'active',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'dicom-wado-rs' },
    name: 'DICOMweb (WADO-RS, QIDO-RS, STOW-RS)',
    payloadType: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/endpoint-payload-type', code: 'DICOM' }] },
    ],
    payloadMimeType: ['application/dicom'],
    address: `${baseUrl}/dicomweb`,
  };
}
