import {
  DAMM_TABLE,
  REFERENCE_NUMBER_SYSTEM,
  dammCheckDigit,
  formatReferenceNumber,
  generateReferenceNumber,
  isValidReferenceNumber,
  parseReferenceNumber,
} from './reference-number.ts';

const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/** A deterministic digit source (a linear congruential generator) so failures reproduce. */
function seededDigits(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state >>> 16) % 10;
  };
}

function digitsFrom(sequence: number[]): () => number {
  let next = 0;
  return () => sequence[next++ % sequence.length]!;
}

const sample: string[] = [];
for (let seed = 1; sample.length < 200; seed++) {
  sample.push(generateReferenceNumber(seededDigits(seed)));
}
// Numbers with repeated digits, where adjacent transpositions of equal digits are no change at all.
sample.push(generateReferenceNumber(digitsFrom([1])), generateReferenceNumber(digitsFrom([9, 9, 0, 0])));

describe('the Damm table', () => {
  test('is a Latin square (each row and column a permutation of 0–9) with a zero diagonal', () => {
    for (const i of DIGITS) {
      expect([...DAMM_TABLE[i]!].sort()).toEqual(DIGITS);
      expect(DIGITS.map((j) => DAMM_TABLE[j]![i]).sort()).toEqual(DIGITS);
      expect(DAMM_TABLE[i]![i]).toBe(0);
    }
  });

  test('is weakly totally anti-symmetric: (c*x)*y = (c*y)*x only when x = y', () => {
    for (const c of DIGITS) {
      for (const x of DIGITS) {
        for (const y of DIGITS) {
          if (x === y) {
            continue;
          }
          expect(DAMM_TABLE[DAMM_TABLE[c]![x]!]![y]).not.toBe(DAMM_TABLE[DAMM_TABLE[c]![y]!]![x]);
        }
      }
    }
  });

  test('known check digits', () => {
    // Damm's worked example: 572 → check digit 4.
    expect(dammCheckDigit('572')).toBe(4);
    expect(dammCheckDigit('5724')).toBe(0);
    expect(dammCheckDigit('')).toBe(0);
    expect(() => dammCheckDigit('12a')).toThrow(RangeError);
  });
});

describe('generateReferenceNumber', () => {
  test('10 digits, never a leading 0, always valid', () => {
    for (const number of sample) {
      expect(number).toMatch(/^[1-9]\d{9}$/);
      expect(isValidReferenceNumber(number)).toBe(true);
    }
  });

  test('is determined by the digits drawn: the payload, then the check digit', () => {
    expect(generateReferenceNumber(digitsFrom([5, 7, 2, 0, 0, 0, 0, 0, 0]))).toBe('5720000008');
    expect(generateReferenceNumber(digitsFrom([1, 2, 3, 4, 5, 6, 7, 8, 9]))).toBe(
      `123456789${dammCheckDigit('123456789')}`,
    );
  });

  test('draws again when the first digit is 0', () => {
    expect(generateReferenceNumber(digitsFrom([0, 0, 4, 1, 1, 1, 1, 1, 1, 1, 1])).slice(0, 9)).toBe('411111111');
  });

  test('refuses a broken digit source', () => {
    expect(() => generateReferenceNumber(() => 10)).toThrow(/integer from 0 to 9/);
    expect(() => generateReferenceNumber(() => 0.5)).toThrow(/integer from 0 to 9/);
    expect(() => generateReferenceNumber(() => -1)).toThrow(/integer from 0 to 9/);
    expect(() => generateReferenceNumber(() => 0)).toThrow(/a hundred times/);
  });

  test('different sources give different numbers', () => {
    expect(new Set(sample.slice(0, 200)).size).toBe(200);
  });
});

