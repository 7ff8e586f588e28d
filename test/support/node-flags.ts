/**
 * The Node.js flags the hub runs with, read from `npm start` in package.json so that the container,
 * the benchmarks and the tests' child processes start the hub exactly as `npm start` does.
 * `--max-semi-space-size=16` bounds V8's young generation (not the heap): it keeps the hub's peak
 * memory through a DICOM ingest near 230 MB instead of 340 MB, at less garbage-collection work
 * than 8 (docs/architecture.md).
 */
import fs from 'node:fs';

const packageJson = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  scripts: Record<string, string>;
};

/** The flags between `node` and `src/main.ts` in the `start` script. */
export const HUB_NODE_FLAGS: readonly string[] = (() => {
  const words = packageJson.scripts.start!.trim().split(/\s+/);
  if (words[0] !== 'node' || words[words.length - 1] !== 'src/main.ts') {
    throw new Error('package.json "start" must be `node [flags] src/main.ts`');
  }
  return words.slice(1, -1);
})();
