/**
 * Loads the benchmark data set through the public FHIR API: transaction bundles (one per group of
 * patients, with everything that refers to them), several in flight at once.
 */
import type { Bundle } from '@medplum/fhirtypes';
import { Random, datasetShape, patientGroupBundle, practitionerBundle } from './dataset.ts';
import type { DatasetShape } from './dataset.ts';

export interface LoadOptions {
  fhirBase: string;
  resources: number;
  seed: number;
  /** Patients per transaction bundle (about ten entries each). */
  patientsPerBundle: number;
  /** Bundles in flight at once. */
  concurrency: number;
  onProgress?: (loaded: number, total: number) => void;
  /** The `authorization` header of each bundle (renewed as tokens age). */
  authorization: () => Promise<string>;
}

export interface LoadReport {
  shape: DatasetShape;
  bundles: number;
  seconds: number;
  resourcesPerSecond: number;
}

/** Posts a transaction bundle; returns the `Type/id` of each entry, in order. */
export async function postTransaction(fhirBase: string, bundle: Bundle, authorization: string): Promise<string[]> {
  const response = await fetch(fhirBase, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', authorization },
    body: JSON.stringify(bundle),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`Transaction failed with HTTP ${response.status}: ${text.slice(0, 600)}`);
  }
  const reply = JSON.parse(text) as Bundle;
  return (reply.entry ?? []).map((entry) => {
    const location = entry.response?.location ?? '';
    if (!entry.response?.status?.startsWith('201')) {
      throw new Error(`Transaction entry answered ${entry.response?.status ?? '(no status)'}`);
    }
    return location.replace(/^.*\/fhir\//, '').split('/_history/')[0] ?? location;
  });
}

export async function loadDataset(options: LoadOptions): Promise<LoadReport> {
  const shape = datasetShape(options.resources);
  const started = performance.now();
  const random = new Random(options.seed);
  const practitioners = await postTransaction(
    options.fhirBase,
    practitionerBundle(shape.practitioners, random),
    await options.authorization(),
  );
  let loaded = practitioners.length;
  let bundles = 1;

  const groups: [first: number, count: number][] = [];
  for (let first = 0; first < shape.patients; first += options.patientsPerBundle) {
    groups.push([first, Math.min(options.patientsPerBundle, shape.patients - first)]);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const group = groups[next++];
      if (group === undefined) {
        return;
      }
      const [first, count] = group;
      // One generator per group: the data does not depend on the order bundles finish in.
      const bundle = patientGroupBundle(shape, first, count, practitioners, new Random(options.seed + 1 + first));
      const ids = await postTransaction(options.fhirBase, bundle, await options.authorization());
      loaded += ids.length;
      bundles++;
      options.onProgress?.(loaded, shape.total);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  if (loaded !== shape.total) {
    throw new Error(`Loaded ${loaded} resources, expected ${shape.total}`);
  }
  const seconds = (performance.now() - started) / 1000;
  return { shape, bundles, seconds, resourcesPerSecond: shape.total / seconds };
}
