/**
 * A worker process for the notification kill test: runs the `notifications` worker alone, as a
 * HUB_ROLES=worker process would, until SIGTERM (drains and exits 0) or SIGKILL (the test's crash).
 * Locks are short so that a killed worker's job is picked up again within seconds.
 * Usage: node worker-child.ts DATABASE_URL REDIS_URL PREFIX SMTP_URL DATA_DIR BASE_URL
 */
import path from 'node:path';
import { pino } from 'pino';
import { openDatabase } from '../../src/db/database.ts';
import { loadFhirDefinitions } from '../../src/fhir/definitions.ts';
import { createMailer } from '../../src/notify/mailer.ts';
import { producerConnection } from '../../src/queues/connection.ts';
import { startNotificationsWorker } from '../../src/workflow/jobs/notifications.ts';
import { FileBlobStore } from '../../src/storage/blob-store.ts';
import { systemClock } from '../../src/runtime/clock.ts';

const [databaseUrl, redisUrl, prefix, smtpUrl, dataDir, baseUrl] = process.argv.slice(2);
if (!databaseUrl || !redisUrl || !prefix || !smtpUrl || !dataDir || !baseUrl) {
  throw new Error('usage: worker-child.ts DATABASE_URL REDIS_URL PREFIX SMTP_URL DATA_DIR BASE_URL');
}
loadFhirDefinitions();
const logger = pino({ level: 'silent' });
const db = await openDatabase({ databaseUrl });
const connection = producerConnection(redisUrl);
const mailer = createMailer({ smtpUrl, from: 'Second Opinion Hub <no-reply@hub.example.org>', dataDir });
const repository = { db, blobs: new FileBlobStore(path.join(dataDir, 'blobs')), baseUrl, binaryMaxBytes: 1e6 };
const workers = startNotificationsWorker(
  { db, repository, mailer, baseUrl, logger, clock: systemClock },
  { redisUrl, prefix, connection, logger, lockDurationMs: 4000, stalledIntervalMs: 1000 },
);
process.once('SIGTERM', () => {
  void (async () => {
    await workers.close();
    mailer.close();
    connection.disconnect();
    await db.close();
    process.exit(0);
  })();
});
process.stdout.write('ready\n');
