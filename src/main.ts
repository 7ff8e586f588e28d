/** Composition root: `npm start` runs every role of the hub in one process. */
import module from 'node:module';
import { fileURLToPath } from 'node:url';
import type { HubConfig } from './config.ts';

// Node's compile cache (keyed by each file's content and Node's version, so an edit or an upgrade
// never runs stale code) keeps the TypeScript it stripped and the code V8 compiled: a start loads the
// hub's modules in about half the time. It is on before the hub's modules load, hence the imports
// below. Its entries are code that runs as the hub, so it lives in the installation's own
// node_modules/.cache, never in a shared temporary directory where another local user could plant
// entries. NODE_COMPILE_CACHE, read by Node itself as it starts, names another directory (this call
// then changes nothing), NODE_DISABLE_COMPILE_CACHE=1 turns it off, and a directory that cannot be
// written only leaves it off.
module.enableCompileCache(fileURLToPath(new URL('../node_modules/.cache/node-compile-cache', import.meta.url)));
const { ConfigError, loadConfig } = await import('./config.ts');
const { startHub } = await import('./hub.ts');
const { createLogger } = await import('./logger.ts');

let config: HubConfig;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const logger = createLogger(config.logLevel);
try {
  const hub = await startHub(config, logger);
  const shutdown = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    hub.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: { message: (err as Error).message } }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
} catch (err) {
  logger.fatal({ err: { message: (err as Error).message } }, 'hub failed to start');
  process.exit(1);
}
