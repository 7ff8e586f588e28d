/**
 * The association's C-FIND plumbing against dcmtk's findscu, with handlers written for the test:
 * C-CANCEL-RQ stops an endless stream of matches, the negotiated
 * transfer syntax reaches the handler, a handler that fails mid-stream answers 0xC000, and a
 * server without a C-FIND handler does not accept the query model.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/logger.ts';
import { writeDataset } from '../src/dicom/dataset-writer.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../src/dicom/part10.ts';
import { CommandField, Status, encodeRequest } from '../src/dicom/dimse/command-set.ts';
import { APPLICATION_CONTEXT_NAME, PduType, encodeAssociateRq, encodePData } from '../src/dicom/dimse/pdu.ts';
import type { ProposedPresentationContext } from '../src/dicom/dimse/pdu.ts';
import { startDimseServer } from '../src/dicom/dimse/server.ts';
import type { DimseServer, FindRequest, FindResponse, OnFind, StoreHandler } from '../src/dicom/dimse/server.ts';
import { RawPeer, runDcmtk } from './support/dicom/test-peer.ts';
import { until } from './support/until.ts';

const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const PEER_MAX_PDU = 16384;

/** C-STORE is not used here: every data set is dropped. */
const NO_STORE: StoreHandler = {
  begin: async () => ({ write: async () => undefined, abort: async () => undefined }),
  complete: async () => ({ status: Status.success }),
};

function match(request: FindRequest, index: number): Buffer {
  return writeDataset(
    [
      { tag: '00080052', vr: 'CS', value: 'STUDY' },
      { tag: '0020000D', vr: 'UI', value: `1.2.826.0.1.3680043.10.1.${index}` },
    ],
    { explicitVr: request.transferSyntaxUid === EXPLICIT_VR_LITTLE_ENDIAN },
  );
}

