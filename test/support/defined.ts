/**
 * Returns `value`, or throws naming `what` when it is missing (undefined or null). Narrows an indexed
 * or optional value a test relies on, so a failure says what was missing rather than "cannot read
 * properties of undefined" further on. Plain Error, so child processes and benchmarks can use it too.
 */
export function defined<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null) {
    throw new Error(`expected ${what}, got ${String(value)}`);
  }
  return value;
}
