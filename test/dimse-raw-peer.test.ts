/**
 * The SCP driven PDU by PDU from a raw socket: byte-by-byte delivery, negotiation results and
 * rejections, every DIMSE path (echo, store, refused store, malformed command, unsupported
 * operations), byte-exact storage of every valid pydicom test file as the file holds it, abrupt
 * disconnects, ARTIM and idle timeouts, the peer's maximum PDU length, and shutdown.
 */
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/logger.ts';
import { CommandField, Status, encodeRequest } from '../src/dicom/dimse/command-set.ts';
import { writePart10File } from '../src/dicom/dimse/part10-writer.ts';
import {
  APPLICATION_CONTEXT_NAME,
  AbortReason,
  PduType,
  PresentationContextResult,
  encodeAbort,
  encodeAssociateRq,
  encodePData,
  encodeReleaseRq,
} from '../src/dicom/dimse/pdu.ts';
import type { ProposedPresentationContext } from '../src/dicom/dimse/pdu.ts';
import { startDimseServer } from '../src/dicom/dimse/server.ts';
import type { DimseServer } from '../src/dicom/dimse/server.ts';
import { isStorageSopClass } from '../src/dicom/dimse/sop-classes.ts';
import { RawPeer, fileStoreHandler, parseAssociateAc, readPart10, runDcmtk } from './support/dicom/test-peer.ts';
import type { FileStoreRequest, Part10File } from './support/dicom/test-peer.ts';
import { until } from './support/until.ts';

const TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const CLASSIFICATION = fileURLToPath(
  new URL('./support/dicom/testdata/pydicom-testfiles-classified.txt', import.meta.url),
);
const VERIFICATION = '1.2.840.10008.1.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const SERVER_MAX_PDU = 16384;

interface RqOptions {
  calledAeTitle?: string;
  callingAeTitle?: string;
  maxPduLength?: number;
  applicationContextName?: string;
}

function associateRq(contexts: ProposedPresentationContext[], options: RqOptions = {}): Buffer {
  return encodeAssociateRq({
    calledAeTitle: options.calledAeTitle ?? 'HUB',
    callingAeTitle: options.callingAeTitle ?? 'RAW',
    applicationContextName: options.applicationContextName ?? APPLICATION_CONTEXT_NAME,
    presentationContexts: contexts,
    userInformation: {
      maxPduLength: options.maxPduLength ?? 0,
      implementationClassUid: '1.2.3.4',
      implementationVersionName: 'RAWPEER',
    },
  });
}

async function associate(
  peer: RawPeer,
  contexts: ProposedPresentationContext[],
  options: RqOptions = {},
  byteByByte = false,
) {
  await peer.send(associateRq(contexts, options), byteByByte);
  const pdu = await peer.nextPdu();
  expect(pdu?.type).toBe(PduType.associateAc);
  return parseAssociateAc(pdu!.body);
}

function storeMessage(
  contextId: number,
  messageId: number,
  sopClassUid: string,
  sopInstanceUid: string,
  dataSet: Buffer,
): Buffer {
  const command = encodeRequest({
    commandField: CommandField.cStoreRq,
    messageId,
    affectedSopClassUid: sopClassUid,
    affectedSopInstanceUid: sopInstanceUid,
    priority: 0,
    hasDataSet: true,
  });
  return Buffer.concat([
    ...encodePData(contextId, true, command, SERVER_MAX_PDU),
    ...encodePData(contextId, false, dataSet, SERVER_MAX_PDU),
  ]);
}

function echoMessage(contextId: number, messageId: number): Buffer {
  return Buffer.concat(
    encodePData(
      contextId,
      true,
      encodeRequest({
        commandField: CommandField.cEchoRq,
        messageId,
        affectedSopClassUid: VERIFICATION,
        hasDataSet: false,
      }),
      SERVER_MAX_PDU,
    ),
  );
}

