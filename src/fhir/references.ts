/**
 * Walking the `Reference.reference` strings of a resource, wherever they are nested: to collect
 * them, or to rewrite them into a copy (the stored resource itself is never changed in place).
 */

/** Every `reference` string in `value`, at any depth. */
export function collectReferences(value: unknown, found: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) {
    value.forEach((item) => collectReferences(item, found));
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'reference' && typeof child === 'string') {
        found.add(child);
      } else {
        collectReferences(child, found);
      }
    }
  }
  return found;
}

/** A copy of `value` in which each `reference` string is replaced by `rewrite(reference)`. */
export function mapReferences<T>(value: T, rewrite: (reference: string) => string): T {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) {
      return node.map(walk);
    }
    if (typeof node !== 'object' || node === null) {
      return node;
    }
    const copy: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(node)) {
      copy[key] = key === 'reference' && typeof child === 'string' ? rewrite(child) : walk(child);
    }
    return copy;
  };
  return walk(value) as T;
}
