/**
 * The hub's settings for the app (`/dashboard/settings.json`, served without a token): a file
 * fetched at run time, since the page's CSP lets no inline script carry them.
 */
import { useQuery } from '@tanstack/react-query';

export interface HubSettings {
  /** A site's OHIF viewer (OHIF_VIEWER_URL), or null. */
  ohifViewerUrl: string | null;
}

export function useHubSettings() {
  return useQuery({
    queryKey: ['hub-settings'],
    queryFn: async (): Promise<HubSettings> => {
      const response = await fetch('/dashboard/settings.json', { headers: { accept: 'application/json' } });
      if (!response.ok) {
        return { ohifViewerUrl: null };
      }
      const body = (await response.json()) as Partial<HubSettings>;
      return { ohifViewerUrl: typeof body.ohifViewerUrl === 'string' ? body.ohifViewerUrl : null };
    },
    staleTime: Infinity,
  });
}

/** The OHIF viewer's link for a study: OHIF v3 opens the studies its `StudyInstanceUIDs` names. */
export function ohifLink(viewerUrl: string, studyInstanceUid: string): string | undefined {
  try {
    const url = new URL(viewerUrl);
    url.searchParams.set('StudyInstanceUIDs', studyInstanceUid);
    return url.toString();
  } catch {
    return undefined;
  }
}
