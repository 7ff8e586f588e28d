#!/usr/bin/env node
// `npx hub …`: runs the command-line tool (src/cli/main.ts) with the project's pinned Node 24 (the
// `node` devDependency), whichever node started this shim; TypeScript runs natively there.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const pinned = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url));
const node = existsSync(pinned) ? pinned : process.execPath;
const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
// Node's compile cache, where `npm start` keeps it (src/main.ts: the installation's own directory,
// never a shared temporary one): a command starts in about half the time.
const env = {
  ...process.env,
  NODE_COMPILE_CACHE:
    process.env.NODE_COMPILE_CACHE ||
    fileURLToPath(new URL('../node_modules/.cache/node-compile-cache', import.meta.url)),
};
const child = spawn(node, [main, ...process.argv.slice(2)], { stdio: 'inherit', env });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
