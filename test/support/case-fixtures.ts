/** What the case suites share: the planned materials of a referral, and registering its patient. */
import type { Patient } from '@medplum/fhirtypes';
import { fhirFetch } from './test-hub.ts';

/** The counts a physician plans, as the ServiceRequest's orderDetail carries them (docs/case-workflow.md). */
export interface Planned {
  imagingSites?: number;
  recordPages?: number;
  biopsySites?: number;
}

export function orderDetail(planned: Planned): unknown[] {
  const detail = (kind: string, url: string, value: number | undefined) =>
    value === undefined ? [] : [{ coding: [{ system: 'urn:hub:material', code: kind }], extension: [{ url, valueInteger: value }] }];
  return [
    ...detail('imaging', 'urn:hub:extension:imaging-sites', planned.imagingSites),
    ...detail('records', 'urn:hub:extension:record-pages', planned.recordPages),
    ...detail('pathology', 'urn:hub:extension:biopsy-sites', planned.biopsySites),
  ];
}

/** Registers `patient` through `Patient/$register` and returns its id and reference number. */
export async function registerPatient(fhirBase: string, patient: Omit<Patient, 'resourceType'>): Promise<{ id: string; referenceNumber: string }> {
  const response = await fhirFetch(`${fhirBase}/Patient/$register`, {
    method: 'POST',
    body: { resourceType: 'Parameters', parameter: [{ name: 'patient', resource: { resourceType: 'Patient', ...patient } }] },
  });
  expect({ status: response.status, issue: response.body.issue }).toEqual({ status: 201, issue: undefined });
  const parameter = (name: string) => response.body.parameter.find((p: { name: string }) => p.name === name);
  return { id: parameter('patient').resource.id, referenceNumber: parameter('referenceNumber').valueIdentifier.value };
}
