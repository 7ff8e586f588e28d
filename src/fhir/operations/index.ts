/**
 * The hub's FHIR operations: each file in this folder defines one (its OperationDefinition and its
 * handler); this registry routes them and serves their definitions at OperationDefinition/[id], and
 * the CapabilityStatement lists what it registered, so the statement cannot advertise an operation
 * that is not routed or miss one that is. Each names who may call it (caller.ts), checked here
 * before its handler runs, so a refused call is a 403 that has done nothing.
 */
import { allOk } from '@medplum/core';
import type { FhirRouteHandler, FhirRouter, HttpMethod } from '@medplum/fhir-router';
import type { OperationDefinition } from '@medplum/fhirtypes';
import { requireAccess, operationCaller } from './caller.ts';
import type { OperationAccess } from './caller.ts';
import { checkEligibilityDefinition, checkEligibilityHandler } from './check-eligibility.ts';
import type { OperationContext } from './context.ts';
import { registerPatientDefinition, registerPatientHandler } from './register-patient.ts';

export type { OperationContext } from './context.ts';

interface HubOperation {
  definition: (fhirBase: string) => OperationDefinition;
  handler: (context: OperationContext, definition: OperationDefinition) => FhirRouteHandler;
  methods: HttpMethod[];
  /** Who may call it; the handler may ask more for some inputs ($check-eligibility's referenceNumber). */
  access: OperationAccess;
}

const OPERATIONS: HubOperation[] = [
  // R4 operations: GET is allowed when the operation changes nothing and its inputs are primitive.
  // Read-only, and its answer by residence is the published policy: any identity.
  {
    definition: checkEligibilityDefinition,
    handler: checkEligibilityHandler,
    methods: ['GET', 'POST'],
    access: 'authenticated',
  },
  {
    definition: registerPatientDefinition,
    handler: registerPatientHandler,
    methods: ['POST'],
    access: { resourceType: 'Patient', interaction: 'create' },
  },
];

const registered = new WeakMap<FhirRouter, OperationDefinition[]>();

function operationPath(definition: OperationDefinition): string[] {
  const name = `$${definition.code}`;
  return [
    ...(definition.system ? [name] : []),
    ...(definition.type ? (definition.resource ?? []).map((type) => `${type}/${name}`) : []),
  ];
}

/** Routes every operation of the hub on `router`, with its definition readable at OperationDefinition/[id]. */
export function registerOperations(router: FhirRouter, context: OperationContext): void {
  const fhirBase = `${context.repository.baseUrl}/fhir`;
  const definitions: OperationDefinition[] = [];
  for (const operation of OPERATIONS) {
    const definition = operation.definition(fhirBase);
    const run = operation.handler(context, definition);
    for (const path of operationPath(definition)) {
      const handler: FhirRouteHandler = async (req, repo, fhirRouter, options) => {
        requireAccess(operationCaller(repo), operation.access, path);
        return run(req, repo, fhirRouter, options);
      };
      for (const method of operation.methods) {
        router.add(method, path, handler, 'operation');
      }
    }
    router.add('GET', `OperationDefinition/${definition.id}`, async () => [allOk, definition], 'operation');
    definitions.push(definition);
  }
  registered.set(router, definitions);
}

/** The operations registerOperations routed on `router` (none when it was not called). */
export function registeredOperations(router: FhirRouter): readonly OperationDefinition[] {
  return registered.get(router) ?? [];
}
