import { checkPasswordPolicy, hashPassword, needsRehash, verifyPassword } from './passwords.ts';

describe('passwords', () => {
  test('scrypt hash: salted, verifiable, parameters stored', async () => {
    const a = await hashPassword('correct horse battery staple');
    const b = await hashPassword('correct horse battery staple');
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[\w-]+\$[\w-]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery staple', a)).toBe(true);
    expect(await verifyPassword('correct horse battery stapler', a)).toBe(false);
    expect(await verifyPassword('anything', 'not a hash')).toBe(false);
    expect(needsRehash(a)).toBe(false);
  });

  test('a hash made with weaker parameters still verifies and asks to be redone', async () => {
    const weak = await hashPassword('an older password', { ln: 12, r: 8, p: 1 });
    expect(weak).toContain('$ln=12,');
    expect(await verifyPassword('an older password', weak)).toBe(true);
    expect(needsRehash(weak)).toBe(true);
  });

  test('policy: length only', () => {
    expect(() => checkPasswordPolicy('short')).toThrow(/at least 12/);
    expect(() => checkPasswordPolicy('x'.repeat(1025))).toThrow(/at most/);
    expect(() => checkPasswordPolicy('twelve chars')).not.toThrow();
  });
});
