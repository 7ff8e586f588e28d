/**
 * Validation against the R4 definitions: @medplum/core's structural validator, plus the check it
 * lacks, that every `code` element with a *required* binding holds a code of its value set
 * (so a Patient with gender "robot" is refused).
 */
import { OperationOutcomeError, getDataType, isResourceType, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, ValueSet } from '@medplum/fhirtypes';
import { getCodeSystemConcepts, getValueSet } from './definitions.ts';

const expansionCache = new Map<string, Set<string> | null>();

/** The codes of a value set when they can be enumerated from the R4 definitions, else undefined. */
function allowedCodes(valueSetUrl: string): Set<string> | undefined {
  const [url = valueSetUrl] = valueSetUrl.split('|');
  if (!expansionCache.has(url)) {
    expansionCache.set(url, expand(getValueSet(url)) ?? null);
  }
  return expansionCache.get(url) ?? undefined;
}

function expand(valueSet: ValueSet | undefined): Set<string> | undefined {
  const includes = valueSet?.compose?.include;
  if (!includes || includes.length === 0 || valueSet?.compose?.exclude) {
    return undefined;
  }
  const codes = new Set<string>();
  for (const include of includes) {
    if (include.filter || include.valueSet) {
      return undefined;
    }
    if (include.concept) {
      include.concept.forEach((concept) => codes.add(concept.code));
    } else if (include.system) {
      const systemCodes = getCodeSystemConcepts(include.system);
      if (!systemCodes) {
        return undefined;
      }
      systemCodes.forEach((code) => codes.add(code));
    } else {
      return undefined;
    }
  }
  return codes;
}

/** Walks `value` against the type schema `typeName`, collecting binding violations. */
function checkBindings(
  typeName: string,
  value: unknown,
  path: string,
  issues: OperationOutcomeIssue[],
  depth = 0,
): void {
  if (depth > 24 || typeof value !== 'object' || value === null) {
    return;
  }
  let schema;
  try {
    schema = getDataType(typeName);
  } catch {
    return;
  }
  const record = value as Record<string, unknown>;
  for (const [name, element] of Object.entries(schema.elements ?? {})) {
    const isChoice = name.endsWith('[x]');
    const candidates = isChoice
      ? element.type.map(
          (t) => [name.replace('[x]', t.code.charAt(0).toUpperCase() + t.code.slice(1)), t.code] as const,
        )
      : [[name, element.type[0]?.code] as const];
    for (const [key, type] of candidates) {
      const present = record[key];
      if (present === undefined || !type) {
        continue;
      }
      const items = Array.isArray(present) ? present : [present];
      items.forEach((item, i) => {
        const itemPath = Array.isArray(present) ? `${path}.${key}[${i}]` : `${path}.${key}`;
        if (type === 'code') {
          const binding = element.binding;
          if (binding?.strength === 'required' && binding.valueSet && typeof item === 'string') {
            const codes = allowedCodes(binding.valueSet);
            if (codes && !codes.has(item)) {
              issues.push({
                severity: 'error',
                code: 'code-invalid',
                details: { text: `Value "${item}" is not in the required value set ${binding.valueSet.split('|')[0]}` },
                expression: [itemPath],
              });
            }
          }
        } else if (type !== 'Resource' && /^[A-Z]/.test(type)) {
          checkBindings(type, item, itemPath, issues, depth + 1);
        } else if (type === 'Resource' && typeof item === 'object' && item !== null) {
          const inner = (item as Resource).resourceType;
          if (inner && isResourceType(inner)) {
            checkBindings(inner, item, itemPath, issues, depth + 1);
          }
        }
      });
    }
  }
}

/** Throws an OperationOutcomeError (400) listing every problem, each with its element path. */
export function validateFhirResource(resource: Resource): void {
  const issues: OperationOutcomeIssue[] = [];
  try {
    validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      issues.push(...err.outcome.issue);
    } else {
      throw err;
    }
  }
  checkBindings(resource.resourceType, resource, resource.resourceType, issues);
  const errors = issues.filter((issue) => issue.severity === 'error' || issue.severity === 'fatal');
  if (errors.length > 0) {
    throw new OperationOutcomeError({ resourceType: 'OperationOutcome', id: 'invalid', issue: errors });
  }
}
