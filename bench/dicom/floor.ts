/**
 * The durable floor: a server that does only what the hub's acknowledgement promises, and nothing
 * else, so that `bench:dicom` can show how fast any server keeping that promise can ingest on this
 * machine, in one of two layouts:
 * - `files` (the hub's layout before issue 16): each received instance becomes a blob through the
 *   hub's own FileBlobStore (a temp file written and synced, renamed to its SHA-256 and its
 *   directory synced) and one committed row in PostgreSQL (synchronous commit, as the hub runs);
 * - `wal`: each instance's bytes travel in its row, so one commit (one WAL flush) makes both
 *   durable; what would install them as files afterwards is left out, being behind the answer;
 * - `journal` (issue 16's other candidate, not the hub's): each instance's bytes and its row's
 *   values are appended to a journal file of our own, written through once before (so that an
 *   append flushes only data) and opened O_DSYNC, while its row is inserted with an asynchronous
 *   commit; the instance is acknowledged once both are done. A crash would be recovered by
 *   replaying the journal into the database, which this floor leaves out, as it does the journal's
 *   reuse (it wraps around) and installing files.
 * Only then is the instance acknowledged. No parsing, no index, no DICOM JSON, no ImagingStudy, no audit.
 *   node bench/dicom/floor.ts <databaseUrl> <dataDir> <dimsePort> <httpPort> [files|wal|journal]
 * C-STORE on <dimsePort> (our DIMSE layer, any calling and called AE title), STOW-RS on
 * http://127.0.0.1:<httpPort>/dicomweb/studies (a 200 with an empty JSON object per request, after
 * every part is stored), and GET /count, the rows stored. Prints "ready" when both listen.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { startDimseServer } from '../../src/dicom/dimse/server.ts';
import type { DataSetSink } from '../../src/dicom/dimse/server.ts';
import { parseMultipartRelatedContentType, readMultipart } from '../../src/dicom/multipart.ts';
import type { ReceivedPart } from '../../src/dicom/multipart.ts';
import { FileBlobStore } from '../../src/storage/blob-store.ts';
import type { BlobWriter, StoredBlob } from '../../src/storage/blob-store.ts';

const [databaseUrl, dataDir, dimsePort, httpPort, layout = 'files'] = process.argv.slice(2);
if (!databaseUrl || !dataDir || !dimsePort || !httpPort || !['files', 'wal', 'journal'].includes(layout)) {
  throw new Error('usage: floor.ts <databaseUrl> <dataDir> <dimsePort> <httpPort> [files|wal|journal]');
}

const db = new pg.Pool({
  connectionString: databaseUrl,
  max: 4,
  // The journal makes the acknowledged instance durable; the row need only be visible.
  ...(layout === 'journal' ? { options: '-c synchronous_commit=off' } : {}),
});
await db.query('CREATE TABLE IF NOT EXISTS floor_instance (blob_key text NOT NULL, size bigint NOT NULL, bytes bytea)');
// As the hub's staging table: no compression (pixel data barely compresses, and it costs CPU).
await db.query('ALTER TABLE floor_instance ALTER COLUMN bytes SET STORAGE EXTERNAL');
const blobs = new FileBlobStore(path.join(dataDir, 'blobs'));

/** The journal's size; appends wrap around to its start, the corpus being far smaller. */
const JOURNAL_BYTES = 256 * 1024 * 1024;
const journalFd = layout === 'journal' ? openJournal(path.join(dataDir, 'journal')) : -1;
let journalEnd = 0;

function openJournal(file: string): number {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written through and synced once, so that an append overwrites allocated blocks: a data-only flush.
  const zeros = Buffer.alloc(1024 * 1024);
  const fd = fs.openSync(file, 'w');
  for (let written = 0; written < JOURNAL_BYTES; written += zeros.length) {
    fs.writeSync(fd, zeros);
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_DSYNC);
}

