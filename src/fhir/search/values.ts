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
  const [hours, minutes] = zone.slice(1).split(':').map(Number);
  return sign * (hours * 60 + minutes) * 60_000;
}

/** A search number and the half-width of the range its precision implies. */
export function parseSearchNumber(value: string, paramCode: string): { value: number; halfWidth: number } {
  if (!/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(value)) {
    throw new OperationOutcomeError(badRequest(`Invalid number "${value}" for search parameter ${paramCode}`, paramCode));
  }
  const mantissa = value.toLowerCase().split('e')[0];
  const exponent = value.toLowerCase().includes('e') ? Number(value.toLowerCase().split('e')[1]) : 0;
  const decimals = mantissa.includes('.') ? mantissa.split('.')[1].length : 0;
  return { value: Number(value), halfWidth: 0.5 * 10 ** (exponent - decimals) };
}

/** Escapes LIKE wildcards so user text matches literally. */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => '\\' + c);
}