describe('DIMSE SCP over a raw socket', () => {
  let workDir: string;
  let tempDir: string;
  let outDir: string;
  let server: DimseServer;
  let stored: FileStoreRequest[] = [];
  let ctSmall: Part10File;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dimse-raw-'));
    tempDir = join(workDir, 'incoming');
    outDir = join(workDir, 'stored');
    await mkdir(tempDir);
    await mkdir(outDir);
    ctSmall = await readPart10(join(TEST_FILES, 'CT_small.dcm'));
    server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      allowedCallingAeTitles: ['RAW', 'ECHOSCU'],
      logger: createLogger(process.env.DIMSE_TEST_LOG ?? 'silent'),
      maxPduLength: SERVER_MAX_PDU,
      artimTimeoutMs: 400,
      idleTimeoutMs: 600,
      store: fileStoreHandler(tempDir, async (request) => {
        const index = stored.length;
        stored.push(request);
        if (request.sopInstanceUid.endsWith('.666')) {
          return { status: Status.dataSetDoesNotMatchSopClass, comment: 'not a CT data set' };
        }
        await writePart10File(request.datasetFile, join(outDir, `${index}.dcm`), {
          mediaStorageSopClassUid: request.sopClassUid,
          mediaStorageSopInstanceUid: request.sopInstanceUid,
          transferSyntaxUid: request.transferSyntaxUid,
        });
        return { status: Status.success };
      }),
    });
  });

  afterAll(async () => {
    await server.close();
    await rm(workDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    stored = [];
    await rm(outDir, { recursive: true, force: true });
    await mkdir(outDir);
  });

  test('a whole association fed byte by byte: negotiation, echo, stores, failures, unsupported operations, release', async () => {
    const peer = await RawPeer.connect(server.port);
    const accepted = await associate(
      peer,
      [
        { id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] },
        { id: 3, abstractSyntaxUid: CT, transferSyntaxUids: ['not a uid', EXPLICIT_LE, IMPLICIT_LE] },
        { id: 5, abstractSyntaxUid: STUDY_ROOT_FIND, transferSyntaxUids: [IMPLICIT_LE] },
        { id: 7, abstractSyntaxUid: MR, transferSyntaxUids: [] },
      ],
      {},
      true,
    );
    expect(accepted.contexts).toEqual(
      new Map([
        [1, { result: PresentationContextResult.acceptance, transferSyntaxUid: IMPLICIT_LE }],
        [3, { result: PresentationContextResult.acceptance, transferSyntaxUid: EXPLICIT_LE }],
        [5, { result: PresentationContextResult.abstractSyntaxNotSupported, transferSyntaxUid: IMPLICIT_LE }],
        [7, { result: PresentationContextResult.transferSyntaxesNotSupported, transferSyntaxUid: '' }],
      ]),
    );
    expect(accepted.maxPduLength).toBe(SERVER_MAX_PDU);
    expect(accepted.implementationClassUid).toMatch(/^2\.25\.\d+$/);

    await peer.send(echoMessage(1, 1), true);
    expect((await peer.nextCommand()).command).toMatchObject({
      commandField: CommandField.cEchoRsp,
      messageIdBeingRespondedTo: 1,
      status: Status.success,
    });

    await peer.send(storeMessage(3, 2, CT, ctSmall.sopInstanceUid, ctSmall.dataSet), true);
    expect((await peer.nextCommand()).command).toMatchObject({
      commandField: CommandField.cStoreRsp,
      messageIdBeingRespondedTo: 2,
      status: Status.success,
      affectedSopClassUid: CT,
      affectedSopInstanceUid: ctSmall.sopInstanceUid,
    });
    expect((await readPart10(join(outDir, '0.dcm'))).dataSet.equals(ctSmall.dataSet)).toBe(true);

    // Refused by onStore: fails alone.
    await peer.send(storeMessage(3, 3, CT, '1.2.3.666', ctSmall.dataSet));
    expect((await peer.nextCommand()).command).toMatchObject({
      messageIdBeingRespondedTo: 3,
      status: Status.dataSetDoesNotMatchSopClass,
      errorComment: 'not a CT data set',
    });

    // A command set whose last element overruns it, and that lacks the Affected SOP Instance UID.
    const broken = Buffer.concat([
      encodeRequest({
        commandField: CommandField.cStoreRq,
        messageId: 4,
        affectedSopClassUid: CT,
        priority: 0,
        hasDataSet: true,
      }),
      Buffer.from([0x00, 0x00, 0x00, 0x10, 0xff, 0x00, 0x00, 0x00, 0x31]),
    ]);
    await peer.send(
      Buffer.concat([
        ...encodePData(3, true, broken, SERVER_MAX_PDU),
        ...encodePData(3, false, ctSmall.dataSet, SERVER_MAX_PDU),
      ]),
    );
    expect((await peer.nextCommand()).command).toMatchObject({
      commandField: CommandField.cStoreRsp,
      messageIdBeingRespondedTo: 4,
      status: Status.cannotUnderstand,
    });

    // The SOP class of the request is not the one negotiated for its presentation context.
    await peer.send(storeMessage(3, 5, MR, '1.2.3.5', ctSmall.dataSet));
    expect((await peer.nextCommand()).command).toMatchObject({
      messageIdBeingRespondedTo: 5,
      status: Status.sopClassNotSupported,
    });

    // C-FIND, C-MOVE and C-GET are not offered: a failure response, with the identifier swallowed.
    const identifier = Buffer.from([
      0x08, 0x00, 0x52, 0x00, 0x06, 0x00, 0x00, 0x00, 0x53, 0x54, 0x55, 0x44, 0x59, 0x20,
    ]);
    for (const [messageId, commandField] of [
      [6, CommandField.cFindRq],
      [7, CommandField.cMoveRq],
      [8, CommandField.cGetRq],
    ] as const) {
      const command = encodeRequest({
        commandField,
        messageId,
        affectedSopClassUid: CT,
        priority: 0,
        hasDataSet: true,
      });
      await peer.send(
        Buffer.concat([
          ...encodePData(3, true, command, SERVER_MAX_PDU),
          ...encodePData(3, false, identifier, SERVER_MAX_PDU),
        ]),
      );
      expect((await peer.nextCommand()).command).toMatchObject({
        commandField: commandField | 0x8000,
        messageIdBeingRespondedTo: messageId,
        status: Status.unrecognizedOperation,
      });
    }

    // The association still works: another store succeeds.
    await peer.send(storeMessage(3, 9, CT, '1.2.3.9', ctSmall.dataSet));
    expect((await peer.nextCommand()).command).toMatchObject({ messageIdBeingRespondedTo: 9, status: Status.success });
    expect(stored.map((request) => request.sopInstanceUid)).toEqual([ctSmall.sopInstanceUid, '1.2.3.666', '1.2.3.9']);

    await peer.send(encodeReleaseRq(), true);
    expect((await peer.nextPdu())?.type).toBe(PduType.releaseRp);
    await peer.waitClosed();
    expect(await readdir(tempDir)).toEqual([]);
  });

  test('rejections carry the PS3.8 result, source and reason', async () => {
    const contexts = [{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] }];
    const cases: Array<[RqOptions, number[]]> = [
      [{ calledAeTitle: 'OTHER' }, [0, 1, 1, 7]],
      [{ callingAeTitle: 'STRANGER' }, [0, 1, 1, 3]],
      [{ applicationContextName: '1.2.3' }, [0, 1, 1, 2]],
    ];
    for (const [options, expected] of cases) {
      const peer = await RawPeer.connect(server.port);
      await peer.send(associateRq(contexts, options));
      const pdu = await peer.nextPdu();
      expect(pdu?.type).toBe(PduType.associateRj);
      expect([...pdu!.body]).toEqual(expected);
      await peer.waitClosed();
    }
  });

  test('every valid pydicom test file is stored exactly as its data set is in the file, over one association', async () => {
    const lines = (await readFile(CLASSIFICATION, 'utf8'))
      .split('\n')
      .filter((line) => / p10=1 /.test(line) && / dump_rc=0 /.test(line));
    const files: Array<Part10File & { path: string }> = [];
    for (const line of lines) {
      const path = join(TEST_FILES, line.split(/\s+/)[0]!);
      if (!existsSync(path)) {
        continue;
      }
      const file = await readPart10(path);
      if (isStorageSopClass(file.sopClassUid) && file.transferSyntaxUid && file.sopInstanceUid) {
        files.push({ ...file, path });
      }
    }
    expect(files.length).toBeGreaterThan(100);
    const pairs = [...new Set(files.map((file) => `${file.sopClassUid} ${file.transferSyntaxUid}`))];
    expect(pairs.length).toBeLessThanOrEqual(128);
    const contexts = pairs.map((pair, index) => {
      const [abstractSyntaxUid, transferSyntaxUid] = pair.split(' ') as [string, string];
      return { id: 2 * index + 1, abstractSyntaxUid, transferSyntaxUids: [transferSyntaxUid] };
    });
    const peer = await RawPeer.connect(server.port);
    const accepted = await associate(peer, contexts, { maxPduLength: 16384 });
    expect(
      [...accepted.contexts.values()].every((context) => context.result === PresentationContextResult.acceptance),
    ).toBe(true);
    for (const [index, file] of files.entries()) {
      const contextId = 2 * pairs.indexOf(`${file.sopClassUid} ${file.transferSyntaxUid}`) + 1;
      await peer.send(storeMessage(contextId, index + 1, file.sopClassUid, file.sopInstanceUid, file.dataSet));
      expect((await peer.nextCommand()).command).toMatchObject({
        messageIdBeingRespondedTo: index + 1,
        status: Status.success,
      });
    }
    await peer.send(encodeReleaseRq());
    expect((await peer.nextPdu())?.type).toBe(PduType.releaseRp);
    const differing: string[] = [];
    for (const [index, file] of files.entries()) {
      const received = await readPart10(join(outDir, `${index}.dcm`));
      if (received.transferSyntaxUid !== file.transferSyntaxUid || !received.dataSet.equals(file.dataSet)) {
        differing.push(file.path);
      }
    }
    expect(differing).toEqual([]);
  });

  test.each(['disconnect', 'A-ABORT'])(
    'a peer %s mid-data set leaves no partial file and the server keeps serving',
    async (how) => {
      const peer = await RawPeer.connect(server.port);
      await associate(peer, [{ id: 1, abstractSyntaxUid: CT, transferSyntaxUids: [EXPLICIT_LE] }]);
      const whole = storeMessage(1, 1, CT, '1.2.3.42', ctSmall.dataSet);
      await peer.send(whole.subarray(0, Math.floor(whole.length / 2)));
      await until(async () => (await readdir(tempDir)).length === 1, 'the part in a temp file', 3000, 20);
      if (how === 'disconnect') {
        peer.destroy();
      } else {
        await peer.send(encodeAbort(0, 0));
      }
      await peer.waitClosed();
      await until(async () => (await readdir(tempDir)).length === 0, 'the temp file to be removed', 3000, 20);
      expect(stored).toEqual([]);
      const echo = await runDcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', 'HUB', '127.0.0.1', String(server.port)]);
      expect(echo.code).toBe(0);
    },
  );

  test('ARTIM: a connection that never sends an A-ASSOCIATE-RQ is closed', async () => {
    const started = Date.now();
    const peer = await RawPeer.connect(server.port);
    await peer.waitClosed(3000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(peer.received).toEqual([]);
  });

  test('ARTIM is not reset by a peer trickling an A-ASSOCIATE-RQ byte by byte', async () => {
    const started = Date.now();
    const peer = await RawPeer.connect(server.port);
    const rq = associateRq([{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] }]);
    for (let index = 0; !peer.closed && index < rq.length; index++) {
      await peer.send(rq.subarray(index, index + 1)).catch(() => undefined);
      // Time, not an event: the peer trickles on purpose, slower than the ARTIM timeout allows in all.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await peer.waitClosed(3000);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(peer.received).toEqual([]);
  });

  test('a peer stalled in the middle of a PDU is aborted after the idle timeout', async () => {
    const peer = await RawPeer.connect(server.port);
    await associate(peer, [{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] }]);
    await peer.send(Buffer.from([PduType.pDataTf, 0, 0]));
    const pdu = await peer.nextPdu(3000);
    expect(pdu?.type).toBe(PduType.abort);
    await peer.waitClosed();
  });

  test("responses respect the peer's maximum PDU length", async () => {
    const peer = await RawPeer.connect(server.port);
    await associate(peer, [{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] }], {
      maxPduLength: 32,
    });
    await peer.send(echoMessage(1, 77));
    const response = await peer.nextCommand();
    expect(response.command).toMatchObject({
      commandField: CommandField.cEchoRsp,
      messageIdBeingRespondedTo: 77,
      status: Status.success,
    });
    expect(response.pduLengths.length).toBeGreaterThan(1);
    expect(Math.max(...response.pduLengths)).toBeLessThanOrEqual(32);
    peer.destroy();
  });

  test.each([
    [
      'a PDU longer than our maximum',
      true,
      Buffer.from([PduType.pDataTf, 0, 0, 0, 0x50, 0x00]),
      AbortReason.invalidPduParameterValue,
    ],
    ['an unknown PDU type', true, Buffer.from([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0]), AbortReason.unrecognizedPdu],
    [
      'a PDV on a refused presentation context',
      true,
      Buffer.concat(encodePData(3, true, Buffer.alloc(8), 0)),
      AbortReason.unexpectedPduParameter,
    ],
    [
      'a P-DATA-TF before the association',
      false,
      Buffer.concat(encodePData(1, true, Buffer.alloc(8), 0)),
      AbortReason.unexpectedPdu,
    ],
  ])('%s is answered with an A-ABORT', async (_name, associated, bytes, reason) => {
    const peer = await RawPeer.connect(server.port);
    if (associated) {
      await associate(peer, [
        { id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] },
        { id: 3, abstractSyntaxUid: STUDY_ROOT_FIND, transferSyntaxUids: [IMPLICIT_LE] },
      ]);
    }
    await peer.send(bytes);
    const pdu = await peer.nextPdu();
    expect(pdu?.type).toBe(PduType.abort);
    expect([...pdu!.body]).toEqual([0, 0, 2, reason]);
    await peer.waitClosed();
  });
});

