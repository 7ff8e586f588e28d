/**
 * Reading an operation's input (R4 operations: a Parameters body on POST, or the URL's query on GET
 * when every parameter is primitive) and answering bad input with a 400 that names the parameter.
 */
import { OperationOutcomeError, badRequest } from '@medplum/core';
import type { FhirRequest } from '@medplum/fhir-router';
import type { OperationDefinition, ParametersParameter, Resource } from '@medplum/fhirtypes';

/** A 400 whose issue names the offending parameter in `expression`. */
export function invalidParameter(name: string, text: string): OperationOutcomeError {
  return new OperationOutcomeError(badRequest(text, name));
}

/** The input parameters named in `definition`; unknown names, wrong shapes and repeats of 0..1 are 400s. */
export function operationInput(req: FhirRequest, definition: OperationDefinition): ParametersParameter[] {
  const inputs = (definition.parameter ?? []).filter((param) => param.use === 'in');
  const operation = `$${definition.code}`;
  let given: ParametersParameter[];
  if (req.method === 'GET') {
    given = Object.entries(req.query)
      .filter(([name]) => !name.startsWith('_'))
      .flatMap(([name, value]) => [value ?? []].flat().map((text) => ({ name, valueString: text })));
  } else {
    const body = req.body as Resource | undefined;
    if (body?.resourceType !== 'Parameters') {
      throw new OperationOutcomeError(badRequest(`The body of ${operation} must be a Parameters resource`));
    }
    const parameters = body.parameter ?? [];
    if (!Array.isArray(parameters)) {
      throw new OperationOutcomeError(badRequest('Parameters.parameter must be a list'));
    }
    given = parameters;
  }
  for (const param of given) {
    if (typeof param?.name !== 'string' || param.name === '') {
      throw new OperationOutcomeError(badRequest('Every parameter needs a name'));
    }
    const declared = inputs.find((input) => input.name === param.name);
    if (!declared) {
      const known = inputs.map((input) => input.name).join(', ');
      throw invalidParameter(param.name, `${operation} has no parameter "${param.name}" (its parameters: ${known})`);
    }
    if (req.method === 'GET' && declared.type === undefined) {
      throw invalidParameter(
        param.name,
        `"${param.name}" is not a primitive value: send it in a POSTed Parameters resource`,
      );
    }
  }
  for (const input of inputs) {
    const count = given.filter((param) => param.name === input.name).length;
    if (input.max === '1' && count > 1) {
      throw invalidParameter(input.name, `"${input.name}" may be given only once`);
    }
    if (input.min > 0 && count === 0) {
      throw invalidParameter(input.name, `"${input.name}" is required`);
    }
  }
  return given;
}

const TEXT_VALUES = ['valueString', 'valueCode', 'valueId', 'valueUri', 'valueMarkdown'] as const;

/** The text of a string-like parameter, or undefined when absent; another value type is a 400. */
export function textParameter(params: readonly ParametersParameter[], name: string): string | undefined {
  const param = params.find((candidate) => candidate.name === name);
  return param === undefined ? undefined : textOf(param);
}

export function textParameters(params: readonly ParametersParameter[], name: string): string[] {
  return params.filter((param) => param.name === name).map(textOf);
}

function textOf(param: ParametersParameter): string {
  for (const key of TEXT_VALUES) {
    const value = param[key];
    if (typeof value === 'string') {
      return value;
    }
  }
  throw invalidParameter(param.name, `"${param.name}" must be a text value (valueString or valueCode)`);
}

/** The resource of a resource parameter, checked to be of `type`. */
export function resourceParameter<T extends Resource>(
  params: readonly ParametersParameter[],
  name: string,
  type: T['resourceType'],
): T | undefined {
  const param = params.find((candidate) => candidate.name === name);
  if (param === undefined) {
    return undefined;
  }
  const resource = param.resource;
  if (resource?.resourceType !== type) {
    throw invalidParameter(name, `"${name}" must carry a ${type} resource in "resource"`);
  }
  return resource as T;
}
