/**
 * Parsing of search values whose meaning depends on their precision (FHIR R4 search §3.1.1.4.1):
 * a date `2020-03` means all of March 2020, a number `100` means [99.5, 100.5).
 */
import { OperationOutcomeError, badRequest } from '@medplum/core';

const DATE_PATTERN =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** The instant range a search date covers: [low, high], both inclusive, as ISO strings. */
export function parseSearchDate(value: string, paramCode: string): { low: string; high: string } {
  const m = DATE_PATTERN.exec(value);
  if (!m) {
    throw new OperationOutcomeError(badRequest(`Invalid date "${value}" for search parameter ${paramCode}`, paramCode));
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const offsetMs = zoneOffsetMs(zone);
  const year = Number(y);
  let low: number;
  let high: number;
  if (mo === undefined) {
    low = Date.UTC(year, 0, 1);
    high = Date.UTC(year + 1, 0, 1) - 1;
  } else if (d === undefined) {
    low = Date.UTC(year, Number(mo) - 1, 1);
    high = Date.UTC(year, Number(mo), 1) - 1;
  } else if (h === undefined) {
    low = Date.UTC(year, Number(mo) - 1, Number(d));
    high = low + 86_400_000 - 1;
  } else {
    const base = Date.UTC(year, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0));
    const millis = frac ? Math.floor(Number(frac) * 1000) : 0;
    low = base + millis - offsetMs;
    high = s === undefined ? low + 60_000 - 1 : frac ? low : low + 1000 - 1;
  }
  if (Number.isNaN(low) || Number.isNaN(high)) {
    throw new OperationOutcomeError(badRequest(`Invalid date "${value}" for search parameter ${paramCode}`, paramCode));
  }
  return { low: new Date(low).toISOString(), high: new Date(high).toISOString() };
}

function zoneOffsetMs(zone: string | undefined): number {
  if (!zone || zone === 'Z') {
    return 0;
  }
  const sign = zone.startsWith('-') ? -1 : 1;
  // DATE_PATTERN lets only ±hh:mm through.
  const hours = Number(zone.slice(1, 3));
  const minutes = Number(zone.slice(4, 6));
  return sign * (hours * 60 + minutes) * 60_000;
}

/** A search number as exact decimal text, with the range its precision implies. */
export interface SearchNumber {
  value: string;
  /** R4 search, number: `100` means [99.5, 100.5); low is inside the range, high is not. */
  low: string;
  high: string;
  /** The server-defined range of `ap`: the value ±10%. */
  approximateLow: string;
  approximateHigh: string;
}

const NUMBER_PATTERN = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d{1,4}))?$/;
// Far beyond any clinical value, and within what PostgreSQL numeric can hold.
const MAX_SCALE = 1000;

/**
 * Parses a search number. The bounds are computed on scaled integers, not binary floating point:
 * `5.4` must mean exactly [5.35, 5.45), and 5.4 - 0.05 in floating point is 5.3500000000000005.
 */
export function parseSearchNumber(value: string, paramCode: string): SearchNumber {
  const m = NUMBER_PATTERN.exec(value);
  if (!m || (m[2] === '' && !m[3])) {
    throw new OperationOutcomeError(
      badRequest(`Invalid number "${value}" for search parameter ${paramCode}`, paramCode),
    );
  }
  const [, sign, whole, fraction = '', exponent = '0'] = m;
  const digits = BigInt(`${sign === '-' ? '-' : ''}${whole}${fraction}` || '0');
  // value = digits × 10^-scale
  const scale = fraction.length - Number(exponent);
  if (Math.abs(scale) > MAX_SCALE) {
    throw new OperationOutcomeError(
      badRequest(`Number "${value}" is out of range for search parameter ${paramCode}`, paramCode),
    );
  }
  const tenfold = digits * 10n;
  const magnitude = digits < 0n ? -digits : digits;
  return {
    value: decimalText(digits, scale),
    low: decimalText(tenfold - 5n, scale + 1),
    high: decimalText(tenfold + 5n, scale + 1),
    approximateLow: decimalText(tenfold - magnitude, scale + 1),
    approximateHigh: decimalText(tenfold + magnitude, scale + 1),
  };
}

/** `digits × 10^-scale` as plain decimal text. */
function decimalText(digits: bigint, scale: number): string {
  if (scale <= 0) {
    return (digits * 10n ** BigInt(-scale)).toString();
  }
  const negative = digits < 0n;
  const text = (negative ? -digits : digits).toString().padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${text.slice(0, -scale)}.${text.slice(-scale)}`;
}

/** Escapes LIKE wildcards so user text matches literally. */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => '\\' + c);
}
