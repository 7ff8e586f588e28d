/** STOW-RS from the tests' side: Part 10 files as one multipart/related request to a hub. */
import { writeMultipartRelated } from '../../src/dicom/multipart.ts';

/** The request body for these files, one application/dicom part each, and its Content-Type. */
export async function stowBody(files: Buffer[]): Promise<{ contentType: string; bytes: Uint8Array }> {
  const multipart = writeMultipartRelated(
    files.map((body) => ({ body, contentType: 'application/dicom' })),
    { type: 'application/dicom' },
  );
  const chunks: Buffer[] = [];
  for await (const chunk of multipart.body) {
    chunks.push(chunk as Buffer);
  }
  return { contentType: multipart.contentType, bytes: new Uint8Array(Buffer.concat(chunks)) };
}

/**
 * POSTs the files to `<baseUrl>/dicomweb/studies<query>` (with `headers`, a token say; `query` such as
 * `?case=<id>`); the answer is unread.
 */
export async function stow(
  baseUrl: string,
  files: Buffer[],
  headers: Record<string, string> = {},
  query = '',
): Promise<Response> {
  const { contentType, bytes } = await stowBody(files);
  return fetch(`${baseUrl}/dicomweb/studies${query}`, {
    method: 'POST',
    headers: { ...headers, 'content-type': contentType, accept: 'application/dicom+json' },
    body: bytes,
  });
}
