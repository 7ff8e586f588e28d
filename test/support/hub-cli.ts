/**
 * Runs the `hub` command (`npx hub …`, as an operator would) from the repository, with exactly `env`
 * as the hub's configuration: none of the test runner's own hub variables leak in.
 */
import { spawn } from 'node:child_process';
import { REPO_ROOT, cleanEnvironment } from './hub-process.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  /** Without npm's own warning lines. */
  stderr: string;
}

export function runHubCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['--no-install', 'hub', ...args], {
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
