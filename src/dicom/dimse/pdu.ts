/**
 * PS3.8 upper-layer PDUs: a chunk-robust PDU reader, the A-ASSOCIATE-RQ parser, and encoders for the
 * PDUs an acceptor sends (A-ASSOCIATE-AC/RJ, P-DATA-TF, A-RELEASE-RP, A-ABORT). The requestor-side
 * encoders (A-ASSOCIATE-RQ, A-RELEASE-RQ) exist so tests can speak the protocol over a raw socket.
 */

/** PS3.8 §9.3.1: PDU types. */
export const PduType = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pDataTf: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07,
} as const;

export interface Pdu {
  type: number;
  /** The PDU's variable part (everything after the 6-byte header). */
  body: Buffer;
}

export class PduError extends Error {}

/**
 * Reassembles PDUs from TCP chunks of any size: a PDU may arrive split over many chunks, or many
 * PDUs in one chunk. Holds at most one incomplete PDU (bounded by `limit`).
 */
export class PduReader {
  /** The largest PDU body (length field) accepted; raised once an association is established. */
  limit: number;
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Adds a chunk and returns the PDUs it completes. Throws PduError for an oversized PDU. */
  push(chunk: Buffer): Pdu[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const pdus: Pdu[] = [];
    for (;;) {
      if (this.buffered < 6) {
        break;
      }
      const header = this.peek(6);
      const length = header.readUInt32BE(2);
      if (length > this.limit) {
        throw new PduError(`PDU type ${header[0]} of ${length} bytes exceeds the limit of ${this.limit}`);
      }
      if (this.buffered < 6 + length) {
        break;
      }
      const whole = this.take(6 + length);
      pdus.push({ type: whole.readUInt8(0), body: whole.subarray(6) });
    }
    return pdus;
  }

  /** Bytes of an incomplete PDU held so far. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      return first.subarray(0, n);
    }
    return this.coalesce().subarray(0, n);
  }

  private take(n: number): Buffer {
    let first = this.chunks[0];
    if (first === undefined || first.length < n) {
      first = this.coalesce();
    }
    const taken = first.subarray(0, n);
    if (first.length === n) {
      this.chunks.shift();
    } else {
      this.chunks[0] = first.subarray(n);
    }
    this.buffered -= n;
    return taken;
  }

  /** Joins the held chunks into one, so a PDU split over several can be read in one piece. */
  private coalesce(): Buffer {
    const whole = Buffer.concat(this.chunks);
    this.chunks = [whole];
    return whole;
  }
}

export interface ProposedPresentationContext {
  id: number;
  abstractSyntaxUid: string;
  transferSyntaxUids: string[];
}

export interface UserInformation {
  /** 0 means unlimited (PS3.8 §D.1). */
  maxPduLength: number;
  implementationClassUid?: string | undefined;
  implementationVersionName?: string | undefined;
}

export interface AssociateRq {
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string;
  presentationContexts: ProposedPresentationContext[];
  userInformation: UserInformation;
}

/** PS3.8 §9.3.2 / Annex D: parses an A-ASSOCIATE-RQ body; unknown items and sub-items are skipped. */
export function parseAssociateRq(body: Buffer): AssociateRq {
  if (body.length < 68) {
    throw new PduError('A-ASSOCIATE-RQ shorter than its fixed fields');
  }
  const rq: AssociateRq = {
    protocolVersion: body.readUInt16BE(0),
    calledAeTitle: aeTitleFrom(body.subarray(4, 20)),
    callingAeTitle: aeTitleFrom(body.subarray(20, 36)),
    applicationContextName: '',
    presentationContexts: [],
    userInformation: { maxPduLength: 0 },
  };
  for (const item of items(body, 68)) {
    if (item.type === 0x10) {
      rq.applicationContextName = uidFrom(item.value);
    } else if (item.type === 0x20) {
      rq.presentationContexts.push(parseProposedContext(item.value));
    } else if (item.type === 0x50) {
      rq.userInformation = parseUserInformation(item.value);
    }
  }
  return rq;
}

