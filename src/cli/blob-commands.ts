/**
 * `hub blobs sweep`: removes, on the operator's demand, the blobs under DATA_DIR/blobs that nothing
 * refers to (src/storage/orphan-sweep.ts; the worker process runs the same sweep every 6 hours).
 * Prints counts only.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { HubConfig } from '../config.ts';
import type { Database } from '../db/database.ts';
import { FileBlobStore } from '../storage/blob-store.ts';
import { DEFAULT_GRACE_MS, MIN_GRACE_MS, sweepOrphanBlobs } from '../storage/orphan-sweep.ts';
import type { OrphanSweepResult } from '../storage/orphan-sweep.ts';
import type { CommandOutput } from './client-commands.ts';
import { CliError } from './cli-error.ts';

const HOUR_MS = 60 * 60 * 1000;

export const BLOB_USAGE = `  hub blobs sweep [--grace-hours N] [--dry-run]
      Removes blobs no DICOM instance or Binary version refers to and untouched for N hours
      (default ${DEFAULT_GRACE_MS / HOUR_MS}, at least ${MIN_GRACE_MS / HOUR_MS}). --dry-run counts them and removes nothing.`;

function usageError(message: string): CliError {
  return new CliError(`${message}\n\n${BLOB_USAGE}`, 2);
}

function graceFrom(value: string | undefined): number {
  if (value === undefined) {
    return DEFAULT_GRACE_MS;
  }
  const hours = Number(value);
  if (value.trim() === '' || !Number.isFinite(hours) || hours * HOUR_MS < MIN_GRACE_MS) {
    throw usageError(`--grace-hours: give a number of hours, at least ${MIN_GRACE_MS / HOUR_MS}`);
  }
  return hours * HOUR_MS;
}

/** The lines `hub blobs sweep` prints. */
export function describeSweep(result: OrphanSweepResult, dryRun: boolean, graceMs: number): string[] {
  return [
    `blobs scanned: ${result.scanned}`,
    `untouched for ${graceMs / HOUR_MS} h: ${result.old} (referred to: ${result.referenced})`,
    dryRun
      ? `would remove: ${result.removed} (${result.removedBytes} bytes); dry run, nothing removed`
      : `removed: ${result.removed} (${result.removedBytes} bytes)`,
    ...(dryRun
      ? []
      : [
          `kept, written or referred to during the sweep: ${result.rescued}`,
          `put back from an interrupted sweep: ${result.recovered}`,
        ]),
  ];
}

/** `hub blobs <action> …`; `withDatabase` opens the hub's database for the work. */
export async function blobCommand(
  config: HubConfig,
  args: string[],
  withDatabase: (work: (db: Database) => Promise<CommandOutput>) => Promise<CommandOutput>,
): Promise<CommandOutput> {
  const [action, ...rest] = args;
  if (action !== 'sweep') {
    throw usageError(`${action === undefined ? 'missing blobs command' : `unknown blobs command "${action}"`}`);
  }
  let values: { 'grace-hours'?: string; 'dry-run'?: boolean };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { 'grace-hours': { type: 'string' }, 'dry-run': { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const graceMs = graceFrom(values['grace-hours']);
  const dryRun = values['dry-run'] === true;
  const store = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  return withDatabase(async (db) => {
    const result = await sweepOrphanBlobs(db, store, { graceMs, dryRun });
    if (!result.ran) {
      throw new CliError('another hub process is sweeping the blob store now; try again later');
    }
    return { out: describeSweep(result, dryRun, graceMs), warnings: [] };
  });
}
