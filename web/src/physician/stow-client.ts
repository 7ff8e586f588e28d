/**
 * One batch of a CD to the hub: STOW-RS into the case (`POST /dicomweb/studies?case=<id>`,
 * docs/api.md, "STOW-RS into a case"), with the person's token, and the hub's answer per file. A
 * busy hub (503) or a dropped connection is tried again a few times; a refusal of the whole request
 * (the case is not theirs, not active, the sign-in is gone) stops the upload, since every later batch
 * would get the same answer.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { currentSession } from '../auth.ts';
import { hubFetch } from '../fhir.ts';
import { multipartBody, readStoreResponse } from './dicom-files.ts';
import type { DicomFile, SkippedFile } from './dicom-files.ts';

const ATTEMPTS = 3;

export interface BatchResult {
  stored: DicomFile[];
  refused: SkippedFile[];
  /** Set when the upload should stop: why, in words. */
  stop?: string;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The words of a refused request: its OperationOutcome's text, else its text, else the status. */
async function refusalText(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const outcome = JSON.parse(text) as OperationOutcome;
    const words = (outcome.issue ?? []).map((issue) => issue.details?.text ?? issue.diagnostics).filter(Boolean);
    if (words.length > 0) {
      return words.join('; ');
    }
  } catch {
    // Not JSON: the hub's plain-text refusal.
  }
  return text.trim() === '' ? `The hub answered HTTP ${response.status}` : text.trim().slice(0, 300);
}

function refuseAll(batch: readonly DicomFile[], reason: string, stop?: string): BatchResult {
  return { stored: [], refused: batch.map((instance) => ({ path: instance.path, reason })), ...(stop ? { stop } : {}) };
}

export async function sendBatch(serviceRequestId: string, batch: readonly DicomFile[]): Promise<BatchResult> {
  for (let attempt = 1; ; attempt++) {
    // An expired sign-in would take the browser to the login page mid-upload: stop here instead.
    if (currentSession() === undefined) {
      const stop = 'Your sign-in has expired: sign in again and send the folder again (what is stored stays stored).';
      return refuseAll(batch, 'Not sent: the sign-in expired', stop);
    }
    const { body, contentType } = multipartBody(batch);
    let response: Response;
    try {
      response = await hubFetch(`/dicomweb/studies?case=${encodeURIComponent(serviceRequestId)}`, {
        method: 'POST',
        headers: { 'content-type': contentType, accept: 'application/dicom+json' },
        body,
      });
    } catch {
      if (attempt < ATTEMPTS) {
        await wait(1_000 * attempt);
        continue;
      }
      return refuseAll(batch, 'Not sent: the connection to the hub failed');
    }
    if (response.status === 503 && attempt < ATTEMPTS) {
      await wait(2_000 * attempt);
      continue;
    }
    const isStoreResponse = (response.headers.get('content-type') ?? '').startsWith('application/dicom+json');
    if (isStoreResponse && [200, 202, 409, 503].includes(response.status)) {
      const { stored, failed } = readStoreResponse(await response.json());
      const result: BatchResult = { stored: [], refused: [] };
      for (const instance of batch) {
        if (stored.has(instance.sopInstanceUid)) {
          result.stored.push(instance);
        } else {
          result.refused.push({
            path: instance.path,
            reason: failed.get(instance.sopInstanceUid) ?? 'The hub did not store it and said nothing of it',
          });
        }
      }
      return result;
    }
    const text = await refusalText(response);
    return refuseAll(batch, `Refused by the hub: ${text}`, response.status >= 500 ? undefined : text);
  }
}
