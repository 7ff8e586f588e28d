/**
 * Outgoing e-mail. With SMTP_URL the hub hands each message to that server; without it (the
 * development default) each message is written as an .eml file under `${DATA_DIR}/mail/`, synced to
 * disk before the send counts as done. The file is named after the Message-ID, so sending the same
 * message twice leaves one file.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';

export interface OutgoingMail {
  /** A bare address: never a display name, which could be a patient's name. */
  to: string;
  subject: string;
  text: string;
  html: string;
  /** `<local@domain>`, the same on every try of one notification (receivers dedupe by it). */
  messageId: string;
}

export interface MailReceipt {
  messageId: string;
  /** Where it went: `smtp` or the .eml file's path. */
  deliveredTo: string;
}

export interface Mailer {
  /** The domain of MAIL_FROM, the right-hand side of the Message-IDs the hub makes. */
  readonly domain: string;
  send(mail: OutgoingMail): Promise<MailReceipt>;
  close(): void;
}

/** Raised for a refusal that retrying will not change (an SMTP 5xx reply). */
export class PermanentMailError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentMailError';
  }
}

export interface MailerOptions {
  /** smtp:// or smtps:// URL; unset writes .eml files under `${dataDir}/mail`. */
  smtpUrl?: string;
  from: string;
  dataDir: string;
}

const SMTP_TIMEOUT_MS = 30_000;

/** The domain part of an address such as `Hub <no-reply@example.org>`. */
export function mailDomain(from: string): string {
  return /@([^\s<>@]+?)>?\s*$/.exec(from)?.[1]?.toLowerCase() ?? 'localhost';
}

export function createMailer(options: MailerOptions): Mailer {
  return options.smtpUrl
    ? smtpMailer(options.smtpUrl, options.from)
    : fileMailer(path.join(options.dataDir, 'mail'), options.from);
}

const HEADERS = {
  // RFC 3834: automatic messages, so auto-responders stay quiet.
  'Auto-Submitted': 'auto-generated',
};

function smtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    connectionTimeout: SMTP_TIMEOUT_MS,
    greetingTimeout: SMTP_TIMEOUT_MS,
    socketTimeout: SMTP_TIMEOUT_MS,
  });
  return {
    domain: mailDomain(from),
    async send(mail) {
      try {
        await transport.sendMail({ from, ...mail, headers: HEADERS });
      } catch (err) {
        const smtpError = err as Error & { permanent?: boolean };
        throw smtpError.permanent ? new PermanentMailError(smtpError.message) : smtpError;
      }
      return { messageId: mail.messageId, deliveredTo: 'smtp' };
    },
    close() {
      transport.close();
    },
  };
}

function fileMailer(directory: string, from: string): Mailer {
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  return {
    domain: mailDomain(from),
    async send(mail) {
      const info = await transport.sendMail({ from, ...mail, headers: HEADERS });
      const file = path.join(directory, `${mail.messageId.replace(/[^A-Za-z0-9@.-]/g, '')}.eml`);
      await writeDurably(file, info.message as Buffer);
      return { messageId: mail.messageId, deliveredTo: file };
    },
    close() {
      transport.close();
    },
  };
}

/** Writes via a temporary file, fsyncs it, renames it into place and fsyncs the directory. */
async function writeDurably(file: string, content: Buffer): Promise<void> {
  const directory = path.dirname(file);
  await fs.mkdir(directory, { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await fs.open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporary, file);
  const dir = await fs.open(directory, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
