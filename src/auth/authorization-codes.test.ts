import { createHash } from 'node:crypto';
import { pkceMatches } from './authorization-codes.ts';

describe('PKCE S256', () => {
  test('RFC 7636 Appendix B example', () => {
    expect(
      pkceMatches('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'),
    ).toBe(true);
  });

  test('refuses a wrong verifier, a plain challenge and malformed values', () => {
    const verifier = 'a'.repeat(43);
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    expect(pkceMatches(verifier, challenge)).toBe(true);
    expect(pkceMatches('b'.repeat(43), challenge)).toBe(false);
    expect(pkceMatches(verifier, verifier)).toBe(false);
    expect(pkceMatches('short', challenge)).toBe(false);
    expect(pkceMatches(verifier, `${challenge}=`)).toBe(false);
  });
});
