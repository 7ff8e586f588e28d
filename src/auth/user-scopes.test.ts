import { formatUserScopes, grantUserScopes, parseUserScopes, resourceScopesOf } from './user-scopes.ts';

describe('user scopes', () => {
  test('parses the SMART user scopes and sets the rest aside', () => {
    const parsed = parseUserScopes(
      'openid fhirUser launch/patient user/Patient.read user/*.rs patient/*.rs offline_access',
    );
    expect(parsed).toEqual({
      openid: true,
      fhirUser: true,
      launchPatient: true,
      resources: [{ resourceType: '*', permissions: 'rs' }],
      unsupported: ['patient/*.rs', 'offline_access'],
    });
    expect(formatUserScopes(parsed)).toBe('openid fhirUser launch/patient user/*.rs');
    expect(() => parseUserScopes('user/Patient.sr')).toThrow('"user/Patient.sr" is not a SMART user scope');
  });

  test('the grant is the request narrowed to the registration', () => {
    const allowed = parseUserScopes('openid fhirUser user/*.rs user/ServiceRequest.cru');
    const granted = grantUserScopes(parseUserScopes('openid launch/patient user/*.cruds'), allowed);
    expect(formatUserScopes(granted)).toBe('openid user/*.rs user/ServiceRequest.cru');
  });

  test('resource scopes of a token, system or user', () => {
    expect(resourceScopesOf('openid fhirUser user/Patient.rs user/Observation.r')).toEqual([
      { resourceType: 'Observation', permissions: 'r' },
      { resourceType: 'Patient', permissions: 'rs' },
    ]);
    expect(resourceScopesOf('system/*.rs')).toEqual([{ resourceType: '*', permissions: 'rs' }]);
  });
});
