import { ScopeSyntaxError, formatScopes, grantScopes, parseScope, parseScopes, scopesAllow } from './scopes.ts';

describe('SMART scopes', () => {
  test('v2 scopes parse; v1 scopes map to v2', () => {
    expect(parseScope('system/ServiceRequest.cru')).toEqual({ resourceType: 'ServiceRequest', permissions: 'cru' });
    expect(parseScope('system/*.rs')).toEqual({ resourceType: '*', permissions: 'rs' });
    expect(parseScope('system/*.read')).toEqual({ resourceType: '*', permissions: 'rs' });
    expect(parseScope('system/Observation.write')).toEqual({ resourceType: 'Observation', permissions: 'cud' });
    expect(parseScope('system/Patient.*')).toEqual({ resourceType: 'Patient', permissions: 'cruds' });
  });

  test.each([
    ['patient/Observation.rs', /only system\//],
    ['user/*.read', /only system\//],
    ['system/Observation.rs?category=laboratory', /query parameters/],
    ['system/Observation.rc', /subset of cruds in that order/],
    ['system/Observation.', /not a SMART scope|permissions/],
    ['system/observation.rs', /not a resource type/],
    ['openid', /not a SMART scope/],
    ['system/Patient.x', /permissions/],
  ])('%s is refused', (text, reason) => {
    expect(() => parseScope(text)).toThrow(ScopeSyntaxError);
    expect(() => parseScope(text)).toThrow(reason);
  });

  test('a scope list is merged per type and subsumed by the wildcard', () => {
    expect(formatScopes(parseScopes('  system/Patient.r system/Patient.s system/*.r  system/Observation.r'))).toBe(
      'system/*.r system/Patient.rs',
    );
  });

  test('the grant is the intersection of requested and allowed', () => {
    const allowed = parseScopes('system/Patient.rs system/ServiceRequest.cru system/Observation.r');
    expect(formatScopes(grantScopes(parseScopes('system/*.rs'), allowed))).toBe(
      'system/Observation.r system/Patient.rs system/ServiceRequest.r',
    );
    expect(formatScopes(grantScopes(parseScopes('system/Patient.cruds system/Encounter.rs'), allowed))).toBe(
      'system/Patient.rs',
    );
    expect(grantScopes(parseScopes('system/Encounter.rs'), allowed)).toEqual([]);
    expect(formatScopes(grantScopes(parseScopes('system/Observation.read'), parseScopes('system/*.cruds')))).toBe(
      'system/Observation.rs',
    );
    expect(formatScopes(grantScopes(parseScopes('system/*.*'), parseScopes('system/*.rs')))).toBe('system/*.rs');
  });

  test('scopesAllow: each permission on the type or through the wildcard', () => {
    const scopes = parseScopes('system/Patient.rs system/*.r');
    expect(scopesAllow(scopes, 'Patient', 's')).toBe(true);
    expect(scopesAllow(scopes, 'Observation', 'r')).toBe(true);
    expect(scopesAllow(scopes, 'Observation', 's')).toBe(false);
    expect(scopesAllow(scopes, 'Patient', 'rs')).toBe(true);
    expect(scopesAllow(scopes, 'Patient', 'c')).toBe(false);
    expect(scopesAllow(scopes, '*', 's')).toBe(false);
    expect(scopesAllow(parseScopes('system/*.cruds'), '*', 'cruds')).toBe(true);
  });
});
