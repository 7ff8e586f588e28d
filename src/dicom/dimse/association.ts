/**
 * One DICOM association on one TCP connection, acceptor side: the PS3.8 §9.2 state machine reduced to
 * what an SCP needs, and the DIMSE (PS3.7) services on top of it: C-ECHO, C-STORE with the data
 * set handed fragment by fragment to the store handler's sink as it arrives, and C-FIND (when a
 * handler is configured), whose responses go out next to the pump so that a C-CANCEL-RQ is read.
 * Every other request gets a failure response and the association carries on; a failed instance
 * fails only its own C-STORE.
 *
 * PDUs are handled strictly in order by one pump; the socket is paused while the pump is behind, so a
 * slow disk or a slow store handler pushes back on the peer instead of filling memory.
 */
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
import {
  VERIFICATION_SOP_CLASS,
  isAcceptedAbstractSyntax,
  isAcceptedTransferSyntax,
  isQuerySopClass,
  isValidUid,
} from './sop-classes.ts';

/** Who is on the other end of an association: its AE title and the addresses of the connection. */
export interface AssociationPeer {
  callingAeTitle: string;
  /** Our AE title. */
  calledAeTitle: string;
  /** The peer's network address. */
  callingAddress?: string | undefined;
  /** Ours, on this connection. */
  calledAddress?: string | undefined;
}

export interface StoreRequest extends AssociationPeer {
  /** Unique per server: the association the request came on. */
  associationId: number;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
}

/** Receives one data set's fragments, exactly as received (no File Meta Information), in order. */
export interface DataSetSink {
  write(chunk: Buffer): Promise<void>;
  /** The data set will not be completed (the association ended, or writing failed): drop it. */
  abort(): Promise<void>;
}

export interface StoreResult {
  /** A C-STORE status (PS3.4 §B.2.3): 0x0000, a warning (Bxxx) or a failure (A7xx, A9xx, Cxxx, 0110, 0122…). */
  status: number;
  comment?: string | undefined;
}

/**
 * Stores C-STORE data sets: `begin` gives the sink an accepted request's data set streams into;
 * `complete` stores it once its last fragment is written, and its result is the C-STORE answer (a
 * throw becomes 0x0110 processing failure; the sink is not aborted after `complete` started). `end`
 * runs when an association ends: on a release the peer gets its A-RELEASE-RP only once it settles.
 */
export interface StoreHandler<S extends DataSetSink = DataSetSink> {
  begin(request: StoreRequest): Promise<S>;
  complete(request: StoreRequest, sink: S, byteLength: number): Promise<StoreResult>;
  end?(associationId: number, released: boolean): Promise<void>;
}

/** calledAeTitle is our AE title, also for Retrieve AE Title (0008,0054). */
export interface FindRequest extends AssociationPeer {
  sopClassUid: string;
  /** The identifier's transfer syntax: the presentation context's, Implicit or Explicit VR Little Endian. */
  transferSyntaxUid: string;
  identifier: Buffer;
}

export interface FindResponse {
  /** Pending (0xFF00/0xFF01) with an identifier, or the final status (PS3.4 §C.4.1.1.4). */
  status: number;
  identifier?: Buffer | undefined;
  comment?: string | undefined;
}

/**
 * Called once per C-FIND-RQ: yields the pending responses one at a time and returns the final one.
 * On C-CANCEL-RQ or a closed connection the association stops pulling and calls `return()`.
 */
export type OnFind = (request: FindRequest) => AsyncGenerator<FindResponse, FindResponse, undefined>;

/** An A-ASSOCIATE-RQ refused with an A-ASSOCIATE-RJ, and what it proposed. */
export interface AssociationRejected extends AssociationPeer {
  /** The reason, as a fixed text (PS3.8 Table 9-21). */
  reason: string;
  /** The abstract syntaxes of the proposed presentation contexts. */
  abstractSyntaxUids: string[];
}

