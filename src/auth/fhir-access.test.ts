import { fhirAccessFor, scopesPermit } from './fhir-access.ts';
import { parseScopes } from './scopes.ts';

const TYPES = new Set(['Patient', 'Observation', 'ServiceRequest', 'Binary']);
const isType = (name: string): boolean => TYPES.has(name);
const need = (method: string, path: string) => {
  const access = fhirAccessFor(method, path, isType);
  return access.kind === 'scoped' ? `${access.resourceType}.${access.permissions}` : access.kind;
};

describe('fhirAccessFor', () => {
  test.each([
    ['GET', '/Patient', 'Patient.s'],
    ['POST', '/Patient/_search', 'Patient.s'],
    ['GET', '/Patient/123', 'Patient.r'],
    ['GET', '/Patient/123/_history', 'Patient.r'],
    ['GET', '/Patient/123/_history/2', 'Patient.r'],
    ['GET', '/Patient/_history', 'Patient.s'],
    ['POST', '/ServiceRequest', 'ServiceRequest.c'],
    ['PUT', '/ServiceRequest/1', 'ServiceRequest.u'],
    ['PATCH', '/ServiceRequest/1', 'ServiceRequest.u'],
    ['PUT', '/ServiceRequest', 'ServiceRequest.u'],
    ['DELETE', '/Observation/9', 'Observation.d'],
    ['DELETE', '/Observation', 'Observation.d'],
    ['GET', '/Patient/1/Observation', 'Observation.s'],
    ['GET', '/Binary/abc', 'Binary.r'],
    // Operations check their caller themselves (fhir/operations/caller.ts); other uses of `$` need everything.
    ['POST', '/Patient/$register-patient', 'operation'],
    ['GET', '/Patient/1/$everything', 'operation'],
    ['POST', '/$check-eligibility', 'operation'],
    ['GET', '/%24check-eligibility', 'operation'],
    ['PUT', '/Patient/$register', 'Patient.cruds'],
    ['DELETE', '/$check-eligibility', '*.cruds'],
    ['GET', '/$check-eligibility/Patient', '*.cruds'],
    ['POST', '/', '*.cruds'],
    ['POST', '', '*.cruds'],
    ['GET', '/', '*.s'],
    ['GET', '/_history', '*.s'],
    ['GET', '/metadata', 'open'],
    ['GET', '/.well-known/smart-configuration', 'open'],
    ['GET', '/Nonsense/1', 'unrouted'],
  ])('%s %s needs %s', (method, path, expected) => {
    expect(need(method, path)).toBe(expected);
  });

  test('scopesPermit', () => {
    const scopes = parseScopes('system/Patient.rs system/ServiceRequest.cru');
    expect(scopesPermit(scopes, fhirAccessFor('GET', '/Patient', isType))).toBe(true);
    expect(scopesPermit(scopes, fhirAccessFor('GET', '/Observation', isType))).toBe(false);
    expect(scopesPermit(scopes, fhirAccessFor('DELETE', '/ServiceRequest/1', isType))).toBe(false);
    expect(scopesPermit(scopes, fhirAccessFor('POST', '/', isType))).toBe(false);
    expect(scopesPermit(parseScopes('system/*.*'), fhirAccessFor('POST', '/', isType))).toBe(true);
    expect(scopesPermit([], fhirAccessFor('GET', '/metadata', isType))).toBe(true);
  });
});
