/**
 * One DICOM association on one TCP connection, acceptor side: the PS3.8 §9.2 state machine reduced to
 * what an SCP needs, and the DIMSE (PS3.7) services on top of it: C-ECHO, and C-STORE with the data
 * set streamed fragment by fragment to a temp file. Every other request gets a failure response and
 * the association carries on; a failed instance fails only its own C-STORE.
 *
 * PDUs are handled strictly in order by one pump; the socket is paused while the pump is behind, so a
 * slow disk or a slow `onStore` pushes back on the peer instead of filling memory.
 */
import { randomUUID } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { Logger } from '../../logger.ts';
import { CommandField, NO_DATA_SET, Status, decodeCommandSet, encodeResponse } from './command-set.ts';
import type { CommandSet } from './command-set.ts';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './implementation.ts';
import {
  APPLICATION_CONTEXT_NAME,
  AbortReason,
  AbortSource,
  AssociateRejection,
  PduReader,
  PduType,
  PresentationContextResult,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodePData,
  encodeReleaseRp,
  parseAssociateRq,
  parsePDataTf,
} from './pdu.ts';
import type { Pdu, PresentationContextAnswer, Rejection } from './pdu.ts';
import { VERIFICATION_SOP_CLASS, isAcceptedAbstractSyntax, isValidUid } from './sop-classes.ts';

export interface StoreRequest {
  callingAeTitle: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The data set exactly as received (no File Meta Information). Deleted after `onStore` settles. */
  datasetFile: string;
  byteLength: number;
}

export interface StoreResult {
  /** A C-STORE status (PS3.4 §B.2.3): 0x0000, a warning (Bxxx) or a failure (A7xx, A9xx, Cxxx, 0110, 0122…). */
  status: number;
  comment?: string | undefined;
}

/**
 * Called once per received instance, after its last fragment is on disk. To keep the data set, move
 * or copy `datasetFile` before resolving. A throw becomes status 0x0110 (processing failure).
 */
export type OnStore = (request: StoreRequest) => Promise<StoreResult> | StoreResult;

export interface AssociationOptions {
  aeTitle: string;
  allowedCallingAeTitles?: readonly string[] | undefined;
  onStore: OnStore;
  logger: Logger;
  maxPduLength: number;
  tempDir: string;
  /** PS3.8 §9.1.5 ARTIM: how long to wait for the A-ASSOCIATE-RQ and for the peer to close after release or abort. */
  artimTimeoutMs: number;
  /** How long an established association may stay silent (or stall mid-PDU) before it is aborted. */
  idleTimeoutMs: number;
}

interface AcceptedContext {
  id: number;
  abstractSyntaxUid: string;
  transferSyntaxUid: string;
}

/** A request whose data set is arriving: stored to a temp file, or counted and dropped. */
interface IncomingDataSet {
  context: AcceptedContext;
  command: CommandSet;
  file?: { handle: FileHandle; path: string } | undefined;
  byteLength: number;
  /** When set, the data set is discarded and this is the answer. */
  failure?: StoreResult | undefined;
}

/** PS3.8 Annex D: an A-ASSOCIATE-RQ with 128 presentation contexts stays far below this. */
const MAX_ASSOCIATE_RQ_LENGTH = 1 << 20;
const MAX_COMMAND_SET_LENGTH = 1 << 16;
const PAUSE_AT_QUEUED_PDUS = 16;
const RESUME_AT_QUEUED_PDUS = 2;

type State = 'awaiting-associate' | 'established' | 'closing';

export class Association {
  /** Resolves when the connection is closed and no temp file of it remains. */
  readonly finished: Promise<void>;

  private readonly socket: Socket;
  private readonly options: AssociationOptions;
  private readonly log: Logger;
  private readonly reader = new PduReader(MAX_ASSOCIATE_RQ_LENGTH);
  private readonly queue: Pdu[] = [];
  private readonly contexts = new Map<number, AcceptedContext>();
  private state: State = 'awaiting-associate';
  private callingAeTitle = '';
  private peerMaxPduLength = 0;
  private pumping = false;
  private socketClosed = false;
  /** PS3.8 §9.1.5: runs from connection to A-ASSOCIATE-RQ, and from release/reject/abort to close; data never resets it. */
  private artimTimer: NodeJS.Timeout | undefined;
  /** Runs only on an established association while we wait for the peer. */
  private idleTimer: NodeJS.Timeout | undefined;
  private commandFragments: Buffer[] = [];
  private commandLength = 0;
  private commandContextId = 0;
  private incoming: IncomingDataSet | undefined;
  private resolveFinished!: () => void;

