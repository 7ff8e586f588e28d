/**
 * `Patient/$register` (POST): a patient registers for a second opinion (shared/domain.md, step 1). The
 * residence is screened first; an ineligible applicant gets a 422 naming the reasons and nothing is
 * stored. Otherwise one transaction issues a reference number, creates the Patient carrying it, and
 * stores the letter for the physician as a PDF Binary with its DocumentReference.
 *
 * Who may call it: whoever may create a Patient (index.ts, caller.ts). Its writes are made with the
 * hub's rights (the letter belongs to no case yet) and carry the caller as writer.
 *
 * Retries: a client may send a `requestId` (any text it generated, e.g. a UUID). The same requestId
 * with the same patient returns the first registration (200 instead of 201); with another patient it
 * is a 409. Without a requestId every call registers anew.
 */
import { createHash } from 'node:crypto';
import { OperationOutcomeError, allOk, badRequest, conflict, created } from '@medplum/core';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouteHandler } from '@medplum/fhir-router';
import type { Binary, DocumentReference, OperationDefinition, Parameters, Patient } from '@medplum/fhirtypes';
import type { Eligibility } from '../../cases/jurisdictions.ts';
import { registrationLetter } from '../../cases/letter.ts';
import { REFERENCE_NUMBER_SYSTEM, formatReferenceNumber } from '../../cases/reference-number.ts';
import type { Queryable } from '../../db/database.ts';
import { toOutcomeError, withFhirErrors } from '../db-errors.ts';
import { HubRepository } from '../repository.ts';
import { callerWrites } from './caller.ts';
import type { OperationContext } from './context.ts';
import {
  eligibilityParameters,
  ineligibleOutcome,
  policyInForce,
  residenceOf,
  screenResidence,
} from './eligibility.ts';
import { renderLetterPdf } from './letter-pdf.ts';
import { invalidParameter, operationInput, resourceParameter, textParameter } from './parameters.ts';
import { issueReferenceNumber, issuedForRequest, referenceNumberIdentifier } from './reference-numbers.ts';
import type { IssuedNumber } from './reference-numbers.ts';
import { isEmailAddress } from '../../notify/email-address.ts';

/** The hub's own document type code, beside LOINC's generic "Letter". */
export const DOCUMENT_TYPE_SYSTEM = 'urn:hub:document-type';
const LETTER_TITLE = 'Second-opinion registration letter';
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function registerPatientDefinition(fhirBase: string): OperationDefinition {
  return {
    resourceType: 'OperationDefinition',
    id: 'Patient-register',
    url: `${fhirBase}/OperationDefinition/Patient-register`,
    name: 'RegisterPatient',
    title: 'Register a patient for a second opinion',
    status: 'active',
    kind: 'operation',
    affectsState: true,
    code: 'register',
    resource: ['Patient'],
    system: false,
    type: true,
    instance: false,
    description:
      'Screens the residence (as $check-eligibility), then creates the Patient with a new 10-digit reference number ' +
      `(identifier system ${REFERENCE_NUMBER_SYSTEM}) and the letter for the treating physician (a PDF Binary and its ` +
      'DocumentReference), in one transaction. Ineligible: 422 and nothing is created. 201 when registered; 200 when a ' +
      'retry with the same requestId returns the earlier registration.',
    parameter: [
      {
        name: 'patient',
        use: 'in',
        min: 1,
        max: '1',
        type: 'Patient',
        documentation:
          'name, birthDate, an address with country (ISO 3166-1 alpha-2) and, in the U.S., state, and an e-mail in telecom',
      },
      {
        name: 'requestId',
        use: 'in',
        min: 0,
        max: '1',
        type: 'string',
        documentation: 'Client-generated id that makes a retry safe (1-128 of A-Z a-z 0-9 . _ : -)',
      },
      { name: 'referenceNumber', use: 'out', min: 1, max: '1', type: 'Identifier' },
      {
        name: 'referenceNumberDisplay',
        use: 'out',
        min: 1,
        max: '1',
        type: 'string',
        documentation: 'As printed on the letter: 123 456 789 0',
      },
      { name: 'patient', use: 'out', min: 1, max: '1', type: 'Patient' },
      { name: 'letter', use: 'out', min: 1, max: '1', type: 'DocumentReference' },
      {
        name: 'letterPdf',
        use: 'out',
        min: 1,
        max: '1',
        type: 'Reference',
        documentation: 'The Binary holding the PDF',
      },
      { name: 'eligibility', use: 'out', min: 1, max: '1', documentation: "The parts of $check-eligibility's answer" },
    ],
  };
}

