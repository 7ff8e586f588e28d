/**
 * Turning a study away (not a patient of ours, a duplicate, sent in error), or a sender's instances
 * refused by a case's claim: with the reason, for the record.
 */
import { Button, Group, Stack, TextInput } from '@mantine/core';
import { useState } from 'react';

export function RejectStudy({
  busy,
  onReject,
  action = 'Reject the study',
  question = 'Why is this study rejected?',
  confirm = 'Confirm rejecting',
}: {
  busy: boolean;
  onReject: (reason: string) => void;
  /** The button's words, the reason's label and the confirming button's (a claim's card says "Keep refusing"). */
  action?: string;
  question?: string;
  confirm?: string;
}) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  if (!open) {
    return (
      <Group>
        <Button variant="outline" color="red.9" onClick={() => setOpen(true)} disabled={busy}>
          {action}
        </Button>
      </Group>
    );
  }
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        if (reason.trim() !== '') {
          onReject(reason.trim());
        }
      }}
    >
      <Stack gap="xs">
        <TextInput
          label={question}
          description="Kept on the reconciliation Task: say why, without the patient's name."
          required
          value={reason}
          onChange={(event) => setReason(event.currentTarget.value)}
        />
        <Group gap="xs">
          <Button type="submit" color="red.9" loading={busy} disabled={reason.trim() === ''}>
            {confirm}
          </Button>
          <Button variant="default" onClick={() => setOpen(false)} disabled={busy}>
            Cancel
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
