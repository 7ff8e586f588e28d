/**
 * Runs the `hub` command (as `npx hub …` does) from the repository, with exactly `env` as the hub's
 * configuration: none of the test runner's own hub variables leak in.
 */
import { spawn } from 'node:child_process';
import { NODE_BIN, REPO_ROOT, cleanEnvironment } from './hub-process.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  /** Without npm's own warning lines. */
  stderr: string;
}

/**
 * Runs `bin/hub.js`, the file `npx hub` runs (package.json "bin"), with the pinned Node; `viaNpx`
 * goes through npx itself, as an operator types it (about 1.5 s more per call, so once per suite).
 */
export function runHubCli(
  args: string[],
  env: Record<string, string>,
  options: { viaNpx?: boolean } = {},
): Promise<CliResult> {
  const [command, prefix] = options.viaNpx ? ['npx', ['--no-install', 'hub']] : [NODE_BIN, ['bin/hub.js']];
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], {
      cwd: REPO_ROOT,
      env: { ...cleanEnvironment(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({
        code,
        stdout,
        stderr: stderr
          .split('\n')
          .filter((line) => !line.startsWith('npm warn'))
          .join('\n'),
      }),
    );
  });
}
