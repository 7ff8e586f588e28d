import { checkAssertionClaims } from './client-assertion.ts';
import { OAuthError } from './oauth-error.ts';

const tokenUrl = 'https://hub.example.org/oauth2/token';
const now = 1_800_000_000;
const valid = { iss: 'ehr', sub: 'ehr', aud: tokenUrl, exp: now + 240, iat: now, jti: 'a1' };
const check = (claims: Record<string, unknown>) =>
  checkAssertionClaims(claims, { clientId: 'ehr', tokenUrl, nowSeconds: now });

describe('checkAssertionClaims', () => {
  test('a valid assertion: its jti is kept until exp plus the allowed skew', () => {
    expect(check(valid)).toEqual({ jti: 'a1', rememberUntil: now + 240 + 60 });
    expect(check({ ...valid, aud: ['other', tokenUrl] }).jti).toBe('a1');
    // A client clock a little ahead is tolerated.
    expect(check({ ...valid, iat: now + 30, nbf: now + 30 }).jti).toBe('a1');
  });

  test.each([
    ['iss differs', { iss: 'other' }, /iss/],
    ['sub differs', { sub: 'other' }, /sub/],
    ['wrong aud', { aud: 'https://hub.example.org/oauth2/token/' }, /aud/],
    ['no exp', { exp: undefined }, /exp/],
    ['expired', { exp: now - 61 }, /expired/],
    ['lives too long', { exp: now + 300 + 61 }, /at most 300 seconds/],
    ['nbf in the future', { nbf: now + 120 }, /not valid yet/],
    ['iat in the future', { iat: now + 120 }, /not valid yet/],
    ['iat not a number', { iat: 'now' }, /NumericDate/],
    ['no jti', { jti: undefined }, /jti/],
    ['empty jti', { jti: '' }, /jti/],
  ])('%s → invalid_client', (_name, change, reason) => {
    let error: unknown;
    try {
      check({ ...valid, ...change });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(OAuthError);
    expect((error as OAuthError).code).toBe('invalid_client');
    expect((error as OAuthError).message).toMatch(reason);
  });
});
