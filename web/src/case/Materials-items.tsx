/**
 * The material that arrived for a case, as the expect-material Tasks list it: each record with its
 * page count (or why the hub could not count its pages) and its PDF on demand, each imaging study
 * with its thumbnail rendered by the hub (WADO-RS), each specimen with its site and accession.
 * Read with one `_id` search per type.
 */
import { Button, Group, Loader, Stack, Table, Text } from '@mantine/core';
import type { Bundle, DocumentReference, ImagingStudy, Specimen } from '@medplum/fhirtypes';
import { useQuery } from '@tanstack/react-query';
import type { UseQueryResult } from '@tanstack/react-query';
import { useState } from 'react';
import type { ReactNode } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirGet, searchEntries } from '../fhir.ts';
import { formatDate } from '../format.ts';
import { FetchedImage } from '../viewers/FetchedImage.tsx';
import { PdfFrame } from '../viewers/PdfFrame.tsx';
import { caseKey } from './Quote-data.ts';

const PAGE_COUNT = 'urn:hub:extension:page-count';
const MATERIAL_FLAG = 'urn:hub:material-flag';
const DICOM_UID = 'urn:dicom:uid';
const THUMBNAIL_SIZE = 128;

type Arrived = DocumentReference | ImagingStudy | Specimen;

function useArrived<T extends Arrived>(serviceRequestId: string, resourceType: T['resourceType'], ids: string[]) {
  return useQuery({
    queryKey: caseKey(serviceRequestId, 'arrived', resourceType, ids.join(',')),
    queryFn: async () => {
      const query = new URLSearchParams({ _id: ids.join(','), _count: String(Math.max(ids.length, 1)) });
      return searchEntries<T>(await fhirGet<Bundle>(`${resourceType}?${query.toString()}`), resourceType);
    },
    enabled: ids.length > 0,
  });
}

function Listing<T extends Arrived>({
  query,
  ids,
  what,
  children,
}: {
  query: UseQueryResult<T[]>;
  ids: string[];
  what: string;
  children: (items: T[]) => ReactNode;
}) {
  if (ids.length === 0) {
    return null;
  }
  if (query.error) {
    return <ErrorAlert error={query.error} title={`The ${what} could not be read`} />;
  }
  if (query.isPending) {
    return <Loader size="sm" role="status" aria-label={`Loading the ${what}`} />;
  }
  return <>{children(query.data)}</>;
}

function pagesOf(document: DocumentReference): string {
  const pages = document.extension?.find((extension) => extension.url === PAGE_COUNT)?.valueInteger;
  if (pages !== undefined) {
    return `${pages} ${pages === 1 ? 'page' : 'pages'}`;
  }
  const flag = document.meta?.tag?.find((coding) => coding.system === MATERIAL_FLAG);
  return flag ? `Pages not counted: ${flag.display ?? flag.code}` : 'Pages not counted yet';
}

function RecordRow({ document }: { document: DocumentReference }) {
  const [shown, setShown] = useState(false);
  const attachment = document.content.map((content) => content.attachment).find((a) => a.url?.includes('Binary/'));
  const title =
    document.content[0]?.attachment.title ??
    document.description ??
    document.type?.text ??
    document.type?.coding?.[0]?.display ??
    'Document';
  const binaryPath = attachment?.url ? `/fhir/${attachment.url.slice(attachment.url.indexOf('Binary/'))}` : undefined;
  const isPdf = attachment?.contentType?.startsWith('application/pdf') ?? false;
  return (
    <Stack gap={4} data-testid="material-record" data-id={document.id}>
      <Group gap="sm" justify="space-between">
        <Text size="sm">
          <strong>{title}</strong>
          {document.date ? `, ${formatDate(document.date)}` : ''}
        </Text>
        <Text size="sm" data-testid="record-pages">
          {pagesOf(document)}
        </Text>
      </Group>
      {binaryPath && isPdf ? (
        <Group>
          <Button variant="subtle" size="compact-sm" onClick={() => setShown(!shown)} aria-expanded={shown}>
            {shown ? 'Hide the document' : 'Show the document'}
          </Button>
        </Group>
      ) : null}
      {shown && binaryPath ? <PdfFrame path={binaryPath} title={title} height={480} /> : null}
    </Stack>
  );
}