export interface AssociationOptions {
  aeTitle: string;
  allowedCallingAeTitles?: readonly string[] | undefined;
  /** Told of every association refused (for the audit trail); must not throw. */
  onRejected?: ((rejection: AssociationRejected) => void) | undefined;
  /** Unique per server. */
  id: number;
  store: StoreHandler;
  /** Without it, the query models are not negotiated and C-FIND-RQ is an unrecognized operation (0x0211). */
  onFind?: OnFind | undefined;
  logger: Logger;
  maxPduLength: number;
  /** PS3.8 §9.1.5 ARTIM: how long to wait for the A-ASSOCIATE-RQ and for the peer to close after release or abort. */
  artimTimeoutMs: number;
  /** How long an established association may stay silent (or stall mid-PDU) before it is aborted. */
  idleTimeoutMs: number;
  /** The server has as many associations as it takes: the A-ASSOCIATE-RQ is rejected, transient. */
  overLimit?: boolean;
}

interface AcceptedContext {
  id: number;
  abstractSyntaxUid: string;
  transferSyntaxUid: string;
}

/** A request whose data set is arriving: written to the store handler's sink, or counted and dropped. */
interface IncomingDataSet {
  context: AcceptedContext;
  command: CommandSet;
  request?: StoreRequest | undefined;
  sink?: DataSetSink | undefined;
  byteLength: number;
  /** When set, the data set is discarded and this is the answer. */
  failure?: StoreResult | undefined;
  /** A C-FIND identifier, kept in memory (at most MAX_IDENTIFIER_LENGTH bytes). */
  identifier?: Buffer[] | undefined;
}

/** A C-FIND whose responses are being sent while the pump goes on reading (for its C-CANCEL-RQ). */
interface RunningFind {
  messageId: number;
  cancelled: boolean;
  done: Promise<void>;
}

/** PS3.8 Annex D: an A-ASSOCIATE-RQ with 128 presentation contexts stays far below this. */
const MAX_ASSOCIATE_RQ_LENGTH = 1 << 20;
const MAX_COMMAND_SET_LENGTH = 1 << 16;
const MAX_IDENTIFIER_LENGTH = 1 << 20;
const PAUSE_AT_QUEUED_PDUS = 16;
const RESUME_AT_QUEUED_PDUS = 2;

type State = 'awaiting-associate' | 'established' | 'closing';

export class Association {
  /** Resolves when the connection is closed and no data set of it is pending. */
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
  private storeEnded = false;
  private runningFind: RunningFind | undefined;
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

  private peer(callingAeTitle: string, calledAeTitle: string): AssociationPeer {
    return {
      callingAeTitle,
      calledAeTitle,
      callingAddress: this.socket.remoteAddress,
      calledAddress: this.socket.localAddress,
    };
  }

  /** Sends an A-ABORT (service provider) and drops the connection, e.g. at the end of a shutdown grace period. */
  abort(): void {
    if (this.socketClosed) {
      return;
    }
    this.state = 'closing';
    this.queue.length = 0;
    this.clearTimers();
    this.socket.end(encodeAbort(AbortSource.serviceProvider, AbortReason.notSpecified), () => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing') {
      return;
    }
    let pdus: Pdu[];
    try {
      pdus = this.reader.push(chunk);
    } catch (error) {
      this.log.warn({ err: error }, 'unreadable PDU stream');
      this.sendAbortAndClose(AbortReason.invalidPduParameterValue);
      return;
    }
    this.queue.push(...pdus);
    if (this.queue.length >= PAUSE_AT_QUEUED_PDUS) {
      this.socket.pause();
    }
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
    if (this.pumping) {
      return;
    }
    this.pumping = true;
    this.stopIdleTimer();
    try {
      while (this.state !== 'closing') {
        const pdu = this.queue.shift();
        if (pdu === undefined) {
          break;
        }
        try {
          await this.handle(pdu);
        } catch (error) {
          this.log.error({ err: error }, 'association failed');
          this.sendAbortAndClose(AbortReason.notSpecified);
        }
        if (this.queue.length <= RESUME_AT_QUEUED_PDUS && this.socket.isPaused() && !this.socketClosed) {
          this.socket.resume();
        }
      }
      if (this.socketClosed) {
        await this.discardIncoming();
        await this.runningFind?.done;
        await this.endStore(false);
        this.resolveFinished();
      }
    } finally {
      this.pumping = false;
      if (!this.socketClosed && this.state === 'established') {
        this.startIdleTimer();
      }
    }
  }

