/**
 * Imaging from a patient's CD: the physician picks the disc's folder (or some files); the browser
 * finds the DICOM instances among them (with a DICOMDIR or without: each file's own header decides,
 * dicom-files.ts), says what it leaves out and why, and on "Send" stores them into the case with
 * STOW-RS in batches (stow-client.ts), with the progress in files and bytes, then lists every file
 * not stored with the reason: the browser's checks and the hub's answer (FailedSOPSequence). Sending
 * the same folder again is safe: an instance stored already counts as stored.
 */
import { Alert, Button, Group, Progress, Stack, Table, Text } from '@mantine/core';
import { useId, useRef, useState } from 'react';
import { batchesOf, formatBytes, selectInstances } from './dicom-files.ts';
import type { Selection, SkippedFile } from './dicom-files.ts';
import { sendBatch } from './stow-client.ts';

interface Sent {
  files: number;
  bytes: number;
  stored: number;
  refused: SkippedFile[];
  stopped?: string;
  finished: boolean;
}

/** React types have no `webkitdirectory`; every browser the app supports takes it. */
const FOLDER = { webkitdirectory: '', directory: '' } as Record<string, string>;

function RefusedList({ refused }: { refused: readonly SkippedFile[] }) {
  if (refused.length === 0) {
    return null;
  }
  return (
    <Stack gap={4}>
      <Text fw={600} size="sm">
        Not sent, or refused ({refused.length})
      </Text>
      <div className="refused-list">
        <Table data-testid="upload-refused">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>File</Table.Th>
              <Table.Th>Why</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {refused.map((file) => (
              <Table.Tr key={file.path} data-path={file.path}>
                <Table.Td className="file-path">{file.path}</Table.Td>
                <Table.Td>{file.reason}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </div>
    </Stack>
  );
}

export function ImagingUpload({ serviceRequestId, onUploaded }: { serviceRequestId: string; onUploaded: () => void }) {
  const folderId = useId();
  const filesId = useId();
  const [selection, setSelection] = useState<Selection>();
  const [scanning, setScanning] = useState(false);
  const [sent, setSent] = useState<Sent>();
  const stopRequested = useRef(false);
  const sending = sent !== undefined && !sent.finished;

  const choose = async (list: FileList | null): Promise<void> => {
    setSent(undefined);
    setSelection(undefined);
    if (list === null || list.length === 0) {
      return;
    }
    setScanning(true);
    try {
      setSelection(await selectInstances([...list]));
    } finally {
      setScanning(false);
    }
  };

  const send = async (chosen: Selection): Promise<void> => {
    stopRequested.current = false;
    let state: Sent = { files: 0, bytes: 0, stored: 0, refused: [...chosen.skipped], finished: false };
    setSent(state);
    const batches = batchesOf(chosen.instances);
    for (const [index, batch] of batches.entries()) {
      if (stopRequested.current) {
        const rest = batches.slice(index).flat();
        state = {
          ...state,
          refused: [
            ...state.refused,
            ...rest.map((instance) => ({ path: instance.path, reason: 'Not sent: stopped' })),
          ],
          stopped: 'You stopped the upload.',
        };
        break;
      }
      const result = await sendBatch(serviceRequestId, batch);
      state = {
        ...state,
        files: state.files + batch.length,
        bytes: state.bytes + batch.reduce((sum, instance) => sum + instance.file.size, 0),
        stored: state.stored + result.stored.length,
        refused: [...state.refused, ...result.refused],
      };
      setSent(state);
      if (result.stop !== undefined) {
        const rest = batches.slice(index + 1).flat();
        state = {
          ...state,
          refused: [...state.refused, ...rest.map((instance) => ({ path: instance.path, reason: 'Not sent' }))],
          stopped: result.stop,
        };
        break;
      }
    }
    setSent({ ...state, finished: true });
    onUploaded();
  };

  const total = selection?.instances.length ?? 0;
  const totalBytes = selection?.bytes ?? 0;
  return (
    <Stack gap="xs" data-testid="imaging-upload">
      <Text fw={600} size="sm">
        Imaging (DICOM)
      </Text>
      <Text size="sm" c="dimmed">
        Choose the folder of the patient’s CD or DVD as it is (with its DICOMDIR or not), or some of its files. Only
        DICOM images are sent; the rest is listed with the reason.
      </Text>
      <Group>
        <div>
          <label htmlFor={folderId}>
            <Text size="sm">The disc’s folder</Text>
          </label>
          <input
            id={folderId}
            type="file"
            multiple
            {...FOLDER}
            disabled={sending}
            onChange={(event) => void choose(event.currentTarget.files)}
          />
        </div>
        <div>
          <label htmlFor={filesId}>
            <Text size="sm">Or some files</Text>
          </label>
          <input
            id={filesId}
            type="file"
            multiple
            disabled={sending}
            onChange={(event) => void choose(event.currentTarget.files)}
          />
        </div>
      </Group>
      {scanning ? <Text size="sm">Reading the files…</Text> : null}
      {selection !== undefined && sent === undefined ? (
        <Stack gap="xs" data-testid="upload-selection">
          <Text size="sm">
            {total} DICOM file{total === 1 ? '' : 's'} ({formatBytes(totalBytes)}) to send
            {selection.skipped.length > 0
              ? `; ${selection.skipped.length} file${selection.skipped.length === 1 ? '' : 's'} left out (below)`
              : ''}
            .
          </Text>
          <Group>
            <Button onClick={() => void send(selection)} disabled={total === 0}>
              Send {total} file{total === 1 ? '' : 's'}
            </Button>
          </Group>
          <RefusedList refused={selection.skipped} />
        </Stack>
      ) : null}
      {sent !== undefined && selection !== undefined ? (
        <Stack gap="xs">
          <Progress
            value={totalBytes === 0 ? 100 : (100 * sent.bytes) / totalBytes}
            aria-label="Upload progress"
            data-testid="upload-progress"
            data-files={sent.files}
            size="lg"
          />
          <Text size="sm" data-testid="upload-progress-text">
            {sent.files} of {total} files sent · {formatBytes(sent.bytes)} of {formatBytes(totalBytes)}
          </Text>
          {sending ? (
            <Group>
              <Button variant="default" onClick={() => (stopRequested.current = true)}>
                Stop
              </Button>
            </Group>
          ) : (
            <Alert
              color={sent.stored === total ? 'green' : sent.stored === 0 ? 'red' : 'yellow'}
              title={sent.stored === total ? 'Sent' : 'Sent in part'}
              data-testid="upload-done"
            >
              {sent.stored} of {total} DICOM files stored with the case.
              {sent.stopped ? ` ${sent.stopped}` : ''} The studies appear under Imaging once the hub has taken them up.
            </Alert>
          )}
          <RefusedList refused={sent.refused} />
        </Stack>
      ) : null}
    </Stack>
  );
}
