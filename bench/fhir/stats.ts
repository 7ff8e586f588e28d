/** Percentiles and medians of the benchmark's samples. */

/** `values[index]`, which the caller has already checked is in range. */
function at(values: ArrayLike<number>, index: number): number {
  const value = values[index];
  if (value === undefined) {
    throw new RangeError(`index ${index} is outside 0..${values.length - 1}`);
  }
  return value;
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) {
    return Number.NaN;
  }
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return at(sorted, Math.min(Math.max(rank, 1), sorted.length) - 1);
}

/** The middle value (the mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? at(sorted, middle) : (at(sorted, middle - 1) + at(sorted, middle)) / 2;
}

// Loops rather than Math.min(...values): a workload can have more samples than the call stack has room for arguments.
export function minOf(values: readonly number[]): number {
  let min = Number.NaN;
  for (const value of values) {
    if (Number.isNaN(min) || value < min) {
      min = value;
    }
  }
  return min;
}

export function maxOf(values: readonly number[]): number {
  let max = Number.NaN;
  for (const value of values) {
    if (Number.isNaN(max) || value > max) {
      max = value;
    }
  }
  return max;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarizeLatencies(samples: readonly number[]): LatencySummary {
  return {
    p50: percentile(samples, 50),
    p95: percentile(samples, 95),
    p99: percentile(samples, 99),
    max: maxOf(samples),
  };
}
