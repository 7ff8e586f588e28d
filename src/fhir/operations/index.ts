/**
 * The hub's FHIR operations: each file in this folder defines one (its OperationDefinition and its
 * handler); this registry routes them and serves their definitions at OperationDefinition/[id], and
 * the CapabilityStatement lists what it registered, so the statement cannot advertise an operation
 * that is not routed or miss one that is.
 */
import { allOk } from '@medplum/core';
import type { FhirRouteHandler, FhirRouter, HttpMethod } from '@medplum/fhir-router';
import type { OperationDefinition } from '@medplum/fhirtypes';
import { checkEligibilityDefinition, checkEligibilityHandler } from './check-eligibility.ts';
import type { OperationContext } from './context.ts';
import { registerPatientDefinition, registerPatientHandler } from './register-patient.ts';

export type { OperationContext } from './context.ts';

interface HubOperation {
  definition: (fhirBase: string) => OperationDefinition;
  handler: (context: OperationContext, definition: OperationDefinition) => FhirRouteHandler;
  methods: HttpMethod[];
}

const OPERATIONS: HubOperation[] = [
  // R4 operations: GET is allowed when the operation changes nothing and its inputs are primitive.
  { definition: checkEligibilityDefinition, handler: checkEligibilityHandler, methods: ['GET', 'POST'] },
  { definition: registerPatientDefinition, handler: registerPatientHandler, methods: ['POST'] },
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
    const handler = operation.handler(context, definition);
    for (const path of operationPath(definition)) {
      for (const method of operation.methods) router.add(method, path, handler, 'operation');
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
