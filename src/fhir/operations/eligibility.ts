/**
 * Residence screening shared by $check-eligibility and Patient/$register: the jurisdiction policy in
 * force (the shipped default, or the operator's JURISDICTION_POLICY_FILE), a residence that cannot
 * be screened as a 400 naming the parameter, and the answer as Parameters.
 */
import fs from 'node:fs/promises';
import { OperationOutcomeError } from '@medplum/core';
import type { Address, OperationOutcome, ParametersParameter, Patient } from '@medplum/fhirtypes';
import {
  DEFAULT_JURISDICTION_POLICY,
  checkEligibility,
  effectivePolicy,
  parseJurisdictionPolicy,
} from '../../cases/jurisdictions.ts';
import type { Eligibility, EligibilityReason, JurisdictionPolicy, Residence } from '../../cases/jurisdictions.ts';
import { invalidParameter } from './parameters.ts';

/** The hub's CodeSystem of eligibility reasons: the jurisdiction rules plus the residence problems. */
export const ELIGIBILITY_REASON_SYSTEM = 'urn:hub:eligibility-reason';

export class JurisdictionPolicyFileError extends Error {}

/**
 * The policies to choose from: the operator's file (one policy document, or a list of versions with
 * their effectiveFrom), else the shipped default. At any moment the version with the latest
 * effectiveFrom not in the future applies, so a file can schedule a change ahead of time; before the
 * file's first version takes effect, the shipped default does.
 */
export async function loadJurisdictionPolicies(file: string | undefined): Promise<JurisdictionPolicy[]> {
  if (file === undefined) {
    return [DEFAULT_JURISDICTION_POLICY];
  }
  const problem = (text: string) => new JurisdictionPolicyFileError(`JURISDICTION_POLICY_FILE ${file}: ${text}`);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw problem(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    throw problem(`is not valid JSON (${(err as Error).message})`);
  }
  const documents = Array.isArray(document) ? document : [document];
  if (documents.length === 0) {
    throw problem('lists no policy');
  }
  const policies: JurisdictionPolicy[] = [];
  const errors: string[] = [];
  documents.forEach((item, index) => {
    const parsed = parseJurisdictionPolicy(item);
    const where = Array.isArray(document) ? `policy [${index}]: ` : '';
    if (parsed.ok) {
      policies.push(parsed.policy);
    } else {
      errors.push(...parsed.errors.map((error) => where + error));
    }
  });
  if (errors.length > 0) {
    throw problem(`is not a valid jurisdiction policy: ${errors.join('; ')}`);
  }
  const versions = policies.map((policy) => policy.version);
  const repeated = versions.find((version, index) => versions.indexOf(version) !== index);
  if (repeated !== undefined) {
    throw problem(`lists version "${repeated}" twice`);
  }
  return policies;
}

export function policyInForce(policies: readonly JurisdictionPolicy[], now: Date): JurisdictionPolicy {
  return effectivePolicy(policies, now) ?? DEFAULT_JURISDICTION_POLICY;
}

/** The parameter names under which an operation received the residence, for error messages. */
export interface ResidenceFields {
  readonly country: string;
  readonly state: string;
}

/**
 * Screens a residence. A residence that cannot be screened (no country, an unknown code, a U.S.
 * residence without its state) is bad input: a 400 naming the field, with the applicant's wording.
 */
export function screenResidence(
  residence: Residence,
  policy: JurisdictionPolicy,
  fields: ResidenceFields,
): Eligibility {
  const eligibility = checkEligibility(residence, policy);
  const problem = eligibility.reasons.find(
    (reason) => reason.code === 'residence-missing' || reason.code === 'residence-unrecognised',
  );
  if (problem) {
    // checkEligibility does not say which half was wrong: a U.S. residence with a known state
    // still failing means the country is at fault, otherwise the state is.
    const probe = checkEligibility({ country: residence.country, subdivision: 'MA' }, policy);
    const countryAtFault = probe.reasons.some((reason) => reason.code.startsWith('residence-'));
    throw invalidParameter(countryAtFault ? fields.country : fields.state, problem.message);
  }
  return eligibility;
}

/** The residence a Patient gives: the current home address, else the first address with a country. */
export function residenceOf(patient: Patient): { residence: Residence; index: number } | undefined {
  const addresses: Address[] = patient.address ?? [];
  const current = (address: Address) => !address.period?.end && address.use !== 'old';
  let index = addresses.findIndex((address) => address.use === 'home' && current(address) && address.country);
  if (index < 0) {
    index = addresses.findIndex((address) => current(address) && address.country);
  }
  if (index < 0) {
    index = addresses.findIndex((address) => address.country);
  }
  // No address with a country (index -1): no residence.
  const address = addresses[index];
  if (address === undefined) {
    return undefined;
  }
  return { residence: { country: address.country, subdivision: address.state }, index };
}

function reasonParameter(reason: EligibilityReason): ParametersParameter {
  const part: ParametersParameter[] = [
    { name: 'code', valueCoding: { system: ELIGIBILITY_REASON_SYSTEM, code: reason.code } },
    { name: 'message', valueString: reason.message },
  ];
  if (reason.jurisdiction) {
    part.push({ name: 'jurisdiction', valueCode: reason.jurisdiction });
  }
  if (reason.detail) {
    part.push({ name: 'detail', valueString: reason.detail });
  }
  if (reason.source) {
    part.push({ name: 'source', valueString: reason.source });
  }
  return { name: 'reason', part };
}

const ELIGIBLE_MESSAGE =
  'We can provide a second opinion to residents of the place you live in, with every kind of review.';

/** Eligibility as output parameters: outcome, allowedReviews, message, reason*, policyVersion. */
export function eligibilityParameters(eligibility: Eligibility): ParametersParameter[] {
  const message =
    eligibility.reasons.length > 0 ? eligibility.reasons.map((reason) => reason.message).join(' ') : ELIGIBLE_MESSAGE;
  return [
    { name: 'outcome', valueCode: eligibility.outcome },
    {
      name: 'allowedReviews',
      part: [
        { name: 'radiology', valueBoolean: eligibility.allowedReviews.radiology },
        { name: 'pathology', valueBoolean: eligibility.allowedReviews.pathology },
      ],
    },
    { name: 'message', valueString: message },
    ...eligibility.reasons.map(reasonParameter),
    { name: 'policyVersion', valueString: eligibility.policyVersion },
  ];
}

/** An ineligible residence as a 422: one business-rule issue per reason, coded and in words. */
export function ineligibleOutcome(eligibility: Eligibility): OperationOutcomeError {
  const outcome: OperationOutcome = {
    resourceType: 'OperationOutcome',
    id: 'unprocessable',
    issue: eligibility.reasons.map((reason) => ({
      severity: 'error',
      code: 'business-rule',
      details: {
        coding: [{ system: ELIGIBILITY_REASON_SYSTEM, code: reason.code }],
        text: reason.message,
      },
      diagnostics: `jurisdiction policy ${eligibility.policyVersion}${reason.jurisdiction ? `, entry ${reason.jurisdiction}` : ''}`,
    })),
  };
  return new OperationOutcomeError(outcome);
}
