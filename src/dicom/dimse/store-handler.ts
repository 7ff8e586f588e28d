/**
 * C-STORE into the ingest path: the received data set becomes a Part 10 file (the bytes we store
 * and serve), `ingestInstance` stores it, and the outcome becomes a C-STORE status (PS3.4 §B.2.3).
 * Each instance is answered on its own: a refusal or an error never touches its neighbours.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../logger.ts';
import { ingestInstance } from '../ingest.ts';
import type { IngestContext, IngestOutcome } from '../ingest.ts';
import { Status } from './command-set.ts';
import { writePart10File } from './part10-writer.ts';
import type { OnStore, StoreResult } from './server.ts';

/** PS3.7 §C.4.x general status: a different instance already holds this SOP Instance UID. */
export const DUPLICATE_SOP_INSTANCE = 0x0111;

export function storeResultOf(outcome: IngestOutcome): StoreResult {
  switch (outcome.status) {
    case 'stored':
    case 'duplicate':
      return { status: Status.success };
    case 'conflict':
      return { status: DUPLICATE_SOP_INSTANCE, comment: 'SOP Instance UID already stored with other content' };
    case 'refused':
      // C000 "cannot understand"; the comment (LO, 64 characters) names the first problem found.
      return { status: Status.cannotUnderstand, comment: outcome.reason };
  }
}

export function createStoreHandler(ctx: IngestContext, part10Dir: string, logger: Logger): OnStore {
  return async (request) => {
    const part10File = join(part10Dir, `${randomUUID()}.dcm`);
    try {
      await writePart10File(request.datasetFile, part10File, {
        mediaStorageSopClassUid: request.sopClassUid,
        mediaStorageSopInstanceUid: request.sopInstanceUid,
        transferSyntaxUid: request.transferSyntaxUid,
        sourceApplicationEntityTitle: request.callingAeTitle,
      });
      const outcome = await ingestInstance(ctx, part10File);
      if (outcome.status === 'refused' || outcome.status === 'conflict') {
        logger.warn({ outcome: outcome.status, reason: outcome.reason }, 'C-STORE instance refused');
      }
      return storeResultOf(outcome);
    } catch (error) {
      // The message of a storage error names files or SQL, never dataset values.
      logger.error({ err: error instanceof Error ? error.message : String(error) }, 'C-STORE instance could not be stored');
      return { status: Status.outOfResources, comment: 'the instance could not be stored' };
    } finally {
      await rm(part10File, { force: true });
    }
  };
}
