/**
 * The DIMSE listener: a TCP server bound to one host only (never every interface), TCP_NODELAY on
 * every connection, one {@link Association} per connection, and a shutdown that stops accepting, lets
 * running associations finish for a grace period, then aborts the rest.
 */
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from '../../logger.ts';
import { Association } from './association.ts';
import type { AssociationRejected, OnFind, StoreHandler } from './association.ts';

export type {
  AssociationPeer,
  AssociationRejected,
  DataSetSink,
  FindRequest,
  FindResponse,
  OnFind,
  StoreHandler,
  StoreRequest,
  StoreResult,
} from './association.ts';

export interface DimseServerOptions {
  host: string;
  /** 0 picks a free port; the chosen one is returned. */
  port: number;
  aeTitle: string;
  /**
   * Calling AE titles allowed to associate; undefined allows any. The calling AE title is all a peer's
   * identity is: no per-role access policy applies over DIMSE (a C-FIND sees every study).
   */
  allowedCallingAeTitles?: readonly string[] | undefined;
  /** Told of every association refused (the audit trail, audit-trail.ts). */
  onRejected?: ((rejection: AssociationRejected) => void) | undefined;
  /** Where C-STORE data sets go while they arrive, and how they are stored. */
  store: StoreHandler;
  /** Answers C-FIND (Study/Patient Root); without it the query models are not negotiated. */
  onFind?: OnFind | undefined;
  logger: Logger;
  /** Maximum PDU length we receive (PS3.8 §D.1), announced in the A-ASSOCIATE-AC; 4096 to 64 MiB. */
  maxPduLength: number;
  artimTimeoutMs?: number | undefined;
  idleTimeoutMs?: number | undefined;
  /** How long `close()` lets running associations finish before aborting them. */
  closeGraceMs?: number | undefined;
  /**
   * Associations open at once (waiting for their A-ASSOCIATE-RQ included); one more is rejected with
   * local-limit-exceeded (transient), and connections beyond twice this are closed unanswered.
   */
  maxAssociations?: number | undefined;
}

export const DEFAULT_MAX_ASSOCIATIONS = 64;

export interface DimseServer {
  port: number;
  close(): Promise<void>;
}

export async function startDimseServer(options: DimseServerOptions): Promise<DimseServer> {
  // PS3.8 §D.1 allows 0 (unlimited), but then one PDU could be 4 GiB held in memory.
  if (!Number.isInteger(options.maxPduLength) || options.maxPduLength < 4096 || options.maxPduLength > 1 << 26) {
    throw new RangeError(`maxPduLength must be between 4096 and ${1 << 26}`);
  }
  const associations = new Set<Association>();
  const maxAssociations = options.maxAssociations ?? DEFAULT_MAX_ASSOCIATIONS;
  if (!Number.isInteger(maxAssociations) || maxAssociations < 1) {
    throw new RangeError('maxAssociations must be a positive integer');
  }
  let nextAssociationId = 1;
  const associationOptions = {
    aeTitle: options.aeTitle,
    allowedCallingAeTitles: options.allowedCallingAeTitles,
    onRejected: options.onRejected,
    store: options.store,
    onFind: options.onFind,
    logger: options.logger,
    maxPduLength: options.maxPduLength,
    artimTimeoutMs: options.artimTimeoutMs ?? 30_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 120_000,
  };
  const server = createServer({ noDelay: true }, (socket: Socket) => {
    socket.setNoDelay(true);
    const id = nextAssociationId++;
    const logger = options.logger.child({ association: id, peer: `${socket.remoteAddress}:${socket.remotePort}` });
    // Counted before this one joins: an association over the limit is answered (A-ASSOCIATE-RJ) and closed.
    const overLimit = associations.size >= maxAssociations;
    const association = new Association(socket, { ...associationOptions, id, overLimit }, logger);
    associations.add(association);
    void association.finished.then(() => associations.delete(association));
  });
  // Each connection over the limit still costs a socket until its rejection: bounded as well.
  server.maxConnections = maxAssociations * 2;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => options.logger.error({ err: error }, 'DIMSE listener error'));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  options.logger.info({ host: options.host, port, aeTitle: options.aeTitle }, 'DIMSE listener started');

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    const running = () => Promise.all([...associations].map((association) => association.finished));
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>(
      (resolve) => (graceTimer = setTimeout(() => resolve('timeout'), options.closeGraceMs ?? 10_000)),
    );
    const outcome = await Promise.race([running(), graceOver]);
    clearTimeout(graceTimer);
    if (outcome === 'timeout') {
      options.logger.warn({ associations: associations.size }, 'aborting associations still running at shutdown');
      for (const association of associations) {
        association.abort();
      }
      // A store handler that never settles must not hold the shutdown forever.
      const abortGrace = new Promise<'timeout'>((resolve) => (graceTimer = setTimeout(() => resolve('timeout'), 2000)));
      if ((await Promise.race([running(), abortGrace])) === 'timeout') {
        options.logger.error('associations still busy after abort');
      }
      clearTimeout(graceTimer);
    }
    await stopped;
  }
  return {
    port,
    close: () => (closing ??= close()),
  };
}
