/**
 * The case's materials as its physician sees them: what the request plans and what has arrived (the
 * expect-material Tasks, docs/case-workflow.md), the records (DocumentReferences with their page
 * counts, each PDF viewable in place) and the imaging studies (ImagingStudies, with a thumbnail the
 * hub renders). After an upload the lists are read again for a while, as the hub takes the new
 * material up in the background.
 */
import { Anchor, Badge, Card, Group, Loader, Stack, Table, Text, Title } from '@mantine/core';
import type { DocumentReference, ImagingStudy, Task } from '@medplum/fhirtypes';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { formatDateTime } from '../format.ts';
import { FetchedImage } from '../viewers/FetchedImage.tsx';
import { PdfFrame } from '../viewers/PdfFrame.tsx';
import { useExpectedMaterials, useRecords, useStudies } from './case-data.ts';
import { binaryPath } from './opinion-data.ts';

const KIND_LABEL: Record<string, string> = { records: 'Records', imaging: 'Imaging', pathology: 'Pathology' };
const COUNT_LABEL: Record<string, string> = {
  'imaging-sites': 'imaging sites',
  'record-pages': 'pages',
  'biopsy-sites': 'biopsy sites',
  'pathology-blocks': 'blocks',
  'unstained-slides': 'unstained slides',
  'special-stains': 'special stains',
};
const MATERIAL_COUNT = 'urn:hub:material-count';

function counts(entries: Task['input']): string {
  return (entries ?? [])
    .flatMap((entry) => {
      const code = entry.type.coding?.find((coding) => coding.system === MATERIAL_COUNT)?.code ?? '';
      const label = COUNT_LABEL[code];
      return label !== undefined && typeof entry.valueInteger === 'number' ? [`${entry.valueInteger} ${label}`] : [];
    })
    .join(', ');
}

function kindOf(task: Task): string {
  const material = task.input?.find((entry) =>
    entry.type.coding?.some((coding) => coding.system === MATERIAL_COUNT && coding.code === 'material'),
  );
  return material?.valueCoding?.code ?? 'material';
}

const STATUS_WORDS: Partial<Record<Task['status'], [string, string]>> = {
  requested: ['expected', 'yellow'],
  'in-progress': ['partly in', 'yellow'],
  completed: ['all in', 'green'],
  cancelled: ['no longer expected', 'gray'],
};

function Expected({ tasks }: { tasks: readonly Task[] }) {
  if (tasks.length === 0) {
    return <Text c="dimmed">The request plans no materials yet.</Text>;
  }
  return (
    <Table data-testid="expected-materials">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Material</Table.Th>
          <Table.Th>Planned</Table.Th>
          <Table.Th>Arrived</Table.Th>
          <Table.Th>Status</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {tasks.map((task) => {
          const [words, color] = STATUS_WORDS[task.status] ?? [task.status, 'blue'];
          return (
            <Table.Tr key={task.id} data-kind={kindOf(task)}>
              <Table.Td>{KIND_LABEL[kindOf(task)] ?? kindOf(task)}</Table.Td>
              <Table.Td>{counts(task.input) || '—'}</Table.Td>
              <Table.Td>{counts(task.output) || '—'}</Table.Td>
              <Table.Td>
                <Badge color={color} variant="light" data-testid="material-status">
                  {words}
                </Badge>
              </Table.Td>
            </Table.Tr>
          );
        })}
      </Table.Tbody>
    </Table>
  );
}

function pagesOf(document: DocumentReference): string {
  const pages = document.extension?.find((extension) => extension.url === 'urn:hub:extension:page-count')?.valueInteger;
  if (pages !== undefined) {
    return `${pages} page${pages === 1 ? '' : 's'}`;
  }
  const flag = document.meta?.tag?.find((tag) => tag.system === 'urn:hub:material-flag')?.code;
  return flag === undefined ? 'pages not counted yet' : `pages not counted (${flag.replace(/-/g, ' ')})`;
}

