import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { JwksError, candidateKeys, validateJwks } from './jwks.ts';

async function publicJwk(alg: 'RS384' | 'ES384' | 'ES256', kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { publicJwk: { ...(await exportJWK(publicKey)), kid }, privateJwk: { ...(await exportJWK(privateKey)), kid } };
}

describe('JWKS validation', () => {
  test('public RSA and EC keys are accepted', async () => {
    const rsa = await publicJwk('RS384', 'r1');
    const ec = await publicJwk('ES384', 'e1');
    const jwks = await validateJwks({ keys: [rsa.publicJwk, ec.publicJwk] });
    expect(jwks.keys.map((key) => key.kid)).toEqual(['r1', 'e1']);
  });

  test.each([
    ['not an object', 'text', /"keys" array/],
    ['no keys', { keys: [] }, /1 to 20 keys/],
    ['a symmetric key', { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, /private key material \("k"\)/],
    ['an unknown key type', { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }] }, /kty/],
    [
      'an EC key on an unsupported curve',
      { keys: [{ kty: 'EC', crv: 'secp256k1', x: 'AA', y: 'AA' }] },
      /P-256 or P-384/,
    ],
    ['an encryption key', { keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', use: 'enc' }] }, /"sig"/],
  ])('%s is refused', async (_name, document, reason) => {
    await expect(validateJwks(document)).rejects.toThrow(JwksError);
    await expect(validateJwks(document)).rejects.toThrow(reason);
  });

  test('private key material is refused', async () => {
    const { privateJwk } = await publicJwk('ES384', 'e1');
    await expect(validateJwks({ keys: [privateJwk] })).rejects.toThrow(/private key material \("d"\)/);
  });

  test('short RSA keys and duplicate kids are refused', async () => {
    // jose will not generate a key this short; node:crypto will.
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    await expect(validateJwks({ keys: [short] })).rejects.toThrow(/2048 bits/);
    const ec = await publicJwk('ES384', 'same');
    await expect(validateJwks({ keys: [ec.publicJwk, ec.publicJwk] })).rejects.toThrow(/used twice/);
  });

  test('candidate keys: kid, and a key type and curve that fit the algorithm', async () => {
    const rsa = await publicJwk('RS384', 'r1');
    const p384 = await publicJwk('ES384', 'e1');
    const p256 = await publicJwk('ES256', 'e2');
    const jwks = await validateJwks({ keys: [rsa.publicJwk, p384.publicJwk, { ...p256.publicJwk, alg: 'ES256' }] });
    expect(candidateKeys(jwks, 'ES384', undefined).map((key) => key.kid)).toEqual(['e1']);
    expect(candidateKeys(jwks, 'ES256', 'e2').map((key) => key.kid)).toEqual(['e2']);
    expect(candidateKeys(jwks, 'ES384', 'e2')).toEqual([]);
    expect(candidateKeys(jwks, 'RS256', undefined).map((key) => key.kid)).toEqual(['r1']);
    expect(candidateKeys(jwks, 'RS384', 'missing')).toEqual([]);
  });
});