  private async handle(pdu: Pdu): Promise<void> {
    if (this.state === 'awaiting-associate') {
      if (pdu.type === PduType.associateRq) {
        this.negotiate(pdu.body);
      } else {
        this.sendAbortAndClose(pdu.type <= PduType.abort ? AbortReason.unexpectedPdu : AbortReason.unrecognizedPdu);
      }
      return;
    }
    switch (pdu.type) {
      case PduType.pDataTf:
        await this.onPData(pdu.body);
        return;
      case PduType.releaseRq:
        await this.cancelFind();
        await this.discardIncoming();
        await this.endStore(true);
        if (this.socketClosed) {
          return;
        }
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
    const refusal = this.refusalOf(rq);
    if (refusal) {
      const { rejection, reason } = refusal;
      this.log.info(
        { calledAeTitle: rq.calledAeTitle, callingAeTitle: rq.callingAeTitle, ...rejection },
        'association rejected',
      );
      this.options.onRejected?.({
        ...this.peer(rq.callingAeTitle, rq.calledAeTitle),
        reason,
        abstractSyntaxUids: rq.presentationContexts.map((context) => context.abstractSyntaxUid),
      });
      this.state = 'closing';
      this.socket.end(encodeAssociateRj(rejection));
      this.startArtim();
      return;
    }
    const answers: PresentationContextAnswer[] = rq.presentationContexts.map((proposed) => {
      const transferSyntaxUid = proposed.transferSyntaxUids.find((uid) =>
        isAcceptedTransferSyntax(proposed.abstractSyntaxUid, uid),
      );
      // Query models are offered only when a C-FIND handler is configured.
      if (
        !isAcceptedAbstractSyntax(proposed.abstractSyntaxUid) ||
        (isQuerySopClass(proposed.abstractSyntaxUid) && !this.options.onFind)
      ) {
        return {
          id: proposed.id,
          result: PresentationContextResult.abstractSyntaxNotSupported,
          transferSyntaxUid: proposed.transferSyntaxUids[0] ?? '',
        };
      }
      if (transferSyntaxUid === undefined) {
        return {
          id: proposed.id,
          result: PresentationContextResult.transferSyntaxesNotSupported,
          transferSyntaxUid: proposed.transferSyntaxUids[0] ?? '',
        };
      }
      this.contexts.set(proposed.id, {
        id: proposed.id,
        abstractSyntaxUid: proposed.abstractSyntaxUid,
        transferSyntaxUid,
      });
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

  /** Why an A-ASSOCIATE-RQ is refused, if it is: the A-ASSOCIATE-RJ and a fixed text for the audit. */
  private refusalOf(rq: ReturnType<typeof parseAssociateRq>): { rejection: Rejection; reason: string } | undefined {
    const allowed = this.options.allowedCallingAeTitles;
    if (this.options.overLimit) {
      return { rejection: AssociateRejection.localLimitExceeded, reason: 'local limit exceeded' };
    }
    // PS3.8 §9.3.2: bit 0 of the protocol version is version 1, the only one defined.
    if ((rq.protocolVersion & 0x01) === 0) {
      return { rejection: AssociateRejection.protocolVersionNotSupported, reason: 'protocol version not supported' };
    }
    if (rq.calledAeTitle !== this.options.aeTitle) {
      return { rejection: AssociateRejection.calledAeTitleNotRecognized, reason: 'called AE title not recognized' };
    }
    if (allowed !== undefined && !allowed.includes(rq.callingAeTitle)) {
      return { rejection: AssociateRejection.callingAeTitleNotRecognized, reason: 'calling AE title not recognized' };
    }
    if (rq.applicationContextName !== APPLICATION_CONTEXT_NAME) {
      return {
        rejection: AssociateRejection.applicationContextNotSupported,
        reason: 'application context name not supported',
      };
    }
    return undefined;
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
        this.log.warn(
          { presentationContextId: pdv.presentationContextId },
          'PDV on a presentation context that was not accepted',
        );
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
        if (pdv.isLast) {
          await this.completeDataSet(this.incoming);
        }
      }
      if (this.state === 'closing') {
        return;
      }
    }
  }

  private async onCommand(context: AcceptedContext, command: CommandSet): Promise<void> {
    const field = command.commandField;
    const hasDataSet =
      command.commandDataSetType !== undefined
        ? command.commandDataSetType !== NO_DATA_SET
        : field === CommandField.cStoreRq;
    if (field === CommandField.cCancelRq) {
      // PS3.7 §9.3.2.3: C-CANCEL has no response; the cancelled C-FIND answers 0xFE00.
      if (this.runningFind && this.runningFind.messageId === command.messageIdBeingRespondedTo) {
        this.runningFind.cancelled = true;
      }
      return;
    }
    // Without asynchronous operations negotiated, one operation at a time (PS3.7 §D.3.3.3).
    if (this.runningFind) {
      await this.runningFind.done;
    }
    if (
      field === CommandField.cFindRq &&
      this.options.onFind &&
      !command.malformed &&
      command.messageId !== undefined
    ) {
      if (hasDataSet) {
        this.incoming = { context, command, byteLength: 0, identifier: [] };
      } else {
        this.respondToUnsupported(context, command, {
          status: Status.cannotUnderstand,
          comment: 'C-FIND-RQ without an identifier',
        });
      }
      return;
    }
    if (field === CommandField.cEchoRq && !command.malformed) {
      this.respond(context, {
        commandField: CommandField.cEchoRsp,
        messageIdBeingRespondedTo: command.messageId ?? 0,
        status: Status.success,
        affectedSopClassUid: command.affectedSopClassUid ?? VERIFICATION_SOP_CLASS,
      });
      if (hasDataSet) {
        this.incoming = { context, command, byteLength: 0, failure: { status: Status.success } };
      }
      return;
    }
    if (field === CommandField.cStoreRq) {
      if (!hasDataSet) {
        this.respondToStore(context, command, {
          status: Status.cannotUnderstand,
          comment: 'C-STORE-RQ without a data set',
        });
        return;
      }
      this.incoming = await this.startDataSet(context, command);
      return;
    }
    const failure = {
      status: Status.unrecognizedOperation,
      comment: field === undefined ? 'unreadable command set' : `command 0x${field.toString(16)} not supported`,
    };
    this.log.info({ commandField: field, malformed: command.malformed }, 'unsupported DIMSE request');
    if (hasDataSet) {
      this.incoming = { context, command, byteLength: 0, failure };
    } else {
      this.respondToUnsupported(context, command, failure);
    }
  }

  private async startDataSet(context: AcceptedContext, command: CommandSet): Promise<IncomingDataSet> {
    const incoming: IncomingDataSet = { context, command, byteLength: 0 };
    if (
      command.malformed ||
      command.messageId === undefined ||
      !command.affectedSopClassUid ||
      !command.affectedSopInstanceUid
    ) {
      incoming.failure = {
        status: Status.cannotUnderstand,
        comment: command.malformed ?? 'C-STORE-RQ lacks a required attribute',
      };
    } else if (!isValidUid(command.affectedSopInstanceUid)) {
      incoming.failure = { status: Status.cannotUnderstand, comment: 'invalid Affected SOP Instance UID' };
    } else if (command.affectedSopClassUid !== context.abstractSyntaxUid) {
      // PS3.4 §B.2.3: the SOP class must be the one negotiated for this presentation context.
      incoming.failure = {
        status: Status.sopClassNotSupported,
        comment: 'SOP class differs from the presentation context',
      };
    } else {
      incoming.request = {
        ...this.peer(this.callingAeTitle, this.options.aeTitle),
        associationId: this.options.id,
        sopClassUid: command.affectedSopClassUid,
        sopInstanceUid: command.affectedSopInstanceUid,
        transferSyntaxUid: context.transferSyntaxUid,
      };
      try {
        incoming.sink = await this.options.store.begin(incoming.request);
      } catch (error) {
        this.log.error(
          { err: error instanceof Error ? error.message : String(error) },
          'cannot open a sink for a C-STORE data set',
        );
        incoming.failure = { status: Status.outOfResources, comment: 'cannot store the data set' };
      }
    }
    return incoming;
  }

  private async writeFragment(incoming: IncomingDataSet, data: Buffer): Promise<void> {
    incoming.byteLength += data.length;
    if (incoming.identifier) {
      if (incoming.byteLength <= MAX_IDENTIFIER_LENGTH) {
        incoming.identifier.push(data);
      } else {
        incoming.failure ??= { status: Status.outOfResources, comment: 'identifier too large' };
      }
      return;
    }
    if (!incoming.sink || incoming.failure) {
      return;
    }
    try {
      await incoming.sink.write(data);
    } catch (error) {
      this.log.error(
        { err: error instanceof Error ? error.message : String(error) },
        'writing a C-STORE data set failed',
      );
      incoming.failure = { status: Status.outOfResources, comment: 'cannot store the data set' };
      await this.abortSink(incoming);
    }
  }

  private async completeDataSet(incoming: IncomingDataSet): Promise<void> {
    this.incoming = undefined;
    const field = incoming.command.commandField;
    if (field === CommandField.cFindRq) {
      this.startFind(incoming);
      return;
    }
    if (field !== CommandField.cStoreRq) {
      if (field === CommandField.cEchoRq) {
        return;
      }
      this.respondToUnsupported(
        incoming.context,
        incoming.command,
        incoming.failure ?? { status: Status.unrecognizedOperation },
      );
      return;
    }
    let result: StoreResult = incoming.failure ?? { status: Status.processingFailure };
    const { sink, request } = incoming;
    if (sink && request && !incoming.failure) {
      incoming.sink = undefined;
      try {
        result = await this.options.store.complete(request, sink, incoming.byteLength);
      } catch (error) {
        this.log.error(
          { err: error instanceof Error ? error.message : String(error) },
          'storing a received instance failed',
        );
        result = { status: Status.processingFailure, comment: 'processing failure' };
      }
    }
    await this.abortSink(incoming);
    if (result.status !== Status.success) {
      // UIDs can identify a patient's study, so the log carries the message id, not the instance UID.
      this.log.info(
        { messageId: incoming.command.messageId, status: result.status, comment: result.comment },
        'C-STORE not successful',
      );
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

  private startFind(incoming: IncomingDataSet): void {
    const { context, command } = incoming;
    // onCommand keeps a C-FIND only when it has a message id; without one there is nothing to answer
    // to, and respondToUnsupported logs the command set and drops it.
    if (incoming.failure || command.messageId === undefined) {
      this.respondToUnsupported(context, command, incoming.failure ?? { status: Status.cannotUnderstand });
      return;
    }
    const running: RunningFind = { messageId: command.messageId, cancelled: false, done: Promise.resolve() };
    this.runningFind = running;
    running.done = this.runFind(context, command, Buffer.concat(incoming.identifier ?? []), running).finally(() => {
      if (this.runningFind === running) {
        this.runningFind = undefined;
      }
    });
  }

  /** Runs next to the pump, so that a C-CANCEL-RQ is read while the responses go out. */
  private async runFind(
    context: AcceptedContext,
    command: CommandSet,
    identifier: Buffer,
    running: RunningFind,
  ): Promise<void> {
    const answer = (response: FindResponse) => this.respondToFind(context, command, response);
    const onFind = this.options.onFind;
    if (
      !onFind ||
      !isQuerySopClass(context.abstractSyntaxUid) ||
      command.affectedSopClassUid !== context.abstractSyntaxUid
    ) {
      await answer({ status: Status.sopClassNotSupported, comment: 'SOP class not supported for C-FIND' });
      return;
    }
    let responses: AsyncGenerator<FindResponse, FindResponse, undefined> | undefined;
    try {
      responses = onFind({
        ...this.peer(this.callingAeTitle, this.options.aeTitle),
        sopClassUid: context.abstractSyntaxUid,
        transferSyntaxUid: context.transferSyntaxUid,
        identifier,
      });
      for (;;) {
        if (this.socketClosed || this.state === 'closing') {
          await responses.return({ status: Status.processingFailure });
          return;
        }
        if (running.cancelled) {
          await responses.return({ status: Status.cancelled });
          await answer({ status: Status.cancelled });
          return;
        }
        const next = await responses.next();
        if (next.done) {
          await answer(next.value);
          return;
        }
        if (!running.cancelled) {
          await answer(next.value);
        }
      }
    } catch (error) {
      this.log.error({ err: error instanceof Error ? error.message : String(error) }, 'C-FIND failed');
      await responses?.return({ status: Status.cannotUnderstand }).catch(() => undefined);
      // 0xC000 is also C-FIND's "unable to process" (PS3.4 §C.4.1.1.4).
      await answer({ status: Status.cannotUnderstand, comment: 'unable to process the query' });
    }
  }

  /** Sends one C-FIND-RSP, with its identifier when pending; waits while the socket's buffer is full. */
  private async respondToFind(context: AcceptedContext, command: CommandSet, response: FindResponse): Promise<void> {
    if (this.socketClosed || this.state === 'closing') {
      return;
    }
    const pdus = encodePData(
      context.id,
      true,
      encodeResponse({
        commandField: CommandField.cFindRsp,
        messageIdBeingRespondedTo: command.messageId ?? 0,
        status: response.status,
        affectedSopClassUid: command.affectedSopClassUid,
        errorComment: response.comment,
        hasDataSet: response.identifier !== undefined,
      }),
      this.peerMaxPduLength,
    );
    if (response.identifier) {
      pdus.push(...encodePData(context.id, false, response.identifier, this.peerMaxPduLength));
    }
    // A response the peer takes is progress: the idle timer aborts a peer that stops reading them.
    if (this.socket.write(Buffer.concat(pdus), () => this.touchIdleTimer())) {
      return;
    }
    const drained = await new Promise<boolean>((resolve) => {
      const finish = (outcome: boolean) => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onDrain);
        resolve(outcome);
      };
      const onDrain = () => finish(true);
      const timer = setTimeout(() => finish(false), this.options.idleTimeoutMs);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onDrain);
    });
    if (!drained) {
      // Not even an A-ABORT would get through a full send buffer.
      this.log.warn('the peer stopped reading C-FIND responses; closing the connection');
      this.socket.destroy();
    }
  }

  private touchIdleTimer(): void {
    if (this.idleTimer && !this.pumping) {
      this.startIdleTimer();
    }
  }

  private async cancelFind(): Promise<void> {
    const running = this.runningFind;
    if (!running) {
      return;
    }
    running.cancelled = true;
    await running.done;
  }

  private respond(context: AcceptedContext, fields: Parameters<typeof encodeResponse>[0]): void {
    if (this.socketClosed || this.state === 'closing') {
      return;
    }
    const pdus = encodePData(context.id, true, encodeResponse(fields), this.peerMaxPduLength);
    const [only] = pdus;
    // One PDU goes out as it is; several are joined so the socket gets a single write.
    this.socket.write(pdus.length === 1 && only !== undefined ? only : Buffer.concat(pdus));
  }

  private async discardIncoming(): Promise<void> {
    this.commandFragments = [];
    this.commandLength = 0;
    const incoming = this.incoming;
    this.incoming = undefined;
    if (incoming) {
      await this.abortSink(incoming);
    }
  }

  private async abortSink(incoming: IncomingDataSet): Promise<void> {
    const sink = incoming.sink;
    if (!sink) {
      return;
    }
    incoming.sink = undefined;
    await sink.abort().catch((error: unknown) => {
      this.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'cannot drop an unfinished data set',
      );
    });
  }