  constructor(socket: Socket, options: AssociationOptions, logger: Logger) {
    this.socket = socket;
    this.options = options;
    this.log = logger;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.log.debug({ err: error }, 'dimse socket error'));
    socket.on('close', () => this.onClose());
    this.startArtim();
  }

  /** Sends an A-ABORT (service provider) and drops the connection, e.g. at the end of a shutdown grace period. */
  abort(): void {
    if (this.socketClosed) return;
    this.state = 'closing';
    this.queue.length = 0;
    this.clearTimers();
    this.socket.end(encodeAbort(AbortSource.serviceProvider, AbortReason.notSpecified), () => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing') return;
    let pdus: Pdu[];
    try {
      pdus = this.reader.push(chunk);
    } catch (error) {
      this.log.warn({ err: error }, 'unreadable PDU stream');
      this.sendAbortAndClose(AbortReason.invalidPduParameterValue);
      return;
    }
    this.queue.push(...pdus);
    if (this.queue.length >= PAUSE_AT_QUEUED_PDUS) this.socket.pause();
    void this.pump();
  }

  private onClose(): void {
    this.socketClosed = true;
    this.state = 'closing';
    this.queue.length = 0;
    this.clearTimers();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    this.stopIdleTimer();
    try {
      while (this.queue.length > 0 && this.state !== 'closing') {
        const pdu = this.queue.shift()!;
        try {
          await this.handle(pdu);
        } catch (error) {
          this.log.error({ err: error }, 'association failed');
          this.sendAbortAndClose(AbortReason.notSpecified);
        }
        if (this.queue.length <= RESUME_AT_QUEUED_PDUS && this.socket.isPaused() && !this.socketClosed) this.socket.resume();
      }
      if (this.socketClosed) {
        await this.discardIncoming();
        this.resolveFinished();
      }
    } finally {
      this.pumping = false;
      if (!this.socketClosed && this.state === 'established') this.startIdleTimer();
    }
  }

  private async handle(pdu: Pdu): Promise<void> {
    if (this.state === 'awaiting-associate') {
      if (pdu.type === PduType.associateRq) this.negotiate(pdu.body);
      else this.sendAbortAndClose(pdu.type <= PduType.abort ? AbortReason.unexpectedPdu : AbortReason.unrecognizedPdu);
      return;
    }
    switch (pdu.type) {
      case PduType.pDataTf:
        await this.onPData(pdu.body);
        return;
      case PduType.releaseRq:
        await this.discardIncoming();
        this.log.debug('association released');
        this.state = 'closing';
        this.socket.end(encodeReleaseRp());
        this.startArtim();
        return;
      case PduType.abort:
        this.log.info({ source: pdu.body[2], reason: pdu.body[3] }, 'association aborted by the peer');
        this.state = 'closing';
        this.socket.destroy();
        return;
      default:
        this.log.warn({ pduType: pdu.type }, 'unexpected PDU on an established association');
        this.sendAbortAndClose(pdu.type <= PduType.abort ? AbortReason.unexpectedPdu : AbortReason.unrecognizedPdu);
    }
  }

  private negotiate(body: Buffer): void {
    let rq;
    try {
      rq = parseAssociateRq(body);
    } catch (error) {
      this.log.warn({ err: error }, 'unreadable A-ASSOCIATE-RQ');
      this.sendAbortAndClose(AbortReason.invalidPduParameterValue);
      return;
    }
    const allowed = this.options.allowedCallingAeTitles;
    let rejection: Rejection | undefined;
    // PS3.8 §9.3.2: bit 0 of the protocol version is version 1, the only one defined.
    if ((rq.protocolVersion & 0x01) === 0) rejection = AssociateRejection.protocolVersionNotSupported;
    else if (rq.calledAeTitle !== this.options.aeTitle) rejection = AssociateRejection.calledAeTitleNotRecognized;
    else if (allowed !== undefined && !allowed.includes(rq.callingAeTitle)) rejection = AssociateRejection.callingAeTitleNotRecognized;
    else if (rq.applicationContextName !== APPLICATION_CONTEXT_NAME) rejection = AssociateRejection.applicationContextNotSupported;
    if (rejection) {
      this.log.info({ calledAeTitle: rq.calledAeTitle, callingAeTitle: rq.callingAeTitle, ...rejection }, 'association rejected');
      this.state = 'closing';
      this.socket.end(encodeAssociateRj(rejection));
      this.startArtim();
      return;
    }
    const answers: PresentationContextAnswer[] = rq.presentationContexts.map((proposed) => {
      const transferSyntaxUid = proposed.transferSyntaxUids.find(isValidUid);
      if (!isAcceptedAbstractSyntax(proposed.abstractSyntaxUid)) {
        return { id: proposed.id, result: PresentationContextResult.abstractSyntaxNotSupported, transferSyntaxUid: proposed.transferSyntaxUids[0] ?? '' };
      }
      if (transferSyntaxUid === undefined) {
        return { id: proposed.id, result: PresentationContextResult.transferSyntaxesNotSupported, transferSyntaxUid: proposed.transferSyntaxUids[0] ?? '' };
      }
      this.contexts.set(proposed.id, { id: proposed.id, abstractSyntaxUid: proposed.abstractSyntaxUid, transferSyntaxUid });
      return { id: proposed.id, result: PresentationContextResult.acceptance, transferSyntaxUid };
    });
    this.callingAeTitle = rq.callingAeTitle;
    this.peerMaxPduLength = rq.userInformation.maxPduLength;
    this.reader.limit = this.options.maxPduLength;
    this.state = 'established';
    this.clearTimers();
    this.socket.write(
      encodeAssociateAc({
        calledAeTitle: rq.calledAeTitle,
        callingAeTitle: rq.callingAeTitle,
        presentationContexts: answers,
        userInformation: {
          maxPduLength: this.options.maxPduLength,
          implementationClassUid: IMPLEMENTATION_CLASS_UID,
          implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        },
      }),
    );
    this.log.info(
      {
        callingAeTitle: rq.callingAeTitle,
        implementationClassUid: rq.userInformation.implementationClassUid,
        implementationVersionName: rq.userInformation.implementationVersionName,
        proposedContexts: answers.length,
        acceptedContexts: this.contexts.size,
      },
      'association accepted',
    );
  }

  private async onPData(body: Buffer): Promise<void> {
    let pdvs;
    try {
      pdvs = parsePDataTf(body);
    } catch (error) {
      this.log.warn({ err: error }, 'unreadable P-DATA-TF');
      this.sendAbortAndClose(AbortReason.invalidPduParameterValue);
      return;
    }
    for (const pdv of pdvs) {
      const context = this.contexts.get(pdv.presentationContextId);
      if (!context) {
        this.log.warn({ presentationContextId: pdv.presentationContextId }, 'PDV on a presentation context that was not accepted');
        this.sendAbortAndClose(AbortReason.unexpectedPduParameter);
        return;
      }
      if (pdv.isCommand) {
        if (this.incoming) {
          // PS3.7 §9.3: a command may not interleave with the data set of the previous one.
          this.log.warn('command fragment while a data set was expected');
          this.sendAbortAndClose(AbortReason.unexpectedPduParameter);
          return;
        }
        if (this.commandFragments.length > 0 && pdv.presentationContextId !== this.commandContextId) {
          this.sendAbortAndClose(AbortReason.unexpectedPduParameter);
          return;
        }
        this.commandContextId = pdv.presentationContextId;
        this.commandFragments.push(pdv.data);
        this.commandLength += pdv.data.length;
        if (this.commandLength > MAX_COMMAND_SET_LENGTH) {
          this.sendAbortAndClose(AbortReason.invalidPduParameterValue);
          return;
        }
        if (pdv.isLast) {
          const bytes = Buffer.concat(this.commandFragments);
          this.commandFragments = [];
          this.commandLength = 0;
          await this.onCommand(context, decodeCommandSet(bytes));
        }
      } else if (!this.incoming) {
        this.log.warn({ presentationContextId: context.id }, 'data set fragment without a request; dropped');
      } else if (this.incoming.context.id !== context.id) {
        this.sendAbortAndClose(AbortReason.unexpectedPduParameter);
        return;
      } else {
        await this.writeFragment(this.incoming, pdv.data);
        if (pdv.isLast) await this.completeDataSet(this.incoming);
      }
      if (this.state === 'closing') return;
    }
  }

  private async onCommand(context: AcceptedContext, command: CommandSet): Promise<void> {
    const field = command.commandField;
    const hasDataSet = command.commandDataSetType !== undefined ? command.commandDataSetType !== NO_DATA_SET : field === CommandField.cStoreRq;
    if (field === CommandField.cEchoRq && !command.malformed) {
      this.respond(context, {
        commandField: CommandField.cEchoRsp,
        messageIdBeingRespondedTo: command.messageId ?? 0,
        status: Status.success,
        affectedSopClassUid: command.affectedSopClassUid ?? VERIFICATION_SOP_CLASS,
      });
      if (hasDataSet) this.incoming = { context, command, byteLength: 0, failure: { status: Status.success } };
      return;
    }
    if (field === CommandField.cStoreRq) {
      if (!hasDataSet) {
        this.respondToStore(context, command, { status: Status.cannotUnderstand, comment: 'C-STORE-RQ without a data set' });
        return;
      }
      this.incoming = await this.startDataSet(context, command);
      return;
    }
    if (field === CommandField.cCancelRq) return; // PS3.7 §9.3.2.3: C-CANCEL has no response.
    const failure = { status: Status.unrecognizedOperation, comment: field === undefined ? 'unreadable command set' : `command 0x${field.toString(16)} not supported` };
    this.log.info({ commandField: field, malformed: command.malformed }, 'unsupported DIMSE request');
    if (hasDataSet) this.incoming = { context, command, byteLength: 0, failure };
    else this.respondToUnsupported(context, command, failure);
  }

  private async startDataSet(context: AcceptedContext, command: CommandSet): Promise<IncomingDataSet> {
    const incoming: IncomingDataSet = { context, command, byteLength: 0 };
    if (command.malformed || command.messageId === undefined || !command.affectedSopClassUid || !command.affectedSopInstanceUid) {
      incoming.failure = { status: Status.cannotUnderstand, comment: command.malformed ?? 'C-STORE-RQ lacks a required attribute' };
    } else if (!isValidUid(command.affectedSopInstanceUid)) {
      incoming.failure = { status: Status.cannotUnderstand, comment: 'invalid Affected SOP Instance UID' };
    } else if (command.affectedSopClassUid !== context.abstractSyntaxUid) {
      // PS3.4 §B.2.3: the SOP class must be the one negotiated for this presentation context.
      incoming.failure = { status: Status.sopClassNotSupported, comment: 'SOP class differs from the presentation context' };
    } else {
      const path = join(this.options.tempDir, `${randomUUID()}.dataset`);
      try {
        incoming.file = { handle: await open(path, 'wx'), path };
      } catch (error) {
        this.log.error({ err: error }, 'cannot create a temp file for a C-STORE data set');
        incoming.failure = { status: Status.outOfResources, comment: 'cannot store the data set' };
      }
    }
    return incoming;
  }

  private async writeFragment(incoming: IncomingDataSet, data: Buffer): Promise<void> {
    incoming.byteLength += data.length;
    if (!incoming.file || incoming.failure) return;
    try {
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await incoming.file.handle.write(data, written, data.length - written);
        written += bytesWritten;
      }
    } catch (error) {
      this.log.error({ err: error }, 'writing a C-STORE data set failed');
      incoming.failure = { status: Status.outOfResources, comment: 'cannot store the data set' };
      await this.removeTempFile(incoming);
    }
  }

  private async completeDataSet(incoming: IncomingDataSet): Promise<void> {
    this.incoming = undefined;
    const field = incoming.command.commandField;
    if (field !== CommandField.cStoreRq) {
      if (field === CommandField.cEchoRq) return;
      this.respondToUnsupported(incoming.context, incoming.command, incoming.failure ?? { status: Status.unrecognizedOperation });
      return;
    }
    let result: StoreResult = incoming.failure ?? { status: Status.processingFailure };
    if (incoming.file && !incoming.failure) {
      try {
        await incoming.file.handle.close();
        result = await this.options.onStore({
          callingAeTitle: this.callingAeTitle,
          sopClassUid: incoming.command.affectedSopClassUid!,
          sopInstanceUid: incoming.command.affectedSopInstanceUid!,
          transferSyntaxUid: incoming.context.transferSyntaxUid,
          datasetFile: incoming.file.path,
          byteLength: incoming.byteLength,
        });
      } catch (error) {
        this.log.error({ err: error }, 'storing a received instance failed');
        result = { status: Status.processingFailure, comment: 'processing failure' };
      }
    }
    await this.removeTempFile(incoming);
    if (result.status !== Status.success) {
      // UIDs can identify a patient's study, so the log carries the message id, not the instance UID.
      this.log.info({ messageId: incoming.command.messageId, status: result.status, comment: result.comment }, 'C-STORE not successful');
    }
    this.respondToStore(incoming.context, incoming.command, result);
  }

  private respondToStore(context: AcceptedContext, command: CommandSet, result: StoreResult): void {
    this.respond(context, {
      commandField: CommandField.cStoreRsp,
      messageIdBeingRespondedTo: command.messageId ?? 0,
      status: result.status,
      errorComment: result.status === Status.success ? undefined : result.comment,
      affectedSopClassUid: command.affectedSopClassUid,
      affectedSopInstanceUid: command.affectedSopInstanceUid,
    });
  }

  private respondToUnsupported(context: AcceptedContext, command: CommandSet, result: StoreResult): void {
    if (command.commandField === undefined || command.messageId === undefined) {
      this.log.warn({ malformed: command.malformed }, 'command set too broken to answer');
      return;
    }
    this.respond(context, {
      // PS3.7 §9.3: a response's command field is its request's with bit 15 set.
      commandField: (command.commandField | 0x8000) & 0xffff,
      messageIdBeingRespondedTo: command.messageId,
      status: result.status,
      errorComment: result.comment,
      affectedSopClassUid: command.affectedSopClassUid,
    });
  }

  private respond(context: AcceptedContext, fields: Parameters<typeof encodeResponse>[0]): void {
    if (this.socketClosed || this.state === 'closing') return;
    const pdus = encodePData(context.id, true, encodeResponse(fields), this.peerMaxPduLength);
    this.socket.write(pdus.length === 1 ? pdus[0]! : Buffer.concat(pdus));
  }

  private async discardIncoming(): Promise<void> {
    this.commandFragments = [];
    this.commandLength = 0;
    const incoming = this.incoming;
    this.incoming = undefined;
    if (incoming) await this.removeTempFile(incoming);
  }

  private async removeTempFile(incoming: IncomingDataSet): Promise<void> {
    const file = incoming.file;
    if (!file) return;
    incoming.file = undefined;
    await file.handle.close().catch(() => undefined);
    await unlink(file.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') this.log.warn({ err: error }, 'cannot remove a temp data set');
    });
  }

  private sendAbortAndClose(reason: number): void {
    if (this.socketClosed) return;
    if (this.state !== 'closing') {
      this.state = 'closing';
      this.socket.end(encodeAbort(AbortSource.serviceProvider, reason));
    }
    this.queue.length = 0;
    this.stopIdleTimer();
    this.startArtim();
  }

  private startArtim(): void {
    if (this.artimTimer) clearTimeout(this.artimTimer);
    if (this.socketClosed) return;
    this.artimTimer = setTimeout(() => {
      if (this.state === 'awaiting-associate') this.log.info('no A-ASSOCIATE-RQ in time; closing');
      this.socket.destroy();
    }, this.options.artimTimeoutMs);
    this.artimTimer.unref();
  }

  private startIdleTimer(): void {
    this.stopIdleTimer();
    this.idleTimer = setTimeout(() => {
      this.log.warn({ pendingBytes: this.reader.pendingBytes }, 'association idle for too long; aborting');
      this.sendAbortAndClose(AbortReason.notSpecified);
    }, this.options.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private stopIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private clearTimers(): void {
    this.stopIdleTimer();
    if (this.artimTimer) clearTimeout(this.artimTimer);
    this.artimTimer = undefined;
  }
}