describe('DIMSE server listener', () => {
  test('listens on the given address only', async () => {
    const tempDir = await mkdtemp(join(tmpdir(), 'dimse-bind-'));
    const server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      logger: createLogger('silent'),
      maxPduLength: SERVER_MAX_PDU,
      store: fileStoreHandler(tempDir, () => ({ status: Status.success })),
    });
    try {
      // Linux routes all of 127/8 to the loopback interface: a wildcard bind would answer on 127.0.0.2.
      await expect(RawPeer.connect(server.port, '127.0.0.2')).rejects.toThrow(/ECONNREFUSED/);
      (await RawPeer.connect(server.port, '127.0.0.1')).destroy();
    } finally {
      await server.close();
      await rm(tempDir, { recursive: true, force: true });
    }
  });

  test('beyond its limit of associations it rejects with local-limit-exceeded (transient), and takes the next once one ends', async () => {
    const tempDir = await mkdtemp(join(tmpdir(), 'dimse-limit-'));
    const server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      logger: createLogger('silent'),
      maxPduLength: SERVER_MAX_PDU,
      maxAssociations: 2,
      store: fileStoreHandler(tempDir, () => ({ status: Status.success })),
    });
    const contexts = [{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] }];
    try {
      const first = await RawPeer.connect(server.port);
      await associate(first, contexts);
      const second = await RawPeer.connect(server.port);
      await associate(second, contexts);
      const third = await RawPeer.connect(server.port);
      await third.send(associateRq(contexts));
      const refused = await third.nextPdu();
      expect(refused?.type).toBe(PduType.associateRj);
      // PS3.8 Table 9-21: rejected-transient, by the service provider (presentation), local limit exceeded.
      expect([...(refused?.body ?? [])]).toEqual([0, 2, 3, 2]);
      await third.waitClosed();
      // The first one released: a place is free again (once the server has seen its connection end).
      await first.send(encodeReleaseRq());
      expect((await first.nextPdu())?.type).toBe(PduType.releaseRp);
      await first.waitClosed();
      const fourth = await until(async () => {
        const peer = await RawPeer.connect(server.port);
        await peer.send(associateRq(contexts));
        const answer = await peer.nextPdu();
        if (answer?.type === PduType.associateAc) {
          return peer;
        }
        await peer.waitClosed();
        return undefined;
      }, 'a place for a new association');
      second.destroy();
      fourth.destroy();
    } finally {
      await server.close();
      await rm(tempDir, { recursive: true, force: true });
    }
  });

  test('refuses an unbounded or tiny maximum PDU length', async () => {
    const options = {
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      logger: createLogger('silent'),
      store: fileStoreHandler(tmpdir(), () => ({ status: Status.success })),
    };
    await expect(startDimseServer({ ...options, maxPduLength: 0 })).rejects.toThrow(RangeError);
    await expect(startDimseServer({ ...options, maxPduLength: 100 })).rejects.toThrow(RangeError);
  });
});

