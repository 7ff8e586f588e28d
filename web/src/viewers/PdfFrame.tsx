/**
 * A PDF the hub holds (a records Binary, the opinion letter) shown inline in the browser's own viewer:
 * fetched with the person's token as `application/pdf` and framed from a blob: URL, with a link to
 * open or save the same bytes. A refusal shows the hub's words in its place.
 */
import { Anchor, Loader, Stack } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { blobUrl } from '../fhir.ts';

export interface PdfFrameProps {
  /** The hub's path of the bytes, e.g. `/fhir/Binary/<id>`. */
  path: string;
  title: string;
  height?: number;
}

export function PdfFrame({ path, title, height = 640 }: PdfFrameProps) {
  const pdf = useQuery({
    queryKey: ['blob', path, 'application/pdf'],
    queryFn: () => blobUrl(path, 'application/pdf'),
    gcTime: 0,
    staleTime: Infinity,
  });
  const url = pdf.data;
  useEffect(() => () => (url === undefined ? undefined : URL.revokeObjectURL(url)), [url]);
  if (pdf.error) {
    return <ErrorAlert error={pdf.error} title={`${title} could not be read`} />;
  }
  if (url === undefined) {
    return <Loader size="sm" aria-label={`Loading ${title}`} />;
  }
  return (
    <Stack gap="xs">
      <iframe src={url} title={title} className="pdf-frame" height={height} data-testid="pdf-frame" />
      <Anchor href={url} target="_blank" rel="noopener" download={`${title}.pdf`}>
        Open {title} as a PDF
      </Anchor>
    </Stack>
  );
}
