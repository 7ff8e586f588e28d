/**
 * The ImagingStudy builder against the R4 validator: ingest writes what it builds without
 * validating it (HubRepository.updateDerivedResource), so every shape it can build is checked here.
 */
import { loadFhirDefinitions } from '../fhir/definitions.ts';
import { validateFhirResource } from '../fhir/validation.ts';
import { deriveImagingStudy, dicomWebEndpoint } from './imaging-study.ts';
import type { InstanceRow, SeriesRow, StudyRow } from './imaging-study.ts';

const study = (overrides: Partial<StudyRow> = {}): StudyRow => ({
  study_instance_uid: '1.2.3',
  patient_id: 'P1',
  study_date: '20240229',
  accession_number: 'A1',
  study_description: 'CT chest',
  modalities: ['CT', 'SR'],
  number_of_series: 2,
  number_of_instances: 3,
  ...overrides,
});
const series: SeriesRow[] = [
  {
    series_instance_uid: '1.2.3.1',
    modality: 'CT',
    series_number: 1,
    series_description: 'Axial',
    body_part_examined: 'CHEST',
    number_of_instances: 2,
  },
  {
    series_instance_uid: '1.2.3.2',
    modality: null,
    series_number: null,
    series_description: null,
    body_part_examined: 'FOOT',
    number_of_instances: 1,
  },
];
const instances: InstanceRow[] = [
  {
    sop_instance_uid: '1.2.3.1.1',
    series_instance_uid: '1.2.3.1',
    sop_class_uid: '1.2.840.10008.5.1.4.1.1.2',
    instance_number: 1,
  },
  {
    sop_instance_uid: '1.2.3.1.2',
    series_instance_uid: '1.2.3.1',
    sop_class_uid: '1.2.840.10008.5.1.4.1.1.2',
    instance_number: null,
  },
  {
    sop_instance_uid: '1.2.3.2.1',
    series_instance_uid: '1.2.3.2',
    sop_class_uid: '1.2.840.10008.5.1.4.1.1.88.11',
    instance_number: 7,
  },
];

beforeAll(() => loadFhirDefinitions());

describe('deriveImagingStudy', () => {
  test('a full study is valid R4', () => {
    expect(() => validateFhirResource(deriveImagingStudy('a1', 'dicomweb', study(), series, instances))).not.toThrow();
  });

  test('a study with nothing optional (no patient id, date, accession, description, modalities) is valid R4', () => {
    const bare = study({
      patient_id: null,
      study_date: '2024021',
      accession_number: ' ',
      study_description: null,
      modalities: [],
    });
    expect(() =>
      validateFhirResource(deriveImagingStudy('a2', 'dicomweb', bare, series.slice(1), instances.slice(2))),
    ).not.toThrow();
  });

  test('the validator these tests rely on does refuse a broken ImagingStudy', () => {
    const broken = {
      ...deriveImagingStudy('a3', 'dicomweb', study(), series, instances),
      status: 'bogus' as 'available',
    };
    expect(() => validateFhirResource(broken)).toThrow();
  });

  test('a matched study names the case: subject the Patient, basedOn the ServiceRequest; valid R4', () => {
    const matched = deriveImagingStudy(
      'a4',
      'dicomweb',
      study({ matched_service_request_id: 'sr-1', matched_patient_id: 'pat-1' }),
      series,
      instances,
    );
    expect(matched.subject).toEqual({ reference: 'Patient/pat-1' });
    expect(matched.basedOn).toEqual([{ reference: 'ServiceRequest/sr-1' }]);
    expect(() => validateFhirResource(matched)).not.toThrow();
  });

  test('an unmatched study keeps the logical DICOM Patient ID reference and has no basedOn', () => {
    const unmatched = deriveImagingStudy(
      'a5',
      'dicomweb',
      study({ matched_service_request_id: null, matched_patient_id: null }),
      series,
      instances,
    );
    expect(unmatched.subject).toEqual({ type: 'Patient', identifier: { value: 'P1' } });
    expect(unmatched.basedOn).toBeUndefined();
  });

  test('the DICOMweb Endpoint is valid R4', () => {
    expect(() => validateFhirResource(dicomWebEndpoint('dicomweb', 'http://localhost:8080'))).not.toThrow();
  });
});