/** The checks a registration needs beyond R4 validity; each failure names the field. */
function checkRegistrant(patient: Patient, now: Date): void {
  if (
    !patient.name?.some((name) => name.family?.trim() || name.given?.some((given) => given.trim()) || name.text?.trim())
  ) {
    throw invalidParameter('patient.name', "The patient's name is required");
  }
  const birthDate = patient.birthDate ?? '';
  if (
    !/^\d{4}-\d{2}-\d{2}$/.test(birthDate) ||
    Number.isNaN(Date.parse(birthDate)) ||
    Date.parse(birthDate) > now.getTime()
  ) {
    throw invalidParameter(
      'patient.birthDate',
      "The patient's full date of birth (YYYY-MM-DD, not in the future) is required",
    );
  }
  if (!patient.telecom?.some((point) => point.system === 'email' && isEmailAddress(point.value ?? ''))) {
    throw invalidParameter(
      'patient.telecom',
      'An e-mail address (telecom with system "email") is required: status updates go there',
    );
  }
  if (patient.identifier?.some((identifier) => identifier.system === REFERENCE_NUMBER_SYSTEM)) {
    throw invalidParameter(
      'patient.identifier',
      'Reference numbers are issued by the hub; leave them out of the registration',
    );
  }
}

interface Registration {
  issued: IssuedNumber;
  patient: Patient;
  letter: DocumentReference;
}

async function replay(repo: HubRepository, earlier: IssuedNumber): Promise<Registration> {
  return {
    issued: earlier,
    patient: await repo.readResource<Patient>('Patient', earlier.patientId),
    letter: await repo.readResource<DocumentReference>('DocumentReference', earlier.letterId),
  };
}

async function register(
  context: OperationContext,
  callerRepo: FhirRepository,
  conn: Queryable,
  submitted: Patient,
  eligibility: Eligibility,
  request: { key?: string; hash?: string },
): Promise<Registration> {
  const repo = new HubRepository(callerWrites(context.repository, callerRepo), conn);
  const patientId = repo.generateId();
  const binaryId = repo.generateId();
  const letterId = repo.generateId();
  const value = await issueReferenceNumber(conn, {
    patientId,
    letterId,
    requestKey: request.key,
    requestHash: request.hash,
  });
  const { id: _id, meta: _meta, ...fields } = submitted;
  const patient = await repo.createResource<Patient>(
    { ...fields, id: patientId, identifier: [...(fields.identifier ?? []), referenceNumberIdentifier(value)] },
    { assignedId: true },
  );

  const issuedAt = context.now();
  const letter = registrationLetter({
    referenceNumber: value,
    hubUrl: context.repository.baseUrl,
    fhirUrl: `${context.repository.baseUrl}/fhir`,
    issuedOn: issuedAt,
    allowedReviews: eligibility.allowedReviews,
  });
  const pdf = Buffer.from(await renderLetterPdf(letter, issuedAt));
  await repo.createResource<Binary>(
    {
      resourceType: 'Binary',
      id: binaryId,
      contentType: 'application/pdf',
      // Access to the letter follows access to its patient.
      securityContext: { reference: `Patient/${patientId}` },
      data: pdf.toString('base64'),
    },
    { assignedId: true },
  );
  const document = await repo.createResource<DocumentReference>(
    {
      resourceType: 'DocumentReference',
      id: letterId,
      status: 'current',
      docStatus: 'final',
      type: {
        coding: [
          { system: 'http://loinc.org', code: '51852-2', display: 'Letter' },
          { system: DOCUMENT_TYPE_SYSTEM, code: 'registration-letter', display: LETTER_TITLE },
        ],
        text: LETTER_TITLE,
      },
      subject: { reference: `Patient/${patientId}` },
      date: issuedAt.toISOString(),
      description: 'Reference number and instructions for the treating physician; no clinical content',
      content: [
        {
          attachment: {
            contentType: 'application/pdf',
            language: 'en-US',
            url: `Binary/${binaryId}`,
            size: pdf.length,
            // R4 Attachment.hash: base64 of the SHA-1 of the data.
            hash: createHash('sha1').update(pdf).digest('base64'),
            title: LETTER_TITLE,
            creation: issuedAt.toISOString(),
          },
        },
      ],
    },
    { assignedId: true },
  );
  return { issued: { value, patientId, letterId }, patient, letter: document };
}

