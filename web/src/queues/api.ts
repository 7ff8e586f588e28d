/**
 * The hub's queue view (/admin/queues, docs/operations.md "Queues") as the signed-in person: counts
 * per queue, the dead letters, a retry; and the hand-over that opens Bull Board for an admin. Its
 * answers are plain JSON, its refusals `{ error, error_description }`: shown in those words.
 */
import { ApiError, hubFetch } from '../fhir.ts';

export interface QueueCounts {
  name: string;
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
  deadLettered: number;
}

export interface QueueOverview {
  queues: QueueCounts[];
  deadLetter: { total: number };
}

/** One job that ran out of tries (src/queues/dead-letter.ts): ids only, its error redacted. */
export interface DeadLetterEntry {
  id: string;
  queue: string;
  jobId: string;
  jobName: string;
  data: Record<string, unknown> | null;
  attempts: number;
  error: string;
  failedAt: string;
}

export const QUEUES_PATH = '/admin/queues';
export const BULL_BOARD_PATH = '/admin/queues/board';

async function refusal(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => undefined)) as
    { error?: string; error_description?: string; detail?: string } | undefined;
  const words = [body?.error_description ?? body?.error, body?.detail].filter(
    (text): text is string => typeof text === 'string' && text !== '',
  );
  return new ApiError(
    response.status,
    words.length > 0 ? words.join(': ') : `The hub answered HTTP ${response.status}.`,
  );
}

async function queueJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await hubFetch(path, { ...init, headers: { accept: 'application/json' } });
  if (!response.ok) {
    throw await refusal(response);
  }
  return (await response.json()) as T;
}

export function queueOverview(): Promise<QueueOverview> {
  return queueJson<QueueOverview>(QUEUES_PATH);
}

export async function deadLetters(): Promise<DeadLetterEntry[]> {
  return (await queueJson<{ entries: DeadLetterEntry[] }>(`${QUEUES_PATH}/dead-letter`)).entries;
}

export function retryDeadLetter(id: string): Promise<{ retried: boolean; queue: string; jobId: string }> {
  return queueJson(`${QUEUES_PATH}/dead-letter/${encodeURIComponent(id)}/retry`, { method: 'POST' });
}

/** Trades the admin's token for the board's own pass, kept in its cookie (a browser tab cannot send a bearer token). */
export async function openBoardSession(): Promise<void> {
  const response = await hubFetch(`${BULL_BOARD_PATH}/session`, { method: 'POST' });
  if (!response.ok) {
    throw await refusal(response);
  }
}
