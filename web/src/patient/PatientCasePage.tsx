/** A patient's case at /dashboard/cases/<ServiceRequest id> (the link of their e-mails). */
import { Loader } from '@mantine/core';
import { useParams } from 'react-router';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { ApiError } from '../fhir.ts';
import { useServiceRequest } from '../physician/case-data.ts';
import { CaseNotFound } from '../physician/PhysicianCasePage.tsx';
import { PatientCase } from './PatientCase.tsx';

export function PatientCasePage() {
  const { id = '' } = useParams();
  const request = useServiceRequest(id);
  if (request.error instanceof ApiError && [404, 410].includes(request.error.status)) {
    return <CaseNotFound />;
  }
  if (request.error) {
    return <ErrorAlert error={request.error} title="Your request could not be read" />;
  }
  if (request.isPending) {
    return <Loader role="status" aria-label="Loading your request" />;
  }
  return <PatientCase serviceRequestId={id} />;
}
