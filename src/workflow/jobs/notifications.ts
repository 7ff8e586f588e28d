/**
 * The `notifications` queue: e-mails telling a physician or a patient that a case changed, with a
 * link and nothing else (src/notify/templates.ts).
 *
 * Exactly-once as far as the hub can make it: the notification row is recorded in the caller's
 * transaction together with its outbox event; the job carries the row's id only; the job function
 * locks the row, skips it when it is already sent, sends, and marks it sent in the same transaction.
 * A job that runs twice, or two jobs for one row, send once. One window remains: a crash after the
 * SMTP server accepted the message and before the commit sends it again on the next try; that copy
 * has the same Message-ID (derived from the row's id), which mail systems use to drop duplicates.
 */
import { randomUUID } from 'node:crypto';
import { OperationOutcomeError } from '@medplum/core';
import type { Patient, Practitioner } from '@medplum/fhirtypes';
import { UnrecoverableError } from 'bullmq';
import type { Queryable } from '../../db/database.ts';
import { recordOutboxEvent } from '../../db/outbox.ts';
import { HubRepository } from '../../fhir/repository.ts';
import { PermanentMailError } from '../../notify/mailer.ts';
import { NOTIFICATION_KINDS, caseLink, renderNotification } from '../../notify/templates.ts';
import type { NotificationKind } from '../../notify/templates.ts';
import { redactErrorMessage } from '../../queues/job-data.ts';
import { defineQueue } from '../../queues/queue-definitions.ts';
import type { JobInfo, QueueProducer, WorkerDeps } from '../../queues/queue-definitions.ts';
import { startWorkers } from '../../queues/worker-runner.ts';
import type { WorkerPool, WorkerRuntimeOptions } from '../../queues/worker-runner.ts';
import { isEmailAddress } from '../../notify/email-address.ts';

export const NOTIFICATIONS_QUEUE = 'notifications';

const RECIPIENT = /^(Patient|Practitioner)\/[A-Za-z0-9\-.]{1,64}$/;
const CASE_REFERENCE = /^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}$/;

export interface NotificationInput {
  kind: NotificationKind;
  /** `Patient/<id>` or `Practitioner/<id>`: the address is looked up when the e-mail is sent. */
  recipient: string;
  /** The case the e-mail links to, e.g. `ServiceRequest/<id>`. */
  caseReference: string;
  /** What makes this notification unique, e.g. `Task/<id>/_history/<version>:report-ready:Patient/<id>`. */
  dedupeKey: string;
}

export interface RecordedNotification {
  id: string;
  messageId: string;
  /** False when a notification with the same dedupe key was recorded before (nothing new queued). */
  created: boolean;
}

/**
 * Records a notification and the outbox event that queues its e-mail, in `tx` (the caller's
 * transaction, so a rolled-back change sends nothing). `messageIdDomain` is `Mailer.domain`.
 */
export async function recordNotification(
  tx: Queryable,
  input: NotificationInput,
  messageIdDomain: string,
): Promise<RecordedNotification> {
  if (!tx.inTransaction) {
    throw new Error('recordNotification must run inside the transaction of the change it announces');
  }
  if (!NOTIFICATION_KINDS.includes(input.kind)) {
    throw new Error(`unknown notification kind "${input.kind}"`);
  }
  if (!RECIPIENT.test(input.recipient)) {
    throw new Error('a notification recipient must be a reference to a Patient or a Practitioner');
  }
  if (!CASE_REFERENCE.test(input.caseReference)) {
    throw new Error('a notification case reference must be a relative FHIR reference');
  }
  if (input.dedupeKey.length === 0 || input.dedupeKey.length > 512) {
    throw new Error('a notification dedupe key must be 1-512 characters');
  }
  const id = randomUUID();
  const messageId = `<notification.${id}@${messageIdDomain}>`;
  const inserted = await tx.query<{ id: string; message_id: string }>(
    `INSERT INTO notification (id, kind, recipient, case_reference, dedupe_key, message_id)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, message_id`,
    [id, input.kind, input.recipient, input.caseReference, input.dedupeKey, messageId],
  );
  if (inserted.rows.length === 0) {
    const [existing] = (
      await tx.query<{ id: string; message_id: string }>(
        'SELECT id, message_id FROM notification WHERE dedupe_key = $1',
        [input.dedupeKey],
      )
    ).rows;
    // The insert stood back for a committed row of this key, which the SELECT's newer snapshot sees.
    if (existing === undefined) {
      throw new Error('a notification dedupe key conflicted but its row cannot be read');
    }
    return { id: existing.id, messageId: existing.message_id, created: false };
  }
  await recordOutboxEvent(tx, { queue: NOTIFICATIONS_QUEUE, name: input.kind, payload: { notificationId: id } });
  return { id, messageId, created: true };
}