function Records({ documents }: { documents: readonly DocumentReference[] }) {
  const [shown, setShown] = useState<string>();
  if (documents.length === 0) {
    return <Text c="dimmed">No records yet.</Text>;
  }
  return (
    <Stack gap="xs" data-testid="records">
      {documents.map((document) => {
        const attachment = document.content[0]?.attachment;
        const path = binaryPath(attachment?.url);
        const title = attachment?.title ?? document.description ?? document.type?.text ?? 'Record';
        return (
          <Stack key={document.id} gap={4} data-testid="record">
            <Group gap="xs">
              <Text fw={600}>{title}</Text>
              <Text size="sm" c="dimmed">
                {pagesOf(document)} · {formatDateTime(document.date ?? document.meta?.lastUpdated)}
              </Text>
              {path !== undefined && attachment?.contentType === 'application/pdf' ? (
                <Anchor
                  component="button"
                  type="button"
                  size="sm"
                  onClick={() => setShown(shown === document.id ? undefined : document.id)}
                >
                  {shown === document.id ? 'Hide' : 'Show'} {title}
                </Anchor>
              ) : null}
            </Group>
            {shown === document.id && path !== undefined ? <PdfFrame path={path} title={title} height={480} /> : null}
          </Stack>
        );
      })}
    </Stack>
  );
}

/** A FHIR date (or the date of a dateTime) as the calendar day it names, in no time zone. */
function calendarDate(value: string): string {
  const [year, month, day] = value.slice(0, 10).split('-').map(Number);
  if (year === undefined || month === undefined || day === undefined) {
    return value;
  }
  return new Date(year, month - 1, day).toLocaleDateString(undefined, { dateStyle: 'medium' });
}

function studyUid(study: ImagingStudy): string | undefined {
  return study.identifier?.find((identifier) => identifier.system === 'urn:dicom:uid')?.value?.replace(/^urn:oid:/, '');
}

function Studies({ studies }: { studies: readonly ImagingStudy[] }) {
  if (studies.length === 0) {
    return <Text c="dimmed">No imaging yet.</Text>;
  }
  return (
    <Table data-testid="studies">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Study</Table.Th>
          <Table.Th>Date</Table.Th>
          <Table.Th>Series</Table.Th>
          <Table.Th>Images</Table.Th>
          <Table.Th>Preview</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {studies.map((study) => {
          const uid = studyUid(study);
          const description =
            study.description ?? study.modality?.map((modality) => modality.code).join(', ') ?? 'Study';
          return (
            <Table.Tr key={study.id} data-testid="study" data-instances={study.numberOfInstances}>
              <Table.Td>{description}</Table.Td>
              <Table.Td>{study.started ? calendarDate(study.started) : '—'}</Table.Td>
              <Table.Td>{study.numberOfSeries ?? '—'}</Table.Td>
              <Table.Td>{study.numberOfInstances ?? '—'}</Table.Td>
              <Table.Td>
                {uid === undefined ? null : (
                  <FetchedImage
                    path={`/dicomweb/studies/${encodeURIComponent(uid)}/thumbnail?viewport=64,64`}
                    alt={`A preview of ${description}`}
                    width={64}
                    height={64}
                  />
                )}
              </Table.Td>
            </Table.Tr>
          );
        })}
      </Table.Tbody>
    </Table>
  );
}

export function Materials({ serviceRequestId, watching }: { serviceRequestId: string; watching: boolean }) {
  const refetch = watching ? 3_000 : false;
  const expected = useExpectedMaterials(serviceRequestId, refetch);
  const records = useRecords(serviceRequestId, refetch);
  const studies = useStudies(serviceRequestId, refetch);
  return (
    <Card withBorder padding="md" data-testid="materials">
      <Title order={3} size="h4" mb="xs">
        Materials
      </Title>
      <Stack>
        {expected.error ? <ErrorAlert error={expected.error} title="What the request plans could not be read" /> : null}
        {expected.isPending ? (
          <Loader size="sm" role="status" aria-label="Loading the planned materials" />
        ) : (
          <Expected tasks={expected.tasks} />
        )}
        <Title order={4} size="h5">
          Records
        </Title>
        {records.error ? <ErrorAlert error={records.error} title="The records could not be read" /> : null}
        {records.isPending ? (
          <Loader size="sm" role="status" aria-label="Loading the records" />
        ) : (
          <Records documents={records.documents} />
        )}
        <Title order={4} size="h5">
          Imaging
        </Title>
        {studies.error ? <ErrorAlert error={studies.error} title="The imaging could not be read" /> : null}
        {studies.isPending ? (
          <Loader size="sm" role="status" aria-label="Loading the imaging" />
        ) : (
          <Studies studies={studies.studies} />
        )}
      </Stack>
    </Card>
  );
}
