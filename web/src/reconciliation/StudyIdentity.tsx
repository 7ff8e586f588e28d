/** A stored study as its DICOM says it is: whose, when, what, and a thumbnail rendered by the hub. */
import { Group, Stack, Table, Text } from '@mantine/core';
import type { ImagingStudy } from '@medplum/fhirtypes';
import { FetchedImage } from '../viewers/FetchedImage.tsx';
import type { StudyIdentity as Identity } from './dicom.ts';

const NONE = '—';

export function StudyIdentity({
  identity,
  study,
  studyInstanceUid,
}: {
  identity: Identity | undefined;
  study: ImagingStudy | undefined;
  studyInstanceUid: string | undefined;
}) {
  if (studyInstanceUid === undefined) {
    return <Text c="red.9">The Task names no study this hub holds.</Text>;
  }
  const modalities =
    identity?.modalities.join(', ') ?? study?.modality?.map((coding) => coding.code).join(', ') ?? NONE;
  const rows: [string, string | undefined, string][] = [
    ['Patient name', identity?.patientName, 'patient-name'],
    ['Patient ID', identity?.patientId, 'patient-id'],
    ['Birth date', identity?.birthDate, 'birth-date'],
    ['Sex', identity?.sex, 'sex'],
    ['Accession number', identity?.accessionNumber, 'accession'],
    ['Study date', identity?.studyDate ?? study?.started, 'study-date'],
    ['Modality', modalities, 'modality'],
    ['Description', identity?.description ?? study?.description, 'description'],
    ['Referring physician', identity?.referringPhysician, 'referring-physician'],
    [
      'Series / images',
      `${identity?.seriesCount ?? study?.numberOfSeries ?? '?'} / ${identity?.instanceCount ?? study?.numberOfInstances ?? '?'}`,
      'counts',
    ],
  ];
  return (
    <Group align="start" wrap="wrap" gap="md" data-testid="study-identity">
      <FetchedImage
        path={`/dicomweb/studies/${encodeURIComponent(studyInstanceUid)}/thumbnail?viewport=128,128`}
        alt={`Thumbnail of the study of ${identity?.patientName ?? 'an unnamed patient'}`}
        width={128}
        height={128}
      />
      <Stack gap={0}>
        <Table withRowBorders={false} verticalSpacing={2} horizontalSpacing="xs">
          <Table.Tbody>
            {rows.map(([label, value, key]) => (
              <Table.Tr key={key}>
                <Table.Th scope="row" fw={500}>
                  {label}
                </Table.Th>
                <Table.Td data-field={key}>{value === undefined || value === '' ? NONE : value}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
        {identity === undefined ? (
          <Text size="sm" c="red.9">
            The study's DICOM attributes could not be read from the hub.
          </Text>
        ) : null}
      </Stack>
    </Group>
  );
}