describe('every single-digit substitution and every adjacent transposition is refused', () => {
  test.each(sample.map((number) => [number]))('%s', (number) => {
    let substitutions = 0;
    let transpositions = 0;
    for (let position = 0; position < number.length; position++) {
      for (const digit of DIGITS) {
        if (String(digit) === number[position]) {
          continue;
        }
        const typo = number.slice(0, position) + digit + number.slice(position + 1);
        expect(isValidReferenceNumber(typo)).toBe(false);
        expect(parseReferenceNumber(typo).ok).toBe(false);
        substitutions++;
      }
    }
    for (let position = 0; position < number.length - 1; position++) {
      if (number[position] === number[position + 1]) {
        continue;
      }
      const swapped = number.slice(0, position) + number[position + 1] + number[position] + number.slice(position + 2);
      expect(isValidReferenceNumber(swapped)).toBe(false);
      expect(parseReferenceNumber(swapped).ok).toBe(false);
      transpositions++;
    }
    expect(substitutions).toBe(90);
    expect(transpositions).toBeLessThanOrEqual(9);
  });

  test('the typo message is the check-digit one when the digit count is right', () => {
    const number = sample[0]!;
    const typo = number.slice(0, 4) + ((Number(number[4]) + 1) % 10) + number.slice(5);
    expect(parseReferenceNumber(typo)).toEqual({
      ok: false,
      problem: 'check-digit',
      message: expect.stringMatching(/looks like a typo/),
    });
  });
});

describe('parseReferenceNumber', () => {
  const valid = generateReferenceNumber(digitsFrom([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  const [a, b, c, d] = [valid.slice(0, 3), valid.slice(3, 6), valid.slice(6, 9), valid.slice(9)];

  test.each([
    valid,
    `${a} ${b} ${c} ${d}`,
    `${a}-${b}-${c}${d}`,
    `  ${a} ${b}  ${c}${d}\n`,
    `${a}\u2013${b}\u2014${c}\u2212${d}`,
    `${a}\u00a0${b}\u202f${c}\t${d}`,
  ])('accepts %j', (input) => {
    expect(parseReferenceNumber(input)).toEqual({ ok: true, referenceNumber: valid });
  });

  test.each([
    ['', 'empty', /Enter the 10-digit reference number/],
    [' - ', 'empty', /Enter the 10-digit reference number/],
    [`${a}.${b}.${c}${d}`, 'not-digits', /contains “\.”/],
    [`${a} ${b} ${c} O`, 'not-digits', /contains “O”/],
    [`#${valid}`, 'not-digits', /contains “#”/],
    ['١٢٣٤٥٦٧٨٩٠', 'not-digits', /contains “١”/],
    [valid.slice(0, 9), 'wrong-length', /has 10 digits, but this has 9 digits/],
    [`${valid}1`, 'wrong-length', /but this has 11 digits/],
    ['7', 'wrong-length', /but this has 1 digit\./],
    ['0123456789', 'leading-zero', /never start with 0/],
    [`${a}${b}${c}${(Number(d) + 1) % 10}`, 'check-digit', /looks like a typo/],
  ])('refuses %j as %s', (input, problem, message) => {
    const parsed = parseReferenceNumber(input);
    expect(parsed).toEqual({ ok: false, problem, message: expect.stringMatching(message) });
  });
});

describe('isValidReferenceNumber', () => {
  test('wants the compact form only', () => {
    const valid = sample[0]!;
    expect(isValidReferenceNumber(valid)).toBe(true);
    expect(isValidReferenceNumber(`${valid.slice(0, 3)} ${valid.slice(3)}`)).toBe(false);
    expect(isValidReferenceNumber(valid.slice(1))).toBe(false);
    expect(isValidReferenceNumber('0000000000')).toBe(false);
    expect(isValidReferenceNumber('')).toBe(false);
  });
});

describe('formatReferenceNumber', () => {
  test('groups 3-3-3 and the check digit, and parses back', () => {
    const number = generateReferenceNumber(digitsFrom([5, 7, 2, 0, 0, 0, 0, 0, 0]));
    expect(formatReferenceNumber(number)).toBe('572 000 000 8');
    expect(parseReferenceNumber(formatReferenceNumber(number))).toEqual({ ok: true, referenceNumber: number });
    expect(() => formatReferenceNumber('5720000003')).toThrow(RangeError);
  });
});

test('the identifier system is a hub-owned URN', () => {
  expect(REFERENCE_NUMBER_SYSTEM).toBe('urn:hub:reference-number');
});
