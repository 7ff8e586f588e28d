/**
 * The case's records (DocumentReferences related to the request): each PDF shown inline on demand in
 * the browser's viewer (viewers/PdfFrame.tsx, fetched with the person's token); anything else as a
 * link to the bytes.
 */
import { Anchor, Button, Card, Group, Loader, Stack, Text } from '@mantine/core';
import type { Attachment, DocumentReference } from '@medplum/fhirtypes';
import { useEffect, useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { blobUrl } from '../fhir.ts';
import { formatDateTime } from '../format.ts';
import { PdfFrame } from '../viewers/PdfFrame.tsx';
import { useRecords } from './case-data.ts';

/** The hub's path of an attachment's bytes (a Binary of this hub), or undefined. */
function binaryPath(attachment: Attachment): string | undefined {
  const match = /(?:^|\/fhir\/)(Binary\/[A-Za-z0-9\-.]{1,64})$/.exec(attachment.url ?? '');
  return match?.[1] === undefined ? undefined : `/fhir/${match[1]}`;
}

function titleOf(document: DocumentReference): string {
  return (
    document.description ??
    document.type?.text ??
    document.type?.coding?.[0]?.display ??
    document.content[0]?.attachment.title ??
    `Document ${document.id ?? ''}`
  );
}

function OtherAttachment({ path, title, contentType }: { path: string; title: string; contentType: string }) {
  const [url, setUrl] = useState<string>();
  const [error, setError] = useState<unknown>();
  useEffect(() => () => (url === undefined ? undefined : URL.revokeObjectURL(url)), [url]);
  return (
    <Stack gap={4}>
      {url === undefined ? (
        <Button
          size="xs"
          variant="default"
          onClick={() => {
            blobUrl(path, contentType).then(setUrl, setError);
          }}
        >
          Fetch {title} ({contentType})
        </Button>
      ) : (
        <Anchor href={url} download={title}>
          Save {title}
        </Anchor>
      )}
      {error ? <ErrorAlert error={error} title={`${title} could not be read`} /> : null}
    </Stack>
  );
}

function RecordCard({ document }: { document: DocumentReference }) {
  const [shown, setShown] = useState(false);
  const title = titleOf(document);
  const attachments = document.content.map((content) => content.attachment);
  return (
    <Card withBorder padding="sm" data-testid="record" data-document={document.id}>
      <Group justify="space-between" mb={shown ? 'sm' : 0}>
        <div>
          <Text fw={600}>{title}</Text>
          <Text size="sm" c="dimmed">
            {formatDateTime(document.date ?? document.meta?.lastUpdated)}
          </Text>
        </div>
        {attachments.some((attachment) => attachment.contentType === 'application/pdf') ? (
          <Button size="xs" variant="light" onClick={() => setShown(!shown)} aria-expanded={shown}>
            {shown ? `Hide ${title}` : `Show ${title}`}
          </Button>
        ) : null}
      </Group>
      {attachments.map((attachment, index) => {
        const path = binaryPath(attachment);
        if (path === undefined) {
          return (
            <Text key={index} size="sm" c="dimmed">
              {attachment.title ?? 'An attachment'} is not stored on the hub.
            </Text>
          );
        }
        if (attachment.contentType === 'application/pdf') {
          return shown ? <PdfFrame key={index} path={path} title={title} /> : null;
        }
        return (
          <OtherAttachment
            key={index}
            path={path}
            title={attachment.title ?? title}
            contentType={attachment.contentType ?? 'application/octet-stream'}
          />
        );
      })}
    </Card>
  );
}

export function Records({ caseId }: { caseId: string }) {
  const records = useRecords(caseId);
  if (records.error) {
    return <ErrorAlert error={records.error} title="The records could not be read" />;
  }
  if (records.isPending) {
    return <Loader size="sm" aria-label="Loading the records" />;
  }
  if (records.data.length === 0) {
    return <Text c="dimmed">No records have arrived for this case.</Text>;
  }
  return (
    <Stack gap="sm">
      {records.data.map((document) => (
        <RecordCard key={document.id} document={document} />
      ))}
    </Stack>
  );
}
