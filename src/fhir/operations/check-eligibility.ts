/**
 * `$check-eligibility` (system level, GET or POST): can the service serve a resident of this place,
 * and which reviews may it do? Answers from the jurisdiction policy in force; creates nothing.
 * Any identity may ask about a residence (index.ts). A registered patient can be re-checked by the
 * reference number their physician types: that answer is about a stored patient, so it needs the
 * right to refer (create a ServiceRequest: referring physicians, coordinators, admins, or a client
 * with ServiceRequest `c`), and the patient is looked up with the hub's rights, since a patient not
 * yet referred is in none of the physician's cases.
 */
import { OperationOutcomeError, allOk, notFound } from '@medplum/core';
import type { FhirRequest, FhirRepository, FhirResponse, FhirRouteHandler } from '@medplum/fhir-router';
import type { OperationDefinition, Parameters } from '@medplum/fhirtypes';
import type { Residence } from '../../cases/jurisdictions.ts';
import { eligibilityParameters, policyInForce, residenceOf, screenResidence } from './eligibility.ts';
import { callerWrites, operationCaller, requireRight } from './caller.ts';
import type { OperationContext } from './context.ts';
import { HubRepository } from '../repository.ts';
import { invalidParameter, operationInput, textParameter, textParameters } from './parameters.ts';
import { findPatientByReferenceNumber, parseTypedReferenceNumber } from './reference-numbers.ts';

const REVIEWS = ['radiology', 'pathology'] as const;

export function checkEligibilityDefinition(fhirBase: string): OperationDefinition {
  return {
    resourceType: 'OperationDefinition',
    id: 'check-eligibility',
    url: `${fhirBase}/OperationDefinition/check-eligibility`,
    name: 'CheckEligibility',
    title: 'Check whether the service can serve a resident of a place',
    status: 'active',
    kind: 'operation',
    affectsState: false,
    code: 'check-eligibility',
    system: true,
    type: false,
    instance: false,
    description:
      'Screens a residence against the jurisdiction policy in force: some places cannot be served at all, others only ' +
      'without radiology and/or pathology review. Give country (and state for the U.S.), or the referenceNumber of a ' +
      'registered patient. A residence that cannot be screened is a 400 naming the parameter.',
    parameter: [
      {
        name: 'country',
        use: 'in',
        min: 0,
        max: '1',
        type: 'code',
        documentation: 'ISO 3166-1 alpha-2 country of residence (US, FR, ...)',
      },
      {
        name: 'state',
        use: 'in',
        min: 0,
        max: '1',
        type: 'code',
        documentation: 'For the U.S.: the state or territory (NM or US-NM); ignored elsewhere',
      },
      {
        name: 'referenceNumber',
        use: 'in',
        min: 0,
        max: '1',
        type: 'string',
        documentation: "Instead of a residence: a registered patient's reference number, as typed",
      },
      {
        name: 'plannedReview',
        use: 'in',
        min: 0,
        max: '*',
        type: 'code',
        documentation: 'radiology | pathology: reviews the case would need',
      },
      {
        name: 'outcome',
        use: 'out',
        min: 1,
        max: '1',
        type: 'code',
        documentation: 'eligible | eligible-with-restrictions | ineligible',
      },
      {
        name: 'allowedReviews',
        use: 'out',
        min: 1,
        max: '1',
        part: [
          { name: 'radiology', use: 'out', min: 1, max: '1', type: 'boolean' },
          { name: 'pathology', use: 'out', min: 1, max: '1', type: 'boolean' },
        ],
      },
      {
        name: 'message',
        use: 'out',
        min: 1,
        max: '1',
        type: 'string',
        documentation: 'The answer in words for the applicant',
      },
      {
        name: 'reason',
        use: 'out',
        min: 0,
        max: '*',
        documentation: 'One per rule that applied',
        part: [
          { name: 'code', use: 'out', min: 1, max: '1', type: 'Coding', documentation: 'urn:hub:eligibility-reason' },
          { name: 'message', use: 'out', min: 1, max: '1', type: 'string' },
          { name: 'jurisdiction', use: 'out', min: 0, max: '1', type: 'code' },
          { name: 'detail', use: 'out', min: 0, max: '1', type: 'string' },
          { name: 'source', use: 'out', min: 0, max: '1', type: 'string' },
        ],
      },
      {
        name: 'plannedReviewsAllowed',
        use: 'out',
        min: 0,
        max: '1',
        type: 'boolean',
        documentation: 'Present when plannedReview was given',
      },
      { name: 'policyVersion', use: 'out', min: 1, max: '1', type: 'string' },
    ],
  };
}

async function residenceFromReferenceNumber(repo: FhirRepository, typed: string): Promise<Residence> {
  const referenceNumber = parseTypedReferenceNumber(typed, 'referenceNumber');
  const patient = await findPatientByReferenceNumber(repo, referenceNumber);
  if (!patient) {
    throw new OperationOutcomeError({
      ...notFound,
      issue: [
        {
          severity: 'error',
          code: 'not-found',
          expression: ['referenceNumber'],
          details: {
            text: "No patient is registered under this reference number. Please check it against the patient's letter.",
          },
        },
      ],
    });
  }
  const found = residenceOf(patient);
  if (!found) {
    throw invalidParameter(
      'referenceNumber',
      'The patient registered under this reference number has no address with a country.',
    );
  }
  return found.residence;
}

export function checkEligibilityHandler(context: OperationContext, definition: OperationDefinition): FhirRouteHandler {
  return async (req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> => {
    const input = operationInput(req, definition);
    const country = textParameter(input, 'country');
    const state = textParameter(input, 'state');
    const typedNumber = textParameter(input, 'referenceNumber');
    const planned = textParameters(input, 'plannedReview').map((review) => review.trim().toLowerCase());
    for (const review of planned) {
      if (!(REVIEWS as readonly string[]).includes(review)) {
        throw invalidParameter('plannedReview', `plannedReview must be ${REVIEWS.join(' or ')}, not "${review}"`);
      }
    }
    if (typedNumber !== undefined && (country !== undefined || state !== undefined)) {
      throw invalidParameter(
        'referenceNumber',
        'Give either a residence (country, state) or a referenceNumber, not both',
      );
    }
    if (typedNumber !== undefined) {
      requireRight(
        operationCaller(repo),
        { resourceType: 'ServiceRequest', interaction: 'create' },
        '$check-eligibility with a referenceNumber',
      );
    }
    const residence: Residence =
      typedNumber !== undefined
        ? await residenceFromReferenceNumber(new HubRepository(callerWrites(context.repository, repo)), typedNumber)
        : { country, subdivision: state };
    const policy = policyInForce(context.jurisdictionPolicies, context.now());
    const fields =
      typedNumber !== undefined
        ? { country: 'referenceNumber', state: 'referenceNumber' }
        : { country: 'country', state: 'state' };
    const eligibility = screenResidence(residence, policy, fields);
    const output: Parameters = { resourceType: 'Parameters', parameter: eligibilityParameters(eligibility) };
    if (planned.length > 0) {
      const allowed = planned.every((review) => eligibility.allowedReviews[review as (typeof REVIEWS)[number]]);
      output.parameter?.push({
        name: 'plannedReviewsAllowed',
        valueBoolean: eligibility.outcome !== 'ineligible' && allowed,
      });
    }
    return [allOk, output];
  };
}
