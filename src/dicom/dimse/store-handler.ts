/**
 * C-STORE into the ingest path: the received data set, behind a File Meta Information header, goes
 * straight into a blob writer as it arrives (the Part 10 bytes we store and serve; held in memory
 * while small, spilled to a temp file beyond that), `ingestInstance` stores it, and the outcome
 * becomes a C-STORE status (PS3.4 §B.2.3). Each instance is answered on its own: a refusal or an
 * error never touches its neighbours. When the peer releases the association, the ImagingStudies of
 * the studies it sent are brought up to date before the release is confirmed; then (and after an
 * abort) the association's one DICOM Instances Transferred AuditEvent is recorded (audit-trail.ts).
 */
import type { Logger } from '../../logger.ts';
import type { BlobWriter } from '../../storage/blob-store.ts';
import { ingestInstance } from '../ingest.ts';
import type { IngestContext, IngestOutcome } from '../ingest.ts';
import { Status } from './command-set.ts';
import { buildPart10Header } from './part10-writer.ts';
import type { DimseAuditTrail } from './audit-trail.ts';
import type { AssociationPeer, DataSetSink, StoreHandler, StoreRequest, StoreResult } from './server.ts';

/** PS3.7 §C.4.x general status: a different instance already holds this SOP Instance UID. */
export const DUPLICATE_SOP_INSTANCE = 0x0111;
/** PS3.7 Annex C general status "Refused: Not authorized". */
export const NOT_AUTHORIZED = 0x0124;

export function storeResultOf(outcome: IngestOutcome): StoreResult {
  switch (outcome.status) {
    case 'stored':
    case 'duplicate':
      return { status: Status.success };
    case 'conflict':
      return { status: DUPLICATE_SOP_INSTANCE, comment: 'SOP Instance UID already stored with other content' };
    // A person stored the instance's study into a case, and its patient differs (dicom/case-claim.ts).
    case 'not-admitted':
      return { status: NOT_AUTHORIZED, comment: outcome.reason };
    case 'refused':
    case 'wrong-study':
      // C000 "cannot understand"; the comment (LO, 64 characters) names the first problem found.
      return { status: Status.cannotUnderstand, comment: outcome.reason };
  }
}

interface BlobSink extends DataSetSink {
  writer: BlobWriter;
}

/** What a running association has stored so far. */
interface AssociationStores {
  peer: AssociationPeer;
  studies: Set<string>;
  /** C-STOREs begun, and those stored: the rest failed or never completed. */
  begun: number;
  stored: number;
}

export function createStoreHandler(
  ctx: IngestContext,
  logger: Logger,
  audit?: DimseAuditTrail,
): StoreHandler<BlobSink> {
  const byAssociation = new Map<number, AssociationStores>();
  const storesOf = (request: { associationId: number } & AssociationPeer): AssociationStores => {
    let stores = byAssociation.get(request.associationId);
    if (!stores) {
      byAssociation.set(request.associationId, (stores = { peer: request, studies: new Set(), begun: 0, stored: 0 }));
    }
    return stores;
  };
  return {
    async begin(request) {
      storesOf(request).begun++;
      const writer = ctx.blobs.createWriter();
      await writer.write(
        buildPart10Header({
          mediaStorageSopClassUid: request.sopClassUid,
          mediaStorageSopInstanceUid: request.sopInstanceUid,
          transferSyntaxUid: request.transferSyntaxUid,
          sourceApplicationEntityTitle: request.callingAeTitle,
        }),
      );
      return { writer, write: (chunk) => writer.write(chunk), abort: () => writer.abort() };
    },

    async complete(request, sink) {
      const result = await storeOne(request, sink);
      if (result.status === Status.success) {
        storesOf(request).stored++;
      }
      return result;
    },

    async end(associationId, released) {
      const stores = byAssociation.get(associationId);
      byAssociation.delete(associationId);
      if (!stores) {
        return;
      }
      // After an abort the refresher's own schedule brings them up to date.
      if (released && stores.studies.size > 0) {
        await ctx.studies.flush(stores.studies);
      }
      try {
        await audit?.transferred({
          peer: stores.peer,
          studyInstanceUids: stores.studies,
          failures: stores.begun - stores.stored,
        });
      } catch (error) {
        logger.error(
          { err: error instanceof Error ? error.message : String(error) },
          'the audit of a C-STORE association failed',
        );
      }
    },
  };

  async function storeOne(request: StoreRequest, sink: BlobSink): Promise<StoreResult> {
    try {
      const staged = await sink.writer.stage();
      let outcome: IngestOutcome;
      try {
        outcome = await ingestInstance(ctx, staged);
      } finally {
        await staged.discard();
      }
      if (outcome.status === 'refused' || outcome.status === 'conflict') {
        logger.warn({ outcome: outcome.status, reason: outcome.reason }, 'C-STORE instance refused');
      } else if (outcome.status === 'not-admitted') {
        logger.warn(
          {
            outcome: outcome.status,
            reason: outcome.reason,
            studyInstanceUid: outcome.studyInstanceUid,
            sopInstanceUid: outcome.sopInstanceUid,
            callingAeTitle: request.callingAeTitle,
          },
          'C-STORE instance refused',
        );
      }
      if (outcome.status === 'stored' || outcome.status === 'duplicate') {
        storesOf(request).studies.add(outcome.studyInstanceUid);
      }
      return storeResultOf(outcome);
    } catch (error) {
      // The message of a storage error names files or SQL, never dataset values.
      logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'C-STORE instance could not be stored',
      );
      return { status: Status.outOfResources, comment: 'the instance could not be stored' };
    }
  }
}
