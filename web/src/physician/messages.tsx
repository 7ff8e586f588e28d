/**
 * The physician's messages on a case: a Communication based on the case's ServiceRequest, with what
 * makes it an answer to the specialist's question (`inResponseTo`) or a clarification question about
 * the released report (`about`), as the hub's workflow reads them (docs/case-workflow.md, "The
 * opinion", steps 2 and 7). Who wrote it is the hub's record (meta.source), never what is sent here.
 */
import { Button, Stack, Text, Textarea } from '@mantine/core';
import type { Communication, Practitioner, Reference } from '@medplum/fhirtypes';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { currentSession } from '../auth.ts';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { fhirRequest } from '../fhir.ts';
import { formatDateTime, writerOf } from '../format.ts';
import { messageText } from './case-data.ts';

/** The signed-in person's Practitioner, from the token's fhirUser (relative or absolute). */
export function myPractitioner(): Reference<Practitioner> | undefined {
  const match = /(?:^|\/)(Practitioner\/[A-Za-z0-9\-.]{1,64})$/.exec(currentSession()?.fhirUser ?? '');
  return match?.[1] === undefined ? undefined : { reference: match[1] };
}

/** `urn:hub:actor:<role>:…` of the version: the role the hub recorded for its writer. */
export function writerRole(communication: Communication): string | undefined {
  return /^urn:hub:actor:([^:]+):/.exec(communication.meta?.source ?? '')?.[1];
}

export function Message({ communication, label }: { communication: Communication; label: string }) {
  return (
    <Stack gap={2} data-testid="message">
      <Text size="sm" c="dimmed">
        {label} · {formatDateTime(communication.sent ?? communication.meta?.lastUpdated)} ·{' '}
        {writerOf(communication.meta?.source)}
      </Text>
      {messageText(communication).map((text, index) => (
        <Text key={index} className="message-text">
          {text}
        </Text>
      ))}
    </Stack>
  );
}

export interface SendFormProps {
  serviceRequestId: string;
  label: string;
  button: string;
  /** What makes the message what it is: `inResponseTo`, `about`, `recipient`, `partOf`. */
  shape: Partial<Communication>;
  onSent?: () => void;
}

/** A labelled text box and its button; sends one Communication, then reads the case's messages again. */
export function SendForm({ serviceRequestId, label, button, shape, onSent }: SendFormProps) {
  const queryClient = useQueryClient();
  const [text, setText] = useState('');
  const send = useMutation({
    mutationFn: () => {
      const sender = myPractitioner();
      return fhirRequest<Communication>('POST', 'Communication', {
        resourceType: 'Communication',
        status: 'completed',
        basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
        ...(sender ? { sender } : {}),
        sent: new Date().toISOString(),
        ...shape,
        payload: [{ contentString: text.trim() }],
      } satisfies Communication);
    },
    onSuccess: async () => {
      setText('');
      await queryClient.invalidateQueries({ queryKey: ['communications', serviceRequestId] });
      onSent?.();
    },
  });
  return (
    <Stack gap="xs">
      <Textarea
        label={label}
        value={text}
        onChange={(event) => setText(event.currentTarget.value)}
        autosize
        minRows={3}
        maxLength={10_000}
      />
      {send.error ? <ErrorAlert error={send.error} title="The message was not sent" /> : null}
      <div>
        <Button onClick={() => send.mutate()} loading={send.isPending} disabled={text.trim() === ''}>
          {button}
        </Button>
      </div>
    </Stack>
  );
}
