/**
 * The HTTP load client, run as its own process so that it can be started inside Orthanc's network
 * namespace (`ip netns exec`) as well as beside the hub, with the same code for both servers.
 *   node bench/dicom/client.ts stow <dicomwebBase> <batchSize> <fileList>
 *   node bench/dicom/client.ts qido <dicomwebBase> <reps> <patientId> <accessionNumber of the sample study>
 *   node bench/dicom/client.ts count <dicomwebBase>
 * Prints one JSON object on stdout. With BENCH_AUTHORIZATION set (the hub runs with AUTH_REQUIRED, as
 * in production), every request carries it as its `Authorization` header.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { median } from '../fhir/stats.ts';

type Json = Record<string, { Value?: unknown[] } | undefined>;

const AUTHORIZATION = process.env.BENCH_AUTHORIZATION;
const ACCEPT: Record<string, string> = {
  Accept: 'application/dicom+json',
  ...(AUTHORIZATION ? { Authorization: AUTHORIZATION } : {}),
};

async function stow(base: string, batchSize: number, listFile: string): Promise<object> {
  const files = fs
    .readFileSync(listFile, 'utf8')
    .split('\n')
    .filter((f) => f !== '');
  const boundary = `bench-${crypto.randomBytes(12).toString('hex')}`;
  const bodies: Buffer[] = [];
  for (let i = 0; i < files.length; i += batchSize) {
    const parts: Buffer[] = [];
    for (const file of files.slice(i, i + batchSize)) {
      parts.push(
        Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
        fs.readFileSync(file),
        Buffer.from('\r\n'),
      );
    }
    parts.push(Buffer.from(`--${boundary}--\r\n`));
    bodies.push(Buffer.concat(parts));
  }
  const statuses: Record<string, number> = {};
  let failedInstances = 0;
  const failureReasons: Record<string, number> = {};
  const headers = { ...ACCEPT, 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` };
  const t0 = performance.now();
  for (const body of bodies) {
    const response = await fetch(`${base}/studies`, { method: 'POST', headers, body });
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    const text = await response.text();
    if (response.status !== 200) {
      try {
        const json = JSON.parse(text) as Json;
        const failed = (json['00081198']?.Value ?? []) as Json[];
        failedInstances += failed.length;
        for (const item of failed) {
          const reason = String(item['00081197']?.Value?.[0] ?? '?');
          failureReasons[reason] = (failureReasons[reason] ?? 0) + 1;
        }
      } catch {
        failureReasons[`unparsed ${response.status}`] = (failureReasons[`unparsed ${response.status}`] ?? 0) + 1;
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, requests: bodies.length, statuses, failedInstances, failureReasons };
}

async function getJson(url: string): Promise<Json[]> {
  const response = await fetch(url, { headers: ACCEPT });
  if (!response.ok) {
    throw new Error(`GET ${url}: ${response.status}`);
  }
  const text = await response.text();
  return text === '' ? [] : (JSON.parse(text) as Json[]);
}

async function count(base: string): Promise<object> {
  const studies = await getJson(`${base}/studies?includefield=00201208`);
  let instances = 0;
  for (const s of studies) {
    instances += Number(s['00201208']?.Value?.[0] ?? 0);
  }
  return { studies: studies.length, instances };
}

async function qido(base: string, reps: number, patientId: string, accession: string): Promise<object> {
  // The same sample study on both servers (an AccessionNumber is unique per study in the corpus).
  const sample = await getJson(`${base}/studies?AccessionNumber=${encodeURIComponent(accession)}`);
  const study = String(sample[0]?.['0020000D']?.Value?.[0] ?? '');
  if (study === '' || sample.length !== 1) {
    throw new Error(`expected one study with AccessionNumber ${accession}, got ${sample.length}`);
  }
  const queries: [string, string][] = [
    ['qido all studies', `${base}/studies`],
    ['qido OHIF limit=25', `${base}/studies?limit=25&offset=0&fuzzymatching=false&includefield=00081030%2C00080060`],
    ['qido by PatientID', `${base}/studies?PatientID=${encodeURIComponent(patientId)}`],
    ['qido series of a study', `${base}/studies/${study}/series`],
    ['wado-rs study metadata', `${base}/studies/${study}/metadata`],
  ];
  const results: Record<string, { medianMs: number; maxMs: number; n: number; items: number }> = {};
  for (const [name, url] of queries) {
    const times: number[] = [];
    let items = 0;
    for (let i = 0; i < reps; i += 1) {
      const t0 = performance.now();
      const response = await fetch(url, { headers: ACCEPT });
      const text = await response.text();
      times.push(performance.now() - t0);
      if (!response.ok) {
        throw new Error(`GET ${url}: ${response.status} ${text.slice(0, 200)}`);
      }
      items = text === '' ? 0 : (JSON.parse(text) as unknown[]).length;
    }
    results[name] = { medianMs: median(times), maxMs: Math.max(...times), n: reps, items };
  }
  return { study, results };
}

const [command, base, a, b, c] = process.argv.slice(2);
const usage =
  'usage: client.ts stow BASE_URL BATCH_SIZE LIST_FILE | qido BASE_URL REPS PATIENT_ID ACCESSION | count BASE_URL';
if (!base) {
  throw new Error(usage);
}
let result: object;
if (command === 'stow') {
  if (!b) {
    throw new Error(usage);
  }
  result = await stow(base, Number(a), b);
} else if (command === 'qido') {
  if (!b || !c) {
    throw new Error(usage);
  }
  result = await qido(base, Number(a), b, c);
} else if (command === 'count') {
  result = await count(base);
} else {
  throw new Error(`unknown command ${command}`);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
