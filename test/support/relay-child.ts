/**
 * A relay process for the outbox crash test: relays once and kills itself with SIGKILL at the
 * requested point — before the jobs are added, or after they are added but before the outbox rows
 * are marked — as a crash, an OOM kill or a power cut would.
 * Usage: node relay-child.ts DATABASE_URL REDIS_URL PREFIX before-enqueue|after-enqueue
 */
import { pino } from 'pino';
import { openDatabase } from '../../src/db/database.ts';
import { producerConnection } from '../../src/queues/connection.ts';
import { OutboxRelay } from '../../src/queues/outbox-relay.ts';

const [databaseUrl, redisUrl, prefix, crashPoint] = process.argv.slice(2);
if (!databaseUrl || !redisUrl || !prefix) {
  throw new Error('usage: relay-child.ts DATABASE_URL REDIS_URL PREFIX [CRASH_POINT]');
}
const die = (): void => {
  process.kill(process.pid, 'SIGKILL');
};
const db = await openDatabase({ databaseUrl });
const relay = new OutboxRelay({
  db,
  connection: producerConnection(redisUrl),
  prefix,
  pollMs: 1000,
  logger: pino({ level: 'silent' }),
  beforeEnqueue: crashPoint === 'before-enqueue' ? die : undefined,
  afterEnqueue: crashPoint === 'after-enqueue' ? die : undefined,
});
await relay.relayOnce();
process.exit(3); // not reached when the crash point was hit
