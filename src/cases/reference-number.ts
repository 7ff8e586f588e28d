/**
 * Patient reference numbers: 10 digits, 9 payload digits and a Damm check digit.
 *
 * Damm's check digit is the interim value of folding the digits through a weakly totally
 * anti-symmetric quasigroup of order 10 (H. M. Damm, "Totally anti-symmetric quasigroups for all
 * orders n ≠ 2, 6", Discrete Mathematics 307 (2007)). Appending it makes the fold of the whole number
 * 0, and the table's properties make every single-digit substitution and every transposition of two
 * adjacent different digits change the fold, so such typos are always refused.
 *
 * Uniqueness is not decided here: the caller stores the number under a unique constraint and draws
 * again on a collision (9 × 10^8 numbers can be issued).
 */

/** The FHIR identifier system of reference numbers (`ServiceRequest.identifier`, `requisition`, `Task.groupIdentifier`). */
export const REFERENCE_NUMBER_SYSTEM = 'urn:hub:reference-number';

export const REFERENCE_NUMBER_LENGTH = 10;

// Row = interim digit, column = next digit. Each row and column is a permutation of 0–9, the
// diagonal is 0, and (c*x)*y = (c*y)*x only when x = y (the test checks all three).
export const DAMM_TABLE: readonly (readonly number[])[] = [
  [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
  [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
  [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
  [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
  [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
  [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
  [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
  [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
  [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
  [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/** The Damm check digit of a string of decimal digits. */
export function dammCheckDigit(digits: string): number {
  let interim = 0;
  for (const character of digits) {
    // The table has a row and a column per decimal digit, so any other character finds no entry
    // (and the interim digit, a table entry itself, always names a row).
    const next = DAMM_TABLE[interim]?.[character.charCodeAt(0) - 48];
    if (next === undefined) {
      throw new RangeError(`Not a decimal digit: ${JSON.stringify(character)}`);
    }
    interim = next;
  }
  return interim;
}

/**
 * A new reference number from a source of random digits (integers 0–9). The first digit is never 0,
 * so the number survives being typed into a numeric field or a spreadsheet.
 */
export function generateReferenceNumber(randomDigit: () => number): string {
  const draw = (): number => {
    const digit = randomDigit();
    if (!Number.isInteger(digit) || digit < 0 || digit > 9) {
      throw new RangeError(`randomDigit must return an integer from 0 to 9, not ${digit}`);
    }
    return digit;
  };
  let first = draw();
  // A fair generator returns a non-zero digit within a few draws; a stuck one must not hang us.
  for (let attempt = 1; first === 0; attempt++) {
    if (attempt >= 100) {
      throw new RangeError('randomDigit returned 0 a hundred times in a row');
    }
    first = draw();
  }
  let payload = String(first);
  while (payload.length < REFERENCE_NUMBER_LENGTH - 1) {
    payload += String(draw());
  }
  return payload + String(dammCheckDigit(payload));
}

/** True for exactly 10 ASCII digits, not starting with 0, whose Damm check holds. */
export function isValidReferenceNumber(value: string): boolean {
  return /^[1-9]\d{9}$/.test(value) && dammCheckDigit(value) === 0;
}

export type ReferenceNumberProblem = 'empty' | 'not-digits' | 'wrong-length' | 'leading-zero' | 'check-digit';

export type ParsedReferenceNumber =
  { ok: true; referenceNumber: string } | { ok: false; problem: ReferenceNumberProblem; message: string };

// Spaces (including non-breaking ones) and the dashes people and word processors produce.
const SEPARATORS = /[\s\u00a0\u2007\u202f\-\u2010\u2011\u2012\u2013\u2014\u2212]/g;

/**
 * Reads a reference number as a person types it ("123 456 789 0", "123-456-7890"), or says what is
 * wrong with it in words fit to show that person.
 */
export function parseReferenceNumber(input: string): ParsedReferenceNumber {
  const compact = input.replace(SEPARATORS, '');
  if (compact === '') {
    return { ok: false, problem: 'empty', message: 'Enter the 10-digit reference number from the patient’s letter.' };
  }
  const stray = /[^0-9]/.exec(compact);
  if (stray) {
    return {
      ok: false,
      problem: 'not-digits',
      message: `A reference number contains only digits (spaces and dashes are fine), but this contains “${stray[0]}”.`,
    };
  }
  if (compact.length !== REFERENCE_NUMBER_LENGTH) {
    const has = compact.length === 1 ? '1 digit' : `${compact.length} digits`;
    return {
      ok: false,
      problem: 'wrong-length',
      message: `A reference number has ${REFERENCE_NUMBER_LENGTH} digits, but this has ${has}.`,
    };
  }
  if (compact.startsWith('0')) {
    return {
      ok: false,
      problem: 'leading-zero',
      message: 'Reference numbers never start with 0; please check the first digit against the patient’s letter.',
    };
  }
  if (dammCheckDigit(compact) !== 0) {
    return {
      ok: false,
      problem: 'check-digit',
      message:
        'This is not a valid reference number: it looks like a typo (a wrong or swapped digit). ' +
        'Please check each digit against the patient’s letter.',
    };
  }
  return { ok: true, referenceNumber: compact };
}

/** The number as printed on the patient's letter: "123 456 789 0" (the last group is the check digit). */
export function formatReferenceNumber(referenceNumber: string): string {
  if (!isValidReferenceNumber(referenceNumber)) {
    throw new RangeError('Not a valid reference number');
  }
  return `${referenceNumber.slice(0, 3)} ${referenceNumber.slice(3, 6)} ${referenceNumber.slice(6, 9)} ${referenceNumber.slice(9)}`;
}
