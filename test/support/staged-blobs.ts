/**
 * Staged DICOM instances (migration 025) are acknowledged once their bytes are committed in
 * `blob_staging`; the installer makes them files a moment later. A test that looks at the blob
 * files themselves waits for that.
 */
import type { FileBlobStore } from '../../src/storage/blob-store.ts';
import { until } from './until.ts';

/** What the helpers need of a database: node-postgres's Client or the hub's Database. */
interface Sql {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** Resolves once no blob is staged any more: every one is installed as its file. */
export async function blobsInstalled(db: Sql, timeoutMs = 20_000): Promise<void> {
  await until(
    async () => (await db.query('SELECT 1 FROM blob_staging LIMIT 1')).rows.length === 0,
    'the staged blobs to be installed',
    timeoutMs,
    20,
  );
}

/** The blob's file, read once the installer has put it in place. */
export async function installedBlob(db: Sql, blobs: FileBlobStore, key: string, timeoutMs = 20_000): Promise<Buffer> {
  await until(
    async () => (await db.query('SELECT 1 FROM blob_staging WHERE blob_key = $1', [key])).rows.length === 0,
    `blob ${key} to be installed`,
    timeoutMs,
    20,
  );
  return blobs.read(key);
}
