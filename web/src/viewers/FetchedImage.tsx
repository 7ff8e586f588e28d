/**
 * An image the hub renders (a DICOM thumbnail or frame from WADO-RS) shown in an <img>: the bytes
 * are fetched with the person's token (an <img src> could not send it) and shown from a blob: URL,
 * revoked when the image changes or leaves the page. A refusal shows the hub's words in its place.
 */
import { Loader, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { blobUrl } from '../fhir.ts';

export interface FetchedImageProps {
  /** The hub's path, e.g. `/dicomweb/studies/<uid>/thumbnail?viewport=128,128`. */
  path: string;
  alt: string;
  width?: number;
  height?: number;
  accept?: string;
}

export function FetchedImage({ path, alt, width, height, accept = 'image/jpeg' }: FetchedImageProps) {
  const image = useQuery({
    queryKey: ['blob', path, accept],
    queryFn: () => blobUrl(path, accept),
    // A blob: URL is revoked when its image goes: never serve a revoked one from the cache.
    gcTime: 0,
    staleTime: Infinity,
  });
  const url = image.data;
  useEffect(() => () => (url === undefined ? undefined : URL.revokeObjectURL(url)), [url]);
  if (image.error) {
    return (
      <Text size="sm" c="red" role="img" aria-label={alt}>
        {image.error instanceof Error ? image.error.message : 'The image could not be read.'}
      </Text>
    );
  }
  if (url === undefined) {
    return <Loader size="sm" aria-label={`Loading ${alt}`} />;
  }
  return <img src={url} alt={alt} width={width} height={height} className="fetched-image" />;
}