  /** Tells the store handler, once, that the association is over. */
  private async endStore(released: boolean): Promise<void> {
    if (this.storeEnded) {
      return;
    }
    this.storeEnded = true;
    try {
      await this.options.store.end?.(this.options.id, released);
    } catch (error) {
      this.log.error(
        { err: error instanceof Error ? error.message : String(error) },
        "finishing the association's instances failed",
      );
    }
  }

  private sendAbortAndClose(reason: number): void {
    if (this.socketClosed) {
      return;
    }
    if (this.state !== 'closing') {
      this.state = 'closing';
      this.socket.end(encodeAbort(AbortSource.serviceProvider, reason));
    }
    this.queue.length = 0;
    this.stopIdleTimer();
    this.startArtim();
  }

  private startArtim(): void {
    if (this.artimTimer) {
      clearTimeout(this.artimTimer);
    }
    if (this.socketClosed) {
      return;
    }
    this.artimTimer = setTimeout(() => {
      if (this.state === 'awaiting-associate') {
        this.log.info('no A-ASSOCIATE-RQ in time; closing');
      }
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
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
    }
    this.idleTimer = undefined;
  }

  private clearTimers(): void {
    this.stopIdleTimer();
    if (this.artimTimer) {
      clearTimeout(this.artimTimer);
    }
    this.artimTimer = undefined;
  }
}
