/** Composition root: `npm start` runs every role of the hub in one process. */
import { ConfigError, loadConfig } from './config.ts';
import type { HubConfig } from './config.ts';
import { startHub } from './hub.ts';
import { createLogger } from './logger.ts';

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