/** A failure that another try cannot fix (no address on file, recipient deleted, SMTP 5xx). */
class PermanentNotificationError extends Error {}

interface NotificationRow {
  id: string;
  kind: NotificationKind;
  recipient: string;
  case_reference: string;
  status: 'pending' | 'sent' | 'failed';
  message_id: string;
}

/** The address to write to: the best-ranked current `telecom` with system email. */
export function emailAddressOf(resource: Patient | Practitioner, now: Date): string | undefined {
  const candidates = (resource.telecom ?? [])
    .filter((point) => point.system === 'email' && point.value && point.use !== 'old')
    .filter((point) => !point.period?.end || new Date(point.period.end) > now)
    .sort((a, b) => (a.rank ?? Number.MAX_SAFE_INTEGER) - (b.rank ?? Number.MAX_SAFE_INTEGER));
  const address = candidates[0]?.value?.trim();
  return address && isEmailAddress(address) ? address : undefined;
}

export type SendOutcome = 'sent' | 'already-sent';

/** The job function: sends the notification's e-mail unless it was sent already. */
export async function sendNotification(
  data: { notificationId: string },
  job: JobInfo,
  deps: WorkerDeps,
): Promise<SendOutcome> {
  try {
    return await deps.db.transaction(async (tx) => {
      // The row lock makes a second job for the same notification wait here, then see it sent.
      const found = await tx.query<NotificationRow>(
        'SELECT id, kind, recipient, case_reference, status, message_id FROM notification WHERE id = $1 FOR UPDATE',
        [data.notificationId],
      );
      const row = found.rows[0];
      if (!row) {
        throw new PermanentNotificationError(`notification ${data.notificationId} does not exist`);
      }
      if (row.status === 'sent') {
        return 'already-sent';
      }
      let recipient: Patient | Practitioner;
      try {
        recipient = await new HubRepository(deps.repository, tx).readReference<Patient | Practitioner>({
          reference: row.recipient,
        });
      } catch (err) {
        if (err instanceof OperationOutcomeError) {
          throw new PermanentNotificationError(`recipient ${row.recipient} cannot be read`);
        }
        throw err;
      }
      const to = emailAddressOf(recipient, deps.clock.now());
      if (!to) {
        throw new PermanentNotificationError(`recipient ${row.recipient} has no e-mail address`);
      }
      const mail = renderNotification(row.kind, caseLink(deps.baseUrl, row.case_reference));
      await deps.mailer.send({ to, messageId: row.message_id, ...mail });
      await tx.query(
        `UPDATE notification SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1`,
        [row.id],
      );
      deps.logger.info(
        { notificationId: row.id, kind: row.kind, recipient: row.recipient.split('/')[0] },
        'notification sent',
      );
      return 'sent' as const;
    });
  } catch (err) {
    const permanent = err instanceof PermanentNotificationError || err instanceof PermanentMailError;
    const message = redactErrorMessage((err as Error).message);
    await deps.db.query(
      `UPDATE notification SET attempts = attempts + 1, last_error = $2,
         status = CASE WHEN $3 THEN 'failed' ELSE status END
       WHERE id = $1 AND status <> 'sent'`,
      [data.notificationId, message, permanent || job.finalAttempt],
    );
    throw permanent ? new UnrecoverableError(message) : new Error(message);
  }
}

export const notificationsQueue = defineQueue({
  name: NOTIFICATIONS_QUEUE,
  data: { notificationId: 'uuid' },
  attempts: 8,
  backoffMs: 5000,
  concurrency: 4,
  process: sendNotification,
});

/** Queues the e-mail of a recorded notification directly (the usual path is the outbox event). */
export function addNotificationJob(producer: QueueProducer, notificationId: string): Promise<string> {
  return producer.add(notificationsQueue, { notificationId }, { jobId: `notification-${notificationId}` });
}

/** Starts a worker for this queue alone (a dedicated process, or a test). */
export function startNotificationsWorker(deps: WorkerDeps, options: WorkerRuntimeOptions): WorkerPool {
  return startWorkers([notificationsQueue], deps, options);
}
