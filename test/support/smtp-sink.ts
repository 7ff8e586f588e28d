/**
 * A real SMTP server for tests (the `smtp-server` package): it accepts every message and keeps it,
 * or, for the messages `stall` picks, reads the whole message and then never answers the end of
 * DATA, as a slow or hung mail server would, so a test can kill the sender in the middle of a send.
 */
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface ReceivedMail {
  raw: string;
  /** The Message-ID header, with its angle brackets. */
  messageId: string | undefined;
  recipients: string[];
}

export interface SmtpSink {
  url: string;
  /** Messages the server answered 250 to. */
  accepted: ReceivedMail[];
  /** Messages received but never answered. */
  stalled: ReceivedMail[];
  /** Decides, per received message, whether to stall it; default accepts all. */
  stall: (mail: ReceivedMail) => boolean;
  /** Answers 250 to every stalled message (they move to `accepted`). */
  release(): void;
  /** Resolves when `accepted.length + stalled.length` reaches `count`. */
  waitForMessages(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function headerValue(raw: string, name: string): string | undefined {
  const [head = ''] = raw.split(/\r?\n\r?\n/, 1);
  const headers = head.replace(/\r?\n[ \t]+/g, ' ');
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(headers)?.[1]?.trim();
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const waiters: { count: number; resolve: () => void }[] = [];
  const held: { mail: ReceivedMail; accept: () => void }[] = [];
  const sink: SmtpSink = {
    url: '',
    accepted: [],
    stalled: [],
    stall: () => false,
    release: () => {
      for (const { mail, accept } of held.splice(0)) {
        sink.stalled.splice(sink.stalled.indexOf(mail), 1);
        sink.accepted.push(mail);
        accept();
      }
    },
    waitForMessages: (count, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        if (sink.accepted.length + sink.stalled.length >= count) {
          resolve();
          return;
        }
        const timer = setTimeout(
          () => reject(new Error(`SMTP sink: ${count} message(s) not received within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
    close: async () => undefined,
  };
  const notify = (): void => {
    for (const waiter of [...waiters]) {
      if (sink.accepted.length + sink.stalled.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    closeTimeout: 1000,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const mail: ReceivedMail = {
          raw,
          messageId: headerValue(raw, 'Message-ID'),
          recipients: session.envelope.rcptTo.map((address) => address.address),
        };
        if (sink.stall(mail)) {
          sink.stalled.push(mail);
          held.push({ mail, accept: () => callback() });
        } else {
          sink.accepted.push(mail);
          callback();
        }
        notify();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  sink.url = `smtp://127.0.0.1:${port}`;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}