describe('C-FIND over an association', () => {
  let workDir: string;
  let server: DimseServer;
  let bare: DimseServer;
  let requests: FindRequest[] = [];
  let closedStreams = 0;
  let behaviour: 'endless' | 'fail-after-two' | 'fast-and-large' = 'endless';

  const onFind: OnFind = async function* (request): AsyncGenerator<FindResponse, FindResponse, undefined> {
    requests.push(request);
    try {
      for (let index = 1; ; index++) {
        if (behaviour === 'fail-after-two' && index > 2) {
          throw new Error('the index went away');
        }
        if (behaviour === 'fast-and-large') {
          yield {
            status: 0xff00,
            identifier: Buffer.concat([
              match(request, index),
              writeDataset([{ tag: '00081030', vr: 'LO', value: 'x'.repeat(60_000) }], { explicitVr: true }),
            ]),
          };
          continue;
        }
        // A slow source: the C-CANCEL-RQ arrives while matches are still coming (time, on purpose).
        await new Promise((resolve) => setTimeout(resolve, 10));
        yield { status: 0xff00, identifier: match(request, index) };
      }
    } finally {
      closedStreams++;
    }
  };

  const findscu = async (port: number, extra: string[]) => {
    const outDir = await mkdtemp(join(workDir, 'find-'));
    const result = await runDcmtk(
      'findscu',
      [
        '-v',
        '-S',
        ...extra,
        '-X',
        '-od',
        outDir,
        '-aet',
        'FINDSCU',
        '-aec',
        'HUB',
        '127.0.0.1',
        String(port),
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        'StudyInstanceUID',
      ],
      10_000,
    );
    return {
      code: result.code,
      finals: [...result.output.matchAll(/Received Final Find Response \(([^)]*)\)/g)].map((found) => found[1]),
      extracted: (await readdir(outDir)).length,
      output: result.output,
    };
  };

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'dimse-find-'));
    const common = {
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'HUB',
      logger: createLogger(process.env.DIMSE_TEST_LOG ?? 'silent'),
      maxPduLength: 65536,
      store: NO_STORE,
    };
    server = await startDimseServer({ ...common, onFind, idleTimeoutMs: 3000 });
    bare = await startDimseServer(common);
  });

  afterAll(async () => {
    await server?.close();
    await bare?.close();
    await rm(workDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    requests = [];
    closedStreams = 0;
    behaviour = 'endless';
  });

  test('C-CANCEL-RQ ends an endless stream with 0xFE00 and closes the handler', async () => {
    // findscu counts --cancel over the whole association, so one query per run.
    const outcome = await findscu(server.port, ['--cancel', '2']);
    expect(outcome.code).toBe(0);
    expect(outcome.finals).toEqual(['Cancel: MatchingTerminatedDueToCancelRequest']);
    expect(outcome.output).toMatch(/Releasing Association/);
    expect(requests).toHaveLength(1);
    expect(closedStreams).toBe(1);
    // findscu cancels after its second response; one more may already be on the wire.
    expect(outcome.extracted).toBeGreaterThanOrEqual(2);
  });

  test('the identifier arrives in the negotiated transfer syntax', async () => {
    await findscu(server.port, ['-xi', '--cancel', '1']);
    await findscu(server.port, ['-xe', '--cancel', '1']);
    expect(requests.map((request) => request.transferSyntaxUid)).toEqual([
      IMPLICIT_VR_LITTLE_ENDIAN,
      EXPLICIT_VR_LITTLE_ENDIAN,
    ]);
    expect(requests.map((request) => [request.sopClassUid, request.callingAeTitle, request.calledAeTitle])).toEqual([
      ['1.2.840.10008.5.1.4.1.2.2.1', 'FINDSCU', 'HUB'],
      ['1.2.840.10008.5.1.4.1.2.2.1', 'FINDSCU', 'HUB'],
    ]);
  });

  test('a handler failing mid-stream answers 0xC000 after the matches it gave, and the association goes on', async () => {
    behaviour = 'fail-after-two';
    const outcome = await findscu(server.port, ['--repeat', '2']);
    expect(outcome.finals).toEqual(['Failed: UnableToProcess', 'Failed: UnableToProcess']);
    expect(outcome.extracted).toBe(4);
    expect(closedStreams).toBe(2);
  });

  test('without a C-FIND handler the query model is not negotiated', async () => {
    const outcome = await findscu(bare.port, []);
    expect(outcome.code).not.toBe(0);
    expect(outcome.output).toMatch(/No Acceptable Presentation Contexts/i);
    expect(outcome.finals).toEqual([]);
  });

  /** A raw requestor associated with a Study Root FIND context (1) and a CT storage context (3), Explicit VR LE. */
  const rawAssociation = async (): Promise<RawPeer> => {
    const peer = await RawPeer.connect(server.port);
    const contexts: ProposedPresentationContext[] = [
      { id: 1, abstractSyntaxUid: STUDY_ROOT_FIND, transferSyntaxUids: [EXPLICIT_VR_LITTLE_ENDIAN] },
      { id: 3, abstractSyntaxUid: CT, transferSyntaxUids: [EXPLICIT_VR_LITTLE_ENDIAN] },
    ];
    await peer.send(
      encodeAssociateRq({
        calledAeTitle: 'HUB',
        callingAeTitle: 'RAW',
        applicationContextName: APPLICATION_CONTEXT_NAME,
        presentationContexts: contexts,
        userInformation: {
          maxPduLength: PEER_MAX_PDU,
          implementationClassUid: '1.2.3.4',
          implementationVersionName: 'RAWPEER',
        },
      }),
    );
    expect((await peer.nextPdu())?.type).toBe(PduType.associateAc);
    return peer;
  };
  const findRequest = (contextId: number, messageId: number, sopClassUid: string, identifier: Buffer): Buffer =>
    Buffer.concat([
      ...encodePData(
        contextId,
        true,
        encodeRequest({
          commandField: CommandField.cFindRq,
          messageId,
          affectedSopClassUid: sopClassUid,
          priority: 0,
          hasDataSet: true,
        }),
        PEER_MAX_PDU,
      ),
      ...encodePData(contextId, false, identifier, PEER_MAX_PDU),
    ]);
  const studyIdentifier = writeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }], { explicitVr: true });

  test('C-FIND on a storage context is refused with 0x0122, an oversized identifier with 0xA700; the association goes on', async () => {
    const peer = await rawAssociation();
    try {
      await peer.send(findRequest(3, 1, CT, studyIdentifier));
      expect((await peer.nextCommand()).command).toMatchObject({
        commandField: CommandField.cFindRsp,
        messageIdBeingRespondedTo: 1,
        status: Status.sopClassNotSupported,
      });
      const huge = writeDataset([{ tag: '00081030', vr: 'UT', value: 'x'.repeat(1_100_000) }], { explicitVr: true });
      await peer.send(findRequest(1, 2, STUDY_ROOT_FIND, huge));
      expect((await peer.nextCommand()).command).toMatchObject({
        commandField: CommandField.cFindRsp,
        messageIdBeingRespondedTo: 2,
        status: Status.outOfResources,
      });
      expect(requests).toHaveLength(0);
    } finally {
      peer.socket.destroy();
    }
  });

  test('a peer that stops reading the responses is disconnected after the idle timeout, and the handler closed', async () => {
    behaviour = 'fast-and-large';
    const peer = await rawAssociation();
    peer.socket.pause();
    await peer.send(findRequest(1, 1, STUDY_ROOT_FIND, studyIdentifier));
    await until(async () => closedStreams > 0, 'the handler to be closed', 20_000, 50);
    expect(closedStreams).toBe(1);
    peer.socket.resume();
    await peer.waitClosed(10_000);
    expect(peer.closed).toBe(true);
  }, 30_000);
});
