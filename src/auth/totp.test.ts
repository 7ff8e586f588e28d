import {
  base32Decode,
  base32Encode,
  hotp,
  otpauthUri,
  totpCode,
  totpStep,
  verifyTotp,
  generateTotpSecret,
} from './totp.ts';

const RFC_SECRET = Buffer.from('12345678901234567890', 'ascii');

describe('TOTP', () => {
  test('HOTP matches RFC 4226 Appendix D', () => {
    expect([0, 1, 2, 3, 9].map((counter) => hotp(RFC_SECRET, counter))).toEqual([
      '755224',
      '287082',
      '359152',
      '969429',
      '520489',
    ]);
  });

  test('TOTP (SHA-1, 8 digits) matches RFC 6238 Appendix B', () => {
    const vectors: [number, string][] = [
      [59, '94287082'],
      [1111111109, '07081804'],
      [1111111111, '14050471'],
      [1234567890, '89005924'],
      [2000000000, '69279037'],
      [20000000000, '65353130'],
    ];
    for (const [seconds, code] of vectors) {
      expect(hotp(RFC_SECRET, totpStep(seconds * 1000), 8)).toBe(code);
    }
  });

  test('base32 round-trips and reads RFC 4648 test vectors', () => {
    expect(base32Encode(Buffer.from('foobar'))).toBe('MZXW6YTBOI');
    expect(base32Decode('MZXW6YTBOI======').toString()).toBe('foobar');
    expect(base32Decode('mzxw 6ytb').toString()).toBe('fooba');
    const secret = generateTotpSecret();
    expect(base32Encode(base32Decode(secret))).toBe(secret);
    expect(() => base32Decode('A1')).toThrow();
  });

  test('a code is accepted one step either side, once', () => {
    const secret = generateTotpSecret();
    const now = 1_800_000_000_000;
    const step = totpStep(now);
    expect(verifyTotp(secret, totpCode(secret, now), now, undefined)).toBe(step);
    expect(verifyTotp(secret, totpCode(secret, now - 30_000), now, undefined)).toBe(step - 1);
    expect(verifyTotp(secret, totpCode(secret, now + 30_000), now, undefined)).toBe(step + 1);
    expect(verifyTotp(secret, totpCode(secret, now - 60_000), now, undefined)).toBeUndefined();
    // Replay: the step already used, or an earlier one, is refused.
    expect(verifyTotp(secret, totpCode(secret, now), now, step)).toBeUndefined();
    expect(verifyTotp(secret, totpCode(secret, now + 30_000), now, step)).toBe(step + 1);
    expect(verifyTotp(secret, '12345', now, undefined)).toBeUndefined();
    expect(verifyTotp(secret, 'abcdef', now, undefined)).toBeUndefined();
  });

  test('otpauth URI', () => {
    const uri = new URL(otpauthUri('JBSWY3DPEHPK3PXP', 'dr.a@example.org', 'Second Opinion Hub'));
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/Second Opinion Hub:dr.a@example.org');
    expect(uri.searchParams.get('secret')).toBe('JBSWY3DPEHPK3PXP');
    expect(uri.searchParams.get('issuer')).toBe('Second Opinion Hub');
  });
});
