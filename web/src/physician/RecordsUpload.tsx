/**
 * Records for the case as PDFs: each file becomes a Binary (its bytes as they are, POST /fhir/Binary)
 * and a DocumentReference on the case (`context.related` the ServiceRequest, `subject` its Patient),
 * which the hub counts as records and whose pages it reads (docs/case-workflow.md,
 * "DocumentReference (records)"). A file that is not a PDF is refused here, before anything is sent.
 */
import { Button, Group, List, Stack, Text, TextInput } from '@mantine/core';
import type { DocumentReference, ServiceRequest } from '@medplum/fhirtypes';
import { useQueryClient } from '@tanstack/react-query';
import { useId, useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { ApiError, apiErrorOf, fhirRequest, hubFetch } from '../fhir.ts';
import { myPractitioner } from './messages.tsx';

interface Outcome {
  name: string;
  ok: boolean;
  text: string;
}

async function isPdf(file: File): Promise<boolean> {
  const head = new Uint8Array(await file.slice(0, 5).arrayBuffer());
  return String.fromCharCode(...head) === '%PDF-';
}

/** Stores the bytes as a Binary; its id from the Location the hub answers with. */
async function storeBinary(file: File): Promise<string> {
  const response = await hubFetch('/fhir/Binary', {
    method: 'POST',
    headers: { 'content-type': 'application/pdf', accept: 'application/fhir+json', prefer: 'return=minimal' },
    body: file,
  });
  if (!response.ok) {
    throw await apiErrorOf(response);
  }
  const id = /\/Binary\/([A-Za-z0-9\-.]{1,64})(?:\/|$)/.exec(response.headers.get('location') ?? '')?.[1];
  if (id === undefined) {
    throw new ApiError(response.status, 'The hub stored the file but did not say where.');
  }
  return id;
}

export function RecordsUpload({
  serviceRequest,
  onUploaded,
}: {
  serviceRequest: ServiceRequest;
  onUploaded: () => void;
}) {
  const inputId = useId();
  const queryClient = useQueryClient();
  const [files, setFiles] = useState<File[]>([]);
  const [description, setDescription] = useState('');
  const [busy, setBusy] = useState(false);
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const [error, setError] = useState<unknown>();
  // A new key clears the file input once its files are sent.
  const [inputKey, setInputKey] = useState(0);

  const upload = async (): Promise<void> => {
    setBusy(true);
    setError(undefined);
    const done: Outcome[] = [];
    try {
      for (const file of files) {
        if (!(await isPdf(file))) {
          done.push({ name: file.name, ok: false, text: 'Not a PDF: only PDF records can be uploaded here' });
          continue;
        }
        try {
          const binaryId = await storeBinary(file);
          const title = file.name.replace(/\.pdf$/i, '');
          const author = myPractitioner();
          await fhirRequest<DocumentReference>(
            'POST',
            'DocumentReference',
            {
              resourceType: 'DocumentReference',
              status: 'current',
              type: { text: description.trim() || 'Medical record' },
              ...(description.trim() ? { description: description.trim() } : {}),
              ...(serviceRequest.subject?.reference?.startsWith('Patient/')
                ? { subject: { reference: serviceRequest.subject.reference } }
                : {}),
              date: new Date().toISOString(),
              ...(author ? { author: [author] } : {}),
              content: [
                { attachment: { contentType: 'application/pdf', url: `Binary/${binaryId}`, title, size: file.size } },
              ],
              context: { related: [{ reference: `ServiceRequest/${serviceRequest.id ?? ''}` }] },
            } satisfies DocumentReference,
            { prefer: 'return=minimal' },
          );
          done.push({ name: file.name, ok: true, text: 'Stored with the case' });
        } catch (failure) {
          done.push({ name: file.name, ok: false, text: failure instanceof Error ? failure.message : String(failure) });
        }
      }
    } catch (failure) {
      setError(failure);
    } finally {
      setOutcomes(done);
      setBusy(false);
      setFiles([]);
      setInputKey((key) => key + 1);
      await queryClient.invalidateQueries({ queryKey: ['records', serviceRequest.id] });
      onUploaded();
    }
  };

  return (
    <Stack gap="xs" data-testid="records-upload">
      <label htmlFor={inputId}>
        <Text fw={600} size="sm">
          PDF records
        </Text>
      </label>
      <input
        key={inputKey}
        id={inputId}
        type="file"
        accept="application/pdf,.pdf"
        multiple
        onChange={(event) => setFiles([...(event.currentTarget.files ?? [])])}
      />
      <TextInput
        label="What they are (optional)"
        placeholder="e.g. Discharge summary, pathology report"
        value={description}
        onChange={(event) => setDescription(event.currentTarget.value)}
        maxLength={200}
      />
      <Group>
        <Button onClick={() => void upload()} loading={busy} disabled={files.length === 0}>
          Upload {files.length === 1 ? 'the PDF' : files.length > 1 ? `${files.length} PDFs` : 'PDFs'}
        </Button>
      </Group>
      {error ? <ErrorAlert error={error} title="The records could not be uploaded" /> : null}
      {outcomes.length > 0 ? (
        <List data-testid="records-upload-outcomes">
          {outcomes.map((outcome, index) => (
            <List.Item key={index}>
              <Text c={outcome.ok ? undefined : 'red.9'} size="sm">
                {outcome.name}: {outcome.text}
              </Text>
            </List.Item>
          ))}
        </List>
      ) : null}
    </Stack>
  );
}
