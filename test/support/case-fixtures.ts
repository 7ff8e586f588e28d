/** What the case suites share: the jobs' context on a test hub, the planned materials of a referral, and registering its patient. */
import path from 'node:path';
import type { Patient } from '@medplum/fhirtypes';
import { DEFAULT_FEE_SCHEDULE } from '../../src/cases/fees.ts';
import { DEFAULT_JURISDICTION_POLICY } from '../../src/cases/jurisdictions.ts';
import { FileBlobStore } from '../../src/storage/blob-store.ts';
import type { WorkflowContext } from '../../src/workflow/context.ts';
import { fhirFetch } from './test-hub.ts';
import type { TestHub } from './test-hub.ts';

/** The context the case jobs run with, on a test hub's database and storage, the shipped policies and the real clock. */
export function workflowContextOf(testHub: TestHub): WorkflowContext {
  return {
    repository: {
      db: testHub.hub.db,
      blobs: new FileBlobStore(path.join(testHub.config.dataDir, 'blobs')),
      baseUrl: testHub.config.baseUrl,
      binaryMaxBytes: testHub.config.binaryMaxBytes,
    },
    jurisdictionPolicies: [DEFAULT_JURISDICTION_POLICY],
    feeSchedules: [DEFAULT_FEE_SCHEDULE],
    now: () => testHub.clock.now(),
  };
}

/** The counts a physician plans, as the ServiceRequest's orderDetail carries them (docs/case-workflow.md). */
export interface Planned {
  imagingSites?: number;
  recordPages?: number;
  biopsySites?: number;
}

export function orderDetail(planned: Planned): unknown[] {
  const detail = (kind: string, url: string, value: number | undefined) =>
    value === undefined
      ? []
      : [{ coding: [{ system: 'urn:hub:material', code: kind }], extension: [{ url, valueInteger: value }] }];
  return [
    ...detail('imaging', 'urn:hub:extension:imaging-sites', planned.imagingSites),
    ...detail('records', 'urn:hub:extension:record-pages', planned.recordPages),
    ...detail('pathology', 'urn:hub:extension:biopsy-sites', planned.biopsySites),
  ];
}

/** Registers `patient` through `Patient/$register` and returns its id and reference number. */
export async function registerPatient(
  fhirBase: string,
  patient: Omit<Patient, 'resourceType'>,
): Promise<{ id: string; referenceNumber: string }> {
  const response = await fhirFetch(`${fhirBase}/Patient/$register`, {
    method: 'POST',
    body: {
      resourceType: 'Parameters',
      parameter: [{ name: 'patient', resource: { resourceType: 'Patient', ...patient } }],
    },
  });
  expect({ status: response.status, issue: response.body.issue }).toEqual({ status: 201, issue: undefined });
  const parameter = (name: string) => response.body.parameter.find((p: { name: string }) => p.name === name);
  return { id: parameter('patient').resource.id, referenceNumber: parameter('referenceNumber').valueIdentifier.value };
}