/** One O_DSYNC write of these instances' records: a header line with the row's values, then the bytes. */
function appendToJournal(stored: Received[]): Promise<void> {
  const records = stored.flatMap((blob) => [
    Buffer.from(`${JSON.stringify({ key: blob.key, size: blob.size })}\n`),
    blob.bytes ?? Buffer.alloc(0),
  ]);
  const length = records.reduce((sum, record) => sum + record.length, 0);
  if (journalEnd + length > JOURNAL_BYTES) {
    journalEnd = 0;
  }
  const at = journalEnd;
  journalEnd += length;
  return new Promise((resolve, reject) => {
    fs.writev(journalFd, records, at, (error) => (error ? reject(error) : resolve()));
  });
}

interface Received extends StoredBlob {
  bytes?: Buffer | undefined;
}

async function commitRows(stored: Received[]): Promise<void> {
  const journaled = layout === 'journal' ? appendToJournal(stored) : undefined;
  await db.query(
    'INSERT INTO floor_instance (blob_key, size, bytes) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])',
    [
      stored.map((blob) => blob.key),
      stored.map((blob) => blob.size),
      // In the journal layout the bytes are in the journal (an installer would make them files).
      stored.map((blob) => (layout === 'wal' ? (blob.bytes ?? null) : null)),
    ],
  );
  await journaled;
}

/** `files`: the synced, installed blob; otherwise the bytes themselves, for the row or the journal (a spilled one installed as a file). */
async function receive(writer: BlobWriter): Promise<Received> {
  const staged = await writer.stage();
  if (layout !== 'files' && staged.bytes !== undefined) {
    return { key: staged.key, size: staged.size, bytes: staged.bytes };
  }
  return staged.commit();
}

interface FloorSink extends DataSetSink {
  writer: BlobWriter;
}

await startDimseServer({
  host: '127.0.0.1',
  port: Number(dimsePort),
  aeTitle: 'FLOOR',
  maxPduLength: 1 << 20,
  logger: pino({ level: 'warn' }),
  store: {
    async begin() {
      const writer = blobs.createWriter();
      return { writer, write: (chunk: Buffer) => writer.write(chunk), abort: () => writer.abort() } satisfies FloorSink;
    },
    async complete(_request, sink: FloorSink) {
      await commitRows([await receive(sink.writer)]);
      return { status: 0 };
    },
    async end() {},
  },
  // The DIMSE layer checks the called AE title; the bench calls this one FLOOR.
});

/** Parts stored at once per request, as the hub's STOW-RS does. */
const PART_CONCURRENCY = 4;

async function stow(req: http.IncomingMessage): Promise<void> {
  const { boundary } = parseMultipartRelatedContentType(req.headers['content-type']);
  const stored: Received[] = [];
  const running = new Set<Promise<void>>();
  await readMultipart(req, { boundary }, async (part: ReceivedPart) => {
    while (running.size >= PART_CONCURRENCY) {
      await Promise.race(running);
    }
    const writer = blobs.createWriter();
    for await (const chunk of part.body) {
      await writer.write(chunk as Buffer);
    }
    const commit = receive(writer)
      .then((blob) => void stored.push(blob))
      .finally(() => running.delete(commit));
    running.add(commit);
  });
  await Promise.all(running);
  if (stored.length > 0) {
    await commitRows(stored);
  }
}

const server = http.createServer((req, res) => {
  const answer = (status: number, body: object): void => {
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  };
  if (req.method === 'POST' && req.url === '/dicomweb/studies') {
    stow(req).then(
      () => answer(200, {}),
      (error: unknown) => answer(500, { error: String(error) }),
    );
  } else if (req.method === 'GET' && req.url === '/count') {
    db.query<{ n: string }>('SELECT count(*) AS n FROM floor_instance').then(
      (result) => answer(200, { instances: Number(result.rows[0]!.n) }),
      (error: unknown) => answer(500, { error: String(error) }),
    );
  } else {
    answer(404, {});
  }
});
await new Promise<void>((resolve) => server.listen(Number(httpPort), '127.0.0.1', resolve));
console.log('ready');
