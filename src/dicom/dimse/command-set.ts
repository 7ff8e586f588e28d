/**
 * PS3.7 §6.3 / Annex E: DIMSE command sets, always encoded in Implicit VR Little Endian.
 * The decoder is lenient: it keeps every element it could read before a malformed one, so that a
 * broken command can still be answered with a failure status for its Message ID.
 */

/** PS3.7 Annex E command field values. */
export const CommandField = {
  cStoreRq: 0x0001,
  cGetRq: 0x0010,
  cFindRq: 0x0020,
  cMoveRq: 0x0021,
  cEchoRq: 0x0030,
  cCancelRq: 0x0fff,
  cStoreRsp: 0x8001,
  cFindRsp: 0x8020,
  cEchoRsp: 0x8030,
} as const;

/** PS3.7 §E.1: Command Data Set Type 0x0101 means no data set follows. */
export const NO_DATA_SET = 0x0101;
export const DATA_SET_PRESENT = 0x0000;

/** PS3.7 Annex C and §9.1.1.1.9 (C-STORE) status codes used by this SCP. */
export const Status = {
  success: 0x0000,
  sopClassNotSupported: 0x0122,
  unrecognizedOperation: 0x0211,
  processingFailure: 0x0110,
  outOfResources: 0xa700,
  dataSetDoesNotMatchSopClass: 0xa900,
  cannotUnderstand: 0xc000,
  /** PS3.4 §C.4.1.1.4: matching terminated by a C-CANCEL-RQ. */
  cancelled: 0xfe00,
} as const;

const Tag = {
  commandGroupLength: 0x00000000,
  affectedSopClassUid: 0x00000002,
  commandField: 0x00000100,
  messageId: 0x00000110,
  messageIdBeingRespondedTo: 0x00000120,
  priority: 0x00000700,
  commandDataSetType: 0x00000800,
  status: 0x00000900,
  errorComment: 0x00000902,
  affectedSopInstanceUid: 0x00001000,
} as const;

export interface CommandSet {
  commandField?: number | undefined;
  messageId?: number | undefined;
  messageIdBeingRespondedTo?: number | undefined;
  affectedSopClassUid?: string | undefined;
  affectedSopInstanceUid?: string | undefined;
  priority?: number | undefined;
  commandDataSetType?: number | undefined;
  status?: number | undefined;
  errorComment?: string | undefined;
  /** Set when the command set could not be read to its end. */
  malformed?: string | undefined;
}

export function decodeCommandSet(bytes: Buffer): CommandSet {
  const command: CommandSet = {};
  let position = 0;
  while (position < bytes.length) {
    if (position + 8 > bytes.length) {
      command.malformed = 'truncated element header';
      break;
    }
    const group = bytes.readUInt16LE(position);
    const element = bytes.readUInt16LE(position + 2);
    const length = bytes.readUInt32LE(position + 4);
    const valueStart = position + 8;
    if (group !== 0x0000) {
      command.malformed = `element (${hex(group)},${hex(element)}) outside the command group`;
      break;
    }
    if (length > bytes.length - valueStart) {
      command.malformed = `element (0000,${hex(element)}) overruns the command set`;
      break;
    }
    const value = bytes.subarray(valueStart, valueStart + length);
    const tag = element;
    const us = length === 2 ? value.readUInt16LE(0) : undefined;
    if (tag === Tag.affectedSopClassUid) {
      command.affectedSopClassUid = text(value);
    } else if (tag === Tag.affectedSopInstanceUid) {
      command.affectedSopInstanceUid = text(value);
    } else if (tag === Tag.commandField) {
      command.commandField = us;
    } else if (tag === Tag.messageId) {
      command.messageId = us;
    } else if (tag === Tag.messageIdBeingRespondedTo) {
      command.messageIdBeingRespondedTo = us;
    } else if (tag === Tag.priority) {
      command.priority = us;
    } else if (tag === Tag.commandDataSetType) {
      command.commandDataSetType = us;
    } else if (tag === Tag.status) {
      command.status = us;
    } else if (tag === Tag.errorComment) {
      command.errorComment = text(value);
    }
    position = valueStart + length;
  }
  return command;
}

export interface ResponseFields {
  commandField: number;
  messageIdBeingRespondedTo: number;
  status: number;
  affectedSopClassUid?: string | undefined;
  affectedSopInstanceUid?: string | undefined;
  errorComment?: string | undefined;
  /** A data set (a C-FIND identifier) follows the command. */
  hasDataSet?: boolean | undefined;
}

/** Encodes a response command set. */
export function encodeResponse(fields: ResponseFields): Buffer {
  const elements: Buffer[] = [];
  if (fields.affectedSopClassUid) {
    elements.push(uiElement(Tag.affectedSopClassUid, fields.affectedSopClassUid));
  }
  elements.push(usElement(Tag.commandField, fields.commandField));
  elements.push(usElement(Tag.messageIdBeingRespondedTo, fields.messageIdBeingRespondedTo));
  elements.push(usElement(Tag.commandDataSetType, fields.hasDataSet ? DATA_SET_PRESENT : NO_DATA_SET));
  elements.push(usElement(Tag.status, fields.status));
  // PS3.7 §C.4: Error Comment is LO, at most 64 characters.
  if (fields.errorComment) {
    elements.push(stringElement(Tag.errorComment, fields.errorComment.slice(0, 64), ' '));
  }
  if (fields.affectedSopInstanceUid) {
    elements.push(uiElement(Tag.affectedSopInstanceUid, fields.affectedSopInstanceUid));
  }
  return withGroupLength(elements);
}

export interface RequestFields {
  commandField: number;
  messageId: number;
  affectedSopClassUid: string;
  affectedSopInstanceUid?: string | undefined;
  priority?: number | undefined;
  hasDataSet: boolean;
}

/** Encodes a request command set; used by tests that act as an SCU over a raw socket. */
export function encodeRequest(fields: RequestFields): Buffer {
  const elements = [
    uiElement(Tag.affectedSopClassUid, fields.affectedSopClassUid),
    usElement(Tag.commandField, fields.commandField),
    usElement(Tag.messageId, fields.messageId),
  ];
  if (fields.priority !== undefined) {
    elements.push(usElement(Tag.priority, fields.priority));
  }
  elements.push(usElement(Tag.commandDataSetType, fields.hasDataSet ? DATA_SET_PRESENT : NO_DATA_SET));
  if (fields.affectedSopInstanceUid) {
    elements.push(uiElement(Tag.affectedSopInstanceUid, fields.affectedSopInstanceUid));
  }
  return withGroupLength(elements);
}

function withGroupLength(elements: Buffer[]): Buffer {
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(Tag.commandGroupLength, 0);
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([groupLength, body]);
}

function header(tag: number, length: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt16LE(tag >>> 16, 0);
  bytes.writeUInt16LE(tag & 0xffff, 2);
  bytes.writeUInt32LE(length, 4);
  return bytes;
}

function usElement(tag: number, value: number): Buffer {
  const bytes = Buffer.alloc(10);
  header(tag, 2).copy(bytes);
  bytes.writeUInt16LE(value, 8);
  return bytes;
}

function stringElement(tag: number, value: string, padding: string): Buffer {
  const padded = value.length % 2 === 0 ? value : value + padding;
  return Buffer.concat([header(tag, padded.length), Buffer.from(padded, 'latin1')]);
}

function uiElement(tag: number, uid: string): Buffer {
  return stringElement(tag, uid, '\0');
}

function text(value: Buffer): string {
  return value
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
}

function hex(value: number): string {
  return value.toString(16).padStart(4, '0');
}