function parseProposedContext(value: Buffer): ProposedPresentationContext {
  if (value.length < 4) {
    throw new PduError('presentation context item too short');
  }
  const context: ProposedPresentationContext = {
    id: value.readUInt8(0),
    abstractSyntaxUid: '',
    transferSyntaxUids: [],
  };
  for (const sub of items(value, 4)) {
    if (sub.type === 0x30) {
      context.abstractSyntaxUid = uidFrom(sub.value);
    } else if (sub.type === 0x40) {
      context.transferSyntaxUids.push(uidFrom(sub.value));
    }
  }
  return context;
}

function parseUserInformation(value: Buffer): UserInformation {
  const info: UserInformation = { maxPduLength: 0 };
  for (const sub of items(value, 0)) {
    if (sub.type === 0x51 && sub.value.length >= 4) {
      info.maxPduLength = sub.value.readUInt32BE(0);
    } else if (sub.type === 0x52) {
      info.implementationClassUid = uidFrom(sub.value);
    } else if (sub.type === 0x55) {
      info.implementationVersionName = sub.value.toString('latin1').trim();
    }
  }
  return info;
}

/** Items and sub-items share one layout: type (1), reserved (1), length (2, big endian), value. */
function* items(buffer: Buffer, offset: number): Generator<{ type: number; value: Buffer }> {
  let position = offset;
  while (position < buffer.length) {
    if (position + 4 > buffer.length) {
      throw new PduError('truncated item header');
    }
    const type = buffer.readUInt8(position);
    const length = buffer.readUInt16BE(position + 2);
    const end = position + 4 + length;
    if (end > buffer.length) {
      throw new PduError(`item 0x${type.toString(16)} overruns its PDU`);
    }
    yield { type, value: buffer.subarray(position + 4, end) };
    position = end;
  }
}

function aeTitleFrom(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/\0/g, ' ').trim();
}

function uidFrom(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[\0 ]+$/, '');
}

function aeTitleField(title: string): Buffer {
  return Buffer.from(title.padEnd(16, ' ').slice(0, 16), 'latin1');
}

function item(type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header[0] = type;
  header.writeUInt16BE(value.length, 2);
  return Buffer.concat([header, value]);
}

function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6);
  header[0] = type;
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function userInformationItem(info: UserInformation): Buffer {
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(info.maxPduLength, 0);
  const subItems = [item(0x51, maxLength)];
  if (info.implementationClassUid) {
    subItems.push(item(0x52, Buffer.from(info.implementationClassUid, 'latin1')));
  }
  if (info.implementationVersionName) {
    subItems.push(item(0x55, Buffer.from(info.implementationVersionName, 'latin1')));
  }
  return item(0x50, Buffer.concat(subItems));
}

function fixedFields(calledAeTitle: string, callingAeTitle: string): Buffer {
  const version = Buffer.alloc(4);
  version.writeUInt16BE(1, 0);
  return Buffer.concat([version, aeTitleField(calledAeTitle), aeTitleField(callingAeTitle), Buffer.alloc(32)]);
}

export const APPLICATION_CONTEXT_NAME = '1.2.840.10008.3.1.1.1';

/** PS3.8 §9.3.3.2 presentation context results. */
export const PresentationContextResult = {
  acceptance: 0,
  userRejection: 1,
  noReason: 2,
  abstractSyntaxNotSupported: 3,
  transferSyntaxesNotSupported: 4,
} as const;

export interface PresentationContextAnswer {
  id: number;
  result: number;
  transferSyntaxUid: string;
}

export interface AssociateAc {
  calledAeTitle: string;
  callingAeTitle: string;
  presentationContexts: PresentationContextAnswer[];
  userInformation: UserInformation;
}

export function encodeAssociateAc(ac: AssociateAc): Buffer {
  const contexts = ac.presentationContexts.map((context) => {
    const head = Buffer.from([context.id, 0, context.result, 0]);
    return item(0x21, Buffer.concat([head, item(0x40, Buffer.from(context.transferSyntaxUid, 'latin1'))]));
  });
  return pdu(
    PduType.associateAc,
    Buffer.concat([
      fixedFields(ac.calledAeTitle, ac.callingAeTitle),
      item(0x10, Buffer.from(APPLICATION_CONTEXT_NAME, 'latin1')),
      ...contexts,
      userInformationItem(ac.userInformation),
    ]),
  );
}

