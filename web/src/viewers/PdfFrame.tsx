/**
 * A PDF the hub holds (a records Binary, the opinion letter) shown inline in the browser's own viewer:
 * fetched with the person's token and framed from a blob: URL, with a link to open or save the same
 * bytes. A refusal shows the hub's words in its place.
 *
 * The bytes are framed only as `application/pdf`, and only when they are one (they begin `%PDF-`),
 * whatever type the Binary declares: a Binary is whatever its writer stored (a patient's upload
 * could be HTML), and a blob: URL is of this app's origin, so HTML framed from it would run as the
 * app. Anything else is offered as a download of opaque bytes. The frame is not sandboxed: Chromium's
 * PDF viewer does not render in a sandboxed frame (checked on Chromium 156), so the type is the guard.
 */
import { Alert, Anchor, Loader, Stack } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { apiErrorOf, hubFetch } from '../fhir.ts';

export interface PdfFrameProps {
  /** The hub's path of the bytes, e.g. `/fhir/Binary/<id>`. */
  path: string;
  title: string;
  height?: number;
}

const PDF_MAGIC = [0x25, 0x50, 0x44, 0x46, 0x2d]; // "%PDF-"

/** The bytes at `path` as a blob: URL, typed `application/pdf` only when they are a PDF. */
async function fetchPdf(path: string): Promise<{ url: string; isPdf: boolean }> {
  const response = await hubFetch(path, { headers: { accept: 'application/pdf' } });
  if (!response.ok) {
    throw await apiErrorOf(response);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  const isPdf = PDF_MAGIC.every((byte, index) => bytes[index] === byte);
  const blob = new Blob([bytes], { type: isPdf ? 'application/pdf' : 'application/octet-stream' });
  return { url: URL.createObjectURL(blob), isPdf };
}

export function PdfFrame({ path, title, height = 640 }: PdfFrameProps) {
  const pdf = useQuery({
    queryKey: ['pdf', path],
    queryFn: () => fetchPdf(path),
    gcTime: 0,
    staleTime: Infinity,
  });
  const url = pdf.data?.url;
  useEffect(() => () => (url === undefined ? undefined : URL.revokeObjectURL(url)), [url]);
  if (pdf.error) {
    return <ErrorAlert error={pdf.error} title={`${title} could not be read`} />;
  }
  if (pdf.data === undefined) {
    return <Loader size="sm" aria-label={`Loading ${title}`} />;
  }
  if (!pdf.data.isPdf) {
    return (
      <Alert color="yellow" title="This document is not a PDF" data-testid="not-a-pdf">
        It is not shown here.{' '}
        <Anchor href={pdf.data.url} download={title}>
          Download {title}
        </Anchor>{' '}
        to open it with a program you trust.
      </Alert>
    );
  }
  return (
    <Stack gap="xs">
      <iframe src={pdf.data.url} title={title} className="pdf-frame" height={height} data-testid="pdf-frame" />
      <Anchor href={pdf.data.url} target="_blank" rel="noopener" download={`${title}.pdf`}>
        Open {title} as a PDF
      </Anchor>
    </Stack>
  );
}
