/**
 * What the DICOM crash suites share: fresh small instances with exact bytes, and the checks that
 * an instance is stored whole (its index row, its blob file byte for byte, WADO-RS) or not at all.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dicomInstance, newUid } from './patient-cd.ts';

export interface CrashInstance {
  study: string;
  series: string;
  sop: string;
  bytes: Buffer;
  key: string;
}

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** `count` new instances, `perStudy` to a study (one series each), with fresh UIDs. */
export function freshInstances(count: number, perStudy = 10): CrashInstance[] {
  const instances: CrashInstance[] = [];
  let study = newUid();
  let series = newUid();
  for (let i = 0; i < count; i++) {
    if (i > 0 && i % perStudy === 0) {
      study = newUid();
      series = newUid();
    }
    const sop = newUid();
    const bytes = dicomInstance({
      studyUid: study,
      seriesUid: series,
      sopUid: sop,
      modality: 'CT',
      patientId: 'CRASH-1',
      patientName: 'Crash^Test',
      birthDate: '19700101',
      seriesNumber: 1,
      instanceNumber: (i % perStudy) + 1,
    });
    instances.push({ study, series, sop, bytes, key: sha256(bytes) });
  }
  return instances;
}

export function blobPath(dataDir: string, key: string): string {
  return join(dataDir, 'blobs', key.slice(0, 2), key.slice(2, 4), key);
}

/** The instance's single part from WADO-RS, or the HTTP status when there is none. */
export async function retrieveInstance(baseUrl: string, instance: CrashInstance): Promise<Buffer | number> {
  const response = await fetch(
    `${baseUrl}/dicomweb/studies/${instance.study}/series/${instance.series}/instances/${instance.sop}`,
    { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } },
  );
  if (response.status !== 200) {
    await response.arrayBuffer();
    return response.status;
  }
  return singlePart(response);
}

/** The body of a multipart/related answer's one part. */
export async function singlePart(response: Response): Promise<Buffer> {
  const body = Buffer.from(await response.arrayBuffer());
  const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get('content-type') ?? '')![1]!;
  const start = body.indexOf('\r\n\r\n', body.indexOf(`--${boundary}\r\n`)) + 4;
  return body.subarray(start, body.indexOf(`\r\n--${boundary}--`, start));
}

interface Sql {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** How the hub holds an instance now: its index row, its staged row, its blob file's bytes. */
export async function storedState(
  sql: Sql,
  dataDir: string,
  instance: CrashInstance,
): Promise<{ indexed: boolean; staged: boolean; file: Buffer | undefined }> {
  const indexed = (await sql.query('SELECT 1 FROM dicom_instance WHERE sop_instance_uid = $1', [instance.sop])).rows;
  const staged = (await sql.query('SELECT 1 FROM blob_staging WHERE blob_key = $1', [instance.key])).rows;
  const file = await readFile(blobPath(dataDir, instance.key)).catch(() => undefined);
  return { indexed: indexed.length > 0, staged: staged.length > 0, file };
}

/**
 * Every one of `instances` is stored whole: indexed, its file installed byte for byte (nothing left
 * staged), and WADO-RS serves exactly its bytes. Resolves with the ones that are not, by SOP UID.
 */
export async function notWhole(
  sql: Sql,
  dataDir: string,
  baseUrl: string,
  instances: readonly CrashInstance[],
): Promise<string[]> {
  const bad: string[] = [];
  for (const instance of instances) {
    const state = await storedState(sql, dataDir, instance);
    const served = await retrieveInstance(baseUrl, instance);
    const whole =
      state.indexed &&
      !state.staged &&
      state.file !== undefined &&
      state.file.equals(instance.bytes) &&
      Buffer.isBuffer(served) &&
      served.equals(instance.bytes);
    if (!whole) {
      bad.push(instance.sop);
    }
  }
  return bad;
}

/**
 * Every one of `instances` is stored whole or not at all: no index row without its bytes, no bytes
 * without an index row. Resolves with those half there.
 */
export async function halfVisible(
  sql: Sql,
  dataDir: string,
  baseUrl: string,
  instances: readonly CrashInstance[],
): Promise<string[]> {
  const half: string[] = [];
  for (const instance of instances) {
    const state = await storedState(sql, dataDir, instance);
    if (state.indexed) {
      const served = await retrieveInstance(baseUrl, instance);
      if (!Buffer.isBuffer(served) || !served.equals(instance.bytes)) {
        half.push(instance.sop);
      }
    } else if (state.staged || (await retrieveInstance(baseUrl, instance)) !== 404) {
      half.push(instance.sop);
    }
  }
  return half;
}