export function Records({ serviceRequestId, ids }: { serviceRequestId: string; ids: string[] }) {
  const query = useArrived<DocumentReference>(serviceRequestId, 'DocumentReference', ids);
  return (
    <Listing query={query} ids={ids} what="records">
      {(documents) => (
        <Stack gap="xs">
          {documents.map((document) => (
            <RecordRow key={document.id} document={document} />
          ))}
        </Stack>
      )}
    </Listing>
  );
}

const studyUid = (study: ImagingStudy): string | undefined =>
  study.identifier?.find((identifier) => identifier.system === DICOM_UID)?.value?.replace(/^urn:oid:/, '');

export function Studies({ serviceRequestId, ids }: { serviceRequestId: string; ids: string[] }) {
  const query = useArrived<ImagingStudy>(serviceRequestId, 'ImagingStudy', ids);
  return (
    <Listing query={query} ids={ids} what="imaging studies">
      {(studies) => (
        <Group gap="md" align="flex-start">
          {studies.map((study) => {
            const uid = studyUid(study);
            const name = study.description ?? 'imaging study';
            const modalities = (study.modality ?? []).map((coding) => coding.code).join(', ');
            return (
              <Stack key={study.id} gap={4} maw={THUMBNAIL_SIZE + 72} data-testid="material-study" data-id={study.id}>
                {uid ? (
                  <FetchedImage
                    path={`/dicomweb/studies/${encodeURIComponent(uid)}/thumbnail?viewport=${THUMBNAIL_SIZE},${THUMBNAIL_SIZE}`}
                    alt={`Thumbnail of the ${name}`}
                    width={THUMBNAIL_SIZE}
                    height={THUMBNAIL_SIZE}
                  />
                ) : null}
                <Text size="sm" fw={600}>
                  {name}
                </Text>
                <Text size="xs">
                  {[
                    modalities,
                    study.started ? formatDate(study.started) : undefined,
                    study.numberOfSeries !== undefined ? `${study.numberOfSeries} series` : undefined,
                    study.numberOfInstances !== undefined
                      ? `${study.numberOfInstances} image${study.numberOfInstances === 1 ? '' : 's'}`
                      : undefined,
                  ]
                    .filter((part) => part)
                    .join(' · ')}
                </Text>
              </Stack>
            );
          })}
        </Group>
      )}
    </Listing>
  );
}

export function Specimens({ serviceRequestId, ids }: { serviceRequestId: string; ids: string[] }) {
  const query = useArrived<Specimen>(serviceRequestId, 'Specimen', ids);
  return (
    <Listing query={query} ids={ids} what="specimens">
      {(specimens) => (
        <Table data-testid="material-specimens">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Specimen</Table.Th>
              <Table.Th>Site</Table.Th>
              <Table.Th>Collected</Table.Th>
              <Table.Th>Accession</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {specimens.map((specimen) => {
              const site = specimen.collection?.bodySite;
              const collected = specimen.collection?.collectedDateTime;
              return (
                <Table.Tr key={specimen.id}>
                  <Table.Td>
                    {specimen.type?.text ?? specimen.type?.coding?.[0]?.display ?? 'Specimen'}
                    {specimen.parent?.length ? ` (from ${specimen.parent.map((p) => p.reference).join(', ')})` : ''}
                  </Table.Td>
                  <Table.Td>{site?.text ?? site?.coding?.[0]?.display ?? '—'}</Table.Td>
                  <Table.Td>{collected ? formatDate(collected) : '—'}</Table.Td>
                  <Table.Td>{specimen.accessionIdentifier?.value ?? '—'}</Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      )}
    </Listing>
  );
}