function registrationParameters(registration: Registration, eligibility: Eligibility): Parameters {
  const value = registration.issued.value;
  const binary = registration.letter.content[0]?.attachment.url;
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'referenceNumber', valueIdentifier: { system: REFERENCE_NUMBER_SYSTEM, value } },
      { name: 'referenceNumberDisplay', valueString: formatReferenceNumber(value) },
      { name: 'patient', resource: registration.patient },
      { name: 'letter', resource: registration.letter },
      ...(binary ? [{ name: 'letterPdf', valueReference: { reference: binary } }] : []),
      { name: 'eligibility', part: eligibilityParameters(eligibility) },
    ],
  };
}

export function registerPatientHandler(context: OperationContext, definition: OperationDefinition): FhirRouteHandler {
  return async (req: FhirRequest, callerRepo, _router, options): Promise<FhirResponse> => {
    if (options?.batch) {
      // It commits its own transaction, which a transaction Bundle could not roll back.
      throw new OperationOutcomeError(
        badRequest('Patient/$register must be called on its own, not inside a batch or transaction Bundle'),
      );
    }
    const input = operationInput(req, definition);
    const submitted = resourceParameter<Patient>(input, 'patient', 'Patient') as Patient;
    checkRegistrant(submitted, context.now());
    const requestKey = textParameter(input, 'requestId');
    if (requestKey !== undefined && !REQUEST_ID.test(requestKey)) {
      throw invalidParameter('requestId', 'requestId must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"');
    }
    const found = residenceOf(submitted);
    if (!found) {
      throw invalidParameter(
        'patient.address',
        "The patient's home address with its country (ISO 3166-1 alpha-2 code, e.g. US) is required, and in the U.S. its state",
      );
    }
    const where = `patient.address[${found.index}]`;
    const policy = policyInForce(context.jurisdictionPolicies, context.now());
    const eligibility = screenResidence(found.residence, policy, {
      country: `${where}.country`,
      state: `${where}.state`,
    });
    if (eligibility.outcome === 'ineligible') {
      throw ineligibleOutcome(eligibility);
    }

    const requestHash =
      requestKey === undefined ? undefined : createHash('sha256').update(JSON.stringify(submitted)).digest('hex');
    let replayed = false;
    let registration: Registration;
    try {
      registration = await context.repository.db.transaction(async (raw) => {
        const conn = withFhirErrors(raw);
        if (requestKey !== undefined) {
          // Concurrent retries of one request take turns here, so only the first registers.
          await conn.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
            `Patient/$register ${requestKey}`,
          ]);
          const earlier = await issuedForRequest(conn, requestKey);
          if (earlier) {
            if (earlier.requestHash !== requestHash) {
              throw new OperationOutcomeError(conflict('This requestId was already used for a different registration'));
            }
            replayed = true;
            return replay(new HubRepository(callerWrites(context.repository, callerRepo), conn), earlier);
          }
        }
        return register(context, callerRepo, conn, submitted, eligibility, { key: requestKey, hash: requestHash });
      });
    } catch (err) {
      throw toOutcomeError(err);
    }
    return [replayed ? allOk : created, registrationParameters(registration, eligibility)];
  };
}