describe('DIMSE server shutdown', () => {
  test('close() stops accepting, lets a releasing association finish, and aborts an idle one after the grace period', async () => {
    const tempDir = await mkdtemp(join(tmpdir(), 'dimse-close-'));
    const server = await startDimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      logger: createLogger('silent'),
      maxPduLength: SERVER_MAX_PDU,
      closeGraceMs: 300,
      store: fileStoreHandler(tempDir, () => ({ status: Status.success })),
    });
    const contexts = [{ id: 1, abstractSyntaxUid: VERIFICATION, transferSyntaxUids: [IMPLICIT_LE] }];
    const releasing = await RawPeer.connect(server.port);
    const idle = await RawPeer.connect(server.port);
    await associate(releasing, contexts);
    await associate(idle, contexts);
    const started = Date.now();
    const closed = server.close();
    await releasing.send(echoMessage(1, 1));
    expect((await releasing.nextCommand()).command.status).toBe(Status.success);
    await releasing.send(encodeReleaseRq());
    expect((await releasing.nextPdu())?.type).toBe(PduType.releaseRp);
    await expect(RawPeer.connect(server.port)).rejects.toThrow();
    const abort = await idle.nextPdu(3000);
    expect(abort?.type).toBe(PduType.abort);
    await closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await idle.waitClosed();
    await rm(tempDir, { recursive: true, force: true });
  });
});
