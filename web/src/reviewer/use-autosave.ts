/**
 * Saving as one types: a save runs once the person has paused (debounced), one at a time, always
 * with the latest text; `flush` saves at once (before a submission). A failed save keeps the text
 * unsaved and says so; the browser asks before leaving a page with unsaved text.
 */
import { useCallback, useEffect, useRef, useState } from 'react';

export type SaveStatus = 'saved' | 'unsaved' | 'saving' | 'failed';

export interface Autosave<T> {
  status: SaveStatus;
  savedAt: Date | undefined;
  error: unknown;
  /** The value changed: save it once the person pauses. */
  change: (value: T) => void;
  /** Save now whatever is unsaved; resolves once saved, rejects if the save failed. */
  flush: () => Promise<void>;
}

export function useAutosave<T>(save: (value: T) => Promise<void>, initial: T, delayMs: number): Autosave<T> {
  const latest = useRef(initial);
  const dirty = useRef(false);
  const running = useRef<Promise<void> | undefined>(undefined);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const saveRef = useRef(save);
  saveRef.current = save;
  const [status, setStatus] = useState<SaveStatus>('saved');
  const [savedAt, setSavedAt] = useState<Date>();
  const [error, setError] = useState<unknown>();

  const run = useCallback(async (): Promise<void> => {
    while (running.current !== undefined) {
      await running.current.catch(() => undefined);
    }
    if (!dirty.current) {
      return;
    }
    const attempt = (async () => {
      while (dirty.current) {
        dirty.current = false;
        setStatus('saving');
        try {
          await saveRef.current(latest.current);
        } catch (err) {
          dirty.current = true;
          setError(err);
          setStatus('failed');
          throw err;
        }
      }
      setError(undefined);
      setSavedAt(new Date());
      setStatus('saved');
    })();
    running.current = attempt;
    try {
      await attempt;
    } finally {
      running.current = undefined;
    }
  }, []);

  const change = useCallback(
    (value: T) => {
      latest.current = value;
      dirty.current = true;
      setStatus((previous) => (previous === 'saving' ? previous : 'unsaved'));
      clearTimeout(timer.current);
      timer.current = setTimeout(() => void run().catch(() => undefined), delayMs);
    },
    [delayMs, run],
  );

  const flush = useCallback(async () => {
    clearTimeout(timer.current);
    await run();
  }, [run]);

  useEffect(() => {
    const warn = (event: BeforeUnloadEvent) => {
      if (dirty.current || running.current !== undefined) {
        event.preventDefault();
      }
    };
    window.addEventListener('beforeunload', warn);
    return () => {
      window.removeEventListener('beforeunload', warn);
      clearTimeout(timer.current);
      // Leaving the editor (another tab of the case) saves what is pending rather than drop it.
      if (dirty.current) {
        void run().catch(() => undefined);
      }
    };
  }, [run]);

  return { status, savedAt, error, change, flush };
}
