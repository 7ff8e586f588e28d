/**
 * The one way the hub binds values into SQL it builds: each value becomes the next `$n`, so no value
 * is ever spliced into the text. FHIR search, the audit store, the DICOM index queries and the write
 * statement all build on it.
 */
export class SqlParams {
  readonly values: unknown[] = [];
  private aliasCount = 0;

  /** Binds a value; returns its placeholder. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }

  /** A table alias not used before in this statement (`prefix1`, `prefix2`, …). */
  alias(prefix: string): string {
    this.aliasCount++;
    return `${prefix}${this.aliasCount}`;
  }

  /** A binder that starts with the same values, for statements that extend a shared prefix. */
  copy(): SqlParams {
    const copy = new SqlParams();
    copy.values.push(...this.values);
    copy.aliasCount = this.aliasCount;
    return copy;
  }
}
