/**
 * Temporary files a crash left behind: blob writer spills, blobs being installed, DICOMweb render
 * spools. A file is removed once it has not been written to for `maxAgeMs`, so a process sharing
 * DATA_DIR never loses a file it is still writing (an upload in progress keeps its mtime fresh).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';

/** Removes the files under `dir` (recursively) last modified more than `maxAgeMs` ago; returns how many. */
export async function removeStaleFiles(dir: string, maxAgeMs: number, now = Date.now()): Promise<number> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return 0;
    }
    throw error;
  }
  let removed = 0;
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      removed += await removeStaleFiles(full, maxAgeMs, now);
      continue;
    }
    try {
      const stat = await fsp.stat(full);
      if (now - stat.mtimeMs > maxAgeMs) {
        await fsp.rm(full, { force: true });
        removed++;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw error;
      }
    }
  }
  return removed;
}

export interface TempSweeper {
  stop(): void;
}

/** Sweeps `dirs` now and then every `intervalMs`. */
export function startTempSweeper(
  dirs: readonly string[],
  options: { maxAgeMs: number; intervalMs: number; logger: Logger },
): TempSweeper {
  const sweep = async (): Promise<void> => {
    for (const dir of dirs) {
      try {
        const removed = await removeStaleFiles(dir, options.maxAgeMs);
        if (removed > 0) {
          options.logger.info({ dir: path.basename(dir), removed }, 'removed stale temporary files');
        }
      } catch (error) {
        options.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'temporary file sweep failed',
        );
      }
    }
  };
  void sweep();
  const timer = setInterval(() => void sweep(), options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
