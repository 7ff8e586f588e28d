/**
 * The measured workloads. Concurrent ones run with autocannon (closed loop: each of N connections
 * sends its next request when the previous answer arrives), bounded by a duration and a request
 * cap; latencies are recorded per response, so percentiles are exact rather than bucketed.
 */
import os from 'node:os';
import autocannon from 'autocannon';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import {
  LOINC,
  OBSERVATION_KINDS,
  Random,
  TASK_ID_SYSTEM,
  makeObservation,
  submissionBundle,
  taskIdentity,
} from './dataset.ts';
import { startCpuAccounting } from './cpu.ts';
import type { CpuShares } from './cpu.ts';
import { postTransaction } from './load.ts';
import { summarizeLatencies } from './stats.ts';
import type { LatencySummary } from './stats.ts';

export interface HttpRequestSpec {
  path: string;
  body?: string;
}

export interface HttpWorkload {
  name: string;
  /** What one request is, for the report (`GET /fhir/Patient/{id}`). */
  description: string;
  method: 'GET' | 'POST';
  next(): HttpRequestSpec;
  /** Checks one answer before measuring: an error message, or undefined when it is what we mean to measure. */
  verify(status: number, body: string): string | undefined;
}

export interface WorkloadResult extends LatencySummary {
  name: string;
  description: string;
  requests: number;
  seconds: number;
  /** Completed requests per second (any status; non2xx and errors are reported beside it). */
  rps: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export interface WorkloadTargets {
  patientIds: readonly string[];
  serviceRequestIds: readonly string[];
  taskCount: number;
  practitionerReference: string;
}

const FHIR_JSON_HEADERS = { accept: 'application/fhir+json', 'content-type': 'application/fhir+json' };

/** The headers of every request: FHIR JSON and the bench client's bearer token. */
function requestHeaders(authorization: string): Record<string, string> {
  return { ...FHIR_JSON_HEADERS, authorization };
}

function bundleWithEntries(status: number, body: string): string | undefined {
  if (status !== 200) {
    return `HTTP ${status}: ${body.slice(0, 300)}`;
  }
  const bundle = JSON.parse(body) as Bundle;
  return (bundle.entry?.length ?? 0) > 0 ? undefined : 'the search matched nothing';
}

function resourceOf(type: string, expectedStatus: number) {
  return (status: number, body: string): string | undefined => {
    if (status !== expectedStatus) {
      return `HTTP ${status}: ${body.slice(0, 300)}`;
    }
    return (JSON.parse(body) as Resource).resourceType === type ? undefined : `not a ${type}`;
  };
}

/** The concurrent workloads, in the order they run (creates last: they add rows). */
export function buildWorkloads(targets: WorkloadTargets, seed: number): HttpWorkload[] {
  const random = new Random(seed);
  const anyPatient = (): string => random.pick(targets.patientIds);
  return [
    {
      name: 'noop',
      description: 'GET /livez (no database, no Redis: the HTTP stack alone)',
      method: 'GET',
      next: () => ({ path: '/livez' }),
      verify: (status, body) => (status === 200 && body.includes('alive') ? undefined : `HTTP ${status}: ${body}`),
    },
    {
      name: 'read',
      description: 'GET /fhir/Patient/{random loaded id}',
      method: 'GET',
      next: () => ({ path: `/fhir/Patient/${anyPatient()}` }),
      verify: resourceOf('Patient', 200),
    },
    {
      name: 'search-token-code',
      description: 'GET /fhir/Observation?code=http://loinc.org|{one of 12 codes}',
      method: 'GET',
      next: () => ({
        path: `/fhir/Observation?code=${encodeURIComponent(`${LOINC}|${random.pick(OBSERVATION_KINDS).code}`)}`,
      }),
      verify: bundleWithEntries,
    },
    {
      name: 'search-token-task',
      description: 'GET /fhir/Task?status={its status}&identifier={system}|{random task}',
      method: 'GET',
      next: () => {
        const task = taskIdentity(random.int(0, targets.taskCount));
        return {
          path: `/fhir/Task?status=${task.status}&identifier=${encodeURIComponent(`${TASK_ID_SYSTEM}|${task.value}`)}`,
        };
      },
      verify: bundleWithEntries,
    },
    {
      name: 'search-ref-subject',
      description: 'GET /fhir/Observation?subject=Patient/{random patient}',
      method: 'GET',
      next: () => ({ path: `/fhir/Observation?subject=Patient/${anyPatient()}` }),
      verify: bundleWithEntries,
    },
    {
      name: 'search-ref-focus',
      description: 'GET /fhir/Task?focus=ServiceRequest/{random referral}',
      method: 'GET',
      next: () => ({ path: `/fhir/Task?focus=ServiceRequest/${random.pick(targets.serviceRequestIds)}` }),
      verify: bundleWithEntries,
    },
    {
      name: 'create',
      description: 'POST /fhir/Observation (vital sign of a random patient)',
      method: 'POST',
      next: () => ({
        path: '/fhir/Observation',
        body: JSON.stringify(makeObservation(`Patient/${anyPatient()}`, random, undefined, Date.now())),
      }),
      verify: resourceOf('Observation', 201),
    },
  ];
}

/** One case of a referring physician: the referral and its subject. */
export interface CaseTarget {
  serviceRequestId: string;
  patientId: string;
}

/** The workloads of `--person-compare`, in the order they run: reads and searches of one physician's cases. */
export const CASE_WORKLOAD_NAMES = [
  'read-patient',
  'read-service-request',
  'search-task-based-on',
  'search-document-patient',
] as const;

/**
 * Reads and searches that touch only the resources of `cases` (one referring physician's), so that
 * the physician's token and a system client's get the same answers to the same requests.
 */
export function buildCaseWorkloads(cases: readonly CaseTarget[], seed: number): HttpWorkload[] {
  const random = new Random(seed);
  const anyCase = (): CaseTarget => random.pick(cases);
  return [
    {
      name: 'read-patient',
      description: "GET /fhir/Patient/{the patient of one of the physician's cases}",
      method: 'GET',
      next: () => ({ path: `/fhir/Patient/${anyCase().patientId}` }),
      verify: resourceOf('Patient', 200),
    },
    {
      name: 'read-service-request',
      description: "GET /fhir/ServiceRequest/{one of the physician's referrals}",
      method: 'GET',
      next: () => ({ path: `/fhir/ServiceRequest/${anyCase().serviceRequestId}` }),
      verify: resourceOf('ServiceRequest', 200),
    },
    {
      name: 'search-task-based-on',
      description: "GET /fhir/Task?based-on=ServiceRequest/{one of the physician's referrals}",
      method: 'GET',
      next: () => ({ path: `/fhir/Task?based-on=ServiceRequest/${anyCase().serviceRequestId}` }),
      verify: bundleWithEntries,
    },
    {
      name: 'search-document-patient',
      description: "GET /fhir/DocumentReference?patient=Patient/{the patient of one of the physician's cases}",
      method: 'GET',
      next: () => ({ path: `/fhir/DocumentReference?patient=Patient/${anyCase().patientId}` }),
      verify: bundleWithEntries,
    },
  ];
}

/** Sends a few requests of a workload one by one and fails if any answer is not the intended one. */
export async function verifyWorkload(
  baseUrl: string,
  workload: HttpWorkload,
  authorization: string,
  samples = 3,
): Promise<void> {
  for (let i = 0; i < samples; i++) {
    const request = workload.next();
    const response = await fetch(baseUrl + request.path, {
      method: workload.method,
      headers: requestHeaders(authorization),
      body: request.body,
      signal: AbortSignal.timeout(30_000),
    });
    const problem = workload.verify(response.status, await response.text());
    if (problem) {
      throw new Error(
        `Workload ${workload.name} (${workload.method} ${request.path}) is not measuring what it should: ${problem}`,
      );
    }
  }
}

export interface LoadShape {
  connections: number;
  seconds: number;
  /** Upper bound on requests, whatever the duration. */
  maxRequests: number;
  /** The `authorization` header (a bearer token valid for the whole run). */
  authorization: string;
}

/** The raw outcome of one autocannon run: every response's latency, and the failures. */
export interface LoadSample {
  latencies: number[];
  seconds: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** Runs one workload with autocannon for `shape.seconds`. */
export async function runLoad(baseUrl: string, workload: HttpWorkload, shape: LoadShape): Promise<LoadSample> {
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: baseUrl,
        connections: shape.connections,
        duration: shape.seconds,
        maxOverallRequests: shape.maxRequests,
        timeout: 30,
        headers: requestHeaders(shape.authorization),
        requests: [
          {
            method: workload.method,
            setupRequest: (request) => {
              const next = workload.next();
              return { ...request, method: workload.method, path: next.path, body: next.body };
            },
          },
        ],
      },
      (err, finished) => (err ? reject(err as Error) : resolve(finished)),
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
    });
  });
  return {
    latencies,
    seconds: result.duration,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/** Throughput and latency percentiles of one or more samples of a workload. */
export function workloadResult(workload: HttpWorkload, samples: readonly LoadSample[]): WorkloadResult {
  const latencies = samples.flatMap((sample) => sample.latencies);
  const seconds = samples.reduce((sum, sample) => sum + sample.seconds, 0);
  const total = (pick: (sample: LoadSample) => number): number =>
    samples.reduce((sum, sample) => sum + pick(sample), 0);
  return {
    name: workload.name,
    description: workload.description,
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    non2xx: total((sample) => sample.non2xx),
    errors: total((sample) => sample.errors),
    timeouts: total((sample) => sample.timeouts),
    ...summarizeLatencies(latencies),
  };
}

/** Runs one workload with autocannon; returns its throughput and latency percentiles. */
export async function runWorkload(baseUrl: string, workload: HttpWorkload, shape: LoadShape): Promise<WorkloadResult> {
  return workloadResult(workload, [await runLoad(baseUrl, workload, shape)]);
}

export interface TransactionResult extends LatencySummary {
  entries: number;
  bundles: number;
  samplesMs: number[];
}

/** Posts `bundles` transaction bundles of `entries` entries one after another, after `warmup` unmeasured ones. */
export async function measureTransactions(
  fhirBase: string,
  options: {
    entries: number;
    bundles: number;
    warmup: number;
    practitionerReference: string;
    seed: number;
    authorization: () => Promise<string>;
  },
): Promise<TransactionResult> {
  const random = new Random(options.seed);
  const samplesMs: number[] = [];
  for (let n = 0; n < options.warmup + options.bundles; n++) {
    const bundle = submissionBundle(options.entries, options.practitionerReference, random, n);
    const authorization = await options.authorization();
    const started = performance.now();
    const ids = await postTransaction(fhirBase, bundle, authorization);
    const elapsed = performance.now() - started;
    if (ids.length !== options.entries) {
      throw new Error(`A ${options.entries}-entry transaction answered ${ids.length} entries`);
    }
    if (n >= options.warmup) {
      samplesMs.push(elapsed);
    }
  }
  return { entries: options.entries, bundles: options.bundles, samplesMs, ...summarizeLatencies(samplesMs) };
}

export interface MeasuredWorkload {
  result: WorkloadResult;
  cpu: CpuShares | undefined;
}

/**
 * One workload as a run measures it: a few checked requests, `warmup` unmeasured seconds, then
 * `seconds` measured ones with the machine's CPU accounted (cpu.ts). A fresh token for each phase.
 */
export async function measureWorkload(
  hub: { url: string; pid: number },
  workload: HttpWorkload,
  options: {
    connections: number;
    warmup: number;
    seconds: number;
    database: string;
    authorization: () => Promise<string>;
  },
): Promise<MeasuredWorkload> {
  await verifyWorkload(hub.url, workload, await options.authorization());
  const maxRequests = 200_000 * options.seconds;
  await runWorkload(hub.url, workload, {
    connections: options.connections,
    seconds: options.warmup,
    maxRequests,
    authorization: await options.authorization(),
  });
  const authorization = await options.authorization();
  const endCpu = startCpuAccounting(hub.pid, options.database, os.cpus().length);
  const result = await runWorkload(hub.url, workload, {
    connections: options.connections,
    seconds: options.seconds,
    maxRequests,
    authorization,
  });
  return { result, cpu: endCpu() };
}