/** PS3.8 §9.3.4 (Table 9-21): result, source and reason of an A-ASSOCIATE-RJ. */
export const AssociateRejection = {
  calledAeTitleNotRecognized: { result: 1, source: 1, reason: 7 },
  callingAeTitleNotRecognized: { result: 1, source: 1, reason: 3 },
  applicationContextNotSupported: { result: 1, source: 1, reason: 2 },
  protocolVersionNotSupported: { result: 1, source: 2, reason: 2 },
  localLimitExceeded: { result: 2, source: 3, reason: 2 },
} as const;

export interface Rejection {
  result: number;
  source: number;
  reason: number;
}

export function encodeAssociateRj(rejection: Rejection): Buffer {
  return pdu(PduType.associateRj, Buffer.from([0, rejection.result, rejection.source, rejection.reason]));
}

/** PS3.8 §9.3.8 (Table 9-26): A-ABORT source and reason. */
export const AbortSource = { serviceUser: 0, serviceProvider: 2 } as const;
export const AbortReason = {
  notSpecified: 0,
  unrecognizedPdu: 1,
  unexpectedPdu: 2,
  unrecognizedPduParameter: 4,
  unexpectedPduParameter: 5,
  invalidPduParameterValue: 6,
} as const;

export function encodeAbort(source: number, reason: number): Buffer {
  return pdu(PduType.abort, Buffer.from([0, 0, source, reason]));
}

export function encodeReleaseRp(): Buffer {
  return pdu(PduType.releaseRp, Buffer.alloc(4));
}

export function encodeReleaseRq(): Buffer {
  return pdu(PduType.releaseRq, Buffer.alloc(4));
}

export function encodeAssociateRq(rq: Omit<AssociateRq, 'protocolVersion'>): Buffer {
  const contexts = rq.presentationContexts.map((context) =>
    item(
      0x20,
      Buffer.concat([
        Buffer.from([context.id, 0, 0, 0]),
        item(0x30, Buffer.from(context.abstractSyntaxUid, 'latin1')),
        ...context.transferSyntaxUids.map((uid) => item(0x40, Buffer.from(uid, 'latin1'))),
      ]),
    ),
  );
  return pdu(
    PduType.associateRq,
    Buffer.concat([
      fixedFields(rq.calledAeTitle, rq.callingAeTitle),
      item(0x10, Buffer.from(rq.applicationContextName, 'latin1')),
      ...contexts,
      userInformationItem(rq.userInformation),
    ]),
  );
}

/** One presentation data value of a P-DATA-TF (PS3.8 §9.3.5, Annex E.2). */
export interface Pdv {
  presentationContextId: number;
  isCommand: boolean;
  isLast: boolean;
  data: Buffer;
}

export function parsePDataTf(body: Buffer): Pdv[] {
  const pdvs: Pdv[] = [];
  let position = 0;
  while (position < body.length) {
    if (position + 6 > body.length) {
      throw new PduError('truncated PDV item');
    }
    const length = body.readUInt32BE(position);
    if (length < 2 || position + 4 + length > body.length) {
      throw new PduError('PDV item length out of range');
    }
    const control = body.readUInt8(position + 5);
    pdvs.push({
      presentationContextId: body.readUInt8(position + 4),
      isCommand: (control & 0x01) !== 0,
      isLast: (control & 0x02) !== 0,
      data: body.subarray(position + 6, position + 4 + length),
    });
    position += 4 + length;
  }
  return pdvs;
}

/**
 * Encodes a message (command or dataset) as P-DATA-TF PDUs of one PDV each, fragmented so that no
 * PDU exceeds the peer's maximum length (0 = unlimited).
 */
export function encodePData(
  presentationContextId: number,
  isCommand: boolean,
  data: Buffer,
  peerMaxPduLength: number,
): Buffer[] {
  const maxFragment = peerMaxPduLength === 0 ? 0xfffffff0 : Math.max(1, peerMaxPduLength - 6);
  const pdus: Buffer[] = [];
  let position = 0;
  do {
    const fragment = data.subarray(position, position + maxFragment);
    position += fragment.length;
    const isLast = position >= data.length;
    const head = Buffer.alloc(6);
    head.writeUInt32BE(fragment.length + 2, 0);
    head[4] = presentationContextId;
    head[5] = (isCommand ? 0x01 : 0) | (isLast ? 0x02 : 0);
    pdus.push(pdu(PduType.pDataTf, Buffer.concat([head, fragment])));
  } while (position < data.length);
  return pdus;
}
