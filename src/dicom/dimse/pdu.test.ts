/** PDU framing, A-ASSOCIATE-RQ parsing, P-DATA fragmentation and command sets, without a network. */
import { CommandField, Status, decodeCommandSet, encodeRequest, encodeResponse } from './command-set.ts';
import {
  APPLICATION_CONTEXT_NAME,
  PduError,
  PduReader,
  PduType,
  encodeAssociateRq,
  encodePData,
  encodeReleaseRq,
  parseAssociateRq,
  parsePDataTf,
} from './pdu.ts';

const rq = encodeAssociateRq({
  calledAeTitle: 'HUB',
  callingAeTitle: 'MODALITY',
  applicationContextName: APPLICATION_CONTEXT_NAME,
  presentationContexts: [
    { id: 1, abstractSyntaxUid: '1.2.840.10008.1.1', transferSyntaxUids: ['1.2.840.10008.1.2'] },
    {
      id: 3,
      abstractSyntaxUid: '1.2.840.10008.5.1.4.1.1.2',
      transferSyntaxUids: ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.1'],
    },
  ],
  userInformation: { maxPduLength: 16384, implementationClassUid: '1.2.3.4.5', implementationVersionName: 'PEER_1' },
});

describe('PduReader', () => {
  const stream = Buffer.concat([rq, ...encodePData(3, false, Buffer.alloc(40_000, 7), 16384), encodeReleaseRq()]);

  test.each([1, 2, 5, 6, 7, 1000, 16390, stream.length])(
    'reassembles the same PDUs from chunks of %i bytes',
    (size) => {
      const reader = new PduReader(1 << 20);
      const pdus = [];
      for (let offset = 0; offset < stream.length; offset += size) {
        pdus.push(...reader.push(stream.subarray(offset, offset + size)));
      }
      expect(pdus.map((pdu) => [pdu.type, pdu.body.length])).toEqual([
        [PduType.associateRq, rq.length - 6],
        [PduType.pDataTf, 16384],
        [PduType.pDataTf, 16384],
        [PduType.pDataTf, 40_000 - 2 * 16378 + 6],
        [PduType.releaseRq, 4],
      ]);
      expect(reader.pendingBytes).toBe(0);
    },
  );

  test('refuses a PDU longer than its limit as soon as the header is in', () => {
    const reader = new PduReader(100);
    expect(() => reader.push(Buffer.from([PduType.pDataTf, 0, 0, 0, 0, 101]))).toThrow(PduError);
  });
});

describe('A-ASSOCIATE-RQ', () => {
  test('parses AE titles, contexts and user information', () => {
    expect(parseAssociateRq(rq.subarray(6))).toEqual({
      protocolVersion: 1,
      calledAeTitle: 'HUB',
      callingAeTitle: 'MODALITY',
      applicationContextName: APPLICATION_CONTEXT_NAME,
      presentationContexts: [
        { id: 1, abstractSyntaxUid: '1.2.840.10008.1.1', transferSyntaxUids: ['1.2.840.10008.1.2'] },
        {
          id: 3,
          abstractSyntaxUid: '1.2.840.10008.5.1.4.1.1.2',
          transferSyntaxUids: ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.1'],
        },
      ],
      userInformation: {
        maxPduLength: 16384,
        implementationClassUid: '1.2.3.4.5',
        implementationVersionName: 'PEER_1',
      },
    });
  });

  test('skips unknown items and user information sub-items (async window, role selection, user identity)', () => {
    const body = Buffer.from(rq.subarray(6));
    const userInfoAt = body.lastIndexOf(Buffer.from([0x50, 0x00]));
    const extraSubItems = Buffer.from([
      0x53, 0, 0, 4, 0, 1, 0, 1, 0x54, 0, 0, 3, 0, 1, 0x31, 0x58, 0, 0, 6, 1, 0, 0, 0, 0, 0,
    ]);
    const userInfo = body.subarray(userInfoAt);
    const grown = Buffer.concat([userInfo.subarray(0, 4), userInfo.subarray(4), extraSubItems]);
    grown.writeUInt16BE(grown.length - 4, 2);
    const unknownItem = Buffer.from([0x77, 0, 0, 2, 0xab, 0xcd]);
    const parsed = parseAssociateRq(Buffer.concat([body.subarray(0, userInfoAt), unknownItem, grown]));
    expect(parsed.presentationContexts).toHaveLength(2);
    expect(parsed.userInformation).toEqual({
      maxPduLength: 16384,
      implementationClassUid: '1.2.3.4.5',
      implementationVersionName: 'PEER_1',
    });
  });

  test('rejects an item that overruns its PDU', () => {
    const body = Buffer.from(rq.subarray(6));
    expect(() => parseAssociateRq(body.subarray(0, body.length - 3))).toThrow(PduError);
  });
});

