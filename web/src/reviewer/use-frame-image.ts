/**
 * The rendered frames of one series as blob: URLs (fetched with the person's token; an <img src>
 * could not send it), kept in a small cache of the viewer's own so that scrolling back and forth
 * does not fetch again, with the neighbours fetched ahead. The frame shown stays on screen until the
 * next one has arrived, so scrolling does not flicker. Everything is revoked when the viewer goes:
 * nothing outlives the series on screen (or the person, at sign-out).
 */
import { useEffect, useRef, useState } from 'react';
import { blobUrl } from '../fhir.ts';

/** Frames kept per viewer: a few screens' worth of scrolling either way. */
const CACHE_SIZE = 48;
const ACCEPT = 'image/jpeg';

export interface FrameImage {
  /** The frame on screen: its path and blob: URL. */
  shown: { path: string; url: string } | undefined;
  /** The frame asked for has not arrived yet. */
  loading: boolean;
  error: unknown;
}

export function useFrameImage(path: string, ahead: readonly string[]): FrameImage {
  const cache = useRef(new Map<string, Promise<string>>());
  const shownPath = useRef<string | undefined>(undefined);
  const [state, setState] = useState<FrameImage>({ shown: undefined, loading: true, error: undefined });

  useEffect(() => {
    const entries = cache.current;
    return () => {
      for (const url of entries.values()) {
        url.then(URL.revokeObjectURL, () => undefined);
      }
      entries.clear();
    };
  }, []);

  const aheadKey = ahead.join('\n');
  useEffect(() => {
    const entries = cache.current;
    const load = (wanted: string): Promise<string> => {
      let url = entries.get(wanted);
      if (url === undefined) {
        url = blobUrl(wanted, ACCEPT);
        // A refusal is not kept: the next look asks the hub again.
        url.catch(() => entries.delete(wanted));
      } else {
        entries.delete(wanted);
      }
      entries.set(wanted, url);
      for (const [oldest, oldUrl] of entries) {
        if (entries.size <= CACHE_SIZE) {
          break;
        }
        if (oldest !== shownPath.current && oldest !== wanted) {
          entries.delete(oldest);
          oldUrl.then(URL.revokeObjectURL, () => undefined);
        }
      }
      return url;
    };
    let current = true;
    setState((previous) => ({ ...previous, loading: true }));
    load(path).then(
      (url) => {
        if (!current) {
          return;
        }
        shownPath.current = path;
        setState({ shown: { path, url }, loading: false, error: undefined });
        for (const next of aheadKey === '' ? [] : aheadKey.split('\n')) {
          load(next).catch(() => undefined);
        }
      },
      (error: unknown) => {
        if (current) {
          setState((previous) => ({ ...previous, loading: false, error }));
        }
      },
    );
    return () => {
      current = false;
    };
  }, [path, aheadKey]);

  return state;
}
