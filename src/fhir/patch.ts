/** PATCH bodies (R4 http §3.1.0.5): JSON Patch operations or a FHIRPath Patch Parameters resource. */
import {
  OperationOutcomeError,
  applyPatch,
  badRequest,
  fhirpathPatchTypedValue,
  parseFhirPathPatchParameters,
  toTypedValue,
} from '@medplum/core';
import type { Operation } from '@medplum/core';
import type { Parameters, Resource } from '@medplum/fhirtypes';

/** Applies the patch to `resource` in place; a patch that does not apply is a 400. */
export function applyResourcePatch(resource: Resource, patch: Operation[] | Parameters): void {
  try {
    if (Array.isArray(patch)) {
      const errors = applyPatch(resource, patch).filter(Boolean);
      if (errors.length > 0) {
        throw new OperationOutcomeError(badRequest(errors.map((e) => e?.message).join('; ')));
      }
    } else {
      fhirpathPatchTypedValue(toTypedValue(resource), parseFhirPathPatchParameters(patch));
    }
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      throw err;
    }
    throw new OperationOutcomeError(badRequest(`Invalid patch: ${(err as Error).message}`));
  }
}