describe('P-DATA-TF', () => {
  test('fragments a message to the peer maximum and marks only the last fragment', () => {
    const data = Buffer.alloc(100, 1);
    const pdus = encodePData(5, false, data, 40);
    const pdvs = pdus.flatMap((pdu) => {
      expect(pdu.readUInt32BE(2)).toBeLessThanOrEqual(40);
      return parsePDataTf(pdu.subarray(6));
    });
    expect(pdvs.map((pdv) => [pdv.presentationContextId, pdv.isCommand, pdv.isLast, pdv.data.length])).toEqual([
      [5, false, false, 34],
      [5, false, false, 34],
      [5, false, true, 32],
    ]);
  });

  test('reads several PDVs of one PDU and rejects a PDV that overruns it', () => {
    const body = Buffer.concat([
      encodePData(1, true, Buffer.from('ab'), 0)[0]!.subarray(6),
      encodePData(1, false, Buffer.from('cd'), 0)[0]!.subarray(6),
    ]);
    expect(parsePDataTf(body).map((pdv) => [pdv.isCommand, pdv.isLast, pdv.data.toString()])).toEqual([
      [true, true, 'ab'],
      [false, true, 'cd'],
    ]);
    expect(() => parsePDataTf(body.subarray(0, body.length - 1))).toThrow(PduError);
  });
});

describe('command sets', () => {
  test('a request and a response survive a round trip in Implicit VR Little Endian', () => {
    const request = encodeRequest({
      commandField: CommandField.cStoreRq,
      messageId: 9,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      affectedSopInstanceUid: '1.2.3',
      priority: 0,
      hasDataSet: true,
    });
    expect(request.readUInt32LE(8)).toBe(request.length - 12);
    expect(decodeCommandSet(request)).toEqual({
      commandField: CommandField.cStoreRq,
      messageId: 9,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      affectedSopInstanceUid: '1.2.3',
      priority: 0,
      commandDataSetType: 0,
    });
    const response = encodeResponse({
      commandField: CommandField.cStoreRsp,
      messageIdBeingRespondedTo: 9,
      status: Status.outOfResources,
      errorComment: 'x'.repeat(80),
      affectedSopInstanceUid: '1.2.3',
    });
    expect(response.length % 2).toBe(0);
    expect(decodeCommandSet(response)).toEqual({
      commandField: CommandField.cStoreRsp,
      messageIdBeingRespondedTo: 9,
      commandDataSetType: 0x0101,
      status: Status.outOfResources,
      errorComment: 'x'.repeat(64),
      affectedSopInstanceUid: '1.2.3',
    });
  });

  test('a malformed command set keeps what could be read', () => {
    const request = encodeRequest({
      commandField: CommandField.cEchoRq,
      messageId: 3,
      affectedSopClassUid: '1.2.840.10008.1.1',
      hasDataSet: false,
    });
    const command = decodeCommandSet(
      Buffer.concat([request, Buffer.from([0x08, 0x00, 0x16, 0x00, 2, 0, 0, 0, 0x31, 0x00])]),
    );
    expect(command).toMatchObject({
      commandField: CommandField.cEchoRq,
      messageId: 3,
      malformed: 'element (0008,0016) outside the command group',
    });
    expect(decodeCommandSet(request.subarray(0, request.length - 1)).malformed).toMatch(/overruns/);
  });
});
